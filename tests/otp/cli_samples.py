"""Applications for the command line's tests of `otp tree`, `otp eval` and `otp remote`."""

from __future__ import annotations

from typing import Any

import otp
from behaviours import ChildSpec, DynamicSupervisor, GenServer, Reply, Supervisor


class Worker(GenServer[int]):
    def init(self, n: int | None) -> int:
        return n or 0

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state + request, state + request)


class Pool(Supervisor):
    """A child whose id is its class, a registry, and a DynamicSupervisor with children."""

    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), [
            Worker,
            ChildSpec(id="names", start=(otp.Registry.start_link, "names")),
            DynamicSupervisor.child_spec(name="pool", id="pool"),
        ]


async def _start(_: Any) -> otp.Pid | None:
    sup = await Pool.start_link()
    await DynamicSupervisor.start_child("pool", Worker.child_spec(1, name="w1"))
    await DynamicSupervisor.start_child("pool", Worker.child_spec(2))
    await DynamicSupervisor.start_child("pool", Worker.child_spec(3, name=("via", "names", "w3")))
    return sup


pool = otp.Application(name="pool", start=_start)
