"""Regressions found in review: each test pins a behaviour that once was wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import otp
from behaviours import DynamicSupervisor, GenServer, NoReply, Reply, Stop, Supervisor
from otp import _control
from otp.application import ApplicationError
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


async def test_otp_tree_marks_a_busy_supervisor_and_goes_on(node: object, monkeypatch: Any) -> None:
    monkeypatch.setattr(_control, "TREE_WAIT", 0.05)
    otp.process_flag("trap_exit", True)
    pool = await DynamicSupervisor.start_link()

    async def starter() -> None:
        await DynamicSupervisor.start_child(pool, SlowInit.child_spec(3.0))

    otp.spawn(starter)
    await asyncio.sleep(0.01)  # the pool is now inside the slow start
    entry = await _control._describe(pool, None, "supervisor", 0, 0)
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


# -- second review ----------------------------------------------------------------------------

LOG: list[str] = []


class Worker2(GenServer[str]):
    def init(self, name: str) -> str:
        otp.process_flag("trap_exit", True)
        return name

    def terminate(self, reason: Any, state: str) -> None:
        LOG.append(f"terminate {state} {reason}")


class OneWorker(Supervisor):
    def init(self, name: str) -> Any:
        return Supervisor.flags(), [Worker2.child_spec(name)]


def test_sys_exit_in_a_process_stops_the_node_cleanly_and_run_raises_it() -> None:
    LOG.clear()

    async def main() -> None:
        otp.application.load(otp.Application(name="w", start=OneWorker.start_link, start_args="w"))
        await otp.application.start("w")
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        otp.run(main)
    assert info.value.code == 3
    assert LOG == ["terminate w shutdown"]  # the application was stopped, not cancelled


def test_an_application_stop_callback_may_stop_another_application_during_shutdown() -> None:
    LOG.clear()

    async def stop_helper() -> None:
        await otp.application.stop("helper")
        LOG.append("helper stopped from main's stop")

    async def main() -> None:
        otp.application.load(
            otp.Application(name="helper", start=OneWorker.start_link, start_args="helper")
        )
        otp.application.load(
            otp.Application(
                name="main_app", start=OneWorker.start_link, start_args="main", stop=stop_helper
            )
        )
        await otp.application.start("helper")
        await otp.application.start("main_app")

    otp.run(main, shutdown_timeout=2.0)
    assert LOG == [
        "terminate main shutdown",
        "terminate helper shutdown",
        "helper stopped from main's stop",
    ]


async def slow_start(name: str) -> otp.Pid | None:
    await asyncio.sleep(0.2)
    LOG.append(f"{name} started; deps running: {otp.application.which_applications()!r}")
    return await OneWorker.start_link(name)


def test_a_node_stopped_during_a_start_abandons_it_before_stopping_its_dependencies() -> None:
    LOG.clear()

    async def stopper() -> None:
        await asyncio.sleep(0.05)
        otp._node.get().stop(otp.NORMAL)

    async def main() -> None:
        otp.application.load(
            otp.Application(name="dep", start=OneWorker.start_link, start_args="dep")
        )
        otp.application.load(
            otp.Application(name="slow", start=slow_start, start_args="slow", applications=("dep",))
        )
        otp.spawn(stopper)
        with pytest.raises(ApplicationError):
            await otp.application.ensure_all_started("slow")
        await otp.receive(lambda m: False)

    assert otp.run(main) is None
    assert LOG == ["terminate dep shutdown"]  # slow never got to start; dep stopped after


async def test_a_master_killed_during_a_start_answers_the_callers(node: object) -> None:
    otp.application.load(otp.Application(name="victim", start=slow_start, start_args="victim"))

    async def starter(parent: otp.Pid) -> None:
        try:
            await otp.application.start("victim")
            otp.send(parent, "started")
        except ApplicationError as err:
            otp.send(parent, ("failed", err.reason))

    otp.spawn(starter, otp.self())
    await asyncio.sleep(0.05)
    masters = [p for p in otp.processes() if otp.process_info(p).application == "victim"]  # type: ignore[union-attr]
    for master in masters:
        otp.exit(master, otp.KILL)
    assert await assert_receive(lambda m: m[0] == "failed", timeout=2) == ("failed", otp.KILLED)
    assert otp.application.which_applications() == []


async def test_a_rollback_does_not_stop_a_dependency_another_caller_started(
    node: object,
) -> None:
    async def failing(arg: Any) -> otp.Pid:
        await asyncio.sleep(0.01)
        raise RuntimeError("b fails")

    load = otp.application.load
    load(otp.Application(name="d", start=slow_start, start_args="d"))
    load(otp.Application(name="a", start=OneWorker.start_link, start_args="a", applications=("d",)))
    load(otp.Application(name="b", start=failing, applications=("d",)))

    async def ensure(name: str, parent: otp.Pid) -> None:
        try:
            otp.send(parent, (name, await otp.application.ensure_all_started(name)))
        except ApplicationError:
            otp.send(parent, (name, "failed"))

    with capture_reports():
        otp.spawn(ensure, "a", otp.self())
        otp.spawn(ensure, "b", otp.self())
        results = dict([await assert_receive(), await assert_receive()])
    assert results["b"] == "failed" and "a" in results["a"]
    assert sorted(a[0] for a in otp.application.which_applications()) == ["a", "d"]
    for name in ("a", "d"):
        await otp.application.stop(name)


def test_a_process_spawned_during_the_shutdown_gets_shutdown_too() -> None:
    LOG.clear()

    async def helper() -> None:
        try:
            await otp.receive(lambda m: False)
        finally:
            LOG.append("helper ended")

    class Spawning(GenServer[None]):
        def init(self, arg: None) -> None:
            otp.process_flag("trap_exit", True)

        async def terminate(self, reason: Any, state: None) -> None:
            otp.spawn(helper)
            await asyncio.sleep(0)  # the helper is running (and waiting) before we end

    async def main() -> None:
        await Spawning.start()

    otp.run(main, shutdown_timeout=30)  # would take 30 s if the helper were left to the kill
    assert LOG == ["helper ended"]


async def test_a_dynamic_child_stuck_restarting_can_be_terminated(node: object) -> None:
    from tests.behaviours.samples import AdvancingClock, Worker

    flags = {"fail": False}
    otp.process_flag("trap_exit", True)
    pool = await DynamicSupervisor.start_link(clock=AdvancingClock(10))
    child = await DynamicSupervisor.start_child(pool, (Worker, ("fail_if", flags, "f")))
    flags["f"] = True
    with capture_reports():
        otp.exit(child, otp.KILL)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        await DynamicSupervisor.terminate_child(pool, child)  # type: ignore[arg-type]
        assert await DynamicSupervisor.which_children(pool) == []
    otp.exit(pool, otp.KILL)
    await assert_receive(otp.Exit)


async def test_an_idle_control_client_is_let_go(
    node: object, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(_control, "READ_TIMEOUT", 0.05)
    path = tmp_path / "n.sock"
    server = await _control.serve(path, "cookie")
    reader, writer = await asyncio.open_unix_connection(str(path))
    data = await asyncio.wait_for(reader.read(), 5)  # the node answers and closes
    assert b"no request within" in data
    writer.close()
    await writer.wait_closed()
    await server.close()


# -- mailbox races found by fuzzing -------------------------------------------------------


async def _stall_the_loop() -> None:
    """Block the event loop for a moment, so that timers come due together."""
    import time

    time.sleep(0.03)  # noqa: ASYNC251  (blocking on purpose: that is the stall)


async def test_a_message_handed_to_a_cancelled_receive_keeps_its_place(node: object) -> None:
    async def receiver(parent: otp.Pid) -> None:
        try:
            async with asyncio.timeout(0.005):
                await otp.receive(lambda m: m == "B")
        except TimeoutError:
            pass
        otp.send(parent, [await otp.receive(timeout=0), await otp.receive(timeout=0)])

    pid = otp.spawn(receiver, otp.self())
    await asyncio.sleep(0)  # it waits for "B"
    otp.send_after(0.003, pid, "A")  # one sender, A then B: due together after the stall
    otp.send_after(0.004, pid, "B")
    otp.spawn(_stall_the_loop)
    assert await assert_receive(list) == ["A", "B"]


class Idle(GenServer[list[Any]]):
    def init(self, arg: Any) -> list[Any]:
        return []

    def handle_cast(self, msg: Any, state: list[Any]) -> NoReply[list[Any]]:
        return NoReply([*state, msg], timeout=0.005)

    def handle_info(self, msg: Any, state: list[Any]) -> NoReply[list[Any]]:
        return NoReply([*state, msg])


async def test_a_message_queued_when_the_timeout_expires_beats_the_timeout(node: object) -> None:
    pid = await Idle.start()
    assert pid is not None
    GenServer.cast(pid, "a")
    await otp.sys.get_state(pid)
    otp.send_after(0.006, pid, "ping")  # due with the idle timeout, after the stall
    otp.spawn(_stall_the_loop)
    await asyncio.sleep(0.05)
    assert await otp.sys.get_state(pid) == ["a", "ping"]
    await GenServer.stop(pid)
