"""Exit signals, links and monitors, and what happens when a process ends.

An exit signal to a process that traps exits becomes an `Exit` message. Otherwise a
`NORMAL` signal is ignored, and any other reason kills the process: its task is cancelled
with the reason recorded on it. `KILL` sent with `exit(pid, KILL)` cannot be trapped and
becomes `KILLED`. When a process ends, `terminate` frees its name, sends its reason to every
linked process and a `Down` to every monitor, all before the next process runs.
"""

from __future__ import annotations

from asyncio import CancelledError
from typing import TYPE_CHECKING, Any, NoReturn, overload

from . import _node, _process, _registry, reports
from ._mailbox import deliver
from ._values import KILL, KILLED, NOCONNECTION, NOPROC, NORMAL, Down, Exit, Pid, Ref, is_abnormal
from .errors import ExitError, NoProcessError

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "add_link",
    "add_monitor",
    "demonitor",
    "exit",
    "exit_signal",
    "kill",
    "link",
    "monitor",
    "process_flag",
    "remove_monitor",
    "terminate",
    "unlink",
]


def exit_signal(target: Process, sender: Pid, reason: Any, *, linked: bool) -> None:
    """Deliver an exit signal from `sender`; `linked` for one a link carries (trappable `kill`)."""
    if target.finished:
        return
    if not linked and type(reason) is str and reason == KILL:
        kill(target, KILLED)  # also one already exiting: its cleanup may not outlast a kill
    elif target.exiting:
        return
    elif target.trap:
        deliver(target, Exit(sender, reason))
    elif type(reason) is str and reason == NORMAL:
        if not linked and sender is target.pid:  # exit(self(), NORMAL) ends the caller
            kill(target, NORMAL)
    else:
        kill(target, reason)


def kill(target: Process, reason: Any) -> None:
    """End `target` with `reason` (it cannot trap this): cancel its task, or stop it at start.

    Args:
        target: The process record.
        reason: Its exit reason.

    Raises:
        CancelledError: `target` is the caller: it stops here.
    """
    target.exiting = True
    target.exit_reason = reason
    if not target.started:  # `_run` sees `exiting` on its first step
        return
    if target is _process.running_task(target.get_loop()):
        raise CancelledError  # signalled itself: stop here, not at its next await
    target.cancel()


def terminate(proc: Process, reason: Any, exc: BaseException | None) -> None:
    """Record that `proc` ended with `reason`; signal its links and monitors."""
    proc.finished = True
    proc.exit_reason = reason
    node: _node.Node = _node.current  # type: ignore[assignment]  # set while processes run
    pid = proc.pid
    if exc is not None:
        proc.own_exc = exc
        if is_abnormal(reason):
            reports.crash(proc, reason, exc)
    if proc.regname is not None:
        del node.names[proc.regname]
    pid._proc = None
    proc.mbox = None
    proc.waiter = None
    if node.dist is not None:  # its links and monitors across nodes
        node.dist.process_ended(proc, reason)
    if proc.wake is not None:  # (see _mailbox.arm)
        proc.wake[0].cancel()
        proc.wake = None
    if proc.timers:  # timers to a pid die with it (Erlang): their messages go now
        for tref in proc.timers:
            tref.drop()
        proc.timers = None
    monitors = proc.monitors
    if monitors:
        proc.monitors = None
        for ref, target in monitors.items():
            tproc = target._proc
            if tproc is not None and tproc.watchers:
                tproc.watchers.pop(ref, None)
    links = proc.links
    if links:
        proc.links = None
        for other in links:
            oproc = other._proc
            if oproc is not None:
                if oproc.links:
                    oproc.links.discard(pid)
                exit_signal(oproc, pid, reason, linked=True)
    watchers = proc.watchers
    if watchers:
        proc.watchers = None
        for ref, watcher in watchers.items():
            wproc = watcher._proc
            if wproc is not None:
                if wproc.monitors:
                    wproc.monitors.pop(ref, None)
                deliver(wproc, Down(ref, pid, reason))  # type: ignore[arg-type]  # (an int: a call's)
    node.process_ended(proc)


def add_link(a: Process, b: Process) -> None:
    if a.links is None:
        a.links = set()
    a.links.add(b.pid)
    if b.links is None:
        b.links = set()
    b.links.add(a.pid)


@overload
def add_monitor(watcher: Process, target: Process) -> Ref: ...
@overload
def add_monitor(watcher: Process, target: Process, ref: int) -> int: ...
def add_monitor(watcher: Process, target: Process, ref: Ref | int | None = None) -> Ref | int:
    """`watcher` monitors `target` under `ref` (default: a new Ref; an int for a call's,
    see _call.call)."""
    if ref is None:
        ref = _node.make_ref()
    if target.watchers is None:
        target.watchers = {}
    target.watchers[ref] = watcher.pid
    if watcher.monitors is None:
        watcher.monitors = {}
    watcher.monitors[ref] = target.pid
    return ref


def _check_pid(pid: object, what: str) -> Pid:
    if type(pid) is not Pid:
        raise TypeError(f"{what}() takes a Pid, got {pid!r} ({type(pid).__name__})")
    return pid


def link(pid: Pid) -> None:
    """Link the caller and `pid` both ways; a dead `pid` sends the caller exit reason `NOPROC`.

    Args:
        pid: The process to link to (`NOCONNECTION` instead for an unreachable node).

    Raises:
        NoProcessError: Not called from a process.
        TypeError: `pid` is not a Pid.
    """
    me = _process.current()
    _check_pid(pid, "link")
    other = pid._proc
    if other is me:
        return
    if other is None and pid.node != me.pid.node:
        node = _node.get()
        if node.dist is not None:
            node.dist.link(me, pid)
            return
    if other is None or other.finished:
        reason = NOPROC if pid.node == me.pid.node else NOCONNECTION
        exit_signal(me, pid, reason, linked=True)
        return
    if me.links is None or pid not in me.links:  # (a supervisor links each child again)
        add_link(me, other)


def unlink(pid: Pid) -> None:
    """Remove the link between the caller and `pid`, if there is one.

    Args:
        pid: The linked process.

    Raises:
        NoProcessError: Not called from a process.
        TypeError: `pid` is not a Pid.
    """
    me = _process.current()
    _check_pid(pid, "unlink")
    links = me.links
    linked = False
    if links is not None and pid in links:
        links.discard(pid)
        linked = True
    other = pid._proc
    if other is not None and other.links:
        other.links.discard(me.pid)
    elif other is None and linked and pid.node != me.pid.node:
        node = _node.get()
        if node.dist is not None:  # (the link protocol: only an active link is unlinked)
            node.dist.unlink(me, pid)


def monitor(target: Pid | str | tuple[str, str]) -> Ref:
    """Monitor a Pid or a registered name; a `Down` arrives when it ends (at once if it has).

    Args:
        target: A Pid, a registered name or `(name, node)`; a dead or unknown one gets an
            immediate `Down` with `NOPROC` (`NOCONNECTION` for an unreachable node).

    Returns:
        The monitor's reference, the `ref` of its `Down`.

    Raises:
        NoProcessError: Not called from a process.
        TypeError: `target` is not a destination.
    """
    me = _process.current()
    proc, reason = _registry.locate(target, me.pid.node)
    if proc is None and reason == NOCONNECTION:
        node = _node.get()
        if node.dist is not None:
            return node.dist.monitor(me, target)  # type: ignore[no-any-return]
    if proc is None:
        ref = _node.make_ref()
        deliver(me, Down(ref, target, reason))
        return ref
    return add_monitor(me, proc)


def demonitor(ref: Ref, flush: bool = False) -> bool:
    """Stop the monitor `ref`; with `flush`, drop its `Down` if one is already queued.

    Args:
        ref: The reference `monitor` returned.
        flush: Also remove its `Down` from the mailbox (default False).

    Returns:
        True when the monitor was still active.

    Raises:
        NoProcessError: Not called from a process.
    """
    return remove_monitor(_process.current(), ref, flush)


def remove_monitor(me: Process, ref: Ref | int, flush: bool) -> bool:
    """`demonitor` for the process `me` (the caller).

    A table the removal empties goes back to None: every started server would otherwise
    keep the empty dict of its start's monitor (~160 bytes, and one more object for the
    garbage collector to walk) for its whole life."""
    monitors = me.monitors
    target = monitors.pop(ref, None) if monitors else None
    if target is not None:
        if not monitors:
            me.monitors = None
        tproc = target._proc
        if tproc is not None:
            watchers = tproc.watchers
            if watchers:
                watchers.pop(ref, None)
                if not watchers:
                    tproc.watchers = None
    else:
        node = _node.current
        if node is not None and node.dist is not None and node.dist.demonitor(me, ref):
            return True  # (a monitor of a remote process: its Down was never queued)
    # While the monitor was active no Down of it can be queued: scan only when it was not.
    # A monitor delivers at most one Down.
    mbox = me.mbox
    if flush and target is None and mbox:
        for i, m in enumerate(mbox):
            if type(m) is Down and m.ref == ref:
                del mbox[i]
                break
    return target is not None


@overload
def exit(reason: Any, /) -> NoReturn: ...
@overload
def exit(pid: Pid, reason: Any, /) -> None: ...
def exit(*args: Any) -> None:
    """`exit(reason)` ends the caller with `reason`; `exit(pid, reason)` sends an exit signal.

    The signal is asynchronous: `exit(pid, reason)` returns at once. `KILL` cannot be
    trapped and becomes `KILLED`; a dead pid is ignored.

    Args:
        *args: `(reason)`, or `(pid, reason)`.

    Raises:
        ExitError: With `reason`, for `exit(reason)`: the caller ends.
        TypeError: Not one or two arguments, or `pid` not a Pid.
    """
    if len(args) == 1:
        raise ExitError(args[0])
    if len(args) != 2:
        raise TypeError(f"exit() takes (reason) or (pid, reason), got {len(args)} arguments")
    pid, reason = args
    _check_pid(pid, "exit")
    target = pid._proc
    if target is None:
        node = _node.current
        if node is not None and node.dist is not None and pid.node != node.name:
            try:
                sender = _process.current().pid
            except NoProcessError:
                sender = node.init_pid
            node.dist.exit(sender, pid, reason)
        return
    try:
        sender = _process.current().pid
    except NoProcessError:
        sender = _node.get().init_pid
    exit_signal(target, sender, reason, linked=False)


def process_flag(flag: str, value: bool) -> bool:
    """Set a flag of the calling process and return its old value; `"trap_exit"` only.

    Args:
        flag: `"trap_exit"`: exit signals arrive as `Exit` messages instead of killing.
        value: The new value.

    Returns:
        The flag's old value.

    Raises:
        ValueError: An unknown flag.
        NoProcessError: Not called from a process.
    """
    if flag != "trap_exit":
        raise ValueError(f"unknown process flag {flag!r}; the supported flag is 'trap_exit'")
    me = _process.current()
    old = me.trap
    me.trap = bool(value)
    return old
