"""Regressions found in review: each test pins a behaviour that once was wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import otp
from behaviours import DynamicSupervisor, GenServer, NoReply, Reply, Stop, Supervisor
from otp import _control
from otp.testing import assert_receive, capture_reports, refute_receive


async def test_kill_reaches_a_process_whose_cleanup_outlasts_a_shutdown(node: object) -> None:
    async def slow_cleanup(parent: otp.Pid) -> None:
        try:
            otp.send(parent, "ready")
            await otp.receive()
        except asyncio.CancelledError:
            await asyncio.sleep(10)  # a cleanup that takes its time
            raise

    pid, ref = otp.spawn_monitor(slow_cleanup, otp.self())
    await assert_receive("ready")
    otp.exit(pid, otp.SHUTDOWN)
    await asyncio.sleep(0)
    otp.exit(pid, otp.KILL)
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, otp.KILLED)


class Stopper(GenServer[Any]):
    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        match request:
            case ("stop", reason):
                return Stop(reason, state)
            case ("stop_and_reply", answer):
                return Stop(otp.NORMAL, reply=answer)  # no state: the current one
            case ("reply_later", delay):
                otp.send_after(delay, otp.self(), ("reply", from_))
                return NoReply(state)
        return Reply(state, state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        GenServer.reply(msg[1], "late")
        return NoReply(state)

    def terminate(self, reason: Any, state: Any) -> None:
        watcher = otp.whereis("watcher")
        if watcher is not None:
            otp.send(watcher, ("terminated", state))


async def test_a_call_that_fails_crashes_the_caller_even_for_a_clean_server_exit(
    node: object,
) -> None:
    server = await Stopper.start(None)

    async def caller() -> None:
        await GenServer.call(server, ("stop", otp.SHUTDOWN))

    with capture_reports() as reports:
        _, ref = otp.spawn_monitor(caller)
        down = await assert_receive(otp.Down)
    assert down.ref == ref and isinstance(down.reason, otp.CallError)
    assert down.reason.reason == otp.SHUTDOWN and otp.is_abnormal(down.reason)
    assert any(isinstance(r, otp.reports.CrashReport) for r in reports)


async def test_a_cancelled_call_leaves_no_monitor_and_no_late_reply(node: object) -> None:
    server = await Stopper.start("s")
    assert server is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await GenServer.call(server, ("reply_later", 0.03))
    info = otp.process_info(otp.self())
    assert info is not None and info.monitors == ()
    await GenServer.call(server, ("reply_later", 0.05))  # after the late one was sent
    await refute_receive(timeout=0)
    await GenServer.stop(server)


async def test_stop_with_a_reply_answers_after_terminate_with_the_current_state(
    node: object,
) -> None:
    otp.register("watcher", otp.self())
    server = await Stopper.start("the state")
    assert await GenServer.call(server, ("stop_and_reply", "bye")) == "bye"
    # terminate ran (with the state) before the reply was sent
    assert await otp.receive(timeout=0) == ("terminated", "the state")


async def _linked_helper() -> None:
    pass


async def start_with_a_helper(arg: Any) -> otp.Pid | None:
    otp.spawn_link(_linked_helper)  # ends normally: no concern of the application
    return await Supervisor.start_link([])


async def test_an_exit_of_another_linked_process_does_not_stop_the_application(
    node: object,
) -> None:
    otp.application.load(otp.Application(name="helped", start=start_with_a_helper))
    await otp.application.start("helped", "permanent")
    await asyncio.sleep(0.01)
    assert [a[0] for a in otp.application.which_applications()] == ["helped"]
    await otp.application.stop("helped")


EVENTS: list[str] = []


class Member(GenServer[str]):
    def init(self, name: str) -> str:
        otp.process_flag("trap_exit", True)
        EVENTS.append(f"start {name}")
        return name

    def terminate(self, reason: Any, state: str) -> None:
        EVENTS.append(f"stop {state}")


def test_the_node_shutdown_stops_a_tree_in_order_without_restarts() -> None:
    EVENTS.clear()

    async def owner(parent: otp.Pid) -> None:
        await Supervisor.start_link([Member.child_spec(n, id=n) for n in ("a", "b", "c")])
        otp.send(parent, "ready")
        await otp.receive(lambda m: False)

    async def main() -> None:
        otp.spawn(owner, otp.self())  # the tree is not main's: the node shutdown stops it
        await otp.receive()

    with capture_reports() as reports:
        otp.run(main)
    assert EVENTS == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert [r for r in reports if getattr(r, "context", None) == "child_terminated"] == []


class SlowInit(GenServer[None]):
    async def init(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_otp_tree_marks_a_busy_supervisor_and_goes_on(node: object) -> None:
    otp.process_flag("trap_exit", True)
    pool = await DynamicSupervisor.start_link()

    async def starter() -> None:
        await DynamicSupervisor.start_child(pool, SlowInit.child_spec(3.0))

    otp.spawn(starter)
    await asyncio.sleep(0.01)  # the pool is now inside the slow start
    entry = await _control._describe(pool, None, "supervisor", 0)
    assert entry["unavailable"] == "busy"
    otp.exit(pool, otp.KILL)
    await assert_receive(otp.Exit)


async def test_a_timer_to_a_process_that_ended_counts_as_cancelled(node: object) -> None:
    async def quick() -> None:
        pass

    pid, _ = otp.spawn_monitor(quick)
    tref = otp.send_after(10, pid, "late")
    await assert_receive(otp.Down)
    assert otp.cancel_timer(tref) is False
