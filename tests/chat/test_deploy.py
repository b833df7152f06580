"""The deployment files agree with what the node serves: the Kubernetes manifest's probes
are the ops endpoint's paths on the port its `otp run --ops-port` opens, and its preStop
hook stops that node; the Dockerfile runs the same command as a non-root user."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from apps.chat import release

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "k8s" / "chat.yaml"


def container() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [chat] = deployment["spec"]["template"]["spec"]["containers"]
    return chat  # type: ignore[no-any-return]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as failed:
        with failed:
            return failed.code, json.loads(failed.read())
    except OSError:
        return 0, None


def test_the_probes_are_the_ops_endpoints_paths_on_its_port() -> None:
    chat = container()
    command = chat["command"]
    assert command[:3] == ["otp", "run", "--release"]
    ops_port = int(option(command, "--ops-port"))
    assert option(command, "--ops-host") == "0.0.0.0"  # the kubelet probes the pod's address
    assert {"name": "ops", "containerPort": ops_port, "protocol": "TCP"} in chat["ports"]
    assert chat["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ops_port}
    assert chat["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ops_port}
    name = option(command, "--name")
    assert chat["lifecycle"]["preStop"]["exec"]["command"] == ["otp", "stop", "--name", name]


def test_the_manifests_command_serves_its_probes_and_its_prestop_hook_stops_it(
    tmp_path: Path,
) -> None:
    """Run the container's command on a release built here (the ports swapped for free
    ones), ask the probes' paths, then run the preStop hook."""
    release.build(tmp_path, release.LATEST)
    chat = container()
    ops_port, chat_port = free_port(), free_port()
    command = [
        arg.replace(option(chat["command"], "--ops-port"), str(ops_port)).replace(
            "chat.port=5555", f"chat.port={chat_port}"
        )
        for arg in chat["command"]
    ]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    otp = [sys.executable, "-m", "otp.cli"]
    node = subprocess.Popen(
        [*otp, *command[1:]], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        probes = {
            probe: f"http://127.0.0.1:{ops_port}{chat[probe]['httpGet']['path']}"
            for probe in ("readinessProbe", "livenessProbe")
        }
        deadline = time.monotonic() + 30.0
        while (ready := get(probes["readinessProbe"]))[0] != 200:  # 503 while it starts
            assert node.poll() is None and time.monotonic() < deadline, ready
            time.sleep(0.05)
        assert ready == (200, {"ready": True})
        status, health = get(probes["livenessProbe"])
        assert status == 200 and health["status"] == "ok"
        assert health["applications"] == {"chat": "running"}
        assert health["release"] == release.LATEST
        with socket.create_connection(("127.0.0.1", chat_port), timeout=5) as client:
            client.sendall(b"NICK probe\n")
            assert client.makefile("rb").readline() == b"OK NICK\n"
        pre_stop = chat["lifecycle"]["preStop"]["exec"]["command"]
        stopped = subprocess.run(
            [*otp, *pre_stop[1:]], cwd=tmp_path, env=env, capture_output=True, timeout=30
        )
        assert stopped.returncode == 0, stopped.stderr
        assert node.wait(timeout=30) == 0
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        assert node.stderr is not None
        node.stderr.close()


def test_the_image_runs_the_same_node_as_a_user_that_is_not_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    assert len(stages) == 3, "a build stage and a runtime stage"
    runtime = stages[-1]
    assert "\nUSER chat\n" in runtime and "useradd" in runtime and "--uid 10001" in runtime
    cmd = json.loads(runtime[runtime.index("CMD ") + 4 :].replace("\\\n", " "))
    chat = container()
    assert cmd[:3] == chat["command"][:3] == ["otp", "run", "--release"]
    assert option(cmd, "--ops-port") == option(chat["command"], "--ops-port")
    assert option(cmd, "--ops-host") == "0.0.0.0"
    assert chat["securityContext"]["allowPrivilegeEscalation"] is False
    pod = yaml.safe_load_all(MANIFEST.read_text())
    [spec] = [d["spec"]["template"]["spec"] for d in pod if d["kind"] == "Deployment"]
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"]
