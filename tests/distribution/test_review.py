"""Reproductions of defects found in review of the distribution layer (otp/dist).

Most tests run one Python node (`otp.run`, embedded EPMD on a free port) against a bare
peer in the same event loop (`FakePeer`: the handshake of otp.dist's own `_handshake`, then
raw pass-through frames), so that a test controls exactly which control messages the node
sees and records exactly which ones it sends. Tests marked with `erl_peer` run against a real
`erl`. Each test fails now and passes once its defect is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import pytest

import otp
from behaviours import GenServer
from otp.dist import Atom, _epmd, _handshake, etf, monitor_node
from otp.dist._api import ping

from .conftest import ErlPeer, python_node

A = Atom
COOKIE = "review-cookie"
_NONE = object()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> int:
    """The node under test runs the embedded EPMD on a free port."""
    port = _free_port()
    monkeypatch.setenv("ERL_EPMD_PORT", str(port))
    monkeypatch.setenv("OTP_EPMD", "embedded")
    return port


class FakePeer:
    """A bare distribution peer in the node's own event loop."""

    def __init__(self, alive: str, cookie: str = COOKIE, creation: int = 7) -> None:
        self.name = f"{alive}@127.0.0.1"
        self.cookie = cookie
        self.creation = creation
        self.frames: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self.up = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.status = "ok"
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._reg: _epmd.Registration | None = None
        self._writers: list[asyncio.StreamWriter] = []  # every socket, closed by close()

    def pid(self, n: int) -> otp.Pid:
        return otp.Pid(self.name, n, 0, self.creation)

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self._reg = await _epmd.register(self.name.split("@")[0], port)

    async def _admit(self, peer: str) -> str:
        return self.status

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            await _handshake.accept(
                reader,
                writer,
                name=self.name,
                creation=self.creation,
                cookie=self.cookie,
                admit=self._admit,
            )
        except _handshake.HandshakeError:
            writer.close()
            return
        self.writer = writer
        self.up.set()
        await self._read(reader)

    async def dial(self, node: str) -> None:
        """Connect to `node` ourselves (as the initiator)."""
        alive, _, host = node.partition("@")
        entry = await _epmd.port_please(alive, host)
        assert entry is not None
        reader, writer = await asyncio.open_connection(host, entry.port)
        self._writers.append(writer)
        await _handshake.initiate(
            reader,
            writer,
            name=self.name,
            creation=self.creation,
            cookie=self.cookie,
            expected=node,
        )
        self.writer = writer
        self.up.set()
        task = asyncio.get_running_loop().create_task(self._read(reader))
        self._tasks.add(task)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (size,) = struct.unpack(">I", await reader.readexactly(4))
                if size == 0:
                    continue
                data = await reader.readexactly(size)
                control, at = etf.decode_from(data, 1, binaries="str")
                message = etf.decode_from(data, at, binaries="str")[0] if at < len(data) else _NONE
                self.frames.put_nowait((control, message))

    def send(self, control: Any, message: Any = _NONE) -> None:
        assert self.writer is not None
        body = etf.encode(control) + (b"" if message is _NONE else etf.encode(message))
        self.writer.write(struct.pack(">I", len(body) + 1) + b"p" + body)

    async def expect(self, op: int, timeout: float = 3.0) -> tuple[Any, Any]:
        """The next frame the node sent with operation `op` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                control, message = await self.frames.get()
                if control[0] == op:
                    return control, message

    def drop(self) -> None:
        """Lose the connection (as a crashed peer would)."""
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None

    def close(self) -> None:
        self.drop()
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
        if self._reg is not None:
            self._reg.close()
        for task in self._tasks:
            task.cancel()


def run(main: Any, *args: Any, cookie: str = COOKIE) -> Any:
    try:
        return otp.run(main, *args, name=python_node(), cookie=cookie, shutdown_timeout=1.0)
    finally:
        gc.collect()  # finalizers now, not while pytest formats a failure


_count = itertools.count()


async def _peer(alive: str = "fake") -> FakePeer:
    peer = FakePeer(f"{alive}{next(_count)}_{os.getpid()}")
    await peer.listen()
    return peer


# -- 1. links and monitors to a node that cannot be reached ------------------------------------


def test_monitor_of_a_process_on_an_unreachable_node_gets_down_noconnection(
    embedded: int,
) -> None:
    """erlang:monitor(process, {x, Node}) with Node unreachable: DOWN noconnection at once
    (erts: the auto-connect fails, the monitor fires). Here it is never delivered, and the
    entry stays in `dist.monitors` forever."""

    async def main() -> Any:
        ref = otp.monitor(("x", "nobody_here@127.0.0.1"))
        down = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=5)
        return down.reason, len(otp._node.get().dist.monitors)

    assert run(main) == ("noconnection", 0)


def test_link_to_a_process_on_an_unreachable_node_gets_exit_noconnection(embedded: int) -> None:
    """link(Pid) with Pid's node unreachable: exit signal noconnection (erlang:link/1 doc)."""

    async def main() -> Any:
        otp.process_flag("trap_exit", True)
        gone = otp.Pid("nobody_here@127.0.0.1", 40, 0, 3)
        otp.link(gone)
        got = await otp.receive(lambda m: type(m) is otp.Exit, timeout=5)
        return got.pid == gone, got.reason

    assert run(main) == (True, "noconnection")


# -- 2. calls ------------------------------------------------------------------------------------


def test_a_call_whose_connection_is_lost_fails_with_nodedown(embedded: int) -> None:
    """gen:do_call: `{'DOWN', Mref, _, _, noconnection} -> exit({nodedown, Node})`, as
    otp._call.failed_reason does for local calls. dist.call raises reason 'noconnection'."""

    async def main() -> Any:
        peer = await _peer()
        me = otp.self()
        try:

            async def caller() -> None:
                try:
                    await GenServer.call(("srv", peer.name), "hello", timeout=5)
                except otp.CallError as e:
                    otp.send(me, ("result", e.reason))

            otp.spawn(caller)
            await peer.expect(6)  # the request arrived
            peer.drop()
            got = await otp.receive(lambda m: type(m) is tuple and m[0] == "result", 5)
            return got[1], peer.name
        finally:
            peer.close()

    reason, name = run(main)
    assert reason == ("nodedown", name)


def test_send_request_to_a_server_of_another_node_reaches_it(embedded: int) -> None:
    """gen_server:send_request/2 works with {Name, Node} (gen:send_request monitors and
    sends, as call does). Here `_call.send_request` never leaves the node: it answers at once
    with a Down 'noconnection' and nothing is sent."""

    async def main() -> Any:
        peer = await _peer()
        try:
            req = GenServer.send_request(("srv", peer.name), "hello")
            _, request = await peer.expect(6)  # REG_SEND {'$gen_call', From, hello}
            caller, tag = request[1]
            peer.send((22, peer.pid(1), caller), (tag, "world"))
            return await GenServer.receive_response(req, timeout=3)
        finally:
            peer.close()

    assert run(main) == "world"


# -- 3. monitor_node -----------------------------------------------------------------------------


def test_monitor_node_delivers_no_nodeup(embedded: int) -> None:
    """erlang:monitor_node/2 only ever delivers {nodedown, Node}; {nodeup, Node} comes from
    net_kernel:monitor_nodes/1 alone. `Distribution._up` sends ('nodeup', node) to every
    monitor_node watcher: a stray message in the process's mailbox."""

    async def main() -> Any:
        peer = await _peer()
        try:
            monitor_node(peer.name)
            assert await ping(peer.name) == "pong"
            await asyncio.sleep(0.1)
            return list(otp.gen.current().mbox or ())
        finally:
            peer.close()

    assert run(main) == []


def test_monitor_node_of_a_process_that_ended_is_forgotten(embedded: int) -> None:
    """A node monitor belongs to its process: Erlang drops it when the process exits.
    Here `dist.node_monitors` keeps the pid of every process that ever called monitor_node
    until the peer goes down (a leak on a long-lived connection)."""

    async def main() -> Any:
        peer = await _peer()
        try:
            assert await ping(peer.name) == "pong"

            async def watcher() -> None:
                monitor_node(peer.name)

            for _ in range(20):
                otp.spawn(watcher)
            await asyncio.sleep(0.1)
            return len(otp._node.get().dist.node_monitors.get(peer.name, []))
        finally:
            peer.close()

    assert run(main) == 0


def test_monitor_node_of_this_node_sends_nothing(embedded: int) -> None:
    """erts monitor_node/3: `if (dep == erts_this_dist_entry) goto done;` - monitoring the
    local node is a no-op returning true. Here the node dials itself (EPMD lookup, a TCP
    connection, a handshake its own `_admit` refuses with not_allowed) and then delivers
    ('nodedown', own name) to the caller."""

    async def main() -> Any:
        monitor_node(otp.self().node)
        with contextlib.suppress(TimeoutError):
            return await otp.receive(timeout=1)
        return "nothing"

    assert run(main) == "nothing"


# -- 4. the link protocol ------------------------------------------------------------------------


def test_a_link_signal_that_crosses_our_unlink_does_not_relink(embedded: int) -> None:
    """erl_dist_protocol.md, Link Protocol: "A LINK signal is received - ... If the link
    information already exists, the signal is silently ignored, regardless of whether the
    active flag is set or not" (an unlink is outstanding until its UNLINK_ID_ACK). Here the
    unlink forgets the link at once, so a LINK that crossed our UNLINK_ID makes a new one:
    the peer ends with no link, we with one, and a later connection loss kills our process
    with noconnection."""

    async def main() -> Any:
        peer = await _peer()
        try:
            otp.process_flag("trap_exit", True)
            remote = peer.pid(5)
            otp.link(remote)
            await peer.expect(1)  # LINK
            otp.unlink(remote)
            (_, unlink_id, _, _), _ = await peer.expect(35)  # UNLINK_ID
            # the peer linked again before it saw our UNLINK_ID: its LINK, then its ack
            peer.send((1, remote, otp.self()))
            peer.send((36, unlink_id, remote, otp.self()))
            await asyncio.sleep(0.2)
            peer.drop()
            with contextlib.suppress(TimeoutError):
                got = await otp.receive(lambda m: type(m) is otp.Exit, timeout=1)
                return got.reason
            return "not linked"
        finally:
            peer.close()

    assert run(main) == "not linked"


def test_exit_with_a_binary_reason_kill_is_trappable(erl_peer: ErlPeer) -> None:
    """exit(Pid, <<"kill">>) is an ordinary exit signal: only the atom kill is untrappable
    (erlang:exit/2). Binaries decode as str in the dist layer and atoms become str in
    `_local_reason`, so a binary <<"kill">> kills a process that traps exits."""

    async def main() -> Any:
        me = otp.self()

        async def trapper() -> None:
            otp.process_flag("trap_exit", True)
            got = await otp.receive(lambda m: type(m) is otp.Exit, timeout=5)
            otp.send(me, ("trapped", got.reason))

        pid = otp.spawn(trapper)
        ref = otp.monitor(pid)
        tag = otp.make_ref()
        otp.send(("control", erl_peer.node), (me, tag, (A("exit"), pid, b"kill")))
        got = await otp.receive(
            lambda m: (
                (type(m) is tuple and m[0] == "trapped") or (type(m) is otp.Down and m.ref == ref)
            ),
            timeout=5,
        )
        return "killed" if type(got) is otp.Down else "trapped"

    assert run(main, cookie=erl_peer.cookie) == "trapped"


# -- 5. exit reasons that have no Erlang term ------------------------------------------------------


@pytest.mark.parametrize(
    "reason", [("shutdown", {1, 2}), "a str reason longer than an atom may be " * 8]
)
def test_a_process_linked_across_nodes_that_ends_with_an_unencodable_reason_still_ends(
    embedded: int, reason: Any
) -> None:
    """`process_ended` encodes the reason for the remote link inside `_signals.terminate`:
    a reason with no Erlang term (a set; a str reason, which `_reason` makes an atom,
    longer than 255 characters) raises ETFError there, after the pid was freed and before
    the process's local links and monitors fire: its local monitor never gets a Down, and
    the process stays in `node.procs` (the node's shutdown waits for it, then gives up)."""

    async def main() -> Any:
        peer = await _peer()
        try:

            async def doomed() -> None:
                otp.link(peer.pid(3))
                await asyncio.sleep(0.1)
                otp.exit(reason)

            pid = otp.spawn(doomed)
            ref = otp.monitor(pid)
            down = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=3)
            return down.reason
        finally:
            peer.close()

    assert run(main) == reason


# -- 6. message order while connecting -----------------------------------------------------------


def test_messages_queued_while_connecting_keep_their_order_on_a_simultaneous_connect(
    embedded: int,
) -> None:
    """Erlang keeps the order of signals between two processes. A message sent while the
    node dials is queued in `_queued` until `_connect` ends; when the peer's own connection
    wins a simultaneous connect, `_up` makes it usable at once, so a later message goes out
    before the queued one (here M2 arrives before M1)."""

    async def main() -> Any:
        peer = FakePeer(f"zz{next(_count)}_{os.getpid()}")  # the greater name: its connection wins
        me = otp.self().node

        async def admit(_: str) -> str:
            await peer.dial(me)  # its own connect to us, accepted as ok_simultaneous
            await asyncio.sleep(0.2)
            return "nok"

        peer._admit = admit  # type: ignore[method-assign,assignment]
        await peer.listen()
        try:
            otp.send(("srv", peer.name), "M1")  # dials; M1 waits in _queued
            while peer.name not in otp.dist.nodes():
                await asyncio.sleep(0)
            otp.send(("srv", peer.name), "M2")
            return [(await peer.expect(6))[1] for _ in range(2)]
        finally:
            peer.close()

    assert run(main) == ["M1", "M2"]


# -- 7. a malformed or hostile peer ----------------------------------------------------------------


def test_a_link_from_a_pid_of_another_node_is_refused(embedded: int) -> None:
    """erts (dist.c, DOP_LINK): `if (dep != external_pid_dist_entry(from)) goto
    invalid_message;` - a peer may only link from its own pids, and the connection that
    sends anything else is dropped. Here peer A links one of our processes to a pid of
    node B; when our process ends the node connects to B, a node it was never asked to
    reach, and sends it an exit signal (a peer steers our node's connections)."""

    async def main() -> Any:
        a, b = await _peer("a"), await _peer("b")
        try:
            assert await ping(a.name) == "pong"

            async def victim() -> None:
                await otp.receive(lambda m: m == "go")
                otp.exit("boom")

            pid = otp.spawn(victim)
            a.send((1, b.pid(9), pid))  # LINK From=B's pid, To=ours, over A's connection
            await asyncio.sleep(0.2)
            otp.send(pid, "go")
            await asyncio.sleep(0.5)
            return b.up.is_set(), b.frames.qsize()
        finally:
            a.close()
            b.close()

    assert run(main) == (False, 0)


def test_a_spawn_request_from_something_that_is_not_a_pid_cannot_break_process_exit(
    embedded: int,
) -> None:
    """SPAWN_REQUEST's From is not checked (erts: `if (is_not_external_pid(from) ||
    dep != external_pid_dist_entry(from)) goto invalid_message`). With the monitor option
    the atom lands in the new process's watchers; when it ends, `process_ended` does
    `watcher.node` on it: AttributeError inside `_signals.terminate`, which leaves the
    process in `node.procs` for ever (and a node shutdown waiting on it)."""

    async def main() -> Any:
        peer = await _peer()
        try:
            assert await ping(peer.name) == "pong"
            node = otp._node.get()
            before = set(node.procs)
            peer.send(
                (
                    29,
                    otp.make_ref(),
                    A("not_a_pid"),
                    peer.pid(0),
                    (A("erpc"), A("execute_call"), 4),
                    [A("monitor")],
                ),
                [otp.make_ref(), A("py"), A("nothing"), []],
            )
            await asyncio.sleep(0.5)
            return sorted(set(node.procs) - before)
        finally:
            peer.close()

    assert run(main) == []


def test_a_peer_that_does_not_read_cannot_make_the_node_buffer_without_bound(
    embedded: int,
) -> None:
    """Erlang suspends a sender on a busy distribution port (dist_buf_busy_limit, 1 MiB by
    default) and the design asks for "drain and backpressure". `Connection._flush` writes
    without ever draining: a peer that stops reading makes the node buffer everything sent
    to it (here 96 MiB) in memory."""

    async def main() -> Any:
        peer = await _peer()
        try:
            assert await ping(peer.name) == "pong"
            await asyncio.sleep(0.1)
            assert peer.writer is not None
            peer.writer.transport.pause_reading()  # type: ignore[attr-defined]
            chunk = b"x" * (1024 * 1024)
            for _ in range(96):
                otp.send(("sink", peer.name), chunk)
                await asyncio.sleep(0)
            await asyncio.sleep(0.2)
            conn = otp._node.get().dist.conns.get(peer.name)
            if conn is None:  # dropped as too slow: bounded too
                return 0
            return conn._writer.transport.get_write_buffer_size()
        finally:
            peer.close()

    assert run(main) < 32 * 1024 * 1024


def test_an_rpc_whose_result_has_no_erlang_term_answers_the_caller(erl_peer: ErlPeer) -> None:
    """The same ETFError as above on erpc's path: a function exposed with allow_rpc returns
    a value with no Erlang term (a set); its process's exit reason cannot be encoded in
    `process_ended`, so erpc:call never gets an answer (it times out after 5 s) and the
    process stays in `node.procs`. The caller should get an error at once."""

    def give_set() -> Any:
        return {1, 2}

    async def main() -> Any:
        otp.dist.allow_rpc("py", "give_set", give_set)
        me = A(otp.self().node)
        tag = otp.make_ref()
        what: tuple[Any, ...] = (A("erpc"), me, A("py"), A("give_set"), [])
        otp.send(("control", erl_peer.node), (otp.self(), tag, what))
        try:
            got = await otp.receive(lambda m: type(m) is tuple and m[0] == tag, timeout=3)
        except TimeoutError:
            return "no answer within 3 s"
        return got[1][:2]

    assert run(main, cookie=erl_peer.cookie) == ("caught", "error")


# -- 8. EPMD -------------------------------------------------------------------------------------


def _outside_addresses() -> list[str]:
    """This host's addresses that are not loopback (found by routing, no packet sent)."""
    found: list[str] = []
    for probe in ("192.0.2.1", "172.17.0.2", "10.255.255.1", "192.168.255.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
            except OSError:
                continue
            address = str(s.getsockname()[0])
        if not address.startswith("127.") and address not in found:
            found.append(address)
    return found


def test_the_embedded_epmd_takes_registrations_from_local_addresses_only() -> None:
    """epmd_srv.c (conn_open): "Only 127.x.x.x and connections from the host's IP address
    allowed" (the peer's address is loopback or the address it connected to), and
    `case EPMD_ALIVE2_REQ: if (!s->local_peer) { "ALIVE2_REQ from non local address";
    return; }`. The embedded EPMD listens on the distribution's host (0.0.0.0 with
    OTP_DIST_LISTEN=0.0.0.0:PORT) and registers any name from any address: another host
    can take a name, or point it at a port of its own."""
    addresses = _outside_addresses()
    if len(addresses) < 2:
        pytest.skip("needs two addresses that are not loopback (one plays another host)")
    target, other_host = addresses[:2]

    async def main() -> Any:
        epmd = _epmd.EmbeddedEpmd()
        port = await epmd.start(0, "0.0.0.0")
        try:
            reader, writer = await asyncio.open_connection(target, port, local_addr=(other_host, 0))
            name = b"intruder"
            body = struct.pack(">BHBBHHH", 120, 4242, 72, 0, 6, 6, len(name)) + name + b"\0\0"
            writer.write(struct.pack(">H", len(body)) + body)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(6), 2)
            registered = "intruder" in epmd.nodes
            writer.close()
            return "registered" if registered else "refused"
        finally:
            epmd.close()

    assert asyncio.run(main()) == "refused"


# -- 9. more control messages --------------------------------------------------------------------


def test_a_spawn_request_with_a_trace_token_keeps_its_options(embedded: int) -> None:
    """SPAWN_REQUEST_TT is `{30, ReqId, From, GroupLeader, {M, F, A}, OptList, Token}`
    (erl_dist_protocol.md): the options are element 6, the token is last. `_spawn_request`
    reads the options as `control[-1]`, the token, so an erpc:call made with a sequential
    trace token loses its `monitor` option: the SPAWN_REPLY says no monitor (flags 0) and
    the result, which travels in the monitor's DOWN, never comes."""

    async def main() -> Any:
        otp.dist.allow_rpc("py", "one", lambda: 1)
        peer = await _peer()
        try:
            assert await ping(peer.name) == "pong"
            req, tag = otp.make_ref(), otp.make_ref()
            mfa = (A("erpc"), A("execute_call"), 4)
            token = (0, A("label"), 0, peer.pid(1), 0)
            peer.send(
                (30, req, peer.pid(1), peer.pid(0), mfa, [A("monitor")], token),
                [tag, A("py"), A("one"), []],
            )
            (_, _, _, flags, _), _ = await peer.expect(31)  # SPAWN_REPLY
            try:
                _, reason = await peer.expect(28, timeout=1)  # the result, in the DOWN
            except TimeoutError:
                reason = None
            return flags, reason
        finally:
            peer.close()

    flags, reason = run(main)
    assert flags == 2 and reason is not None and reason[1:] == ("return", 1)


def test_unlink_after_the_link_went_down_does_not_reconnect(embedded: int) -> None:
    """erl_dist_protocol.md: "an UNLINK_ID signal is only sent if there currently exists an
    active link". After a connection loss removed the link, `Distribution.unlink` still
    routes an UNLINK_ID, and `_route` dials the node again just to carry it."""

    async def main() -> Any:
        peer = await _peer()
        try:
            otp.process_flag("trap_exit", True)
            remote = peer.pid(5)
            otp.link(remote)
            await peer.expect(1)
            peer.drop()
            await otp.receive(lambda m: type(m) is otp.Exit, timeout=3)
            peer.up.clear()
            otp.unlink(remote)
            await asyncio.sleep(0.5)
            return peer.up.is_set(), otp.dist.nodes()
        finally:
            peer.close()

    assert run(main) == (False, [])


# -- 10. starting ----------------------------------------------------------------------------------


def test_a_name_taken_in_the_system_epmd_is_reported_as_taken(epmd_port: int) -> None:
    """With OTP_EPMD=auto (the default) and a system EPMD that answers but refuses the
    name (a node of that name runs), `start_distribution` takes the refusal for "no EPMD"
    and starts an embedded EPMD on the system EPMD's own port: the user gets "[Errno 98]
    address already in use" instead of EpmdError's "is a node of that name already
    running?", and the listener of the second attempt is never closed (ResourceWarning;
    under `-W error` the run then hangs in loop.close, hence the subprocess here)."""
    alive = f"taken_{os.getpid()}"
    holder = None
    for _ in range(50):  # the EPMD daemon may still be starting
        try:
            holder = socket.create_connection(("127.0.0.1", epmd_port))
            break
        except OSError:
            time.sleep(0.1)
    assert holder is not None
    try:
        name = alive.encode()
        body = struct.pack(">BHBBHHH", 120, 4242, 72, 0, 6, 6, len(name)) + name + b"\0\0"
        holder.sendall(struct.pack(">H", len(body)) + body)
        assert holder.recv(2)[1] == 0  # registered: the name is taken
        script = (
            "import otp\n"
            "async def main(): return 1\n"
            f"otp.run(main, name='{alive}@127.0.0.1', cookie='c')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(os.environ, ERL_EPMD_PORT=str(epmd_port), OTP_EPMD="auto"),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert out.returncode != 0
    assert "already running" in out.stderr and "address already in use" not in out.stderr


def test_the_acceptor_takes_a_version_5_name_from_an_otp_23_node(embedded: int) -> None:
    """An OTP 23/24 node that does not use EPMD opens with the old `'n'` send_name
    (`'n', Version:16, Flags:32, Name`) and HANDSHAKE_23 in its flags; dist_util:recv_name
    accepts it (fixed in OTP 25.3), and the design (distribution.md §1, Handshake v6) asks
    to "accept them, never send them". `_handshake._accept` answers `not_allowed`."""

    async def main() -> Any:
        name = otp.self().node
        alive, _, host = name.partition("@")
        entry = await _epmd.port_please(alive, host)
        assert entry is not None
        reader, writer = await asyncio.open_connection(host, entry.port)
        try:
            me = f"old{next(_count)}_{os.getpid()}@127.0.0.1".encode()
            flags = _handshake.FLAGS & 0xFFFFFFFF
            hello = b"n" + struct.pack(">HI", 6, flags) + me
            writer.write(struct.pack(">H", len(hello)) + hello)
            (size,) = struct.unpack(">H", await reader.readexactly(2))
            return await reader.readexactly(size)
        finally:
            writer.close()

    assert run(main) == b"sok"
