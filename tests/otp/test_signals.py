"""Links and exit signals: propagation, trapping, kill, normal and shutdown reasons."""

from __future__ import annotations

import pytest

import otp
from otp.testing import assert_receive, capture_reports, refute_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


async def trapping_idle(parent: otp.Pid) -> None:
    otp.process_flag("trap_exit", True)
    otp.send(parent, ("trapping", otp.self()))
    while True:
        otp.send(parent, ("trapped", otp.self(), await otp.receive()))


async def exits_with(reason: object) -> None:
    await otp.receive(lambda m: m == "go")
    otp.exit(reason)


async def exits_when_told() -> None:
    _, reason = await otp.receive(lambda m: isinstance(m, tuple) and m[0] == "exit")
    otp.exit(reason)


async def raises() -> None:
    await otp.receive(lambda m: m == "go")
    raise RuntimeError("crashed")


async def linked_pair(parent: otp.Pid, body: object) -> None:
    """Link to a new process running `body`, tell the parent both pids, then idle."""
    other = otp.spawn_link(body)  # type: ignore[arg-type]
    otp.send(parent, ("pair", otp.self(), other))
    await idle()


async def start_pair(body: object) -> tuple[otp.Pid, otp.Pid, otp.Ref, otp.Ref]:
    otp.spawn(linked_pair, otp.self(), body)
    _, holder, other = await assert_receive(lambda m: m[0] == "pair")
    return holder, other, otp.monitor(holder), otp.monitor(other)


async def down_of(ref: otp.Ref) -> object:
    down = await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    return down.reason


@pytest.mark.parametrize("reason", ["died", ("shutdown", "x"), otp.SHUTDOWN])
async def test_a_non_normal_exit_kills_linked_processes_with_the_same_reason(
    node: object, reason: object
) -> None:
    _, other, href, oref = await start_pair(exits_when_told)
    otp.send(other, ("exit", reason))
    assert await down_of(oref) == reason
    assert await down_of(href) == reason


async def test_links_work_both_ways(node: object) -> None:
    holder, _, href, oref = await start_pair(idle)
    otp.exit(holder, "boom")
    assert await down_of(href) == "boom"
    assert await down_of(oref) == "boom"


async def test_a_normal_exit_does_not_kill_linked_processes(node: object) -> None:
    holder, other, href, oref = await start_pair(exits_when_told)
    otp.send(other, ("exit", otp.NORMAL))
    assert await down_of(oref) == otp.NORMAL
    await refute_receive(otp.Down)
    assert otp.is_alive(holder)
    otp.exit(holder, otp.KILL)
    assert await down_of(href) == otp.KILLED


async def test_a_raising_process_exits_with_the_exception_and_logs_a_crash_report(
    node: object,
) -> None:
    with capture_reports() as reports:
        holder, other, href, oref = await start_pair(raises)
        otp.send(other, "go")
        reason = await down_of(oref)
        assert await down_of(href) is reason
    assert isinstance(reason, RuntimeError)
    assert len(reports) == 1  # only the process that raised reports, not the one it took down
    report = reports[0]
    assert isinstance(report, otp.reports.CrashReport)
    assert report.pid == other and report.reason is reason and report.links == (holder,)
    assert report.initial_call.endswith("raises")


@pytest.mark.parametrize("reason", [otp.NORMAL, otp.SHUTDOWN, ("shutdown", "why")])
async def test_normal_and_shutdown_exits_log_no_crash_report(node: object, reason: object) -> None:
    with capture_reports() as reports:
        pid, ref = otp.spawn_monitor(exits_with, reason)
        otp.send(pid, "go")
        assert await down_of(ref) == reason
    assert reports == []


async def test_exit_with_an_abnormal_reason_logs_a_crash_report(node: object) -> None:
    with capture_reports() as reports:
        pid, ref = otp.spawn_monitor(exits_with, "bad")
        otp.send(pid, "go")
        assert await down_of(ref) == "bad"
    assert [r.reason for r in reports] == ["bad"]


async def test_a_trapping_process_gets_exit_messages_instead_of_dying(node: object) -> None:
    trapper = otp.spawn(trapping_idle, otp.self())
    await assert_receive(("trapping", trapper))
    otp.exit(trapper, "from outside")
    assert await assert_receive(lambda m: m[0] == "trapped") == (
        "trapped",
        trapper,
        otp.Exit(otp.self(), "from outside"),
    )
    otp.exit(trapper, otp.NORMAL)
    assert (await assert_receive(lambda m: m[0] == "trapped"))[2] == otp.Exit(
        otp.self(), otp.NORMAL
    )
    otp.exit(trapper, otp.KILL)


async def test_exit_messages_from_linked_processes_reach_a_trapper(node: object) -> None:
    otp.process_flag("trap_exit", True)
    crasher = otp.spawn_link(exits_with, "died")
    normal = otp.spawn_link(exits_with, otp.NORMAL)
    otp.send(crasher, "go")
    otp.send(normal, "go")
    assert await assert_receive(otp.Exit(crasher, "died"))
    assert await assert_receive(otp.Exit(normal, otp.NORMAL))


async def test_process_flag_returns_the_old_value_and_rejects_unknown_flags(node: object) -> None:
    assert otp.process_flag("trap_exit", True) is False
    assert otp.process_flag("trap_exit", False) is True
    with pytest.raises(ValueError, match="'priority'"):
        otp.process_flag("priority", True)


async def test_kill_cannot_be_trapped_and_arrives_as_killed(node: object) -> None:
    otp.process_flag("trap_exit", True)
    trapper = otp.spawn_link(trapping_idle, otp.self())
    await assert_receive(("trapping", trapper))
    ref = otp.monitor(trapper)
    otp.exit(trapper, otp.KILL)
    assert await down_of(ref) == otp.KILLED
    assert await assert_receive(otp.Exit) == otp.Exit(trapper, otp.KILLED)


async def test_a_link_carries_kill_as_an_ordinary_trappable_reason(node: object) -> None:
    otp.process_flag("trap_exit", True)
    pid = otp.spawn_link(exits_with, otp.KILL)
    otp.send(pid, "go")
    assert await assert_receive(otp.Exit) == otp.Exit(pid, otp.KILL)
    # a non-trapping process linked to it dies with `kill`, not `killed`
    _, other, href, oref = await start_pair(exits_when_told)
    otp.send(other, ("exit", otp.KILL))
    assert await down_of(oref) == otp.KILL
    assert await down_of(href) == otp.KILL


async def test_exit_normal_to_a_non_trapping_process_is_ignored(node: object) -> None:
    pid, ref = otp.spawn_monitor(idle)
    otp.exit(pid, otp.NORMAL)
    await refute_receive(otp.Down, timeout=0.02)
    assert otp.is_alive(pid)
    otp.exit(pid, otp.KILL)
    assert await down_of(ref) == otp.KILLED


async def test_exit_self_normal_ends_the_caller_normally(node: object) -> None:
    async def quits(parent: otp.Pid) -> None:
        otp.exit(otp.self(), otp.NORMAL)
        otp.send(parent, "still running")

    _, ref = otp.spawn_monitor(quits, otp.self())
    assert await down_of(ref) == otp.NORMAL
    await refute_receive("still running", timeout=0)


async def test_exit_self_with_a_reason_stops_the_caller_at_once(node: object) -> None:
    async def quits(parent: otp.Pid) -> None:
        try:
            otp.exit(otp.self(), "bye")
        except Exception:  # not an Exception: a signal cannot be caught as an error
            otp.send(parent, "caught")
        otp.send(parent, "still running")

    with capture_reports() as reports:
        _, ref = otp.spawn_monitor(quits, otp.self())
        assert await down_of(ref) == "bye"
    await refute_receive(timeout=0)
    assert reports == []  # killed by a signal, not crashed


async def test_spawn_link_delivers_the_child_exit_to_the_parent(node: object) -> None:
    async def parent(top: otp.Pid) -> None:
        child = otp.spawn_link(raises)
        otp.send(top, ("child", child))
        await idle()

    with capture_reports():
        _, ref = otp.spawn_monitor(parent, otp.self())
        (_, child) = await assert_receive(lambda m: m[0] == "child")
        otp.send(child, "go")
        reason = await down_of(ref)
    assert isinstance(reason, RuntimeError)


async def test_a_child_dies_with_its_linked_parent_before_it_ever_ran(node: object) -> None:
    async def parent(top: otp.Pid) -> None:
        child = otp.spawn_link(idle)
        otp.send(top, ("child", child, otp.monitor(child)))
        otp.exit("parent died")

    otp.spawn(parent, otp.self())
    _, child, _ = await assert_receive(lambda m: m[0] == "child")
    ref = otp.monitor(child)
    assert await down_of(ref) in ("parent died", otp.NOPROC)
    assert not otp.is_alive(child)


async def test_linking_a_dead_pid_delivers_noproc(node: object) -> None:
    dead, ref = otp.spawn_monitor(exits_with, otp.NORMAL)
    otp.send(dead, "go")
    await down_of(ref)
    otp.process_flag("trap_exit", True)
    otp.link(dead)
    assert await assert_receive(otp.Exit) == otp.Exit(dead, otp.NOPROC)

    async def links_to(pid: otp.Pid, parent: otp.Pid) -> None:
        otp.link(pid)
        otp.send(parent, "survived")

    _, ref = otp.spawn_monitor(links_to, dead, otp.self())
    assert await down_of(ref) == otp.NOPROC
    await refute_receive("survived", timeout=0)


async def test_unlink_stops_propagation(node: object) -> None:
    async def unlinker(parent: otp.Pid) -> None:
        child = otp.spawn_link(exits_with, "died")
        otp.unlink(child)
        otp.send(child, "go")
        otp.send(parent, ("child", child, otp.monitor(child)))
        await idle()

    pid, ref = otp.spawn_monitor(unlinker, otp.self())
    _, child, _ = await assert_receive(lambda m: m[0] == "child")
    info = otp.process_info(pid)
    assert info is not None and info.links == ()
    cref = otp.monitor(child)
    assert await down_of(cref) in ("died", otp.NOPROC)
    await refute_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref, timeout=0.02)
    otp.exit(pid, otp.KILL)
    await down_of(ref)


async def test_linking_twice_and_linking_self_are_harmless(node: object) -> None:
    pid = otp.spawn(idle)
    otp.link(pid)
    otp.link(pid)
    otp.link(otp.self())
    info = otp.process_info(otp.self())
    assert info is not None and info.links == (pid,)
    otp.unlink(pid)
    otp.exit(pid, otp.KILL)


async def test_bad_arguments_to_signal_functions_raise_type_error(node: object) -> None:
    with pytest.raises(TypeError, match="link"):
        otp.link("name")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exit"):
        otp.exit("name", otp.KILL)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="exit"):
        otp.exit()  # type: ignore[call-overload]


async def test_exit_signal_to_a_dead_pid_is_ignored(node: object) -> None:
    pid, ref = otp.spawn_monitor(exits_with, otp.NORMAL)
    otp.send(pid, "go")
    await down_of(ref)
    otp.exit(pid, "late")
