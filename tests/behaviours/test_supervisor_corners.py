"""Corners of OTP's supervisor the model test does not reach: code change, a group restart
over children still restarting, what a shut-down child may end with, auto shutdown's
silence, and a retry loop that must let others in (supervisor.erl is the reference)."""

from __future__ import annotations

from typing import Any

import otp
from behaviours import ChildSpec, Supervisor, SupervisorReport
from otp.testing import assert_receive, capture_reports

from .samples import AdvancingClock, FakeClock, Worker, ended, pid_of, stop_supervisor
from .test_supervisor import pid, spec, start_sup

CONFIG: dict[str, Any] = {}


class Changing(Supervisor):
    def init(self, arg: Any) -> Any:
        return CONFIG["flags"], CONFIG["children"]


async def change_code(sup: otp.Pid) -> None:
    await otp.sys.suspend(sup)
    await otp.sys.change_code(sup, "1", None)
    await otp.sys.resume(sup)


# A: code change keeps the restart history (OTP set_flags/2 keeps #state.restarts)
async def test_code_change_keeps_restart_history(node: object) -> None:
    clock = FakeClock()
    CONFIG.update(
        flags=Supervisor.flags(intensity=1, period=3600, clock=clock), children=[spec("c")]
    )
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    with capture_reports():
        c = await pid(sup, "c")
        otp.exit(c, otp.KILL)
        await ended(c)  # restart 1 of 1
        await change_code(sup)  # same flags
        c = await pid(sup, "c")
        otp.exit(c, otp.KILL)  # restart 2 within the period: too many
        assert await assert_receive(otp.Exit, timeout=2) == otp.Exit(sup, otp.SHUTDOWN)


# B: after a code change children are ordered as the new init lists them, removed ones last
async def test_code_change_orders_children_as_the_new_init(node: object) -> None:
    CONFIG.update(flags=Supervisor.flags(), children=[spec("a"), spec("b")])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    CONFIG.update(children=[spec("new"), spec("a"), spec("b")])
    await change_code(sup)
    # OTP update_childspec1/3: {lists:reverse(Ids ++ KeepOld), ...} -> [b, a, new]
    assert [i.id for i in await Supervisor.which_children(sup)] == ["b", "a", "new"]
    await stop_supervisor(sup)


# C: a temporary spec added by a code change can be restarted (OTP keeps its mfargs)
async def test_code_change_added_temporary_child_can_be_restarted(node: object) -> None:
    CONFIG.update(flags=Supervisor.flags(), children=[])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    CONFIG.update(children=[spec("t", restart="temporary")])
    await change_code(sup)
    assert [(i.id, i.pid) for i in await Supervisor.which_children(sup)] == [("t", None)]
    with capture_reports():
        new = await Supervisor.restart_child(sup, "t")
    assert isinstance(new, otp.Pid)
    await stop_supervisor(sup)


# D: a group restart resets every child of the group to "not running" (OTP
# restart_multiple_children/3 -> terminate_children/2: pid=undefined), so a child that was
# 'restarting' and is not reached by a failing round is no longer 'restarting'
async def test_group_restart_clears_restarting_of_siblings(node: object) -> None:
    plan: dict[str, list[str]] = {"c1": [], "c2": []}

    async def flaky(id: str) -> Any:
        fail = bool(plan[id]) and plan[id].pop(0) == "fail"
        return await Worker.start_link(("fail_if", {id: fail}, id))  # fails in the child

    sup = await start_sup(
        [ChildSpec("c1", (flaky, "c1")), ChildSpec("c2", (flaky, "c2"))],
        strategy="one_for_all",
        intensity=5,
        period=10,
        clock=AdvancingClock(11),
    )
    plan["c1"] = ["ok"] + ["fail"] * 1000  # round 1 ok, then always failing
    plan["c2"] = ["fail"] * 1000
    c2 = await pid(sup, "c2")
    with capture_reports():
        otp.send(c2, "die")
        await ended(c2)
        for _ in range(100):  # until round 2 has failed on c1
            rows = {i.id: i.pid for i in await Supervisor.which_children(sup)}
            if rows["c1"] == "restarting":
                break
        assert rows == {"c1": "restarting", "c2": None}
        await Supervisor.terminate_child(sup, "c1")
        await stop_supervisor(sup)


# D': the same under rest_for_one: a later child's pending retry must not start it alone
async def test_rest_for_one_pending_retry_of_a_later_child_is_dropped(node: object) -> None:
    plan: dict[str, list[str]] = {"c1": [], "c2": [], "c3": []}
    starts: list[str] = []

    async def flaky(id: str) -> Any:
        starts.append(id)
        fail = bool(plan[id]) and plan[id].pop(0) == "fail"
        if fail and id == "c3":  # c1 dies while c3 fails to start
            c1 = CONFIG["c1"]
            otp.exit(c1, otp.KILL)
            await ended(c1)
        return await Worker.start_link(("fail_if", {id: fail}, id))

    sup = await start_sup(
        [ChildSpec(i, (flaky, i)) for i in ("c1", "c2", "c3")],
        strategy="rest_for_one",
        intensity=50,
        period=10,
        clock=AdvancingClock(11),
    )
    CONFIG["c1"] = await pid(sup, "c1")
    plan["c3"] = ["fail"]
    plan["c1"] = ["fail", "fail", "fail"]
    starts.clear()
    c3 = await pid(sup, "c3")
    with capture_reports():
        otp.send(c3, "die")
        await ended(c3)
        for _ in range(100):
            rows = {i.id: i.pid for i in await Supervisor.which_children(sup)}
            if all(isinstance(p, otp.Pid) for p in rows.values()):
                break
    # OTP: c3 (fail), c1 (fail) x3, then c1 c2 c3: c3 is never started while c1 is down
    assert starts == ["c3", "c1", "c1", "c1", "c1", "c2", "c3"]
    await stop_supervisor(sup)


# E: shutdown_error for a permanent child that ends with {shutdown,_} (OTP shutdown/1)
async def test_shutdown_error_for_permanent_child_ending_with_shutdown_tuple(node: object) -> None:
    async def body() -> None:
        otp.process_flag("trap_exit", True)
        await otp.receive()
        otp.exit(("shutdown", "late"))

    async def start() -> otp.Pid:
        return otp.spawn_link(body)

    sup = await start_sup([ChildSpec("odd", start)])
    with capture_reports() as reports:
        await stop_supervisor(sup)
    got = [(r.context, r.reason, r.offender) for r in reports if isinstance(r, SupervisorReport)]
    assert got == [("shutdown_error", ("shutdown", "late"), "odd")]


# H: auto shutdown is not an error report in OTP (do_auto_shutdown/2 just returns shutdown)
async def test_auto_shutdown_logs_no_supervisor_report(node: object) -> None:
    sup = await start_sup(
        [spec("sig", restart="transient", significant=True)], auto_shutdown="any_significant"
    )
    sig = await pid(sup, "sig")
    with capture_reports() as reports:
        otp.send(sig, "stop")
        assert await assert_receive(otp.Exit) == otp.Exit(sup, otp.SHUTDOWN)
    assert [r for r in reports if isinstance(r, SupervisorReport)] == []


# G: a restart loop whose start fails without suspending must still let other processes run
# (OTP restart/2: "Leaving control back to gen_server before trying again ... e.g. a
# shutdown request for the supervisor or the child")
async def test_a_restart_loop_lets_other_processes_in(node: object) -> None:
    attempts = {"n": 0, "fail": False}

    async def start() -> Any:
        if attempts["fail"]:
            attempts["n"] += 1
            if attempts["n"] < 10_000:
                raise RuntimeError("not yet")
        return await Worker.start_link(None)

    sup = await start_sup([ChildSpec("c", start)], intensity=5, period=10, clock=AdvancingClock(11))
    c = await pid(sup, "c")
    attempts["fail"] = True
    with capture_reports():
        otp.exit(c, otp.KILL)
        await ended(c)
        await Supervisor.terminate_child(sup, "c")  # answered between two retries
    assert attempts["n"] < 10_000
    await stop_supervisor(sup)


async def _ignore() -> None:
    return None


async def test_restart_child_twice_of_an_ignoring_temporary_child(node: object) -> None:
    """OTP answers {ok, undefined} both times; the child stays, with its spec."""
    CONFIG.update(flags=Supervisor.flags(), children=[])
    otp.process_flag("trap_exit", True)
    sup = pid_of(await Changing.start_link())
    CONFIG.update(children=[ChildSpec("t", _ignore, restart="temporary")])
    await change_code(sup)
    with capture_reports():
        assert await Supervisor.restart_child(sup, "t") is None
        assert await Supervisor.restart_child(sup, "t") is None
    await stop_supervisor(sup)
