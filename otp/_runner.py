"""`otp.run`: start a node on a fresh event loop, run `main` as its first process, stop it.

When `main` ends, every process still running gets exit signal `SHUTDOWN`, top-down (a
process's children once it has ended, so supervisors stop their own trees in order);
those still running after `shutdown_timeout` seconds are killed. Then the loop closes and
nothing of the node remains.

While the node runs, CPython's collector waits longer between full collections as the node
grows (see `_Collector`); its thresholds are restored when the node stops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

from . import _node, _signals, _watchdog
from ._app import Application
from ._mailbox import receive
from ._process import Process
from ._spawn import AsyncFn, check_async, spawn
from ._values import KILLED, LOCAL_NODE, NORMAL, SHUTDOWN
from .errors import ExitError

__all__ = ["run"]

_logger = logging.getLogger("otp.node")

LoopKind = Literal["uvloop", "asyncio"]

# New objects (net of those freed) per live process between two full collections. An idle
# process holds ~10 tracked objects, a GenServer ~13; at 40, spawning 1M processes still
# cost 1.4x per process what 10k did, at 80 the same (bench/scaling.py).
GC_OBJECTS_PER_PROCESS = 80


def run(
    main: AsyncFn | Application | str,
    *args: Any,
    name: str | None = None,
    cookie: str | None = None,
    loop: LoopKind = "uvloop",
    shutdown_timeout: float = 5.0,
) -> Any:
    """Run a node until `main(*args)` returns; return its result or raise what it raised.

    `main` may also be an `Application` or a `"package.module:attr"` path to one: it is
    started (as permanent, with its dependencies) and `run` returns when the node stops.
    A `name` with a host (`"py@127.0.0.1"`) makes a distributed node (see `otp.dist`): it
    registers with EPMD (the system's, else an embedded one) and takes `cookie`, else
    `$OTP_COOKIE`, else `~/.erlang.cookie`; a name without one stays a local node.
    `loop="asyncio"` uses the stdlib event loop instead of uvloop. A process that `main`
    leaves running gets `SHUTDOWN`, then `KILL` after `shutdown_timeout` seconds.

    Args:
        main: An async function (the first process), an `Application`, or a
            `"package.module:attr"` path to one.
        *args: Arguments for `main` (an async function only).
        name: The node name, `"name"` or `"name@host"` (default None: a local node).
        cookie: The distribution cookie (default None: `$OTP_COOKIE`, `~/.erlang.cookie`).
        loop: `"uvloop"` (default) or `"asyncio"`.
        shutdown_timeout: Seconds the remaining processes get after `SHUTDOWN` (default 5.0).

    Returns:
        What `main` returned (None when the node was stopped with `NORMAL`).

    Raises:
        ExitError: `main` exited with a reason that is not an exception (`otp.exit`, a
            linked crash), or the node was stopped (e.g. `("application_terminated", ...)`).
        RuntimeError: A node is already running in this OS process.
        TypeError: `main` is not async, or `cookie` is not a str.
        ValueError: A bad `name` or `loop`.
    """
    entry: AsyncFn
    if isinstance(main, Application | str):
        entry, args = _run_application, (main,)
    else:
        entry = main
    if _node.current is not None:
        raise RuntimeError(
            f"a node ({_node.current.name}) is already running in this OS process; "
            "otp.run() cannot be nested: spawn a process instead"
        )
    check_async(entry, "run")
    node_name = _node_name(name)
    if cookie is not None and type(cookie) is not str:
        raise TypeError(f"run() takes a cookie as a str, got {cookie!r}")
    distributed = name is not None and "@" in name
    if distributed and cookie is None:
        from .dist._distribution import read_cookie

        cookie = os.environ.get("OTP_COOKIE") or read_cookie()
    try:
        with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
            return runner.run(_boot(node_name, cookie, entry, args, shutdown_timeout, distributed))
    finally:
        _node.current = None  # only now: the runner's last cancellations still need the node


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
    name: str,
    cookie: str | None,
    main: AsyncFn,
    args: tuple[Any, ...],
    timeout: float,
    distributed: bool = False,
) -> Any:
    node = _node.Node(name, cookie, asyncio.get_running_loop())
    _node.current = node
    if distributed:  # before any process: its pids carry the creation EPMD gives
        from .dist._distribution import start_distribution

        assert cookie is not None
        node.dist = await start_distribution(node, cookie)
    halted = False  # the node was stopped before main ended (else: main's outcome counts)
    watchdog = _watchdog.start(node)  # warns when a callback blocks the loop
    collector = _Collector(node)
    gc.callbacks.append(collector)
    try:
        main_proc = spawn(main, *args)._proc
        assert main_proc is not None
        node.main = main_proc
        await asyncio.wait((node.main_done, node.halted), return_when=asyncio.FIRST_COMPLETED)
        halted = node.halted.done()
    finally:
        try:
            await _shutdown(node, timeout)
        finally:
            if watchdog is not None:
                watchdog.stop()
            gc.callbacks.remove(collector)
            gc.set_threshold(*collector.thresholds)
            if node.dist is not None:
                await node.dist.stop()
    if node.interrupt is not None:  # a process raised KeyboardInterrupt or SystemExit
        raise node.interrupt
    if halted:
        halt = node.halted.result()
        if type(halt) is str and halt == NORMAL:
            return None
        raise ExitError(halt, f"node stopped: {halt!r}")
    reason = node.main_done.result()
    exc = main_proc.own_exc
    if type(reason) is str and reason == NORMAL:
        return main_proc.retval
    if exc is not None:
        raise exc
    cause = reason if isinstance(reason, BaseException) else None
    raise ExitError(reason, f"main process exited: {reason!r}") from cause


class _Collector:
    """Keeps full collections rare relative to the node's size: a `gc.callbacks` entry that,
    after each full collection, sets the third threshold so that the next one waits for
    `GC_OBJECTS_PER_PROCESS` new objects per live process.

    A full collection walks every tracked object, and each process holds several (its task,
    coroutines, pid, state). CPython starts one after ten young collections (7,000 new
    objects) once the objects promoted since the last one add up to a quarter of the old
    ones: a node growing to 1M processes walked its whole heap some twenty times on the way,
    and spawning cost 2-3x more per process than at 10k. Growing the third threshold with
    the process count keeps that cost per process flat; below ~900 processes the node's
    own thresholds (CPython's, or the caller's) stand. Young collections are untouched:
    short-lived garbage is found as soon as before. The cost is memory: a cycle that
    survives two young collections waits longer to be freed.
    """

    __slots__ = ("node", "thresholds")

    def __init__(self, node: _node.Node) -> None:
        self.node = node
        self.thresholds = gc.get_threshold()  # what the node found; restored when it stops

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            young, middle, old = self.thresholds
            per_old = max(young * middle, 1)  # new objects per count of the third threshold
            wanted = len(self.node.procs) * GC_OBJECTS_PER_PROCESS // per_old
            gc.set_threshold(young, middle, max(old, wanted))


async def _run_application(app: Application | str) -> None:
    """The first process of a node that runs an application: start it, then wait."""
    from . import application

    started = await application.ensure_all_started(application.load(app), "permanent")
    node = _node.get()
    _logger.info(
        "node %s started %s in %.3f s",
        node.name,
        ", ".join(started) or "nothing new",
        time.time() - node.started_at,
    )
    await receive(lambda m: False)


async def _shutdown(node: _node.Node, timeout: float) -> None:
    if node.apps is not None:  # applications first, newest first, each within its timeouts
        from ._application_controller import stop_all

        await stop_all(node)
    # Top-down: the processes whose parent is gone get SHUTDOWN; a process's children get
    # it when the process has ended. A supervisor thus stops its own children, in order,
    # before anything else tells them to go.
    waiting: dict[int, list[Process]] = {}
    for proc in node.procs.values():
        waiting.setdefault(proc.parent._id, []).append(proc)

    def orphaned(parent: Process) -> None:
        for child in waiting.pop(parent.pid._id, ()):
            _signals.exit_signal(child, node.init_pid, SHUTDOWN, linked=False)

    def spawned(proc: Process) -> None:  # a process born during the shutdown
        if proc.parent._proc is None:
            _signals.exit_signal(proc, node.init_pid, SHUTDOWN, linked=False)
        else:
            waiting.setdefault(proc.parent._id, []).append(proc)

    node.stopping = True
    node.on_exit = orphaned
    node.on_spawn = spawned
    for proc in list(node.procs.values()):
        if proc.parent._proc is None:  # (a gone parent never ends again: no second signal)
            _signals.exit_signal(proc, node.init_pid, SHUTDOWN, linked=False)
    if await node.wait_empty(timeout):
        return
    # A parent that outlived its SHUTDOWN: its children still get theirs before any kill.
    late = [child for children in waiting.values() for child in children]
    waiting.clear()
    for child in late:
        _signals.exit_signal(child, node.init_pid, SHUTDOWN, linked=False)
    if late and await node.wait_empty(timeout):
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
