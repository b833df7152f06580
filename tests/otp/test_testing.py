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
            "*the test left 1 process(es) running: "
            "<0.2.0> test_the_node_fixture*idle registered as 'leaked'*"
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
