"""JSON logs (`otp run --log-format json`): one JSON object per record, with the report's
fields under stable names."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Supervisor
from otp.ops import _logs
from otp.ops._logs import JsonFormatter

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Lines:
    """The JSON lines logged under `otp` while the test runs."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict[str, Any]]:
        text = self.stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]

    def reports(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line.get("report") == kind]


@pytest.fixture
def lines() -> Iterator[Lines]:
    kept = Lines()
    handler = logging.StreamHandler(kept.stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("otp")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield kept
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def check_time(line: dict[str, Any]) -> None:
    stamp = line.pop("time")
    assert ISO_UTC.match(stamp), stamp
    datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def crashes() -> None:
    raise RuntimeError("on purpose")


async def test_a_crash_report_is_one_json_line_with_its_fields(node: Any, lines: Lines) -> None:
    pid, ref = otp.spawn_monitor(crashes)
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    [line] = lines.all()
    check_time(line)
    trace = line.pop("exception")
    assert line == {
        "level": "ERROR",
        "logger": "otp.process",
        "message": f"CRASH REPORT process {pid!r} ({__name__}.crashes) exited with reason "
        "RuntimeError('on purpose')",
        "report": "CrashReport",
        "pid": repr(pid),
        "registered_name": None,
        "initial_call": f"{__name__}.crashes",
        "reason": "RuntimeError('on purpose')",
        "report_exception": "RuntimeError('on purpose')",
        "links": [],
        "message_queue_len": 0,
    }
    # the traceback shows the user's frames only
    assert trace.startswith("Traceback (most recent call last):\n")
    assert trace.endswith("RuntimeError: on purpose")
    files = re.findall(r'File "([^"]+)"', trace)
    assert files == [__file__]


class Crasher(GenServer[None]):
    def init(self, arg: Any) -> None:
        return None

    def handle_cast(self, msg: Any, state: None) -> NoReply[None]:
        raise KeyError(msg)


async def test_a_supervisor_report_names_the_supervisor_and_the_child(
    node: Any, lines: Lines
) -> None:
    sup = await Supervisor.start_link([Crasher.child_spec(None, name="crasher")], name="sup")
    assert sup is not None
    child = otp.whereis("crasher")
    assert child is not None
    ref = otp.monitor(child)
    GenServer.cast("crasher", "b")
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    await Supervisor.which_children(sup)  # the supervisor has handled the child's exit
    [line] = lines.reports("SupervisorReport")
    check_time(line)
    assert line == {
        "level": "ERROR",
        "logger": "otp.supervisor",
        "message": "SUPERVISOR REPORT supervisor=sup context=child_terminated "
        "reason=KeyError('b') offender=Crasher",
        "report": "SupervisorReport",
        "supervisor": "sup",
        "context": "child_terminated",
        "reason": "KeyError('b')",
        "offender": f"{__name__}.Crasher",
    }
    [server] = lines.reports("ServerReport")
    assert server["pid"] == repr(child) and server["name"] == "crasher"
    assert server["behaviour"] == f"{__name__}.Crasher"
    assert server["reason"] == "KeyError('b')" and server["client"] is None
    assert server["exception"].endswith("KeyError: 'b'")
    otp.unlink(sup)
    await GenServer.stop(sup)


async def test_application_reports_are_json_lines(node: Any, lines: Lines) -> None:
    app = otp.Application(
        name="json_app",
        start=Supervisor.start_link,
        start_args=[],
        vsn="1.0",
        description="an app for the JSON logs",
    )
    otp.application.load(app)
    await otp.application.start("json_app")
    await otp.application.stop("json_app")
    reports = lines.reports("ApplicationReport")
    for line in reports:
        check_time(line)
    assert reports == [
        {
            "level": "INFO",
            "logger": "otp.application",
            "message": "application json_app started (type temporary)",
            "report": "ApplicationReport",
            "application": "json_app",
            "context": "started",
            "type": "temporary",
            "reason": None,
        },
        {
            "level": "INFO",
            "logger": "otp.application",
            "message": "application json_app stopped (type temporary)",
            "report": "ApplicationReport",
            "application": "json_app",
            "context": "stopped",
            "type": "temporary",
            "reason": None,
        },
    ]


def test_a_plain_record_has_the_envelope_only() -> None:
    record = logging.LogRecord("app", logging.WARNING, "", 0, "disk %s\nfull", ("sda",), None)
    record.created = 0.25
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "1970-01-01T00:00:00.250Z",
        "level": "WARNING",
        "logger": "app",
        "message": "disk sda\nfull",
    }


def test_a_string_that_is_not_utf_8_is_escaped_not_lost() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    record = logging.LogRecord("app", logging.ERROR, "", 0, "cannot open %s", (name,), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "cannot open caf\\udce9"


def test_values_that_are_not_json_are_text() -> None:
    pid = otp.Pid("n@h", 7)

    class Atom(str):
        pass

    assert type(_logs.json_value(Atom("ok"))) is str
    assert _logs.json_value((pid, pid)) == [repr(pid), repr(pid)]
    assert _logs.json_value(("shutdown", 1)) == "('shutdown', 1)"
    assert _logs.json_value({"a": 1}) == "{'a': 1}"
    assert _logs.json_value(2**70) == repr(2**70)
    assert _logs.json_value(Crasher) == f"{__name__}.Crasher"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_configure_logs_to_the_stream_in_the_format(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    stream = io.StringIO()
    _logs.configure(fmt, stream, "INFO")
    logging.getLogger("otp.node").info("node %s started", "a")
    logging.getLogger("otp.node").debug("not shown")
    text = stream.getvalue()
    if fmt == "json":
        [line] = [json.loads(t) for t in text.splitlines()]
        assert (line["level"], line["logger"], line["message"]) == (
            "INFO",
            "otp.node",
            "node a started",
        )
    else:
        assert text.endswith(" INFO otp.node: node a started\n")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'text' or 'json'\nGot: 'yaml'"):
        _logs.configure("yaml")
