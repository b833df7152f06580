"""Cases of otp-cases §1-§7 and requirements of the supervisor work the other files did not
pin down: each test here fails if its behaviour regresses (checked by breaking the code)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

import otp
from behaviours import (
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    InvalidChildSpec,
    NoReply,
    Supervisor,
    SupervisorReport,
)
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import Worker, ended, pid_of, stop_supervisor
from .test_supervisor import counts, pid, spec, start_sup


async def test_case5_a_supervisor_type_spec_defaults_to_infinity(node: object) -> None:
    sup = await start_sup([ChildSpec(id="s", start=(Supervisor.start_link, []), type="supervisor")])
    assert (await Supervisor.get_childspec(sup, "s")).shutdown == math.inf
    await stop_supervisor(sup)


async def test_case5_modules_default_to_the_start_module(node: object) -> None:
    sup = await start_sup([ChildSpec(id="w", start=(Worker.start_link, None))])
    assert (await Supervisor.get_childspec(sup, "w")).modules == (Worker,)
    await stop_supervisor(sup)


async def test_case14_a_temporary_child_in_init_that_ignores_is_not_stored(node: object) -> None:
    sup = await start_sup([spec("sib"), spec("temp", ("ignore",), restart="temporary")])
    assert [i.id for i in await Supervisor.which_children(sup)] == ["sib"]
    assert await counts(sup) == [1, 1, 0, 1]
    await stop_supervisor(sup)


class Plain(GenServer[Any]):
    """Does not trap exits; reports terminate to "watcher"."""

    def init(self, arg: Any) -> Any:
        return arg

    def terminate(self, reason: Any, state: Any) -> None:
        otp.send("watcher", ("terminated", otp.self(), reason))


async def test_case45_a_child_that_does_not_trap_exits_dies_without_terminate(
    node: object,
) -> None:
    otp.register("watcher", otp.self())
    sup = await start_sup([Plain.child_spec(None, id="p", shutdown=1.0)])
    p = await pid(sup, "p")
    ref = otp.monitor(p)
    await stop_supervisor(sup)
    assert (await assert_receive(otp.Down)) == otp.Down(ref, p, otp.SHUTDOWN)
    await refute_receive(lambda m: type(m) is tuple and m[0] == "terminated", timeout=0)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_case51_a_sibling_restart_failing_escalates(node: object, strategy: str) -> None:
    flags = {"f": False}
    sup = await start_sup(
        [spec("c1"), spec("c2", ("fail_if", flags, "f")), spec("c3")],
        strategy=strategy,
        intensity=2,
        period=3600,
    )
    c1, c3 = await pid(sup, "c1"), await pid(sup, "c3")
    r3 = otp.monitor(c3)
    flags["f"] = True
    with capture_reports():
        otp.send(c1, "die")
        assert await assert_receive(otp.Exit, timeout=5) == otp.Exit(sup, otp.SHUTDOWN)
    assert await assert_receive(otp.Down) == otp.Down(r3, c3, otp.SHUTDOWN)
    assert otp.processes() == [otp.self()]  # the freshly restarted c1 was stopped too


class Gate(GenServer[Any]):
    """On shutdown, says so to "watcher", then waits for "go" before it ends."""

    def init(self, arg: Any) -> Any:
        otp.process_flag("trap_exit", True)
        return arg

    def handle_info(self, msg: Any, state: Any) -> Any:
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        otp.send("watcher", ("terminating", otp.self()))
        await otp.receive(lambda m: m == "go")


async def test_dynamic_children_are_signalled_before_any_has_ended(node: object) -> None:
    """Case 69 / the bullet: all children get SHUTDOWN at once, not one after another."""
    otp.register("watcher", otp.self())
    otp.process_flag("trap_exit", True)
    sup = await DynamicSupervisor.start_link()
    kids = [
        pid_of(await DynamicSupervisor.start_child(sup, Gate.child_spec(None, shutdown=math.inf)))
        for _ in range(3)
    ]
    otp.exit(sup, otp.SHUTDOWN)
    seen = {(await assert_receive(lambda m: m[0] == "terminating"))[1] for _ in kids}
    assert seen == set(kids)
    for k in kids:
        otp.send(k, "go")
    assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


@pytest.mark.parametrize("how", ["kill", "die", "stop"])
async def test_case73_a_significant_temporary_child_ending_shuts_down(
    node: object, how: str
) -> None:
    sup = await start_sup(
        [spec("other"), spec("sig", restart="temporary", significant=True)],
        auto_shutdown="any_significant",
    )
    other, sig = await pid(sup, "other"), await pid(sup, "sig")
    with capture_reports():
        otp.exit(sig, otp.KILL) if how == "kill" else otp.send(sig, how)
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert not otp.is_alive(other)


class Middle(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(auto_shutdown="any_significant"), [
            spec("leaf", restart="transient", significant=True)
        ]


async def test_case78_a_non_significant_middle_supervisor_goes_alone(node: object) -> None:
    top = await start_sup(
        [Middle.child_spec(None, id="b", restart="transient")], auto_shutdown="any_significant"
    )
    b = await pid(top, "b")
    leaf = await pid(b, "leaf")
    otp.send(leaf, "stop")
    assert await ended(b) == otp.SHUTDOWN
    assert [(i.id, i.pid) for i in await Supervisor.which_children(top)] == [("b", None)]
    await stop_supervisor(top)


CONFIG: dict[str, Any] = {}


class Changing(Supervisor):
    def init(self, arg: Any) -> Any:
        return CONFIG["init"]()


async def change_code(sup: otp.Pid, init: Any) -> None:
    CONFIG["init"] = init
    await otp.sys.suspend(sup)
    try:
        await otp.sys.change_code(sup, "1", None)
    finally:
        await otp.sys.resume(sup)


def sig(id: str, significant: bool = True) -> ChildSpec:
    return spec(id, restart="transient", significant=significant)


async def start_changing(init: Any) -> otp.Pid:
    CONFIG["init"] = init
    otp.process_flag("trap_exit", True)
    return pid_of(await Changing.start_link())


async def test_case79_any_to_never(node: object) -> None:
    sup = await start_changing(
        lambda: (Supervisor.flags(auto_shutdown="any_significant"), [sig("s")])
    )
    await change_code(sup, lambda: (Supervisor.flags(), []))  # s is no longer listed: it stays
    s = await pid(sup, "s")
    otp.send(s, "stop")
    await ended(s)
    assert otp.is_alive(sup) and await pid(sup, "s") is None
    with pytest.raises(InvalidChildSpec):
        await Supervisor.start_child(sup, sig("new"))
    await stop_supervisor(sup)


async def test_case79_any_to_all(node: object) -> None:
    sup = await start_changing(
        lambda: (Supervisor.flags(auto_shutdown="any_significant"), [sig("a"), sig("b")])
    )
    await change_code(
        sup, lambda: (Supervisor.flags(auto_shutdown="all_significant"), [sig("a"), sig("b")])
    )
    a = await pid(sup, "a")
    otp.send(a, "stop")
    await ended(a)
    assert otp.is_alive(sup)
    otp.send(await pid(sup, "b"), "stop")
    assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)


async def test_case79_significant_back_to_false(node: object) -> None:
    flags = Supervisor.flags(auto_shutdown="any_significant")
    sup = await start_changing(lambda: (flags, [sig("a")]))
    await change_code(sup, lambda: (flags, [sig("a", significant=False)]))
    a = await pid(sup, "a")
    otp.send(a, "stop")
    await ended(a)
    assert otp.is_alive(sup)
    await stop_supervisor(sup)


async def test_case80_new_flags_take_effect(node: object) -> None:
    sup = await start_changing(lambda: (Supervisor.flags(intensity=0), [spec("a"), spec("b")]))
    await change_code(
        sup, lambda: (Supervisor.flags(strategy="one_for_all", intensity=5), [spec("a"), spec("b")])
    )
    a, b = await pid(sup, "a"), await pid(sup, "b")
    with capture_reports():
        otp.send(a, "die")
        await ended(a)
        assert await ended(b) == otp.SHUTDOWN  # one_for_all now
    assert otp.is_alive(sup)  # intensity 5 now, not 0
    assert await pid(sup, "b") not in (None, b)
    await stop_supervisor(sup)


async def test_case80_ignore_bad_return_and_bad_flags(node: object) -> None:
    sup = await start_changing(lambda: (Supervisor.flags(), [spec("a", shutdown=2.0)]))
    a = await pid(sup, "a")
    await change_code(sup, lambda: otp.IGNORE)  # ok, no change
    bad_inits: list[Callable[[], Any]] = [
        lambda: "garbage",
        lambda: (Supervisor.flags(intensity=-1), []),
    ]
    for bad in bad_inits:
        with pytest.raises(otp.sys.SysError):
            await change_code(sup, bad)
    assert await pid(sup, "a") == a
    assert (await Supervisor.get_childspec(sup, "a")).shutdown == 2.0
    await stop_supervisor(sup)


async def test_reports_go_to_otp_supervisor_as_frozen_records(node: object) -> None:
    sup = await start_sup([spec("c")], intensity=5)
    c = await pid(sup, "c")
    with capture_reports("otp.supervisor") as reports:
        otp.send(c, "die")
        await ended(c)
        await Supervisor.which_children(sup)
    got = [r for r in reports if isinstance(r, SupervisorReport)]
    assert [(r.context, r.reason, r.offender) for r in got] == [("child_terminated", "died", "c")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].reason = "x"  # type: ignore[misc]
    await stop_supervisor(sup)


async def test_case35_dynamic_temporary_children_keep_no_start_arguments(node: object) -> None:
    otp.process_flag("trap_exit", True)
    sup = await DynamicSupervisor.start_link()
    big = "x" * 100_000
    t = await DynamicSupervisor.start_child(sup, Worker.child_spec(big, restart="temporary"))
    p = await DynamicSupervisor.start_child(sup, Worker.child_spec(big))
    state = await otp.sys.get_state(sup)
    assert state.children[t].spec is None and state.children[t].args == ()
    assert state.children[p].spec is not None
    await stop_supervisor(sup)


class BadTree(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), [spec("ok"), spec("bad", ("fail_if", {"b": True}, "b"))]


async def test_case18_the_application_start_returns_the_supervisor_failure(node: object) -> None:
    otp.application.load(otp.Application(name="badtree", start=BadTree.start_link, vsn="1"))
    with capture_reports(), pytest.raises(otp.application.ApplicationError) as info:
        await otp.application.start("badtree")
    assert isinstance(info.value.reason, otp.StartError)
    assert info.value.reason.reason == (
        otp.SHUTDOWN,
        ("failed_to_start_child", "bad", ("start_failed", "b")),
    )


async def test_subclass_start_link_refuses_base_class_flags(node: object) -> None:
    """api.md: Sub.start_link(arg=None, *, name=None); flags belong in init."""
    otp.process_flag("trap_exit", True)
    with pytest.raises((TypeError, ValueError)):
        await Empty.start_link(None, strategy="bogus", intensity=-5)


class Empty(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), []


class BadFlags(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(strategy=arg), []


async def test_case12_bad_flags_from_a_subclass_init(node: object) -> None:
    otp.process_flag("trap_exit", True)
    with capture_reports(), pytest.raises(ValueError, match="strategy") as info:
        await BadFlags.start_link("one_for_some")
    assert "Got: 'one_for_some'" in str(info.value)
    await refute_receive(otp.Exit, timeout=0)
    assert otp.processes() == [otp.self()]
