"""The process record: one asyncio task per process.

A `Process` *is* its task (a slotted `asyncio.Task` subclass), so a process costs one object
plus its coroutine frames, and `asyncio.current_task()` finds the calling process directly.
The mailbox is a deque created on the first queued message plus a single waiter future
(see `_mailbox`), bounded only when asked (see `_overload`). Exit signals cancel the task
with the reason recorded on the process (see `_signals`); `_spawn` creates processes.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable
from contextvars import Context
from typing import Any, Final, Protocol

from . import _node
from ._values import Pid, Ref
from .errors import NoProcessError

__all__ = ["DirectCalls", "Process", "current", "running_task", "self", "swap_running_task"]

running_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
if sys.version_info >= (3, 12):
    running_task = asyncio.current_task  # implemented in C from 3.12
else:
    # 3.11's asyncio.current_task is Python and looks the loop up first (~270 ns); the
    # table it reads is a plain dict keyed by loop (~30 ns).
    running_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]


swap_running_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any] | None], Any]
if sys.version_info >= (3, 12):
    swap_running_task = asyncio.tasks._swap_current_task  # type: ignore[attr-defined]
else:
    _current_tasks: Final[dict[Any, Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]

    def swap_running_task(
        loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None
    ) -> asyncio.Task[Any] | None:
        """Make `task` the one `loop` runs (as asyncio's own eager start does); the one it
        ran before."""
        previous = _current_tasks.get(loop)
        _current_tasks[loop] = task
        return previous


class DirectCalls(Protocol):
    """A behaviour's loop that waits idle can take a call in the caller's turn (see
    `_call.call`)."""

    def call_directly(self, request: Any, from_: tuple[Pid, Any]) -> Any:
        """Run the call's callback as the server would; its reply, or a `Handoff` for the
        server's loop to finish the call in its own turn."""
        ...


_task_cancel: Final = asyncio.Task.cancel  # (called without super(): faster, on every kill)


class Process(asyncio.Task[None]):
    """The runtime's record of one process, and the task that runs it. Internal."""

    __slots__ = (
        "app",
        "behaviour",
        "context",
        "deadline",
        "direct",
        "dropped",
        "dropped_reported",
        "entry",
        "exit_reason",
        "exiting",
        "finished",
        "handed",
        "limit",
        "links",
        "mark",
        "matcher",
        "mbox",
        "monitors",
        "msg_count",
        "overflow_reported",
        "overload",
        "own_exc",
        "parent",
        "pid",
        "regname",
        "reported",
        "retval",
        "started",
        "timers",
        "trap",
        "waiter",
        "wake",
        "watchers",
    )

    pid: Pid
    mbox: deque[Any] | None
    waiter: asyncio.Future[Any] | None
    handed: asyncio.Future[Any] | None  # the last waiter a message was handed to
    matcher: Callable[[Any], object] | None
    mark: int
    deadline: float | None  # loop time the waiting receive times out at (None: never)
    context: Context  # the contextvars its task runs in (a call run directly runs there too)
    direct: DirectCalls | None  # its idle loop, while it waits for a call it can take directly
    wake: tuple[asyncio.Handle, float] | None  # the timer that checks `deadline`, its time
    links: set[Pid] | None
    monitors: dict[Ref | int, Pid] | None  # monitors this process holds: ref -> target
    # (an int: the monitor of a call, see _call.call)
    watchers: dict[Ref | int, Pid] | None  # monitors on this process: ref -> watcher
    trap: bool
    regname: str | None
    started: bool
    timers: set[Any] | None  # its pending send_after timers, cancelled when it ends
    exiting: bool
    exit_reason: Any
    finished: bool
    msg_count: int
    limit: int  # the most messages the mailbox queues (see _overload)
    overload: str  # what a full mailbox does: set with the limit
    dropped: int  # messages a full mailbox dropped
    dropped_reported: int
    overflow_reported: float  # loop time of the last overflow report
    parent: Pid
    entry: Callable[..., Any]
    behaviour: type | None
    app: str | None
    retval: Any
    own_exc: BaseException | None
    reported: bool  # its behaviour logged the crash it ends with (see reports.reported)

    def cancel(self, msg: Any | None = None) -> bool:
        # A cancelled task's waiter future is cancelled with it: no send may complete it.
        self.waiter = None
        handed = self.handed
        if handed is not None and handed is self._fut_waiter:  # type: ignore[attr-defined]
            # A message was handed to the wait this ends, and the task has not run since:
            # it goes back where it was (the front, or the place a selective receive took it
            # from), as if never received.
            self.handed = None
            mark = self.mark if self.matcher is not None else 0
            mbox = self.mbox
            if mbox is None:
                self.mbox = deque((handed.result(),))
            else:
                mbox.insert(mark, handed.result())
        return _task_cancel(self, msg)


def current() -> Process:
    """The calling process, or `NoProcessError`.

    Returns:
        The caller's process record.

    Raises:
        NoProcessError: Not called from a process (e.g. from plain asyncio code).
    """
    node = _node.current
    task = None if node is None else running_task(node.loop)
    if type(task) is not Process:
        raise NoProcessError(
            "not called from a process: spawn one, or start with otp.run(main); from plain "
            "asyncio code on the node's loop (an aiohttp handler, a start_server callback), "
            "call servers with `await otp.bridge.call(server, request)`"
        )
    return task


def self() -> Pid:
    """The pid of the calling process.

    Returns:
        The caller's pid.

    Raises:
        NoProcessError: Not called from a process.
    """
    return current().pid
