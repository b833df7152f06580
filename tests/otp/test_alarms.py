"""Alarms: each raised and cleared by a real condition, as reports on `otp.alarm`.

The tests synchronise on the alarm reports themselves (a handler sends each to the test
process). The restart window runs on a clock the test moves by hand; the loop alarms clear
after a short quiet time, so a slow machine only delays the clear.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from types import MappingProxyType
from typing import Any
from unittest.mock import ANY

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otp
import otp.ops
from behaviours import GenServer, NoReply, Reply, Supervisor
from otp import _node
from otp._watchdog import ENV, LoopBlocked
from otp.ops import _alarms
from otp.ops._alarms import Alarm, AlarmReport, Options
from otp.ops._logs import JsonFormatter
from otp.testing import assert_receive

QUICK = Options(check_interval=0.005)


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0.02")  # the loop watchdog, read when the node starts


class Forward(logging.Handler):
    """Sends each alarm report, with its record's level and logger, to `pid`."""

    def __init__(self, pid: otp.Pid) -> None:
        super().__init__()
        self.pid = pid
        self.lines: list[str] = []
        self.json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))
        otp.send(self.pid, (record.levelname, record.name, record.otp_report))  # type: ignore[attr-defined]


@pytest.fixture
def forwards() -> Iterator[list[Forward]]:
    made: list[Forward] = []
    logger = logging.getLogger("otp.alarm")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield made
    for handler in made:
        logger.removeHandler(handler)
    logger.setLevel(level)


def forward(made: list[Forward]) -> Forward:
    handler = Forward(otp.self())
    logging.getLogger("otp.alarm").addHandler(handler)
    made.append(handler)
    return handler


async def alarm(
    context: str, kind: str, offender: Any = ANY, timeout: float = 5.0
) -> tuple[str, str, AlarmReport]:
    """The next alarm report of `context`, `kind` and `offender` (others stay queued)."""
    msg: tuple[str, str, AlarmReport] = await assert_receive(
        lambda m: (
            type(m) is tuple
            and len(m) == 3
            and type(m[2]) is AlarmReport
            and (m[2].context, m[2].kind) == (context, kind)
            and offender == m[2].offender
        ),
        timeout=timeout,
    )
    return msg


# -- long_mailbox --------------------------------------------------------------------------


async def _hoarder() -> None:
    """Takes no message until told to drain, then takes them all."""
    await otp.receive(lambda m: m == "drain")
    while True:
        msg = await otp.receive()
        if type(msg) is tuple and msg[0] == "drained?":
            otp.send(msg[1], "drained")


async def test_a_flooded_mailbox_raises_an_alarm_cleared_when_it_drains(
    node: Any, forwards: list[Forward]
) -> None:
    handler = forward(forwards)
    _alarms.start(options=Options(long_mailbox=10, check_interval=0.005))
    pid = otp.spawn(_hoarder)
    otp.register("hoarder", pid)
    for n in range(11):
        otp.send(pid, n)
    level, logger, raised = await alarm("raised", "long_mailbox")
    assert (level, logger) == ("WARNING", "otp.alarm")
    assert raised == AlarmReport(
        "raised",
        "long_mailbox",
        pid,
        MappingProxyType({"registered_name": "hoarder", "length": 11, "limit": 10}),
    )
    [active] = _alarms.active(_node.get())
    assert (active.kind, active.offender, dict(active.details)) == (
        "long_mailbox",
        pid,
        {"registered_name": "hoarder", "length": 11, "limit": 10},
    )
    assert active.since <= time.time()
    otp.send(pid, "drain")
    otp.send(pid, ("drained?", otp.self()))
    await assert_receive("drained")
    level, logger, cleared = await alarm("cleared", "long_mailbox")
    assert (level, logger) == ("INFO", "otp.alarm")
    assert cleared == AlarmReport(
        "cleared",
        "long_mailbox",
        pid,
        MappingProxyType({"registered_name": "hoarder", "length": 0, "limit": 10, "ended": False}),
    )
    assert _alarms.active() == []
    # the JSON line of the raised alarm
    line = json.loads(handler.lines[0])
    del line["time"]
    assert line == {
        "level": "WARNING",
        "logger": "otp.alarm",
        "message": f"ALARM raised kind=long_mailbox offender={pid!r} "
        "registered_name=hoarder length=11 limit=10",
        "report": "AlarmReport",
        "context": "raised",
        "kind": "long_mailbox",
        "offender": repr(pid),
        "details": {"registered_name": "hoarder", "length": 11, "limit": 10},
    }
    otp.exit(pid, otp.KILL)


async def test_the_mailbox_alarm_of_a_process_that_ends_is_cleared(
    node: Any, forwards: list[Forward]
) -> None:
    forward(forwards)
    _alarms.start(options=Options(long_mailbox=3, check_interval=0.005))
    pid, ref = otp.spawn_monitor(_hoarder)
    for n in range(4):
        otp.send(pid, n)
    await alarm("raised", "long_mailbox")
    otp.exit(pid, otp.KILL)
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)
    _, _, cleared = await alarm("cleared", "long_mailbox")
    assert cleared.offender == pid
    assert (cleared.details["length"], cleared.details["ended"]) == (None, True)


# -- restarts ------------------------------------------------------------------------------


class Crasher(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_cast(self, msg: Any, state: None) -> NoReply[None]:
        raise RuntimeError(msg)


async def crash_and_wait_for_restart(sup: otp.Pid, name: str, why: str = "boom") -> None:
    old = otp.whereis(name)
    assert old is not None
    ref = otp.monitor(old)
    GenServer.cast(name, why)
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    await Supervisor.which_children(sup)  # the supervisor has restarted it


async def test_a_child_restarting_in_a_loop_raises_an_alarm_cleared_when_the_rate_drops(
    node: Any, forwards: list[Forward]
) -> None:
    handler = forward(forwards)
    now = [1000.0]
    _alarms.start(options=QUICK, clock=lambda: now[0])
    sup = await Supervisor.start_link(
        [Crasher.child_spec(None, name="crasher")], intensity=10, period=60.0, name="sup"
    )
    assert sup is not None
    for _ in range(4):  # one more than the three a minute allows
        await crash_and_wait_for_restart(sup, "crasher")
    level, logger, raised = await alarm("raised", "restarts")
    assert (level, logger) == ("WARNING", "otp.alarm")
    assert raised == AlarmReport(
        "raised",
        "restarts",
        ("sup", Crasher),
        MappingProxyType(
            {
                "supervisor": "sup",
                "child": Crasher,
                "restarts": 4,
                "period": 60.0,
                "last_reason": raised.details["last_reason"],
            }
        ),
    )
    assert repr(raised.details["last_reason"]) == "RuntimeError('boom')"
    assert [(a.kind, a.offender) for a in _alarms.active()] == [("restarts", ("sup", Crasher))]
    line = json.loads(handler.lines[0])
    del line["time"]
    assert line == {
        "level": "WARNING",
        "logger": "otp.alarm",
        "message": "ALARM raised kind=restarts offender=(sup, Crasher) supervisor=sup "
        "child=Crasher restarts=4 period=60.0 last_reason=RuntimeError('boom')",
        "report": "AlarmReport",
        "context": "raised",
        "kind": "restarts",
        "offender": "(sup, Crasher)",
        "details": {
            "supervisor": "sup",
            "child": f"{__name__}.Crasher",
            "restarts": 4,
            "period": 60.0,
            "last_reason": "RuntimeError('boom')",
        },
    }
    now[0] += 61.0  # a minute later, none of those restarts is within the window
    level, _, cleared = await alarm("cleared", "restarts")
    assert level == "INFO"
    assert (cleared.offender, cleared.details["restarts"]) == (("sup", Crasher), 0)
    assert _alarms.active() == []
    otp.unlink(sup)
    await GenServer.stop(sup)


async def test_restarts_within_the_limit_raise_no_alarm(node: Any, forwards: list[Forward]) -> None:
    forward(forwards)
    now = [1000.0]
    _alarms.start(options=QUICK, clock=lambda: now[0])
    sup = await Supervisor.start_link(
        [Crasher.child_spec(None, name="crasher")], intensity=10, period=60.0, name="sup"
    )
    assert sup is not None
    for n in (1, 2, 3):
        await crash_and_wait_for_restart(sup, "crasher", f"boom {n}")
        now[0] += 30.0  # three restarts, but never more than two within a minute
    for n in (4, 5):
        await crash_and_wait_for_restart(sup, "crasher", f"boom {n}")
    # the fifth restart is the third within the minute: still no alarm; the sixth raises it
    await crash_and_wait_for_restart(sup, "crasher", "boom 6")
    _, _, raised = await alarm("raised", "restarts")
    assert raised.details["restarts"] == 4
    assert repr(raised.details["last_reason"]) == "RuntimeError('boom 6')"
    otp.unlink(sup)
    await GenServer.stop(sup)


# -- loop_lag and long_callback ------------------------------------------------------------


class Seen(logging.Handler):
    """Sets `seen` once the watchdog has reported a stall of `callback`."""

    def __init__(self, callback: str) -> None:
        super().__init__()
        self.callback = callback
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "otp_report", None)
        if isinstance(report, LoopBlocked) and report.callback == self.callback:
            self.seen.set()


class Sleeper(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        time.sleep(0.2)  # holds the loop on purpose, 200 ms, then until the watchdog spoke
        for _ in range(2000):
            if request.is_set():
                break
            time.sleep(0.005)
        return Reply(None, state)


async def test_a_callback_that_blocks_the_loop_raises_the_loop_alarms(
    node: Any, forwards: list[Forward], monkeypatch: pytest.MonkeyPatch
) -> None:
    forward(forwards)
    _alarms.start(options=Options(check_interval=0.005, loop_clear_after=0.05))
    seen = Seen("Sleeper.handle_call")
    logging.getLogger("otp.watchdog").addHandler(seen)
    try:
        pid = await Sleeper.start(None, name="sleeper")
        await GenServer.call(pid, seen.seen)
    finally:
        logging.getLogger("otp.watchdog").removeHandler(seen)
    # the alarms default to 0.1 s; the call held the loop for 0.2 s at least
    # (another stall, on a slow machine, may raise alarms of its own: not the test's)
    _, _, raised = await alarm("raised", "long_callback", (pid, "Sleeper.handle_call"))
    details = dict(raised.details)
    assert details.pop("blocked_for") > 0.1
    assert details.pop("location").startswith(__file__)
    assert details == {
        "pid": pid,
        "registered_name": "sleeper",
        "behaviour": Sleeper,
        "task": None,
        "callback": "Sleeper.handle_call",
    }
    _, _, lag = await alarm("raised", "loop_lag", _node.get().name)
    assert lag.details["lag"] > 0.1
    # once the loop has run freely for loop_clear_after, both clear
    _, _, cleared = await alarm("cleared", "long_callback", (pid, "Sleeper.handle_call"))
    assert cleared.details["quiet_for"] == 0.05
    await alarm("cleared", "loop_lag")
    await GenServer.stop(pid)


# -- call_p99 ------------------------------------------------------------------------------


class Slow(GenServer[None]):
    """Answers after about 80 ms (awaiting: the loop runs on), or at once for "fast"."""

    def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        if request != "fast":
            await asyncio.sleep(0.08)
        return Reply(request, state)


class Quick(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        return Reply(request, state)


@pytest.fixture
async def timed_calls() -> AsyncIterator[None]:
    """The node's metrics on, every call timed (the call p99 alarm reads them)."""
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otp.ops.enable_metrics(provider, call_sample=1)
    yield
    otp.ops.disable_metrics()
    provider.shutdown()


async def test_a_server_class_with_slow_calls_raises_the_call_p99_alarm_cleared_later(
    node: Any, forwards: list[Forward], timed_calls: None
) -> None:
    forward(forwards)
    now = [1000.0]
    options = Options(check_interval=0.005, call_p99=0.05, call_p99_window=10.0)
    _alarms.start(options=options, clock=lambda: now[0])
    slow = await Slow.start(None, name="slow")
    quick = await Quick.start(None)
    assert slow is not None and quick is not None
    for i in range(50):
        await GenServer.call(quick, i)
    await GenServer.call(slow, "slow")
    level, logger, raised = await alarm("raised", "call_p99", "Slow")
    assert (level, logger) == ("WARNING", "otp.alarm")
    assert set(raised.details) == {"p99", "calls", "window", "limit"}
    assert (raised.details["calls"], raised.details["window"]) == (1, 10.0)
    assert raised.details["limit"] == 0.05
    # Quick's calls were judged by the same check or an earlier one: no alarm for them
    # (a slow machine's loop may raise loop alarms of its own: not the test's)
    assert [a.offender for a in _alarms.active() if a.kind == "call_p99"] == ["Slow"]
    health = otp.ops.health()
    assert health["status"] == "degraded"
    assert ("call_p99", "Slow") in [(a.kind, a.offender) for a in health["alarms"]]
    # one slow call among more than a hundred fast ones is under the 99th percentile
    for _ in range(200):
        await GenServer.call(slow, "fast")
    level, _, cleared = await alarm("cleared", "call_p99", "Slow")
    assert level == "INFO" and cleared.details["calls"] > 100
    assert cleared.details["p99"] is not None  # (the window is not empty: it was judged)
    assert [a for a in _alarms.active() if a.kind == "call_p99"] == []
    for pid in (slow, quick):
        await GenServer.stop(pid)


async def test_the_call_p99_alarm_clears_only_under_its_hysteresis(
    node: Any, forwards: list[Forward], timed_calls: None
) -> None:
    forward(forwards)
    now = [1000.0]
    options = Options(call_p99=0.05, call_p99_window=10.0)
    table = _alarms._Table(_node.get(), options, lambda: now[0])
    ops = _node.get().ops
    assert ops is not None and ops.metrics is not None
    ring = ops.metrics.recent.setdefault("Kv", deque(maxlen=1024))

    def check(durations: list[float]) -> None:
        now[0] += 11.0  # (a window later: only these count)
        ring.extend(durations)
        table.check()

    check([0.001] * 98 + [0.06] * 2)  # the p99 is the 99th of 100: 0.06
    _, _, raised = await alarm("raised", "call_p99", "Kv")
    assert raised.details["p99"] == 0.06 and raised.details["calls"] == 100
    check([0.001] * 99 + [0.06])  # the 99th of 100 is fast
    _, _, cleared = await alarm("cleared", "call_p99", "Kv")
    assert cleared.details["p99"] == 0.001
    check([0.06] * 10)
    await alarm("raised", "call_p99", "Kv")
    check([0.045] * 10)  # under the limit, over 80% of it: still raised
    assert [(a.offender, a.details["p99"]) for a in table.alarms.values()] == [("Kv", 0.045)]
    check([0.04] * 10)  # 80% of the limit: cleared
    _, _, cleared = await alarm("cleared", "call_p99", "Kv")
    assert cleared.details["p99"] == 0.04
    check([0.06] * 10)
    await alarm("raised", "call_p99", "Kv")
    check([])  # no call in the window: nothing says it is slow
    _, _, cleared = await alarm("cleared", "call_p99", "Kv")
    assert (cleared.details["p99"], cleared.details["calls"]) == (None, 0)
    assert table.alarms == {} and table.calls == {}


async def test_without_metrics_the_call_p99_alarm_is_never_judged(
    node: Any, forwards: list[Forward]
) -> None:
    table = _alarms._Table(_node.get(), Options(call_p99=0.05), time.monotonic)
    table.check()
    assert table.calls == {} and _node.get().ops is None


# -- options and lifecycle -----------------------------------------------------------------


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Options.from_env() == Options()
    assert Options() == Options(1000, 3, 60.0, 0.1, 0.1, 10.0, 1.0, 0.05, 10.0)
    monkeypatch.setenv("OTP_ALARM_LONG_MAILBOX", "5000")
    monkeypatch.setenv("OTP_ALARM_RESTARTS", "off")
    monkeypatch.setenv("OTP_ALARM_RESTART_PERIOD", "30")
    monkeypatch.setenv("OTP_ALARM_LOOP_LAG", "0.5")
    monkeypatch.setenv("OTP_ALARM_LONG_CALLBACK", "0")
    monkeypatch.setenv("OTP_ALARM_LOOP_CLEAR_AFTER", "2.5")
    monkeypatch.setenv("OTP_ALARM_CHECK_INTERVAL", "0.25")
    monkeypatch.setenv("OTP_ALARM_CALL_P99", "0.2")
    monkeypatch.setenv("OTP_ALARM_CALL_P99_WINDOW", "30")
    assert Options.from_env() == Options(5000, None, 30.0, 0.5, None, 2.5, 0.25, 0.2, 30.0)
    monkeypatch.setenv("OTP_ALARM_CALL_P99", "off")
    assert Options.from_env().call_p99 is None


@pytest.mark.parametrize("value", ["-1", "many", "inf", "1.5"])
def test_a_bad_threshold_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTP_ALARM_LONG_MAILBOX", value)
    with pytest.raises(ValueError, match=f"OTP_ALARM_LONG_MAILBOX takes .*\nGot: '{value}'"):
        Options.from_env()


def test_alarms_run_with_the_node_and_leave_nothing_behind() -> None:
    async def main() -> tuple[Any, ...]:
        node = _node.get()
        made: list[Forward] = []
        forward(made)
        try:
            pid = _alarms.start(options=Options(long_mailbox=1, check_interval=0.005))
            again = _alarms.start()
            stuck = otp.spawn(_hoarder)
            otp.send(stuck, 1)
            otp.send(stuck, 2)
            await alarm("raised", "long_mailbox", stuck)  # the alarm process runs
        finally:
            logging.getLogger("otp.alarm").removeHandler(made[0])
        return pid, again, len(node.report_watchers), len(_alarms._tables)

    logger = logging.getLogger("otp.alarm")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        pid, again, watchers, tables = otp.run(main)
    finally:
        logger.setLevel(level)
    assert pid == again and (watchers, tables) == (1, 1)
    assert _alarms._tables == {}
    assert logging.getLogger("otp.watchdog").filters == []


def test_as_json_gives_json_values() -> None:
    pid = otp.Pid("n@h", 3)
    alarm = Alarm("long_callback", (pid, "A.f"), MappingProxyType({"pid": pid}), 5.0)
    assert alarm.as_json() == {
        "kind": "long_callback",
        "offender": f"({pid!r}, A.f)",
        "details": {"pid": repr(pid)},
        "since": 5.0,
    }
