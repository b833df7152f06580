"""An application with many processes, for `bench/cli.py` (`otp tree` on a big node)."""

from __future__ import annotations

import os
from typing import Any

import otp
from behaviours import DynamicSupervisor, GenServer, Supervisor


class Idle(GenServer[int]):
    def init(self, n: int) -> int:
        return n


async def _start(count: int) -> otp.Pid | None:
    top = await Supervisor.start_link(
        [DynamicSupervisor.child_spec(name="pool", id="pool")], name="big_sup"
    )
    spec = Idle.child_spec(0, restart="temporary")
    for _ in range(count):
        await DynamicSupervisor.start_child("pool", spec)
    return top


def _count() -> int:
    return int(os.environ.get("BIG_APP_PROCESSES", "100000"))


async def start(arg: Any) -> otp.Pid | None:
    return await _start(_count())


app = otp.Application(name="big", vsn="1", description="many idle processes", start=start)
