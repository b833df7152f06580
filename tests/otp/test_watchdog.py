"""The loop watchdog: a callback that blocks the loop is reported, naming its process.

The blocking callbacks here hold the loop on purpose, with `time.sleep`, until the watchdog
has reported them (a logging handler sets an event), so no test depends on how long
anything takes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import otp
from behaviours import GenServer, Reply
from otp import _watchdog
from otp._watchdog import ENV, LoopBlocked
from otp.testing import assert_receive


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0.02")  # read when the node starts


class Forward(logging.Handler):
    """Sends the reports about `callback` to `pid` (through the loop: the watchdog logs from
    its own thread), and sets `seen` on the first. Other stalls (a slow machine) are not
    the test's."""

    def __init__(self, pid: otp.Pid, callback: str) -> None:
        super().__init__()
        self.pid = pid
        self.callback = callback
        self.loop = asyncio.get_running_loop()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "otp_report", None)
        if isinstance(report, LoopBlocked) and report.callback == self.callback:
            self.seen.set()
            self.loop.call_soon_threadsafe(otp.send, self.pid, report)


@pytest.fixture
def forward() -> Iterator[list[Forward]]:
    """Attach a `Forward` handler (made by the test, on the node's loop) to otp.watchdog."""
    made: list[Forward] = []
    yield made
    for handler in made:
        logging.getLogger("otp.watchdog").removeHandler(handler)


def watch(made: list[Forward], callback: str) -> Forward:
    handler = Forward(otp.self(), callback)
    logging.getLogger("otp.watchdog").addHandler(handler)
    made.append(handler)
    return handler


def block_until(seen: threading.Event) -> bool:
    """Hold the loop with time.sleep until the watchdog has spoken (at most ~10 s)."""
    for _ in range(2000):
        if seen.is_set():
            return True
        time.sleep(0.005)
    return False


class Sleeper(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Any:
        return Reply(block_until(request), state)


async def test_a_blocking_callback_is_reported_with_its_process(
    node: object, forward: list[Forward]
) -> None:
    handler = watch(forward, "Sleeper.handle_call")
    pid = await Sleeper.start(None, name="sleeper")
    assert await GenServer.call(pid, handler.seen) is True
    blocked = await assert_receive(LoopBlocked, timeout=10.0)
    assert blocked.ongoing
    assert (blocked.pid, blocked.registered_name, blocked.behaviour) == (pid, "sleeper", Sleeper)
    assert blocked.callback == "Sleeper.handle_call"
    assert blocked.location is not None and blocked.location.startswith(__file__)
    assert blocked.blocked_for > 0
    text = blocked.offender()
    assert repr(pid) in text and "'sleeper'" in text and "Sleeper.handle_call" in text
    # once the loop runs again, the length of the stall is reported for the same culprit
    ended = await assert_receive(LoopBlocked, timeout=10.0)
    assert not ended.ongoing and ended.pid == pid and ended.callback == "Sleeper.handle_call"
    await GenServer.stop(pid)


async def test_the_warning_says_what_to_do(node: object, forward: list[Forward]) -> None:
    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign, assignment]
    # before the Forward handler: the watchdog's thread runs the handlers in order, and the
    # loop goes on as soon as Forward has seen the record
    logging.getLogger("otp.watchdog").addHandler(keep)
    handler = watch(forward, "Sleeper.handle_call")
    try:
        pid = await Sleeper.start(None)
        await GenServer.call(pid, handler.seen)
        await assert_receive(LoopBlocked, timeout=10.0)
    finally:
        logging.getLogger("otp.watchdog").removeHandler(keep)
    first = next(r for r in records if r.otp_report.callback == "Sleeper.handle_call")  # type: ignore[attr-defined]
    assert first.levelno == logging.WARNING
    message = first.getMessage()
    assert "asyncio.to_thread" in message and ENV in message and repr(pid) in message
    await GenServer.stop(pid)


async def test_a_blocking_plain_task_is_named(node: object, forward: list[Forward]) -> None:
    handler = watch(forward, "test_a_blocking_plain_task_is_named.<locals>.blocking_handler")

    async def blocking_handler() -> bool:
        return block_until(handler.seen)

    task = asyncio.get_running_loop().create_task(blocking_handler(), name="http handler")
    assert await task is True
    blocked = await assert_receive(LoopBlocked, timeout=10.0)
    assert blocked.pid is None and blocked.task == "http handler"
    assert "task 'http handler' (not a process)" in blocked.offender()
    await assert_receive(LoopBlocked, timeout=10.0)  # the end of the stall


def test_the_watchdog_thread_ends_with_the_node() -> None:
    async def main() -> list[str]:
        return [t.name for t in threading.enumerate()]

    during = otp.run(main)
    assert [name for name in during if name.startswith("otp watchdog")] != []
    assert [t for t in threading.enumerate() if t.name.startswith("otp watchdog")] == []


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_watchdog_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV, value)

    async def main() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("otp watchdog")]

    assert otp.run(main) == []


def test_a_bad_threshold_names_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "fast")

    async def main() -> None: ...

    with pytest.raises(ValueError, match=rf"{ENV} takes a threshold in seconds.*'fast'"):
        otp.run(main)


def test_a_stall_that_the_node_stops_after_is_closed_too() -> None:
    seen = threading.Event()
    reports: list[LoopBlocked] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            report = getattr(record, "otp_report", None)
            if isinstance(report, LoopBlocked) and report.callback.endswith("main"):  # type: ignore[union-attr]
                reports.append(report)
                seen.set()

    async def main() -> bool:
        return block_until(seen)  # the node stops right after

    keep = Keep()
    logging.getLogger("otp.watchdog").addHandler(keep)
    try:
        assert otp.run(main) is True
    finally:
        logging.getLogger("otp.watchdog").removeHandler(keep)
    assert [r.ongoing for r in reports] == [True, False]


async def test_without_asyncio_s_task_table_the_process_is_found_by_its_frames(
    node: object, forward: list[Forward], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_watchdog, "_current_tasks", None)  # as on Python 3.14
    handler = watch(forward, "Sleeper.handle_call")
    pid = await Sleeper.start(None, name="sleeper")
    assert await GenServer.call(pid, handler.seen) is True
    blocked = await assert_receive(LoopBlocked, timeout=10.0)
    assert (blocked.pid, blocked.registered_name, blocked.behaviour) == (pid, "sleeper", Sleeper)
    await assert_receive(LoopBlocked, timeout=10.0)
    await GenServer.stop(pid)
