"""Bounded mailboxes: what a message sent to a process whose mailbox is full becomes.

A process spawned with `max_mailbox=N` (`otp.spawn_opt`, `GenServer.start`) queues at most N
messages; the send path compares the mailbox's length with the process's `limit` (sys.maxsize
when unbounded, the default, as in Erlang), and only a full mailbox comes here. The policy:

- `"drop_newest"`: the message that found the mailbox full is dropped;
- `"drop_oldest"`: the oldest droppable queued message is dropped to make room;
- `"exit"`: the process ends with `("mailbox_full", N)` (no trap: a supervisor restarts it).

Signals and the runtime's own traffic are never dropped: `Exit` and `Down` messages, system
messages (`otp.sys`, upgrades) and replies to the process's own requests are queued past the
bound. A dropped call request fails its caller at once with `CallError(("mailbox_full", N))`
instead of leaving it to time out. Drops are counted on the process, in the `otp.mailbox.dropped`
metric and in a `MailboxOverflowReport` (the first drop, then at most one a second).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from . import _mailbox, _node, reports
from ._values import Down, Exit, Pid
from .reports import MailboxOverflowReport

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "MAILBOX_FULL",
    "UNBOUNDED",
    "Overload",
    "bound",
    "check_bound",
    "overflow",
]

Overload = Literal["drop_newest", "drop_oldest", "exit"]
OVERLOADS: Final = get_args(Overload)
UNBOUNDED: Final = sys.maxsize  # the limit of a process with no bound
MAILBOX_FULL: Final = "mailbox_full"
REPORT_EVERY: Final = 1.0  # seconds between two overflow reports of one process

_CALL: Final = "$gen_call"
_SYSTEM: Final = "system"
_ALIAS: Final = "alias"


def check_bound(max_mailbox: object, overload: object) -> int:
    """The limit for a `max_mailbox` option (None: unbounded); `ValueError` names what is wrong."""
    if overload not in OVERLOADS:
        raise ValueError(
            f"overload must be one of {', '.join(map(repr, OVERLOADS))}, got {overload!r}"
        )
    if max_mailbox is None:
        return UNBOUNDED
    if isinstance(max_mailbox, bool) or not isinstance(max_mailbox, int) or max_mailbox < 1:
        raise ValueError(f"max_mailbox must be an int >= 1 or None, got {max_mailbox!r}")
    return max_mailbox


def bound(proc: Process, limit: int, overload: Overload) -> None:
    """Give `proc` a mailbox of at most `limit` messages, full by `overload`'s policy."""
    proc.limit = limit
    proc.overload = overload
    proc.dropped_reported = proc.dropped
    proc.overflow_reported = 0.0


def overflow(proc: Process, msg: Any) -> None:
    """`msg` arrives at `proc`, whose mailbox holds `proc.limit` messages: apply its policy."""
    mbox = proc.mbox
    assert mbox is not None  # a full mailbox exists
    if _kept(msg):
        mbox.append(msg)
        return
    proc.msg_count -= 1  # (deliver counted it as received)
    policy = proc.overload
    if policy == "drop_oldest":
        for i, old in enumerate(mbox):
            if not _kept(old):
                del mbox[i]
                if i < proc.mark:  # a waiting receive has looked at the messages before mark
                    proc.mark -= 1
                mbox.append(msg)
                msg = old
                break
    elif policy == "exit" and not proc.exiting:
        from ._signals import kill  # (_signals imports this module's importer)

        _dropped(proc, msg)
        kill(proc, (MAILBOX_FULL, proc.limit))
        return
    _dropped(proc, msg)


def _kept(msg: Any) -> bool:
    """True for what a full mailbox still queues: signals, system messages, replies."""
    t = type(msg)
    if t is Exit or t is Down:
        return True
    if t is not tuple:
        return False
    n = len(msg)
    if n == 3:
        return type(msg[0]) is str and msg[0] == _SYSTEM
    if n == 2:  # a reply: ((alias, ref), value)
        tag = msg[0]
        return type(tag) is tuple and len(tag) == 2 and type(tag[0]) is str and tag[0] == _ALIAS
    return False


def _dropped(proc: Process, msg: Any) -> None:
    """Count the drop of `msg`, fail the call it carried, report (at most once a second)."""
    proc.dropped += 1
    if type(msg) is tuple and 3 <= len(msg) <= 4 and type(msg[0]) is str and msg[0] == _CALL:
        _refuse(proc, msg[1])
    node = _node.current
    if node is None:
        return
    if node.ops is not None:
        node.ops.mailbox_dropped(proc)
    now = node.loop.time()
    if proc.dropped == 1 or now - proc.overflow_reported >= REPORT_EVERY:
        since = proc.dropped - proc.dropped_reported
        proc.overflow_reported = now
        proc.dropped_reported = proc.dropped
        _report(proc, since)


def _refuse(server: Process, from_: Any) -> None:
    """Fail the call from `from_` at once: its caller gets the `Down` a dead server gives,
    with the reason `("mailbox_full", N)`, and its monitor of the server ends with it."""
    try:
        caller_pid, tag = from_
        ref = tag[1] if type(tag) is tuple and len(tag) == 2 and tag[0] == _ALIAS else None
    except (TypeError, ValueError):
        return  # not a request of the call protocol: nobody waits on it
    caller = caller_pid._proc if type(caller_pid) is Pid else None
    if caller is None or ref is None or not caller.monitors or ref not in caller.monitors:
        return
    del caller.monitors[ref]
    if server.watchers:
        server.watchers.pop(ref, None)
    _mailbox.deliver(caller, Down(ref, server.pid, (MAILBOX_FULL, server.limit)))


logger: Final = logging.getLogger("otp.process")


def _report(proc: Process, since: int) -> None:
    report = MailboxOverflowReport(
        pid=proc.pid,
        registered_name=proc.regname,
        initial_call=reports.describe_entry(proc.entry),
        max_mailbox=proc.limit,
        policy=proc.overload,
        dropped=proc.dropped,
        since_last=since,
    )
    name = f" {proc.regname!r}" if proc.regname else ""
    what = (
        f"exits with reason {(MAILBOX_FULL, proc.limit)!r}"
        if proc.overload == "exit"
        else f"dropped {since} message(s) ({proc.overload}; {proc.dropped} in all)"
    )
    reports.emit(
        logger,
        logging.WARNING,
        report,
        "MAILBOX OVERFLOW process %r%s (%s): its mailbox of %d is full and it %s",
        proc.pid,
        name,
        report.initial_call,
        proc.limit,
        what,
    )
