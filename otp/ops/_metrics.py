"""The node's metrics, through the OpenTelemetry meter `otp`.

Nothing here runs per message. What the kernel already counts (the process table, each
process's received-message count and mailbox) is read when a reader collects, in one pass
over the processes; restarts, upgrades and rollbacks come from the node's report watchers;
the loop lag from a timer on the loop. The one cost on a hot path is `otp.call.duration`:
`GenServer.call` asks `node.ops` (a countdown, `_state.Ops.call_started`) and times one call
in `call_sample`.
The timed calls' durations also go, by server class, into a short ring each (`RECENT`) that
the call p99 alarm drains on its tick. When metrics are off (and traces too), `node.ops` is
None and nothing of this module runs.
"""

from __future__ import annotations

import bisect
import heapq
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .. import _node
from .._values import Pid
from ..reports import describe_entry
from ._state import Ops, ops_of, release_ops

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

    from .._process import Process

__all__ = [
    "CALL_SAMPLE",
    "RECENT",
    "Metrics",
    "disable_metrics",
    "enable_metrics",
    "env_exporters",
    "env_readers",
    "metrics_enabled",
    "metrics_of",
]

CALL_SAMPLE: Final = 32  # time one GenServer call in this many (see the guide)
TOP: Final = 10  # processes named in otp.mailbox.length
RECENT: Final = 1024  # timed calls kept per server class for the call p99 alarm's next tick
LAG_INTERVAL: Final = 0.1  # seconds between two loop-lag probes
MAILBOX_BUCKETS: Final = (0, 1, 10, 100, 1000, 10_000)
CALL_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_msg_count: Final = attrgetter("msg_count")
_SNAPSHOT_AGE: Final = 0.5  # seconds: one collection reads the process table once


@dataclass(frozen=True, slots=True)
class _Snapshot:
    taken: float
    processes: int
    sent: int
    buckets: tuple[int, ...]  # processes with at most MAILBOX_BUCKETS[i] messages queued
    top: tuple[tuple[int, str], ...]  # (mailbox length, process) of the longest mailboxes


class _Instruments:
    """The instruments of one meter provider, created once (a provider refuses a second
    instrument of the same name); the observable ones read the running node's `Metrics`."""

    def __init__(self, provider: metrics.MeterProvider) -> None:
        ref = weakref.ref(provider)
        meter = provider.get_meter("otp")

        def observe(kind: str) -> Any:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                state = _metrics_of(ref())
                return () if state is None else state.observe(kind)

            return [callback]

        meter.create_observable_gauge(
            "otp.processes", observe("processes"), unit="{process}", description="processes"
        )
        meter.create_observable_counter(
            "otp.messages.sent",
            observe("sent"),
            unit="{message}",
            description="messages delivered to processes",
        )
        meter.create_observable_gauge(
            "otp.mailbox.processes",
            observe("buckets"),
            unit="{process}",
            description="processes with at most `le` messages queued (a histogram of now)",
        )
        meter.create_observable_gauge(
            "otp.mailbox.length",
            observe("top"),
            unit="{message}",
            description=f"messages queued, for the {TOP} processes with the longest mailboxes",
        )
        self.restarts = meter.create_counter(
            "otp.restarts",
            unit="{restart}",
            description="children a supervisor reported terminated (and restarts, unless "
            "temporary or over its restart intensity)",
        )
        self.upgrades = meter.create_counter(
            "otp.upgrades", unit="{upgrade}", description="modules upgraded by the code server"
        )
        self.rollbacks = meter.create_counter(
            "otp.rollbacks", unit="{rollback}", description="releases rolled back"
        )
        self.dropped = meter.create_counter(
            "otp.mailbox.dropped",
            unit="{message}",
            description="messages a full bounded mailbox dropped, by process (registered "
            "name, else class or function) and policy",
        )
        self.call_duration = meter.create_histogram(
            "otp.call.duration",
            unit="s",
            description="GenServer.call round trips, as the caller waits, by server class "
            "(one call in call_sample is timed)",
            explicit_bucket_boundaries_advisory=CALL_BUCKETS,
        )
        self.loop_lag = meter.create_histogram(
            "otp.loop.lag",
            unit="s",
            description="how late a timer on the node's event loop ran",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        )


_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def _metrics_of(provider: Any) -> Metrics | None:
    """The running node's metrics, if they go to `provider`."""
    node = _node.current
    state = None if node is None else metrics_of(node)
    if state is not None and state.provider is provider:
        return state
    return None


class Metrics:
    """The metrics of one node (its `node.ops.metrics`): what the instruments read, the call
    sampler and the recent call durations. Internal: use `enable_metrics`."""

    __slots__ = (
        "_call_attrs",
        "_lag_due",
        "_lag_timer",
        "_snapshot",
        "call_sample",
        "instruments",
        "node",
        "provider",
        "recent",
    )

    def __init__(self, node: _node.Node, provider: Any, call_sample: int) -> None:
        self.node = node
        self.provider = provider
        self.call_sample = call_sample  # (the countdown is node.ops's: one call fewer)
        # by server class: its label, and its timed calls' durations since the last drain
        self._call_attrs: dict[type | None, tuple[dict[str, str], deque[float]]] = {}
        self.recent: dict[str, deque[float]] = {}  # by the label `server`
        self._snapshot: _Snapshot | None = None
        self._lag_timer: Any = None
        self._lag_due = 0.0
        with _by_provider_lock:
            instruments = _by_provider.get(provider)
            if instruments is None:
                instruments = _by_provider[provider] = _Instruments(provider)
        self.instruments = instruments

    # -- GenServer.call (the kernel calls these) -------------------------------------------

    def call_done(self, proc: Process, started: float) -> None:
        elapsed = time.perf_counter() - started
        cls = proc.behaviour
        found = self._call_attrs.get(cls)
        if found is None:
            label = "(process)" if cls is None else cls.__qualname__
            recent = self.recent.get(label)
            if recent is None:
                recent = self.recent[label] = deque(maxlen=RECENT)
            found = self._call_attrs[cls] = ({"server": label}, recent)
        attrs, recent = found
        self.instruments.call_duration.record(elapsed, attrs)
        recent.append(elapsed)

    def drain_recent(self) -> dict[str, list[float]]:
        """The durations of the calls timed since the last drain (at most RECENT each, the
        latest), by server class label; the rings are left empty."""
        drained = {}
        for label, recent in self.recent.items():
            if recent:
                drained[label] = list(recent)
                recent.clear()
        return drained

    def mailbox_dropped(self, proc: Process) -> None:
        """A full bounded mailbox dropped a message (see otp._overload)."""
        cls = proc.behaviour
        who = proc.regname or (describe_entry(proc.entry) if cls is None else cls.__qualname__)
        self.instruments.dropped.add(1, {"process": who, "policy": proc.overload})

    # -- reports -----------------------------------------------------------------------------

    def on_report(self, report: Any) -> None:
        """A report watcher: restarts, upgrades and rollbacks."""
        context = getattr(report, "context", None)
        if context is None:
            return
        kind = type(report).__name__
        if context == "child_terminated" and kind == "SupervisorReport":
            self.instruments.restarts.add(
                1,
                {"supervisor": _label(report.supervisor), "child": _label(report.offender)},
            )
        elif context == "upgraded" and kind == "CodeReport":
            self.instruments.upgrades.add(1, {"module": str(report.module)})
        elif context == "rolled_back" and kind == "ReleaseReport":
            self.instruments.rollbacks.add(1, {"release": str(report.release)})

    # -- the loop lag ------------------------------------------------------------------------

    def _start_lag_probe(self) -> None:
        self._lag_due = time.monotonic() + LAG_INTERVAL
        self._lag_timer = self.node.loop.call_later(LAG_INTERVAL, self._lag_beat)

    def _lag_beat(self) -> None:
        now = time.monotonic()
        self.instruments.loop_lag.record(max(0.0, now - self._lag_due))
        self._lag_due = now + LAG_INTERVAL
        self._lag_timer = self.node.loop.call_later(LAG_INTERVAL, self._lag_beat)

    def _stop_lag_probe(self) -> None:
        if self._lag_timer is not None:
            self._lag_timer.cancel()
            self._lag_timer = None

    # -- what a collection reads -------------------------------------------------------------

    def observe(self, kind: str) -> Iterator[Observation]:
        snap = self.snapshot()
        if kind == "processes":
            yield Observation(snap.processes)
        elif kind == "sent":
            yield Observation(snap.sent)
        elif kind == "buckets":
            for bound, count in zip(MAILBOX_BUCKETS, snap.buckets, strict=False):
                yield Observation(count, {"le": str(bound)})
            yield Observation(snap.processes, {"le": "+Inf"})
        else:
            for length, name in snap.top:
                yield Observation(length, {"process": name})

    def snapshot(self) -> _Snapshot:
        """The process table read once for all the instruments of one collection (the
        table is copied in one C call: a reader's thread may collect)."""
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and now - snap.taken < _SNAPSHOT_AGE:
            return snap
        procs = list(self.node.procs.values())
        ops = self.node.ops
        ended = 0 if ops is None else ops.ended_messages
        sent = ended + sum(map(_msg_count, procs))
        queued = [(len(p.mbox), p) for p in procs if p.mbox]  # (most mailboxes are empty)
        counts = [0] * (len(MAILBOX_BUCKETS) + 1)  # the last: over the last bound
        counts[0] = len(procs) - len(queued)
        for length, _ in queued:
            counts[bisect.bisect_left(MAILBOX_BUCKETS, length)] += 1
        counts.pop()
        cumulative = []
        total = 0
        for count in counts:
            total += count
            cumulative.append(total)
        top = heapq.nlargest(TOP, queued, key=lambda item: item[0])
        snap = _Snapshot(
            now,
            len(procs),
            sent,
            tuple(cumulative),
            tuple((length, proc.regname or repr(proc.pid)) for length, proc in top),
        )
        self._snapshot = snap
        return snap


def _label(value: Any) -> str:
    """A report's supervisor or child as a label: a name, a class, or (for a child with
    no id, a DynamicSupervisor's) "(dynamic)": never one series per pid."""
    if isinstance(value, type):
        return value.__qualname__
    if type(value) is Pid:
        return "(dynamic)"
    return str(value)


def enable_metrics(
    meter_provider: metrics.MeterProvider | None = None, *, call_sample: int = CALL_SAMPLE
) -> None:
    """Turn the running node's metrics on (`otp run --ops-port` does it for you).

    Call it from the node (a process, or code on its loop). The instruments go to the meter
    `otp` of `meter_provider`, by default the global one (`opentelemetry.metrics
    .set_meter_provider`, or what `opentelemetry-instrument` configured). `otp.call.duration`
    times one `GenServer.call` in `call_sample` (1: every call; each timed call costs about
    as much as a third of a call). Calling it again with other arguments replaces them.

    Args:
        meter_provider: Where the instruments go (default None: the global provider).
        call_sample: Time one call in this many (default `CALL_SAMPLE`; 1: every call).

    Raises:
        otp.NoProcessError: No node is running.
        ValueError: `call_sample` is not an int >= 1.
    """
    node = _node.get()
    if isinstance(call_sample, bool) or not isinstance(call_sample, int) or call_sample < 1:
        raise ValueError(
            f"enable_metrics() takes call_sample as an int >= 1 (1 times every call)\n"
            f"Got: {call_sample!r}"
        )
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    disable_metrics()
    state = Metrics(node, provider, call_sample)
    node.report_watchers.append(state.on_report)
    state._start_lag_probe()
    ops = ops_of(node)
    ops.ended_messages = 0  # messages sent counts from now on
    ops.call_sample = ops.countdown = call_sample
    ops.metrics = state


def disable_metrics() -> None:
    """Turn the running node's metrics off (no cost left on any path); a no-op when off.

    Raises:
        otp.NoProcessError: No node is running.
    """
    node = _node.get()
    state = metrics_of(node)
    if state is None:
        return
    node.ops.metrics = None
    release_ops(node)
    state._stop_lag_probe()
    if state.on_report in node.report_watchers:
        node.report_watchers.remove(state.on_report)


def metrics_of(node: _node.Node) -> Metrics | None:
    """The node's metrics, None when they are off."""
    ops: Ops | None = node.ops
    return None if ops is None else ops.metrics


def metrics_enabled() -> bool:
    """True when the running node's metrics are on.

    Returns:
        True when on (False when no node runs).
    """
    node = _node.current
    return node is not None and metrics_of(node) is not None


def env_exporters() -> list[Any]:
    """The exporter entry points `OTEL_METRICS_EXPORTER` names besides Prometheus (`otlp`,
    `console`, ... as the exporters installed name themselves); ValueError names one that
    is not installed."""
    from importlib.metadata import entry_points

    names = os.environ.get("OTEL_METRICS_EXPORTER", "").replace(" ", "")
    found = []
    for name in filter(None, names.split(",")):
        if name in ("none", "prometheus"):  # prometheus: the ops endpoint serves it
            continue
        points = entry_points(group="opentelemetry_metrics_exporter", name=name)
        if not points:
            raise ValueError(
                f"OTEL_METRICS_EXPORTER names the exporter {name!r}, which is not installed "
                f"(for otlp: pip install opentelemetry-exporter-otlp)"
            )
        found.append(next(iter(points)))
    return found


def env_readers() -> list[MetricReader]:
    """A reader for each exporter of `env_exporters`, exporting every
    `OTEL_METRIC_EXPORT_INTERVAL` ms."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return [PeriodicExportingMetricReader(point.load()()) for point in env_exporters()]
