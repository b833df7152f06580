"""`start_supervised` / `stop_supervised`: children of the test's own supervisor."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import ChildSpec, GenServer, NoReply, Reply, Supervisor
from otp.testing import assert_receive, start_supervised, stop_supervised


class Counter(GenServer[int]):
    def init(self, start: int) -> int:
        return start

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state + request, state + request)


class Reporter(GenServer[Any]):
    """Tells `owner` how it ended: `("stopped", tag, reason)` from `terminate`."""

    def init(self, arg: tuple[otp.Pid, str]) -> Any:
        otp.process_flag("trap_exit", True)  # so that a supervisor's SHUTDOWN runs terminate
        return arg

    def terminate(self, reason: Any, state: Any) -> None:
        owner, tag = state
        otp.send(owner, ("stopped", tag, reason))


class Stubborn(GenServer[Any]):
    """Traps exits and ignores them: only a kill ends it."""

    def init(self, arg: Any) -> Any:
        otp.process_flag("trap_exit", True)
        return arg

    def handle_info(self, msg: Any, state: Any) -> NoReply[Any]:
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        await otp.receive(lambda m: False)  # never done


class FailsToStart(GenServer[Any]):
    def init(self, arg: Any) -> Any:
        raise ValueError("no config")


class Ignores(GenServer[Any]):
    def init(self, arg: Any) -> Any:
        return otp.IGNORE


async def test_a_supervised_child_runs_and_is_not_linked_to_the_test(node: object) -> None:
    pid = await start_supervised((Counter, 10))
    assert await GenServer.call(pid, 1) == 11
    info = otp.process_info(pid)
    assert info is not None and info.behaviour is Counter
    assert otp.self() not in info.links and info.parent != otp.self()


async def test_every_child_form_a_supervisor_takes_is_accepted(node: object) -> None:
    spec = ChildSpec(id="named", start=lambda: Counter.start_link(5, name="counter"))
    by_class = await start_supervised(Counter)
    by_spec = await start_supervised(spec)
    tree = await start_supervised((Supervisor, [Counter.child_spec(1, name="inner")]))
    assert otp.whereis("counter") == by_spec and by_class != by_spec
    assert await GenServer.call("inner", 1) == 2
    assert [c.id for c in await Supervisor.which_children(tree)] == [Counter]


async def test_stop_supervised_stops_one_child_with_shutdown_and_waits(node: object) -> None:
    me = otp.self()
    first = await start_supervised((Reporter, (me, "first")), id="first")
    second = await start_supervised((Reporter, (me, "second")), id="second")
    await stop_supervised("first")
    assert not otp.is_alive(first) and otp.is_alive(second)
    await assert_receive(("stopped", "first", otp.SHUTDOWN), timeout=0)


async def test_the_same_id_twice_is_refused_and_an_id_override_allows_it(node: object) -> None:
    first = await start_supervised((Counter, 0))
    with pytest.raises(otp.AlreadyStartedError) as refused:
        await start_supervised((Counter, 1))
    assert refused.value.pid == first
    assert str(refused.value) == (
        f"start_supervised: a child with id Counter already runs under the test's supervisor "
        f"as {first!r}; give this one an id of its own: start_supervised(..., id='another')"
    )
    second = await start_supervised((Counter, 1), id="another")
    assert await GenServer.call(second, 0) == 1


async def test_a_child_that_fails_to_start_raises_start_error(node: object) -> None:
    with pytest.raises(otp.StartError) as failed:
        await start_supervised(FailsToStart)
    assert isinstance(failed.value.reason, ValueError)
    assert str(failed.value) == (
        "start_supervised: FailsToStart failed to start: ValueError('no config')"
    )


async def test_a_child_that_ignores_its_start_is_refused(node: object) -> None:
    with pytest.raises(AssertionError) as refused:
        await start_supervised(Ignores)
    assert str(refused.value) == (
        "start_supervised: the start of Ignores returned None, not a running process "
        "(otp.IGNORE?); to test that, call its start_link directly"
    )


async def test_a_child_in_no_accepted_form_is_refused_with_the_forms(node: object) -> None:
    with pytest.raises(TypeError) as refused:
        await start_supervised("worker")
    assert str(refused.value) == (
        "start_supervised() takes a child as a Supervisor does:\n"
        "  * a GenServer or Supervisor subclass\n"
        "  * (GenServer or Supervisor subclass, arg)\n"
        "  * ChildSpec(id=..., start=...)\n"
        "Got: 'worker'"
    )


async def test_stop_supervised_of_an_unknown_id_names_the_running_ones(node: object) -> None:
    await start_supervised(Counter)
    with pytest.raises(ValueError) as refused:
        await stop_supervised("counter")
    assert str(refused.value) == (
        "stop_supervised('counter'): no child with that id runs under the test's supervisor "
        "(running: Counter); a child's id is its class unless its spec says otherwise"
    )


async def test_a_child_that_exits_is_not_restarted(node: object) -> None:
    pid = await start_supervised(Counter)
    ref = otp.monitor(pid)
    otp.exit(pid, otp.KILL)
    await assert_receive(otp.Down(ref, pid, otp.KILLED))
    with pytest.raises(ValueError, match=r"\(running: none\)"):
        await stop_supervised(Counter)


async def test_a_child_that_outlives_its_shutdown_is_killed(node: object) -> None:
    pid = await start_supervised(Stubborn, shutdown=0.01)
    ref = otp.monitor(pid)
    await stop_supervised(Stubborn)
    await assert_receive(otp.Down(ref, pid, otp.KILLED), timeout=0)


async def test_a_child_may_be_started_with_brutal_kill(node: object) -> None:
    pid = await start_supervised(Stubborn, shutdown="brutal_kill")
    ref = otp.monitor(pid)
    await stop_supervised(Stubborn)
    await assert_receive(otp.Down(ref, pid, otp.KILLED), timeout=0)


def test_start_supervised_outside_a_test_node_says_where_it_works() -> None:
    async def main() -> None:
        await start_supervised(Counter)

    with pytest.raises(RuntimeError) as refused:
        otp.run(main)
    assert str(refused.value) == (
        "start_supervised() works inside a test that takes the `node` fixture "
        "(async def test_x(node): ...), or in an async fixture of such a test"
    )


def test_children_are_stopped_newest_first_when_the_test_ends(pytester: pytest.Pytester) -> None:
    """Whether the test passes or fails, and before the leak check."""
    pytester.makepyfile(
        """
        import otp
        from behaviours import GenServer
        from otp.testing import start_supervised

        STOPPED = []

        class Tracked(GenServer):
            def init(self, tag):
                otp.process_flag("trap_exit", True)
                return tag
            def terminate(self, reason, tag):
                STOPPED.append((tag, reason))

        async def test_passes(node):
            for tag in "abc":
                await start_supervised((Tracked, tag), id=tag)

        def test_they_stopped_newest_first():
            assert STOPPED == [("c", "shutdown"), ("b", "shutdown"), ("a", "shutdown")]
            STOPPED.clear()

        async def test_fails(node):
            for tag in "xy":
                await start_supervised((Tracked, tag), id=tag)
            assert False, "the test's own failure"

        def test_they_stopped_too():
            assert STOPPED == [("y", "shutdown"), ("x", "shutdown")]
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the test's own failure*"])


def test_a_test_killed_midway_still_has_its_children_stopped(pytester: pytest.Pytester) -> None:
    """When the test process ends abruptly, the node's shutdown reaches the test's
    supervisor, which stops its children newest first before it goes."""
    pytester.makepyfile(
        """
        import otp
        from behaviours import GenServer
        from otp.testing import start_supervised

        STOPPED = []

        class Tracked(GenServer):
            def init(self, tag):
                otp.process_flag("trap_exit", True)
                return tag
            def terminate(self, reason, tag):
                STOPPED.append(tag)

        async def test_killed(node):
            for tag in "ab":
                await start_supervised((Tracked, tag), id=tag)
            otp.exit(otp.self(), otp.KILL)

        def test_they_stopped_newest_first():
            assert STOPPED == ["b", "a"]
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*main process exited: 'killed'*"])
