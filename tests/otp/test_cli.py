"""The `otp` command, driven for real: a node in a subprocess, queried and stopped."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = "tests.otp.sample_apps:chat"


class Node:
    """An `otp run` subprocess and the lines it logged so far."""

    def __init__(
        self,
        run_dir: Path,
        *extra: str,
        name: str = "t",
        spec: str | None = SPEC,
        cwd: Path = ROOT,
    ) -> None:
        self.run_dir = run_dir
        self.name = name
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "otp.cli",
                "run",
                *([] if spec is None else [spec]),
                "--name",
                name,
                "--run-dir",
                str(run_dir),
                *extra,
            ],
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """The first logged line containing `text` (lines already seen count too)."""
        for seen in self.lines:
            if text in seen:
                return seen
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no log line with {text!r}; got:\n{''.join(self.lines)}"
                ) from None
            if line is None:
                self._queue.put(None)  # (for finish: the output is still over)
                raise AssertionError(
                    f"the node exited before logging {text!r}:\n{''.join(self.lines)}"
                )
            self.lines.append(line)
            if text in line:
                return line

    def otp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "otp.cli",
                *args,
                "--name",
                self.name,
                "--run-dir",
                str(self.run_dir),
            ],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def came_up(self, timeout: float = 20.0) -> bool:
        """True once the node logs that it started; False if it exits first."""
        try:
            self.wait_for(f"node {self.name}@", timeout)
        except AssertionError:
            self.proc.wait(timeout=5)  # its output ended: it exited (else: not up in time)
            return False
        return True

    def kill(self) -> None:
        """End it now if it still runs (a test's cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        while True:
            line = self._queue.get(timeout=5)
            if line is None:
                return code
            self.lines.append(line)


N = TypeVar("N", bound=Node)


@contextlib.contextmanager
def running(node: N) -> Iterator[N]:
    """`node` once it has logged its start; killed at the end if it still runs."""
    try:
        node.wait_for(f"node {node.name}@")
        yield node
    finally:
        node.kill()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with running(Node(tmp_path / "run", "--set", "chat.motd='welcome'")) as started:
        yield started


def test_status_lists_the_applications_in_start_order(node: Node) -> None:
    result = node.otp("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert [a["name"] for a in status["applications"]] == ["store", "cache", "chat"]
    assert {a["type"] for a in status["applications"]} == {"permanent"}
    assert status["processes"] >= 50
    readable = node.otp("status")
    assert "chat 2.0.0 (permanent) chat rooms" in readable.stdout


def test_tree_shows_the_live_supervision_tree(node: Node) -> None:
    result = node.otp("tree", "--json")
    assert result.returncode == 0, result.stderr
    trees = {t["application"]: t["tree"] for t in json.loads(result.stdout)}
    store = trees["store"]
    assert store["behaviour"] == "StoreSup"
    assert store["children"][0]["name"] == "store" and store["children"][0]["behaviour"] == "Store"
    rooms = trees["chat"]["children"]
    assert len(rooms) == 40 and rooms[0]["id"] == "room0" and rooms[0]["mailbox"] == 0
    assert trees["cache"]["children"][0]["behaviour"] == "DynamicSupervisor"
    text = node.otp("tree").stdout
    assert "└─ StoreSup" in text and "'store'" in text and "restarts=0" in text


def test_stop_stops_applications_in_reverse_start_order(node: Node) -> None:
    result = node.otp("stop")
    assert result.returncode == 0, result.stderr
    assert node.finish() == 0
    stopped = [
        line.split("application ")[1].split()[0] for line in node.lines if " stopped (" in line
    ]
    assert stopped == ["chat", "cache", "store"]
    assert not (node.run_dir / "t.sock").exists()
    again = node.otp("status")
    assert again.returncode == 1 and "no node is running" in again.stderr


def test_sigterm_stops_the_node_cleanly(node: Node) -> None:
    node.proc.send_signal(signal.SIGTERM)
    assert node.finish() == 0
    assert any("application store stopped" in line for line in node.lines)


def test_the_control_socket_is_owner_only(node: Node) -> None:
    sock = node.run_dir / "t.sock"
    assert sock.stat().st_mode & 0o077 == 0
    assert (node.run_dir / "t.cookie").stat().st_mode & 0o077 == 0
    assert node.run_dir.stat().st_mode & 0o077 == 0


def _raw(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_bad_requests_get_an_error_and_the_node_stays_up(node: Node) -> None:
    sock = node.run_dir / "t.sock"
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x05hello", b"\x00\x00", b""):
        reply = _raw(sock, garbage)
        assert b"malformed request" in reply
    wrong = node.otp("status", "--cookie", "not-the-cookie")
    assert wrong.returncode == 1 and "unauthenticated: wrong cookie" in wrong.stderr
    assert node.otp("status").returncode == 0  # still up and answering


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--set", "chat.port=abc"), "--set chat.port=abc: [chat] port: expected int"),
        (("--set", "nodot"), "expected app.key=value"),
    ],
)
def test_bad_configuration_is_refused_by_name_in_one_line(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    node = Node(tmp_path / "run", *extra)
    assert node.finish() == 1
    [line] = node.lines  # no crash report, no traceback: the one line
    assert line.startswith("otp: error: ") and message in line


def test_a_config_file_that_is_not_toml_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "sys.toml"
    bad.write_text("[chat\nport = ")
    node = Node(tmp_path / "run", "--config", str(bad))
    assert node.finish() == 1
    assert node.lines == [
        f"otp: error: {bad}: not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 1, column 6)\n"
    ]


def test_a_missing_config_file_is_refused_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    node = Node(tmp_path / "run", "--config", str(missing))
    assert node.finish() == 1
    assert node.lines == [
        f"otp: error: {missing}: cannot read the config file: No such file or directory\n"
    ]


KV_APP = """
import otp
from behaviours import Supervisor

class KvSup(Supervisor):
    def init(self, arg):
        return Supervisor.flags(), []

def helper():
    pass

app = otp.Application(name="kv", start=KvSup.start_link)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with an application, kv.app:app."""
    root = tmp_path / "project"
    (root / "kv").mkdir(parents=True)
    (root / "kv" / "__init__.py").write_text("")
    (root / "kv" / "app.py").write_text(KV_APP)
    return root


@pytest.mark.parametrize(
    ("spec", "where", "message"),
    [
        (
            "kv.app:app",
            "elsewhere",
            "no module named 'kv' in {cwd}: otp run imports SPEC relative to the current "
            "directory; run it where kv/ or kv.py is",
        ),
        ("kv.nope:app", "project", "no module named 'kv.nope' (for kv.nope:app)"),
        (
            "kv.app:ap",
            "project",
            "module kv.app has no attribute 'ap'; its otp.Application: kv.app:app",
        ),
        (
            "kv.app:KvSup",
            "project",
            "kv.app.KvSup is the class KvSup, not an otp.Application; "
            "its otp.Application: kv.app:app",
        ),
        (
            "kv.app",
            "project",
            "SPEC is package.module:attr, an otp.Application and the module that holds it "
            "(for example kv.app:app); got 'kv.app'",
        ),
    ],
)
def test_a_spec_that_names_no_application_is_refused_in_one_line(
    tmp_path: Path, project: Path, spec: str, where: str, message: str
) -> None:
    cwd = project if where == "project" else tmp_path
    refused = Node(tmp_path / "run", spec=spec, cwd=cwd)
    assert refused.finish() == 1
    assert refused.lines == [f"otp: error: {message.format(cwd=cwd)}\n"]


def test_a_module_that_fails_as_it_is_imported_shows_its_own_traceback(
    tmp_path: Path, project: Path
) -> None:
    (project / "kv" / "app.py").write_text("import otp\n\nraise RuntimeError('no config')\n")
    refused = Node(tmp_path / "run", spec="kv.app:app", cwd=project)
    assert refused.finish() == 1
    assert refused.lines[0] == "Traceback (most recent call last):\n"
    assert refused.lines[1].startswith(f'  File "{project / "kv" / "app.py"}", line 3')
    assert refused.lines[-2:] == [
        "RuntimeError: no config\n",
        "otp: error: importing kv.app failed: RuntimeError('no config')\n",
    ]
    assert not any("importlib" in line or "otp/cli.py" in line for line in refused.lines)


def test_log_level_hides_the_reports_below_it(tmp_path: Path) -> None:
    quiet = Node(tmp_path / "run", "--log-level", "warning")
    try:
        deadline = time.monotonic() + 20
        while quiet.otp("status").returncode != 0:  # no log line to wait for: the socket
            assert time.monotonic() < deadline and quiet.proc.poll() is None, quiet.lines
        assert quiet.otp("stop").returncode == 0
        assert quiet.finish() == 0
        assert quiet.lines == []  # not even "application store started" (INFO)
    finally:
        if quiet.proc.poll() is None:
            quiet.proc.kill()
            quiet.proc.wait()


def test_an_unknown_log_level_is_refused_with_the_levels(tmp_path: Path) -> None:
    refused = Node(tmp_path / "run", "--log-level", "loud")
    assert refused.finish() == 2
    assert refused.lines[-1] == (
        "otp run: error: argument --log-level: invalid choice: 'LOUD' "
        "(choose from 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')\n"
    )


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "otp"
    assert script.exists() and os.access(script, os.X_OK)
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "status" in proc.stdout


def test_a_second_node_with_the_same_name_is_refused(node: Node) -> None:
    second = Node(node.run_dir)
    assert second.finish() != 0
    assert "already running" in "".join(second.lines)
    assert node.otp("status").returncode == 0  # the first node is still reachable


def test_nodes_started_together_with_one_name_make_exactly_one_node(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"  # (not there yet: they all create it at once)
    for _ in range(3):
        nodes = [Node(run_dir) for _ in range(8)]
        try:
            up = [n for n in nodes if n.came_up()]
            assert len(up) == 1, [n.lines for n in nodes]
            for refused in nodes:
                if refused is not up[0]:
                    assert refused.finish() == 1
                    assert any("is already running" in line for line in refused.lines)
            # the refused ones touched neither the socket nor the cookie of the one running
            assert up[0].otp("status").returncode == 0
            assert up[0].otp("stop").returncode == 0
            assert up[0].finish() == 0
            assert not (run_dir / "t.sock").exists() and not (run_dir / "t.cookie").exists()
        finally:
            for n in nodes:
                if n.proc.poll() is None:
                    n.proc.kill()
                    n.proc.wait()


def test_a_killed_nodes_name_can_be_taken_again_at_once(node: Node) -> None:
    node.proc.kill()
    node.proc.wait()
    assert (node.run_dir / "t.sock").exists()  # left behind, stale
    again = Node(node.run_dir)
    try:
        assert again.came_up()
        assert again.otp("status").returncode == 0  # its own socket and cookie
        assert again.otp("stop").returncode == 0
        assert again.finish() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
            again.proc.wait()


def test_a_stop_with_control_connections_open_answers_them_and_logs_no_error(
    node: Node,
) -> None:
    path = str(node.run_dir / "t.sock")
    idle = socket.socket(socket.AF_UNIX)
    half = socket.socket(socket.AF_UNIX)
    with idle, half:
        idle.connect(path)
        half.connect(path)
        half.sendall((100).to_bytes(4, "big") + b"\x83")  # a frame's header, 1 byte of 100
        # accepted in order: once a later connection is answered, both are being served
        assert node.otp("status").returncode == 0
        assert node.otp("stop").returncode == 0
        for sock in (idle, half):
            sock.settimeout(10)
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
            response = msgspec.msgpack.decode(reply[4:])
            assert response["ok"] is False and response["error"] == "the node is stopping"
    assert node.finish() == 0
    logged = "".join(node.lines)
    assert " ERROR " not in logged and "Traceback" not in logged, logged


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def test_a_deeply_nested_request_gets_an_error_reply(node: Node) -> None:
    enc = msgspec.msgpack.Encoder()
    body = (
        b"\x83"
        + enc.encode("cookie")
        + enc.encode("x")
        + enc.encode("command")
        + enc.encode("status")
        + enc.encode("args")
        + b"\x81"
        + enc.encode("a")
        + b"\x91" * 100_000
        + b"\xc0"
    )
    reply = _raw(node.run_dir / "t.sock", _frame(body))
    assert b"malformed request" in reply, reply
    assert node.otp("status").returncode == 0


def test_oversized_and_concurrent_garbage_leave_the_node_up(node: Node) -> None:
    sock = node.run_dir / "t.sock"
    assert b"too large" in _raw(sock, (2 << 20).to_bytes(4, "big"))
    replies: list[bytes] = []

    def client() -> None:
        replies.append(_raw(sock, b"\x00\x00\x00\x03\xc1\xc1\xc1"))

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 50 and all(b"malformed request" in r for r in replies)
    assert node.otp("status").returncode == 0


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [(0o777, "must be a directory of yours"), (0o700, "cannot write the cookie file")],
)
def test_a_planted_cookie_link_is_never_followed(tmp_path: Path, mode: int, refusal: str) -> None:
    """The run directory holds the cookie: one someone else made (say /tmp/otp-<uid>), or
    a link in it, must not make `otp run` write the cookie where they want."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(mode)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / "t.cookie").symlink_to(victim)
    refused = Node(run_dir)
    assert refused.finish() != 0
    assert any(refusal in line for line in refused.lines)
    assert victim.read_text() == "precious\n"


def started(tmp_path: Path, spec: str, *extra: str) -> Node:
    """A node running `spec` (instead of the chat sample), up and logging."""
    node = Node(tmp_path / "run", *extra, spec=spec)
    node.wait_for("node t@")
    return node


def test_tree_names_a_class_once_and_tells_children_apart_by_name_or_via(tmp_path: Path) -> None:
    node = started(tmp_path, "tests.otp.cli_samples:pool")
    try:
        result = node.otp("tree")
        assert result.returncode == 0, result.stderr
        assert re.sub(r"<0\.\d+\.0>", "<pid>", result.stdout).splitlines() == [
            "pool",
            "└─ Pool <pid>  mailbox=0 restarts=0",
            "   ├─ Worker <pid>  mailbox=0 restarts=0",  # its id is its class: said once
            "   ├─ names <pid> 'names'  mailbox=0 restarts=0",
            "   └─ pool DynamicSupervisor <pid> 'pool'  mailbox=0 restarts=0",
            "      ├─ Worker <pid> 'w1'  mailbox=0 restarts=0",
            "      ├─ Worker <pid>  mailbox=0 restarts=0",
            "      └─ Worker <pid> ('via', 'names', 'w3')  mailbox=0 restarts=0",
        ]
    finally:
        node.otp("stop")
        node.finish()


def test_tree_shows_an_id_msgpack_cannot_carry_as_text(tmp_path: Path) -> None:
    node = started(tmp_path, "tests.otp.sample_apps:odd_ids")
    try:
        result = node.otp("tree", "--json")
        assert result.returncode == 0, result.stderr
        children = json.loads(result.stdout)[0]["tree"]["children"]
        assert [child["id"] for child in children] == ["plain", repr(2**64)]
    finally:
        node.otp("stop")
        node.finish()


def test_tree_cuts_a_very_deep_tree_and_says_so(tmp_path: Path) -> None:
    node = started(tmp_path, "tests.otp.sample_apps:deep")
    try:
        result = node.otp("tree")
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("Nest") == 101  # the top one and 100 levels below
        assert "children not shown: deeper than 100 levels" in result.stdout
    finally:
        node.otp("stop")
        node.finish()


def test_a_second_stop_ends_a_hung_node_as_a_second_sigterm_does(tmp_path: Path) -> None:
    node = started(tmp_path, "tests.otp.sample_apps:hung_stop")
    assert node.otp("stop").returncode == 0
    node.wait_for("hung_stop: stopping, for ever")  # stuck in the application's stop
    second = node.otp("stop")
    assert second.returncode == 0 and "exiting at once" in second.stdout
    assert node.finish() != 0


@pytest.mark.parametrize("name", ["", "a@b@c"])
def test_a_bad_node_name_is_refused_without_a_traceback(tmp_path: Path, name: str) -> None:
    refused = Node(tmp_path / "run", name=name)
    assert refused.finish() == 1
    text = "".join(refused.lines)
    assert "Traceback" not in text and "a node name is" in text


def test_settings_for_an_application_that_is_not_loaded_are_warned_about(tmp_path: Path) -> None:
    node = Node(tmp_path / "run", "--set", "chta.port=1")
    try:
        line = node.wait_for("no application 'chta' is loaded")
        assert line.rstrip().endswith(
            "WARNING otp.application: --set chta.port=1: [chta]: no application 'chta' is "
            "loaded, so nothing reads these settings (did you mean 'chat'?)"
        )
    finally:
        assert node.otp("stop").returncode == 0
        assert node.finish() == 0


def test_run_logs_one_json_object_per_line_with_log_format_json(tmp_path: Path) -> None:
    started = Node(tmp_path / "run", "--log-format", "json")
    try:
        up = json.loads(started.wait_for('"logger":"otp.node"'))
        assert (up["level"], up["logger"]) == ("INFO", "otp.node")
        assert up["message"].startswith("node t@") and up["time"].endswith("Z")
        reports = [json.loads(line) for line in started.lines if '"report":' in line]
        assert {r["report"] for r in reports} == {"ApplicationReport"}
        assert [(r["application"], r["context"]) for r in reports] == [
            ("store", "started"),
            ("cache", "started"),
            ("chat", "started"),
        ]
        assert started.otp("stop").returncode == 0
        assert started.finish() == 0
        assert all(json.loads(line) for line in started.lines)  # every line, to the last
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait()
