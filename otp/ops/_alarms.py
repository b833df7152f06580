"""Alarms: conditions an operator should act on, raised and cleared as reports.

An alarm is raised once, when its condition starts, and cleared once, when it ends; both
are `AlarmReport`s on the `otp.alarm` logger (raised at WARNING, cleared at INFO), and the
node's report watchers see them whatever the logging levels. `active(node)` lists the alarms
raised and not yet cleared (what `/healthz` shows). An alarm is known by its `kind` and its
`offender`; while it is active its `details` follow the condition, without new reports.

- `long_mailbox`, offender the process's pid: its mailbox holds more than 1,000 messages;
  cleared when it holds half that or less, or the process has ended.
- `restarts`, offender `(supervisor, child id)`: more than 3 restarts of the child within
  60 s; cleared when at most 3 remain within the last 60 s.
- `loop_lag`, offender the node's name: the event loop ran its heartbeat more than 0.1 s
  late; cleared once the loop has run freely for 10 s.
- `long_callback`, offender `(pid or task name, callback)`: one callback held the event
  loop for more than 0.1 s (Erlang's `long_schedule`); cleared once that process or task
  has not held it for 10 s.
- `call_p99`, offender the server's class (its name, as the metrics label it): the 99th
  percentile of its `GenServer.call`s over the last 10 s is above 50 ms; cleared when it is
  back to 80% of that (40 ms) or less, or no call of the class was timed in the window.

How each is watched, at no cost per message or per call:

- `long_mailbox`: every `check_interval` seconds (1 s) the alarm process reads the length
  of every mailbox (one pass over the process table: about 5 ms per 100,000 processes,
  measured on a 2-core VM).
- `restarts`: a report watcher counts the supervisors' `child_terminated` reports (each is a
  child's end that its supervisor acts on) per supervisor and child id; a DynamicSupervisor's
  children, which have no id, count together under the child id None.
- `loop_lag` and `long_callback`: the loop watchdog's `LoopBlocked` reports
  (`otp.watchdog`, `OTP_LOOP_BLOCK_WARNING`, default 0.1 s). Without the watchdog, or with
  `otp.watchdog` logging above WARNING, these two are never raised; a threshold under the
  watchdog's acts as the watchdog's.
- `call_p99`: the calls the metrics time (`otp.call.duration`: one in `call_sample`, 32)
  also go into a short ring per server class (`_metrics.RECENT`, the latest 1,024: one
  append per timed call, nothing on the others); each check drains the rings into the
  window and takes the p99 of what the window holds (with fewer than 100 calls in it,
  about their slowest). It needs the metrics on (`otp run
  --ops-port`, or `otp.ops.enable_metrics`); without them it is never raised.

Each threshold is an option of `Options`, read from the environment by `Options.from_env`
(`0` or `off` turns an alarm off):

| option              | environment variable          | default |
|---------------------|-------------------------------|---------|
| `long_mailbox`      | `OTP_ALARM_LONG_MAILBOX`      | 1000 (messages) |
| `restarts`          | `OTP_ALARM_RESTARTS`          | 3 (restarts of one child ...) |
| `restart_period`    | `OTP_ALARM_RESTART_PERIOD`    | 60.0 (... within these seconds) |
| `loop_lag`          | `OTP_ALARM_LOOP_LAG`          | 0.1 (seconds) |
| `long_callback`     | `OTP_ALARM_LONG_CALLBACK`     | 0.1 (seconds) |
| `loop_clear_after`  | `OTP_ALARM_LOOP_CLEAR_AFTER`  | 10.0 (seconds the loop runs freely) |
| `check_interval`    | `OTP_ALARM_CHECK_INTERVAL`    | 1.0 (seconds between checks) |
| `call_p99`          | `OTP_ALARM_CALL_P99`          | 0.05 (seconds, a class's call p99) |
| `call_p99_window`   | `OTP_ALARM_CALL_P99_WINDOW`   | 10.0 (... over these last seconds) |

Alarms run in a process of the node's own (a system process), started by `start(node)`:
`otp run` starts it; a program that calls `otp.run` itself calls `start()` from its main
process if it wants alarms. Until then nothing of this module runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from .. import _node
from .._mailbox import receive, send
from .._spawn import spawn
from .._values import Pid
from .._watchdog import LoopBlocked
from ..reports import emit
from ._logs import json_value

__all__ = ["KINDS", "Alarm", "AlarmReport", "Options", "active", "offender_text", "start"]

KINDS: Final = ("long_mailbox", "restarts", "loop_lag", "long_callback", "call_p99")
CALL_P99_CLEAR: Final = 0.8  # a call_p99 alarm clears at this share of its threshold

_logger = logging.getLogger("otp.alarm")
_watchdog_logger = logging.getLogger("otp.watchdog")


@dataclass(frozen=True, slots=True)
class Alarm:
    """An active alarm: its `kind`, who it is about (`offender`), what is known of the
    condition (`details`, read-only) and when it was raised (`since`, `time.time()`)."""

    kind: str
    offender: Any
    details: Mapping[str, Any]
    since: float

    def as_json(self) -> dict[str, Any]:
        """The alarm as JSON values: the offender as text (`<0.42.0>`, `(kv_sup, kv)`), the
        details as an object of the values the JSON logs show (pids as text).

        Returns:
            `{"kind", "offender", "details", "since"}`.
        """
        return {
            "kind": self.kind,
            "offender": offender_text(self.offender),
            "details": {key: json_value(value) for key, value in self.details.items()},
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """An alarm `raised` or `cleared` (`context`), logged on `otp.alarm`. `details` are the
    alarm's when it was raised, and its last ones (with why it cleared) when cleared."""

    context: Literal["raised", "cleared"]
    kind: str
    offender: Any
    details: Mapping[str, Any]

    def json_fields(self) -> dict[str, Any]:
        """Its fields in the JSON logs: the offender as text, the details as an object.

        Returns:
            `{"context", "kind", "offender", "details"}`.
        """
        return {
            "context": self.context,
            "kind": self.kind,
            "offender": offender_text(self.offender),
            "details": {key: json_value(value) for key, value in self.details.items()},
        }


def offender_text(offender: Any) -> str:
    """How the logs name an offender: `<0.42.0>`, `node@host`, `(kv_sup, KV)`."""
    if type(offender) is tuple:
        return "(" + ", ".join(map(_text, offender)) + ")"
    return _text(offender)


def _env_number(name: str, default: float | None, kind: type) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if text.lower() in ("0", "off", "false", "no"):
        return None
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if not 0 < value < math.inf:
        raise ValueError(
            f"{name} takes a positive {'whole number' if kind is int else 'number'} or 0/off "
            f"to turn the alarm off\nGot: {text!r}"
        )
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Options:
    """The alarms' thresholds; None turns an alarm off (see the module's doc)."""

    long_mailbox: int | None = 1000
    restarts: int | None = 3
    restart_period: float = 60.0
    loop_lag: float | None = 0.1
    long_callback: float | None = 0.1
    loop_clear_after: float = 10.0
    check_interval: float = 1.0
    call_p99: float | None = 0.05
    call_p99_window: float = 10.0

    @classmethod
    def from_env(cls) -> Options:
        """The defaults, changed by the `OTP_ALARM_*` environment variables.

        Returns:
            The `Options` (a variable set to 0 or `off` turns its alarm off).

        Raises:
            ValueError: A variable that is neither a positive number nor 0/off.
        """
        d = cls()
        period = _env_number("OTP_ALARM_RESTART_PERIOD", d.restart_period, float)
        clear = _env_number("OTP_ALARM_LOOP_CLEAR_AFTER", d.loop_clear_after, float)
        interval = _env_number("OTP_ALARM_CHECK_INTERVAL", d.check_interval, float)
        window = _env_number("OTP_ALARM_CALL_P99_WINDOW", d.call_p99_window, float)
        return cls(
            long_mailbox=_env_int("OTP_ALARM_LONG_MAILBOX", d.long_mailbox),
            restarts=_env_int("OTP_ALARM_RESTARTS", d.restarts),
            restart_period=d.restart_period if period is None else period,
            loop_lag=_env_number("OTP_ALARM_LOOP_LAG", d.loop_lag, float),
            long_callback=_env_number("OTP_ALARM_LONG_CALLBACK", d.long_callback, float),
            loop_clear_after=d.loop_clear_after if clear is None else clear,
            check_interval=d.check_interval if interval is None else interval,
            call_p99=_env_number("OTP_ALARM_CALL_P99", d.call_p99, float),
            call_p99_window=d.call_p99_window if window is None else window,
        )


def _env_int(name: str, default: int | None) -> int | None:
    value = _env_number(name, default, int)
    return None if value is None else int(value)


# The alarm table of each node whose alarm process runs (dropped when it ends).
_tables: dict[_node.Node, _Table] = {}


def active(node: _node.Node | None = None) -> list[Alarm]:
    """The alarms raised and not cleared on `node` (default: the running node), oldest
    first; none when alarms do not run.

    Args:
        node: The node (default None: the running one).

    Returns:
        The active `Alarm`s.

    Raises:
        NoProcessError: `node` is None and no node is running.
    """
    table = _tables.get(node if node is not None else _node.get())
    return [] if table is None else list(table.alarms.values())


def start(
    node: _node.Node | None = None,
    options: Options | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Pid:
    """Start watching for alarms on `node` (default: the running node), from the node's
    loop; returns the alarm process. `options` default to `Options.from_env()`; `clock`
    (seconds) times the restart window and the loop's quiet time. Alarms already running
    are left as they are.

    Args:
        node: The node (default None: the running one).
        options: The thresholds (default None: `Options.from_env()`).
        clock: The clock, in seconds (default `time.monotonic`; for tests).

    Returns:
        The alarm process's pid.

    Raises:
        NoProcessError: `node` is None and no node is running.
        ValueError: A bad `OTP_ALARM_*` variable (when `options` is None).
    """
    node = node if node is not None else _node.get()
    table = _tables.get(node)
    if table is not None and table.pid._proc is not None:  # running, or about to
        return table.pid
    for other in [n for n in _tables if n is not node]:  # (killed before it ever ran)
        del _tables[other]
    table = _Table(node, options if options is not None else Options.from_env(), clock)
    _tables[node] = table
    table.pid = spawn(_alarm_process, table)
    node.system.add(table.pid.id)  # the runtime's own: not a leak, not upgraded
    return table.pid


class _Table:
    """The alarms of one node and what their conditions need; used in its alarm process."""

    def __init__(self, node: _node.Node, options: Options, clock: Callable[[], float]) -> None:
        self.node = node
        self.options = options
        self.clock = clock
        self.pid: Pid = node.init_pid
        self.alarms: dict[tuple[str, Any], Alarm] = {}
        self.restarts: dict[tuple[Any, Any], deque[float]] = {}
        self.last_blocked: dict[tuple[str, Any], float] = {}  # loop alarms: last seen
        # call_p99: by server class, the durations of its timed calls, one batch per check
        self.calls: dict[str, deque[tuple[float, list[float]]]] = {}

    # -- raising and clearing --

    def set(self, kind: str, offender: Any, details: dict[str, Any]) -> None:
        """Raise the alarm, or update the details of the active one (no report)."""
        key = (kind, offender)
        alarm = self.alarms.get(key)
        frozen = MappingProxyType(details)
        if alarm is not None:
            self.alarms[key] = dataclasses.replace(alarm, details=frozen)
            return
        self.alarms[key] = Alarm(kind, offender, frozen, time.time())
        _report(logging.WARNING, AlarmReport("raised", kind, offender, frozen))

    def clear(self, kind: str, offender: Any, **why: Any) -> None:
        alarm = self.alarms.pop((kind, offender), None)
        if alarm is not None:
            details = MappingProxyType({**alarm.details, **why})
            _report(logging.INFO, AlarmReport("cleared", kind, offender, details))

    # -- the conditions --

    def check(self) -> None:
        """The periodic check: mailboxes, restart windows, a loop that runs freely again."""
        now = self.clock()
        limit = self.options.long_mailbox
        if limit is not None:
            self.check_mailboxes(limit)
        period = self.options.restart_period
        for key, times in list(self.restarts.items()):
            while times and times[0] <= now - period:
                times.popleft()
            if not times:
                del self.restarts[key]
            if len(times) <= (self.options.restarts or 0):
                self.clear("restarts", key, restarts=len(times))
        quiet = self.options.loop_clear_after
        for key, seen in list(self.last_blocked.items()):
            if now - seen >= quiet:
                del self.last_blocked[key]
                self.clear(*key, quiet_for=quiet)
        p99_limit = self.options.call_p99
        if p99_limit is not None:
            self.check_calls(p99_limit, now)

    def check_calls(self, limit: float, now: float) -> None:
        """Each server class's call p99 over the window, from the calls the metrics timed
        since the last check and those of the checks still within the window."""
        ops = self.node.ops
        metrics = None if ops is None else ops.metrics
        if metrics is not None:
            for label, durations in metrics.drain_recent().items():
                self.calls.setdefault(label, deque()).append((now, durations))
        window = self.options.call_p99_window
        for label, batches in list(self.calls.items()):
            while batches and batches[0][0] <= now - window:
                batches.popleft()
            count = sum(len(durations) for _, durations in batches)
            p99 = _p99([d for _, durations in batches for d in durations], count)
            if not batches:
                del self.calls[label]
            if p99 is None or p99 <= limit * CALL_P99_CLEAR:
                self.clear("call_p99", label, p99=p99, calls=count)
            elif p99 > limit or ("call_p99", label) in self.alarms:  # (raise, or follow)
                details = {"p99": p99, "calls": count, "window": window, "limit": limit}
                self.set("call_p99", label, details)
        for kind, label in [key for key in self.alarms if key[0] == "call_p99"]:
            if label not in self.calls:  # (metrics turned off: nothing left to judge by)
                self.clear(kind, label, p99=None, calls=0)

    def check_mailboxes(self, limit: int) -> None:
        procs = self.node.procs
        over = [p for p in procs.values() if p.mbox is not None and len(p.mbox) > limit]
        for proc in over:
            self.set(
                "long_mailbox",
                proc.pid,
                {"registered_name": proc.regname, "length": len(proc.mbox or ()), "limit": limit},
            )
        for kind, pid in [key for key in self.alarms if key[0] == "long_mailbox"]:
            alive = procs.get(pid.id)
            if alive is None or alive.pid != pid:
                self.clear(kind, pid, length=None, ended=True)
            elif len(alive.mbox or ()) <= limit // 2:
                self.clear(kind, pid, length=len(alive.mbox or ()), ended=False)

    def child_terminated(self, supervisor: Any, child: Any, reason: Any) -> None:
        limit = self.options.restarts
        if limit is None:
            return
        if type(child) is Pid:  # a DynamicSupervisor's child: they have no id
            child = None
        try:
            hash(child)
        except TypeError:
            child = repr(child)
        key = (supervisor, child)
        now = self.clock()
        times = self.restarts.setdefault(key, deque())
        times.append(now)
        while times[0] <= now - self.options.restart_period:
            times.popleft()
        if len(times) > limit:
            self.set(
                "restarts",
                key,
                {
                    "supervisor": supervisor,
                    "child": child,
                    "restarts": len(times),
                    "period": self.options.restart_period,
                    "last_reason": reason,
                },
            )

    def loop_blocked(self, report: LoopBlocked) -> None:
        now = self.clock()
        lag = self.options.loop_lag
        if lag is not None and report.blocked_for > lag:
            key = ("loop_lag", self.node.name)
            old = self.alarms.get(key)
            worst = max(report.blocked_for, old.details["lag"] if old is not None else 0.0)
            self.set("loop_lag", self.node.name, {"lag": worst, "blamed": report.offender()})
            self.last_blocked[key] = now
        longest = self.options.long_callback
        who = report.pid if report.pid is not None else report.task
        if longest is not None and who is not None and report.blocked_for > longest:
            offender = (who, report.callback)
            old = self.alarms.get(("long_callback", offender))
            worst = max(report.blocked_for, old.details["blocked_for"] if old else 0.0)
            self.set(
                "long_callback",
                offender,
                {
                    "pid": report.pid,
                    "registered_name": report.registered_name,
                    "behaviour": report.behaviour,
                    "task": report.task,
                    "callback": report.callback,
                    "location": report.location,
                    "blocked_for": worst,
                },
            )
            self.last_blocked[("long_callback", offender)] = now


def _p99(durations: list[float], count: int) -> float | None:
    """The 99th percentile of `count` durations (nearest rank); None for none."""
    if not count:
        return None
    above = count - math.ceil(0.99 * count) + 1  # the p99 and the durations over it
    return heapq.nlargest(above, durations)[-1]


def _report(level: int, report: AlarmReport) -> None:
    details = " ".join(f"{k}={_text(v)}" for k, v in report.details.items())
    emit(
        _logger,
        level,
        report,
        "ALARM %s kind=%s offender=%s %s",
        report.context,
        report.kind,
        offender_text(report.offender),
        details,
    )


def _text(value: Any) -> str:
    if isinstance(value, type):
        return value.__qualname__
    if type(value) is float:  # seconds, to the millisecond
        return repr(round(value, 3))
    return value if type(value) is str else repr(value)


class _WatchdogFilter(logging.Filter):
    """Hands the watchdog's reports (logged from its thread) to the alarm process. A filter
    on `otp.watchdog` rather than a handler: it sees each record and changes nothing of
    where the record goes (with no handler configured, Python's last-resort one still
    prints the watchdog's warnings)."""

    def __init__(self, table: _Table) -> None:
        super().__init__()
        self.loop = table.node.loop
        self.pid = table.pid

    def filter(self, record: logging.LogRecord) -> bool:
        report = getattr(record, "otp_report", None)
        if type(report) is LoopBlocked:
            with contextlib.suppress(RuntimeError):  # a closed loop: the node has stopped
                self.loop.call_soon_threadsafe(send, self.pid, report)
        return True


async def _alarm_process(table: _Table) -> None:
    node = table.node
    pid = table.pid

    def watch(report: Any) -> None:  # (by name: otp does not import behaviours)
        if type(report).__name__ == "SupervisorReport" and report.context == "child_terminated":
            send(pid, ("child_terminated", report.supervisor, report.offender, report.reason))

    node.report_watchers.append(watch)
    loop_reports = _WatchdogFilter(table)
    _watchdog_logger.addFilter(loop_reports)
    interval = table.options.check_interval
    try:
        due = time.monotonic() + interval
        while True:
            try:
                msg = await receive(timeout=max(0.0, due - time.monotonic()))
            except TimeoutError:
                table.check()
                due = time.monotonic() + interval
                continue
            if type(msg) is LoopBlocked:
                table.loop_blocked(msg)
            elif type(msg) is tuple and msg[0] == "child_terminated":
                table.child_terminated(*msg[1:])
    finally:
        _watchdog_logger.removeFilter(loop_reports)
        node.report_watchers.remove(watch)
        if _tables.get(node) is table:
            del _tables[node]
