"""The ops endpoint: `/metrics`, `/healthz` and `/readyz` over HTTP, served by aiohttp on
the node's own event loop (needs the `ops` extra: `pip install 'otp-framework[ops]'`).

Handlers are plain asyncio tasks on the loop, not processes: they only read the node's
tables, so a scrape never waits for a process and never changes one.
"""

from __future__ import annotations

import errno
import importlib
import socket
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import web
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from .. import _node
from ._metrics import disable_metrics, enable_metrics, env_readers

__all__ = ["Endpoint", "bind", "health", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
_json = msgspec.json.Encoder(enc_hook=repr)  # a pid, a reason: as the reports show them


def bind(port: int, host: str = DEFAULT_HOST) -> socket.socket:
    """A listening socket for the endpoint, or OSError in one line that says what is wrong
    (a port in use, a host that is not this machine's)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(
            f"the ops port is a TCP port number 0-65535 (0: any free one)\nGot: {port!r}"
        )
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OSError(
            f"the ops host {host!r} is not an address to listen on: {exc.strerror}"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise OSError(
                f"the ops endpoint cannot listen on {where}: another program already uses "
                f"the port (pick another --ops-port, or 0 for any free one)"
            ) from None
        raise OSError(f"the ops endpoint cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def _alarms_of(node: _node.Node) -> list[Any]:
    """The node's active alarms (otp.ops._alarms), or none when that module is absent."""
    try:
        alarms = importlib.import_module("otp.ops._alarms")
    except ImportError:
        return []
    active: Callable[[_node.Node], list[Any]] = alarms.active
    return list(active(node))


def health(node: _node.Node | None = None, expected: list[str] | None = None) -> dict[str, Any]:
    """What `/healthz` answers, as a dict: `status` is "down" when the node is stopping
    (a permanent application that died stops it), "degraded" when an alarm is active or an
    application of `expected` (or any that was started) is not running, else "ok"."""
    node = node or _node.get()
    table = node.apps
    applications: dict[str, str] = {}
    if table is not None:
        for name in table.loaded:
            if name in table.running:
                applications[name] = "running"
            elif name in table.ended:
                applications[name] = "exited"
            else:
                applications[name] = "loaded"
    alarms = _alarms_of(node)
    if node.stopping or node.halted.done():
        status = "down"
    elif (
        alarms
        or "exited" in applications.values()
        or any(applications.get(name) != "running" for name in expected or ())
    ):
        status = "degraded"
    else:
        status = "ok"
    release = node.release
    return {
        "status": status,
        "processes": len(node.procs),
        "applications": applications,
        "alarms": alarms,
        "release": None if release is None else release.vsn,
    }


class Endpoint:
    """The running endpoint: `port` it listens on, `ready(names)` once the applications
    are started, `close()` at the end."""

    def __init__(self, node: _node.Node, runner: web.AppRunner, sock: socket.socket) -> None:
        self.node = node
        self.runner = runner
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        self.expected: list[str] | None = None  # the applications started: ready once set
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, fds
        self.provider = MeterProvider(
            metric_readers=[
                PrometheusMetricReader(registry=self.registry, scope_info_enabled=False),
                *env_readers(),
            ],
            resource=Resource.create(),
        )

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def ready(self, started: list[str]) -> None:
        """The applications of the spec are started: `/readyz` answers 200 from now on
        (while they run and the node is not stopping)."""
        self.expected = list(started)

    def is_ready(self) -> bool:
        if self.expected is None or self.node.stopping or self.node.halted.done():
            return False
        running = self.node.apps.running if self.node.apps is not None else {}
        return all(name in running for name in self.expected)

    async def close(self) -> None:
        """Stop serving and turn the node's metrics off."""
        await self.runner.cleanup()
        if _node.current is self.node:
            disable_metrics()
        self.provider.shutdown()

    # -- handlers ---------------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        answer = health(self.node, self.expected)
        return _json_response(answer, 503 if answer["status"] == "down" else 200)

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return _json_response({"ready": ready}, 200 if ready else 503)


def _json_response(value: Any, status: int) -> web.Response:
    return web.Response(body=_json.encode(value), status=status, content_type="application/json")


async def serve(port: int | socket.socket = 0, host: str = DEFAULT_HOST) -> Endpoint:
    """Serve the ops endpoint of the running node on `host:port` (or a listening socket
    from `bind`), and turn its metrics on, into a meter provider of the endpoint's own
    (Prometheus, plus the readers `OTEL_METRICS_EXPORTER` names). Call it from the node;
    `await endpoint.close()` stops it."""
    node = _node.get()
    sock = port if isinstance(port, socket.socket) else bind(port, host)
    app = web.Application()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    try:
        endpoint = Endpoint(node, runner, sock)
        app.router.add_get("/metrics", endpoint.metrics)
        app.router.add_get("/healthz", endpoint.healthz)
        app.router.add_get("/readyz", endpoint.readyz)
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    enable_metrics(endpoint.provider)
    return endpoint
