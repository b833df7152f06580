"""Reports: frozen records logged through stdlib `logging`, one logger per area.

A report rides on its log record as the attribute `otp_report`, so handlers and tests can
read the facts (`otp.testing.capture_reports()`) instead of parsing text. The library
configures no handlers.
"""

from __future__ import annotations

import logging
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
    record = logger.makeRecord(
        logger.name, level, "", 0, msg, args, exc_info, extra={"otp_report": report}
    )
    logger.handle(record)


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
