"""DynamicSupervisor (the simple_one_for_one cases of otp-cases §2-§5, Elixir's API)."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import (
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    InvalidChildSpec,
    Supervisor,
    SupervisorError,
    SupervisorReport,
    UnexpectedMessage,
)
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import AdvancingClock, Worker, ended, pid_of, stop_supervisor


async def start_dyn(**options: Any) -> otp.Pid:
    otp.process_flag("trap_exit", True)
    return await DynamicSupervisor.start_link(**options)


async def counts(sup: Any) -> list[int]:
    c = await DynamicSupervisor.count_children(sup)
    return [c.specs, c.active, c.supervisors, c.workers]


async def test_children_are_started_on_demand_with_extra_arguments_first(node: object) -> None:
    """Case 28."""

    async def start(prefix: str, suffix: str) -> otp.Pid | None:
        return await Worker.start_link((prefix, suffix))

    sup = await start_dyn(extra_arguments=["extra"])
    assert await DynamicSupervisor.which_children(sup) == []
    assert await counts(sup) == [0, 0, 0, 0]
    a = pid_of(await DynamicSupervisor.start_child(sup, ChildSpec(id="w", start=(start, "own"))))
    b = pid_of(await DynamicSupervisor.start_child(sup, ChildSpec(id="w", start=(start, "2nd"))))
    assert await GenServer.call(a, "state") == ("extra", "own")
    assert await counts(sup) == [2, 2, 0, 2]
    infos = await DynamicSupervisor.which_children(sup)
    assert {i.pid for i in infos} == {a, b} and all(i.id is None for i in infos)
    await stop_supervisor(sup)


async def test_terminate_child_by_pid(node: object) -> None:
    """Case 29."""
    sup = await start_dyn()
    child = pid_of(await DynamicSupervisor.start_child(sup, Worker))
    await DynamicSupervisor.terminate_child(sup, child)
    assert not otp.is_alive(child)
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.terminate_child(sup, child)
    assert info.value.reason == "not_found"
    stranger = pid_of(await Worker.start(None))
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.terminate_child(sup, stranger)
    assert info.value.reason == "not_found" and otp.is_alive(stranger)
    await GenServer.stop(stranger)
    await stop_supervisor(sup)


async def test_counting_many_temporary_children(node: object) -> None:
    """Case 31."""
    sup = await start_dyn()
    spec = Worker.child_spec(None, restart="temporary")
    pids = [await DynamicSupervisor.start_child(sup, spec) for _ in range(1000)]
    assert await counts(sup) == [1000, 1000, 0, 1000]
    pids += [await DynamicSupervisor.start_child(sup, spec) for _ in range(1000)]
    assert await counts(sup) == [2000, 2000, 0, 2000]
    assert await counts(sup) == [2000, 2000, 0, 2000]
    for p in pids:
        otp.exit(p, otp.KILL)  # type: ignore[arg-type]
    for p in pids:
        await ended(p)  # type: ignore[arg-type]
    assert await counts(sup) == [0, 0, 0, 0]
    sup_spec = Supervisor.child_spec([], id="inner")
    inner = await DynamicSupervisor.start_child(sup, sup_spec.replace(restart="temporary"))
    assert await counts(sup) == [1, 1, 1, 0]
    assert inner is not None
    await stop_supervisor(sup)


async def test_one_child_restarts_alone_until_the_intensity_is_passed(node: object) -> None:
    """Case 55."""
    sup = await start_dyn(intensity=2, period=3600)
    a = pid_of(await DynamicSupervisor.start_child(sup, Worker))
    b = pid_of(await DynamicSupervisor.start_child(sup, Worker))
    with capture_reports():
        otp.send(a, "die")
        await ended(a)
        infos = await DynamicSupervisor.which_children(sup)
        assert b in {i.pid for i in infos} and a not in {i.pid for i in infos}
        assert await counts(sup) == [2, 2, 0, 2]
        for _ in range(2):
            victim = next(i.pid for i in await DynamicSupervisor.which_children(sup) if i.pid != b)
            otp.send(victim, "die")
            await ended(victim)  # type: ignore[arg-type]
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(b)


async def test_a_restart_that_ignores_drops_the_child(node: object) -> None:
    """Case 57."""
    flags = {"ignore": False}

    async def start() -> otp.Pid | None:
        return await Worker.start_link(("ignore",) if flags["ignore"] else None)

    sup = await start_dyn()
    child = pid_of(await DynamicSupervisor.start_child(sup, ChildSpec(id="c", start=start)))
    flags["ignore"] = True
    with capture_reports():
        otp.exit(child, otp.KILL)
        await ended(child)
    assert await DynamicSupervisor.which_children(sup) == []
    assert otp.is_alive(sup)
    await stop_supervisor(sup)


async def test_a_failing_restart_shows_as_restarting_and_is_retried(node: object) -> None:
    """Case 63."""
    flags = {"fail": False}
    sup = await start_dyn(intensity=3, period=10, clock=AdvancingClock(11))
    child = pid_of(await DynamicSupervisor.start_child(sup, (Worker, ("fail_if", flags, "fail"))))
    flags["fail"] = True
    with capture_reports():
        otp.exit(child, otp.KILL)
        await ended(child)
        infos = await DynamicSupervisor.which_children(sup)
        assert [(i.id, i.pid) for i in infos] == [(None, "restarting")]
        assert await counts(sup) == [1, 0, 0, 1]
        flags["fail"] = False
        await DynamicSupervisor.which_children(sup)  # behind the retry that now succeeds
    assert isinstance((await DynamicSupervisor.which_children(sup))[0].pid, otp.Pid)
    await stop_supervisor(sup)


async def test_max_children(node: object) -> None:
    sup = await start_dyn(max_children=2)
    for _ in range(2):
        await DynamicSupervisor.start_child(sup, Worker)
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, Worker)
    assert info.value.reason == "max_children"
    await stop_supervisor(sup)


async def test_children_are_shut_down_concurrently(node: object) -> None:
    """Cases 67-69: the slow child is killed after its shutdown time while the others end."""
    sup = await start_dyn()
    quick = [
        pid_of(await DynamicSupervisor.start_child(sup, Worker.child_spec(None, shutdown=5.0)))
        for _ in range(3)
    ]
    brutal = [
        pid_of(
            await DynamicSupervisor.start_child(
                sup, Worker.child_spec(None, shutdown="brutal_kill")
            )
        )
        for _ in range(10)
    ]
    slow = pid_of(
        await DynamicSupervisor.start_child(
            sup, Worker.child_spec(("slow_exit", 10), shutdown=0.05)
        )
    )
    refs = {otp.monitor(p): p for p in [*quick, *brutal, slow]}
    with capture_reports() as reports:
        await stop_supervisor(sup)
    reasons = {}
    for _ in refs:
        down = await assert_receive(otp.Down)
        reasons[refs[down.ref]] = down.reason
    assert all(reasons[p] == otp.SHUTDOWN for p in quick)
    assert all(reasons[p] == otp.KILLED for p in brutal)
    assert reasons[slow] == otp.KILLED
    assert len(reports) == 1  # the slow child's shutdown_error


async def test_children_exiting_during_shutdown_keep_their_reason(node: object) -> None:
    """Case 70."""
    sup = await start_dyn()
    children = [pid_of(await DynamicSupervisor.start_child(sup, Worker)) for _ in range(3)]
    refs = {otp.monitor(p): p for p in children}
    with capture_reports():
        otp.send(children[0], ("exit", ("shutdown", "mine")))
        otp.send(children[1], "die")
        await stop_supervisor(sup)
    reasons = {}
    for _ in refs:
        down = await assert_receive(otp.Down)
        reasons[refs[down.ref]] = down.reason
    assert reasons[children[0]] == ("shutdown", "mine")
    assert reasons[children[2]] == otp.SHUTDOWN


async def test_bad_input_is_refused_and_the_supervisor_keeps_running(node: object) -> None:
    sup = await start_dyn()
    with pytest.raises(InvalidChildSpec):
        await DynamicSupervisor.start_child(sup, "junk")
    with pytest.raises(InvalidChildSpec, match="significant"):
        await DynamicSupervisor.start_child(
            sup, Worker.child_spec(None, restart="transient", significant=True)
        )
    with pytest.raises(ValueError, match="one_for_one"):
        await DynamicSupervisor.start_link(strategy="one_for_all")
    with pytest.raises(ValueError, match="intensity"):
        await DynamicSupervisor.start_link(intensity=-1)
    with pytest.raises(ValueError, match="max_children"):
        await DynamicSupervisor.start_link(max_children=-1)
    assert await counts(sup) == [0, 0, 0, 0]
    await refute_receive(timeout=0)
    await stop_supervisor(sup)


async def test_a_dynamic_supervisor_under_a_supervisor(node: object) -> None:
    otp.process_flag("trap_exit", True)
    top = pid_of(
        await Supervisor.start_link([DynamicSupervisor.child_spec(name="pool", intensity=5)])
    )
    child = pid_of(await DynamicSupervisor.start_child("pool", Worker))
    info = otp.process_info(otp.whereis("pool"))  # type: ignore[arg-type]
    assert info is not None and info.behaviour is DynamicSupervisor
    await GenServer.stop(top, otp.SHUTDOWN)
    assert not otp.is_alive(child)
    await assert_receive(otp.Exit)


async def test_a_child_that_ignores_is_not_stored(node: object) -> None:
    """Case 15 (the simple_one_for_one case): None, nothing stored, a clean exit later."""
    sup = await start_dyn()
    assert await DynamicSupervisor.start_child(sup, (Worker, ("ignore",))) is None
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)


async def test_a_start_error_is_not_wrapped(node: object) -> None:
    """Case 17."""

    async def failing() -> otp.Pid:
        raise otp.StartError("plain reason")

    sup = await start_dyn()
    with pytest.raises(otp.StartError) as info:
        await DynamicSupervisor.start_child(sup, ChildSpec(id="x", start=failing))
    assert info.value.reason == "plain reason"
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)


async def test_a_failing_restart_escalates_and_takes_the_other_children_down(
    node: object,
) -> None:
    """Case 56."""
    flags = {"fail": False}
    sup = await start_dyn(intensity=1, period=3600)
    failing = pid_of(await DynamicSupervisor.start_child(sup, (Worker, ("fail_if", flags, "f"))))
    other = pid_of(await DynamicSupervisor.start_child(sup, Worker))
    other_ref = otp.monitor(other)
    flags["f"] = True
    with capture_reports():
        otp.exit(failing, otp.KILL)
        assert await assert_receive(lambda m: isinstance(m, otp.Exit)) == otp.Exit(
            sup, otp.SHUTDOWN
        )
    assert await assert_receive(otp.Down) == otp.Down(other_ref, other, otp.SHUTDOWN)


async def test_reports_name_a_dynamic_child_by_its_pid(node: object) -> None:
    """Its spec's id is shared by every child started from the spec (Elixir: `:undefined`)."""
    sup = await start_dyn()
    slow = Worker.child_spec(("slow_exit", 10), shutdown=0.01)
    a = pid_of(await DynamicSupervisor.start_child(sup, slow))
    b = pid_of(await DynamicSupervisor.start_child(sup, Worker))
    c = pid_of(await DynamicSupervisor.start_child(sup, slow))
    with capture_reports() as reports:
        await DynamicSupervisor.terminate_child(sup, a)  # killed after its shutdown time
        otp.send(b, "die")
        await ended(b)
        await stop_supervisor(sup)  # c is killed too
    named = [(r.context, r.offender) for r in reports if isinstance(r, SupervisorReport)]
    assert named[0] == ("shutdown_error", a)
    assert named[1] == ("child_terminated", b)
    assert named[-1] == ("shutdown_error", c)


@pytest.mark.parametrize("behaviour", [Supervisor, DynamicSupervisor])
async def test_an_unexpected_message_is_logged_and_an_exit_of_a_stranger_ignored(
    node: object, behaviour: type[Supervisor] | type[DynamicSupervisor]
) -> None:
    """As in OTP: the one logged at ERROR, the other dropped; the children are untouched."""
    otp.process_flag("trap_exit", True)
    if behaviour is Supervisor:
        sup = pid_of(await Supervisor.start_link([Worker]))
    else:
        sup = await start_dyn()
        await DynamicSupervisor.start_child(sup, Worker)
    before = await behaviour.which_children(sup)

    async def stranger() -> None:  # linked to the supervisor, but not its child
        otp.link(sup)
        otp.exit((otp.SHUTDOWN, "gone"))  # no crash report of its own

    with capture_reports() as reports:
        otp.send(sup, "junk")
        _, ref = otp.spawn_monitor(stranger)
        await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
        assert await behaviour.which_children(sup) == before  # both handled by now
    assert reports == [UnexpectedMessage(sup, None, behaviour, "junk")]
    await stop_supervisor(sup)
