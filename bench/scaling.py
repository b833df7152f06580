"""Cost per process as the node grows: spawn and GenServer start at 10k to 1M processes.

    python bench/scaling.py [--quick]

Each workload makes n waiting processes (`bench/workloads.py`): bare asyncio tasks with a
deque mailbox (the floor), `otp.spawn`, and `GenServer.start` one after the other (as a
supervisor starts its children). Each size runs in a fresh interpreter, so no size inherits
the heap, the collector's generations or the caches of the one before; the time comes from
one run, the bytes (tracemalloc) from another, since tracing slows the allocations it counts.
"flat" is the cost per process at that size over the cost at the smallest size: what grows
with the node, CPython's full collections walking every live process, shows there.

`--quick` stops at 100k processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import workloads as w

SIZES = (10_000, 100_000, 500_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
FLAT = 1.3  # issue 17: the cost per process at the largest size within 1.3x of the smallest

# name -> (workload, how it runs, its largest size)
WORKLOADS: dict[str, tuple[Callable[..., Coroutine[Any, Any, Any]], Callable[..., Any], int]] = {
    "floor: asyncio tasks": (w.bare_spawn_idle, w.run_bare, 1_000_000),
    "otp.spawn": (w.otp_spawn_idle, w.run_otp, 1_000_000),
    "GenServer.start": (w.otp_gen_start_idle, w.run_otp, 500_000),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 100k only")
    parser.add_argument(
        "--child", nargs=3, metavar=("WORKLOAD", "N", "TRACE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        name, n, trace = args.child
        workload, runner, _ = WORKLOADS[name]
        runner(_report, workload, int(n), trace == "1")
        return 0  # (not reached: _report ends the interpreter)
    sizes = QUICK_SIZES if args.quick else SIZES
    print(f"Python {platform.python_version()} on {platform.machine()}, uvloop")
    print(f"{'workload':<22} {'processes':>10} {'us/process':>11} {'flat':>6} {'B/process':>10}")
    missed = 0
    for name, (_, _, largest) in WORKLOADS.items():
        first = None
        for n in (n for n in sizes if n <= largest):
            seconds = _child(name, n, trace=False)[0]
            traced = _child(name, n, trace=True)[1]
            cost = seconds / n * 1e6
            first = first or cost
            flat = cost / first
            print(f"{name:<22} {n:>10,} {cost:>11.2f} {flat:>5.2f}x {traced:>10,.0f}")
        missed += not name.startswith("floor") and flat > FLAT
    print(f"target: flat <= {FLAT}x at the largest size (the floor is shown, not judged)")
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


def _child(name: str, n: int, *, trace: bool) -> list[float]:
    """One workload at one size in a fresh interpreter: its (seconds, traced bytes, RSS)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, str(n), "1" if trace else "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


async def _report(workload: Callable[..., Coroutine[Any, Any, Any]], n: int, trace: bool) -> None:
    """Run the workload, print its figures and end the interpreter at once: stopping a
    million processes is not what is measured, and would only make the run longer."""
    figures = await workload(n, trace)
    print(json.dumps(figures), flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
