"""The test kit itself: the node fixture, its leak check, and the mailbox assertions."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

import otp
from otp.testing import assert_receive, capture_reports, refute_receive


def test_the_node_fixture_runs_async_tests_and_fails_on_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import otp

        async def idle():
            await otp.receive()

        async def test_clean(node):
            pid, ref = otp.spawn_monitor(idle)
            otp.send(pid, "stop")
            await otp.receive()

        async def test_leaky(node):
            otp.register("leaked", otp.spawn(idle))

        async def test_exiting_is_not_a_leak(node):
            otp.exit(otp.spawn(idle), otp.KILL)

        async def test_on_asyncio(node):
            import asyncio
            assert not type(asyncio.get_running_loop()).__module__.startswith("uvloop")

        import pytest
        test_on_asyncio = pytest.mark.parametrize("node", ["asyncio"], indirect=True)(
            test_on_asyncio
        )
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * AssertionError: the test left 1 process(es) running:",
            "E *   <0.2.0> test_the_node_fixture_runs_async_tests_and_fails_on_leaks.idle "
            "registered as 'leaked'",
        ]
    )


def test_a_leak_report_names_the_behaviour_and_says_how_to_end_it(
    pytester: pytest.Pytester,
) -> None:
    """The first test a newcomer writes: start a server, call it, return."""
    pytester.makepyfile(
        """
        import otp
        from behaviours import GenServer, Reply

        class Counter(GenServer):
            def init(self, start):
                return start
            def handle_call(self, n, from_, state):
                return Reply(state + n, state + n)

        async def test_counter(node):
            await Counter.start_link(0, name="counter")
            assert await GenServer.call("counter", 2) == 2
            otp.spawn(otp.receive)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * AssertionError: the test left 2 process(es) running:",
            "E *   <0.2.0> test_a_leak_report_names_the_behaviour_and_says_how_to_end_it"
            ".Counter registered as 'counter'",
            "E *   <0.3.0> otp.receive",
            "E * End each one before the test returns:",
            "E *   * start it with `await otp.testing.start_supervised(...)`, which stops "
            "it when the test ends;",
            "E *   * or stop it: `await GenServer.stop(pid)`, or `otp.exit(pid, "
            "otp.SHUTDOWN)` and wait for its Down;",
            "E *   * or link it to the process that owns it (otp.spawn_link), so it ends "
            "with its owner.",
        ]
    )


async def test_assert_receive_matches_values_types_and_predicates(node: object) -> None:
    for msg in [("ok", 1), 2.5, "text"]:
        otp.send(otp.self(), msg)
    assert await assert_receive(("ok", ANY)) == ("ok", 1)
    assert await assert_receive(str) == "text"
    assert await assert_receive(lambda m: m > 2) == 2.5


async def test_assert_receive_fails_with_the_mailbox_in_the_message(node: object) -> None:
    otp.send(otp.self(), "unrelated")
    with pytest.raises(AssertionError, match=r"no message matching 'x'.*\['unrelated'\]"):
        await assert_receive("x", timeout=0.01)
    await assert_receive("unrelated")


async def test_refute_receive_fails_when_a_match_arrives(node: object) -> None:
    await refute_receive("x", timeout=0)
    otp.send(otp.self(), "x")
    with pytest.raises(AssertionError, match="received 'x'"):
        await refute_receive("x", timeout=0.01)


async def test_capture_reports_sees_only_what_happens_inside(node: object) -> None:
    async def crash() -> None:
        raise ValueError("inside")

    with capture_reports() as reports:
        otp.spawn_monitor(crash)
        await assert_receive(otp.Down)
    otp.spawn_monitor(crash)
    await assert_receive(otp.Down)
    assert len(reports) == 1 and isinstance(reports[0].reason, ValueError)


def test_a_shutting_down_process_is_not_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio, otp
        from behaviours import GenServer

        class Tidy(GenServer):
            def init(self, arg):
                otp.process_flag("trap_exit", True)
                return arg
            async def terminate(self, reason, state):
                for _ in range(30):          # flushing something: a few loop turns
                    await asyncio.sleep(0)

        async def test_fire_and_forget_shutdown(node):
            otp.process_flag("trap_exit", True)
            pid = await Tidy.start_link(None)
            otp.exit(pid, otp.SHUTDOWN)

        async def busy_finally():
            try:
                await otp.receive()
            finally:
                await asyncio.sleep(0.01)

        async def test_killed_with_cleanup(node):
            otp.exit(otp.spawn(busy_finally), otp.SHUTDOWN)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_setting_check_leaks_in_the_test_is_honoured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import otp
        async def idle():
            await otp.receive()
        async def test_leaky_on_purpose(node):
            node.check_leaks = False
            otp.spawn(idle)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_supervisor_stopping_its_children_is_not_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import otp
        from behaviours import GenServer, Supervisor

        class Worker(GenServer):
            def init(self, arg):
                return arg

        async def test_fire_and_forget(node):
            otp.process_flag("trap_exit", True)
            sup = await Supervisor.start_link([Worker.child_spec(i, id=i) for i in range(50)])
            otp.exit(sup, otp.SHUTDOWN)
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_node_fixture_of_another_plugin_is_left_alone(pytester: pytest.Pytester) -> None:
    """The plugin is inert for a project whose own fixture is called `node`."""
    pytester.makeconftest(
        """
        import asyncio, inspect, pytest

        @pytest.fixture
        def node():
            return {"id": 1}

        @pytest.hookimpl
        def pytest_pyfunc_call(pyfuncitem):
            if inspect.iscoroutinefunction(pyfuncitem.obj):
                names = pyfuncitem._fixtureinfo.argnames
                asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
                return True
        """
    )
    pytester.makepyfile("async def test_graph(node):\n    assert node == {'id': 1}\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
