"""The state of the running node: its process table, name registry and counters.

There is at most one node per OS process; `current` is it (or None between `otp.run` calls).
Everything a node holds lives on its `Node` object, so nothing survives from one run to the
next.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._values import LOCAL_NODE, Pid, Ref
from .errors import NoProcessError

if TYPE_CHECKING:
    from ._process import Process

_creations = itertools.count(1)
_ref_ids = itertools.count(1)


class Node:
    """One incarnation of a node: created by `otp.run`, dropped when it returns."""

    __slots__ = (
        "_idle",
        "_pid_ids",
        "apps",
        "code",
        "config",
        "cookie",
        "creation",
        "dist",
        "halted",
        "init_pid",
        "interrupt",
        "loop",
        "main",
        "main_done",
        "name",
        "names",
        "on_exit",
        "on_spawn",
        "ops",
        "procs",
        "release",
        "report_watchers",
        "started_at",
        "stopping",
        "system",
    )

    def __init__(self, name: str, cookie: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.cookie = cookie
        self.loop = loop
        self.creation = next(_creations)
        self.procs: dict[int, Process] = {}
        self.names: dict[str, Process] = {}
        self._pid_ids = itertools.count(1)
        # <0.0.0> stands for the node itself: the sender of the signals the node sends.
        self.init_pid = Pid(name, 0, 0, self.creation)
        self.main: Process | None = None
        self.main_done: asyncio.Future[object] = loop.create_future()
        self.halted: asyncio.Future[object] = loop.create_future()
        self.system: set[int] = set()  # kernel processes (application controller, ...)
        self.apps: Any = None  # the application table, once the controller runs
        self.code: Any = None  # the code table, once the code server runs
        self.release: Any = None  # the release the node runs, when it runs one
        self.report_watchers: list[Callable[[Any], None]] = []
        # env overrides by application: key -> (value, where it was set)
        self.config: dict[str, dict[str, tuple[Any, str]]] = {}
        self.started_at = time.time()
        self.stopping = False
        self.on_exit: Callable[[Process], None] | None = None  # what the shutdown watches
        self.on_spawn: Callable[[Process], None] | None = None
        self.ops: Any = None  # the metrics of otp.ops, when they are on (None: no cost)
        self.dist: Any = None  # the distribution (otp.dist), when the node has one
        self.interrupt: BaseException | None = None  # KeyboardInterrupt/SystemExit in a process
        self._idle: asyncio.Future[None] | None = None

    def stop(self, reason: object) -> None:
        """Ask the node to stop (applications in reverse order, then every process)."""
        if not self.halted.done():
            self.halted.set_result(reason)

    def new_pid(self) -> Pid:
        return Pid(self.name, next(self._pid_ids), 0, self.creation)

    def process_ended(self, proc: Process) -> None:
        """Drop `proc` from the table; wake a shutdown waiting for the table to empty."""
        del self.procs[proc.pid._id]
        self.system.discard(proc.pid._id)
        if self.ops is not None:  # the messages it received still count as sent
            self.ops.ended_messages += proc.msg_count
        if proc is self.main:
            self.main_done.set_result(proc.exit_reason)
        if self.stopping:
            if self.on_exit is not None:
                self.on_exit(proc)
            if not self.procs:
                idle = self._idle
                if idle is not None and not idle.done():
                    idle.set_result(None)

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no process is left, at most `timeout` seconds; True when none is."""
        if not self.procs:
            return True
        self._idle = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._idle
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True


current: Node | None = None


def get() -> Node:
    """The running node, or `NoProcessError` when no node runs.

    Returns:
        The node.

    Raises:
        NoProcessError: No node is running.
    """
    node = current
    if node is None:
        raise NoProcessError("no node is running: start one with otp.run(main)")
    return node


def make_ref() -> Ref:
    """A reference unique within this OS process (and across node incarnations).

    Returns:
        A new `Ref`.
    """
    node = current
    if node is None:
        return Ref(LOCAL_NODE, next(_ref_ids), 0)
    return Ref(node.name, next(_ref_ids), node.creation)
