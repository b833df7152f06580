"""Fixtures of the distribution tests: an EPMD on its own port and a real `erl` peer.

Without `erl` the interop tests are skipped, saying how to install it; with
`OTP_REQUIRE_ERL=1` (as `.ci/run` sets) a missing `erl` fails them instead.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ERL_SOURCES = Path(__file__).resolve().parents[1] / "erl"
INSTALL = "install Erlang to run them (Debian: apt-get install erlang-base erlang-ssl)"


@dataclass(frozen=True)
class ErlPeer:
    """A running `erl` node with the modules of tests/erl loaded."""

    node: str
    cookie: str
    epmd_port: int
    beams: Path


_skipped: list[str] = []  # tests skipped for want of erl (said once, at the end)


def require_erl() -> str:
    erl = shutil.which("erl")
    if erl is None:
        if os.environ.get("OTP_REQUIRE_ERL") == "1":
            pytest.fail(f"OTP_REQUIRE_ERL=1 but erl is not on the PATH: {INSTALL}")
        _skipped.append("erl")
        pytest.skip(f"the Erlang interop tests need erl: {INSTALL}")
    return erl


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(f"The Erlang interop tests were not run: {INSTALL}.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_names = itertools.count(1)


def python_node() -> str:
    """A fresh name for the next Python node (each test's node is a new incarnation)."""
    return f"py{next(_names)}_{os.getpid()}@127.0.0.1"


@pytest.fixture(scope="session")
def epmd_port() -> Iterator[int]:
    """A system EPMD on a port of its own, loopback only; ERL_EPMD_PORT points at it."""
    require_erl()
    epmd = shutil.which("epmd")
    assert epmd is not None, "erl is installed but epmd is not"
    port = _free_port()
    subprocess.run([epmd, "-address", "127.0.0.1", "-port", str(port), "-daemon"], check=True)
    old = os.environ.get("ERL_EPMD_PORT")
    os.environ["ERL_EPMD_PORT"] = str(port)
    try:
        yield port
    finally:
        subprocess.run([epmd, "-port", str(port), "-kill"], capture_output=True, check=False)
        if old is None:
            del os.environ["ERL_EPMD_PORT"]
        else:
            os.environ["ERL_EPMD_PORT"] = old


def start_peer(
    tmp: Path, epmd_port: int, cookie: str, name: str, *extra: str
) -> subprocess.Popen[bytes]:
    """Start an `erl` node `name` running tests/erl's otp_peer; return once it is ready."""
    erl = require_erl()
    beams = tmp / "beams"
    if not beams.exists():
        beams.mkdir()
        sources = sorted(str(p) for p in ERL_SOURCES.glob("*.erl"))
        subprocess.run(["erlc", "-o", str(beams), *sources], check=True)
    proc = subprocess.Popen(
        [
            erl,
            "-name",
            name,
            "-setcookie",
            cookie,
            "-noshell",
            "-pa",
            str(beams),
            "-kernel",
            "inet_dist_use_interface",
            "{127,0,0,1}",
            *extra,
            "-eval",
            'ok = otp_peer:start(), io:format("ready~n").',
        ],
        env=dict(os.environ, ERL_EPMD_PORT=str(epmd_port)),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"the erl peer did not start: {line!r}")
    return proc


def stop_peer(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="session")
def erl_peer(epmd_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErlPeer]:
    """One `erl` peer for the session, with a random cookie."""
    cookie = secrets.token_hex(8)
    tmp = tmp_path_factory.mktemp("erl")
    name = f"peer_{os.getpid()}@127.0.0.1"
    proc = start_peer(tmp, epmd_port, cookie, name)
    try:
        yield ErlPeer(name, cookie, epmd_port, tmp / "beams")
    finally:
        stop_peer(proc)
