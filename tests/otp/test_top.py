"""`otp top`: the node's busiest processes, its supervisors and its alarms.

`--once` is checked against a real `otp run` subprocess; the live view is driven in a
pseudo-terminal (pexpect), as a person at a terminal uses it. The node's side, the `top`
control command, is also checked in-process.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

import otp
from behaviours import GenServer, Reply
from otp import _control, _node, _watchdog
from tests.otp.test_cli import ROOT, Node
from tests.otp.test_cli import running as up

SPEC = "tests.otp.cli_samples:pool"

# pexpect forks a pseudo-terminal's child while a Node's log reader thread runs; Python
# 3.12+ warns about any fork in a threaded process (the child execs at once: harmless here)
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Node]:
    """`otp run` of the pool application, in a subprocess."""
    with up(Node(tmp_path / "run", spec=SPEC)) as started:
        yield started


def evaluate(running: Node, code: str) -> str:
    result = running.otp("eval", code)
    assert result.returncode == 0, result.stderr
    return result.stdout


FLOOD = """
if otp.whereis('flood') is None:
    async def hold():
        otp.register('flood', otp.self())
        await otp.receive(lambda m: m == 'never')
    otp.spawn(hold)
    await asyncio.sleep(0)
for i in range({n}):
    otp.send('flood', i)
"""


def flood(running: Node, n: int) -> None:
    """Queue `n` more messages in the mailbox of 'flood', a process that reads none."""
    evaluate(running, FLOOD.format(n=n))


def top_once(running: Node, *extra: str) -> list[str]:
    result = running.otp("top", "--once", "--interval", "0.05", *extra)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout.splitlines()


RIGHT = {"mailbox", "msg/s", "time%", "children", "restarts", "since"}  # right-justified


def section(lines: list[str], title: str) -> list[dict[str, str]]:
    """The rows of the table titled `title...`, each as {column: cell}; a cell is found
    where its column's heading starts (or ends, for numbers)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header = lines[start + 2]  # title, blank, header, rule, rows, blank
    columns = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", header)]
    rows = []
    for line in lines[start + 4 :]:
        if not line.strip():
            break
        row = {}
        for name, left, right in columns:
            if name in RIGHT:
                row[name] = line[:right].split()[-1]
            else:
                row[name] = "" if line[left] == " " else line[left:].split()[0]
        rows.append(row)
    return rows


def test_once_shows_a_flooded_mailbox_first_with_its_length(running: Node) -> None:
    flood(running, 1500)
    lines = top_once(running)
    assert re.match(r"node t@\S+  up \d+ s  processes \d+  messages/s \d+  alarms \d", lines[0])
    rows = section(lines, "processes by mailbox length")
    assert rows[0]["name"] == "flood" and rows[0]["behaviour"] == "__remote__.hold"
    assert rows[0]["mailbox"] == "1500"
    assert {row["mailbox"] for row in rows[1:]} == {"0"}
    assert {"name": "w1", "behaviour": "Worker", "application": "pool"}.items() <= next(
        row for row in rows if row["name"] == "w1"
    ).items()
    supervisors = section(lines, "supervisors")
    assert [(s["name"], s["behaviour"], s["children"], s["restarts"]) for s in supervisors] == [
        ("", "Pool", "3", "0"),
        ("pool", "DynamicSupervisor", "3", "0"),
    ]


def test_once_shows_restarts_and_the_alarm_of_a_long_mailbox(running: Node) -> None:
    evaluate(
        running,
        "pid = otp.whereis('w1'); ref = otp.monitor(pid); otp.exit(pid, otp.KILL)\n"
        "await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)",
    )
    flood(running, 1001)
    running.wait_for("ALARM raised kind=long_mailbox")
    lines = top_once(running)
    assert re.search(r"alarms 1$", lines[0])
    alarms = section(lines, "alarms")
    flooded = section(lines, "processes by")[0]
    assert (alarms[0]["kind"], alarms[0]["offender"]) == ("long_mailbox", flooded["pid"])
    details = next(line for line in lines if line.lstrip().startswith("long_mailbox"))
    assert "registered_name=flood" in details and "length=1001" in details
    restarts = {s["behaviour"]: s["restarts"] for s in section(lines, "supervisors")}
    assert restarts == {"Pool": "0", "DynamicSupervisor": "1"}  # w1 restarted once


# (default arguments: the session's names are gone once `otp eval` ends, its processes not)
RATE = """
async def sink(otp=otp):
    otp.register('sink', otp.self())
    while True:
        await otp.receive()
async def pump(otp=otp, asyncio=asyncio):
    while True:
        otp.send('sink', 1)
        await asyncio.sleep(0.001)
otp.spawn(sink)
await asyncio.sleep(0)
otp.register('pump', otp.spawn(pump))
"""


def test_once_by_rate_shows_the_busiest_receiver_first(running: Node) -> None:
    evaluate(running, RATE)
    flood(running, 50)
    by_mailbox = section(top_once(running), "processes by mailbox length")
    assert by_mailbox[0]["name"] == "flood"
    by_rate = section(top_once(running, "--sort", "rate"), "processes by message rate")
    first = by_rate[0]
    assert first["name"] == "sink" and first["mailbox"] == "0" and int(first["msg/s"]) > 0
    flooded = next(row for row in by_rate if row["name"] == "flood")
    assert (flooded["mailbox"], flooded["msg/s"]) == ("50", "0")  # none came while measured


# (a default argument: the session's names are gone once `otp eval` ends, its processes not)
SPIN = """
import time
async def spin(otp=otp, asyncio=asyncio, time=time):
    otp.register('spinner', otp.self())
    while True:
        time.sleep(0.005)  # in its callback: the loop runs nothing else meanwhile
        await asyncio.sleep(0)
otp.spawn(spin)
"""


def test_once_by_time_shows_the_process_that_holds_the_loop_first(running: Node) -> None:
    evaluate(running, SPIN)
    flood(running, 50)
    lines = top_once(running, "--sort", "time")
    rows = section(lines, "processes by time in callbacks")
    first = rows[0]
    assert first["name"] == "spinner" and first["behaviour"] == "__remote__.spin"
    share = float(first["time%"])
    assert share > 0
    flooded = next(row for row in rows if row["name"] == "flood")
    assert (flooded["mailbox"], flooded["time%"]) == ("50", "0.0")  # it ran no callback
    by_mailbox = section(top_once(running), "processes by mailbox length")
    assert by_mailbox[0]["name"] == "flood" and "time%" not in by_mailbox[0]


def test_once_limit_caps_the_process_rows(running: Node) -> None:
    flood(running, 3)
    rows = section(top_once(running, "--limit", "2"), "processes by mailbox length")
    assert len(rows) == 2 and rows[0]["name"] == "flood"


def test_top_refuses_bad_options_with_one_line(running: Node) -> None:
    wrong = running.otp("top", "--interval", "0")
    assert wrong.returncode == 1
    assert wrong.stderr == (
        "otp: error: --interval is a number of seconds above 0 (and under 3600); got 0\n"
    )
    many = running.otp("top", "--once", "--limit", "0")
    assert many.returncode == 1
    assert many.stderr == "otp: error: --limit is a number of processes from 1 to 10000; got 0\n"
    bad_sort = running.otp("top", "--sort", "cpu")
    assert bad_sort.returncode == 2 and "invalid choice: 'cpu'" in bad_sort.stderr
    cookie = running.otp("top", "--once", "--cookie", "not-the-cookie")
    assert cookie.stderr == "otp: error: unauthenticated: wrong cookie\n"
    piped = subprocess.run(  # the live view needs a terminal
        [sys.executable, "-m", "otp.cli", "top", "--name", "t", "--run-dir", str(running.run_dir)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.stderr == (
        "otp: error: otp top draws in a terminal; for a pipe or a script use --once\n"
    )


def test_top_without_a_node_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otp.cli", "top", "--once", "--name", "gone", "--run-dir", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"otp: error: no node is running as 'gone': no control socket at {tmp_path}/gone.sock\n"
    )


# -- the live view -------------------------------------------------------------------------


def cells(*texts: str) -> str:
    """A pattern for `texts` as neighbouring cells of a row (with what colours them)."""
    return r"(?:\s|\x1b\[[0-9;]*m)+".join(map(re.escape, texts))


class Top:
    """`otp top` in a pseudo-terminal."""

    def __init__(self, running: Node, *extra: str) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "otp.cli",
                "top",
                "--name",
                running.name,
                "--run-dir",
                str(running.run_dir),
                *extra,
            ],
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 160),
            env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "HOME": str(running.run_dir)},
        )

    def ends(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        status = self.child.exitstatus
        assert status is not None
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def top(running: Node) -> Iterator[Top]:
    flood(running, 1200)
    opened = Top(running, "--interval", "0.2")
    try:
        yield opened
    finally:
        opened.close()


def test_live_view_draws_refreshes_and_quits_on_q(running: Node, top: Top) -> None:
    top.child.expect(cells("flood", "__remote__.hold", "1200"))
    top.child.expect_exact("refreshing every 0.2 s; q quits")
    flood(running, 300)  # the next refresh shows the new length
    top.child.expect(cells("flood", "__remote__.hold", "1500"))
    top.child.expect_exact("long_mailbox")  # the alarm process raised it meanwhile
    top.child.send("q")
    assert top.ends() == 0
    assert evaluate(running, "otp.whereis('flood') is not None") == "True\n"


def test_live_view_quits_on_ctrl_c(running: Node, top: Top) -> None:
    top.child.expect(cells("flood", "__remote__.hold", "1200"))
    top.child.sendintr()
    assert top.ends() == 0


def test_live_view_ends_with_an_error_when_the_node_stops(running: Node, top: Top) -> None:
    top.child.expect(cells("flood", "__remote__.hold", "1200"))
    assert running.otp("stop").returncode == 0
    assert top.ends() == 1
    shown = top.child.before
    assert isinstance(shown, str)
    after = shown.rpartition("\x1b[?1049l")[2]  # after the terminal's own screen is back
    assert re.fullmatch(r"otp: error: [^\r\n]+\r\n", after), after


# -- the node's side -----------------------------------------------------------------------


async def idle() -> None:
    await otp.receive(lambda m: m == "stop")


async def test_top_rates_are_messages_received_since_the_sessions_last_request(
    node: object,
) -> None:
    quiet = otp.spawn_link(idle)
    busy = otp.spawn_link(idle)
    otp.send(quiet, "queued")
    await asyncio.sleep(0)
    first = await _control._top({"sort": "rate", "session": "s1"})
    assert first["interval"] is None and all(row["rate"] is None for row in first["rows"])
    for i in range(40):
        otp.send(busy, i)
    again = await _control._top({"sort": "rate", "session": "s1", "limit": 2})
    rows = {row["pid"]: row for row in again["rows"]}
    assert list(rows) == [repr(busy), repr(quiet)]  # quiet: no messages, but one queued
    assert rows[repr(busy)]["rate"] == pytest.approx(40 / again["interval"])
    assert rows[repr(busy)]["mailbox"] == 40 and rows[repr(quiet)]["rate"] == 0.0
    other = await _control._top({"sort": "rate", "session": "s2"})  # its own baseline
    assert other["interval"] is None
    by_mailbox = await _control._top({"limit": 1})
    assert [row["pid"] for row in by_mailbox["rows"]] == [repr(busy)]
    for pid in (quiet, busy):
        otp.send(pid, "stop")


class Spinner(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        time.sleep(0.01)  # holds the loop on purpose: time in its callback
        return Reply(request, state)


async def test_top_by_time_ranks_processes_by_their_sampled_time_in_callbacks(
    node: object,
) -> None:
    spinner = await Spinner.start_link(None)
    assert spinner is not None
    quiet = otp.spawn_link(idle)
    first = await _control._top({"sort": "time", "session": "t1"})
    assert all(row["time"] is None for row in first["rows"])  # no interval yet
    sampler = _watchdog.sampler(_node.get())  # the one the request started
    assert sampler.running()
    while not sampler.busy.get(spinner.id):  # until a look caught it in its callback
        await GenServer.call(spinner, "spin")
    again = await _control._top({"sort": "time", "session": "t1", "limit": 5})
    rows = {row["pid"]: row for row in again["rows"]}
    assert next(iter(rows)) == repr(spinner)
    share = rows[repr(spinner)]["time"]
    assert 0 < share <= 1
    assert rows[repr(quiet)]["time"] == 0.0
    by_rate = await _control._top({"sort": "rate", "session": "t1"})  # another sort:
    assert all(row["time"] is None for row in by_rate["rows"])  # not sampled
    otp.unlink(spinner)
    await GenServer.stop(spinner)
    otp.send(quiet, "stop")


async def test_a_node_has_one_sampler_until_it_is_stopped(node: object) -> None:
    sampler = _watchdog.sampler(_node.get())
    assert _watchdog.sampler(_node.get()) is sampler  # one per node, kept running
    sampler.stop()
    sampler._thread.join(5.0)
    assert not sampler.running() and _node.get() not in _watchdog._samplers


def test_the_sampler_ends_with_its_node() -> None:
    async def main() -> _watchdog.Sampler:
        return _watchdog.sampler(_node.get())

    sampler = otp.run(main)
    sampler._thread.join(5.0)
    assert not sampler._thread.is_alive() and _watchdog._samplers == {}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"limit": 0}, "limit is a whole number from 1 to 10000; got 0"),
        ({"limit": True}, "limit is a whole number from 1 to 10000; got True"),
        ({"sort": "cpu"}, "sort is one of mailbox, rate, time; got 'cpu'"),
        ({"session": ""}, "session is a token of 1 to 64 characters; got ''"),
    ],
)
async def test_top_refuses_bad_arguments(node: object, args: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        await _control._top(args)
