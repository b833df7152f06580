"""Local names: register, unregister, whereis, registered, and their errors."""

from __future__ import annotations

import pytest

import otp
from otp.testing import assert_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


async def test_register_whereis_registered_unregister(node: object) -> None:
    pid = otp.spawn(idle)
    otp.register("worker", pid)
    assert otp.whereis("worker") == pid
    assert "worker" in otp.registered()
    info = otp.process_info(pid)
    assert info is not None and info.registered_name == "worker"
    otp.unregister("worker")
    assert otp.whereis("worker") is None
    assert otp.registered() == []
    otp.exit(pid, otp.KILL)


async def test_a_name_is_freed_when_its_process_dies(node: object) -> None:
    pid = otp.spawn(idle)
    otp.register("worker", pid)
    ref = otp.monitor(pid)
    otp.exit(pid, otp.KILL)
    await assert_receive(otp.Down(ref, pid, otp.KILLED))
    assert otp.whereis("worker") is None
    otp.register("worker", otp.self())  # free again
    assert otp.whereis("worker") == otp.self()


async def test_a_taken_name_raises_already_registered_with_the_holder(node: object) -> None:
    otp.register("taken", otp.self())
    other = otp.spawn(idle)
    with pytest.raises(otp.AlreadyRegisteredError, match="'taken'") as info:
        otp.register("taken", other)
    assert info.value.pid == otp.self() and info.value.name == "taken"
    assert otp.process_info(other).registered_name is None  # type: ignore[union-attr]
    otp.exit(other, otp.KILL)


async def test_a_process_holds_at_most_one_name(node: object) -> None:
    otp.register("first", otp.self())
    with pytest.raises(otp.AlreadyRegisteredError, match="already registered as 'first'"):
        otp.register("second", otp.self())
    assert otp.whereis("second") is None and otp.registered() == ["first"]


async def test_unregister_of_an_unknown_name_raises(node: object) -> None:
    with pytest.raises(otp.NotRegisteredError, match="'ghost'"):
        otp.unregister("ghost")


async def test_registering_a_dead_pid_raises_and_leaves_nothing(node: object) -> None:
    pid, _ = otp.spawn_monitor(idle)
    otp.exit(pid, otp.KILL)
    await assert_receive(otp.Down)
    with pytest.raises(otp.NoProcessError, match="not alive"):
        otp.register("late", pid)
    assert otp.whereis("late") is None


@pytest.mark.parametrize("name", [42, None, b"bytes", ("a", "b")])
async def test_a_name_that_is_not_a_str_raises_type_error(node: object, name: object) -> None:
    with pytest.raises(TypeError, match="str"):
        otp.register(name, otp.self())
    with pytest.raises(TypeError, match="str"):
        otp.whereis(name)
    with pytest.raises(TypeError, match="str"):
        otp.unregister(name)  # type: ignore[arg-type]
    assert otp.registered() == []


async def test_register_requires_a_pid(node: object) -> None:
    with pytest.raises(TypeError, match="Pid"):
        otp.register("x", "not a pid")  # type: ignore[arg-type]
    assert otp.registered() == []
