"""`otp run` and `otp tree`, timed for real in subprocesses.

    python bench/cli.py [PROCESSES]

Prints the node time to "started" for the sample application (3 applications, ~50
processes) and how long `otp tree` takes on a node with PROCESSES (default 100,000).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OTP = [sys.executable, "-m", "otp.cli"]


def start(spec: str, run_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    proc = subprocess.Popen(
        [*OTP, "run", spec, "--name", "bench", "--run-dir", str(run_dir)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"node \S+ started .* in ([0-9.]+) s", line)
        if found:
            return proc, float(found.group(1))
    raise SystemExit(f"the node did not start: {proc.wait()}")


def otp(run_dir: Path, *args: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(
        [*OTP, *args, "--name", "bench", "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return time.perf_counter() - t, out


def main() -> int:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        proc, started = start("tests.otp.sample_apps:chat", run_dir, {})
        _, status = otp(run_dir, "status")
        print(
            f"otp run tests.otp.sample_apps:chat: started in {started * 1000:.0f} ms of node time"
        )
        print("  " + status.splitlines()[1])
        otp(run_dir, "stop")
        proc.wait()

        proc, started = start("bench.big_app:app", run_dir, {"BIG_APP_PROCESSES": str(processes)})
        baseline, _ = otp(run_dir, "status")  # a command's fixed cost: interpreter and imports
        elapsed, out = otp(run_dir, "tree", "--json")
        readable, text = otp(run_dir, "tree")
        print(f"node with {processes:,} processes (started in {started:.1f} s)")
        print(f"  otp status:      {baseline * 1000:.0f} ms (command start-up included)")
        print(f"  otp tree --json: {elapsed * 1000:.0f} ms, {len(out) / 1e6:.1f} MB")
        print(f"  otp tree:        {readable * 1000:.0f} ms, {len(text.splitlines()):,} lines")
        otp(run_dir, "stop")
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
