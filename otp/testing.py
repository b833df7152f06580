"""The test kit: a pytest plugin with a `node` fixture, and ExUnit-style mailbox assertions.

An `async def` test that takes the `node` fixture runs as the first process of a fresh node;
the test fails if it leaves a process running (a leak would outlive the test otherwise):

    async def test_echo(node):
        pid = otp.spawn(echo)
        otp.send(pid, (otp.self(), "hi"))
        assert await assert_receive("hi") == "hi"

Run a test on the stdlib loop with
`@pytest.mark.parametrize("node", ["asyncio"], indirect=True)`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from . import _node, _process, _runner
from ._mailbox import receive
from .reports import describe_entry

__all__ = ["TestNode", "assert_receive", "capture_reports", "node", "refute_receive"]

_QUIET_TURNS = 100  # loop turns with no process ending after which the rest count as leaks
_MAX_TURNS = 20_000
_DYING_WAIT = 5.0  # seconds an exiting process's cleanup may take before it counts as a leak


@dataclass
class TestNode:
    """How the `node` fixture runs a test: the event loop, the node name, the leak check."""

    __test__ = False  # not a test class, whatever pytest's name patterns say

    loop: _runner.LoopKind = "uvloop"
    name: str | None = None
    check_leaks: bool = True


@pytest.fixture
def node(request: pytest.FixtureRequest) -> TestNode:
    """Run the (async) test as a process on a fresh node. Param: the loop kind."""
    return TestNode(loop=getattr(request, "param", "uvloop"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    settings = pyfuncitem.funcargs.get("node")
    if not isinstance(settings, TestNode):  # another plugin's or the project's own `node`
        return None
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    args = pyfuncitem.funcargs
    kwargs = {name: args[name] for name in pyfuncitem._fixtureinfo.argnames}
    _runner.run(_run_test, test, kwargs, settings, loop=settings.loop, name=settings.name)
    return True


async def _run_test(test: Callable[..., Any], kwargs: dict[str, Any], settings: TestNode) -> None:
    await test(**kwargs)
    if settings.check_leaks:  # read now: the test may have turned it off
        await _check_leaks()


async def _check_leaks() -> None:
    """Fail if a process other than the test's is still running once exits have settled:
    processes may still be ending (a supervisor stopping its children one by one), so the
    check waits until none has ended for a while."""
    me = _process.current()
    node = _node.get()

    def others() -> list[Any]:
        return [p for p in node.procs.values() if p is not me and p.pid.id not in node.system]

    left, quiet = len(others()), 0
    for _ in range(_MAX_TURNS):
        dying = [p for p in others() if p.exiting]  # on their way out: wait for them
        if dying:
            done, _ = await asyncio.wait(dying, timeout=_DYING_WAIT)
            if not done:
                break
            left, quiet = len(others()), 0
            continue
        if not left or quiet >= _QUIET_TURNS:
            break
        await asyncio.sleep(0)
        now = len(others())
        quiet = quiet + 1 if now == left else 0
        left = now
    leaked = others()
    if leaked:
        listing = ", ".join(
            f"{p.pid!r} {describe_entry(p.entry)}"
            + (f" registered as {p.regname!r}" if p.regname else "")
            for p in leaked
        )
        raise AssertionError(f"the test left {len(leaked)} process(es) running: {listing}")


def _predicate(pattern: Any) -> Callable[[Any], bool]:
    if isinstance(pattern, type):
        return lambda msg: isinstance(msg, pattern)
    if callable(pattern):
        return lambda msg: bool(pattern(msg))
    return lambda msg: bool(msg == pattern)


def _mailbox() -> list[Any]:
    return list(_process.current().mbox or ())


async def assert_receive(pattern: Any = object, timeout: float = 1.0) -> Any:
    """Receive the first message matching `pattern` within `timeout` s, or fail the test.

    `pattern` is a predicate, a type (isinstance), or a value compared with `==`
    (`unittest.mock.ANY` works inside tuples). Returns the message.
    """
    try:
        return await receive(_predicate(pattern), timeout=timeout)
    except TimeoutError:
        raise AssertionError(
            f"no message matching {pattern!r} arrived within {timeout} s; "
            f"the mailbox holds {_mailbox()!r}"
        ) from None


async def refute_receive(pattern: Any = object, timeout: float = 0.1) -> None:
    """Fail the test if a message matching `pattern` arrives within `timeout` s."""
    try:
        msg = await receive(_predicate(pattern), timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError(f"received {msg!r}, which matches {pattern!r}, within {timeout} s")


class _ReportCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.reports: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "otp_report", None)
        if report is not None:
            self.reports.append(report)


@contextmanager
def capture_reports(logger: str = "otp") -> Iterator[list[Any]]:
    """Collect the report records logged under `logger` (all of the runtime's by default)."""
    collector = _ReportCollector()
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.DEBUG)  # info reports too (application started/stopped)
    log.addHandler(collector)
    try:
        yield collector.reports
    finally:
        log.removeHandler(collector)
        log.setLevel(level)
