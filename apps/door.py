"""A door lock as a GenStatem: `python -m apps.door` runs it through a few visitors.

The door is `locked` until the right code is entered; then it is `open` for a few seconds
(a state timeout) and locks itself again. Buttons pressed while it is open wait (postponed)
until it is locked again; three wrong codes in a row block it for a while.
"""

from __future__ import annotations

from typing import Any

import otp
from behaviours import GenStatem, Supervisor
from behaviours.gen_statem import KeepState, NextState, Postpone, ReplyTo, StateTimeout


class Door(GenStatem):
    state_enter = True
    open_for = 0.05  # seconds the door stays open (short, for the demo)
    blocked_for = 0.1  # seconds it stays blocked after three wrong codes

    def init(self, code: str) -> Any:
        return "locked", {"code": code, "wrong": 0, "opened": 0}

    def locked(self, event_type: Any, content: Any, data: dict[str, Any]) -> Any:
        match event_type, content:
            case "enter", _:
                return KeepState({**data, "wrong": 0} if data["wrong"] < 3 else data)
            case ("call", from_), ("enter_code", code) if code == data["code"]:
                opened = {**data, "wrong": 0, "opened": data["opened"] + 1}
                return NextState("open", opened, [ReplyTo(from_, "open")])
            case ("call", from_), ("enter_code", _) if data["wrong"] >= 2:
                return NextState("blocked", {**data, "wrong": 3}, [ReplyTo(from_, "blocked")])
            case ("call", from_), ("enter_code", _):
                return KeepState({**data, "wrong": data["wrong"] + 1}, [ReplyTo(from_, "wrong")])
            case ("call", from_), "state":
                return KeepState(data, [ReplyTo(from_, "locked")])
        return KeepState()

    def open(self, event_type: Any, content: Any, data: dict[str, Any]) -> Any:
        match event_type, content:
            case "enter", _:
                return KeepState(data, [StateTimeout(self.open_for, "lock")])
            case "state_timeout", "lock":
                return NextState("locked", data)
            case ("call", from_), "state":
                return KeepState(data, [ReplyTo(from_, "open")])
            case ("call", _), _:
                return KeepState(data, [Postpone()])  # a button pressed while open waits
        return KeepState()

    def blocked(self, event_type: Any, content: Any, data: dict[str, Any]) -> Any:
        match event_type, content:
            case "enter", _:
                return KeepState(data, [StateTimeout(self.blocked_for, "unblock")])
            case "state_timeout", "unblock":
                return NextState("locked", {**data, "wrong": 0})
            case ("call", from_), _:
                return KeepState(data, [ReplyTo(from_, "blocked")])
        return KeepState()


async def main() -> list[tuple[str, Any]]:
    """Start the door under a supervisor and let visitors try it; what each one got."""
    await Supervisor.start_link([Door.child_spec("1234", name="door")])
    seen = []
    for visitor, request in [
        ("ann", ("enter_code", "0000")),
        ("ann", ("enter_code", "1234")),
        ("bob", "state"),
        ("bob", ("enter_code", "1234")),  # waits while the door is open, then opens it
        ("eve", ("enter_code", "1")),
        ("eve", ("enter_code", "2")),
        ("eve", ("enter_code", "3")),
        ("eve", ("enter_code", "1234")),
    ]:
        answer = await GenStatem.call("door", request)
        seen.append((visitor, answer))
        print(f"{visitor:>4}: {request!r:>24} -> {answer}")
    return seen


if __name__ == "__main__":
    otp.run(main)
