"""Log output for `otp run`: readable text (the default) or one JSON object per line.

`otp run --log-format json` calls `configure("json", sys.stderr, level)`; used as a library
the framework adds no handlers, and an application that logs its own way can put
`JsonFormatter` on any handler of its own.

Every record becomes one line. The fields of every line:

- `time`: when it was logged, ISO 8601 in UTC (`2026-12-06T09:30:00.123Z`);
- `level`: `INFO`, `WARNING`, `ERROR`, ...;
- `logger`: `otp.gen_server`, `otp.supervisor`, `otp.alarm`, ...;
- `message`: the text line the text format shows;
- `exception`: the traceback, when the record has one (a report's shows the user's frames
  only, unless `OTP_DEBUG=1` or the logger is at DEBUG).

A report record (one that carries `otp_report`) adds `report`, the report's class name
(`CrashReport`, `ServerReport`, `SupervisorReport`, `ApplicationReport`, `CodeReport`,
`ReleaseReport`, `AlarmReport`, `LoopBlocked`, ...), and each field of the report under its
own name; a field named like one of the fields above is prefixed with `report_`
(`UnexpectedMessage.message` is `report_message`). A field's value is kept when it is a
JSON string, number, boolean or null; a pid or ref is its text (`"<0.42.0>"`); a class is
`module.QualName`; a tuple or list of pids is a list of their texts (`links`); anything
else (a reason, a state, a message, an exception) is its `repr`, so a field has one JSON
type whatever happened. A report class may give its own JSON fields with a method
`json_fields()`: `AlarmReport` does (`offender` as text, `details` as an object).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from typing import Any, Final, TextIO

import msgspec

from .._values import Pid, Ref

__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure", "json_value", "report_fields"]

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ENVELOPE: Final = frozenset({"time", "level", "logger", "message", "report", "exception"})
_encoder: Final = msgspec.json.Encoder()


def configure(format: str, stream: TextIO | None = None, level: int | str = logging.INFO) -> None:
    """Log every record at `level` and above to `stream` (default: stderr) as `format`:
    `"text"` or `"json"`. Like `logging.basicConfig`, it does nothing when the root logger
    has handlers already (the program configured logging itself)."""
    if format not in FORMATS:
        raise ValueError(f"the log format is 'text' or 'json'\nGot: {format!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module's doc for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object: time, level, logger, message, and a report's own fields.

        Args:
            record: The log record (its `otp_report`, if any, adds the report's fields).

        Returns:
            The line, without a newline.
        """
        line: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        report = getattr(record, "otp_report", None)
        if report is not None:
            line["report"] = type(report).__name__
            line.update(report_fields(report))
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return _encoder.encode(line).decode()
        except UnicodeEncodeError:  # a lone surrogate (a path decoded with surrogateescape)
            return _encoder.encode(_escape_surrogates(line)).decode()


def report_fields(report: Any) -> dict[str, Any]:
    """The fields of a report (a dataclass) as JSON values under their JSON keys."""
    custom = getattr(report, "json_fields", None)
    if custom is not None:
        fields: dict[str, Any] = custom()
        return fields
    if not dataclasses.is_dataclass(report):
        return {"report_value": json_value(report)}
    fields = {}
    for field in dataclasses.fields(report):
        key = f"report_{field.name}" if field.name in _ENVELOPE else field.name
        fields[key] = json_value(getattr(report, field.name))
    return fields


def json_value(value: Any) -> Any:
    """`value` as the JSON logs show it (see the module's doc)."""
    kind = type(value)
    if value is None or kind is bool or kind is float or kind is str:
        return value
    if kind is int:
        return value if -(2**63) <= value < 2**64 else repr(value)
    if kind is Pid or kind is Ref:
        return repr(value)
    if isinstance(value, str):  # otp.Atom and other str subclasses: the text
        return str(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if (kind is tuple or kind is list) and all(type(item) is Pid for item in value):
        return [repr(item) for item in value]
    return repr(value)


def _escape_surrogates(value: Any) -> Any:
    if type(value) is str:
        return value.encode("utf-8", "backslashreplace").decode()
    if type(value) is dict:
        return {key: _escape_surrogates(item) for key, item in value.items()}
    if type(value) is list:
        return [_escape_surrogates(item) for item in value]
    return value


def _iso_utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
