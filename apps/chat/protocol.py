"""The chat protocol: one UTF-8 line per command, one line per reply.

    NICK name        -> OK NICK
    JOIN room        -> OK JOIN room        (the other members get JOINED room nick)
    LEAVE room       -> OK LEAVE room       (the other members get LEFT room nick)
    SAY room text    -> MSG room nick text  (to every member, the sender included)
    WHO room         -> WHO room nick1,nick2,...     (from release 2.0.0)
    QUIT             -> the connection closes
    anything wrong   -> ERR reason

Pushed by the server: `JOINED`, `LEFT`, `MSG`, and `REJOINED room` when a room restarted
after a crash and took its members back. `parse(line)` turns one received line (without
its line end) into a command tuple or an `Error`; it never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_LINE",
    "Command",
    "Error",
    "Join",
    "Leave",
    "Nick",
    "Quit",
    "Say",
    "Who",
    "err",
    "parse",
]

MAX_LINE: Final = 1024  # bytes of one command, its line end not counted

_NICK: Final = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_ROOM: Final = re.compile(r"[A-Za-z0-9_\-#.]{1,64}")


@dataclass(frozen=True, slots=True)
class Nick:
    name: str


@dataclass(frozen=True, slots=True)
class Join:
    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    room: str


@dataclass(frozen=True, slots=True)
class Say:
    room: str
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    room: str


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Error:
    """A line that is not a valid command; `reason` goes after `ERR `."""

    reason: str


Command = Nick | Join | Leave | Say | Who | Quit


def err(reason: str) -> bytes:
    """The `ERR reason` line."""
    return f"ERR {reason}\n".encode()


def parse(line: bytes) -> Command | Error:
    """One command line (without `\\n`; a trailing `\\r` is dropped) -> a command or an Error."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE:
        return Error("line too long")
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return Error("invalid utf-8")
    if not text.strip():
        return Error("empty line")
    verb, _, rest = text.partition(" ")
    match verb.upper():
        case "NICK":
            return Nick(rest) if _NICK.fullmatch(rest) else Error("bad nick")
        case "JOIN":
            return Join(rest) if _ROOM.fullmatch(rest) else Error("bad room")
        case "LEAVE":
            return Leave(rest) if _ROOM.fullmatch(rest) else Error("bad room")
        case "WHO":
            return Who(rest) if _ROOM.fullmatch(rest) else Error("bad room")
        case "SAY":
            room, space, said = rest.partition(" ")
            if not _ROOM.fullmatch(room):
                return Error("bad room")
            if not space or not said or not said.isprintable():
                return Error("bad text")
            return Say(room, said)
        case "QUIT":
            return Quit() if not rest else Error("QUIT takes nothing")
    return Error("unknown command")
