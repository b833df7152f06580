"""A demonitor that empties a process's monitor tables frees them: a started server keeps
no empty table from its start's monitor, and monitoring again still works."""

from __future__ import annotations

import otp
from behaviours import GenServer
from otp.gen import current
from otp.testing import assert_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


class Idle(GenServer[None]):
    def init(self, arg: None) -> None:
        return None


async def test_demonitor_of_the_last_monitor_leaves_no_table(node: object) -> None:
    pid = otp.spawn(idle)
    first, second = otp.monitor(pid), otp.monitor(pid)
    otp.demonitor(first)
    info = otp.process_info(pid)
    assert info is not None and info.monitored_by == (otp.self(),)
    otp.demonitor(second)
    assert current().monitors is None and pid._proc is not None and pid._proc.watchers is None
    ref = otp.monitor(pid)  # (a table is made again)
    otp.exit(pid, "done")
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, "done")


async def test_a_started_server_keeps_no_table_from_its_start(node: object) -> None:
    pid = await Idle.start()
    assert pid is not None and pid._proc is not None
    assert pid._proc.watchers is None and current().monitors is None
    await GenServer.stop(pid)
