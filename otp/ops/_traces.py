"""Traces of `GenServer.call`, through the OpenTelemetry tracer `otp`.

A traced call has two spans: a CLIENT span in the caller, from the send to the reply (or
the failure), and a SERVER span in the server around its `handle_call`, a child of the
caller's. The caller's context travels inside the call message (the traced form of the call
protocol, `("$gen_call", (caller, tag), request, context)`, see `otp.gen`), and the server
makes its span the current one while `handle_call` runs, so a call made from `handle_call` is
a child of it: one trace follows a request through every server it reaches.

Both spans are named `otp.call <ServerClass>` and follow OpenTelemetry's RPC conventions
loosely: `rpc.system` "otp", `rpc.service` the server's class, and `otp.server.class` (with
its module), `otp.server.name` (when registered), `otp.server.pid`; the client's span adds
`otp.call.timeout`. A failed call sets the span's status to ERROR and says how in
`otp.call.outcome` ("timeout", "noproc", "exit", "cancelled", or "error" for a `handle_call`
that raised) and `error.type`, with the exception's event when there is one. (Each
attribute costs the SDK about a microsecond a span: the set is kept short.)

Tracing is off by default, and then nothing of this module runs: `GenServer.call` checks
`node.ops` once, as for the metrics. `enable_tracing` turns it on for the running node.
Sampling is the tracer provider's: the one `enable_tracing` builds samples `sample_ratio`
of the calls that start a trace (`ParentBased(TraceIdRatioBased(ratio))`). Within a trace
that was not sampled no span is made at all: the caller's context travels on unchanged, so
every call of that trace is left out too (a trace is sampled whole or not at all) and costs
little more than a plain call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _node
from .._call import TRACED_ENTRIES
from .._values import Pid
from ..errors import CallError, CallTimeout
from ._state import ops_of, release_ops

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

    from .._process import Process
    from ._metrics import Metrics

__all__ = [
    "ClientCall",
    "Tracing",
    "disable_tracing",
    "enable_tracing",
    "env_span_exporters",
    "server_span",
    "tracer_provider",
    "tracing_enabled",
]


class Tracing:
    """The tracing of one node (`node.ops.tracing`): the tracer and what each server class
    is called in spans. Internal: use `enable_tracing`."""

    __slots__ = ("_names", "provider", "tracer")

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("otp")
        self._names: dict[type | None, tuple[str, str, str]] = {}

    def names(self, cls: type | None) -> tuple[str, str, str]:
        """(span name, `rpc.service`, `otp.server.class`) for a server class."""
        found = self._names.get(cls)
        if found is None:
            if cls is None:
                found = ("otp.call (process)", "(process)", "(process)")
            else:
                found = (
                    f"otp.call {cls.__qualname__}",
                    cls.__qualname__,
                    f"{cls.__module__}.{cls.__qualname__}",
                )
            self._names[cls] = found
        return found

    def attributes(self, proc: Process) -> dict[str, Any]:
        _, service, qualified = self.names(proc.behaviour)
        attrs: dict[str, Any] = {
            "rpc.system": "otp",
            "rpc.service": service,
            "otp.server.class": qualified,
            "otp.server.pid": repr(proc.pid),
        }
        if proc.regname is not None:
            attrs["otp.server.name"] = proc.regname
        return attrs

    def client(
        self,
        proc: Process,
        timeout: float | None,
        metrics: Metrics | None,
        started: float,
    ) -> ClientCall:
        """Start the CLIENT span of a call to `proc` (a child of the caller's current span).
        Within a trace that was not sampled there is none: the context goes on as it is."""
        current = otel_context.get_current()
        # (a process whose loop knows only the plain form gets the plain form: no server span)
        accepts = proc.entry in TRACED_ENTRIES
        parent = trace.get_current_span(current).get_span_context()
        if parent.is_valid and not parent.trace_flags.sampled:
            return ClientCall(None, current if accepts else None, metrics, proc, started)
        attrs = self.attributes(proc)
        if timeout is not None:  # (none: the call waits as long as it takes)
            attrs["otp.call.timeout"] = timeout
        span = self.tracer.start_span(
            self.names(proc.behaviour)[0], current, SpanKind.CLIENT, attrs
        )
        carried = trace.set_span_in_context(span, current) if accepts else None
        return ClientCall(span, carried, metrics, proc, started)


class ClientCall:
    """One call being traced (and maybe timed), as `otp._call.call` sees it: the message to
    send, then `done()` or `failed(error)`."""

    __slots__ = ("carried", "metrics", "proc", "span", "started")

    untraced: ClassVar[bool] = False  # its server opens a span: never run directly

    def __init__(
        self,
        span: trace.Span | None,
        carried: Context | None,
        metrics: Metrics | None,
        proc: Process,
        started: float,
    ) -> None:
        self.span = span
        self.carried = carried
        self.metrics = metrics
        self.proc = proc
        self.started = started

    def request(self, kind: str, from_: tuple[Pid, Any], payload: Any) -> tuple[Any, ...]:
        """The call message: the traced form when the server takes it, else the plain one."""
        if self.carried is None:
            return (kind, from_, payload)
        return (kind, from_, payload, self.carried)

    def done(self) -> None:
        if self.started:
            self.metrics.call_done(self.proc, self.started)  # type: ignore[union-attr]
        if self.span is not None:
            self.span.end()

    def failed(self, error: BaseException) -> None:
        span = self.span
        if span is None:
            return
        if span.is_recording():
            outcome, kind = _outcome(error)
            span.set_attribute("otp.call.outcome", outcome)
            span.set_attribute("error.type", kind)
            if isinstance(error, CallError) and isinstance(error.reason, BaseException):
                span.record_exception(error.reason)  # the server's own exception
            span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()


def _outcome(error: BaseException) -> tuple[str, str]:
    """(`otp.call.outcome`, `error.type`) for how a call failed."""
    if isinstance(error, CallTimeout):
        return "timeout", "timeout"
    if isinstance(error, CallError):
        reason = error.reason
        if isinstance(reason, BaseException):
            return "error", type(reason).__qualname__
        if type(reason) is str and reason == "noproc":
            return "noproc", "noproc"
        return "exit", reason if type(reason) is str else type(reason).__qualname__
    if isinstance(error, asyncio.CancelledError):
        return "cancelled", "cancelled"
    return "error", type(error).__qualname__


def _describe(error: BaseException) -> str:
    if isinstance(error, CallTimeout):
        return "the call timed out"
    if isinstance(error, CallError):
        return f"the call failed: {error.reason!r}"
    return f"the caller stopped waiting: {error!r}"


@contextmanager
def server_span(proc: Process, carried: Any) -> Iterator[trace.Span]:
    """The SERVER span of a traced call `proc` handles, a child of the caller's span in
    `carried` (the context in the call message), current while the block runs (a call
    made in it is its child). An exception out of the block is recorded on the span with
    status ERROR, and goes on."""
    node = _node.current
    ops = None if node is None else node.ops
    tracing = None if ops is None else ops.tracing
    if tracing is None:  # tracing went off while the call was on its way
        yield trace.INVALID_SPAN
        return
    parent = trace.get_current_span(carried)
    if not parent.get_span_context().trace_flags.sampled:  # (a trace not sampled: no span,
        token = otel_context.attach(carried)  # and the calls made in the block follow it)
        try:
            yield parent
        finally:
            otel_context.detach(token)
        return
    span = tracing.tracer.start_span(
        tracing.names(proc.behaviour)[0],
        context=carried,
        kind=SpanKind.SERVER,
        attributes=tracing.attributes(proc),
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        if span.is_recording():
            if isinstance(exc, asyncio.CancelledError):  # an exit signal stopped the server
                span.set_attributes({"otp.call.outcome": "cancelled", "error.type": "cancelled"})
                span.set_status(Status(StatusCode.ERROR, "the server was stopped in the call"))
            else:
                span.set_attributes(
                    {"otp.call.outcome": "error", "error.type": type(exc).__qualname__}
                )
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"handle_call raised {exc!r}"))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def enable_tracing(
    tracer_provider: trace.TracerProvider | None = None, *, sample_ratio: float | None = None
) -> None:
    """Trace the running node's `GenServer.call`s (`otp run --ops-traces` does it for you).

    Call it from the node. The spans go to the tracer `otp` of `tracer_provider`; without
    one, to a provider built for the node: an SDK `TracerProvider` with the resource of
    `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, a batch processor for each exporter
    `OTEL_TRACES_EXPORTER` names (`otlp`, `console`, ...), and the sampler
    `ParentBased(TraceIdRatioBased(sample_ratio))`, or with no ratio the one
    `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name (default: every trace).
    A provider of your own samples as you configured it: `sample_ratio` is for the one built
    here. Calling it again replaces the provider (a built one is shut down, its spans
    flushed).

    Args:
        tracer_provider: Where the spans go (default None: a provider built from `OTEL_*`).
        sample_ratio: The share of traces sampled, 0 to 1, for the built provider only
            (default None: as `OTEL_TRACES_SAMPLER` says).

    Raises:
        otp.NoProcessError: No node is running.
        ValueError: A ratio outside 0..1, a ratio with a provider, or an exporter that is
            not installed.
    """
    node = _node.get()
    if sample_ratio is not None:
        if (
            isinstance(sample_ratio, bool)
            or not isinstance(sample_ratio, int | float)
            or not 0.0 <= sample_ratio <= 1.0
        ):
            raise ValueError(
                f"enable_tracing() takes sample_ratio as a number from 0 to 1 (the share of "
                f"the calls that start a trace to sample)\nGot: {sample_ratio!r}"
            )
        if tracer_provider is not None:
            raise ValueError(
                "enable_tracing() takes a tracer_provider or a sample_ratio, not both: a "
                "provider of your own samples with its own sampler (TracerProvider(sampler="
                "ParentBased(TraceIdRatioBased(ratio))))"
            )
    built = build_provider(sample_ratio) if tracer_provider is None else None
    provider = tracer_provider if tracer_provider is not None else built
    assert provider is not None
    ops = ops_of(node)
    old = ops.built_provider
    ops.tracing = Tracing(provider)
    ops.built_provider = built
    if old is not None:
        old.shutdown()


def build_provider(sample_ratio: float | None) -> TracerProvider:
    """The SDK tracer provider `enable_tracing` builds (see there)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporters = [point.load()() for point in env_span_exporters()]
    sampler = None if sample_ratio is None else ParentBased(TraceIdRatioBased(sample_ratio))
    provider = TracerProvider(sampler=sampler, resource=Resource.create())
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def disable_tracing() -> None:
    """Stop tracing the running node's calls (no cost left on any path); a no-op when off.
    A provider `enable_tracing` built is shut down (its spans flushed).

    Raises:
        otp.NoProcessError: No node is running.
    """
    node = _node.get()
    if node.ops is None or node.ops.tracing is None:
        return
    ops = ops_of(node)
    built = ops.built_provider
    ops.tracing = None
    ops.built_provider = None
    release_ops(node)
    if built is not None:
        built.shutdown()


def tracing_enabled() -> bool:
    """True when the running node's calls are traced.

    Returns:
        True when on (False when no node runs).
    """
    node = _node.current
    return node is not None and node.ops is not None and node.ops.tracing is not None


def tracer_provider() -> trace.TracerProvider | None:
    """The tracer provider the running node's calls are traced into; None when off.

    Returns:
        The provider, or None.
    """
    node = _node.current
    tracing = None if node is None or node.ops is None else node.ops.tracing
    return None if tracing is None else tracing.provider


def env_span_exporters() -> list[Any]:
    """The exporter entry points `OTEL_TRACES_EXPORTER` names (default `otlp`, as the
    specification says; `none` for none); ValueError names one that is not installed."""
    from importlib.metadata import entry_points

    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").replace(" ", "") or "otlp"
    found = []
    for name in filter(None, names.split(",")):
        if name == "none":
            continue
        points = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not points:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER names the span exporter {name!r}, which is not "
                f"installed (for otlp: pip install opentelemetry-exporter-otlp; "
                f"OTEL_TRACES_EXPORTER=console prints the spans, =none exports none)"
            )
        found.append(next(iter(points)))
    return found
