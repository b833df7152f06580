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


def send_after(delay: float, dest: Any, msg: Any) -> TimerRef:
    """Send `msg` to `dest` after `delay` seconds (`math.inf`: never).

    `dest` is resolved when the timer fires: a dead pid or a free name drops the message;
    a timer to a pid that has ended counts as cancelled.
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
    return tref


def _fire(tref: TimerRef, dest: Any, msg: Any) -> None:
    tref._pending = False
    tref._handle = None
    with contextlib.suppress(NotRegisteredError):
        send(dest, msg)


def cancel_timer(tref: TimerRef) -> bool:
    """Stop a timer; True when it had not fired yet (its message will not arrive)."""
    if type(tref) is not TimerRef:
        raise TypeError(f"cancel_timer() takes a TimerRef from send_after(), got {tref!r}")
    dest = tref._dest
    if not tref._pending or (type(dest) is Pid and dest._proc is None):
        # fired, or its process is gone: as in Erlang, such a timer counts as cancelled
        return False
    tref._pending = False
    if tref._handle is not None:
        tref._handle.cancel()
        tref._handle = None
    return True
