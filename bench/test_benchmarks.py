"""pytest-benchmark versions of the workloads: `pytest bench/` (each kernel workload next to
its bare-asyncio baseline, in one group). `python bench/compare.py` prints the ratios."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import workloads as w

Workload = Callable[..., Coroutine[Any, Any, Any]]

CASES = [
    ("send_receive", 100_000, w.bare_send_receive, w.otp_send_receive),
    ("round_trip", 20_000, w.bare_round_trip, w.otp_round_trip),
    ("gen_call", 20_000, w.bare_gen_call, w.otp_gen_call),
    ("gen_call_queued", 20_000, w.bare_gen_call, w.otp_gen_call_queued),
    ("spawn_idle", 20_000, w.bare_spawn_idle, w.otp_spawn_idle),
    ("spawn_exit", 20_000, w.bare_spawn_exit, w.otp_spawn_exit),
    ("exit_propagation", 10_000, w.bare_exit_propagation, w.otp_exit_propagation),
]


@pytest.mark.parametrize(("group", "n", "bare", "kernel"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("side", ["bare", "otp"])
def test_workload(
    benchmark: Any, group: str, n: int, bare: Workload, kernel: Workload, side: str
) -> None:
    benchmark.group = group
    if side == "bare":
        benchmark.pedantic(w.run_bare, args=(bare, n), rounds=5, iterations=1)
    else:
        benchmark.pedantic(w.run_otp, args=(kernel, n), rounds=5, iterations=1)


def test_upgrade(benchmark: Any) -> None:
    """A module run by 1,000 GenServers upgraded (`otp.code.upgrade`). The whole node run is
    timed, as for the cases above; the upgrade's own figures go to `extra_info`."""
    benchmark.group = "upgrade"
    run = benchmark.pedantic(w.run_otp, args=(w.otp_upgrade, 1000), rounds=5, iterations=1)
    benchmark.extra_info.update(
        processes=run.processes,
        upgrade_seconds=run.seconds,
        longest_pause=run.longest_pause,
        probe_gap=run.probe_gap,
        loop_stall=run.loop_stall,
        gc_seconds=run.gc_seconds,
    )
