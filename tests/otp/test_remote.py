"""`otp eval` and `otp remote`: code run inside a running node, over its control socket.

`otp remote` is driven in a pseudo-terminal (pexpect), as a person at a terminal uses it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pexpect
import pytest

from tests.otp.test_cli import ROOT, Node, running

SPEC = "tests.otp.cli_samples:pool"

# pexpect forks a pseudo-terminal's child while a Node's log reader thread runs; Python
# 3.12+ warns about any fork in a threaded process (the child execs at once: harmless here)
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with running(Node(tmp_path / "run", spec=SPEC)) as started:
        yield started


def evaluate(node: Node, code: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return node.otp("eval", code, *extra)


# -- otp eval ------------------------------------------------------------------------------


def test_eval_prints_the_repr_of_the_value(node: Node) -> None:
    result = evaluate(node, "await GenServer.call('w1', 5)")
    assert (result.returncode, result.stdout, result.stderr) == (0, "6\n", "")
    state = evaluate(node, "await otp.sys.get_state('w1')")
    assert state.stdout == "6\n"  # the same node: the call above changed it


def test_eval_runs_statements_and_shows_what_print_wrote_then_the_last_value(node: Node) -> None:
    result = evaluate(node, "names = ['w1', 'pool']\nprint('names:', names)\nlen(names)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "names: ['w1', 'pool']\n2\n"
    assert evaluate(node, "x = 1").stdout == ""  # no value: nothing printed
    assert evaluate(node, "None").stdout == ""  # as the REPL does


def test_eval_failure_exits_1_with_a_traceback_without_framework_frames(node: Node) -> None:
    result = evaluate(node, "await GenServer.call('nobody', 1)")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<remote-1>", line 1, in <module>',
        "    await GenServer.call('nobody', 1)",
        "otp.errors.CallError: call to 'nobody' failed: noproc "
        "(no process is registered under that name); request=1",
    ]


def test_eval_of_bad_syntax_exits_1_with_the_syntax_error(node: Node) -> None:
    result = evaluate(node, "def f(:")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        '  File "<remote-1>", line 1',
        "    def f(:",
        "          ^",
        "SyntaxError: invalid syntax",
    ]


def test_eval_that_outlasts_its_timeout_is_killed_and_the_node_carries_on(node: Node) -> None:
    result = evaluate(node, "await otp.receive()", "--timeout", "0.2")
    assert result.returncode == 1
    assert result.stderr.startswith("TimeoutError: the evaluation took longer than 0.2 s, so ")
    assert result.stderr.endswith(" was killed (give it more time with --timeout)\n")
    assert evaluate(node, "1 + 1").stdout == "2\n"


@pytest.mark.parametrize(
    "code",
    [
        "raise SystemExit(3)",
        "raise KeyboardInterrupt",
        "otp.exit(otp.self(), 'kill')",
        "otp.exit('boom')",
        "exit()",
    ],
)
def test_nothing_evaluated_stops_the_node(node: Node, code: str) -> None:
    evaluate(node, code)
    assert evaluate(node, "otp.whereis('w1') is not None").stdout == "True\n"
    assert node.proc.poll() is None


def test_eval_exit_kills_a_process_and_its_supervisor_restarts_it(node: Node) -> None:
    code = (
        "pid = otp.whereis('w1'); ref = otp.monitor(pid); otp.exit(pid, otp.KILL)\n"
        "down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)\n"
        "down.reason"
    )
    result = evaluate(node, code)
    assert (result.returncode, result.stdout) == (0, "'killed'\n"), result.stderr


def test_eval_with_the_wrong_cookie_is_refused(node: Node) -> None:
    result = evaluate(node, "1", "--cookie", "not-the-cookie")
    assert result.returncode == 1
    assert result.stderr == "otp: error: unauthenticated: wrong cookie\n"


def test_eval_without_a_node_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otp.cli",
            "eval",
            "1",
            "--name",
            "gone",
            "--run-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"otp: error: no node is running as 'gone': no control socket at {tmp_path}/gone.sock\n"
    )


# -- otp remote ----------------------------------------------------------------------------


class Shell:
    """`otp remote` in a pseudo-terminal."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "otp.cli", "remote", "--name", node.name, "--run-dir", str(node.run_dir)],
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 200),
            env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": str(node.run_dir)},
        )
        self.child.expect(r"\((\S+@\S+)\)>>> ")
        self.banner = self.before()
        match = self.child.match
        assert isinstance(match, re.Match)
        self.prompt = f"({match.group(1)})>>> "

    def before(self) -> str:
        """What the shell wrote before the text last expected (with newlines, not CRLF)."""
        text = self.child.before
        assert isinstance(text, str)
        return text.replace("\r\n", "\n")

    def run(self, line: str, prompt: str | None = None) -> str:
        """Type `line`; what the shell wrote before its next prompt (the echo left out)."""
        self.child.sendline(line)
        self.child.expect_exact(prompt or self.prompt)
        text = self.before()
        echo = line + "\n"
        assert text.startswith(echo), text
        return text[len(echo) :]

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def shell(node: Node) -> Iterator[Shell]:
    opened = Shell(node)
    try:
        yield opened
    finally:
        opened.close()


def test_remote_shell_opens_with_a_banner_that_says_how_to_use_it(shell: Shell) -> None:
    lines = shell.banner.strip().splitlines()
    assert lines[0].startswith("otp remote shell on node t@")
    assert lines[0].endswith(")") and "(session process <0." in lines[0]
    assert lines[1:] == [
        "Top-level await works; imported: otp, asyncio, DynamicSupervisor, GenServer, Supervisor.",
        "Ctrl-C interrupts an evaluation; exit() or Ctrl-D leaves, and the node keeps running.",
    ]


def test_remote_shell_awaits_calls_at_the_top_level_and_keeps_names(shell: Shell) -> None:
    assert shell.run("await GenServer.call('w1', 10)") == "11\n"
    assert shell.run("state = await otp.sys.get_state('w1')") == ""
    assert shell.run("state * 2") == "22\n"
    assert shell.run("_ + 1") == "23\n"  # the last value, as in the REPL


def test_remote_shell_takes_a_block_over_several_lines(shell: Shell) -> None:
    more = shell.prompt.replace(">>> ", "... ")
    assert shell.run("for name in ['w1', 'pool']:", more) == ""
    assert shell.run("    print(name, otp.whereis(name) is not None)", more) == ""
    assert shell.run("") == "w1 True\npool True\n"


def test_remote_shell_shows_a_traceback_and_carries_on(shell: Shell) -> None:
    shell.run("def fail(): return 1 / 0", shell.prompt.replace(">>> ", "... "))
    shell.run("")
    shown = shell.run("fail()").splitlines()
    markers = set(" ~^")  # (the lines of carets under the code differ between Pythons)
    assert [line for line in shown if not set(line) <= markers] == [
        "Traceback (most recent call last):",
        '  File "<remote-2>", line 1, in <module>',
        "    fail()",
        '  File "<remote-1>", line 1, in fail',
        "    def fail(): return 1 / 0",
        "ZeroDivisionError: division by zero",
    ]
    assert shell.run("1 + 1") == "2\n"


def test_remote_shell_kills_a_process_with_otp_exit(shell: Shell) -> None:
    shell.run("pid = otp.whereis('w1'); ref = otp.monitor(pid)")
    assert shell.run("otp.exit(pid, otp.KILL)") == ""
    assert shell.run("(await otp.receive(lambda m: isinstance(m, otp.Down))).reason") == (
        "'killed'\n"
    )
    # its supervisor handled the exit before this request: a new w1 runs
    assert shell.run("await otp.sys.get_children('pool') and otp.whereis('w1') != pid") == (
        "True\n"
    )


def test_ctrl_c_interrupts_an_evaluation_and_the_session_goes_on(shell: Shell) -> None:
    shell.run("kept = 'still here'")
    wait_until_evaluating(shell)
    shell.child.sendintr()
    shell.child.expect_exact(shell.prompt)
    shown = shell.before()
    assert "KeyboardInterrupt: the evaluation was interrupted, and its process <0." in shown
    assert shown.endswith(" killed (the next input runs in a new one; your names are kept)\n")
    assert shell.run("kept") == "'still here'\n"
    assert shell.run("otp.whereis('waiting')") == ""  # the old process is gone


def test_remote_shell_completes_names_from_the_node(shell: Shell) -> None:
    shell.child.send("await otp.sys.get_chi\t")
    shell.child.expect_exact("get_children(")
    shell.child.sendline("'pool')")
    shell.child.expect_exact(shell.prompt)
    assert "(None, <0." in shell.before()


@pytest.mark.parametrize("leave", ["exit()", "\x04"])
def test_leaving_the_remote_shell_leaves_the_node_running(shell: Shell, leave: str) -> None:
    if leave == "\x04":
        shell.child.sendeof()
    else:
        shell.child.sendline(leave)
    shell.child.expect(pexpect.EOF)
    shell.child.close()
    assert shell.child.exitstatus == 0
    assert "left node t@" in shell.before() and "; it is still running" in shell.before()
    if leave == "exit()":  # what was typed is kept for the next session (readline)
        history = shell.node.run_dir / ".otp_remote_history"  # (HOME is the run directory)
        assert history.read_text().splitlines()[-1] == "exit()"
    assert evaluate(shell.node, "otp.whereis('w1') is not None").stdout == "True\n"


def wait_until_evaluating(shell: Shell) -> None:
    """Type an evaluation that waits for ever; return once the node runs it."""
    shell.child.sendline("otp.register('waiting', otp.self()); await otp.receive()")
    deadline = time.monotonic() + 20
    while evaluate(shell.node, "otp.whereis('waiting')").stdout == "":
        assert time.monotonic() < deadline


def test_a_node_that_stops_under_a_remote_shell_ends_it_cleanly(shell: Shell) -> None:
    wait_until_evaluating(shell)
    assert shell.node.otp("stop").returncode == 0
    shell.child.expect(pexpect.EOF)
    shell.child.close()
    assert shell.child.exitstatus == 1
    assert "otp: error: the node is stopping" in shell.before()
    assert shell.node.finish() == 0
    logged = "".join(shell.node.lines)
    assert " ERROR " not in logged and "Traceback" not in logged, logged


def test_remote_shell_with_the_wrong_cookie_is_refused(node: Node) -> None:
    result = node.otp("remote", "--cookie", "not-the-cookie")
    assert result.returncode == 1
    assert result.stderr == "otp: error: unauthenticated: wrong cookie\n"


def test_a_malformed_session_frame_ends_only_that_session(node: Node) -> None:
    enc = msgspec.msgpack.Encoder()
    cookie = (node.run_dir / "t.cookie").read_text()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(node.run_dir / "t.sock"))
        hello = enc.encode({"cookie": cookie, "command": "remote", "args": {}})
        sock.sendall(len(hello).to_bytes(4, "big") + hello)
        garbage = enc.encode({"type": "pickle", "data": b"\x80\x04"})
        sock.sendall(len(garbage).to_bytes(4, "big") + garbage)
        sock.shutdown(socket.SHUT_WR)
        replies = b""
        while chunk := sock.recv(65536):
            replies += chunk
    first = 4 + int.from_bytes(replies[:4], "big")
    assert msgspec.msgpack.decode(replies[4:first])["ok"] is True
    error = msgspec.msgpack.decode(replies[first + 4 :])
    assert error["ok"] is False
    assert error["error"].startswith("malformed session frame: Invalid value 'pickle'")
    assert evaluate(node, "1 + 1").stdout == "2\n"
