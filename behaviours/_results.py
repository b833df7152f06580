"""What callbacks return: `Init`, `Reply`, `NoReply`, `Stop`, and the error for anything else.

A result is built on every message, so these are slotted classes with a plain `__init__`
(a third cheaper than a NamedTuple on CPython 3.11). They are read-only: the fields are
properties over private slots, and results compare by value and match by position or
keyword (`case Reply(reply=r):`). The runtime checks them by exact type, so a plain tuple
is never mistaken for one, and reads the private slots directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, TypeVar

from otp import TIMEOUT, OTPError

__all__ = [
    "NO_CONTINUE",
    "NO_REPLY",
    "NO_STATE",
    "BadReturn",
    "Init",
    "NoReply",
    "Reply",
    "Stop",
    "Timeout",
]

S = TypeVar("S")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_CONTINUE: Final[Any] = _Marker("<no continue>")
NO_REPLY: Final[Any] = _Marker("<no reply>")
NO_STATE: Final[Any] = _Marker("<the current state>")


class _Result:
    """Value semantics for the result classes, from their `__match_args__`."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]]

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        shown = [repr(self._fields()[0])]
        for name, value in zip(self.__match_args__[1:], self._fields()[1:], strict=True):
            if value is not _DEFAULTS.get(name):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


_DEFAULTS: Final[dict[str, Any]] = {
    "actions": (),
    "data": NO_STATE,
    "timeout": None,
    "continue_": NO_CONTINUE,
    "hibernate": False,
    "reply": NO_REPLY,
    "state": NO_STATE,
}


@dataclass(frozen=True, slots=True)
class Timeout:
    """A timeout that delivers `message` to `handle_info` (OTP's `{timeout, T, Msg}`):
    after `seconds` without a message, or at once, before what is queued, when 0.

    Args:
        seconds: Seconds of quiet (0: at once).
        message: What `handle_info` receives (default `otp.TIMEOUT`).
    """

    seconds: float
    message: Any = TIMEOUT


class _GoOn(_Result, Generic[S]):
    """What Init, Reply and NoReply share: the state and what happens next."""

    __slots__ = ("_continue", "_hibernate", "_state", "_timeout")
    _state: S
    _timeout: float | Timeout | None
    _continue: Any
    _hibernate: bool

    @property
    def state(self) -> S:
        return self._state

    @property
    def timeout(self) -> float | Timeout | None:
        return self._timeout

    @property
    def continue_(self) -> Any:
        return self._continue

    @property
    def hibernate(self) -> bool:
        return self._hibernate


class Init(_GoOn[S]):
    """`init`'s result when it needs more than the state: an idle timeout, or a continue.

    Args:
        state: The initial state.
        timeout: Seconds of quiet before `handle_info(otp.TIMEOUT)`, or a `Timeout`
            (default None: none).
        continue_: A term for `handle_continue`, run before the first message (default: none).
    """

    __slots__ = ()
    __match_args__ = ("state", "timeout", "continue_")

    def __init__(
        self, state: S, timeout: float | Timeout | None = None, continue_: Any = NO_CONTINUE
    ) -> None:
        self._state = state
        self._timeout = timeout
        self._continue = continue_
        self._hibernate = False


class Reply(_GoOn[S]):
    """Answer the call with `reply` and go on with `state`.

    `timeout`: seconds of quiet after which `handle_info(otp.TIMEOUT, state)` runs (or a
    `Timeout(seconds, message)` to get `message` instead);
    `continue_`: `handle_continue(continue_, state)` runs before the next message;
    `hibernate` is accepted and has no effect.

    Args:
        reply: The caller's answer.
        state: The new state.
        timeout: Seconds of quiet, or a `Timeout` (default None: none).
        continue_: A term for `handle_continue` (default: none).
        hibernate: Accepted, no effect (default False).
    """

    __slots__ = ("_reply",)
    __match_args__ = ("reply", "state", "timeout", "continue_", "hibernate")

    def __init__(
        self,
        reply: Any,
        state: S,
        timeout: float | Timeout | None = None,
        continue_: Any = NO_CONTINUE,
        hibernate: bool = False,
    ) -> None:
        self._reply = reply
        self._state = state
        self._timeout = timeout
        self._continue = continue_
        self._hibernate = hibernate

    @property
    def reply(self) -> Any:
        """The caller's answer."""
        return self._reply


class NoReply(_GoOn[S]):
    """Go on with `state` (a call is answered later with `GenServer.reply`, or never).

    Args:
        state: The new state.
        timeout: Seconds of quiet, or a `Timeout` (default None: none).
        continue_: A term for `handle_continue` (default: none).
        hibernate: Accepted, no effect (default False).
    """

    __slots__ = ()
    __match_args__ = ("state", "timeout", "continue_", "hibernate")

    def __init__(
        self,
        state: S,
        timeout: float | Timeout | None = None,
        continue_: Any = NO_CONTINUE,
        hibernate: bool = False,
    ) -> None:
        self._state = state
        self._timeout = timeout
        self._continue = continue_
        self._hibernate = hibernate


class Stop(_Result, Generic[S]):
    """Stop with `reason` after `terminate(reason, state)` (without `state`: the current
    one); if `reply` is given, the call is answered once terminate has run.

    Args:
        reason: The exit reason.
        state: The state `terminate` gets (default: the current one).
        reply: The caller's answer, from `handle_call` (default: none).
    """

    __slots__ = ("_reason", "_reply", "_state")
    __match_args__ = ("reason", "state", "reply")

    def __init__(self, reason: Any, state: S | None = NO_STATE, reply: Any = NO_REPLY) -> None:
        self._reason = reason
        self._state = state
        self._reply = reply

    @property
    def reason(self) -> Any:
        """The exit reason."""
        return self._reason

    @property
    def state(self) -> S | None:
        """The state `terminate` gets (a marker for the current one)."""
        return self._state

    @property
    def reply(self) -> Any:
        """The caller's answer (a marker when there is none)."""
        return self._reply


class BadReturn(OTPError):
    """A callback returned something that is not one of its results: `.callback`, `.value`.

    Args:
        callback: The callback, as `Class.method`.
        value: What it returned.
        expected: The results it may return, for the message.
    """

    def __init__(self, callback: str, value: Any, expected: str) -> None:
        self.callback = callback
        self.value = value
        super().__init__(f"{callback} returned {value!r}; expected {expected}")
