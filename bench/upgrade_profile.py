"""Where a hot code upgrade's time goes: a module run by 10,000 GenServers, upgraded.

    python bench/upgrade_profile.py [PROCESSES] [--top N] [--gc-off]

Runs the upgrade workload of `workloads.otp_upgrade` twice, with no other load:
- traced: when each process handled its suspend, its code change and its resume (as ms
  from the upgrade's start), and the pause each process saw (its suspend to its resume);
- under cProfile, enabled for the upgrade only: time by source file, the functions that
  dominate, and the upgrade's own steps (cumulative). Times under the profiler are inflated;
  compare them with each other, not with the traced run. The garbage collector's time is
  charged to whichever function allocated when it ran: `--gc-off` profiles without it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import workloads as w

ROOT = Path(__file__).resolve().parents[1]

# The upgrade's own steps, by (the end of the file's path, the function's name); reported
# with their cumulative time when the profile has them.
STEPS = [
    ("otp/code/__init__.py", "upgrade"),
    ("otp/code/_server.py", "perform"),
    ("otp/code/_server.py", "_load"),
    ("otp/code/_modules.py", "install"),
    ("otp/code/_server.py", "_each"),
    ("otp/_call.py", "send_request"),
    ("otp/_call.py", "wait_any"),
    ("otp/_call.py", "settle"),
    ("otp/_mailbox.py", "receive"),
    ("otp/_mailbox.py", "deliver"),
    ("otp/sys.py", "handle"),
    ("behaviours/gen_server.py", "system_code_change"),
    ("otp/code/_modules.py", "snapshot"),
    ("copy.py", "deepcopy"),
    ("otp/code/_modules.py", "target_class"),
    ("behaviours/gen_server.py", "switch"),
    ("behaviours/gen_server.py", "bind"),
    ("behaviours/gen_server.py", "_unbound"),
    ("behaviours/gen_server.py", "serve"),
    ("behaviours/gen_server.py", "wait_message"),
]


def area(filename: str) -> str:
    """A profile entry's file, shortened: relative to the repository, or the stdlib module."""
    if filename == "~":
        return "(built-in functions and methods)"
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def traced(n: int) -> None:
    run = w.run_otp(w.otp_upgrade, n, 0, True)
    print(f"traced upgrade of {n:,} processes: {run.seconds * 1000:.0f} ms in all (report)")
    print(f"  {'step (ms from the upgrade start)':<40} {'first':>8} {'last':>8}")
    for kind, label in (
        ("upgrade_code", "processes suspend and change code"),
        ("resume", "processes handle resume"),
    ):
        times = run.marks.get(kind, {}).values()
        if times:
            print(f"  {label:<40} {min(times) * 1000:8.1f} {max(times) * 1000:8.1f}")
    print(f"  {'the upgrade returns':<40} {'':>8} {run.wall * 1000:8.1f}")
    pauses = run.pauses()
    if pauses:
        p50 = pauses[len(pauses) // 2]
        print(
            f"  each process's pause: min {pauses[0] * 1000:.1f} ms, p50 {p50 * 1000:.1f} ms,"
            f" max {pauses[-1] * 1000:.1f} ms"
            f" (the report's longest pause: {run.longest_pause * 1000:.1f} ms)"
        )
    print(f"  longest event-loop stall: {run.loop_stall * 1000:.1f} ms")
    print(
        f"  garbage collector: {run.gc_seconds * 1000:.1f} ms,"
        f" {run.gc_collections} collections by generation"
    )


def profiled(n: int, top: int, gc_off: bool) -> None:
    profiler = cProfile.Profile()
    if gc_off:
        gc.disable()
    try:
        run = w.run_otp(w.otp_upgrade, n, 0, False, profiler)
    finally:
        gc.enable()
    stats = pstats.Stats(profiler)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values())
    print()
    print(
        f"cProfile, upgrade of {n:,} processes: {run.seconds * 1000:.0f} ms under the profiler,"
        f" {total * 1000:.0f} ms of profiled time; garbage collector "
        + (
            "off"
            if gc_off
            else f"{run.gc_seconds * 1000:.0f} ms, {run.gc_collections} by generation"
        )
    )
    by_area: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tt, _, _) in entries.items():
        by_area[area(filename)] += tt
    print(f"  {'own time by file':<58} {'ms':>8} {'share':>6}")
    for name, tt in sorted(by_area.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {name:<58} {tt * 1000:8.1f} {tt / total:6.1%}")
    print()
    print(f"  {'functions by own time':<58} {'calls':>8} {'ms':>8} {'share':>6}")
    ranked = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, func), (_, nc, tt, _, _) in ranked:
        label = f"{area(filename)}:{line} {func}" if filename != "~" else func
        print(f"  {label[:58]:<58} {nc:8,} {tt * 1000:8.1f} {tt / total:6.1%}")
    print()
    print(f"  {'steps, cumulative (nested steps overlap)':<58} {'calls':>8} {'ms':>8} {'share':>6}")
    for suffix, name in STEPS:
        found = [
            (nc, ct)
            for (filename, _, func), (_, nc, _, ct, _) in entries.items()
            if func == name and filename.replace("\\", "/").endswith(suffix)
        ]
        if found:
            nc = sum(f[0] for f in found)
            ct = max(f[1] for f in found)
            print(f"  {f'{suffix} {name}':<58} {nc:8,} {ct * 1000:8.1f} {ct / total:6.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("processes", nargs="?", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--gc-off", action="store_true", help="profile without the collector")
    args = parser.parse_args()
    traced(args.processes)
    profiled(args.processes, args.top, args.gc_off)
    return 0


if __name__ == "__main__":
    sys.exit(main())
