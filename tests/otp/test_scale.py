"""Many processes: spawned, exited and gone without a trace."""

from __future__ import annotations

import asyncio
import gc

import otp
from otp import _node
from otp.testing import assert_receive

N = 100_000


async def test_100_000_processes_spawn_exit_and_leave_nothing_behind(node: object) -> None:
    async def worker(parent: otp.Pid) -> None:
        msg = await otp.receive()
        otp.send(parent, msg)

    tasks_before = len(asyncio.all_tasks())
    me = otp.self()
    pids = [otp.spawn(worker, me) for _ in range(N)]
    assert len(otp.processes()) == N + 1
    for i, pid in enumerate(pids):
        otp.send(pid, i)
    total = 0
    for _ in range(N):
        total += await otp.receive()
    assert total == N * (N - 1) // 2
    # every worker has finished: its exit is recorded before its reply is read
    assert otp.processes() == [me]
    assert not any(otp.is_alive(p) for p in pids)
    assert all(p._proc is None for p in pids)
    del pids
    await asyncio.sleep(0)
    gc.collect()
    assert len(asyncio.all_tasks()) <= tasks_before
    node_state = _node.get()
    assert list(node_state.procs) == [me.id] and node_state.names == {}


async def test_10_000_linked_processes_all_die_with_the_hub(node: object) -> None:
    async def hub(parent: otp.Pid, n: int) -> None:
        async def spoke() -> None:
            await otp.receive(lambda m: False)

        for _ in range(n):
            otp.spawn_link(spoke)
        otp.send(parent, "ready")
        await otp.receive(lambda m: m == "crash")
        raise RuntimeError("hub crashed")

    otp.process_flag("trap_exit", True)
    with otp.testing.capture_reports() as reports:
        hub_pid = otp.spawn_link(hub, otp.self(), 10_000)
        await assert_receive("ready")
        assert len(otp.processes()) == 10_002
        otp.send(hub_pid, "crash")
        exit_msg = await assert_receive(otp.Exit)
    assert isinstance(exit_msg.reason, RuntimeError) and len(reports) == 1
    for _ in range(3):
        await asyncio.sleep(0)
    assert otp.processes() == [otp.self()]
