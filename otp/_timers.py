"""Timers: `send_after` delivers a message later unless `cancel_timer` stops it first."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from . import _node, _registry
from ._mailbox import send
from ._values import Pid
from .errors import NotRegisteredError

__all__ = ["TimerRef", "cancel_timer", "send_after"]


class TimerRef:
    """A pending `send_after`; `cancel_timer(tref)` stops it."""

    __slots__ = ("_dest", "_handle", "_pending")

    def __init__(self, dest: Any) -> None:
        self._dest = dest
        self._handle: asyncio.TimerHandle | None = None
        self._pending = True

    def __repr__(self) -> str:
        state = "pending" if self._pending else "done"
        return f"<TimerRef {state}>"

    def __copy__(self) -> TimerRef:
        return self  # one timer: a copy of a state that holds it holds the same one

    def __deepcopy__(self, memo: dict[int, Any]) -> TimerRef:
        return self

    def drop(self) -> None:
        """It will never fire (cancelled, or its pid ended): let go of its message."""
        self._pending = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def send_after(delay: float, dest: Any, msg: Any) -> TimerRef:
    """Send `msg` to `dest` after `delay` seconds (`math.inf`: never).

    `dest` is resolved when the timer fires: a dead pid or a free name drops the message;
    a timer to a pid that has ended counts as cancelled.

    Args:
        delay: Seconds, >= 0 (`math.inf`: never).
        dest: A Pid, a registered name or `(name, node)`.
        msg: The message.

    Returns:
        The timer, for `cancel_timer`.

    Raises:
        ValueError: `delay` is negative, NaN or not a number.
        TypeError: `dest` is not a destination.
        NoProcessError: No node is running.
    """
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or delay < 0
        or math.isnan(delay)
    ):
        raise ValueError(f"send_after() takes a delay in seconds >= 0, got {delay!r}")
    _registry.check_dest(dest)
    node = _node.get()
    tref = TimerRef(dest)
    if delay != math.inf:
        tref._handle = node.loop.call_later(delay, _fire, tref, dest, msg)
    target = dest._proc if type(dest) is Pid else None
    if target is not None:  # a timer to a pid dies with the process (Erlang)
        if target.timers is None:
            target.timers = set()
        target.timers.add(tref)
    return tref


def _fire(tref: TimerRef, dest: Any, msg: Any) -> None:
    tref._pending = False
    tref._handle = None
    target = dest._proc if type(dest) is Pid else None
    if target is not None and target.timers:
        target.timers.discard(tref)
    with contextlib.suppress(NotRegisteredError):
        send(dest, msg)


def cancel_timer(tref: TimerRef) -> bool:
    """Stop a timer; True when it had not fired yet (its message will not arrive).

    Args:
        tref: The timer `send_after` returned.

    Returns:
        True when the timer was pending; False when it had fired or was cancelled.

    Raises:
        TypeError: `tref` is not a TimerRef.
    """
    if type(tref) is not TimerRef:
        raise TypeError(f"cancel_timer() takes a TimerRef from send_after(), got {tref!r}")
    dest = tref._dest
    if not tref._pending:  # fired, or its process is gone (Erlang: already cancelled)
        return False
    target = dest._proc if type(dest) is Pid else None
    if target is not None and target.timers:
        target.timers.discard(tref)
    tref.drop()
    return True
