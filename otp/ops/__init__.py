"""Operations: the node's metrics and traces through OpenTelemetry, and the HTTP endpoint.

| API                                   | what it does                                        |
|---------------------------------------|-----------------------------------------------------|
| `otp run SPEC --ops-port PORT`        | serves `/metrics`, `/healthz`, `/readyz` (below)    |
| `otp run SPEC --ops-traces [RATIO]`   | traces `GenServer.call`s (`OTEL_TRACES_EXPORTER`)   |
| `otp.ops.enable_metrics(provider)`    | the meter `otp` on, into your meter provider        |
| `otp.ops.disable_metrics()`           | off again: no cost left on any path                 |
| `otp.ops.enable_tracing(provider)`    | a span per call and per `handle_call` (the tracer `otp`) |
| `otp.ops.enable_tracing(sample_ratio=r)` | the same into a provider built from `OTEL_*`     |
| `otp.ops.disable_tracing()`           | off again                                           |
| `await otp.ops.serve(port, host)`     | the endpoint from Python (needs the `ops` extra)    |
| `otp.ops.start_alarms(node)`          | alarms on `otp.alarm` (`otp run` starts them)       |
| `otp.ops.active_alarms()`             | the alarms raised now                               |
| `otp.ops.JsonFormatter`               | one JSON object per log line (`--log-format json`)  |

Metrics are off by default, and then cost nothing. As a library, turn them on from the
node, into the meter provider you configured (the global one by default):

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()

    async def main():
        otp.ops.enable_metrics(MeterProvider(metric_readers=[reader]))
        ...

Tracing is off by default too. On, each `GenServer.call` has a CLIENT span in the caller
and a SERVER span around the server's `handle_call`, its child: the caller's context travels
in the call message, so a call made from `handle_call` continues the same trace:

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def main():
        otp.ops.enable_tracing(provider)
        ...

The guide "Observability" lists the metrics, the spans and the endpoint's answers.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from ._alarms import Alarm as Alarm
from ._alarms import AlarmReport as AlarmReport
from ._alarms import Options as AlarmOptions
from ._alarms import active as active_alarms
from ._alarms import start as start_alarms
from ._logs import JsonFormatter as JsonFormatter
from ._metrics import CALL_SAMPLE as CALL_SAMPLE
from ._metrics import disable_metrics as disable_metrics
from ._metrics import enable_metrics as enable_metrics
from ._metrics import metrics_enabled as metrics_enabled
from ._traces import disable_tracing as disable_tracing
from ._traces import enable_tracing as enable_tracing
from ._traces import tracer_provider as tracer_provider
from ._traces import tracing_enabled as tracing_enabled

if TYPE_CHECKING:
    from ._http import Endpoint

__all__ = [
    "CALL_SAMPLE",
    "Alarm",
    "AlarmOptions",
    "AlarmReport",
    "JsonFormatter",
    "active_alarms",
    "disable_metrics",
    "disable_tracing",
    "enable_metrics",
    "enable_tracing",
    "health",
    "metrics_enabled",
    "serve",
    "start_alarms",
    "tracer_provider",
    "tracing_enabled",
]


async def serve(port: int | socket.socket = 0, host: str = "127.0.0.1") -> Endpoint:
    """Serve `/metrics`, `/healthz` and `/readyz` of the running node on `host:port` (0:
    any free port, then `endpoint.port`), and turn its metrics on; `await endpoint.close()`
    stops it. Needs the `ops` extra (aiohttp, opentelemetry-exporter-prometheus).

    Args:
        port: A TCP port (default 0: any free one), or a listening socket.
        host: The address to listen on (default `"127.0.0.1"`).

    Returns:
        The running `Endpoint` (`.port`, `await .close()`).

    Raises:
        ImportError: The `ops` extra is not installed.
        OSError: The address cannot be bound.
        NoProcessError: No node is running.
    """
    from ._http import serve

    return await serve(port, host)


def health(expected: list[str] | None = None) -> dict[str, Any]:
    """What `/healthz` answers for the running node (see the guide).

    Args:
        expected: Applications that must run for "ok" (default None: those started).

    Returns:
        `{"status": "ok" | "degraded" | "down", "processes", "applications", "alarms",
        "release"}`.

    Raises:
        ImportError: The `ops` extra is not installed.
        NoProcessError: No node is running.
    """
    from ._http import health

    return health(None, expected)
