"""Report records: the runtime builds its log records itself, and they must be what
`logging.LogRecord` would have built, down to the fields a format string can name."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import otp
from otp.reports import CrashReport

TIMING = {"created", "msecs", "relativeCreated"}
FORMATTED = {"message", "asctime", "exc_text"}  # what formatting a record adds to it


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[list[logging.LogRecord]]:
    handler = Keep()
    logger = logging.getLogger("otp.process")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


async def crashes() -> None:
    raise RuntimeError("on purpose")


async def crash_one() -> None:
    _, ref = otp.spawn_monitor(crashes)
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def test_a_crash_record_has_every_field_of_a_standard_record(
    node: Any, kept: list[logging.LogRecord]
) -> None:
    await crash_one()
    [record] = kept
    standard = logging.LogRecord(
        record.name, record.levelno, "", 0, record.msg, record.args, record.exc_info
    )
    ours = {k: v for k, v in vars(record).items() if k not in FORMATTED}
    theirs = {k: v for k, v in vars(standard).items() if k not in FORMATTED}
    assert set(ours) - set(theirs) == {"otp_report"}
    per_record = TIMING | {"otp_report", "taskName"}
    assert {k: v for k, v in ours.items() if k not in per_record} == {
        k: v for k, v in theirs.items() if k not in per_record
    }
    assert abs(record.created - standard.created) < 60
    assert 0 <= record.msecs < 1000
    assert record.relativeCreated <= standard.relativeCreated
    if "taskName" in ours:  # 3.12+: the process that logged, not the test's task
        assert ours["taskName"] is not None and ours["taskName"] != theirs["taskName"]
    assert isinstance(ours["otp_report"], CrashReport)
    text = logging.Formatter("%(levelname)s %(name)s %(threadName)s %(message)s").format(record)
    assert text.startswith("ERROR otp.process MainThread CRASH REPORT process")
    assert "RuntimeError: on purpose" in text  # the traceback rides along


async def test_a_custom_record_factory_builds_the_records(
    node: Any, kept: list[logging.LogRecord]
) -> None:
    standard = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = standard(*args, **kwargs)
        record.__dict__["tenant"] = "acme"
        return record

    logging.setLogRecordFactory(factory)
    try:
        await crash_one()
    finally:
        logging.setLogRecordFactory(standard)
    [record] = kept
    assert vars(record)["tenant"] == "acme"
    assert isinstance(vars(record)["otp_report"], CrashReport)


async def test_the_thread_is_read_for_each_record(node: Any, kept: list[logging.LogRecord]) -> None:
    await crash_one()
    thread = threading.current_thread()
    old = thread.name
    thread.name = "renamed"
    try:
        await crash_one()
    finally:
        thread.name = old
    assert [r.threadName for r in kept] == [old, "renamed"]


def test_nodes_run_one_after_the_other_in_threads(kept: list[logging.LogRecord]) -> None:
    """A thread id the OS hands out again names the thread that logged, not an old one."""

    def run_node() -> None:
        otp.run(crash_one, loop="asyncio")

    for name in ("node-a", "node-b"):
        thread = threading.Thread(target=run_node, name=name)
        thread.start()
        thread.join()
    assert [r.threadName for r in kept] == ["node-a", "node-b"]


@pytest.mark.parametrize(
    ("switch", "field"),
    [
        ("logThreads", "thread"),
        ("logThreads", "threadName"),
        ("logProcesses", "process"),
        ("logMultiprocessing", "processName"),
        ("logAsyncioTasks", "taskName"),
    ],
)
async def test_logging_switches_apply_at_once(
    node: Any,
    kept: list[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
    switch: str,
    field: str,
) -> None:
    if not hasattr(logging, switch):
        pytest.skip(f"logging.{switch} is new in a later Python")
    await crash_one()
    assert vars(kept[-1])[field] is not None
    monkeypatch.setattr(logging, switch, False)
    await crash_one()
    assert vars(kept[-1])[field] is None  # as LogRecord says with the switch off


async def test_a_logger_that_makes_its_own_records(
    node: Any, kept: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("otp.process")
    standard = logger.makeRecord

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = standard(*args, **kwargs)
        record.__dict__["tenant"] = "acme"
        return record

    monkeypatch.setattr(logger, "makeRecord", make_record)  # as a Logger subclass would
    await crash_one()
    [record] = kept
    assert vars(record)["tenant"] == "acme"
    assert isinstance(vars(record)["otp_report"], CrashReport)
