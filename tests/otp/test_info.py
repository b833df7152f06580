"""Looking at processes: is_alive, processes, process_info."""

from __future__ import annotations

import asyncio

import pytest

import otp
from otp.testing import assert_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


async def test_process_info_describes_a_live_process(node: object) -> None:
    pid = otp.spawn_link(idle)
    otp.register("idle", pid)
    otp.send(pid, "queued")
    await asyncio.sleep(0)
    info = otp.process_info(pid)
    assert info is not None
    assert info.pid == pid and info.registered_name == "idle"
    assert info.status == "waiting" and info.message_queue_len == 1 and info.message_count == 1
    assert info.links == (otp.self(),) and info.parent == otp.self()
    assert info.trap_exit is False and info.behaviour is None and info.application is None
    assert info.initial_call.endswith(".idle")
    me = otp.process_info(otp.self())
    assert me is not None and me.status == "running"
    otp.unlink(pid)
    otp.exit(pid, otp.KILL)


async def test_process_info_of_a_dead_pid_is_none(node: object) -> None:
    pid, _ = otp.spawn_monitor(idle)
    otp.exit(pid, otp.KILL)
    await assert_receive(otp.Down)
    assert otp.process_info(pid) is None
    assert otp.is_alive(pid) is False


async def test_processes_lists_live_processes_oldest_first(node: object) -> None:
    a, b = otp.spawn(idle), otp.spawn(idle)
    assert otp.processes() == [otp.self(), a, b]
    assert otp.is_alive(a) and otp.is_alive(b)
    for pid in (a, b):
        otp.exit(pid, otp.KILL)


async def test_info_functions_require_a_pid(node: object) -> None:
    with pytest.raises(TypeError, match="Pid"):
        otp.is_alive("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Pid"):
        otp.process_info("x")  # type: ignore[arg-type]
