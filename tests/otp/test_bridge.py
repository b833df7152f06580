"""otp.bridge: plain asyncio code on the node's loop calls, casts and sends like a process."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Reply
from otp.testing import assert_receive, capture_reports


class Store(GenServer[dict[str, Any]]):
    """Calls: ("get", key), ("put", key, value), ("hold", pid) (tells pid, never replies),
    ("crash", why); casts: ("put", key, value)."""

    def init(self, arg: Any) -> dict[str, Any]:
        return {}

    def handle_call(self, request: Any, from_: Any, state: dict[str, Any]) -> Any:
        match request:
            case ("get", key):
                return Reply(state.get(key), state)
            case ("put", key, value):
                return Reply("ok", {**state, key: value})
            case ("hold", pid):
                otp.send(pid, ("holding", from_))
                return NoReply(state)
            case ("crash", why):
                raise RuntimeError(why)
        raise ValueError(request)

    def handle_cast(self, msg: Any, state: dict[str, Any]) -> Any:
        _, key, value = msg
        return NoReply({**state, key: value})


async def start_store(name: str | None = "store") -> otp.Pid:
    pid = await Store.start(None, name=name)
    assert pid is not None
    return pid


async def in_plain_task(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` as a plain asyncio task on the node's loop (not a process), as an aiohttp
    handler runs, and return its result."""
    task = asyncio.get_running_loop().create_task(coro)
    return await task


async def test_a_plain_task_calls_a_server_by_name_and_by_pid(node: object) -> None:
    pid = await start_store()

    async def handler() -> tuple[Any, Any]:
        with pytest.raises(otp.NoProcessError):
            otp.self()  # a plain task is no process: the bridge gives it one per call
        assert await otp.bridge.call("store", ("put", "a", 1)) == "ok"
        by_pid = await otp.bridge.call(pid, ("get", "a"))
        return by_pid, await otp.bridge.call(("store", pid.node), ("get", "a"), math.inf)

    assert await in_plain_task(handler()) == (1, 1)
    assert otp.processes() == [otp.self(), pid]  # each call's process is gone
    await GenServer.stop(pid)


async def test_call_errors_have_the_reasons_a_process_gets(node: object) -> None:
    pid = await start_store()

    async def failures() -> list[otp.CallError]:
        errors = []
        for server, request, timeout in [
            ("nobody", "hi", 5.0),
            (pid, ("hold", otp.whereis("test")), 0.01),
            (pid, ("crash", "boom"), 5.0),
            (pid, "get", 5.0),  # the server died: its pid is gone
        ]:
            with pytest.raises(otp.CallError) as info:
                await otp.bridge.call(server, request, timeout)
            errors.append(info.value)
        return errors

    otp.register("test", otp.self())
    with capture_reports():
        noproc, timeout, crash, dead = await in_plain_task(failures())
    assert (noproc.reason, noproc.server, noproc.request) == (otp.NOPROC, "nobody", "hi")
    assert "no process is registered under that name" in str(noproc)
    assert isinstance(timeout, otp.CallTimeout) and timeout.reason == otp.TIMEOUT
    assert timeout.server == pid
    assert isinstance(crash.reason, RuntimeError) and str(crash.reason) == "boom"
    assert (dead.reason, dead.server) == (otp.NOPROC, pid)
    await assert_receive(lambda m: type(m) is tuple and m[0] == "holding")
    assert otp.processes() == [otp.self()]


async def test_a_bad_timeout_is_refused_before_anything_is_sent(node: object) -> None:
    pid = await start_store()

    async def handler() -> None:
        await otp.bridge.call(pid, ("put", "a", 1), timeout=-1)

    with pytest.raises(ValueError, match="timeout in seconds"):
        await in_plain_task(handler())
    assert await GenServer.call(pid, ("get", "a")) is None
    await GenServer.stop(pid)


async def test_a_cancelled_call_leaves_no_process_monitor_or_reply(node: object) -> None:
    pid = await start_store()
    otp.register("test", otp.self())
    task = asyncio.get_running_loop().create_task(
        otp.bridge.call(pid, ("hold", otp.self()), timeout=math.inf)
    )
    _, from_ = await assert_receive(lambda m: type(m) is tuple and m[0] == "holding")
    caller = from_[0]
    assert otp.is_alive(caller) and otp.process_info(pid).monitored_by == (caller,)  # type: ignore[union-attr]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the call's process is gone once the cancellation reaches the caller
    assert not otp.is_alive(caller)
    assert otp.process_info(pid).monitored_by == ()  # type: ignore[union-attr]
    GenServer.reply(from_, "too late")  # dropped: nobody waits for it
    assert otp.processes() == [otp.self(), pid]
    assert await in_plain_task(otp.bridge.call(pid, ("get", "x"))) is None
    info = otp.process_info(pid)
    assert info is not None and info.message_queue_len == 0
    await GenServer.stop(pid)


async def test_an_asyncio_timeout_around_a_call_cancels_it_cleanly(node: object) -> None:
    pid = await start_store()

    async def handler() -> str:
        try:
            async with asyncio.timeout(0):
                await otp.bridge.call(pid, ("hold", otp.whereis("test")), timeout=math.inf)
        except TimeoutError:
            return "gave up"
        return "answered"

    otp.register("test", otp.self())
    assert await in_plain_task(handler()) == "gave up"
    assert otp.processes() == [otp.self(), pid]
    await GenServer.stop(pid)


async def test_called_from_a_process_it_is_the_plain_call(node: object) -> None:
    pid = await start_store()
    me = otp.self()

    async def caller() -> None:
        otp.send(me, ("answer", await otp.bridge.call(pid, ("hold", me))))

    worker = otp.spawn(caller)
    _, from_ = await assert_receive(lambda m: type(m) is tuple and m[0] == "holding")
    assert from_[0] == worker  # no process in between
    GenServer.reply(from_, "held")
    assert await assert_receive(lambda m: type(m) is tuple and m[0] == "answer") == (
        "answer",
        "held",
    )
    await GenServer.stop(pid)


async def test_casts_and_sends_work_from_a_plain_task(node: object) -> None:
    pid = await start_store()
    me = otp.self()

    async def handler() -> None:
        GenServer.cast("store", ("put", "a", 1))
        GenServer.cast("nobody", ("put", "a", 1))  # never fails, as in a process
        otp.send(me, "from a plain task")
        with pytest.raises(otp.NotRegisteredError):
            otp.send("nobody", "hi")  # the same error as in a process

    await in_plain_task(handler())
    assert await assert_receive("from a plain task") == "from a plain task"
    assert await GenServer.call(pid, ("get", "a")) == 1
    await GenServer.stop(pid)


async def test_in_process_runs_a_function_in_a_process_of_its_own(node: object) -> None:
    pid = await start_store()

    async def stop_it(server: otp.Pid) -> otp.Pid:
        await GenServer.stop(server)  # needs a process: the bridge gives it one
        return otp.self()

    runner = await in_plain_task(otp.bridge.in_process(stop_it, pid))
    assert runner != otp.self() and not otp.is_alive(runner) and not otp.is_alive(pid)


async def test_in_process_raises_what_the_function_raises_without_a_crash_report(
    node: object,
) -> None:
    async def fails(why: str) -> None:
        raise KeyError(why)

    with capture_reports() as reports, pytest.raises(KeyError, match="missing"):
        await in_plain_task(otp.bridge.in_process(fails, "missing"))
    assert reports == []


async def test_in_process_raises_exit_error_when_an_exit_signal_ends_it(node: object) -> None:
    me = otp.self()

    async def waits() -> None:
        otp.send(me, ("running", otp.self()))
        await otp.receive(lambda m: False)

    task = asyncio.get_running_loop().create_task(otp.bridge.in_process(waits))
    _, runner = await assert_receive(lambda m: type(m) is tuple and m[0] == "running")
    otp.exit(runner, "go_away")
    with pytest.raises(otp.ExitError) as info:
        await task
    assert info.value.reason == "go_away" and repr(runner) in str(info.value)


async def test_in_process_takes_an_async_function(node: object) -> None:
    def plain() -> None: ...

    with pytest.raises(TypeError, match="async def"):
        await otp.bridge.in_process(plain)  # type: ignore[arg-type]


async def test_the_bridge_refuses_another_threads_loop_and_says_where_to_call(
    node: object,
) -> None:
    def from_a_thread() -> None:
        asyncio.run(otp.bridge.call("store", "get"))

    with pytest.raises(RuntimeError, match="run_coroutine_threadsafe"):
        await asyncio.to_thread(from_a_thread)


def test_the_bridge_needs_a_running_node() -> None:
    with pytest.raises(otp.NoProcessError, match=r"otp\.run"):
        asyncio.run(otp.bridge.call("store", "get"))


async def test_a_cancelled_in_process_returns_once_its_process_is_gone(node: object) -> None:
    me = otp.self()

    async def slow_cleanup() -> None:
        try:
            otp.send(me, "running")
            await otp.receive(lambda m: False)
        finally:
            for _ in range(3):  # a cleanup that takes a few turns of the loop
                await asyncio.sleep(0)
            otp.send(me, "cleaned up")

    task = asyncio.get_running_loop().create_task(otp.bridge.in_process(slow_cleanup))
    await assert_receive("running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert otp.processes() == [otp.self()]
    assert await assert_receive("cleaned up", timeout=0) == "cleaned up"
