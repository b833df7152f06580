"""Applications for the ops endpoint's tests (`otp run ... --ops-port 0`).

`demo` depends on `victim` (permanent: killing its supervisor stops the node) and runs a
child that crashes every 20 ms under a supervisor that never gives up, and a server whose
`terminate` takes 30 s, which holds the node in its "stopping" state for the tests to see.
`gated` starts only when it gets the message "open" (sent with `otp eval`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import otp
from behaviours import GenServer, NoReply, Reply, Supervisor


class Crasher(GenServer[None]):
    def init(self, arg: Any) -> None:
        otp.send_after(0.02, otp.self(), "crash")

    def handle_info(self, msg: Any, state: None) -> NoReply[None]:
        raise RuntimeError("crashing on purpose")


class SlowToStop(GenServer[int]):
    def init(self, arg: Any) -> int:
        otp.process_flag("trap_exit", True)
        return 0

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state, state + 1)

    async def terminate(self, reason: Any, state: int) -> None:
        await asyncio.sleep(30)


class DemoSup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(intensity=1_000_000, period=1.0), [
            Crasher.child_spec(id="crasher"),
            SlowToStop.child_spec(id="slow", name="slow", shutdown=60.0),
        ]


class VictimSup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), []


async def _demo(arg: Any) -> otp.Pid | None:
    return await DemoSup.start_link(name="demo_sup")


async def _victim(arg: Any) -> otp.Pid | None:
    return await VictimSup.start_link(name="victim_sup")


async def _gated(arg: Any) -> otp.Pid | None:
    otp.register("gate", otp.self())
    await otp.receive(lambda m: m == "open")
    otp.unregister("gate")
    return await VictimSup.start_link()


victim = otp.Application(name="victim", start=_victim)
demo = otp.Application(name="demo", start=_demo, applications=(victim,))
gated = otp.Application(name="gated", start=_gated)
