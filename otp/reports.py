"""Reports: frozen records logged through stdlib `logging`, one logger per area.

A report rides on its log record as the attribute `otp_report`, so handlers and tests can
read the facts (`otp.testing.capture_reports()`) instead of parsing text. The library
configures no handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._values import Pid

if TYPE_CHECKING:
    from ._process import Process

__all__ = ["CrashReport", "describe_entry", "emit"]

process_logger = logging.getLogger("otp.process")


@dataclass(frozen=True, slots=True)
class CrashReport:
    """A process ended by raising (or calling `otp.exit`) with an abnormal reason."""

    pid: Pid
    registered_name: str | None
    initial_call: str
    reason: Any
    exception: BaseException
    links: tuple[Pid, ...]
    message_queue_len: int


def emit(
    logger: logging.Logger,
    level: int,
    report: Any,
    msg: str,
    *args: Any,
    exc: BaseException | None = None,
) -> None:
    """Log `report` (as the record's `otp_report`) if anyone listens at `level`.

    The record is built directly: the runtime's reports have no useful caller frame, and
    looking one up costs more than the rest of a crash.
    """
    if not logger.isEnabledFor(level):
        return
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    logger.handle(_record(logger.name, level, msg, args, exc_info, report))


_templates: dict[int, dict[str, Any]] = {}  # by thread; a forked child starts afresh
os.register_at_fork(after_in_child=_templates.clear)


def _record(
    name: str, level: int, msg: str, args: tuple[Any, ...], exc_info: Any, report: Any
) -> logging.LogRecord:
    """A record equal to what `LogRecord(...)` builds, in a third of the time: the fields
    that depend only on the thread and the process (names, ids, the empty source location)
    come from a record built once per thread (and again after a fork)."""
    if logging.getLogRecordFactory() is not logging.LogRecord:  # someone builds their own
        record = logging.getLogRecordFactory()(name, level, "", 0, msg, args, exc_info)
        record.otp_report = report
        return record
    thread = threading.get_ident()
    template = _templates.get(thread)
    if template is None:
        template = vars(logging.LogRecord(name, level, "", 0, msg, (), None)).copy()
        _templates[thread] = template
    record = _new_record(logging.LogRecord)
    fields = record.__dict__
    fields.update(template)
    now = time.time_ns()
    fields["name"] = name
    fields["msg"] = msg
    fields["args"] = args
    fields["levelname"] = logging.getLevelName(level)
    fields["levelno"] = level
    fields["exc_info"] = exc_info
    fields["created"] = now / 1e9
    fields["msecs"] = (now % 1_000_000_000) // 1_000_000 + 0.0
    fields["relativeCreated"] = (now - _START_NS) / 1e6
    fields["otp_report"] = report
    if "taskName" in fields and getattr(logging, "logAsyncioTasks", False):
        try:  # 3.12+: the asyncio task (here, the process) that logged
            fields["taskName"] = asyncio.current_task().get_name()  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            fields["taskName"] = None  # logged outside a task
    return record


_new_record = object.__new__
# What relativeCreated counts from: seconds as a float before 3.13, nanoseconds from it.
_START: float | int = logging._startTime  # type: ignore[attr-defined]
_START_NS: int = _START if isinstance(_START, int) else int(_START * 1e9)


def describe_entry(fn: Any) -> str:
    """`module.qualname` of a process's function, for reports and listings."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


def crash(proc: Process, reason: Any, exc: BaseException) -> None:
    """Log the crash report of `proc` at ERROR, with the traceback of `exc`."""
    if not process_logger.isEnabledFor(logging.ERROR):
        return
    report = CrashReport(
        pid=proc.pid,
        registered_name=proc.regname,
        initial_call=describe_entry(proc.entry),
        reason=reason,
        exception=exc,
        links=tuple(proc.links or ()),
        message_queue_len=len(proc.mbox or ()),
    )
    name = f" {report.registered_name!r}" if report.registered_name else ""
    emit(
        process_logger,
        logging.ERROR,
        report,
        "CRASH REPORT process %r%s (%s) exited with reason %r",
        report.pid,
        name,
        report.initial_call,
        reason,
        exc=exc,
    )
