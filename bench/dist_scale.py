"""Past one core: the same service on 1 node and on 2 nodes of one host, clustered through
the embedded EPMD; the aggregate call throughput of 2 against 1.

    python bench/dist_scale.py [--seconds S] [--callers N] [--workers N]

A Python node is one core (the GIL); the way to use more is more nodes. Each node here runs a
DynamicSupervisor of workers (each call does a little CPU work, hashing 4 KiB) and callers.
Two layouts of a 2-node cluster: callers that call their own node's workers (work sharded by
node: the cluster's nodes share nothing per call), and callers that call the workers of every
node in turn (half the calls cross nodes). A coordinator node starts the run on every node at
once (remote calls) and adds up the calls they made.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
from behaviours import DynamicSupervisor, GenServer, Reply  # noqa: E402

PAYLOAD = b"x" * 4096


class Worker(GenServer[int]):
    def init(self, arg: Any) -> int:
        return 0

    def handle_call(self, request: Any, from_: Any, n: int) -> Reply[Any]:
        return Reply(hashlib.sha256(PAYLOAD).digest()[:4], n + 1)


class Driver(GenServer[None]):
    """Runs the load of this node: `("run", seconds, callers, nodes)` -> calls made."""

    def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[Any]:
        _, seconds, callers, nodes, spread = request
        here = otp.self().node
        targets = [
            (f"w{i}", node) if node != here else f"w{i}"
            for node in (nodes if spread else [here])
            for i in range(WORKERS)
        ]
        deadline = time.monotonic() + seconds
        me = otp.self()

        async def caller(k: int) -> None:
            n = 0
            i = k
            while time.monotonic() < deadline:
                await GenServer.call(targets[i % len(targets)], n)
                i += 1
                n += 1
            otp.send(me, ("made", n))

        for k in range(callers):
            otp.spawn_link(caller, k)
        made = 0
        for _ in range(callers):
            made += (await otp.receive(lambda m: type(m) is tuple and m[0] == "made"))[1]
        return Reply(made, state)


WORKERS = int(os.environ.get("SCALE_WORKERS", "8"))


async def _start(_: Any) -> otp.Pid | None:
    pool = await DynamicSupervisor.start_link(name="pool")
    for i in range(WORKERS):
        await DynamicSupervisor.start_child(pool, Worker.child_spec(name=f"w{i}"))
    await Driver.start(name="driver")
    return pool


scale_app = otp.Application(name="scale", start=_start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def coordinate(nodes: list[str], seconds: float, callers: int, spread: bool) -> float:
    for node in nodes:
        while await otp.dist.ping(node) != "pong":
            await asyncio.sleep(0.05)
    me = otp.self()

    async def run_on(node: str) -> None:
        request = ("run", seconds, callers, nodes, spread)
        made = await GenServer.call(("driver", node), request, 60)
        otp.send(me, ("done", made))

    for node in nodes:
        otp.spawn_link(run_on, node)
    total = 0
    for _ in nodes:
        total += (await otp.receive(lambda m: type(m) is tuple and m[0] == "done"))[1]
    return total / seconds


def cluster(n: int, seconds: float, callers: int, spread: bool, tmp: str, epmd: int) -> float:
    tag = secrets.token_hex(3)
    cookie = secrets.token_hex(8)
    env = dict(os.environ, ERL_EPMD_PORT=str(epmd), SCALE_WORKERS=str(WORKERS))
    procs = []
    names = [f"scale{i}_{tag}@127.0.0.1" for i in range(n)]
    try:
        for i, name in enumerate(names):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "otp.cli",
                        "run",
                        "bench.dist_scale:scale_app",
                        "--name",
                        name,
                        "--cookie",
                        cookie,
                        "--run-dir",
                        tmp,
                        "--epmd",
                        "embedded" if i == 0 else "system",
                    ],
                    cwd=ROOT,
                    env=env,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            stderr = procs[-1].stderr
            assert stderr is not None
            for line in stderr:
                if "started" in line:
                    break
        os.environ["ERL_EPMD_PORT"] = str(epmd)
        os.environ["OTP_EPMD"] = "system"
        return float(
            otp.run(
                coordinate,
                names,
                seconds,
                callers,
                spread,
                name=f"coord_{tag}@127.0.0.1",
                cookie=cookie,
            )
        )
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=16, help="callers on each node")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = cluster(1, args.seconds, args.callers, False, tmp, free_port())
        local = cluster(2, args.seconds, args.callers, False, tmp, free_port())
        spread = cluster(2, args.seconds, args.callers, True, tmp, free_port())
    print(f"calls/s, {os.cpu_count()} cores, {WORKERS} workers and {args.callers} callers a node:")
    print(f"  1 node                               : {one:>10,.0f}")
    print(f"  2 nodes, each calling its own workers: {local:>10,.0f}  ({local / one:.2f}x)")
    print(f"  2 nodes, calls spread over both      : {spread:>10,.0f}  ({spread / one:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
