"""The distribution against Erlang itself, in one run on this machine: prints the ratios.

    python bench/dist.py [--calls N] [--messages N]

Needs `erl`, `erlc` and `epmd` (Debian: apt-get install erlang-base). It starts an EPMD on a
free port, two `erl` nodes running tests/erl/otp_peer.erl, and Python nodes, all on loopback:

- gen_server call round trip, sequential: erl -> erl (the reference), Python -> erl,
  erl -> Python;
- one-way small messages from one Python node to another (an `otp run` subprocess), counted
  by the receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import otp  # noqa: E402
from behaviours import GenServer, NoReply, Reply  # noqa: E402
from otp.dist import Atom  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_erl(name: str, cookie: str, beams: str, epmd: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "erl",
            "-name",
            name,
            "-setcookie",
            cookie,
            "-noshell",
            "-pa",
            beams,
            "-kernel",
            "inet_dist_use_interface",
            "{127,0,0,1}",
            "-eval",
            'ok = otp_peer:start(), io:format("ready~n").',
        ],
        env=dict(os.environ, ERL_EPMD_PORT=str(epmd)),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


class Echo(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Reply[Any]:
        return Reply(request, state)


class Counter(GenServer[int]):
    def init(self, arg: Any) -> int:
        return 0

    def handle_info(self, msg: Any, count: int) -> NoReply[int]:
        return NoReply(count + 1)

    def handle_call(self, request: Any, from_: Any, count: int) -> Reply[int]:
        return Reply(count, count)


async def ask(peer: str, what: Any) -> Any:
    tag = otp.make_ref()
    otp.send(("control", peer), (otp.self(), tag, what))
    reply = await otp.receive(lambda m: type(m) is tuple and len(m) == 2 and m[0] == tag, 120)
    return reply[1]


async def calls(erl_a: str, erl_b: str, n: int) -> dict[str, float]:
    await Echo.start_link(None, name="echo")
    out: dict[str, float] = {}
    micros = await ask(erl_b, (Atom("bench_call"), (Atom("echo_srv"), Atom(erl_a)), n))
    out["erl -> erl"] = n / (micros / 1e6)
    server = ("echo_srv", erl_a)
    await GenServer.call(server, 0)  # connected
    start = time.perf_counter()
    for i in range(n):
        await GenServer.call(server, i)
    out["Python -> erl"] = n / (time.perf_counter() - start)
    me = Atom(otp.self().node)
    micros = await ask(erl_a, (Atom("bench_call"), (Atom("echo"), me), n))
    out["erl -> Python"] = n / (micros / 1e6)
    return out


async def one_way(peer: str, n: int) -> float:
    counter = ("counter", peer)
    await GenServer.call(counter, "count")  # connected, and the counter is there
    start = time.perf_counter()
    for i in range(n):
        otp.send(counter, i)
        if i % 1000 == 0:
            await asyncio.sleep(0)
    while await GenServer.call(counter, "count") < n:
        pass
    return n / (time.perf_counter() - start)


async def _counter_app(_: Any) -> otp.Pid | None:
    return await Counter.start(None, name="counter")


counter_app = otp.Application(name="counter", start=_counter_app)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    epmd = free_port()
    cookie = secrets.token_hex(8)
    subprocess.run(["epmd", "-address", "127.0.0.1", "-port", str(epmd), "-daemon"], check=True)
    os.environ["ERL_EPMD_PORT"] = str(epmd)
    procs: list[subprocess.Popen[Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["erlc", "-o", tmp, str(ROOT / "tests/erl/otp_peer.erl")], check=True)
            tag = secrets.token_hex(3)
            erl_a, erl_b = f"bench_a_{tag}@127.0.0.1", f"bench_b_{tag}@127.0.0.1"
            procs += [start_erl(erl_a, cookie, tmp, epmd), start_erl(erl_b, cookie, tmp, epmd)]
            rates = otp.run(
                calls, erl_a, erl_b, args.calls, name=f"bench_py_{tag}@127.0.0.1", cookie=cookie
            )
            peer = f"bench_counter_{tag}@127.0.0.1"
            node = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "otp.cli",
                    "run",
                    "bench.dist:counter_app",
                    "--name",
                    peer,
                    "--cookie",
                    cookie,
                    "--run-dir",
                    tmp,
                ],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append(node)
            assert node.stderr is not None
            for line in node.stderr:
                if "started" in line:
                    break
            sent = otp.run(
                one_way, peer, args.messages, name=f"bench_sender_{tag}@127.0.0.1", cookie=cookie
            )
    finally:
        for proc in procs:
            proc.kill()
        subprocess.run(["epmd", "-port", str(epmd), "-kill"], capture_output=True, check=False)
    base = rates["erl -> erl"]
    print(
        f"gen_server call round trip, sequential ({args.calls:,} calls; "
        f"Python {sys.version.split()[0]})"
    )
    for name, rate in rates.items():
        print(
            f"  {name:<14} {rate:>10,.0f} calls/s  {1e6 / rate:7.1f} us/call  "
            f"{rate / base:5.2f}x erl"
        )
    print(f"one-way messages Python -> Python ({args.messages:,}): {sent:,.0f} msgs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
