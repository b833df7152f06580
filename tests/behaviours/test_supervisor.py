"""Supervisor (otp-cases §1-§7)."""

from __future__ import annotations

import math
from typing import Any

import pytest

import otp
from behaviours import (
    ChildSpec,
    GenServer,
    InvalidChildSpec,
    Supervisor,
    SupervisorError,
    SupervisorReport,
)
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import AdvancingClock, FakeClock, Worker, ended, pid_of, stop_supervisor


def spec(id: Any, arg: Any = None, **kw: Any) -> ChildSpec:
    return Worker.child_spec(arg, id=id, **kw)


async def start_sup(children: list[Any], **flags: Any) -> otp.Pid:
    otp.process_flag("trap_exit", True)
    return pid_of(await Supervisor.start_link(children, **flags))


async def counts(sup: Any) -> list[int]:
    c = await Supervisor.count_children(sup)
    return [c.specs, c.active, c.supervisors, c.workers]


async def pid(sup: Any, id: Any) -> Any:
    for info in await Supervisor.which_children(sup):
        if info.id == id:
            return info.pid
    raise LookupError(id)


# -- §1 start, init results, validation ---------------------------------------------------


async def test_sup_start_normal_and_exit_on_shutdown(node: object) -> None:
    """Case 1."""
    sup = await start_sup([], strategy="one_for_one", intensity=2, period=3600)
    otp.exit(sup, otp.SHUTDOWN)
    assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


class Ignoring(Supervisor):
    def init(self, arg: Any) -> Any:
        return arg


async def test_init_ignore_starts_nothing(node: object) -> None:
    """Case 2."""
    otp.process_flag("trap_exit", True)
    assert await Ignoring.start_link(otp.IGNORE, name="ignored") is None
    assert otp.whereis("ignored") is None
    assert otp.processes() == [otp.self()]
    await refute_receive(timeout=0)


async def test_init_bad_return_and_crash(node: object) -> None:
    """Cases 3 and 4."""
    otp.process_flag("trap_exit", True)
    with capture_reports(), pytest.raises(otp.StartError) as info:
        await Ignoring.start_link("garbage")
    assert "Ignoring.init returned 'garbage'" in str(info.value.reason)

    class Failing(Supervisor):
        def init(self, arg: Any) -> Any:
            raise RuntimeError("fail")

    with capture_reports(), pytest.raises(otp.StartError) as info:
        await Failing.start_link()
    assert isinstance(info.value.reason, RuntimeError)
    await refute_receive(timeout=0)


async def test_spec_defaults(node: object) -> None:
    """Case 5: defaults filled in; unknown id is not_found."""
    sup = await start_sup([ChildSpec(id="w", start=(Worker.start_link, None))])
    got = await Supervisor.get_childspec(sup, "w")
    assert (got.restart, got.shutdown, got.type, got.significant) == (
        "permanent",
        5.0,
        "worker",
        False,
    )
    sup_spec = await Supervisor.get_childspec(sup, "w")
    assert sup_spec.id == "w"
    assert ChildSpec(id="s", start=print, type="supervisor").shutdown is None  # filled on check
    with pytest.raises(SupervisorError) as info:
        await Supervisor.get_childspec(sup, "nope")
    assert info.value.reason == "not_found"
    await stop_supervisor(sup)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (ChildSpec(id="c", start=42), "start"),  # type: ignore[arg-type]
        (ChildSpec(id="c", start=print, restart="sometimes"), "restart"),  # type: ignore[arg-type]
        (ChildSpec(id="c", start=print, shutdown=-10), "shutdown"),
        (ChildSpec(id="c", start=print, shutdown="never"), "shutdown"),  # type: ignore[arg-type]
        (ChildSpec(id="c", start=print, type="manager"), "type"),  # type: ignore[arg-type]
        (ChildSpec(id="c", start=print, modules=42), "modules"),  # type: ignore[arg-type]
        (ChildSpec(id="c", start=print, modules=(1,)), "modules"),
        (ChildSpec(id=["unhashable"], start=print), "id"),
        (ChildSpec(id="c", start=print, significant="yes"), "significant"),  # type: ignore[arg-type]
    ],
)
async def test_bad_child_specs_are_refused_naming_the_field(
    node: object, bad: ChildSpec, field: str
) -> None:
    """Cases 7, 8 and 11: nothing starts, the error names the field and echoes the value."""
    with pytest.raises(InvalidChildSpec) as info:
        await Supervisor.start_link([spec("ok"), bad])
    assert info.value.field == field
    assert f"Got: {getattr(bad, field)!r}" in str(info.value)
    assert otp.processes() == [otp.self()]


async def test_a_child_that_is_not_a_spec_lists_the_valid_forms(node: object) -> None:
    """Case 7."""
    with pytest.raises(InvalidChildSpec) as info:
        await Supervisor.start_link(["worker"])
    text = str(info.value)
    assert "expected each child to be one of" in text and "ChildSpec(id=..., start=...)" in text
    assert text.endswith("Got: 'worker'")
    with pytest.raises(InvalidChildSpec, match="expected a list"):
        await Supervisor.start_link("not a list")


async def test_every_valid_combination_is_accepted_and_duplicates_are_not(node: object) -> None:
    """Case 9."""
    sup = await start_sup([])
    n = 0
    for restart in ("permanent", "transient", "temporary"):
        for shutdown in (0, 1.0, math.inf, "brutal_kill"):
            for type_ in ("worker", "supervisor"):
                for modules in ("dynamic", (), (Worker,), (Worker, GenServer)):
                    n += 1
                    child = ChildSpec(
                        id=n,
                        start=(Worker.start_link, None),
                        restart=restart,
                        shutdown=shutdown,
                        type=type_,
                        modules=modules,
                    )
                    await Supervisor.start_child(sup, child)
    assert await counts(sup) == [96, 96, 48, 48]  # supervisors/workers count spec types
    with pytest.raises(InvalidChildSpec, match="duplicate child id 'a'"):
        await Supervisor.start_link([spec("a"), spec("a")])
    await stop_supervisor(sup)


async def test_significance_rules(node: object) -> None:
    """Case 11: significant must be bool; not with permanent; not under auto_shutdown never."""
    with pytest.raises(InvalidChildSpec, match="permanent"):
        await Supervisor.start_link([spec("s", significant=True)], auto_shutdown="any_significant")
    with pytest.raises(InvalidChildSpec, match="auto_shutdown"):
        await Supervisor.start_link([spec("s", significant=True, restart="transient")])
    sup = await start_sup([])
    with pytest.raises(InvalidChildSpec, match="auto_shutdown"):
        await Supervisor.start_child(sup, spec("s", significant=True, restart="transient"))
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        ({"strategy": "one_for_some"}, "strategy"),
        ({"intensity": math.inf}, "intensity"),
        ({"intensity": -1}, "intensity"),
        ({"period": 0}, "period"),
        ({"period": math.inf}, "period"),
        ({"auto_shutdown": "sometimes"}, "auto_shutdown"),
    ],
)
async def test_bad_flags_are_refused(node: object, flags: dict[str, Any], field: str) -> None:
    """Case 12."""
    with pytest.raises(ValueError, match=field) as info:
        await Supervisor.start_link([spec("a")], **flags)
    assert "Got:" in str(info.value)
    assert otp.processes() == [otp.self()]


async def test_flag_defaults(node: object) -> None:
    """Case 12 (doc)."""
    flags = Supervisor.flags()
    assert (flags.strategy, flags.intensity, flags.period, flags.auto_shutdown) == (
        "one_for_one",
        1,
        5.0,
        "never",
    )


async def test_start_child_that_ignores(node: object) -> None:
    """Cases 13 and 14."""
    sup = await start_sup([spec("sibling")])
    assert await Supervisor.start_child(sup, spec("child1", ("ignore",))) is None
    infos = await Supervisor.which_children(sup)
    assert next((i.id, i.pid) for i in infos) == ("child1", None)
    assert await counts(sup) == [2, 1, 0, 2]
    assert await Supervisor.start_child(sup, spec("temp", ("ignore",), restart="temporary")) is None
    assert await counts(sup) == [2, 1, 0, 2]
    await stop_supervisor(sup)


async def failing_start() -> None:
    raise otp.StartError("no way")


async def bad_start() -> str:
    return "not a pid"


async def test_start_child_errors_store_nothing(node: object) -> None:
    """Case 16."""
    sup = await start_sup([])
    with pytest.raises(otp.StartError) as info:
        await Supervisor.start_child(sup, ChildSpec(id="x", start=failing_start))
    assert info.value.reason == "no way"
    with pytest.raises(otp.StartError) as info:
        await Supervisor.start_child(sup, ChildSpec(id="y", start=bad_start))
    assert info.value.reason == ("bad_start_return", "not a pid")
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)


async def test_a_child_failing_in_init_fails_the_supervisor_start(node: object) -> None:
    """Case 18: started children are stopped again, in reverse."""
    otp.register("watcher", otp.self())
    flags = {"bad": True}
    with capture_reports() as reports, pytest.raises(otp.StartError) as info:
        await start_sup([spec("first"), spec("bad", ("fail_if", flags, "bad")), spec("never")])
    assert info.value.reason == (
        otp.SHUTDOWN,
        ("failed_to_start_child", "bad", ("start_failed", "bad")),
    )
    first = await assert_receive(lambda m: m[0] == "terminated")
    assert first[2] == otp.SHUTDOWN
    assert [r.context for r in reports if isinstance(r, SupervisorReport)] == ["start_error"]
    assert otp.processes() == [otp.self()]


async def test_a_name_taken_outside_the_supervisor(node: object) -> None:
    """Case 19."""
    other = pid_of(await Worker.start(None, name="taken"))
    sup = await start_sup([])
    with pytest.raises(otp.StartError) as info:
        await Supervisor.start_child(sup, Worker.child_spec(None, name="taken", id="t"))
    assert isinstance(info.value.reason, otp.AlreadyStartedError)
    assert info.value.reason.pid == other
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)
    await GenServer.stop(other)


# -- §2 child administration ----------------------------------------------------------------


async def test_child_administration(node: object) -> None:
    """Cases 21-27."""
    sup = await start_sup([])
    child = spec("child1")
    cpid = await Supervisor.start_child(sup, child)
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_child(sup, child)
    assert isinstance(info.value.reason, otp.AlreadyStartedError)
    assert info.value.reason.pid == cpid
    # terminate_child: the child exits with shutdown, the spec stays
    otp.register("watcher", otp.self())
    await Supervisor.terminate_child(sup, "child1")
    assert (await assert_receive(lambda m: m[0] == "terminated"))[2] == otp.SHUTDOWN
    assert await pid(sup, "child1") is None
    assert await counts(sup) == [1, 0, 0, 1]
    await Supervisor.terminate_child(sup, "child1")  # again: fine
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_child(sup, child)
    assert info.value.reason == "already_present"
    new = await Supervisor.restart_child(sup, "child1")
    assert new is not None and new != cpid
    for call in (Supervisor.restart_child, Supervisor.delete_child):
        with pytest.raises(SupervisorError) as info:
            await call(sup, "child1")
        assert info.value.reason == "running"
        with pytest.raises(SupervisorError) as info:
            await call(sup, "nope")
        assert info.value.reason == "not_found"
    # terminate_child by pid on a static supervisor: not_found, child left alone
    with pytest.raises(SupervisorError) as info:
        await Supervisor.terminate_child(sup, new)
    assert info.value.reason == "not_found" and otp.is_alive(new)
    await Supervisor.terminate_child(sup, "child1")
    await assert_receive(lambda m: m[0] == "terminated")
    await Supervisor.delete_child(sup, "child1")
    with pytest.raises(SupervisorError):
        await Supervisor.restart_child(sup, "child1")
    assert await Supervisor.which_children(sup) == []
    assert await counts(sup) == [0, 0, 0, 0]
    await stop_supervisor(sup)


async def test_api_calls_to_a_missing_supervisor_fail_with_noproc(node: object) -> None:
    """Case 26."""
    for call, args in [
        (Supervisor.start_child, (spec("x"),)),
        (Supervisor.terminate_child, ("x",)),
        (Supervisor.delete_child, ("x",)),
        (Supervisor.which_children, ()),
        (Supervisor.count_children, ()),
    ]:
        with pytest.raises(otp.CallError) as info:
            await call("no_sup", *args)  # type: ignore[operator]
        assert info.value.reason == otp.NOPROC


async def test_temporary_children_lose_their_spec(node: object) -> None:
    """Case 34, on each strategy."""
    for strategy in ("one_for_one", "one_for_all", "rest_for_one"):
        sup = await start_sup([], strategy=strategy, intensity=10)
        temp = spec("temp", restart="temporary")
        tpid = pid_of(await Supervisor.start_child(sup, temp))
        otp.send(tpid, "die")
        with capture_reports():
            await ended(tpid)
        assert await Supervisor.which_children(sup) == []
        tpid = pid_of(await Supervisor.start_child(sup, temp))
        await Supervisor.terminate_child(sup, "temp")
        assert await Supervisor.which_children(sup) == []
        # a permanent child that crashes is restarted: starting it again is already_started
        perm = spec("perm")
        ppid = pid_of(await Supervisor.start_child(sup, perm))
        with capture_reports():
            otp.exit(ppid, otp.KILL)
            await ended(ppid)
        with pytest.raises(SupervisorError) as info:
            await Supervisor.start_child(sup, perm)
        assert isinstance(info.value.reason, otp.AlreadyStartedError)
        # a transient child that exits normal stays stopped: already_present
        trans = spec("trans", restart="transient")
        tr = pid_of(await Supervisor.start_child(sup, trans))
        otp.send(tr, "stop")
        await ended(tr)
        with pytest.raises(SupervisorError) as info:
            await Supervisor.start_child(sup, trans)
        assert info.value.reason == "already_present"
        assert await Supervisor.restart_child(sup, "trans") is not None
        await stop_supervisor(sup)


async def test_a_child_that_unlinks_itself_is_still_supervised(node: object) -> None:
    """Case 37."""
    sup = await start_sup([spec("c")])
    cpid = await pid(sup, "c")
    otp.send(cpid, "unlink")
    await Supervisor.which_children(sup)  # the unlink has happened
    info = otp.process_info(cpid)
    assert info is not None and sup not in info.links
    await Supervisor.terminate_child(sup, "c")
    assert not otp.is_alive(cpid)
    new = await Supervisor.restart_child(sup, "c")
    otp.send(new, "unlink")
    with capture_reports():
        otp.send(new, "die")
        await ended(pid_of(new))
    assert await pid(sup, "c") not in (None, new)  # restarted: seen through the monitor
    await stop_supervisor(sup)


# -- §3 restart type x exit reason ----------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        ("permanent", "stop", True),
        ("permanent", ("exit", otp.SHUTDOWN), True),
        ("permanent", ("exit", ("shutdown", "info")), True),
        ("permanent", "die", True),
        ("transient", "stop", False),
        ("transient", ("exit", otp.SHUTDOWN), False),
        ("transient", ("exit", ("shutdown", "t")), False),
        ("transient", "die", True),
        ("transient", "kill", True),
        ("temporary", "stop", False),
        ("temporary", ("exit", otp.SHUTDOWN), False),
        ("temporary", "die", False),
    ],
)
async def test_restart_type_against_exit_reason(
    node: object, restart: str, how: Any, restarted: bool
) -> None:
    """Cases 38-44."""
    sup = await start_sup([spec("child1", restart=restart)], intensity=2, period=3600)
    cpid = await pid(sup, "child1")
    with capture_reports():
        if how == "kill":
            otp.exit(cpid, otp.KILL)
        else:
            otp.send(cpid, how)
        await ended(cpid)
        now = await Supervisor.which_children(sup)
    if restarted:
        assert now[0].pid not in (None, cpid) and await counts(sup) == [1, 1, 0, 1]
    elif restart == "temporary":
        assert now == [] and await counts(sup) == [0, 0, 0, 0]
    else:
        assert now[0].pid is None and await counts(sup) == [1, 0, 0, 1]
        assert await Supervisor.restart_child(sup, "child1") is not None
    await stop_supervisor(sup)


async def test_shutdown_of_the_supervisor_runs_terminate_of_trapping_children(
    node: object,
) -> None:
    """Case 45: terminate(shutdown) for a timeout child; brutal_kill never runs it."""
    otp.register("watcher", otp.self())
    sup = await start_sup([spec("polite", shutdown=1.0), spec("brutal", shutdown="brutal_kill")])
    await stop_supervisor(sup)
    msgs = [await assert_receive(lambda m: m[0] == "terminated")]
    await refute_receive(lambda m: m[0] == "terminated", timeout=0.02)
    assert msgs[0][2] == otp.SHUTDOWN


# -- §4 strategies and intensity ------------------------------------------------------------


async def test_one_for_one_restarts_only_the_child(node: object) -> None:
    """Case 46."""
    sup = await start_sup([spec("c1"), spec("c2")], intensity=2, period=3600)
    p1, p2 = await pid(sup, "c1"), await pid(sup, "c2")
    with capture_reports():
        otp.send(p1, "die")
        await ended(p1)
    assert await pid(sup, "c2") == p2 and await pid(sup, "c1") not in (None, p1)
    assert await counts(sup) == [2, 2, 0, 2]
    await stop_supervisor(sup)


async def test_too_many_restarts_shut_the_supervisor_down(node: object) -> None:
    """Case 47: the third restart within the period: children stopped, exit shutdown."""
    sup = await start_sup([spec("c1"), spec("c2")], intensity=2, period=3600)
    p2 = await pid(sup, "c2")
    with capture_reports() as reports:
        for _ in range(3):
            p1 = await pid(sup, "c1")
            otp.send(p1, "die")
            await ended(p1)
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(p2)
    shutdowns = [r for r in reports if isinstance(r, SupervisorReport) and r.context == "shutdown"]
    assert [r.reason for r in shutdowns] == ["reached_max_restart_intensity"]


async def test_the_restart_window_slides(node: object) -> None:
    """Case 48, with a clock moved by hand: 4 kills 2.1 s apart survive MaxR=1, MaxT=1."""
    clock = FakeClock()
    sup = await start_sup([spec("c")], intensity=1, period=1, clock=clock)
    with capture_reports():
        for _ in range(4):
            clock.now += 2.1
            c = await pid(sup, "c")
            otp.exit(c, otp.KILL)
            await ended(c)
            await Supervisor.which_children(sup)
    assert otp.is_alive(sup)
    clock.now += 0.5
    c = await pid(sup, "c")
    with capture_reports():
        otp.exit(c, otp.KILL)  # the second one within 1 s: too many
        await ended(c)
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


async def test_a_failing_restart_counts_and_escalates(node: object) -> None:
    """Case 49: each failed restart counts; past MaxR the supervisor exits, child2 too."""
    flags = {"fail": False}
    sup = await start_sup(
        [spec("c1", ("fail_if", flags, "fail")), spec("c2")], intensity=4, period=3600
    )
    c2 = await pid(sup, "c2")
    flags["fail"] = True
    with capture_reports() as reports:
        c1 = await pid(sup, "c1")
        otp.send(c1, "die")
        assert await assert_receive(otp.Exit, timeout=5) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(c2)
    starts = [r for r in reports if isinstance(r, SupervisorReport) and r.context == "start_error"]
    assert len(starts) == 4


async def test_one_for_all(node: object) -> None:
    """Case 50."""
    sup = await start_sup(
        [spec("c1"), spec("c2")], strategy="one_for_all", intensity=2, period=3600
    )
    p1, p2 = await pid(sup, "c1"), await pid(sup, "c2")
    with capture_reports():
        otp.send(p1, "die")
        await ended(p1)
        assert await ended(p2) == otp.SHUTDOWN
        n1, n2 = await pid(sup, "c1"), await pid(sup, "c2")
        assert n1 not in (None, p1) and n2 not in (None, p2)
        assert await counts(sup) == [2, 2, 0, 2]
        for _ in range(2):
            victim = await pid(sup, "c2")
            otp.send(victim, "die")
            await ended(victim)
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


async def test_one_for_all_retries_the_group_when_a_sibling_fails(node: object) -> None:
    """Case 52."""
    flags = {"fail": False}
    sup = await start_sup(
        [spec("c1"), spec("c2", ("fail_if", flags, "fail"))],
        strategy="one_for_all",
        intensity=10,
        period=3600,
        clock=AdvancingClock(3601),
    )
    p1 = await pid(sup, "c1")
    flags["fail"] = True
    with capture_reports():
        otp.send(p1, "die")
        await ended(p1)
        infos = {i.id: i.pid for i in await Supervisor.which_children(sup)}
        # As in OTP, c1 (restarted before c2 failed) runs until a retry restarts the group
        # from c2, which stops it first; c2 keeps being retried.
        assert infos["c2"] == "restarting" and isinstance(infos["c1"], otp.Pid)
        first = otp.monitor(infos["c1"])
        flags["fail"] = False
        await Supervisor.which_children(sup)  # queued behind the next retry, which succeeds
        down = await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == first)
        assert down.reason == otp.SHUTDOWN
    assert await counts(sup) == [2, 2, 0, 2]
    await stop_supervisor(sup)


async def test_rest_for_one(node: object) -> None:
    """Case 53."""
    sup = await start_sup(
        [spec("c1"), spec("c2"), spec("c3")], strategy="rest_for_one", intensity=2, period=3600
    )
    p1, p2, p3 = [await pid(sup, c) for c in ("c1", "c2", "c3")]
    with capture_reports():
        otp.send(p2, "die")
        await ended(p2)
        assert await ended(p3) == otp.SHUTDOWN
        assert await pid(sup, "c1") == p1
        assert await pid(sup, "c2") not in (None, p2) and await pid(sup, "c3") not in (None, p3)
        assert await counts(sup) == [3, 3, 0, 3]
        for _ in range(2):
            victim = await pid(sup, "c3")
            otp.send(victim, "die")
            await ended(victim)
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


async def test_rest_for_one_retry_does_not_restart_earlier_children_again(
    node: object,
) -> None:
    """Case 54."""
    flags = {"fail": False}
    sup = await start_sup(
        [spec("c1"), spec("c2", ("fail_if", flags, "fail")), spec("c3")],
        strategy="rest_for_one",
        intensity=10,
        period=3600,
        clock=AdvancingClock(3601),
    )
    p1 = await pid(sup, "c1")
    flags["fail"] = True
    with capture_reports():
        otp.send(p1, "die")
        await ended(p1)
        n1 = await pid(sup, "c1")
        infos = [(i.id, i.pid) for i in await Supervisor.which_children(sup)]
        assert infos == [("c3", None), ("c2", "restarting"), ("c1", n1)]
        assert await counts(sup) == [3, 1, 0, 3]
        flags["fail"] = False
        await Supervisor.which_children(sup)  # queued behind the next retry, which succeeds
    assert isinstance(await pid(sup, "c3"), otp.Pid)
    assert await pid(sup, "c1") == n1
    await stop_supervisor(sup)


async def test_temporary_bystanders_are_removed_in_a_group_restart(node: object) -> None:
    """Case 58."""
    for strategy in ("one_for_all", "rest_for_one"):
        sup = await start_sup(
            [spec("c1"), spec("c2", restart="temporary")],
            strategy=strategy,
            intensity=2,
            period=300,
        )
        p1, p2 = await pid(sup, "c1"), await pid(sup, "c2")
        with capture_reports():
            otp.send(p1, "stop")
            await ended(p1)
        assert await ended(p2) == otp.SHUTDOWN
        assert [i.id for i in await Supervisor.which_children(sup)] == ["c1"]
        assert otp.is_alive(sup)
        await stop_supervisor(sup)


async def test_order_of_children(node: object) -> None:
    """Case 60."""
    otp.register("watcher", otp.self())
    ids = ["e", "b", "d", "a", "c"]
    sup = await start_sup([spec(i) for i in ids], strategy="rest_for_one", intensity=5)
    assert [i.id for i in await Supervisor.which_children(sup)] == ids[::-1]
    pids = {i: await pid(sup, i) for i in ids}
    with capture_reports():
        otp.send(pids["d"], "die")
        await ended(pids["d"])
    terminated = [(await assert_receive(lambda m: m[0] == "terminated"))[1] for _ in range(3)]
    assert terminated[1:] == [pids["c"], pids["a"]]
    started = [await pid(sup, i) for i in ("d", "a", "c")]
    assert started == sorted(started, key=lambda p: p.id)  # restarted in original order
    await stop_supervisor(sup)
    terminated = [(await assert_receive(lambda m: m[0] == "terminated"))[1] for _ in range(5)]
    current = {**pids, "d": started[0], "a": started[1], "c": started[2]}
    assert terminated == [current[i] for i in ids[::-1]]


async def test_hanging_restart_loop(node: object) -> None:
    """Case 61: the supervisor keeps answering while a restart keeps failing."""
    flags = {"fail": False}
    otp.process_flag("trap_exit", True)
    sup = pid_of(
        await Supervisor.start_link(
            [], intensity=8, period=10, clock=AdvancingClock(11), name="sup"
        )
    )
    child = spec("child1", ("fail_if", flags, "fail"), shutdown="brutal_kill")
    cpid = pid_of(await Supervisor.start_child(sup, child))
    flags["fail"] = True
    with capture_reports():
        otp.exit(cpid, otp.KILL)
        await ended(cpid)
        for _ in range(3):  # restarts keep failing, never 9 within 10 s: a hanging loop
            assert [(i.id, i.pid) for i in await Supervisor.which_children(sup)] == [
                ("child1", "restarting")
            ]
        assert await counts(sup) == [1, 0, 0, 1]
        with pytest.raises(SupervisorError) as info:
            await Supervisor.start_child(sup, child)
        assert info.value.reason == "already_present"
        for call in (Supervisor.restart_child, Supervisor.delete_child):
            with pytest.raises(SupervisorError) as info:
                await call(sup, "child1")
            assert info.value.reason == "restarting"
        await Supervisor.terminate_child(sup, "child1")
        assert await pid(sup, "child1") is None
        flags["fail"] = False
        assert await Supervisor.restart_child(sup, "child1") is not None
    await stop_supervisor(sup)
    assert otp.whereis("sup") is None


async def test_shutdown_in_the_middle_of_a_restart_loop(node: object) -> None:
    """Case 61: shutting the supervisor down while a child is restarting completes."""
    flags = {"fail": False}
    sup = await start_sup(
        [spec("c", ("fail_if", flags, "fail"))], intensity=1, clock=AdvancingClock(10), name="s2"
    )
    c = await pid(sup, "c")
    flags["fail"] = True
    with capture_reports():
        otp.send(c, "die")
        await ended(c)
        await stop_supervisor(sup)
    assert otp.whereis("s2") is None


# -- §5 shutdown ------------------------------------------------------------------------------


async def test_shutdown_infinity_waits(node: object) -> None:
    """Case 65."""
    otp.register("watcher", otp.self())
    sup = await start_sup([spec("w", ("slow_exit", 0.05), shutdown=math.inf)])
    await stop_supervisor(sup)
    assert (await assert_receive(lambda m: m[0] == "terminated"))[2] == otp.SHUTDOWN


async def test_shutdown_timeout_kills_a_slow_child(node: object) -> None:
    """Case 66."""
    sup = await start_sup(
        [spec("fast", shutdown=1.0), spec("slow", ("slow_exit", 10), shutdown=0.05)]
    )
    fast, slow = await pid(sup, "fast"), await pid(sup, "slow")
    refs = {otp.monitor(fast): "fast", otp.monitor(slow): "slow"}
    with capture_reports() as reports:
        await stop_supervisor(sup)
    reasons = {}
    for _ in range(2):
        down = await assert_receive(otp.Down)
        reasons[refs[down.ref]] = down.reason
    assert reasons == {"fast": otp.SHUTDOWN, "slow": otp.KILLED}
    assert [r.context for r in reports if isinstance(r, SupervisorReport)] == ["shutdown_error"]


async def test_brutal_kill(node: object) -> None:
    """Case 68."""
    sup = await start_sup([spec("b", shutdown="brutal_kill"), spec("t", shutdown=1.0)])
    b, t = await pid(sup, "b"), await pid(sup, "t")
    rb, rt = otp.monitor(b), otp.monitor(t)
    await stop_supervisor(sup)
    downs = {(await assert_receive(otp.Down)) for _ in range(2)}
    assert downs == {otp.Down(rb, b, otp.KILLED), otp.Down(rt, t, otp.SHUTDOWN)}


# -- §6 significant children ------------------------------------------------------------------


@pytest.mark.parametrize("auto", ["never", "any_significant", "all_significant"])
async def test_non_significant_children_never_stop_the_supervisor(node: object, auto: str) -> None:
    """Cases 71-72."""
    sup = await start_sup(
        [spec("t", restart="temporary"), spec("tr", restart="transient")],
        auto_shutdown=auto,
        intensity=10,
    )
    with capture_reports():
        await Supervisor.terminate_child(sup, "t")
        tr = await pid(sup, "tr")
        otp.exit(tr, otp.KILL)
        await ended(tr)
        tr = await pid(sup, "tr")
        otp.send(tr, "stop")
        await ended(tr)
    assert otp.is_alive(sup) and await pid(sup, "tr") is None
    await stop_supervisor(sup)


async def test_any_significant(node: object) -> None:
    """Cases 73 and 75."""
    sup = await start_sup(
        [spec("other"), spec("sig", restart="transient", significant=True)],
        auto_shutdown="any_significant",
        intensity=10,
    )
    other = await pid(sup, "other")
    await Supervisor.terminate_child(sup, "sig")  # by the API: no auto shutdown
    assert otp.is_alive(sup)
    sig = pid_of(await Supervisor.restart_child(sup, "sig"))
    with capture_reports():
        otp.exit(sig, otp.KILL)  # abnormal: restarted, no shutdown
        await ended(sig)
        sig = await pid(sup, "sig")
        otp.send(sig, "stop")  # normal exit of a significant child: auto shutdown
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(other)


async def test_all_significant(node: object) -> None:
    """Case 74."""
    sup = await start_sup(
        [
            spec("plain"),
            spec("s1", restart="temporary", significant=True),
            spec("s2", restart="transient", significant=True),
        ],
        auto_shutdown="all_significant",
    )
    s1, s2, plain = await pid(sup, "s1"), await pid(sup, "s2"), await pid(sup, "plain")
    otp.send(s1, "stop")
    await ended(s1)
    assert otp.is_alive(sup)
    otp.send(s2, "stop")
    assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(plain)


async def test_significant_children_stopped_by_a_group_restart_do_not_count(
    node: object,
) -> None:
    """Case 77."""
    sup = await start_sup(
        [spec("plain"), spec("sig", restart="transient", significant=True)],
        strategy="one_for_all",
        auto_shutdown="any_significant",
        intensity=5,
    )
    plain = await pid(sup, "plain")
    with capture_reports():
        otp.exit(plain, otp.KILL)
        await ended(plain)
    assert otp.is_alive(sup) and await counts(sup) == [2, 2, 0, 2]
    await stop_supervisor(sup)


class Middle(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(auto_shutdown="any_significant"), [
            spec("leaf", restart="transient", significant=True)
        ]


async def test_significant_escalation(node: object) -> None:
    """Case 78: C exits normally -> B shuts itself down -> A shuts itself down."""
    top = await start_sup(
        [Middle.child_spec(None, id="b", restart="transient", significant=True)],
        auto_shutdown="any_significant",
    )
    b = await pid(top, "b")
    leaf = await pid(b, "leaf")
    otp.send(leaf, "stop")
    assert await assert_receive(otp.Exit) == otp.Exit(top, otp.SHUTDOWN)


# -- §7 code change ---------------------------------------------------------------------------

CONFIG: dict[str, Any] = {}


class Changing(Supervisor):
    def init(self, arg: Any) -> Any:
        return CONFIG["flags"], CONFIG["children"]


async def test_code_change_re_reads_init(node: object) -> None:
    """Case 80."""
    CONFIG.update(flags=Supervisor.flags(), children=[spec("a", shutdown=2.0)])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    CONFIG.update(
        flags=Supervisor.flags(strategy="one_for_all", intensity=7),
        children=[spec("a", shutdown="brutal_kill"), spec("b")],
    )
    await otp.sys.suspend(sup)
    await otp.sys.change_code(sup, "1", None)
    await otp.sys.resume(sup)
    assert (await Supervisor.get_childspec(sup, "a")).shutdown == "brutal_kill"
    assert await pid(sup, "b") is None  # added, not started
    assert await Supervisor.restart_child(sup, "b") is not None
    # a bad spec: error, nothing changes
    CONFIG.update(children=[ChildSpec(id="a", start=print, shutdown=-1)])
    await otp.sys.suspend(sup)
    with pytest.raises(otp.sys.SysError):
        await otp.sys.change_code(sup, "2", None)
    CONFIG.update(children=[], flags=Supervisor.flags())  # specs that disappear stay
    await otp.sys.change_code(sup, "2", None)
    await otp.sys.resume(sup)
    assert [i.id for i in await Supervisor.which_children(sup)] == ["b", "a"]
    # the new strategy (one_for_all... then one_for_one again) is in force
    await stop_supervisor(sup)


async def test_process_info_shows_the_supervisor_class(node: object) -> None:
    CONFIG.update(flags=Supervisor.flags(), children=[])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link(name="changing"))
    info = otp.process_info(sup)
    assert info is not None and info.behaviour is Changing
    assert (await otp.sys.get_status("changing")).name == "changing"
    await stop_supervisor(sup)


@pytest.mark.parametrize(("entry", "state"), [(Worker, None), ((Worker, "arg"), "arg")])
async def test_child_in_list_forms(node: object, entry: Any, state: Any) -> None:
    sup = await start_sup([entry])
    infos = await Supervisor.which_children(sup)
    assert infos[0].id is Worker and infos[0].modules == (Worker,)
    assert await GenServer.call(infos[0].pid, "state") == state
    await stop_supervisor(sup)


async def test_the_supervisor_that_received_bad_input_keeps_running(node: object) -> None:
    sup = await start_sup([spec("a")])
    a = await pid(sup, "a")
    with pytest.raises(InvalidChildSpec):
        await Supervisor.start_child(sup, ChildSpec(id="b", start=print, shutdown=-1))
    with pytest.raises(InvalidChildSpec):
        await Supervisor.start_child(sup, "junk")
    assert await pid(sup, "a") == a and await counts(sup) == [1, 1, 0, 1]
    await stop_supervisor(sup)


TREE_FAILURES: dict[str, int] = {}


class Branch(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(intensity=2, period=3600), [
            spec("leaf", ("fail_times", TREE_FAILURES, "leaf"))
        ]


async def test_a_tree_of_supervisors(node: object) -> None:
    """Case 59."""
    TREE_FAILURES["leaf"] = 0
    top = await start_sup(
        [
            Branch.child_spec(None, id="sup1"),
            Branch.child_spec(None, id="sup2"),
            Branch.child_spec(None, id="sup3", restart="transient"),
        ],
        strategy="one_for_all",
        intensity=4,
        period=3600,
    )
    await Supervisor.terminate_child(top, "sup3")
    assert await counts(top) == [3, 2, 3, 0]
    sup2 = await pid(top, "sup2")
    leaf = await pid(sup2, "leaf")
    await Supervisor.start_child(sup2, spec("added"))
    with capture_reports():
        otp.send(leaf, "die")  # only the worker restarts
        await ended(leaf)
        assert await pid(top, "sup2") == sup2 and await pid(sup2, "leaf") not in (None, leaf)
        # the next restart fails (restart 2 of 2), its retry is one too many: sup2 gives
        # up and top restarts all three
        TREE_FAILURES["leaf"] = 1
        leaf = await pid(sup2, "leaf")
        otp.send(leaf, "die")
        await ended(sup2)
        assert await counts(top) == [3, 3, 3, 0]
    new_sup2 = await pid(top, "sup2")
    assert new_sup2 != sup2
    assert [i.id for i in await Supervisor.which_children(new_sup2)] == ["leaf"]  # init's only
    await stop_supervisor(top)


async def test_temporary_children_keep_no_start_arguments(node: object) -> None:
    """Case 35."""
    sup = await start_sup([])
    big = "x" * 100_000
    await Supervisor.start_child(sup, spec("temp", big, restart="temporary"))
    await Supervisor.start_child(sup, spec("perm", big))
    state = await otp.sys.get_state(sup)
    kept = {child.id: child.spec for child in state.children}
    assert kept["temp"] is None and kept["perm"] is not None
    await stop_supervisor(sup)


async def test_code_change_can_make_a_child_significant(node: object) -> None:
    """Case 79: never -> any_significant lets a child become significant; its normal exit
    then shuts the supervisor down. Under never, the same upgrade is refused."""
    CONFIG.update(flags=Supervisor.flags(), children=[spec("c", restart="transient")])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    CONFIG.update(children=[spec("c", restart="transient", significant=True)])
    await otp.sys.suspend(sup)
    with pytest.raises(otp.sys.SysError):  # still auto_shutdown="never": refused
        await otp.sys.change_code(sup, "1", None)
    CONFIG.update(flags=Supervisor.flags(auto_shutdown="any_significant"))
    await otp.sys.change_code(sup, "1", None)
    await otp.sys.resume(sup)
    c = await pid(sup, "c")
    otp.send(c, "stop")
    assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
