"""Spawning, self, the node's lifecycle and bad input to spawn/receive."""

from __future__ import annotations

import asyncio
import gc
import math

import pytest

import otp
from otp.testing import assert_receive


async def reply_to(parent: otp.Pid, value: object) -> None:
    otp.send(parent, ("reply", otp.self(), value))


async def wait_forever() -> None:
    await otp.receive(lambda m: False)


async def test_spawn_runs_the_function_with_its_arguments(node: object) -> None:
    async def add(parent: otp.Pid, a: int, *, b: int) -> None:
        otp.send(parent, a + b)

    otp.spawn(add, otp.self(), 2, b=3)
    assert await assert_receive(int) == 5


async def test_spawn_returns_a_pid_that_is_the_child_self(node: object) -> None:
    pid = otp.spawn(reply_to, otp.self(), None)
    assert await assert_receive() == ("reply", pid, None)
    assert pid != otp.self()
    assert repr(pid) == f"<0.{pid.id}.0>"
    assert pid.node == "nonode@nohost"


async def test_pids_and_refs_are_hashable_values(node: object) -> None:
    a, b = otp.make_ref(), otp.make_ref()
    assert a != b and len({a, b, a}) == 2 and repr(a).startswith("#Ref<")
    me = otp.self()
    assert otp.Pid(me.node, me.id, me.serial, me.creation) == me
    assert {me: 1}[otp.Pid(me.node, me.id, me.serial, me.creation)] == 1


def test_self_outside_a_process_raises_no_process_error() -> None:
    with pytest.raises(otp.NoProcessError, match="not called from a process"):
        otp.self()


async def take_one() -> object:
    return await otp.receive()


def test_receive_outside_a_process_raises_no_process_error() -> None:
    with pytest.raises(otp.NoProcessError, match="outside a process"):
        asyncio.run(take_one())


async def test_receive_in_a_task_that_is_not_a_process_raises(node: object) -> None:
    task = asyncio.get_running_loop().create_task(take_one())
    with pytest.raises(otp.NoProcessError):
        await task


def test_spawn_with_no_node_running_raises() -> None:
    with pytest.raises(otp.NoProcessError, match=r"otp\.run"):
        otp.spawn(wait_forever)


async def test_spawn_of_a_plain_function_says_to_use_async_def(node: object) -> None:
    def plain() -> None:
        pass

    before = otp.processes()
    with pytest.raises(TypeError, match="async def"):
        otp.spawn(plain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        otp.spawn_link(42)  # type: ignore[arg-type]
    assert otp.processes() == before


async def test_spawn_of_a_coroutine_object_says_what_to_write(node: object) -> None:
    before = otp.processes()
    with pytest.raises(TypeError, match=r"instead of spawn\(wait_forever\(arg1, \.\.\.\)\)"):
        otp.spawn(wait_forever())  # type: ignore[arg-type]
    gc.collect()  # the coroutine was closed: no "never awaited" warning (warnings are errors)
    assert otp.processes() == before


async def test_spawn_accepts_async_callables_of_every_shape(node: object) -> None:
    import functools

    class Worker:
        async def __call__(self, parent: otp.Pid) -> None:
            otp.send(parent, "callable")

        async def method(self, parent: otp.Pid) -> None:
            otp.send(parent, "method")

    otp.spawn(Worker(), otp.self())
    otp.spawn(Worker().method, otp.self())
    otp.spawn(functools.partial(reply_to, otp.self()), "partial")
    got = {await assert_receive(), await assert_receive(), await assert_receive()}
    assert {"callable", "method"} <= got


def test_run_returns_what_main_returns() -> None:
    async def main(x: int) -> int:
        return x * 2

    assert otp.run(main, 21) == 42
    assert otp.run(main, 4, loop="asyncio") == 8


def test_run_reraises_the_exception_main_ended_with() -> None:
    async def main() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        otp.run(main)


def test_run_raises_exit_error_when_main_is_killed_by_a_link() -> None:
    async def crasher() -> None:
        raise ValueError("linked crash")

    async def main() -> None:
        otp.spawn_link(crasher)
        await otp.receive()

    with pytest.raises(otp.ExitError) as info:
        otp.run(main)
    assert isinstance(info.value.reason, ValueError)
    assert isinstance(info.value.__cause__, ValueError)


def test_run_returns_none_when_main_exits_normal() -> None:
    async def main() -> None:
        otp.exit(otp.NORMAL)

    assert otp.run(main) is None


def test_run_rejects_bad_arguments() -> None:
    async def main() -> None:
        pass

    with pytest.raises(ValueError, match="loop="):
        otp.run(main, loop="trio")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        otp.run(print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node name"):
        otp.run(main, name="a@b@c")


def test_run_cannot_be_nested() -> None:
    async def main() -> str:
        async def inner() -> None:
            pass

        with pytest.raises(RuntimeError, match="already running"):
            otp.run(inner)
        return "ok"

    assert otp.run(main) == "ok"


def test_run_shuts_down_processes_left_running_with_shutdown() -> None:
    seen: list[object] = []

    async def trapper(parent: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        otp.send(parent, "ready")
        seen.append(await otp.receive())

    async def main() -> otp.Pid:
        for _ in range(3):
            otp.spawn(wait_forever)
        otp.spawn(trapper, otp.self())
        await otp.receive()
        return otp.self()

    main_pid = otp.run(main)
    assert len(seen) == 1
    msg = seen[0]
    assert isinstance(msg, otp.Exit) and msg.reason == otp.SHUTDOWN
    assert msg.pid.id == 0 and msg.pid != main_pid


def test_run_kills_a_process_that_ignores_shutdown_after_the_timeout() -> None:
    ended: list[object] = []

    async def stubborn(parent: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        otp.send(parent, "ready")
        try:
            while True:
                await otp.receive()
        finally:
            ended.append("ended")

    async def main() -> None:
        otp.spawn(stubborn, otp.self())
        await otp.receive()

    otp.run(main, shutdown_timeout=0.05)
    assert ended == ["ended"]


def test_nothing_carries_over_between_two_runs() -> None:
    async def main() -> tuple[otp.Pid, list[otp.Pid], list[str]]:
        otp.register("main", otp.self())
        otp.spawn(wait_forever)
        return otp.self(), otp.processes(), otp.registered()

    first, procs1, names1 = otp.run(main)
    second, procs2, names2 = otp.run(main)
    assert first.id == second.id and first != second
    assert len(procs1) == len(procs2) == 2 and names1 == names2 == ["main"]
    assert otp.processes() == [] and otp.registered() == []


def test_a_process_finishes_within_its_node_when_main_returns_at_once() -> None:
    async def main() -> None:
        otp.spawn(wait_forever)

    otp.run(main)
    otp.run(main)


async def test_send_after_with_infinite_delay_never_fires(node: object) -> None:
    tref = otp.send_after(math.inf, otp.self(), "never")
    assert otp.cancel_timer(tref) is True
