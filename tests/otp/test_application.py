"""Applications and the application controller (otp-cases §13, cases 133-144)."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Reply, Supervisor
from otp.application import ApplicationError
from otp.testing import assert_receive, capture_reports

EVENTS: list[str] = []


class Holder(GenServer[str]):
    def init(self, app: str) -> str:
        otp.process_flag("trap_exit", True)
        EVENTS.append(f"start {app}")
        return app

    def handle_call(self, request: Any, from_: Any, state: str) -> Reply[str]:
        if request == "spawn_outside":
            pid = otp.spawn(_idle)  # belongs to the application, outside its tree
            return Reply(pid, state)
        return Reply(otp.process_info(otp.self()).application, state)  # type: ignore[union-attr]

    def handle_cast(self, msg: Any, state: str) -> NoReply[str]:
        raise RuntimeError(f"{state} crashed")

    def terminate(self, reason: Any, state: str) -> None:
        EVENTS.append(f"stop {state}")


async def _idle() -> None:
    await otp.receive(lambda m: False)


class AppSup(Supervisor):
    def init(self, app: str) -> Any:
        return Supervisor.flags(intensity=0), [Holder.child_spec(app, name=f"{app}_holder")]


async def failing_start(arg: Any) -> otp.Pid:
    raise RuntimeError("cannot start")


async def bad_start(arg: Any) -> str:
    return "not a pid"


def app(name: str, *deps: str, start: Any = None, **kw: Any) -> otp.Application:
    return otp.Application(
        name=name,
        start=start or AppSup.start_link,
        start_args=name,
        applications=deps,
        vsn="1.0",
        description=f"the {name} app",
        **kw,
    )


def load(*apps: otp.Application) -> None:
    for a in apps:
        otp.application.load(a)


async def test_start_and_stop(node: object) -> None:
    """Case 133."""
    load(app("a"))
    await otp.application.start("a")
    assert otp.application.which_applications() == [("a", "the a app", "1.0")]
    with pytest.raises(ApplicationError) as info:
        await otp.application.start("a")
    assert info.value.reason == ("already_started", "a")
    with pytest.raises(ApplicationError) as info:
        await otp.application.start("unknown")
    assert info.value.reason == ("not_loaded", "unknown")
    await otp.application.stop("a")
    with pytest.raises(ApplicationError) as info:
        await otp.application.stop("a")
    assert info.value.reason == ("not_started", "a")
    assert otp.application.which_applications() == []


async def test_ensure_all_started_starts_dependencies_first(node: object) -> None:
    """Case 134."""
    EVENTS.clear()
    load(app("base"), app("mid", "base"), app("top", "mid", "base"))
    assert await otp.application.ensure_all_started("top") == ["base", "mid", "top"]
    assert EVENTS == ["start base", "start mid", "start top"]
    assert await otp.application.ensure_all_started("top") == []
    assert [a[0] for a in otp.application.which_applications()] == ["top", "mid", "base"]
    for name in ("top", "mid", "base"):
        await otp.application.stop(name)


async def test_a_failure_deep_in_the_chain_undoes_what_it_started(node: object) -> None:
    """Case 134: newly started apps stop again; what ran before keeps running."""
    load(
        app("before"),
        app("new"),
        app("broken", start=failing_start),
        app("top", "before", "new", "broken"),
    )
    await otp.application.start("before")
    with capture_reports(), pytest.raises(ApplicationError) as info:
        await otp.application.ensure_all_started("top")
    assert info.value.reason[0] == "broken"
    assert [a[0] for a in otp.application.which_applications()] == ["before"]
    await otp.application.stop("before")


async def test_a_missing_dependency_is_named(node: object) -> None:
    """Cases 134 and 135."""
    load(app("needs", "missing"))
    with pytest.raises(ApplicationError) as info:
        await otp.application.ensure_all_started("needs")
    assert info.value.reason == ("not_loaded", "missing")
    load(app("dep"), app("user", "dep"))
    with pytest.raises(ApplicationError) as info:
        await otp.application.start("user")
    assert info.value.reason == ("not_started", "dep")


async def test_a_dependency_cycle_is_named(node: object) -> None:
    load(app("x", "y"), app("y", "z"), app("z", "x"))
    with pytest.raises(ApplicationError, match="x -> y -> z -> x") as info:
        await otp.application.ensure_all_started("x")
    assert info.value.reason == ("cycle", ["x", "y", "z", "x"])


async def test_concurrent_starts_start_it_once(node: object) -> None:
    """Case 136."""
    EVENTS.clear()
    load(app("shared"), app("bad", start=failing_start))

    async def starter(name: str, parent: otp.Pid) -> None:
        try:
            await otp.application.start(name)
            otp.send(parent, ("ok", name))
        except ApplicationError as err:
            otp.send(parent, ("error", name, str(err.reason)))

    for _ in range(5):
        otp.spawn(starter, "shared", otp.self())
    results = [await assert_receive() for _ in range(5)]
    assert results == [("ok", "shared")] * 5
    assert EVENTS == ["start shared"]
    with capture_reports():
        for _ in range(3):
            otp.spawn(starter, "bad", otp.self())
        failures = [await assert_receive() for _ in range(3)]
    assert len(set(failures)) == 1 and failures[0][0] == "error"
    with pytest.raises(ApplicationError) as info:
        await otp.application.start("shared")
    assert info.value.reason == ("already_started", "shared")
    await otp.application.stop("shared")


def test_a_permanent_application_that_ends_stops_the_node() -> None:
    """Case 137."""

    async def main() -> None:
        load(app("perm"), app("other"))
        await otp.application.start("other")
        await otp.application.start("perm", "permanent")
        GenServer.cast("perm_holder", "crash")  # intensity 0: the app's tree ends
        await otp.receive(lambda m: False)

    with capture_reports() as reports, pytest.raises(otp.ExitError) as info:
        otp.run(main)
    assert info.value.reason[0:2] == ("application_terminated", "perm")
    stopped = [r.application for r in reports if getattr(r, "context", None) == "stopped"]
    assert stopped == ["other"]


@pytest.mark.parametrize(
    ("type_", "how", "stops_node"),
    [
        ("transient", "normal", False),
        ("transient", "crash", True),
        ("temporary", "crash", False),
    ],
)
def test_transient_and_temporary_applications(type_: str, how: str, stops_node: bool) -> None:
    """Case 137."""

    async def main() -> str:
        load(app("t"))
        await otp.application.start("t", type_)  # type: ignore[arg-type]
        holder = otp.whereis("t_holder")
        top = otp.process_info(holder).parent  # type: ignore[arg-type,union-attr]
        master = otp.process_info(top).parent  # type: ignore[union-attr]
        ref = otp.monitor(master)
        if how == "normal":
            await GenServer.stop(top, otp.NORMAL)
        else:
            GenServer.cast("t_holder", "crash")
        await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
        # the master told the controller before it ended: these requests come after that
        await otp.application.stop("t")  # started, not running: nothing to stop (OTP)
        assert otp.application.which_applications() == []
        with pytest.raises(ApplicationError, match="not started"):
            await otp.application.stop("t")  # stopped now
        return "survived"

    run_node(main, stops_node)


async def test_stop_ends_every_process_of_the_application(node: object) -> None:
    """Cases 137 and 139: stop ends the app's processes, also outside its tree, and no other
    application's."""
    load(app("one"), app("two"))
    await otp.application.start("one")
    await otp.application.start("two")
    assert await GenServer.call("one_holder", "which app") == "one"
    outside = await GenServer.call("one_holder", "spawn_outside")
    assert otp.process_info(outside).application == "one"  # type: ignore[union-attr]
    two_holder = otp.whereis("two_holder")
    await otp.application.stop("one")
    assert not otp.is_alive(outside) and otp.whereis("one_holder") is None
    assert otp.whereis("two_holder") == two_holder
    await otp.application.stop("two")


def test_applications_stop_in_reverse_start_order_when_the_node_stops() -> None:
    """Case 140."""
    EVENTS.clear()

    async def main() -> None:
        load(app("first"), app("second", "first"), app("third"))
        await otp.application.ensure_all_started("second")
        await otp.application.start("third")

    otp.run(main)
    assert EVENTS == [
        "start first",
        "start second",
        "start third",
        "stop third",
        "stop second",
        "stop first",
    ]


async def test_a_start_failure_and_a_bad_start_return(node: object) -> None:
    """Case 141, and a start that returns something else than a Pid."""
    load(app("fails", start=failing_start), app("weird", start=bad_start))
    with capture_reports(), pytest.raises(ApplicationError) as info:
        await otp.application.start("fails")
    assert isinstance(info.value.reason, RuntimeError)
    with capture_reports(), pytest.raises(ApplicationError) as info:
        await otp.application.start("weird")
    assert info.value.reason == ("bad_start_return", "not a pid")
    otp.application.unload("fails")
    with pytest.raises(ApplicationError) as info:
        otp.application.unload("fails")
    assert info.value.reason == ("not_loaded", "fails")


async def test_env(node: object) -> None:
    """Case 142."""
    load(app("cfg", env={"port": 80, "host": "localhost"}))
    assert otp.application.get_env("cfg", "port") == 80
    assert otp.application.get_env("cfg", "missing") is None
    assert otp.application.get_env("cfg", "missing", 7) == 7
    assert otp.application.get_env("unknown_app", "port", "d") == "d"
    otp.application.set_env("cfg", "port", 8080)
    otp.application.unset_env("cfg", "host")
    assert otp.application.get_all_env("cfg") == {"port": 8080}
    with pytest.raises(ApplicationError):
        otp.application.set_env("unknown_app", "k", 1)


async def test_keys_and_the_application_of_a_process(node: object) -> None:
    """Case 144."""
    load(app("keyed", env={"a": 1}))
    assert otp.application.get_key("keyed", "vsn") == "1.0"
    assert otp.application.get_key("keyed", "description") == "the keyed app"
    assert otp.application.get_key("keyed", "nonsense") is None
    assert otp.application.get_key("nobody", "vsn", "x") == "x"
    assert otp.application.get_application() is None
    await otp.application.start("keyed")
    holder = otp.whereis("keyed_holder")
    assert otp.application.get_application(holder) == "keyed"
    await otp.application.stop("keyed")


async def test_load_by_path_and_bad_specs(node: object) -> None:
    name = otp.application.load("tests.otp.test_application:LOADABLE")
    assert name == "loadable"
    otp.application.load(LOADABLE)  # the same spec again: fine
    with pytest.raises(ApplicationError, match="already loaded"):
        otp.application.load(otp.Application(name="loadable"))
    for bad in ("no_colon", "tests.nowhere:x", "tests.otp.test_application:EVENTS", 42):
        with pytest.raises(ApplicationError, match=r"Got|cannot import"):
            otp.application.load(bad)  # type: ignore[arg-type]
    with pytest.raises(ApplicationError, match="start must be"):
        otp.application.load(otp.Application(name="b", start="nope"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="type"):
        await otp.application.start("loadable", "forever")  # type: ignore[arg-type]


def test_run_an_application_until_the_node_is_stopped() -> None:
    async def stop_soon(arg: Any) -> otp.Pid:
        async def stopper() -> None:
            otp._node.get().stop(otp.NORMAL)

        pid = await AppSup.start_link("runner")
        otp.spawn(stopper)
        return pid  # type: ignore[return-value]

    assert otp.run(otp.Application(name="runner", start=stop_soon)) is None


LOADABLE = otp.Application(name="loadable")


# -- review against OTP's application_controller -----------------------------------------

# A permanent or transient application that fails to start stops the node (OTP:
# handle_application_started); a transient one whose start exited normally does not.


async def _exit_normal(arg: Any) -> otp.Pid:
    otp.exit(otp.NORMAL)


@pytest.mark.parametrize(
    ("type_", "start", "stops_node"),
    [
        ("permanent", failing_start, True),
        ("transient", failing_start, True),
        ("transient", _exit_normal, False),
        ("temporary", failing_start, False),
    ],
)
def test_a_start_failure_of_a_permanent_or_transient_app_stops_the_node(
    type_: str, start: Any, stops_node: bool
) -> None:
    async def main() -> str:
        load(app("sf", start=start))
        with pytest.raises(ApplicationError):
            await otp.application.start("sf", type_)  # type: ignore[arg-type]
        # the controller stops the node before it answers the start
        assert otp._node.get().halted.done() == stops_node
        return "survived"

    run_node(main, stops_node)


# The pid that start returns is linked to the master.


async def _worker() -> None:
    await otp.receive(lambda m: m == "die")
    raise RuntimeError("worker died")


async def unlinked_start(arg: Any) -> otp.Pid:
    pid = otp.spawn(_worker)  # belongs to the app, but is not linked to the master
    otp.register("unl_top", pid)
    return pid


async def test_the_end_of_an_unlinked_top_process_ends_the_application(node: object) -> None:
    load(app("unl", start=unlinked_start))
    await otp.application.start("unl")
    top = otp.whereis("unl_top")
    assert top is not None
    master = otp.process_info(top).parent  # type: ignore[union-attr]
    ref = otp.monitor(master)
    with capture_reports():
        otp.send(top, "die")
        await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    assert otp.application.which_applications() == []


# A top supervisor that returns ignore is a bad return, not a library application.


class IgnoringSup(Supervisor):
    def init(self, arg: Any) -> Any:
        return otp.IGNORE


async def test_a_top_supervisor_that_ignores_fails_the_start(node: object) -> None:
    load(app("ign", start=IgnoringSup.start_link))
    with capture_reports(), pytest.raises(ApplicationError):
        await otp.application.start("ign")
    assert otp.application.which_applications() == []


# Ensure_all_started undoes everything it started even if one of them already ended.


async def kills_c_then_fails(arg: Any) -> otp.Pid:
    holder = otp.whereis("c_holder")
    top = otp.process_info(holder).parent  # type: ignore[arg-type,union-attr]
    master = otp.process_info(top).parent  # type: ignore[union-attr]
    ref = otp.monitor(master)
    GenServer.cast(holder, "crash")  # intensity 0: c's tree ends, c exits (temporary)
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    raise RuntimeError("b cannot start")


async def test_ensure_all_started_rollback_survives_an_app_that_already_ended(
    node: object,
) -> None:
    load(app("a"), app("c"), app("b", start=kills_c_then_fails), app("top", "a", "c", "b"))
    with capture_reports(), pytest.raises(ApplicationError) as info:
        await otp.application.ensure_all_started("top")
    try:
        assert info.value.reason[0] == "b"  # the failure, not the rollback's stumble
        assert otp.application.which_applications() == []  # "a" was stopped too
    finally:
        if otp.application.which_applications():
            await otp.application.stop("a")


# A bad application name must not kill the application controller.


async def test_an_unhashable_name_is_refused_and_the_controller_survives(node: object) -> None:
    load(app("alive"))
    await otp.application.start("alive")
    with pytest.raises(TypeError, match="named by a str"):
        await otp.application.start(["alive"])  # type: ignore[arg-type]
    await otp.application.stop("alive")  # the controller must still be there


# A stranger's exit signal must not take the controller (and every application) down.


async def test_a_linked_stranger_that_crashes_does_not_kill_the_controller(node: object) -> None:
    load(app("alive2"))
    await otp.application.start("alive2")

    async def stranger() -> None:
        controller = otp.whereis("application_controller")
        assert controller is not None
        otp.link(controller)
        raise RuntimeError("stranger crashed")

    with capture_reports():
        _, ref = otp.spawn_monitor(stranger)
        await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    await otp.application.stop("alive2")  # OTP's controller ignores an unknown 'EXIT'


# An application that ends during a normal node shutdown does not turn it into a failure.


def test_a_permanent_app_ending_during_the_shutdown_keeps_mains_result() -> None:
    async def crash_old() -> None:  # the newer app's stop makes the older app's tree end
        holder = otp.whereis("old_holder")
        ref = otp.monitor(holder)  # type: ignore[arg-type]
        GenServer.cast(holder, "crash")
        await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)

    async def main() -> str:
        load(app("old"), app("young", stop=crash_old))
        await otp.application.start("old", "permanent")
        await otp.application.start("young")
        return "done"

    with capture_reports():
        assert otp.run(main) == "done"  # main returned: the node was already stopping


async def test_a_dependency_that_exited_is_not_running(node: object) -> None:
    """OTP keeps an application that ended by itself as started, not running: a dependent's
    start is refused with ("not_running", dep), and starting it again is fine."""
    load(app("app9"), app("app10", "app9"))
    await otp.application.start("app9")
    top = otp.process_info(otp.whereis("app9_holder")).parent  # type: ignore[arg-type,union-attr]
    master = otp.process_info(top).parent  # type: ignore[union-attr]
    ref = otp.monitor(master)
    with capture_reports():
        otp.exit(top, otp.KILL)
        await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    with pytest.raises(ApplicationError) as info:
        await otp.application.start("app10")
    assert info.value.reason == ("not_running", "app9")
    await otp.application.start("app9")  # it can be started again
    await otp.application.start("app10")
    await otp.application.stop("app10")
    await otp.application.stop("app9")


def run_node(main: Any, stops_node: bool) -> None:
    """Run `main` on a node: it stops the node (run raises) or it returns "survived"."""
    with capture_reports():
        if stops_node:
            with pytest.raises(otp.ExitError):
                otp.run(main)
        else:
            assert otp.run(main) == "survived"
