"""`otp.reports.wanted`: a report is built only when someone will get it; a report that
only `logging.NullHandler`s would get is not built, and anyone else still gets every field."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Supervisor
from behaviours.gen_server import ServerReport
from otp.reports import wanted

from .test_reports import Keep


@pytest.fixture
def alone() -> logging.Logger:
    """A logger of its own, with no parent (pytest attaches its own handlers to the root,
    and to any logger that does not propagate when a test starts)."""
    return logging.Logger("wanted_test")


def test_a_logger_without_handlers_wants_its_reports(alone: logging.Logger) -> None:
    assert wanted(alone, logging.ERROR)  # (logging.lastResort prints them)


def test_null_handlers_alone_want_no_report(alone: logging.Logger) -> None:
    alone.addHandler(logging.NullHandler())
    assert not wanted(alone, logging.ERROR)


def test_a_handler_wants_the_reports_of_its_level(alone: logging.Logger) -> None:
    alone.addHandler(logging.NullHandler())
    alone.addHandler(Keep())
    alone.handlers[-1].setLevel(logging.CRITICAL)
    assert not wanted(alone, logging.ERROR)
    assert wanted(alone, logging.CRITICAL)


def test_a_handler_of_a_parent_logger_wants_the_reports(alone: logging.Logger) -> None:
    child = logging.Logger("wanted_test.child")
    child.parent = alone
    child.addHandler(logging.NullHandler())
    alone.addHandler(Keep())
    assert wanted(child, logging.ERROR)
    child.propagate = False
    assert not wanted(child, logging.ERROR)


def test_a_filter_on_the_logger_wants_the_reports(alone: logging.Logger) -> None:
    alone.addHandler(logging.NullHandler())
    alone.addFilter(lambda record: True)
    assert wanted(alone, logging.ERROR)


def test_a_disabled_level_wants_no_report(alone: logging.Logger) -> None:
    alone.addHandler(Keep())
    alone.setLevel(logging.CRITICAL)
    assert not wanted(alone, logging.ERROR)


SHOWN: list[Any] = []  # the states Secretive.format_status was shown


class Secretive(GenServer[str]):
    """Counts its format_status calls: a built report calls it, a skipped one does not."""

    def init(self, arg: str) -> str:
        return arg

    def handle_cast(self, msg: Any, state: str) -> NoReply[str]:
        raise RuntimeError("on purpose")

    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        SHOWN.append(status["state"])
        return {**status, "state": "hidden"}


@contextlib.contextmanager
def runtime_logs(*handlers: logging.Handler) -> Iterator[None]:
    """The runtime's loggers with `handlers` only, and a NullHandler, as a library sets them
    (entered in the test: pytest attaches handlers to the loggers as a test starts)."""
    logger = logging.getLogger("otp")
    propagate, kept = logger.propagate, list(logger.handlers)
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler(), *handlers]
    SHOWN.clear()
    try:
        yield
    finally:
        logger.handlers[:] = kept
        logger.propagate = propagate


async def crash_under_supervisor() -> None:
    otp.process_flag("trap_exit", True)
    sup = await Supervisor.start_link([Secretive.child_spec("secret")])
    [child] = await Supervisor.which_children(sup)
    ref = otp.monitor(child.pid)  # type: ignore[arg-type]
    GenServer.cast(child.pid, "crash")
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    await Supervisor.which_children(sup)  # (it has handled the exit)
    await GenServer.stop(sup)


async def test_a_crash_builds_no_report_for_null_handlers(node: Any) -> None:
    with runtime_logs():
        await crash_under_supervisor()
    assert SHOWN == []


async def test_a_crash_builds_every_report_for_a_handler(node: Any) -> None:
    keep = Keep()
    with runtime_logs(keep):
        await crash_under_supervisor()
    assert SHOWN == ["secret"]
    reports = [r.otp_report for r in keep.records]  # type: ignore[attr-defined]
    [server] = [r for r in reports if isinstance(r, ServerReport)]
    assert server.state == "hidden"
    assert isinstance(server.reason, RuntimeError)
    assert [r.context for r in reports if type(r).__name__ == "SupervisorReport"] == [
        "child_terminated"
    ]


async def test_report_watchers_get_reports_whatever_the_handlers(node: Any) -> None:
    seen: list[Any] = []
    watchers = otp.gen.node().report_watchers
    watchers.append(seen.append)
    try:
        with runtime_logs():
            await crash_under_supervisor()
    finally:
        watchers.remove(seen.append)
    assert SHOWN == ["secret"]
    assert {type(r).__name__ for r in seen} >= {"ServerReport", "SupervisorReport"}
