"""`otp.run`: start a node on a fresh event loop, run `main` as its first process, stop it.

When `main` ends, every process still running gets exit signal `SHUTDOWN` (newest first);
those still running after `shutdown_timeout` seconds are killed. Then the loop closes and
nothing of the node remains.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, Literal

from . import _node, _signals
from ._spawn import AsyncFn, check_async, spawn
from ._values import KILLED, LOCAL_NODE, NORMAL, SHUTDOWN
from .errors import ExitError

__all__ = ["run"]

_logger = logging.getLogger("otp.node")

LoopKind = Literal["uvloop", "asyncio"]


def run(
    main: AsyncFn,
    *args: Any,
    name: str | None = None,
    cookie: str | None = None,
    loop: LoopKind = "uvloop",
    shutdown_timeout: float = 5.0,
) -> Any:
    """Run a node until `main(*args)` returns; return its result or raise what it raised.

    `loop="asyncio"` uses the stdlib event loop instead of uvloop. A process that `main`
    leaves running gets `SHUTDOWN`, then `KILL` after `shutdown_timeout` seconds.
    """
    if _node.current is not None:
        raise RuntimeError(
            f"a node ({_node.current.name}) is already running in this OS process; "
            "otp.run() cannot be nested: spawn a process instead"
        )
    check_async(main, "run")
    node_name = _node_name(name)
    if cookie is not None and type(cookie) is not str:
        raise TypeError(f"run() takes a cookie as a str, got {cookie!r}")
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        return runner.run(_boot(node_name, cookie, main, args, shutdown_timeout))


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if loop == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"run() takes loop='uvloop' or loop='asyncio', got {loop!r}")


def _node_name(name: str | None) -> str:
    if name is None:
        return LOCAL_NODE
    if type(name) is not str or not name or name.count("@") > 1:
        raise ValueError(f"a node name is 'name' or 'name@host', got {name!r}")
    if "@" in name:
        return name
    return f"{name}@{socket.gethostname().split('.')[0]}"


async def _boot(
    name: str, cookie: str | None, main: AsyncFn, args: tuple[Any, ...], timeout: float
) -> Any:
    node = _node.Node(name, cookie, asyncio.get_running_loop())
    _node.current = node
    try:
        main_proc = spawn(main, *args)._proc
        assert main_proc is not None
        node.main = main_proc
        reason = await node.main_done
    finally:
        try:
            await _shutdown(node, timeout)
        finally:
            _node.current = None
    exc = main_proc.own_exc
    if type(reason) is str and reason == NORMAL:
        return main_proc.retval
    if exc is not None:
        raise exc
    cause = reason if isinstance(reason, BaseException) else None
    raise ExitError(reason, f"main process exited: {reason!r}") from cause


async def _shutdown(node: _node.Node, timeout: float) -> None:
    node.stopping = True
    for proc in reversed(list(node.procs.values())):
        _signals.exit_signal(proc, node.init_pid, SHUTDOWN, linked=False)
    if await node.wait_empty(timeout):
        return
    for _ in range(3):
        for proc in list(node.procs.values()):
            _signals.kill(proc, KILLED)
        if await node.wait_empty(timeout):
            return
    _logger.error(
        "node %s: processes did not exit after shutdown and kill: %r",
        node.name,
        [proc.pid for proc in node.procs.values()],
    )
