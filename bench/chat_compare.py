"""The chat service against the same server on bare asyncio, several rounds in one run.

    python bench/chat_compare.py [--rounds 3] [--clients 1000] [--rooms 50] [--seconds 4]

`make demo` measures each server once; on a machine shared with other work one round can
be off. This runs them in turns (bare asyncio, then the framework, each on a fresh
process) with the same load generator (`apps/chat/loadgen.py`, closed loop), and prints
each round, the median of each, and their ratio: delivered messages per second, and the
server's CPU time per delivered message (which other work on the machine disturbs less).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.chat.demo import cpu_seconds  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 30.0
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.05)


def measure(server: list[str], port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start `server`, run the load's closed loop against it, stop it: the phase's summary
    with the server's CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(server, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=None)
    try:
        wait_listening(port, proc)
        load = [sys.executable, "-m", "apps.chat.loadgen", "--port", str(port)]
        load += ["--clients", str(args.clients), "--rooms", str(args.rooms)]
        gen = subprocess.Popen(
            [*load, "--phase", f"max:{args.seconds}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert gen.stdout is not None
        phase: dict[str, Any] = {}
        started = None
        for raw in gen.stdout:
            event = json.loads(raw)
            if event["event"] == "phase":
                started = cpu_seconds(proc.pid)
            elif event["event"] == "phase_done":
                used = cpu_seconds(proc.pid)
                phase = event
                if started is not None and used is not None:
                    phase["us_per_delivery"] = (used - started) * 1e6 / max(event["delivered"], 1)
            elif event["event"] == "report" and (event["lost"] or event["dropped"]):
                raise RuntimeError(f"lost {event['lost']}, dropped {event['dropped']}")
        gen.wait()
        gen.stdout.close()
        return phase
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {"bare asyncio": [], "framework": []}
    run_dir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    for n in range(args.rounds):
        port = free_port()
        bare = [sys.executable, str(ROOT / "bench" / "chat_asyncio.py"), "--port", str(port)]
        rows["bare asyncio"].append(measure(bare, port, args))
        port = free_port()
        node = [sys.executable, "-m", "otp.cli", "run", "apps.chat.app:app"]
        node += ["--name", f"chat_bench_{os.getpid()}", "--set", f"chat.port={port}"]
        node += ["--log-level", "warning", "--run-dir", str(run_dir / "run")]
        rows["framework"].append(measure(node, port, args))
        for name, runs in rows.items():
            last = runs[-1]
            print(
                f"round {n + 1}  {name:<13} {last['delivered_per_s']:>9,} delivered msgs/s  "
                f"{last.get('us_per_delivery', float('nan')):.2f} us CPU per delivery"
            )
    shutil.rmtree(run_dir, ignore_errors=True)
    medians = {
        name: (
            statistics.median(r["delivered_per_s"] for r in runs),
            statistics.median(r.get("us_per_delivery", float("nan")) for r in runs),
        )
        for name, runs in rows.items()
    }
    (bare_rate, bare_cpu), (ours_rate, ours_cpu) = medians["bare asyncio"], medians["framework"]
    print(f"median  bare asyncio  {bare_rate:>9,.0f} msgs/s  {bare_cpu:.2f} us/delivery")
    print(f"median  framework     {ours_rate:>9,.0f} msgs/s  {ours_cpu:.2f} us/delivery")
    print(
        f"ratio   throughput {ours_rate / bare_rate:.2f}x (target >= 0.7x), "
        f"CPU per delivery {bare_cpu / ours_cpu:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
