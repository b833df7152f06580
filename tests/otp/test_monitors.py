"""Monitors: by pid and by name, dead targets, demonitor with and without flush."""

from __future__ import annotations

import otp
from otp.testing import assert_receive, refute_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


async def exits_when_told() -> None:
    otp.exit(await otp.receive())


async def test_monitor_by_pid_delivers_down_with_the_exit_reason(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    ref = otp.monitor(pid)
    otp.send(pid, "died")
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, "died")


async def test_monitor_by_name_delivers_down_with_the_pid(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    otp.register("target", pid)
    ref = otp.monitor("target")
    local = otp.monitor(("target", "nonode@nohost"))
    otp.send("target", otp.NORMAL)
    downs = {await assert_receive(otp.Down), await assert_receive(otp.Down)}
    assert downs == {otp.Down(ref, pid, otp.NORMAL), otp.Down(local, pid, otp.NORMAL)}


async def test_monitoring_a_dead_pid_delivers_noproc_at_once(node: object) -> None:
    pid, ref = otp.spawn_monitor(exits_when_told)
    otp.send(pid, otp.NORMAL)
    await assert_receive(otp.Down)
    ref = otp.monitor(pid)
    assert await otp.receive(timeout=0) == otp.Down(ref, pid, otp.NOPROC)


async def test_monitoring_an_unregistered_name_delivers_noproc_with_the_name(node: object) -> None:
    ref = otp.monitor("nobody")
    assert await otp.receive(timeout=0) == otp.Down(ref, "nobody", otp.NOPROC)


async def test_monitoring_a_name_on_an_unreachable_node_delivers_noconnection(
    node: object,
) -> None:
    ref = otp.monitor(("name", "other@host"))
    assert await otp.receive(timeout=0) == otp.Down(ref, ("name", "other@host"), otp.NOCONNECTION)


async def test_demonitor_stops_the_down_message(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    ref = otp.monitor(pid)
    assert otp.demonitor(ref) is True
    assert otp.demonitor(ref) is False
    done = otp.monitor(pid)
    otp.send(pid, "bye")
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == done)
    await refute_receive(otp.Down, timeout=0.02)


async def test_demonitor_with_flush_drops_a_down_already_queued(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    ref = otp.monitor(pid)
    witness = otp.monitor(pid)
    otp.send(otp.self(), "before")
    otp.send(pid, "bye")
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == witness)
    otp.send(otp.self(), "after")
    assert otp.demonitor(ref, flush=True) is False  # it had fired already
    assert [await otp.receive(timeout=0), await otp.receive(timeout=0)] == ["before", "after"]
    await refute_receive(timeout=0)


async def test_demonitor_without_flush_leaves_a_queued_down(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    ref = otp.monitor(pid)
    otp.send(pid, "bye")
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    otp.send(otp.self(), otp.Down(ref, pid, "bye"))  # a Down like it, queued
    otp.demonitor(ref)
    assert await otp.receive(timeout=0) == otp.Down(ref, pid, "bye")


async def test_spawn_monitor_sets_the_monitor_before_the_process_runs(node: object) -> None:
    async def quick() -> None:
        pass

    pid, ref = otp.spawn_monitor(quick)
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, otp.NORMAL)


async def test_a_monitor_is_one_way(node: object) -> None:
    async def watcher(target: otp.Pid, parent: otp.Pid) -> None:
        otp.monitor(target)
        otp.send(parent, "watching")
        otp.exit("watcher died")

    target = otp.spawn(idle)
    tref = otp.monitor(target)
    _, wref = otp.spawn_monitor(watcher, target, otp.self())
    await assert_receive("watching")
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == wref)
    assert otp.is_alive(target)
    info = otp.process_info(target)
    assert info is not None and info.monitored_by == (otp.self(),)
    otp.exit(target, otp.KILL)
    assert (await assert_receive(otp.Down)).ref == tref


async def test_monitors_show_in_process_info_and_go_when_they_fire(node: object) -> None:
    pid = otp.spawn(exits_when_told)
    otp.monitor(pid)
    info = otp.process_info(otp.self())
    assert info is not None and info.monitors == (pid,)
    otp.send(pid, "bye")
    await assert_receive(otp.Down)
    info = otp.process_info(otp.self())
    assert info is not None and info.monitors == ()
