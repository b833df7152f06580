"""Task and TaskSupervisor, against Elixir's Task semantics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import otp
from behaviours import Agent, Task, TaskSupervisor
from otp.testing import assert_receive, refute_receive


async def forever() -> None:
    await otp.receive(lambda m: False)


async def test_async_and_await_give_the_result(node: object) -> None:
    async def double(n: int) -> int:
        return n * 2

    assert await Task.await_(Task.async_(double, 21)) == 42
    assert await Task.await_(Task.async_(sum, [1, 2, 3])) == 6  # a plain function too


async def test_a_timeout_kills_the_task_and_says_so(node: object) -> None:
    task = Task.async_(forever)
    with pytest.raises(otp.ExitError) as info:
        await Task.await_(task, 0.05)
    assert info.value.reason == otp.TIMEOUT and "was killed" in str(info.value)
    assert not otp.is_alive(task.pid)


async def test_a_crashing_task_takes_its_linked_caller_with_it(node: object) -> None:
    otp.process_flag("trap_exit", True)
    task = Task.async_(lambda: 1 / 0)
    with pytest.raises(otp.ExitError) as info:
        await Task.await_(task)
    assert isinstance(info.value.reason, ZeroDivisionError)
    await assert_receive(lambda m: type(m) is otp.Exit and m.pid == task.pid)


async def test_yield_and_shutdown(node: object) -> None:
    slow = Task.async_(forever)
    assert await Task.yield_(slow, 0.01) is None  # still running: it goes on
    assert otp.is_alive(slow.pid)
    assert await Task.shutdown(slow) is None
    assert not otp.is_alive(slow.pid)
    quick = Task.async_(lambda: "done")
    assert await Task.yield_(quick, 5.0) == ("ok", "done")
    finished = Task.async_(lambda: "kept")
    ref = otp.monitor(finished.pid)
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)  # it has answered
    assert await Task.shutdown(finished, "brutal_kill") == ("ok", "kept")


async def test_only_the_owner_reads_a_task(node: object) -> None:
    task = Task.async_(lambda: 1)
    me = otp.self()

    async def other() -> None:
        try:
            await Task.await_(task)
        except otp.ExitError as refused:
            otp.send(me, refused.reason)

    otp.spawn(other)
    assert await assert_receive(lambda m: type(m) is tuple and m[0] == "not_owner") == (
        "not_owner",
        me,
    )
    assert await Task.await_(task) == 1


async def test_async_stream_keeps_order_and_the_concurrency_limit(node: object) -> None:
    gauge = await Agent.start(lambda: (0, 0))  # (running now, most at once)

    async def work(n: int) -> int:
        await Agent.update(gauge, lambda s: (s[0] + 1, max(s[1], s[0] + 1)))
        for _ in range(n % 3):  # (let the others run: several are running at once)
            await asyncio.sleep(0)
        await Agent.update(gauge, lambda s: (s[0] - 1, s[1]))
        return n * n

    results = [r async for r in Task.async_stream(range(10), work, max_concurrency=3)]
    assert results == [("ok", n * n) for n in range(10)]
    assert 1 < (await Agent.get(gauge, lambda s: s))[1] <= 3  # some at once, never more
    unordered = [r async for r in Task.async_stream(range(5), work, ordered=False)]
    assert sorted(unordered) == [("ok", n * n) for n in range(5)]
    await Agent.stop(gauge)


async def test_async_stream_timeouts(node: object) -> None:
    async def maybe_forever(n: int) -> int:
        if n == 1:
            await forever()
        return n

    results = [
        r
        async for r in Task.async_stream(
            range(3), maybe_forever, timeout=0.05, on_timeout="kill_task"
        )
    ]
    assert results == [("ok", 0), ("exit", otp.TIMEOUT), ("ok", 2)]
    with pytest.raises(otp.ExitError) as info:
        async for _ in Task.async_stream(range(3), maybe_forever, timeout=0.05):
            pass
    assert info.value.reason == otp.TIMEOUT


async def test_async_nolink_keeps_the_caller_alive_when_the_task_crashes(node: object) -> None:
    sup: Any = await TaskSupervisor.start_link(name="jobs")
    task = await TaskSupervisor.async_nolink("jobs", lambda: 1 / 0)
    status, reason = await Task.yield_(task) or ("?", None)
    assert status == "exit" and isinstance(reason, ZeroDivisionError)
    ok = await TaskSupervisor.async_nolink(sup, lambda: "fine")
    assert await Task.await_(ok) == "fine"
    me = otp.self()
    await TaskSupervisor.start_child(sup, lambda: otp.send(me, "fired"))
    await assert_receive("fired")
    otp.unlink(sup)
    await Agent.stop(sup)


async def test_a_task_already_read_neither_hangs_await_nor_shutdown(node: object) -> None:
    task = Task.async_(lambda: 1)
    assert await Task.yield_(task) == ("ok", 1)
    with pytest.raises(otp.ExitError) as info:  # no second result: a timeout, not a hang
        await Task.await_(task, 0.01)
    assert info.value.reason == otp.TIMEOUT
    other = Task.async_(lambda: 2)
    assert await Task.await_(other) == 2
    assert await Task.shutdown(other, 0.05) == ("exit", otp.NOPROC)


async def test_leaving_a_stream_early_kills_its_tasks(node: object) -> None:
    from contextlib import aclosing

    me = otp.self()

    async def slow(n: int) -> int:
        otp.send(me, ("running", otp.self()))
        if n:
            await forever()
        return n

    async with aclosing(Task.async_stream(range(3), slow, max_concurrency=3, timeout=60)) as s:
        async for first in s:
            assert first == ("ok", 0)
            break  # with two tasks still running
    started = [(await assert_receive(lambda m: m[0] == "running"))[1] for _ in range(3)]
    assert not any(otp.is_alive(pid) for pid in started)
    with pytest.raises(ValueError, match="max_concurrency"):
        async for _ in Task.async_stream([1], slow, max_concurrency=0):
            pass


async def test_a_supervised_task_whose_owner_died_before_it_ran_does_not_run(node: object) -> None:
    sup: Any = await TaskSupervisor.start_link()
    me = otp.self()
    await otp.sys.suspend(sup)  # the owner's start request waits in the supervisor

    async def owner() -> None:
        await TaskSupervisor.async_nolink(sup, lambda: otp.send(me, "ran"))

    pid = otp.spawn(owner)
    ref = otp.monitor(pid)
    otp.exit(pid, otp.KILL)
    await assert_receive(otp.Down(ref, pid, otp.KILLED))
    await otp.sys.resume(sup)
    from behaviours import DynamicSupervisor

    while await DynamicSupervisor.which_children(sup):  # it started, saw its owner gone
        await asyncio.sleep(0)
    await refute_receive("ran", 0.01)
    otp.unlink(sup)
    await Agent.stop(sup)
