"""The bridge: call servers from plain asyncio code that runs on the node's loop.

An aiohttp handler, an `asyncio.start_server` callback or a FastAPI endpoint runs on the
node's event loop, but as a plain task, not a process: it has no pid and no mailbox, so
`otp.self()` raises `otp.NoProcessError` there, and so does a call made the way a process
makes it. The bridge runs the waiting part in a short-lived process of its own:

| from plain asyncio code                  | what runs                                    |
|------------------------------------------|----------------------------------------------|
| `await otp.bridge.call(server, request)` | `GenServer.call` in a short-lived process    |
| `await otp.bridge.in_process(fn, *args)` | `fn(*args)` in a short-lived process         |
| `GenServer.cast(server, msg)`            | itself: casts and sends need no process      |
| `otp.send(dest, msg)`                    | itself                                       |

    async def handle(reader, writer):        # an asyncio.start_server callback
        count = await otp.bridge.call("counter", "get")
        writer.write(f"{count}\\n".encode())

`call` raises what `GenServer.call` raises, with the same reasons: `otp.CallError`
(`.reason` `NOPROC`, the server's exit reason, `("nodedown", node)`) and `otp.CallTimeout`.
Called from a process, it is `GenServer.call` itself (no process is spawned).

Cancelling the awaiting task (a client hung up, an `asyncio.timeout` ran out) kills the
short-lived process and returns once it is gone: its monitor of the server is removed and
nothing of the call is left in any mailbox; a reply that comes later is dropped.

Everything here must run on the node's own loop (its thread). From another thread, submit
the coroutine to that loop: `asyncio.run_coroutine_threadsafe(otp.bridge.call(...), loop)`.
"""

from __future__ import annotations

import asyncio
from asyncio import CancelledError
from typing import Any

from . import _call, _node, _signals
from ._process import Process, running_task
from ._spawn import AsyncFn, _spawn, check_async
from ._values import KILLED
from .errors import ExitError, NoProcessError
from .reports import describe_entry

__all__ = ["call", "in_process"]


async def call(server: Any, request: Any, timeout: float = 5.0) -> Any:
    """`GenServer.call(server, request, timeout)` from code that is not a process.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        request: The request for `handle_call`.
        timeout: Seconds to wait for the reply (default 5.0; `math.inf`: no limit).

    Returns:
        The server's reply.

    Raises:
        otp.CallTimeout: No reply within `timeout`.
        otp.CallError: The server is not there (`.reason == NOPROC`), its node is not
            connected (`("nodedown", node)`) or it dies first (its exit reason).
        otp.NoProcessError: No node is running.
        RuntimeError: Called outside the node's event loop (e.g. from another thread).
        ValueError: A bad `timeout`.
    """
    node = _node_of_caller("call")
    if type(running_task(node.loop)) is Process:  # a process calls directly
        return await _call.call(server, request, timeout)
    _call.check_timeout(timeout, "call")  # raise here rather than in the process
    return await _in_process(node, _call.call, (server, request, timeout), None)


async def in_process(fn: AsyncFn, /, *args: Any, **kwargs: Any) -> Any:
    """Run `fn(*args, **kwargs)` in a new short-lived process and return what it returns.

    For anything that must run in a process (`GenServer.stop`, `otp.sys.get_state`, the
    `Supervisor` functions, a `receive`), from plain asyncio code, as `asyncio.to_thread`
    does for blocking functions. In `fn`, `otp.self()` is that process. An exception `fn`
    raises is raised here (not logged as a crash); an exit signal that ends the process
    first raises `otp.ExitError` with its reason. Cancelling the caller kills the process.

    Args:
        fn: The async function to run.
        *args: Positional arguments for `fn`.
        **kwargs: Keyword arguments for `fn`.

    Returns:
        What `fn` returned.

    Raises:
        otp.ExitError: The process was ended by an exit signal before `fn` returned.
        otp.NoProcessError: No node is running.
        RuntimeError: Called outside the node's event loop.
        TypeError: `fn` is not an async function.
    """
    check_async(fn, "in_process")
    return await _in_process(_node_of_caller("in_process"), fn, args, kwargs)


def _node_of_caller(what: str) -> _node.Node:
    """The running node, if the caller runs on its loop; else an error that says where to."""
    node = _node.current
    if node is None:
        raise NoProcessError(
            f"otp.bridge.{what}() needs a running node: start one with otp.run(main)"
        )
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not node.loop:
        raise RuntimeError(
            f"otp.bridge.{what}() was called outside the event loop of node {node.name!r}: "
            "processes live on that loop only; from another thread, submit the coroutine "
            "with asyncio.run_coroutine_threadsafe(otp.bridge."
            f"{what}(...), <the node's loop>)"
        )
    return node


async def _in_process(
    node: _node.Node, fn: AsyncFn, args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> Any:
    outcome: asyncio.Future[Any] = node.loop.create_future()
    proc = _spawn(_run_for_caller, (outcome, fn, args, kwargs), None, None)
    proc.entry = fn  # what `otp tree`, process_info and leak reports show
    proc.add_done_callback(lambda _: _ended_first(proc, outcome))
    try:
        return await outcome
    except CancelledError:  # the caller gave up: the process goes, and is gone on return
        if not proc.finished:
            _signals.kill(proc, KILLED)
            await asyncio.wait((proc,))
        raise


async def _run_for_caller(
    outcome: asyncio.Future[Any],
    fn: AsyncFn,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
) -> None:
    """The body of a bridge process: hand `fn`'s result or exception to the caller."""
    try:
        result = await (fn(*args, **kwargs) if kwargs else fn(*args))
    except Exception as exc:  # the caller's to handle: the process itself ends normally
        if not outcome.done():
            outcome.set_exception(exc)
        return
    if not outcome.done():
        outcome.set_result(result)


def _ended_first(proc: Process, outcome: asyncio.Future[Any]) -> None:
    """The process ended without an answer (an exit signal): tell the caller why."""
    if not outcome.done():
        reason = proc.exit_reason
        outcome.set_exception(
            ExitError(
                reason,
                f"process {proc.pid!r} running {describe_entry(proc.entry)} for plain asyncio "
                f"code exited with {reason!r} before it returned",
            )
        )
