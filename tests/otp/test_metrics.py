"""The node's metrics (`otp.ops.enable_metrics`), read through the SDK's in-memory reader."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otp
import otp.ops
from behaviours import GenServer, NoReply, Reply, Supervisor
from otp import _node
from otp.code import CodeReport
from otp.release import ReleaseReport
from otp.reports import emit
from otp.testing import capture_reports


class Counter(GenServer[int]):
    def init(self, start: int) -> int:
        return start

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state, state + 1)


class Crashy(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_cast(self, msg: Any, state: None) -> NoReply[None]:
        raise RuntimeError("on purpose")


class Sup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(intensity=10), [Crashy.child_spec(id="crashy", name="crashy")]


class Reader:
    """The in-memory reader's points, by metric name: `[(attributes, point), ...]`."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        ops = _node.get().ops
        if ops is not None and ops.metrics is not None:
            ops.metrics._snapshot = None  # read the process table now, not 0.5 s ago
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "otp"
                for metric in scope.metrics:
                    found[metric.name] = [
                        (dict(p.attributes or {}), p) for p in metric.data.data_points
                    ]
        return found

    def value(self, name: str, **attributes: Any) -> Any:
        for attrs, point in self.points().get(name, []):
            if attrs == attributes:
                return point
        raise AssertionError(f"no point of {name} with {attributes}: {self.points().get(name)}")


@pytest.fixture
async def metrics() -> AsyncIterator[Reader]:
    reader = Reader()
    otp.ops.enable_metrics(reader.provider, call_sample=1)
    try:
        yield reader
    finally:
        otp.ops.disable_metrics()
        reader.provider.shutdown()


async def test_metrics_are_off_by_default_and_leave_nothing_on_the_node(node: Any) -> None:
    assert not otp.ops.metrics_enabled()
    assert _node.get().ops is None
    watchers = list(_node.get().report_watchers)
    reader = Reader()
    otp.ops.enable_metrics(reader.provider)
    assert otp.ops.metrics_enabled()
    otp.ops.disable_metrics()
    assert _node.get().ops is None
    assert _node.get().report_watchers == watchers
    assert reader.points() == {}  # off: the instruments report nothing
    reader.provider.shutdown()


async def test_every_call_is_timed_by_server_class(node: Any, metrics: Reader) -> None:
    pid = await Counter.start_link(0)
    assert pid is not None
    for _ in range(40):
        await GenServer.call(pid, "next")
    point = metrics.value("otp.call.duration", server="Counter")
    assert point.count == 40
    assert 0 < point.min <= point.max
    otp.unlink(pid)
    await GenServer.stop(pid)


async def test_one_call_in_call_sample_is_timed(node: Any) -> None:
    reader = Reader()
    otp.ops.enable_metrics(reader.provider, call_sample=8)
    try:
        pid = await Counter.start_link(0)
        assert pid is not None
        for _ in range(80):
            await GenServer.call(pid, "next")
        sampled = reader.value("otp.call.duration", server="Counter")  # (a count, not a time)
        assert sampled.count == 10
        otp.unlink(pid)
        await GenServer.stop(pid)
    finally:
        otp.ops.disable_metrics()
        reader.provider.shutdown()


async def test_a_bad_call_sample_is_refused_by_name(node: Any) -> None:
    with pytest.raises(ValueError, match=r"call_sample as an int >= 1.*\nGot: 0"):
        otp.ops.enable_metrics(MeterProvider(), call_sample=0)
    assert not otp.ops.metrics_enabled()


async def test_processes_and_messages_sent_include_processes_that_ended(
    node: Any, metrics: Reader
) -> None:
    assert metrics.value("otp.processes").value == len(otp.processes())
    before = metrics.value("otp.messages.sent").value

    async def takes_five() -> None:
        for _ in range(5):
            await otp.receive()

    pid, ref = otp.spawn_monitor(takes_five)
    for i in range(5):
        otp.send(pid, i)
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    # the five it took (it has ended) and the Down this process got
    assert metrics.value("otp.messages.sent").value - before == 6


async def test_mailboxes_are_a_histogram_and_a_top_ten(node: Any, metrics: Reader) -> None:
    async def idle() -> None:
        await otp.receive(lambda m: m == "go")

    pids = [otp.spawn(idle) for _ in range(12)]
    for i, pid in enumerate(pids):
        for _ in range(i * 10):
            otp.send(pid, "queued")
    otp.register("busiest", pids[-1])
    buckets = {a["le"]: p.value for a, p in metrics.points()["otp.mailbox.processes"]}
    total = len(otp.processes())
    assert buckets["+Inf"] == total
    assert buckets["10"] == total - 10  # 0, 10, 20, ... 110 messages: ten over 10
    assert buckets["100"] == total - 1  # only 110 is over 100
    top = {a["process"]: p.value for a, p in metrics.points()["otp.mailbox.length"]}
    assert len(top) == 10
    assert top["busiest"] == 110
    assert top[repr(pids[2])] == 20
    assert repr(pids[1]) not in top  # 10 messages: the eleventh longest
    for pid in pids:
        otp.send(pid, "go")


async def test_restarts_count_by_supervisor_and_child(node: Any, metrics: Reader) -> None:
    with capture_reports():  # the crashes' reports
        sup = await Sup.start_link(name="the_sup")
        assert sup is not None
        for _ in range(3):
            old = otp.whereis("crashy")
            assert old is not None
            otp.monitor(old)
            GenServer.cast("crashy", "crash")
            await otp.receive(lambda m: type(m) is otp.Down)
            await Supervisor.which_children(sup)  # the supervisor has handled the exit
    assert metrics.value("otp.restarts", supervisor="the_sup", child="crashy").value == 3
    otp.unlink(sup)
    await GenServer.stop(sup)


async def test_upgrades_and_rollbacks_count_from_their_reports(node: Any, metrics: Reader) -> None:
    logger = logging.getLogger("otp.tests.ops")
    for _ in range(2):
        emit(logger, logging.DEBUG, CodeReport("kv", "upgraded", "1", "2", 3), "upgraded")
    emit(logger, logging.DEBUG, CodeReport("kv", "failed", "1", "2", 3), "failed")
    emit(logger, logging.DEBUG, ReleaseReport("rel", "1.0", "rolled_back", "2.0"), "back")
    emit(logger, logging.DEBUG, ReleaseReport("rel", "2.0", "installed", "1.0"), "installed")
    assert metrics.value("otp.upgrades", module="kv").value == 2
    assert metrics.value("otp.rollbacks", release="rel").value == 1


async def test_a_blocked_loop_shows_in_the_loop_lag(node: Any, metrics: Reader) -> None:
    time.sleep(0.3)  # noqa: ASYNC251  (blocks the loop on purpose: the probe due within 0.1 s runs late)
    otp.send_after(0.0, otp.self(), "tick")  # due after the probe: it has run by then
    await otp.receive(lambda m: m == "tick")
    assert metrics.value("otp.loop.lag").max >= 0.2


async def test_messages_a_full_mailbox_drops_are_counted_with_traces_on_too(
    node: Any, metrics: Reader
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    async def full() -> None:
        await otp.receive(lambda m: m == "never")

    otp.ops.enable_tracing(TracerProvider())  # (node.ops holds both: the drop still counts)
    try:
        pid = otp.spawn_opt(full, max_mailbox=2)
        otp.register("full", pid)
        for i in range(5):
            otp.send(pid, i)
    finally:
        otp.ops.disable_tracing()
    dropped = metrics.value("otp.mailbox.dropped", process="full", policy="drop_newest")
    assert dropped.value == 3
    otp.exit(pid, otp.KILL)
