"""Two Python nodes through the embedded EPMD (no erl needed): calls, sends, monitors and
links across them, with Erlang's semantics."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otp
from behaviours import GenServer
from otp.dist import _epmd, nodes, ping
from tests.otp.test_cli import Node

from .conftest import python_node

COOKIE = "two-python-nodes"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kv_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An `otp run` node serving dist_samples:kv, with the embedded EPMD."""
    monkeypatch.setenv("ERL_EPMD_PORT", str(_free_port()))
    name = f"kv_{os.getpid()}@127.0.0.1"
    node = Node(
        tmp_path / "run",
        *("--cookie", COOKIE, "--epmd", "embedded"),
        name=name,
        spec="tests.distribution.dist_samples:kv",
    )
    try:
        node.wait_for(f"node {name} started")
        monkeypatch.setenv("OTP_EPMD", "system")  # ours registers with the node's EPMD
        yield name
    finally:
        node.kill()


def test_two_python_nodes_call_send_and_monitor_each_other(kv_node: str) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["ping"] = await ping(kv_node)
        out["registered"] = set(await _epmd.names()) >= {
            kv_node.split("@")[0],
            otp.self().node.split("@")[0],
        }
        kv = ("kv", kv_node)
        out["put"] = await GenServer.call(kv, ("put", "key", {"nested": [1, 2.5, b"\xff"]}))
        out["get"] = await GenServer.call(kv, ("get", "key"))
        server, caller = await GenServer.call(kv, ("whoami",))
        out["pids"] = (server.node, caller == otp.self())
        ref = otp.monitor(server)
        try:
            await GenServer.call(kv, ("crash",))
        except otp.CallError as e:
            out["crash"] = e.reason[0]  # (an exception crosses as (type name, message))
        down = await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref, timeout=5)
        out["down"] = down.reason[0]
        out["nodes"] = nodes()
        return out

    out = otp.run(main, name=python_node(), cookie=COOKIE)
    assert out["ping"] == "pong"
    assert out["registered"]  # both nodes in the embedded EPMD
    assert out["put"] == "ok"
    assert out["get"] == {"nested": [1, 2.5, b"\xff"]}
    assert out["pids"] == (kv_node, True)
    assert out["crash"] == "RuntimeError"
    assert out["down"] == "RuntimeError"
    assert out["nodes"] == [kv_node]
