"""Traces of `GenServer.call` (`otp.ops.enable_tracing`), collected with the SDK's in-memory
span exporter: one trace through a chain of servers, errors and timeouts, sampling, and the
plain call message while tracing is off."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

import otp
import otp.bridge
import otp.ops
from behaviours import GenServer, NoReply, Reply
from otp import _node, gen
from otp.testing import capture_reports


class Front(GenServer[None]):
    """A: asks B."""

    def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        return Reply(("a", await GenServer.call("b", request)), state)


class Middle(GenServer[None]):
    """B: asks C."""

    def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        return Reply(("b", await GenServer.call("c", request)), state)


class Back(GenServer[None]):
    """C: answers, fails on "fail", or holds the call until it is sent "go"."""

    def init(self, arg: Any) -> None:
        return None

    async def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        if request == "fail":
            raise ValueError("no such thing")
        if request == "hold":
            await otp.receive(lambda m: m == "go")
        if type(request) is tuple and request[0] == "hold":  # ("hold", pid): tell it first
            otp.send(request[1], "holding")
            await otp.receive(lambda m: m == "go")
        return Reply(("c", request), state)

    def handle_cast(self, msg: Any, state: None) -> NoReply[None]:
        return NoReply(state)


class Spans:
    """A tracer provider with an in-memory exporter (each span exported as it ends)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = provider if provider is not None else TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str, kind: SpanKind) -> ReadableSpan:
        [span] = [s for s in self.finished() if s.name == name and s.kind is kind]
        return span


@pytest.fixture
def spans() -> Iterator[Spans]:
    made = Spans()
    yield made
    made.provider.shutdown()


@pytest.fixture
async def traced(spans: Spans) -> AsyncIterator[Spans]:
    otp.ops.enable_tracing(spans.provider)
    try:
        yield spans
    finally:
        otp.ops.disable_tracing()


async def start_chain() -> list[otp.Pid]:
    pids = []
    for cls, name in ((Front, "a"), (Middle, "b"), (Back, "c")):
        pid = await cls.start(None, name=name)
        assert pid is not None
        pids.append(pid)
    return pids


async def stop_all(pids: list[otp.Pid]) -> None:
    for pid in pids:
        if otp.is_alive(pid):
            await GenServer.stop(pid)


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_call_through_three_servers_is_one_trace_with_each_span_its_callers_child(
    node: Any, traced: Spans
) -> None:
    pids = await start_chain()
    assert await GenServer.call("a", "x") == ("a", ("b", ("c", "x")))
    chain = [
        traced.named(f"otp.call {cls}", kind)
        for cls in ("Front", "Middle", "Back")
        for kind in (SpanKind.CLIENT, SpanKind.SERVER)
    ]
    assert len(traced.finished()) == 6
    assert {span.context.trace_id for span in chain} == {chain[0].context.trace_id}
    # the caller's client span -> A's server span -> A's client span to B -> ... -> C's
    assert parent_id(chain[0]) is None
    for parent, child in itertools.pairwise(chain):
        assert parent_id(child) == parent.context.span_id, (parent.name, child.name)
    a_client, a_server = chain[0], chain[1]
    assert dict(a_client.attributes or {}) == {
        "rpc.system": "otp",
        "rpc.service": "Front",
        "otp.server.class": f"{__name__}.Front",
        "otp.server.name": "a",
        "otp.server.pid": repr(pids[0]),
        "otp.call.timeout": 5.0,
    }
    assert dict(a_server.attributes or {}) == {
        "rpc.system": "otp",
        "rpc.service": "Front",
        "otp.server.class": f"{__name__}.Front",
        "otp.server.name": "a",
        "otp.server.pid": repr(pids[0]),
    }
    assert {span.status.status_code for span in chain} == {StatusCode.UNSET}
    # each span lies within its parent's
    for parent, child in itertools.pairwise(chain):
        assert parent.start_time is not None and child.start_time is not None
        assert parent.end_time is not None and child.end_time is not None
        assert parent.start_time <= child.start_time and child.end_time <= parent.end_time
    await stop_all(pids)


async def test_two_calls_are_two_traces(node: Any, traced: Spans) -> None:
    pids = await start_chain()
    await GenServer.call("a", 1)
    await GenServer.call("a", 2)
    roots = [s for s in traced.finished() if s.parent is None]
    assert len(roots) == 2 and roots[0].context.trace_id != roots[1].context.trace_id
    assert len({s.context.trace_id for s in traced.finished()}) == 2
    await stop_all(pids)


async def test_a_handle_call_that_raises_sets_error_on_the_spans_up_the_chain(
    node: Any, traced: Spans
) -> None:
    pids = await start_chain()
    with capture_reports(), pytest.raises(otp.CallError):
        await GenServer.call("a", "fail")  # C crashes, so B's call fails, so B crashes, ...
    back = traced.named("otp.call Back", SpanKind.SERVER)
    assert back.status.status_code is StatusCode.ERROR
    assert back.attributes is not None and back.attributes["error.type"] == "ValueError"
    assert back.attributes["otp.call.outcome"] == "error"
    [event] = back.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no such thing"
    to_back = traced.named("otp.call Back", SpanKind.CLIENT)
    assert to_back.status.status_code is StatusCode.ERROR
    assert to_back.attributes is not None and to_back.attributes["error.type"] == "ValueError"
    assert to_back.attributes["otp.call.outcome"] == "error"
    assert [e.name for e in to_back.events] == ["exception"]  # the server's exception
    first = traced.named("otp.call Front", SpanKind.CLIENT)
    assert first.status.status_code is StatusCode.ERROR
    assert len({s.context.trace_id for s in traced.finished()}) == 1
    await stop_all(pids)


async def test_a_call_that_times_out_has_an_error_span_with_outcome_timeout(
    node: Any, traced: Spans
) -> None:
    pid = await Back.start(None, name="c")
    assert pid is not None
    with pytest.raises(otp.CallTimeout):
        await GenServer.call("c", "hold", timeout=0.05)
    client = traced.named("otp.call Back", SpanKind.CLIENT)
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == "the call timed out"
    assert client.attributes is not None
    assert (client.attributes["otp.call.outcome"], client.attributes["error.type"]) == (
        "timeout",
        "timeout",
    )
    otp.send(pid, "go")  # the server answers late (nobody waits), then takes the next call
    assert await GenServer.call("c", "after") == ("c", "after")
    held = next(s for s in traced.finished() if s.kind is SpanKind.SERVER)
    assert held.parent is not None and held.parent.span_id == client.context.span_id
    assert held.status.status_code is StatusCode.UNSET  # the server itself did not fail
    await GenServer.stop(pid)


async def test_a_server_killed_in_its_handle_call_ends_both_spans_in_error(
    node: Any, traced: Spans
) -> None:
    pid = await Back.start(None, name="c")
    assert pid is not None
    me = otp.self()

    async def caller() -> None:
        try:
            await GenServer.call("c", ("hold", me))
        except otp.CallError as failed:
            otp.send(me, ("failed", failed.reason))

    otp.spawn(caller)
    await otp.receive(lambda m: m == "holding")  # in its handle_call
    otp.exit(pid, otp.KILL)
    assert await otp.receive(lambda m: type(m) is tuple and m[0] == "failed") == (
        "failed",
        otp.KILLED,
    )
    server = traced.named("otp.call Back", SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None and server.attributes["otp.call.outcome"] == "cancelled"
    client = traced.named("otp.call Back", SpanKind.CLIENT)
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes is not None
    assert (client.attributes["otp.call.outcome"], client.attributes["error.type"]) == (
        "exit",
        "killed",
    )


async def test_a_call_to_a_dead_server_makes_no_span(node: Any, traced: Spans) -> None:
    pid, ref = otp.spawn_monitor(otp.receive)
    otp.exit(pid, otp.KILL)
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    with pytest.raises(otp.CallError):
        await GenServer.call(pid, "x")
    assert traced.finished() == []  # no process to call: nothing was sent, no span


async def test_a_call_from_a_span_of_your_own_is_its_child(node: Any, traced: Spans) -> None:
    pid = await Back.start(None, name="c")
    assert pid is not None

    async def handler() -> Any:  # plain asyncio code, say an instrumented web handler
        with traced.provider.get_tracer("web").start_as_current_span("GET /thing"):
            return await otp.bridge.call("c", "x")

    assert await asyncio.get_running_loop().create_task(handler()) == ("c", "x")
    web = traced.named("GET /thing", SpanKind.INTERNAL)
    client = traced.named("otp.call Back", SpanKind.CLIENT)
    server = traced.named("otp.call Back", SpanKind.SERVER)
    assert parent_id(client) == web.context.span_id
    assert parent_id(server) == client.context.span_id
    await GenServer.stop(pid)


async def test_system_calls_and_casts_have_no_span(node: Any, traced: Spans) -> None:
    pid = await Back.start(None)
    assert pid is not None
    await otp.sys.get_state(pid)
    GenServer.cast(pid, "hello")
    await otp.sys.get_state(pid)  # (the cast was handled before this one)
    assert traced.finished() == []
    await GenServer.stop(pid)


async def test_tracing_off_makes_no_span_and_sends_the_plain_form(node: Any, spans: Spans) -> None:
    assert not otp.ops.tracing_enabled() and otp.ops.tracer_provider() is None
    pids = await start_chain()
    await GenServer.call("a", "x")
    watcher = otp.spawn(raw_server)
    assert await GenServer.call(watcher, "x") == ("plain", 3, "x")
    otp.ops.enable_tracing(spans.provider)
    assert otp.ops.tracing_enabled() and otp.ops.tracer_provider() is spans.provider
    assert await GenServer.call(watcher, "x") == ("traced", 4, "x")
    otp.ops.disable_tracing()
    assert otp.ops.tracing_enabled() is False
    assert await GenServer.call(watcher, "x") == ("plain", 3, "x")
    assert await GenServer.call("a", "x") == ("a", ("b", ("c", "x")))
    assert [(s.name, s.kind) for s in spans.finished()] == [
        ("otp.call (process)", SpanKind.SERVER),
        ("otp.call (process)", SpanKind.CLIENT),
    ]
    assert _node.get().ops is None  # nothing left on the call path
    otp.send(watcher, "stop")
    await stop_all(pids)


@gen.accept_traced_calls
async def raw_server() -> None:
    """A behaviour of its own: answers each call with the form it came in, the traced one
    inside `gen.server_span`."""
    me = gen.current()
    while True:
        msg = await otp.receive()
        match msg:
            case ("$gen_call", from_, request, context):
                with gen.server_span(me, context):
                    gen.reply(from_, ("traced", len(msg), request))
            case ("$gen_call", from_, request):
                gen.reply(from_, ("plain", len(msg), request))
            case "stop":
                return


async def test_a_process_whose_loop_knows_only_the_plain_form_gets_it(
    node: Any, traced: Spans
) -> None:
    async def plain() -> None:
        msg = await otp.receive()
        gen.reply(msg[1], len(msg))

    pid = otp.spawn(plain)
    assert await GenServer.call(pid, "x") == 3
    [client] = traced.finished()  # the caller's span only: the process made none
    assert (client.name, client.kind) == ("otp.call (process)", SpanKind.CLIENT)


async def test_ratio_zero_exports_no_span_and_ratio_one_every_span(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    pids = await start_chain()
    for ratio, expected in ((0.0, 0), (1.0, 6)):
        otp.ops.enable_tracing(sample_ratio=ratio)
        built = otp.ops.tracer_provider()
        assert isinstance(built, TracerProvider)
        exporter = InMemorySpanExporter()
        built.add_span_processor(SimpleSpanProcessor(exporter))
        await GenServer.call("a", "x")
        assert len(exporter.get_finished_spans()) == expected
        otp.ops.disable_tracing()
    await stop_all(pids)


async def test_a_sampled_trace_is_followed_whole_and_an_unsampled_one_not_at_all(
    node: Any,
) -> None:
    spans = Spans(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5))))
    otp.ops.enable_tracing(spans.provider)
    pids = await start_chain()
    for i in range(100):
        await GenServer.call("a", i)
    otp.ops.disable_tracing()
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans.finished():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert 0 < len(by_trace) < 100  # (both ends: less likely than 1 in 2**99)
    assert {len(trace) for trace in by_trace.values()} == {6}  # never part of a chain
    spans.provider.shutdown()
    await stop_all(pids)


async def test_metrics_and_traces_together_time_and_trace_each_call(
    node: Any, traced: Spans
) -> None:
    reader = InMemoryMetricReader()
    otp.ops.enable_metrics(MeterProvider(metric_readers=[reader]), call_sample=1)
    try:
        pids = await start_chain()
        for i in range(3):
            await GenServer.call("a", i)
        data = reader.get_metrics_data()
    finally:
        otp.ops.disable_metrics()
    assert otp.ops.tracing_enabled()  # (one off, the other still on)
    assert data is not None
    [scope] = data.resource_metrics[0].scope_metrics
    [calls] = [m for m in scope.metrics if m.name == "otp.call.duration"]
    counts = {
        p.attributes["server"]: p.count
        for p in calls.data.data_points
        if isinstance(p, HistogramDataPoint) and p.attributes
    }
    assert counts == {"Front": 3, "Middle": 3, "Back": 3}
    assert len(traced.finished()) == 18
    await stop_all(pids)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sample_ratio": 1.5}, r"sample_ratio as a number from 0 to 1 .*\nGot: 1\.5"),
        ({"sample_ratio": True}, r"sample_ratio as a number from 0 to 1 .*\nGot: True"),
        (
            {"sample_ratio": 0.5, "tracer_provider": TracerProvider()},
            r"takes a tracer_provider or a sample_ratio, not both",
        ),
    ],
)
async def test_enable_tracing_refuses_bad_arguments(
    node: Any, kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        otp.ops.enable_tracing(**kwargs)
    assert not otp.ops.tracing_enabled()


async def test_an_exporter_that_is_not_installed_is_refused_by_name(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "nosuch")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER names the span exporter 'nosuch'"):
        otp.ops.enable_tracing(sample_ratio=1.0)
    assert not otp.ops.tracing_enabled()
