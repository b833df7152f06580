"""The ops endpoint of `otp run --ops-port`, scraped over HTTP from a real node."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otp.test_cli import ROOT, Node, running

DEMO = "tests.otp.ops_samples:demo"


class OpsNode(Node):
    """A node run with `--ops-port 0`, and the URL its endpoint logged."""

    def __init__(self, run_dir: Path, spec: str = DEMO) -> None:
        super().__init__(run_dir, "--ops-port", "0", spec=spec)
        line = self.wait_for("ops endpoint http://")
        found = re.search(r"ops endpoint (http://\S+)", line)
        assert found is not None, line
        self.url = found.group(1)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, json.loads(body)

    def until(self, path: str, status: int, timeout: float = 20.0) -> Any:
        """GET `path` until it answers `status` (the node's own pace); its JSON then."""
        deadline = time.monotonic() + timeout
        while True:
            got, body = self.get(path)
            if got == status:
                return json.loads(body)
            assert time.monotonic() < deadline, f"{path} still answers {got}: {body!r}"
            time.sleep(0.02)

    def sample(self, name: str, **labels: str) -> float | None:
        """The value of one series in /metrics, or None when it is not there."""
        status, body = self.get("/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            if metric == name and all(found.get(k) == v for k, v in labels.items()):
                return float(value)
        return None


@pytest.fixture
def ops_node(tmp_path: Path) -> Iterator[OpsNode]:
    with running(OpsNode(tmp_path / "run")) as node:
        yield node


def test_metrics_show_the_restart_counter_growing_while_a_child_crashes(
    ops_node: OpsNode,
) -> None:
    ops_node.wait_for("context=child_terminated")
    first = ops_node.sample("otp_restarts_total", supervisor="demo_sup", child="crasher")
    assert first is not None and first >= 1
    deadline = time.monotonic() + 20
    while True:  # the crasher crashes every 20 ms: scrape until the next restart shows
        now = ops_node.sample("otp_restarts_total", supervisor="demo_sup", child="crasher")
        assert now is not None and now >= first
        if now > first:
            break
        assert time.monotonic() < deadline, "the restart counter did not grow"
        time.sleep(0.02)
    processes = ops_node.sample("otp_processes")
    assert processes is not None and processes >= 5
    sent = ops_node.sample("otp_messages_sent_total")
    assert sent is not None and sent > 0
    assert ops_node.sample("otp_mailbox_processes", le="+Inf") == processes
    deadline = time.monotonic() + 20
    while ops_node.sample("otp_loop_lag_seconds_count") is None:  # a probe every 0.1 s
        assert time.monotonic() < deadline, "no loop lag measured"
        time.sleep(0.02)
    assert ops_node.sample("process_resident_memory_bytes") is not None


def test_healthz_and_readyz_of_a_running_node(ops_node: OpsNode) -> None:
    status, health = ops_node.json("/healthz")
    assert status == 200
    assert health["status"] in ("ok", "degraded")
    assert health["applications"] == {"victim": "running", "demo": "running"}
    assert health["release"] is None
    assert isinstance(health["alarms"], list)
    assert health["processes"] >= 5
    assert ops_node.json("/readyz") == (200, {"ready": True})


def test_healthz_is_503_down_when_a_permanent_application_dies(ops_node: OpsNode) -> None:
    assert ops_node.json("/healthz")[0] == 200
    result = ops_node.otp("eval", "otp.exit(otp.whereis('victim_sup'), otp.KILL)")
    assert result.returncode == 0, result.stderr
    health = ops_node.until("/healthz", 503)  # while the node stops (a terminate takes 30 s)
    assert health["status"] == "down"
    assert health["applications"]["victim"] == "exited"
    assert ops_node.json("/readyz")[0] == 503


def test_readyz_is_503_until_every_application_has_started(tmp_path: Path) -> None:
    node = OpsNode(tmp_path / "run", spec="tests.otp.ops_samples:gated")
    try:
        status, body = node.json("/readyz")
        assert (status, body) == (503, {"ready": False})
        assert node.json("/healthz")[0] == 200  # alive, only not ready
        result = node.otp("eval", "otp.send('gate', 'open')")
        assert result.returncode == 0, result.stderr
        assert node.until("/readyz", 200) == {"ready": True}
    finally:
        node.proc.kill()
        node.proc.wait()


def _raw(url: str, payload: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(payload)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_bad_requests_get_4xx_and_the_node_stays_up(ops_node: OpsNode) -> None:
    for garbage in (
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"\x00\xff" * 5000 + b"\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
    ):
        answer = _raw(ops_node.url, garbage)
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:200]
    assert ops_node.get("/nothing/here")[0] == 404
    request = urllib.request.Request(ops_node.url + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 405
    assert ops_node.json("/healthz")[0] == 200
    assert ops_node.proc.poll() is None


def _otp_run(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`otp run` of the demo that is expected to refuse to start."""
    run_dir = str(tmp_path / "run")
    return subprocess.run(
        [sys.executable, "-m", "otp.cli", "run", DEMO, "--name", "t", "--run-dir", run_dir, *extra],
        env=None if env is None else {**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _otp_run(tmp_path, "--ops-port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"otp: error: the ops endpoint cannot listen on 127.0.0.1:{port}: another program "
        "already uses the port (pick another --ops-port, or 0 for any free one)"
    ]


def test_ops_host_without_ops_port_is_refused(tmp_path: Path) -> None:
    result = _otp_run(tmp_path, "--ops-host", "0.0.0.0")
    assert result.returncode == 1
    assert "--ops-host goes with --ops-port" in result.stderr


def test_an_otel_exporter_that_is_not_installed_is_a_one_line_error(tmp_path: Path) -> None:
    result = _otp_run(tmp_path, "--ops-port", "0", env={"OTEL_METRICS_EXPORTER": "nonesuch"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "otp: error: OTEL_METRICS_EXPORTER names the exporter 'nonesuch', which is not "
        "installed (for otlp: pip install opentelemetry-exporter-otlp)"
    ]


def test_ops_traces_with_a_ratio_outside_0_to_1_is_a_one_line_error(tmp_path: Path) -> None:
    result = _otp_run(tmp_path, "--ops-traces", "1.5")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "otp: error: --ops-traces takes the share of calls to trace, from 0 to 1 (none: "
        "OTEL_TRACES_SAMPLER's); got 1.5"
    ]


def test_ops_traces_with_a_span_exporter_not_installed_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    result = _otp_run(tmp_path, "--ops-traces", env={"OTEL_TRACES_EXPORTER": "nonesuch"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "otp: error: OTEL_TRACES_EXPORTER names the span exporter 'nonesuch', which is not "
        "installed (for otlp: pip install opentelemetry-exporter-otlp; "
        "OTEL_TRACES_EXPORTER=console prints the spans, =none exports none)"
    ]


def test_ops_traces_traces_the_nodes_calls_at_its_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with running(Node(tmp_path / "run", "--ops-traces", "0.25", spec=DEMO)) as node:
        node.wait_for("tracing calls, sampling 0.25 of the traces")
        result = node.otp(
            "eval", "otp.ops.tracing_enabled(), otp.ops.tracer_provider().sampler.get_description()"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == (
            "(True, 'ParentBased{root:TraceIdRatioBased{0.25},remoteParentSampled:AlwaysOnSampler,"
            "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
            "localParentNotSampled:AlwaysOffSampler}')\n"
        )
