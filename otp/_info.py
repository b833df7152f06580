"""Looking at processes: `is_alive`, `processes`, `process_info`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import _node
from ._overload import UNBOUNDED
from ._process import running_task
from ._values import Pid
from .reports import describe_entry

__all__ = ["ProcessInfo", "is_alive", "process_info", "processes"]

Status = Literal["running", "runnable", "waiting", "exiting"]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process, taken by `process_info`."""

    pid: Pid
    registered_name: str | None
    status: Status
    message_queue_len: int
    message_count: int
    links: tuple[Pid, ...]
    monitors: tuple[Pid, ...]
    monitored_by: tuple[Pid, ...]
    trap_exit: bool
    parent: Pid
    initial_call: str
    behaviour: type | None
    application: str | None
    max_mailbox: int | None = None  # None: unbounded (see otp.spawn_opt)
    overload: str | None = None  # the policy of a bounded mailbox
    dropped: int = 0  # messages its full mailbox dropped


def _check_pid(pid: object) -> Pid:
    if type(pid) is not Pid:
        raise TypeError(f"expected a Pid, got {pid!r} ({type(pid).__name__})")
    return pid


def is_alive(pid: Pid) -> bool:
    """True while the local process `pid` has neither ended nor started to exit (as
    Erlang's is_process_alive: an exit signal already sent to it counts).

    Args:
        pid: A process of this node.

    Returns:
        True while it is alive.

    Raises:
        TypeError: `pid` is not a Pid.
    """
    proc = _check_pid(pid)._proc
    return proc is not None and not proc.finished and not proc.exiting


def processes() -> list[Pid]:
    """Every live process of the node, oldest first.

    Returns:
        Their pids (empty when no node runs).
    """
    node = _node.current
    return [] if node is None else [proc.pid for proc in node.procs.values()]


def process_info(pid: Pid) -> ProcessInfo | None:
    """What the runtime knows of `pid` now, or None if it is not alive (see `is_alive`;
    a process still running its cleanup sees itself as "exiting").

    Args:
        pid: A process of this node.

    Returns:
        A `ProcessInfo` snapshot, or None.

    Raises:
        TypeError: `pid` is not a Pid.
    """
    proc = _check_pid(pid)._proc
    if proc is None or proc.finished:
        return None
    running: object = running_task(proc.get_loop())
    if proc.exiting and running is not proc:
        return None
    status: Status
    if proc.exiting:
        status = "exiting"
    elif running is proc:
        status = "running"
    elif proc.waiter is not None:
        status = "waiting"
    else:
        status = "runnable"
    bounded = None if proc.limit == UNBOUNDED else proc.overload
    return ProcessInfo(
        pid=proc.pid,
        registered_name=proc.regname,
        status=status,
        message_queue_len=len(proc.mbox or ()),
        message_count=proc.msg_count,
        links=tuple(proc.links or ()),
        monitors=tuple((proc.monitors or {}).values()),
        monitored_by=tuple((proc.watchers or {}).values()),
        trap_exit=proc.trap,
        parent=proc.parent,
        initial_call=describe_entry(proc.entry),
        behaviour=proc.behaviour,
        application=proc.app,
        max_mailbox=None if bounded is None else proc.limit,
        overload=bounded,
        dropped=proc.dropped,
    )
