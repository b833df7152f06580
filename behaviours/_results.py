"""What callbacks return: `Init`, `Reply`, `NoReply`, `Stop`, and the error for anything else.

Results are frozen named tuples: cheap to build on every message, immutable, and
matchable (`case Reply(reply=r):`). The runtime checks them by exact type, so a plain tuple
is never mistaken for one.
"""

from __future__ import annotations

from typing import Any, Final, Generic, NamedTuple, TypeVar

from otp import OTPError

__all__ = ["NO_CONTINUE", "NO_REPLY", "BadReturn", "Init", "NoReply", "Reply", "Stop"]

S = TypeVar("S")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_CONTINUE: Final[Any] = _Marker("<no continue>")
NO_REPLY: Final[Any] = _Marker("<no reply>")


class Init(NamedTuple, Generic[S]):
    """`init`'s result when it needs more than the state: an idle timeout, or a continue."""

    state: S
    timeout: float | None = None
    continue_: Any = NO_CONTINUE


class Reply(NamedTuple, Generic[S]):
    """Answer the call with `reply` and go on with `state`.

    `timeout`: seconds of quiet after which `handle_info(otp.TIMEOUT, state)` runs;
    `continue_`: `handle_continue(continue_, state)` runs before the next message.
    """

    reply: Any
    state: S
    timeout: float | None = None
    continue_: Any = NO_CONTINUE
    hibernate: bool = False


class NoReply(NamedTuple, Generic[S]):
    """Go on with `state` (a call is answered later with `GenServer.reply`, or never)."""

    state: S
    timeout: float | None = None
    continue_: Any = NO_CONTINUE
    hibernate: bool = False


class Stop(NamedTuple, Generic[S]):
    """Stop with `reason` after `terminate(reason, state)`; answer the call first if `reply`
    is given."""

    reason: Any
    state: S | None = None
    reply: Any = NO_REPLY


class BadReturn(OTPError):
    """A callback returned something that is not one of its results: `.callback`, `.value`."""

    def __init__(self, callback: str, value: Any, expected: str) -> None:
        self.callback = callback
        self.value = value
        super().__init__(f"{callback} returned {value!r}; expected {expected}")
