"""Reports: frozen records logged through stdlib `logging`, one logger per area.

A report rides on its log record as the attribute `otp_report`, so handlers and tests can
read the facts (`otp.testing.capture_reports()`) instead of parsing text. The library
configures no handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from . import _node
from ._values import Pid

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "CrashReport",
    "MailboxOverflowReport",
    "describe_entry",
    "emit",
    "hide_frames",
    "reported",
    "user_traceback",
    "wanted",
]

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


@dataclass(frozen=True, slots=True)
class MailboxOverflowReport:
    """A bounded mailbox dropped messages (or ended its process, with policy `"exit"`).

    `dropped` counts every drop of the process so far, `since_last` those since its previous
    report.
    """

    pid: Pid
    registered_name: str | None
    initial_call: str
    max_mailbox: int
    policy: str  # "drop_newest", "drop_oldest" or "exit"
    dropped: int
    since_last: int


def emit(
    logger: logging.Logger,
    level: int,
    report: Any,
    msg: str,
    *args: Any,
    exc: BaseException | None = None,
) -> None:
    """Log `report` (as the record's `otp_report`) if anyone listens at `level`, and show
    it to the node's report watchers (the release handler's watch window), whatever the
    logging levels.

    The record is built directly: the runtime's reports have no useful caller frame, and
    looking one up costs more than the rest of a crash.

    Args:
        logger: The area's logger (`otp.gen_server`, `otp.supervisor`, ...).
        level: The logging level.
        report: The frozen report record.
        msg: The %-format of the text line.
        *args: Its arguments.
        exc: An exception whose (trimmed) traceback the record carries (default None).
    """
    node = _node.current
    if node is not None and node.report_watchers:
        for watcher in list(node.report_watchers):
            watcher(report)
    if not logger.isEnabledFor(level):
        return
    exc_info = None
    if exc is not None:
        full = _DEBUG or logger.isEnabledFor(logging.DEBUG)
        exc_info = (type(exc), exc, exc.__traceback__ if full else user_traceback(exc))
    if _shaped(logger):  # someone shapes the records: let them
        record = logger.makeRecord(
            logger.name, level, "", 0, msg, args, exc_info, extra={"otp_report": report}
        )
    else:
        record = _record(logger.name, level, msg, args, exc_info, report)
    try:
        logger.handle(record)
    except Exception:  # a broken handler must not break the process that reports
        print(f"otp: a logging handler raised on a record of {logger.name}:", file=sys.stderr)
        traceback.print_exc()


def wanted(logger: logging.Logger, level: int) -> bool:
    """Whether a report on `logger` at `level` would reach anyone: the node's report
    watchers, or a handler that does something with a record. A report that only
    `logging.NullHandler`s would get (a library's "no output" setup) is not worth its
    record: callers ask this before they build one. With no handler at all, `logging`
    prints the record itself (`logging.lastResort`): that is wanted. So is anything a
    filter on `logger`, or a record factory of one's own, sees.

    Args:
        logger: The area's logger.
        level: The logging level of the report.

    Returns:
        True when the report is to be built and emitted.
    """
    node = _node.current
    if node is not None and node.report_watchers:
        return True
    if not logger.isEnabledFor(level):
        return False
    if logger.filters or _shaped(logger):
        return True
    found = False
    log: logging.Logger | None = logger
    while log is not None:  # the handlers `Logger.callHandlers` would call
        for handler in log.handlers:
            if type(handler).handle is not _NULL_HANDLE and level >= handler.level:
                return True
            found = True
        if not log.propagate:
            break
        log = log.parent
    return not found


def _shaped(logger: logging.Logger) -> bool:
    """Someone shapes the records of `logger` (a record factory, a `makeRecord` of one's own)."""
    return (
        logging.getLogRecordFactory() is not logging.LogRecord
        or type(logger).makeRecord is not _MAKE_RECORD
        or "makeRecord" in logger.__dict__
    )


_MAKE_RECORD: Final = logging.Logger.makeRecord
_NULL_HANDLE: Final = logging.NullHandler.handle
_static: dict[str, Any] = {}  # the fields of a record that no logging call changes
_pid: list[int] = []  # os.getpid(), forgotten in a forked child


def _record(
    name: str, level: int, msg: str, args: tuple[Any, ...], exc_info: Any, report: Any
) -> logging.LogRecord:
    """What `LogRecord(name, level, "", 0, msg, args, exc_info)` builds, in half the time:
    the fields that never change (the empty source location, ...) are copied from a record
    built once; the thread, process and task are read for each record, as LogRecord does."""
    static = _static
    if not static:
        fields = vars(logging.LogRecord(name, level, "", 0, msg, (), None))
        static.update((k, v) for k, v in fields.items() if k not in _PER_RECORD)
    record = _new_record(logging.LogRecord)
    fields = record.__dict__
    fields.update(static)
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
    if logging.logThreads:
        fields["thread"] = threading.get_ident()
        fields["threadName"] = threading.current_thread().name
    else:
        fields["thread"] = fields["threadName"] = None
    fields["processName"] = _process_name() if logging.logMultiprocessing else None
    if logging.logProcesses:
        if not _pid:
            _pid.append(os.getpid())
        fields["process"] = _pid[0]
    else:
        fields["process"] = None
    if _TASK_NAMES:  # 3.12+
        fields["taskName"] = _task_name() if logging.logAsyncioTasks else None  # type: ignore[attr-defined]
    fields["otp_report"] = report
    return record


_PER_RECORD: Final = frozenset(
    {
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "exc_info",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "taskName",
    }
)
_TASK_NAMES: Final = hasattr(logging, "logAsyncioTasks")
_new_record = object.__new__
# What relativeCreated counts from: seconds as a float before 3.13, nanoseconds from it.
_START: float | int = logging._startTime  # type: ignore[attr-defined]
_START_NS: Final = _START if isinstance(_START, int) else int(_START * 1e9)
os.register_at_fork(after_in_child=_pid.clear)


def _process_name() -> str | None:
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return "MainProcess"
    try:
        return mp.current_process().name  # type: ignore[no-any-return]
    except Exception:  # multiprocessing half imported: LogRecord's answer too
        return "MainProcess"


def _task_name() -> str | None:
    try:
        return asyncio.current_task().get_name()  # type: ignore[union-attr]
    except (AttributeError, RuntimeError):  # logged outside a task
        return None


# -- what a crash shows ----------------------------------------------------------------------

_DEBUG: Final = os.environ.get("OTP_DEBUG", "") not in ("", "0")
_hidden: list[str] = [os.path.dirname(__file__) + os.sep]


def hide_frames(directory: str) -> None:
    """Leave the frames of code under `directory` (a behaviour library's own) out of the
    tracebacks reports show; `OTP_DEBUG=1`, or a logger at DEBUG, shows them all.

    Args:
        directory: A directory of source files.
    """
    path = os.path.join(os.path.abspath(directory), "")
    if path not in _hidden:
        _hidden.append(path)


def user_traceback(exc: BaseException) -> TracebackType | None:
    """`exc`'s traceback without the runtime's frames (all of it if nothing else is left:
    then the runtime itself failed).

    Args:
        exc: An exception.

    Returns:
        The trimmed traceback (None when `exc` has none).
    """
    kept: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(tuple(_hidden)):
            kept.append(tb)
        tb = tb.tb_next
    if not kept:
        return exc.__traceback__
    trimmed = None
    for tb in reversed(kept):
        trimmed = TracebackType(trimmed, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    return trimmed


def reported(proc: Process) -> None:
    """The behaviour of `proc` has logged the crash it is about to end with: the kernel's
    own crash report of it goes at DEBUG, so one crash makes one report.

    Args:
        proc: The process record.
    """
    proc.reported = True


def describe_entry(fn: Any) -> str:
    """`module.qualname` of a process's function, for reports and listings.

    Args:
        fn: A function or callable object.

    Returns:
        Its `module.qualname` (`?` for an unknown module).
    """
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


def crash(proc: Process, reason: Any, exc: BaseException) -> None:
    """Log the crash report of `proc` at ERROR, with the traceback of `exc` (at DEBUG when
    its behaviour reported the crash already)."""
    level = logging.ERROR
    if proc.reported:
        level = logging.DEBUG
    if not process_logger.isEnabledFor(level) or not wanted(process_logger, level):
        return  # (its watchers see it at the levels it is logged at only)
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
        level,
        report,
        "CRASH REPORT process %r%s (%s) exited with reason %r",
        report.pid,
        name,
        report.initial_call,
        reason,
        exc=exc,
    )
