"""A Python node and a real Erlang node: messages, calls, casts, links, monitors and node
monitoring both ways, over EPMD, the v6 handshake and the external term format."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

import otp
import otp.dist
from behaviours import GenServer, NoReply, Reply
from otp.dist import Atom, monitor_node, nodes, ping

from .conftest import ErlPeer, python_node, start_peer, stop_peer

A = Atom


async def ask(peer: str, what: Any, timeout: float = 5.0) -> Any:
    """Have the peer's control process do `what`; its result."""
    tag = otp.make_ref()
    otp.send(("control", peer), (otp.self(), tag, what))
    reply = await otp.receive(
        lambda m: type(m) is tuple and len(m) == 2 and m[0] == tag, timeout=timeout
    )
    return reply[1]


def run(peer: ErlPeer, main: Any, *args: Any, loop: Any = "uvloop") -> Any:
    return otp.run(main, *args, name=python_node(), cookie=peer.cookie, loop=loop)


class Store(GenServer[dict[Any, Any]]):
    def init(self, arg: Any) -> dict[Any, Any]:
        return {}

    def handle_call(self, request: Any, from_: Any, state: dict[Any, Any]) -> Reply[Any]:
        match request:
            case (op, key, value) if op == "put":
                state[key] = value
                return Reply(A("ok"), state)
            case (op, key) if op == "get":
                return Reply(state.get(key), state)
        return Reply((A("unknown"), request), state)

    def handle_cast(self, msg: Any, state: dict[Any, Any]) -> NoReply[dict[Any, Any]]:
        state["cast"] = msg
        return NoReply(state)


def test_erlang_pings_python_and_python_pings_erlang(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, Any, list[str]]:
        theirs = await ask(erl_peer.node, (A("ping"), A(otp.self().node)))
        ours = await ping(erl_peer.node)
        return theirs, ours, nodes()

    assert run(erl_peer, main) == ("pong", "pong", [erl_peer.node])


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_python_calls_and_casts_an_erlang_gen_server(erl_peer: ErlPeer, loop: str) -> None:
    async def main() -> tuple[Any, Any, Any]:
        server = ("echo_srv", erl_peer.node)
        answer = await GenServer.call(server, (A("hello"), 42, [1.5, "text", b"\xff"]))
        GenServer.cast(server, (A("tell"), otp.self(), "cast"))
        echoed = await otp.receive(timeout=5)
        try:
            await GenServer.call(("nobody", erl_peer.node), "x", timeout=5)
        except otp.CallError as e:
            missing = e.reason
        return answer, echoed, missing

    answer, echoed, missing = run(erl_peer, main, loop=loop)
    assert answer == ("echo", ("hello", 42, [1.5, "text", b"\xff"]))
    assert echoed[0] == "echoed"
    assert missing == "noproc"


def test_erlang_calls_and_casts_a_python_gen_server(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, Any, Any, Any]:
        pid = await Store.start_link(None, name="store")
        me = A(otp.self().node)
        put = await ask(erl_peer.node, (A("call"), (A("store"), me), (A("put"), 1, 2)))
        got = await ask(erl_peer.node, (A("call"), (A("store"), me), (A("get"), 1)))
        await ask(erl_peer.node, (A("cast"), (A("store"), me), A("hi")))
        state = await otp.sys.get_state(pid)
        missing = await ask(erl_peer.node, (A("call"), (A("nobody"), me), A("x")))
        return put, got, state["cast"], missing

    put, got, cast, missing = run(erl_peer, main)
    assert (put, got, cast) == ("ok", 2, "hi")
    assert missing[0] == "EXIT" and missing[1][0] == "noproc"


def test_monitors_both_ways(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, Any, Any]:
        waiting = await ask(erl_peer.node, (A("spawn_waiting"),))
        ref = otp.monitor(waiting)
        otp.send(waiting, (A("exit"), A("boom")))
        down = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=5)
        ref = otp.monitor(("nobody", erl_peer.node))
        missing = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=5)

        async def victim() -> None:
            await otp.receive(lambda m: m == "go")
            otp.exit("bye")

        pid = otp.spawn(victim)
        await ask(erl_peer.node, (A("monitor"), pid, otp.self()))
        await otp.receive(lambda m: type(m) is tuple and m[0] == "monitoring", timeout=5)
        otp.send(pid, "go")
        theirs = await otp.receive(lambda m: type(m) is tuple and m[0] == "down", timeout=5)
        return (down.pid == waiting, down.reason), missing.reason, theirs[1:]

    ours, missing, theirs = run(erl_peer, main)
    assert ours == (True, "boom")
    assert missing == "noproc"
    assert theirs[1] == "bye"


def test_links_both_ways(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, Any]:
        otp.process_flag("trap_exit", True)
        waiting = await ask(erl_peer.node, (A("spawn_waiting"),))
        otp.link(waiting)
        otp.send(waiting, (A("exit"), A("crashed")))
        exit_ = await otp.receive(lambda m: type(m) is otp.Exit, timeout=5)

        async def doomed() -> None:
            await otp.receive(lambda m: m == "go")
            otp.exit("doomed")

        pid = otp.spawn(doomed)
        await ask(erl_peer.node, (A("spawn_linked_to"), pid, otp.self()))
        otp.send(pid, "go")
        theirs = await otp.receive(lambda m: type(m) is tuple and m[0] == "linked_got", timeout=5)
        return (exit_.pid == waiting, exit_.reason), theirs[1]

    ours, theirs = run(erl_peer, main)
    assert ours == (True, "crashed")
    assert theirs[0] == "EXIT" and theirs[2] == "doomed"


def test_a_lost_node_fires_nodedown_links_and_monitors(erl_peer: ErlPeer, tmp_path: Path) -> None:
    name = f"doomed_{secrets.token_hex(3)}@127.0.0.1"
    peer = start_peer(tmp_path, erl_peer.epmd_port, erl_peer.cookie, name)

    async def main() -> tuple[Any, Any, Any]:
        otp.process_flag("trap_exit", True)
        monitor_node(name)
        waiting = await ask(name, (A("spawn_waiting"),))
        otp.link(waiting)
        ref = otp.monitor(waiting)
        stop_peer(peer)
        nodedown = await otp.receive(lambda m: type(m) is tuple and m[0] == "nodedown", 10)
        exit_ = await otp.receive(lambda m: type(m) is otp.Exit, timeout=5)
        down = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=5)
        return nodedown, exit_.reason, down.reason

    try:
        assert run(erl_peer, main) == (("nodedown", name), "noconnection", "noconnection")
    finally:
        stop_peer(peer)


def test_a_wrong_cookie_is_refused(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, list[str]]:
        return await ping(erl_peer.node), nodes()

    assert otp.run(main, name=python_node(), cookie="not-the-cookie") == ("pang", [])


def test_erlang_calls_allowed_python_functions_with_erpc(erl_peer: ErlPeer) -> None:
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    def fail(what: str) -> None:
        raise ValueError(what)

    async def main() -> tuple[Any, ...]:
        otp.dist.allow_rpc("py", "add", add)
        otp.dist.allow_rpc("py", "fail", fail)
        me = A(otp.self().node)
        summed = await ask(erl_peer.node, (A("erpc"), me, A("py"), A("add"), [[1, 2, 39]]))
        classic = await ask(erl_peer.node, (A("rpc"), me, A("py"), A("add"), [[1, 1]]))
        failed = await ask(erl_peer.node, (A("erpc"), me, A("py"), A("fail"), ["no"]))
        hidden = await ask(erl_peer.node, (A("erpc"), me, A("os"), A("system"), ["true"]))
        return summed, classic, failed, hidden

    summed, classic, failed, hidden = run(erl_peer, main)
    assert (summed, classic) == (42, 2)
    # erpc raises a remote error as error:{exception, Reason, Stack}
    assert failed == ("caught", "error", ("exception", ("ValueError", "no"), []))
    assert hidden[:2] == ("caught", "error") and hidden[2][:2] == ("exception", "undef")


def test_ticks_keep_an_idle_connection_and_a_silent_peer_times_out(
    erl_peer: ErlPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 2 s tick time on both sides, 3 idle seconds keep the connection (each side
    ticks); a peer that stops (SIGSTOP) is dropped with nodedown after about a tick time."""
    name = f"ticking_{secrets.token_hex(3)}@127.0.0.1"
    peer = start_peer(
        tmp_path, erl_peer.epmd_port, erl_peer.cookie, name, "-kernel", "net_ticktime", "2"
    )
    monkeypatch.setenv("OTP_TICKTIME", "2")

    async def main() -> tuple[Any, Any, Any]:
        monitor_node(name)
        assert await ping(name) == "pong"
        with contextlib.suppress(TimeoutError):  # 3 idle seconds: no nodedown meanwhile
            early = await otp.receive(lambda m: type(m) is tuple and m[0] == "nodedown", 3)
            return early, None, None
        alive = nodes()
        os.kill(peer.pid, signal.SIGSTOP)
        try:
            down = await otp.receive(lambda m: type(m) is tuple and m[0] == "nodedown", 10)
        finally:
            os.kill(peer.pid, signal.SIGCONT)
        return None, alive, (down, nodes())

    try:
        early, alive, (down, after) = run(erl_peer, main)
    finally:
        stop_peer(peer)
    assert early is None
    assert alive == [name]
    assert down == ("nodedown", name) and after == []


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a node certificate it signed (for 127.0.0.1), made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    ext = tmp / "node.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\nsubjectAltName=IP:127.0.0.1\n"
    )
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=otp-test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=node",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return tmp / "node.pem", tmp / "node.key", tmp / "ca.pem"


def test_tls_distribution_with_erlang_both_ways(
    erl_peer: ErlPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the TLS test makes its certificates with openssl")
    cert, key, ca = _certificates(tmp_path)
    options = ", ".join(
        f'{{{side}, [{{certfile, "{cert}"}}, {{keyfile, "{key}"}}, '
        f'{{cacertfile, "{ca}"}}, {{verify, verify_peer}}{extra}]}}'
        for side, extra in (("server", ", {fail_if_no_peer_cert, true}"), ("client", ""))
    )
    (tmp_path / "ssl_dist.conf").write_text(f"[{options}].\n")
    name = f"tls_{secrets.token_hex(3)}@127.0.0.1"
    peer = start_peer(
        tmp_path,
        erl_peer.epmd_port,
        erl_peer.cookie,
        name,
        "-proto_dist",
        "inet_tls",
        "-ssl_dist_optfile",
        str(tmp_path / "ssl_dist.conf"),
    )
    monkeypatch.setenv("OTP_DIST_CERTFILE", str(cert))
    monkeypatch.setenv("OTP_DIST_KEYFILE", str(key))
    monkeypatch.setenv("OTP_DIST_CACERTFILE", str(ca))

    async def main() -> tuple[Any, Any, Any]:
        ours = await GenServer.call(("echo_srv", name), A("over_tls"))
        theirs = await ask(name, (A("ping"), A(otp.self().node)))
        return ours, theirs, nodes()

    try:
        assert run(erl_peer, main) == (("echo", "over_tls"), "pong", [name])
    finally:
        stop_peer(peer)


def test_a_call_that_times_out_leaves_no_late_reply(erl_peer: ErlPeer) -> None:
    async def main() -> tuple[Any, Any, list[Any]]:
        server = ("echo_srv", erl_peer.node)
        try:
            await GenServer.call(server, (A("sleep"), 200), timeout=0.05)
        except otp.CallTimeout as e:
            timed_out = e.reason
        after = await GenServer.call(server, A("next"))  # the late reply arrived meanwhile
        return timed_out, after, list(otp.gen.current().mbox or ())

    timed_out, after, left = run(erl_peer, main)
    assert (timed_out, after) == ("timeout", ("echo", "next"))
    assert left == []
