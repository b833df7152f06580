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

__all__ = ["CrashReport", "describe_entry"]

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


def describe_entry(fn: Any) -> str:
    """`module.qualname` of a process's function, for reports and listings."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


def crash(proc: Process, reason: Any, exc: BaseException) -> None:
    """Log the crash report of `proc` at ERROR, with the traceback of `exc`."""
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
    process_logger.error(
        "CRASH REPORT process %r%s (%s) exited with reason %r",
        report.pid,
        name,
        report.initial_call,
        reason,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"otp_report": report},
    )
