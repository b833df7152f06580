"""Mailboxes: `send` appends, `receive` takes the first message its `match` accepts.

A waiting receiver leaves its predicate on the process. `deliver` tests each new message
against it once, in the sender, and hands a match straight to the waiter's future; anything
else is queued. So a send is O(1), wakes the receiver only for a message it will take, and
a waiting receive never looks at a message it already rejected. A process may bound its
mailbox: a full one drops or exits by its policy (see `_overload`).
"""

from __future__ import annotations

from asyncio import AbstractEventLoop, CancelledError, Future, InvalidStateError
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from . import _node, _overload, _registry
from ._process import DirectCalls, Process, running_task
from ._values import Pid
from .errors import NoProcessError

__all__ = ["EXPIRED", "arm", "deliver", "receive", "resume_wait", "send", "waiter"]


class _Signal:
    """A value put in a waiter future instead of a message."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


EXPIRED: Final = _Signal("receive timeout")
_RESCAN: Final = _Signal("predicate raised in sender")


def send(dest: Any, msg: Any) -> None:
    """Send `msg` to a Pid, a registered name or `(name, node)`; never blocks.

    Args:
        dest: A Pid, a registered name, `(name, node)` or a via name.
        msg: Any value.

    Raises:
        NotRegisteredError: `dest` is a local name nobody holds (a dead pid drops the message).
        TypeError: `dest` is not a destination.
        NoProcessError: `dest` is a name and no node is running.
    """
    # A dead pid, or one of another node (no connection: dropped), has no process.
    proc = dest._proc if type(dest) is Pid else _registry.resolve(dest)
    if proc is None:
        node = _node.current
        if node is not None and node.dist is not None:  # a process of another node
            node.dist.send(dest, msg)
        return
    mbox = proc.mbox
    if mbox is not None and proc.waiter is None and len(mbox) < proc.limit:  # the common case
        proc.msg_count += 1
        mbox.append(msg)
    else:
        deliver(proc, msg)


def deliver(proc: Process, msg: Any) -> None:
    """Put `msg` in `proc`'s mailbox, or hand it to its waiting receive if that takes it.

    Args:
        proc: The receiver's process record (a full bounded mailbox applies its policy).
        msg: Any value.
    """
    proc.msg_count += 1
    waiter = proc.waiter
    if waiter is not None:
        match = proc.matcher
        if match is None:
            proc.waiter = None
            try:
                waiter.set_result(msg)
            except InvalidStateError:  # its awaiter cancelled it (3.11's asyncio.wait_for)
                pass
            else:
                proc.handed = waiter
                return
        else:
            try:
                taken = match(msg)
            except Exception:
                # Let the receiver run its predicate on this message again, and raise there.
                proc.waiter = None
                waiter.set_result(_RESCAN)
            else:
                if taken:
                    proc.waiter = None
                    proc.handed = waiter
                    proc.mark = len(proc.mbox or ())  # where it would have been queued
                    waiter.set_result(msg)
                    return
    mbox = proc.mbox
    if mbox is None:
        proc.mbox = deque((msg,))
    elif len(mbox) < proc.limit:
        mbox.append(msg)
    else:
        _overload.overflow(proc, msg)


def receive(
    match: Callable[[Any], object] | None = None,
    timeout: float | None = None,
    *,
    _after: int = 0,
) -> Awaitable[Any]:
    """The next message, or the first one `match(msg)` accepts (the others stay, in order).
    `match` may run in the sender's process when the message arrives: keep it a pure
    function of the message.

    `_after` is for the runtime: the number of queued messages it knows `match` rejects
    (those queued before a call's request went out), so a long mailbox does not slow a call
    down.

    Not an `async def`: without `match` and `timeout` it returns the future the next message
    is handed to (or a message already queued), so a process blocked in it is one coroutine
    frame shallower; await what it returns, once.

    Args:
        match: A predicate on a message (default None: take the first message).
        timeout: Seconds to wait (default None: forever; 0 only looks at the queue).

    Returns:
        An awaitable of the message taken out of the mailbox.

    Raises:
        TimeoutError: Nothing acceptable arrived within `timeout`.
        NoProcessError: Not called from a process.
        RuntimeError: The process waits in another receive already.
    """
    if match is None and timeout is None:
        node = _node.current
        proc = None if node is None else running_task(node.loop)
        if type(proc) is Process and not proc.exiting:
            mbox = proc.mbox
            if mbox:
                return _taken(mbox.popleft())
            # The future `deliver` hands the next message to, awaited without a coroutine of
            # receive's own: a process blocked here is one frame shallower.
            return waiter(proc, proc.get_loop())
    return _receive(match, timeout, _after)


async def _taken(msg: Any) -> Any:
    """A message receive() took from the queue, as the awaitable receive returns."""
    return msg


async def _receive(
    match: Callable[[Any], object] | None, timeout: float | None, _after: int
) -> Any:
    """`receive` when it may find its message queued, select or time out."""
    node = _node.current
    proc: Process = None if node is None else running_task(node.loop)  # type: ignore[assignment]
    try:
        exiting = proc.exiting  # only a Process has it: None or a plain task raise here
    except AttributeError:
        raise NoProcessError(
            "receive() called outside a process: spawn one to receive messages"
        ) from None
    if exiting:  # an exit signal is pending: do not let the process go on
        raise CancelledError
    mbox = proc.mbox
    if mbox:
        if match is None:
            return mbox.popleft()
        if _after:  # index from the end: the skipped messages are not walked
            for i in range(_after, len(mbox)):
                msg = mbox[i]
                if match(msg):
                    del mbox[i]
                    return msg
        else:
            for i, msg in enumerate(mbox):
                if match(msg):
                    del mbox[i]
                    return msg
    if timeout is not None and timeout <= 0:
        raise TimeoutError("receive timed out: no matching message")
    loop = node.loop  # type: ignore[union-attr]  # a process implies a node
    mark = len(mbox) if mbox else 0
    if timeout is not None:
        arm(proc, loop, loop.time() + timeout)
    try:
        while True:
            fut = waiter(proc, loop, match, mark)
            try:
                msg = await fut
            except CancelledError:  # (a message handed to `fut` is put back: Process.cancel)
                if proc.waiter is fut:
                    proc.waiter = None
                raise
            if msg is not EXPIRED and msg is not _RESCAN:
                return msg
            # A timer expired or the predicate raised in a sender: look here at what came
            # since the wait began. A message already queued beats the timeout, and a raising
            # predicate raises in the receiver. (`proc.mark`: a full mailbox dropping its
            # oldest message moves it.)
            mbox = proc.mbox
            if mbox:
                for i in range(proc.mark, len(mbox)):
                    queued = mbox[i]
                    if match is None or match(queued):
                        del mbox[i]
                        return queued
            if msg is EXPIRED:
                raise TimeoutError(f"receive timed out after {timeout} s: no matching message")
            mark = len(mbox) if mbox else 0
    finally:
        proc.deadline = None


def waiter(
    proc: Process,
    loop: AbstractEventLoop,
    match: Callable[[Any], object] | None = None,
    mark: int = 0,
    direct: DirectCalls | None = None,
) -> Future[Any]:
    """The future `deliver` hands `proc`'s next message to (the first one `match` takes,
    `mark`: how many queued messages it rejected): `receive` without its coroutine, for the
    loops that await it directly (a call, a behaviour's loop with nothing queued). The wait
    ends with `EXPIRED` at an `arm`ed deadline; a process with an exit signal pending stops.
    `direct`: the behaviour's idle loop, which a call may run directly while this waits
    (see `_call.call`).

    Raises:
        CancelledError: An exit signal is pending.
    """
    if proc.exiting:
        raise CancelledError
    if proc.waiter is not None and not proc.waiter.done():
        raise RuntimeError(
            f"process {proc.pid} is already waiting for a message: a process receives one "
            "at a time (do not gather or wrap concurrent receives in tasks)"
        )
    fut = loop.create_future()
    proc.waiter = fut
    proc.handed = None
    proc.matcher = match
    proc.mark = mark
    proc.direct = direct
    return fut


def resume_wait(proc: Process, fut: Future[Any]) -> None:
    """Give `proc` back its waiter `fut` (taken from it while a call ran directly, see
    `_call.call`): hand it what was queued meanwhile, or let it wait again."""
    mbox = proc.mbox
    if mbox:
        proc.handed = fut
        fut.set_result(mbox.popleft())
    else:
        proc.waiter = fut


def arm(proc: Process, loop: AbstractEventLoop, deadline: float) -> None:
    """Make the waiting receive of `proc` time out at `deadline` (loop time).

    A timer costs microseconds to make and cancel (uvloop: ~3 us), more than a whole call;
    so a process keeps the one it has: a receive only moves `deadline`, and a timer that
    fires early (its receive ended, a later one waits longer) is set again for the deadline
    then current. A new timer is made only when none would fire by `deadline`.
    """
    proc.deadline = deadline
    wake = proc.wake
    if wake is None or wake[1] > deadline:
        if wake is not None:
            wake[0].cancel()
        proc.wake = (loop.call_at(deadline, _expire, proc, loop), deadline)


def _expire(proc: Process, loop: AbstractEventLoop) -> None:
    proc.wake = None
    deadline = proc.deadline
    if deadline is None:  # no receive with a timeout waits
        return
    waiter = proc.waiter
    if waiter is None or loop.time() < deadline:
        # A receive that waits longer than the one this timer was for, or one handed a
        # message (or told to look again) that has not run yet: check again then.
        proc.wake = (loop.call_at(deadline, _expire, proc, loop), deadline)
        return
    proc.waiter = None
    waiter.set_result(EXPIRED)
