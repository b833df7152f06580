"""otp.Registry: a local key -> process store (Elixir's Registry), and `via` names.

    await otp.Registry.start_link("rooms", keys="unique")
    otp.Registry.register("rooms", "lobby", {"topic": "hi"})   # the caller, under a key
    otp.Registry.lookup("rooms", "lobby")                       # -> [(pid, {"topic": "hi"})]
    await Room.start_link(arg, name=("via", "rooms", "lobby"))  # a name anywhere one is taken
    await GenServer.call(("via", "rooms", "lobby"), "topic")

Entries go when their process ends (the registry's process monitors each one). Reads never
wait for a process; `register` and `unregister` act on the caller at once. With
`keys="duplicate"` several processes (or one, several times) may hold a key: `dispatch`
reaches them all. A `via` name is `("via", registry, key)`: `registry` is a Registry's name
(unique keys), or any object with Erlang's via callbacks `register_name(key, pid) -> bool`,
`unregister_name(key)`, `whereis_name(key) -> Pid | None`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

from . import _node, _signals
from ._mailbox import receive
from ._process import current
from ._registry import register
from ._spawn import spawn_link
from ._values import Down, Pid, Ref
from .errors import AlreadyRegisteredError, OTPError

__all__ = ["Registry", "RegistryError"]

VIA: Final = "via"
Keys = Literal["unique", "duplicate"]


class RegistryError(OTPError):
    """A refused registry request; `.reason` names what was wrong.

    Args:
        reason: What was wrong, kept as `.reason`.
        message: The text.
    """

    def __init__(self, reason: Any, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class _Table:
    """One registry: key -> [(pid, value)], read without its process."""

    __slots__ = ("by_key", "by_pid", "keys", "monitors", "name", "pid")

    def __init__(self, name: str, keys: Keys, pid: Pid) -> None:
        self.name = name
        self.keys = keys
        self.pid = pid
        self.by_key: dict[Any, list[tuple[Pid, Any]]] = {}
        self.by_pid: dict[Pid, list[Any]] = {}  # the keys each process holds (with repeats)
        self.monitors: dict[Pid, Ref] = {}

    def add(self, key: Any, pid: Pid, value: Any) -> None:
        entries = self.by_key.setdefault(key, [])
        if self.keys == "unique" and entries and entries[0][0]._proc is None:
            self.forget(entries[0][0])  # (it ended; its Down is on its way)
            entries = self.by_key.setdefault(key, [])
        if self.keys == "unique" and entries:
            raise AlreadyRegisteredError(
                key,
                entries[0][0],
                f"{key!r} is already registered in {self.name!r} to {entries[0][0]!r}",
            )
        proc = pid._proc
        if proc is None or proc.finished or proc.exiting:
            raise RegistryError(("not_alive", pid), f"cannot register {pid!r}: it is not alive")
        entries.append((pid, value))
        self.by_pid.setdefault(pid, []).append(key)
        if pid not in self.monitors:
            owner = self.pid._proc
            assert owner is not None
            self.monitors[pid] = _signals.add_monitor(owner, proc)

    def remove(self, key: Any, pid: Pid) -> None:
        entries = self.by_key.get(key)
        if entries:
            self.by_key[key] = [(p, v) for p, v in entries if p != pid]
            if not self.by_key[key]:
                del self.by_key[key]
        keys = self.by_pid.get(pid)
        if keys is not None:
            kept = [k for k in keys if k != key]
            if kept:
                self.by_pid[pid] = kept
            else:
                self.forget(pid)

    def forget(self, pid: Pid) -> None:
        """`pid` holds no key any more (it ended, or unregistered them all)."""
        for key in set(self.by_pid.pop(pid, ())):
            entries = [(p, v) for p, v in self.by_key.get(key, ()) if p != pid]
            if entries:
                self.by_key[key] = entries
            else:
                self.by_key.pop(key, None)
        ref = self.monitors.pop(pid, None)
        owner = self.pid._proc
        if ref is not None and owner is not None:
            _signals.remove_monitor(owner, ref, flush=True)


_tables: dict[str, _Table] = {}
_tables_of: list[Any] = [None]


def _all() -> dict[str, _Table]:
    node = _node.get()
    if _tables_of[0] is not node:  # a new node: nothing of the last one's registries
        _tables.clear()
        _tables_of[0] = node
    return _tables


def _table(registry: Any) -> _Table:
    table = _all().get(registry) if type(registry) is str else None
    if table is None or table.pid._proc is None:
        raise RegistryError(
            ("unknown_registry", registry),
            f"no registry {registry!r} is running: start it with "
            f"await otp.Registry.start_link({registry!r})",
        )
    return table


class Registry:
    """The Registry API (static methods)."""

    @staticmethod
    async def start_link(name: str, *, keys: Keys = "unique") -> Pid:
        """Start a registry named `name` (its process is registered under it), linked to the
        caller: put it under a supervisor, before the processes that use it
        (`ChildSpec(id="rooms", start=(otp.Registry.start_link, "rooms"))`).

        Args:
            name: The registry's name (a non-empty str).
            keys: `"unique"` (default: one process per key) or `"duplicate"`.

        Returns:
            The registry's pid.

        Raises:
            RegistryError: `("bad_keys", keys)` or `("bad_name", name)`.
            otp.AlreadyRegisteredError: A registry (or a process) already has that name.
        """
        if keys not in ("unique", "duplicate"):
            raise RegistryError(
                ("bad_keys", keys), f"a registry's keys are 'unique' or 'duplicate', got {keys!r}"
            )
        if type(name) is not str or not name:
            raise RegistryError(("bad_name", name), f"a registry's name is a str, got {name!r}")
        tables = _all()
        old = tables.get(name)
        if old is not None and old.pid._proc is not None:
            raise AlreadyRegisteredError(name, old.pid, f"registry {name!r} is already running")
        pid = spawn_link(_serve, name)
        register(name, pid)
        tables[name] = _Table(name, keys, pid)
        return pid

    @staticmethod
    def register(registry: str, key: Any, value: Any = None) -> None:
        """Register the calling process under `key` with `value`. A unique key held by
        another process raises `otp.AlreadyRegisteredError` (`.pid`: the holder).

        Args:
            registry: The registry's name.
            key: Any hashable value.
            value: Kept with the entry (default None).

        Raises:
            otp.AlreadyRegisteredError: A unique `key` is held by another process.
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
            otp.NoProcessError: Not called from a process.
        """
        _table(registry).add(key, current().pid, value)

    @staticmethod
    def unregister(registry: str, key: Any) -> None:
        """Take the calling process's entries under `key` out.

        Args:
            registry: The registry's name.
            key: The key (one the caller does not hold is no error).

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        _table(registry).remove(key, current().pid)

    @staticmethod
    def lookup(registry: str, key: Any) -> list[tuple[Pid, Any]]:
        """`[(pid, value)]` under `key` (at most one for unique keys).

        Args:
            registry: The registry's name.
            key: The key.

        Returns:
            The entries, oldest first (empty for a key nobody holds).

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        return list(_table(registry).by_key.get(key, ()))

    @staticmethod
    def keys(registry: str, pid: Pid) -> list[Any]:
        """The keys `pid` holds in the registry.

        Args:
            registry: The registry's name.
            pid: A process.

        Returns:
            Its keys (once per registration).

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        return list(_table(registry).by_pid.get(pid, ()))

    @staticmethod
    def count(registry: str) -> int:
        """How many entries the registry holds.

        Args:
            registry: The registry's name.

        Returns:
            The number of `(key, pid)` entries.

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        return sum(len(entries) for entries in _table(registry).by_key.values())

    @staticmethod
    def match(registry: str, key: Any, where: Callable[[Any], bool]) -> list[tuple[Pid, Any]]:
        """`[(pid, value)]` under `key` whose value passes `where(value)`.

        Args:
            registry: The registry's name.
            key: The key.
            where: A predicate on the value.

        Returns:
            The matching entries.

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        return [(p, v) for p, v in _table(registry).by_key.get(key, ()) if where(v)]

    @staticmethod
    def select(registry: str, where: Callable[[Any, Pid, Any], bool]) -> list[tuple[Any, Pid, Any]]:
        """Every `(key, pid, value)` that passes `where(key, pid, value)`.

        Args:
            registry: The registry's name.
            where: A predicate on `(key, pid, value)`.

        Returns:
            The matching entries.

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        return [
            (key, p, v)
            for key, entries in _table(registry).by_key.items()
            for p, v in entries
            if where(key, p, v)
        ]

    @staticmethod
    def dispatch(registry: str, key: Any, fn: Callable[[list[tuple[Pid, Any]]], Any]) -> None:
        """Call `fn([(pid, value), ...])` with the entries under `key`, in the caller (not
        called when there are none): to send to each, say.

        Args:
            registry: The registry's name.
            key: The key.
            fn: A function of the list of entries.

        Raises:
            RegistryError: `("unknown_registry", registry)`: no such registry runs.
        """
        entries = _table(registry).by_key.get(key)
        if entries:
            fn(list(entries))

    @staticmethod
    def update_value(registry: str, key: Any, fn: Callable[[Any], Any]) -> Any:
        """For the caller's entry under a unique key: the value becomes `fn(value)`; the new
        value (`RegistryError` if the caller holds no such entry).

        Args:
            registry: The registry's name.
            key: A key the caller holds.
            fn: A function of the old value.

        Returns:
            The new value.

        Raises:
            RegistryError: `("not_registered", key)`: the caller holds no entry under `key`;
                or `("unknown_registry", registry)`.
        """
        table = _table(registry)
        me = current().pid
        entries = table.by_key.get(key, [])
        for i, (pid, value) in enumerate(entries):
            if pid == me:
                entries[i] = (pid, fn(value))
                return entries[i][1]
        raise RegistryError(
            ("not_registered", key), f"{me!r} holds no entry {key!r} in {registry!r}"
        )


async def _serve(name: str) -> None:
    """The registry's process: it watches the registered processes and forgets the ended."""
    me = current()
    while True:
        msg = await receive()
        table = _all().get(name)
        if table is None or table.pid != me.pid:
            return
        if type(msg) is Down and type(msg.pid) is Pid and table.monitors.get(msg.pid) is msg.ref:
            table.monitors.pop(msg.pid)
            table.forget(msg.pid)


# -- via names (the kernel resolves them through these) -------------------------------------


def is_via(name: Any) -> bool:
    return type(name) is tuple and len(name) == 3 and name[0] == VIA


def via_whereis(name: tuple[str, Any, Any]) -> Pid | None:
    _, registry, key = name
    if type(registry) is str:
        table = _all().get(registry)
        if table is None or table.keys != "unique":
            return None
        for pid, _ in table.by_key.get(key, ()):  # (a lookup per call by a via name)
            if pid._proc is not None:
                return pid
        return None
    found: Pid | None = registry.whereis_name(key)
    return found


def via_names(pid: Pid) -> list[tuple[str, str, Any]]:
    """The via names `pid` holds in the node's registries of unique keys (for listings;
    a via module of your own is not asked)."""
    node = _node.current
    if node is None or _tables_of[0] is not node:
        return []
    return [
        (VIA, table.name, key)
        for table in _tables.values()
        if table.keys == "unique"
        for key in dict.fromkeys(table.by_pid.get(pid, ()))
    ]


def via_register(name: tuple[str, Any, Any], pid: Pid) -> None:
    _, registry, key = name
    if type(registry) is str:
        table = _table(registry)
        if table.keys != "unique":
            raise RegistryError(
                ("duplicate_keys", registry),
                f"a via name needs a registry of unique keys; {registry!r} has duplicate keys",
            )
        table.add(key, pid, None)
        return
    if not registry.register_name(key, pid):
        raise AlreadyRegisteredError(name, registry.whereis_name(key))
