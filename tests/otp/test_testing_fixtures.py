"""Async fixtures: shared start/stop code made inside the test's node, and the plugin's
messages when a test or fixture is written the way pytest alone would not run."""

from __future__ import annotations

import pytest


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(source)
    return pytester.runpytest("-p", "no:cacheprovider")


def test_async_fixtures_are_made_in_the_node_and_torn_down_newest_first(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest, otp
        from behaviours import GenServer, Reply
        from otp.testing import start_supervised

        EVENTS = []

        class Counter(GenServer):
            def init(self, start):
                return start
            def handle_call(self, n, from_, state):
                return Reply(state + n, state + n)

        @pytest.fixture
        async def counter():
            return await start_supervised((Counter, 10))

        @pytest.fixture
        async def audited(counter):
            yield counter
            # after the test, before the counter it uses is stopped
            EVENTS.append(("audit", await GenServer.call(counter, 0)))

        class TestInNode:
            @pytest.fixture(autouse=True)
            async def first(self):
                EVENTS.append(("first", otp.self()))
                yield
                EVENTS.append("first done")

            async def test_uses_them(self, node, audited, counter):
                assert audited == counter
                EVENTS.append(("test", otp.self(), await GenServer.call(counter, 5)))

        def test_order():
            (_, setup_pid), (_, test_pid, total), *rest = EVENTS
            assert setup_pid == test_pid and total == 15
            assert rest == [("audit", 15), "first done"]
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_fixture_asked_for_twice_is_made_once(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest, otp

        MADE = []

        @pytest.fixture
        async def shared():
            MADE.append(1)
            return otp.make_ref()

        @pytest.fixture
        async def left(shared):
            return shared

        @pytest.fixture
        async def right(shared):
            return shared

        async def test_same(node, left, right, shared):
            assert left is right is shared and MADE == [1]
        """,
    )
    result.assert_outcomes(passed=1)


def test_an_async_fixture_of_a_wider_scope_is_refused(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture(scope="module")
        async def server():
            return 1

        async def test_x(node, server):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "async fixture 'server' has scope='module'; an async fixture is made "
            "inside the test's node, and every test has a fresh node: drop the scope (or make "
            "a plain def fixture for what tests may share)"
        ]
    )


def test_an_async_fixture_of_a_plain_def_test_is_refused(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        async def server():
            return 1

        def test_x(node, server):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_x is a plain def test, so the async fixture 'server' has no node "
            "to run in: make the test `async def`"
        ]
    )


def test_an_async_fixture_of_a_test_without_node_is_refused(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        async def server():
            return 1

        async def test_x(server):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_x asks for the async fixture 'server' without the `node` "
            "fixture. otp.testing runs async tests: take the fixture, "
            "`async def test_x(node, ...)`, and the test runs as the first process of a fresh "
            "node (no pytest-asyncio needed)"
        ]
    )


def test_a_plain_fixture_using_an_async_one_is_refused(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        async def server():
            return 1

        @pytest.fixture
        def client(server):
            return server

        async def test_x(node, client):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "fixture 'client' is a plain def but uses the async fixture 'server', "
            "whose value is made inside the node when the test starts: make 'client' an "
            "async def fixture too"
        ]
    )


def test_an_async_generator_fixture_must_yield_once(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.fixture
        async def never():
            if False:
                yield

        @pytest.fixture
        async def twice():
            yield 1
            yield 2

        async def test_never(node, never):
            pass

        async def test_twice(node, twice):
            pass
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*RuntimeError: async fixture 'never' did not yield",
            "*RuntimeError: async fixture 'twice' yielded more than once; a fixture yields once",
        ],
        consecutive=False,
    )


def test_an_async_test_without_node_is_told_to_take_it(pytester: pytest.Pytester) -> None:
    """Instead of pytest's advice to install an async plugin."""
    result = run(pytester, "async def test_forgot():\n    pass\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_forgot is an async def test without the `node` fixture. otp.testing runs "
            "async tests: take the fixture, `async def test_forgot(node, ...)`, and the test "
            "runs as the first process of a fresh node (no pytest-asyncio needed)"
        ]
    )
    result.stdout.no_fnmatch_line("*pytest-asyncio*plugin*")


def test_a_failing_teardown_does_not_stop_the_others(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest, otp
        from behaviours import GenServer
        from otp.testing import start_supervised

        DONE = []

        class Tracked(GenServer):
            def init(self, arg):
                otp.process_flag("trap_exit", True)
                return arg
            def terminate(self, reason, state):
                DONE.append("server stopped")

        @pytest.fixture
        async def older():
            await start_supervised(Tracked)
            yield
            DONE.append("older torn down")

        @pytest.fixture
        async def newer(older):
            yield
            raise ValueError("teardown broke")

        async def test_x(node, newer):
            pass

        def test_the_rest_was_undone():
            assert DONE == ["older torn down", "server stopped"]
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: teardown broke"])
