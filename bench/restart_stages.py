"""Where a supervisor restart's time goes, stage by stage (median of 2,000 restarts).

    python bench/restart_stages.py

Runs once with the runtime's reports built (dropped by a NullHandler) and once with the
`otp` loggers off, so the cost of the report records shows apart.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import workloads as w

import otp
from behaviours import GenServer, Supervisor
from behaviours import supervisor as supervisor_module

marks: dict[str, float] = {}
_child_exited = supervisor_module._child_exited


async def _traced(state: Any, child: Any, reason: Any) -> Any:
    marks["exit_seen"] = time.perf_counter()
    result = await _child_exited(state, child, reason)
    marks["restarted"] = time.perf_counter()
    return result


async def main() -> None:
    otp.process_flag("trap_exit", True)
    sup = await Supervisor.start_link(
        [w.Crashy.child_spec(0, id="c")], intensity=10**6, period=3600
    )
    child = (await Supervisor.which_children(sup))[0].pid
    rows = []
    for _ in range(2000):
        t0 = time.perf_counter()
        ref = otp.monitor(child)
        GenServer.cast(child, "crash")
        await otp.receive(lambda m, ref=ref: type(m) is otp.Down and m.ref is ref)
        t1 = time.perf_counter()
        child = (await Supervisor.which_children(sup))[0].pid
        t2 = time.perf_counter()
        await GenServer.call(child, "ping")
        t3 = time.perf_counter()
        rows.append(
            (
                marks["exit_seen"] - t0,
                marks["restarted"] - marks["exit_seen"],
                t1 - t0,
                t2 - t1,
                t3 - t2,
                t3 - t0,
            )
        )
    names = [
        "crash -> supervisor sees Exit",
        "restart work",
        "crash -> client sees Down",
        "which_children",
        "call to the new child",
        "total",
    ]
    for i, name in enumerate(names):
        print(f"  {name:32} {statistics.median(r[i] for r in rows) * 1e6:6.1f} us")
    await GenServer.stop(sup, otp.SHUTDOWN)


if __name__ == "__main__":
    supervisor_module._child_exited = _traced
    w.quiet_reports()
    print("reports built:")
    otp.run(main)
    logging.getLogger("otp").setLevel(logging.CRITICAL + 1)
    print("reports off:")
    otp.run(main)
