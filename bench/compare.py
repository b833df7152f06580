"""Kernel vs. bare asyncio baseline, same process, same uvloop: prints the ratios.

    python bench/compare.py [--quick] [--cpu]

Each workload runs several times, alternating baseline and kernel; the best time of each
side is kept. Ratios are "kernel as a fraction of the baseline's speed" (higher is better)
except for spawn time (kernel time / baseline time, lower is better).

The hot code upgrade has no baseline: its columns are the figures of the upgrade's own report
and the same measured apart (probes calling servers, a 1 ms timer, a trace of each process's
system messages); under a steady call load, the calls' latency before and during it.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
from collections.abc import Callable
from typing import Any

import workloads as w

import otp.ops


def best_of(repeats: int, bare: Callable[[], Any], kernel: Callable[[], Any]) -> tuple[Any, Any]:
    bare_runs, kernel_runs = [], []
    for _ in range(repeats):
        bare_runs.append(bare())
        kernel_runs.append(kernel())
    key = (lambda r: r[0]) if isinstance(bare_runs[0], tuple) else (lambda r: r)
    return min(bare_runs, key=key), min(kernel_runs, key=key)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def row(name: str, bare: str, kernel: str, ratio: str, target: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<34} {bare:>14} {kernel:>14} {ratio:>8} {target:>10}  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, fewer repeats")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time with the process's CPU time, not the wall clock: steadier on a machine "
        "whose cores other work shares (each run is one thread either way)",
    )
    args = parser.parse_args()
    wall = w.time.perf_counter
    if args.cpu:
        w.time.perf_counter = w.time.process_time
    scale = 10 if args.quick else 1
    repeats = 2 if args.quick else 5

    clock = "CPU time" if args.cpu else "wall clock"
    print(
        f"Python {platform.python_version()} on {platform.machine()}, uvloop, best of "
        f"{repeats}, {clock}"
    )
    row("workload", "baseline", "kernel", "ratio", "target", None)
    missed = 0

    def throughput(name: str, n: int, bare: Any, kernel: Any, target: float) -> None:
        nonlocal missed
        b, k = best_of(repeats, lambda: w.run_bare(bare, n), lambda: w.run_otp(kernel, n))
        ratio = b / k
        ok = ratio >= target
        missed += not ok
        row(name, f"{n / b:,.0f}/s", f"{n / k:,.0f}/s", f"{ratio:.2f}x", f">= {target}x", ok)

    throughput(
        "send+receive, 1M msgs",
        1_000_000 // scale,
        w.bare_send_receive,
        w.otp_send_receive,
        0.6,
    )
    throughput(
        "request/reply (send + ref receive)",
        100_000 // scale,
        w.bare_round_trip,
        w.otp_round_trip,
        0.5,
    )

    def idle(name: str, n: int, floor: Any, kernel: Any, most_bytes: int) -> None:
        """`n` waiting processes made by `kernel` against as many made by `floor` on bare
        tasks: the time (at most 1.5x the floor's), then the bytes per process (at most
        `most_bytes`)."""
        nonlocal missed
        b, k = best_of(repeats, lambda: w.run_bare(floor, n), lambda: w.run_otp(kernel, n))
        ratio = k[0] / b[0]
        ok = ratio <= 1.5
        missed += not ok
        row(
            f"{name} {n:,} idle (time)",
            f"{b[0] * 1000:.0f} ms",
            f"{k[0] * 1000:.0f} ms",
            f"{ratio:.2f}x",
            "<= 1.5x",
            ok,
        )
        bt = w.run_bare(floor, n, True)
        kt = w.run_otp(kernel, n, True)
        ok = kt[1] <= most_bytes
        missed += not ok
        row(
            "  memory/process (tracemalloc)",
            f"{bt[1]:,.0f} B",
            f"{kt[1]:,.0f} B",
            f"{kt[1] / bt[1]:.2f}x",
            f"<= {most_bytes:,} B",
            ok,
        )
        row(
            "  memory/process (RSS)",
            f"{b[2]:,.0f} B",
            f"{k[2]:,.0f} B",
            f"{k[2] / max(b[2], 1):.2f}x",
            "",
            None,
        )

    idle("spawn", 100_000 // scale, w.bare_spawn_idle, w.otp_spawn_idle, 2500)
    # A start waits for its server's init: the floor is a bare task that acknowledges its
    # start before it waits, each start awaited in turn.
    idle("GenServer start", 100_000 // scale, w.bare_gen_start_idle, w.otp_gen_start_idle, 2300)

    n = 100_000 // scale
    b, k = best_of(
        repeats, lambda: w.run_bare(w.bare_spawn_exit, n), lambda: w.run_otp(w.otp_spawn_exit, n)
    )
    row(
        f"spawn+exit {n:,} short-lived",
        f"{n / b:,.0f}/s",
        f"{n / k:,.0f}/s",
        f"{b / k:.2f}x",
        "",
        None,
    )

    n = 10_000 // scale
    b, k = best_of(
        repeats,
        lambda: w.run_bare(w.bare_exit_propagation, n),
        lambda: w.run_otp(w.otp_exit_propagation, n),
    )
    row(
        f"exit propagation, {n:,} links",
        f"{b * 1000:.1f} ms",
        f"{k * 1000:.1f} ms",
        f"{b / k:.2f}x",
        "",
        None,
    )

    print()
    print("GenServer")
    # A plain handle_call of an idle server runs in the caller's turn (see the performance
    # guide); a call the server takes in its own turn (an async handle_call) is below, also
    # against bare tasks that follow OTP's call protocol (a monitor for the call, a tagged
    # request, the reply a message taken by its tag while the alias stands).
    throughput("call round trip", 100_000 // scale, w.bare_gen_call, w.otp_gen_call, 0.7)
    n = 100_000 // scale
    for label, floor in (
        ("  in the server's turn (async)", w.bare_gen_call),
        ("    vs bare tasks, OTP's protocol", w.bare_protocol_call),
    ):
        b, k = best_of(
            repeats,
            lambda floor=floor: w.run_bare(floor, n),  # type: ignore[misc]
            lambda: w.run_otp(w.otp_gen_call_queued, n),
        )
        row(label, f"{n / b:,.0f}/s", f"{n / k:,.0f}/s", f"{b / k:.2f}x", "", None)

    def versus(name: str, count: int, before: Any, after: Any, target: float | None) -> None:
        """Two workloads of the framework in the same run: `after` as a share of `before`."""
        nonlocal missed
        first, second = best_of(repeats, lambda: w.run_otp(*before), lambda: w.run_otp(*after))
        ratio = first / second
        ok = None if target is None else ratio >= target
        missed += ok is False
        shown = "" if target is None else f">= {target}x"
        row(name, f"{count / first:,.0f}/s", f"{count / second:,.0f}/s", f"{ratio:.2f}x", shown, ok)

    versus(
        f"  metrics on (1 call in {otp.ops.CALL_SAMPLE} timed)",
        n,
        (w.otp_gen_call, n),
        (w.otp_gen_call_metrics, n),
        0.9,
    )
    versus(
        "  metrics on, every call timed",
        n,
        (w.otp_gen_call, n),
        (w.otp_gen_call_metrics, n, 1),
        None,
    )
    versus(
        "  traces on, 100% sampled",
        n,
        (w.otp_gen_call, n),
        (w.otp_gen_call_traced, n, 1.0),
        None,
    )
    versus(
        "  otp top --sort time sampling",
        n,
        (w.otp_gen_call, n),
        (w.otp_gen_call_sampled_top, n),
        None,
    )
    versus(
        "  by via name (vs a registered name)",
        n,
        (w.otp_gen_call_named, n),
        (w.otp_gen_call_named, n, True),
        round(1 / 1.3, 2),
    )
    throughput("cast x 1M, then a call", 1_000_000 // scale, w.bare_gen_cast, w.otp_gen_cast, 0.7)
    n = 1_000_000 // scale
    versus(
        "  bounded mailbox, never full (vs unbounded)",
        n,
        (w.otp_gen_cast, n),
        (w.otp_gen_cast_bounded, n),
        0.95,
    )
    versus(
        "GenStatem cast -> NextState (vs GenServer)",
        n,
        (w.otp_gen_cast, n),
        (w.otp_statem_cast, n),
        0.8,
    )
    rounds = 20 if scale == 1 else 4
    versus(
        "Registry.dispatch to 1,000 (vs 1,000 sends)",
        rounds * w.FANOUT_SERVERS,
        (w.otp_dispatch, rounds),
        (w.otp_dispatch, rounds, True),
        round(1 / 1.5, 2),
    )
    rounds = 100 // (scale if scale == 1 else 5)
    b, k = best_of(
        repeats, lambda: w.run_bare(w.bare_fanout, rounds), lambda: w.run_otp(w.otp_fanout, rounds)
    )
    ratio = b / k
    ok = ratio >= 0.7
    missed += not ok
    casts = rounds * w.FANOUT_SERVERS
    row(
        f"fan-out: 1,000 servers x {rounds} rounds",
        f"{casts / b:,.0f}/s",
        f"{casts / k:,.0f}/s",
        f"{ratio:.2f}x",
        ">= 0.7x",
        ok,
    )
    each = 1000 // scale
    b, k = best_of(  # (the runs with the lowest mean latency)
        repeats,
        lambda: w.run_bare(w.bare_call_latency, each),
        lambda: w.run_otp(w.otp_call_latency, each),
    )
    for label, i in (("mean", 0), ("p50", 1), ("p99", 2)):
        ok = None if label != "p99" else k[i] / b[i] <= 2.0
        missed += ok is False
        row(
            f"call latency, 100 callers: {label}",
            f"{b[i] * 1e6:,.0f} us",
            f"{k[i] * 1e6:,.0f} us",
            f"{k[i] / b[i]:.2f}x",
            "<= 2x" if label == "p99" else "",
            ok,
        )

    print()
    print("Supervisors")
    n = 1000 // scale
    bp, kp = best_of(  # (the runs with the lowest p50)
        repeats,
        lambda: percentiles(w.run_bare(w.bare_restart_latency, n)),
        lambda: percentiles(w.run_otp(w.otp_restart_latency, n)),
    )
    ratio = kp[0] / bp[0]
    ok = ratio <= 2.0
    missed += not ok
    row(
        f"restart latency p50 ({n:,} crashes)",
        f"{bp[0] * 1e6:,.0f} us",
        f"{kp[0] * 1e6:,.0f} us",
        f"{ratio:.2f}x",
        "<= 2x",
        ok,
    )
    row(
        "restart latency p99",
        f"{bp[1] * 1e6:,.0f} us",
        f"{kp[1] * 1e6:,.0f} us",
        f"{kp[1] / bp[1]:.2f}x",
        "",
        None,
    )
    # References for the same crash/restart/which_children/call round: the protocol alone
    # on bare tasks, and Erlang/OTP itself when `erl` is installed.
    same = min(percentiles(w.run_bare(w.bare_protocol_restart_latency, n)) for _ in range(repeats))
    row(
        "  vs bare tasks, OTP's protocol",
        f"{same[0] * 1e6:,.0f} us",
        f"{kp[0] * 1e6:,.0f} us",
        f"{kp[0] / same[0]:.2f}x",
        "",
        None,
    )
    erlang = w.erlang_restart_latency(n)
    if erlang is None:
        print("  vs Erlang/OTP: erl not installed (apt-get install erlang-base)")
    else:
        row(
            f"  vs Erlang/OTP {erlang[2]}, one scheduler",
            f"{erlang[0] * 1e6:,.0f} us",
            f"{kp[0] * 1e6:,.0f} us",
            f"{kp[0] / erlang[0]:.2f}x",
            "",
            None,
        )
    small = w.run_otp(w.otp_dynamic_churn, 1000)
    big = w.run_otp(w.otp_dynamic_churn, 100_000 // scale)
    row("DynamicSupervisor start+stop, 1,000", "", f"{small * 1e6:,.1f} us/child", "", "", None)
    row(
        f"DynamicSupervisor start+stop, {100_000 // scale:,}",
        "",
        f"{big * 1e6:,.1f} us/child",
        f"{big / small:.2f}x",
        "flat",
        None,
    )
    # What grows with the number of live children is CPython's full collections, which
    # walk every tracked object; the runtime's own cost per child is the same run without them.
    gc.disable()
    try:
        bare_small = w.run_otp(w.otp_dynamic_churn, 1000)
        bare_big = w.run_otp(w.otp_dynamic_churn, 100_000 // scale)
    finally:
        gc.enable()
    row(
        "  the same, garbage collector off",
        f"{bare_small * 1e6:,.1f} (1,000)",
        f"{bare_big * 1e6:,.1f} us/child",
        f"{bare_big / bare_small:.2f}x",
        "",
        None,
    )
    width = 100 if scale == 1 else 30
    elapsed, count = w.run_otp(w.otp_tree_shutdown, width)
    row(f"shut down a tree of {count:,} processes", "", f"{elapsed * 1000:,.0f} ms", "", "", None)

    w.time.perf_counter = wall  # an upgrade's pauses are waits: the wall clock's
    missed += hot_code_upgrade(10_000 // scale, repeats)

    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


def duration(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.001 else f"{seconds * 1000:,.1f} ms"


def hot_code_upgrade(n: int, repeats: int) -> int:
    """The upgrade of a module run by `n` GenServers (`otp.code.upgrade`): its total and the
    longest pause, from its report and measured apart; then the same under a steady call
    load, with the calls' latency before and during the upgrade. Returns the targets missed."""
    print()
    print(f"Hot code upgrade: a module run by {n:,} GenServers (suspend, code_change, resume)")
    row("", "report", "measured", "", "target", None)
    runs = [w.run_otp(w.otp_upgrade, n) for _ in range(repeats)]
    best = min(runs, key=lambda r: r.seconds)
    missed = 0
    ok = best.seconds < 1.0
    missed += not ok
    row(
        f"upgrade {n:,} processes: total",
        duration(best.seconds),
        f"{duration(best.wall)} wall",
        "",
        "< 1 s",
        ok,
    )
    ok = best.longest_pause < 0.010
    missed += not ok
    row(
        "  longest pause of a process",
        duration(best.longest_pause),
        f"{duration(best.probe_gap)} probe",
        "",
        "< 10 ms",
        ok,
    )
    row("  longest event-loop stall", "", duration(best.loop_stall), "", "", None)
    full = best.gc_collections[2]
    row("  in the garbage collector", "", duration(best.gc_seconds), f"{full} full", "", None)
    pauses = w.run_otp(w.otp_upgrade, n, 0, True).pauses()  # each process's own, traced
    p50, _ = percentiles(pauses)
    row("  pause per process, traced: p50", "", duration(p50), "", "", None)
    row("  pause per process, traced: max", "", duration(pauses[-1]), "", "", None)

    loaded = w.run_otp(w.otp_upgrade, n, w.UPGRADE_CLIENTS)
    clients, rate = w.UPGRADE_CLIENTS, loaded.calls_per_second()
    row(f"load: {clients} clients, {rate:,.0f} calls/s", "before", "during", "ratio", "", None)
    before, during = loaded.latencies("before"), loaded.latencies("during")
    for label, i in (("p50", 0), ("p99", 1)):
        b, d = percentiles(before)[i], percentiles(during)[i]
        row(f"  call latency {label}", duration(b), duration(d), f"{d / b:,.0f}x", "", None)
    row("  calls measured", f"{len(before):,}", f"{len(during):,}", "", "", None)
    row(
        "  upgrade total, longest pause",
        duration(loaded.seconds),
        duration(loaded.longest_pause),
        "",
        "",
        None,
    )
    return missed


if __name__ == "__main__":
    sys.exit(main())
