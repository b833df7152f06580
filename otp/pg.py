"""otp.pg: named process groups (Erlang's pg), in scopes.

    otp.pg.join("room:lobby", pid)               # a process may join a group several times
    otp.pg.get_members("room:lobby")             # -> [pid, ...]; reads never wait
    ref, members = otp.pg.monitor("room:lobby")  # then ("join" | "leave") messages:
    #   (ref, "join", "room:lobby", [pid]), (ref, "leave", "room:lobby", [pid])
    otp.pg.leave("room:lobby", pid)

A member leaves every group when it ends: its scope's process monitors it. Groups live in
a scope (default `"pg"`, started with the first use; `await otp.pg.start_link("chat")`
starts another, under a supervisor of yours). Membership is read from a table, without a
message; `join` and `leave` change it at once. One node holds every member today; the API is
Erlang's, ready to span nodes (`get_local_members` is then the local part).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from . import _node, _signals
from ._mailbox import receive, send
from ._process import Process, current
from ._registry import register, whereis
from ._spawn import spawn, spawn_link
from ._values import Down, Pid, Ref
from .errors import OTPError

__all__ = [
    "DEFAULT_SCOPE",
    "PgError",
    "demonitor",
    "get_local_members",
    "get_members",
    "join",
    "leave",
    "monitor",
    "monitor_scope",
    "start_link",
    "which_groups",
]

DEFAULT_SCOPE: Final = "pg"


class PgError(OTPError):
    """A refused group request: `.reason` names what was wrong.

    Args:
        reason: What was wrong, kept as `.reason`.
        message: The text.
    """

    def __init__(self, reason: Any, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class _Scope:
    """One scope's groups, read without its process; the process watches the members."""

    __slots__ = ("groups", "member_refs", "pid", "watcher_refs", "watchers")

    def __init__(self, pid: Pid) -> None:
        self.pid = pid
        self.groups: dict[Any, list[Pid]] = {}
        self.member_refs: dict[Pid, Ref] = {}  # the scope process's monitor on each member
        self.watchers: dict[Ref, tuple[Pid, Any]] = {}  # ref -> (watcher, group or SCOPE)
        self.watcher_refs: dict[Ref, Ref] = {}  # watch ref -> the scope's monitor on the watcher

    def watch(self, what: Any) -> Ref:
        """A new watch by the caller (monitored: a watcher that ends is forgotten)."""
        me = current()
        ref = _node.make_ref()
        self.watchers[ref] = (me.pid, what)
        scope_proc = self.pid._proc
        assert scope_proc is not None
        self.watcher_refs[ref] = _signals.add_monitor(scope_proc, me)
        return ref

    def unwatch(self, ref: Ref) -> bool:
        monitor = self.watcher_refs.pop(ref, None)
        scope_proc = self.pid._proc
        if monitor is not None and scope_proc is not None:
            _signals.remove_monitor(scope_proc, monitor, flush=True)
        return self.watchers.pop(ref, None) is not None

    def notify(self, group: Any, event: str, pids: list[Pid]) -> None:
        for ref, (watcher, watched) in list(self.watchers.items()):
            if watched is _SCOPE or watched == group:
                send(watcher, (ref, event, group, pids))


_SCOPE: Final[Any] = object()  # a watcher of the whole scope
# the scopes of the node running now: name -> scope (dropped when another node runs)
_scopes: dict[str, _Scope] = {}
_scopes_of: list[Any] = [None]


def _table() -> dict[str, _Scope]:
    node = _node.get()
    if _scopes_of[0] is not node:
        _scopes.clear()
        _scopes_of[0] = node
    return _scopes


async def start_link(scope: str = DEFAULT_SCOPE) -> Pid:
    """Start the process of `scope`, linked to the caller (put it under a supervisor).

    Args:
        scope: The scope's name, also its process's registered name (default `"pg"`).

    Returns:
        The scope's pid.

    Raises:
        PgError: `("bad_scope", scope)` or `("already_started", scope)` (the name is taken).
    """
    return _start(scope, link=True)


def _start(scope: str, *, link: bool) -> Pid:
    if type(scope) is not str or not scope:
        raise PgError(("bad_scope", scope), f"a pg scope is a non-empty str, got {scope!r}")
    table = _table()
    if (scope in table and table[scope].pid._proc is not None) or whereis(scope) is not None:
        raise PgError(("already_started", scope), f"pg scope {scope!r} is already started")
    pid = (spawn_link if link else spawn)(_serve, scope)
    register(scope, pid)
    table[scope] = _Scope(pid)
    return pid


def _scope(scope: str) -> _Scope:
    table = _table()
    found = table.get(scope)
    if found is not None and found.pid._proc is not None:
        return found
    if scope == DEFAULT_SCOPE and whereis(scope) is None:  # the default starts on first use
        pid = _start(scope, link=False)
        _node.get().system.add(pid.id)
        return table[scope]
    raise PgError(
        ("no_scope", scope),
        f"no pg scope {scope!r} is running: start it with await otp.pg.start_link({scope!r})",
    )


def join(group: Any, pids: Pid | Iterable[Pid], scope: str = DEFAULT_SCOPE) -> None:
    """Add the processes (local and alive) to `group`; a process may join several times,
    and is then a member as many times.

    Args:
        group: Any hashable value.
        pids: A pid, or several.
        scope: The scope's name (default `"pg"`, started on first use).

    Raises:
        PgError: `("not_a_pid", x)`, `("not_local", pid)` (dead, or of another node), or
            `("no_scope", scope)`.
    """
    state = _scope(scope)
    members = _checked(pids, "join")
    scope_proc = state.pid._proc
    assert scope_proc is not None
    for pid in members:
        if pid not in state.member_refs:
            proc = pid._proc
            assert proc is not None
            state.member_refs[pid] = _signals.add_monitor(scope_proc, proc)
    state.groups.setdefault(group, []).extend(members)
    state.notify(group, "join", members)


def leave(group: Any, pids: Pid | Iterable[Pid], scope: str = DEFAULT_SCOPE) -> bool:
    """Take the processes out of `group` once each; False if none of them was in it.

    Args:
        group: The group.
        pids: A pid, or several.
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        True when at least one of them left.

    Raises:
        PgError: `("not_a_pid", x)` or `("no_scope", scope)`.
    """
    state = _scope(scope)
    members = state.groups.get(group, [])
    left = []
    for pid in _checked(pids, "leave", alive=False):
        if pid in members:
            members.remove(pid)
            left.append(pid)
    if not members:
        state.groups.pop(group, None)
    if left:
        _forget_unless_member(state, left)
        state.notify(group, "leave", left)
    return bool(left)


def get_members(group: Any, scope: str = DEFAULT_SCOPE) -> list[Pid]:
    """The members of `group`, once per join (an empty list for an unknown group).

    Args:
        group: The group.
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        The member pids.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
    """
    return list(_scope(scope).groups.get(group, ()))


def get_local_members(group: Any, scope: str = DEFAULT_SCOPE) -> list[Pid]:
    """The members of `group` on this node (all of them, while a scope spans one node).

    Args:
        group: The group.
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        The member pids.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
    """
    node = _node.get().name
    return [pid for pid in get_members(group, scope) if pid.node == node]


def which_groups(scope: str = DEFAULT_SCOPE) -> list[Any]:
    """The groups that have members.

    Args:
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        The groups.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
    """
    return list(_scope(scope).groups)


def monitor(group: Any, scope: str = DEFAULT_SCOPE) -> tuple[Ref, list[Pid]]:
    """Watch `group`: `(ref, its members now)`; then the caller gets `(ref, "join", group,
    pids)` and `(ref, "leave", group, pids)` as members come and go (`demonitor(ref)` ends it).

    Args:
        group: The group.
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        `(ref, members)`.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
        NoProcessError: Not called from a process.
    """
    state = _scope(scope)
    return state.watch(group), list(state.groups.get(group, ()))


def monitor_scope(scope: str = DEFAULT_SCOPE) -> tuple[Ref, dict[Any, list[Pid]]]:
    """Watch every group of the scope: `(ref, {group: members})`, then join and leave
    messages for any group.

    Args:
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        `(ref, {group: members})`.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
        NoProcessError: Not called from a process.
    """
    state = _scope(scope)
    return state.watch(_SCOPE), {group: list(members) for group, members in state.groups.items()}


def demonitor(ref: Ref, scope: str = DEFAULT_SCOPE) -> bool:
    """Stop a `monitor`; True if it was active.

    Args:
        ref: The ref `monitor` or `monitor_scope` returned.
        scope: The scope's name (default `"pg"`, started on first use).

    Returns:
        True if the watch was active.

    Raises:
        PgError: `("no_scope", scope)`: no such scope runs.
    """
    return _scope(scope).unwatch(ref)


def _checked(pids: Any, what: str, *, alive: bool = True) -> list[Pid]:
    members = [pids] if type(pids) is Pid else list(pids)
    for pid in members:
        if type(pid) is not Pid:
            raise PgError(("not_a_pid", pid), f"pg.{what}() takes pids, got {pid!r}")
        if alive and (pid._proc is None or pid.node != _node.get().name):
            raise PgError(
                ("not_local", pid), f"pg.{what}(): {pid!r} is not a live process of this node"
            )
    return members


def _forget_unless_member(state: _Scope, pids: list[Pid]) -> None:
    """Stop watching the processes that are in no group any more."""
    still = {pid for members in state.groups.values() for pid in members}
    scope_proc = state.pid._proc
    for pid in set(pids) - still:
        ref = state.member_refs.pop(pid, None)
        if ref is not None and scope_proc is not None:
            _signals.remove_monitor(scope_proc, ref, flush=True)


# -- the scope process -----------------------------------------------------------------


async def _serve(scope: str) -> None:
    me: Process = current()
    table = _table()
    while True:
        msg = await receive()
        state = table.get(scope)
        if state is None or state.pid != me.pid:
            return
        if type(msg) is Down and type(msg.pid) is Pid:  # a member or a watcher ended
            pid = msg.pid
            for ref, (watcher, _) in list(state.watchers.items()):
                if watcher == pid:
                    del state.watchers[ref]
                    state.watcher_refs.pop(ref, None)
            if state.member_refs.pop(pid, None) is None:
                continue
            for group, members in list(state.groups.items()):
                gone = [member for member in members if member == pid]
                if gone:
                    state.groups[group] = [member for member in members if member != pid]
                    if not state.groups[group]:
                        del state.groups[group]
                    state.notify(group, "leave", gone)
