"""Spawning processes, with a link or a monitor set before the new process runs."""

from __future__ import annotations

import inspect
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from contextvars import copy_context
from typing import Any, Final, Literal, overload

from . import _node, _signals
from ._mailbox import receive
from ._overload import UNBOUNDED, Overload, bound, check_bound
from ._process import Process, current, running_task
from ._values import KILLED, NORMAL, Pid, Ref
from .errors import ExitError, NoProcessError

__all__ = ["AsyncFn", "check_async", "spawn", "spawn_link", "spawn_monitor", "spawn_opt"]

_CO_COROUTINE: Final = inspect.CO_COROUTINE
_INTERRUPTS: Final = (KeyboardInterrupt, SystemExit)  # end the process, then the node

AsyncFn = Callable[..., Awaitable[Any]]


def spawn(fn: AsyncFn, /, *args: Any, **kwargs: Any) -> Pid:
    """Start `fn(*args, **kwargs)` as a new process; does not wait for it to run.

    Args:
        fn: The async function the process runs; its return ends the process with `NORMAL`.
        *args: Positional arguments for `fn`.
        **kwargs: Keyword arguments for `fn`.

    Returns:
        The new process's pid.

    Raises:
        NoProcessError: No node is running.
        TypeError: `fn` is not an async function (or is a coroutine object).
    """
    return _spawn(fn, args, kwargs, None).pid


def spawn_link(fn: AsyncFn, /, *args: Any, **kwargs: Any) -> Pid:
    """Like `spawn`, with a link to the caller set before the new process runs.

    Args:
        fn: The async function the process runs.
        *args: Positional arguments for `fn`.
        **kwargs: Keyword arguments for `fn`.

    Returns:
        The new process's pid.

    Raises:
        NoProcessError: Not called from a process.
        TypeError: `fn` is not an async function.
    """
    proc = _spawn(fn, args, kwargs, current())
    return proc.pid


def spawn_monitor(fn: AsyncFn, /, *args: Any, **kwargs: Any) -> tuple[Pid, Ref]:
    """Like `spawn`, with a monitor from the caller set before the new process runs.

    Args:
        fn: The async function the process runs.
        *args: Positional arguments for `fn`.
        **kwargs: Keyword arguments for `fn`.

    Returns:
        `(pid, ref)`: the new process and the monitor whose `Down` reports its end.

    Raises:
        NoProcessError: Not called from a process.
        TypeError: `fn` is not an async function.
    """
    me = current()
    proc = _spawn(fn, args, kwargs, None)
    return proc.pid, _signals.add_monitor(me, proc)


@overload
def spawn_opt(
    fn: AsyncFn,
    /,
    *args: Any,
    link: bool = False,
    monitor: Literal[False] = False,
    max_mailbox: int | None = None,
    overload: Overload = "drop_newest",
    **kwargs: Any,
) -> Pid: ...
@overload
def spawn_opt(
    fn: AsyncFn,
    /,
    *args: Any,
    link: bool = False,
    monitor: Literal[True],
    max_mailbox: int | None = None,
    overload: Overload = "drop_newest",
    **kwargs: Any,
) -> tuple[Pid, Ref]: ...
def spawn_opt(
    fn: AsyncFn,
    /,
    *args: Any,
    link: bool = False,
    monitor: bool = False,
    max_mailbox: int | None = None,
    overload: Overload = "drop_newest",
    **kwargs: Any,
) -> Pid | tuple[Pid, Ref]:
    """`spawn` with options (Erlang's spawn_opt): a `link` and/or a `monitor` from the caller,
    and a bounded mailbox of `max_mailbox` messages, full by the `overload` policy
    (`"drop_newest"`, `"drop_oldest"` or `"exit"`; see the processes guide).

    The option names are taken: pass a function keyword of the same name through
    `functools.partial`.

    Args:
        fn: The async function the process runs.
        *args: Positional arguments for `fn`.
        link: Link the caller and the new process (default False).
        monitor: Monitor the new process from the caller (default False).
        max_mailbox: The most messages its mailbox holds (default None: unbounded).
        overload: What a full mailbox does (default `"drop_newest"`).
        **kwargs: Keyword arguments for `fn`.

    Returns:
        The pid, or `(pid, monitor_ref)` with `monitor=True`.

    Raises:
        NoProcessError: No node is running, or `link`/`monitor` outside a process.
        TypeError: `fn` is not an async function.
        ValueError: A bad `max_mailbox` or `overload`.
    """
    limit = check_bound(max_mailbox, overload)
    me = current() if link or monitor else None
    proc = _spawn(fn, args, kwargs, me if link else None)
    if limit != UNBOUNDED:
        bound(proc, limit, overload)
    if monitor:
        return proc.pid, _signals.add_monitor(me, proc)  # type: ignore[arg-type]
    return proc.pid


def _spawn(
    fn: AsyncFn, args: tuple[Any, ...], kwargs: dict[str, Any] | None, link_to: Process | None
) -> Process:
    node = _node.current
    if node is None:
        raise NoProcessError("no node is running: start one with otp.run(main)")
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_flags & _CO_COROUTINE:
        check_async(fn, "spawn")
    loop = node.loop
    parent = running_task(loop)
    context = copy_context()  # (asyncio makes it too; kept, for a call run directly)
    proc = Process(_run(fn, args, kwargs or None), loop=loop, context=context)
    proc.context = context
    proc.direct = None
    pid = node.new_pid()
    pid._proc = proc
    proc.pid = pid
    proc.mbox = None
    proc.waiter = None
    proc.handed = None
    proc.matcher = None
    proc.mark = 0
    proc.deadline = None
    proc.wake = None
    proc.links = None
    proc.monitors = None
    proc.watchers = None
    proc.trap = False
    proc.regname = None
    proc.started = False
    proc.timers = None
    proc.exiting = False
    proc.exit_reason = None
    proc.finished = False
    proc.msg_count = 0
    proc.limit = UNBOUNDED
    proc.dropped = 0
    proc.entry = fn
    proc.behaviour = None
    proc.retval = None
    proc.own_exc = None
    proc.reported = False
    if type(parent) is Process:
        proc.parent = parent.pid
        proc.app = parent.app
    else:
        proc.parent = node.init_pid
        proc.app = None
    node.procs[pid._id] = proc
    if link_to is not None:
        _signals.add_link(link_to, proc)
    if node.stopping and node.on_spawn is not None:
        node.on_spawn(proc)
    return proc


AWAITABLE_ENTRIES: Final[set[Callable[..., Any]]] = {receive}


def returns_awaitable(entry: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `entry`, a plain function, as one a process may run: the new process calls it
    and awaits what it returns (a behaviour's body that hands its loop's coroutine back is
    one coroutine frame shallower while it waits). Returns `entry`."""
    AWAITABLE_ENTRIES.add(entry)
    return entry


def check_async(fn: object, what: str) -> None:
    """Accept what calling gives a coroutine; reject the rest with the fix spelled out."""
    if inspect.iscoroutinefunction(fn) or fn in AWAITABLE_ENTRIES:
        return
    if callable(fn) and inspect.iscoroutinefunction(type(fn).__call__):
        return
    if inspect.iscoroutine(fn):
        name = getattr(fn, "__qualname__", "f")
        fn.close()
        raise TypeError(
            f"{what}() takes an async function and its arguments, not a coroutine object: "
            f"write {what}({name}, arg1, ...) instead of {what}({name}(arg1, ...))"
        )
    raise TypeError(
        f"{what}() takes an async function (defined with 'async def'), got {fn!r}; "
        f"wrap plain code in one: async def main(): ..."
    )


async def _run(fn: AsyncFn, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> None:
    """The body of every process: run `fn`, then turn how it ended into an exit reason."""
    proc: Process = running_task(_node.current.loop)  # type: ignore[assignment, union-attr]
    if proc.exiting:  # an exit signal arrived before the first step
        _signals.terminate(proc, proc.exit_reason, None)
        return
    proc.started = True
    exc: BaseException | None = None
    try:
        body = fn(*args, **kwargs) if kwargs else fn(*args)
        del args, kwargs  # this frame waits for the process's whole life: hold no arguments
        proc.retval = await body
        reason: Any = NORMAL
    except CancelledError:
        reason = KILLED  # cancelled by something other than an exit signal
    except ExitError as e:  # otp.exit(reason); a failed call is a crash of its own
        reason = e.reason if type(e) is ExitError else e
        exc = e
    except BaseException as e:  # the exception is the exit reason
        reason = e
        exc = e
    if proc.exiting:  # an exit signal wins over whatever the code did after it arrived
        reason = proc.exit_reason
        exc = None
    _signals.terminate(proc, reason, exc)
    if exc is not None and isinstance(exc, _INTERRUPTS):  # the node stops; run() raises it
        node = _node.current
        if node is not None and node.interrupt is None:
            node.interrupt = exc
            node.stop(("interrupted", exc))
