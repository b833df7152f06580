"""Local process names: `register`, `unregister`, `whereis`, `registered`.

A name is a `str` held by at most one process, and a process holds at most one name; the
name is freed when its process ends (see `_signals.terminate`). A `via` name,
`("via", registry, key)`, is kept by the registry it names (`otp.registry`): `register`,
`whereis` and every destination take it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _node
from ._values import NOCONNECTION, NOPROC, Pid
from .errors import AlreadyRegisteredError, NoProcessError, NotRegisteredError

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "check_dest",
    "locate",
    "register",
    "registered",
    "resolve",
    "unregister",
    "whereis",
]


def _check_name(name: object, what: str) -> str:
    if type(name) is not str:
        raise TypeError(
            f"{what}() takes a process name as a str, got {name!r} ({type(name).__name__})"
        )
    return name


def register(name: Any, pid: Pid) -> None:
    """Register the live process `pid` under `name` (a str, or a via name).

    Args:
        name: A str, or `("via", registry, key)`.
        pid: A live local process.

    Raises:
        AlreadyRegisteredError: The name is taken, or `pid` already has a name.
        NoProcessError: `pid` is not alive, or no node is running.
        TypeError: `name` is not a str (or via name), or `pid` not a Pid.
    """
    if type(name) is tuple and len(name) == 3 and name[0] == "via":
        from .registry import via_register

        via_register(name, pid)
        return
    _check_name(name, "register")
    if type(pid) is not Pid:
        raise TypeError(f"register() takes a Pid to name, got {pid!r} ({type(pid).__name__})")
    node = _node.get()
    holder = node.names.get(name)
    if holder is not None:
        raise AlreadyRegisteredError(name, holder.pid)
    proc = pid._proc
    if proc is None or proc.finished or proc.exiting:
        raise NoProcessError(f"cannot register {name!r}: process {pid!r} is not alive")
    if proc.regname is not None:
        raise AlreadyRegisteredError(
            proc.regname, pid, f"process {pid!r} is already registered as {proc.regname!r}"
        )
    node.names[name] = proc
    proc.regname = name


def unregister(name: str) -> None:
    """Remove the name `name`; `NotRegisteredError` if nobody holds it.

    Args:
        name: A registered name.

    Raises:
        NotRegisteredError: Nobody holds `name`.
        TypeError: `name` is not a str.
        NoProcessError: No node is running.
    """
    _check_name(name, "unregister")
    proc = _node.get().names.pop(name, None)
    if proc is None:
        raise NotRegisteredError(name)
    proc.regname = None


def whereis(name: Any) -> Pid | None:
    """The pid registered under `name` (a str, or a via name), or None.

    Args:
        name: A str, or `("via", registry, key)`.

    Returns:
        The pid, or None when nobody holds the name (or no node runs).

    Raises:
        TypeError: `name` is neither a str nor a via name.
    """
    if type(name) is tuple and len(name) == 3 and name[0] == "via":
        return _via_whereis(name) if _node.current is not None else None
    _check_name(name, "whereis")
    node = _node.current
    if node is None:
        return None
    proc = node.names.get(name)
    return None if proc is None else proc.pid


def registered() -> list[str]:
    """Every registered name.

    Returns:
        The local names (empty when no node runs).
    """
    node = _node.current
    return [] if node is None else list(node.names)


def resolve(dest: Any) -> Process | None:
    """The local process for a name or `(name, node)`; None for a process on another node.

    An unregistered local name raises `NotRegisteredError`; anything that is not a
    destination raises `TypeError`.
    """
    node = _node.get()
    if type(dest) is str:
        proc = node.names.get(dest)
        if proc is None:
            raise NotRegisteredError(dest)
        return proc
    if type(dest) is tuple and len(dest) == 2 and type(dest[0]) is str and type(dest[1]) is str:
        name, where = dest
        if where != node.name:
            return None  # no connection to that node: dropped, as Erlang drops it
        proc = node.names.get(name)
        if proc is None:
            raise NotRegisteredError(name)
        return proc
    if type(dest) is Pid:
        return dest._proc
    if type(dest) is tuple and len(dest) == 3 and dest[0] == "via":
        pid = _via_whereis(dest)
        if pid is None or pid._proc is None:
            raise NotRegisteredError(dest)
        return pid._proc
    raise _bad_dest(dest)


_via_lookup: list[Callable[[tuple[str, Any, Any]], Pid | None]] = []  # otp.registry's


def _via_whereis(name: tuple[str, Any, Any]) -> Pid | None:
    if not _via_lookup:  # (imported here once: otp.registry imports this module)
        from .registry import via_whereis

        _via_lookup.append(via_whereis)
    return _via_lookup[0](name)


def locate(dest: Any, here: str) -> tuple[Process | None, str]:
    """The live local process `dest` names, or None and why: `NOPROC` (no such process on
    this node, `here`) or `NOCONNECTION` (it is on a node we are not connected to)."""
    if type(dest) is Pid:
        proc = dest._proc
        if proc is not None and not proc.finished:
            return proc, ""
        return None, NOPROC if dest.node == here else NOCONNECTION
    try:
        proc = resolve(dest)
    except NotRegisteredError:
        return None, NOPROC
    if proc is None:
        return None, NOCONNECTION
    return (None, NOPROC) if proc.finished else (proc, "")


def check_dest(dest: Any) -> None:
    """`TypeError` unless `dest` is a Pid, a name or `(name, node)`."""
    if type(dest) is Pid or type(dest) is str:
        return
    if type(dest) is tuple and len(dest) == 2 and type(dest[0]) is str and type(dest[1]) is str:
        return
    if type(dest) is tuple and len(dest) == 3 and dest[0] == "via":
        return
    raise _bad_dest(dest)


def _bad_dest(dest: Any) -> TypeError:
    return TypeError(
        "a destination is a Pid, a registered name (str), (name, node) or "
        f"('via', registry, key), got {dest!r}"
    )
