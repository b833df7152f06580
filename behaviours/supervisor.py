"""Supervisor: starts children in order, restarts them by strategy, stops them in reverse.

| API                                             | what the supervisor does                |
|-------------------------------------------------|-----------------------------------------|
| `Supervisor.start_link(children, strategy=...)` | validate, start children in list order  |
| `Sub.start_link(arg)`                           | the same with `Sub().init(arg)`'s result |
| a child exits                                   | restart by type, strategy and intensity  |
| `start_child` / `terminate_child` / ...         | administer one child                    |
| `otp.sys.change_code(sup, ...)` (subclass)      | re-read `init`: new flags, specs        |
| the supervisor is stopped                       | stop children in exact reverse order    |

    class Root(Supervisor):
        def init(self, arg):
            return Supervisor.flags(strategy="rest_for_one"), [Store, (Worker, arg)]

    root = await Root.start_link("arg", name="root")

The supervisor is a GenServer (`_SupervisorServer`) that traps exits and both links and
monitors each child, so a child that unlinks itself is still supervised.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import otp
from otp import IGNORE, SHUTDOWN, Pid
from otp.gen import current

from ._child_spec import ChildSpec, InvalidChildSpec, check, to_spec
from ._results import BadReturn, NoReply, Reply, Stop
from ._supervision import (
    RESTARTING,
    Child,
    ChildCounts,
    ChildInfo,
    RestartIntensity,
    SupervisorError,
    exit_is_restart,
    exited_child,
    monitor_child,
    report,
    request_supervisor,
    shutdown_one,
    start_child_process,
    unexpected,
    yield_before_retry,
)
from .gen_server import GenServer, Name, warn_misspelled

__all__ = ["AutoShutdown", "ChildCounts", "ChildInfo", "Strategy", "SupFlags", "Supervisor"]

AutoShutdown = Literal["never", "any_significant", "all_significant"]
AUTO_SHUTDOWNS: Final = ("never", "any_significant", "all_significant")
TRY_AGAIN: Final = "$try_again_restart"


class Strategy(enum.StrEnum):
    """Which children a supervisor restarts when one of them exits."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


@dataclass(frozen=True, slots=True)
class SupFlags:
    """A supervisor's flags (`Supervisor.flags(...)` builds and checks them).

    `clock` is the time source for the restart window (seconds, monotonic); tests pass
    their own to count restarts without sleeping.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: AutoShutdown = "never"
    clock: Callable[[], float] = time.monotonic


def check_flags(
    strategy: Any = Strategy.ONE_FOR_ONE,
    intensity: Any = 1,
    period: Any = 5.0,
    auto_shutdown: Any = "never",
    clock: Any = time.monotonic,
) -> SupFlags:
    try:
        strategy = Strategy(strategy)
    except ValueError:
        raise ValueError(
            "invalid supervisor flags: strategy must be 'one_for_one', 'one_for_all' or "
            f"'rest_for_one'\nGot: {strategy!r}"
        ) from None
    if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 0:
        raise ValueError(
            f"invalid supervisor flags: intensity must be an int >= 0\nGot: {intensity!r}"
        )
    if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period < math.inf:
        raise ValueError(
            f"invalid supervisor flags: period must be seconds > 0 (and finite)\nGot: {period!r}"
        )
    if auto_shutdown not in AUTO_SHUTDOWNS:
        raise ValueError(
            "invalid supervisor flags: auto_shutdown must be 'never', 'any_significant' or "
            f"'all_significant'\nGot: {auto_shutdown!r}"
        )
    if not callable(clock):
        raise ValueError(f"invalid supervisor flags: clock must be callable\nGot: {clock!r}")
    return SupFlags(Strategy(strategy), intensity, float(period), auto_shutdown, clock)


def check_children(entries: Any, flags: SupFlags) -> list[ChildSpec]:
    """The checked specs of a child list: valid forms, unique ids, significance allowed."""
    if not isinstance(entries, list | tuple):
        raise InvalidChildSpec("expected a list of children", entries)
    specs = [check_significance(to_spec(entry), flags) for entry in entries]
    seen: set[Any] = set()
    for spec in specs:
        if spec.id in seen:
            hint = ""
            if isinstance(spec.id, type):  # two children of one class: ids default to it
                name = spec.id.__qualname__
                hint = (
                    f"; each child of {name} needs an id of its own: "
                    f"{name}.child_spec(arg, id=..., name=...)"
                )
            raise InvalidChildSpec(f"duplicate child id {spec.id!r}{hint}", spec.id, "id")
        seen.add(spec.id)
    return specs


def check_significance(spec: ChildSpec, flags: SupFlags) -> ChildSpec:
    if spec.significant and flags.auto_shutdown == "never":
        raise InvalidChildSpec(
            f"invalid child spec {spec.id!r}: significant=True needs a supervisor with "
            "auto_shutdown='any_significant' or 'all_significant' (this one has 'never')",
            spec.significant,
            "significant",
        )
    return spec


class Supervisor:
    """Base class of a module-based supervisor, and the supervisor API (static methods)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "init" not in vars(cls):
            warn_misspelled(cls, ("init",), cutoff=0.7)

    def init(self, arg: Any) -> Any:
        """Return `(Supervisor.flags(...), [children])`, or `otp.IGNORE`.

        Runs in the new supervisor process, before `start_link` returns.

        Args:
            arg: The `arg` given to `start_link`.

        Returns:
            The flags and the children (each a class, `(class, arg)` or a `ChildSpec`),
            or `otp.IGNORE` (then `start_link` returns None).
        """
        raise NotImplementedError(f"{type(self).__qualname__} defines no init(arg)")

    @staticmethod
    def flags(
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown = "never",
        clock: Callable[[], float] = time.monotonic,
    ) -> SupFlags:
        """Checked supervisor flags; a bad value raises ValueError naming it.

        Args:
            strategy: `"one_for_one"` (default), `"one_for_all"` or `"rest_for_one"`.
            intensity: The most restarts allowed within `period` (default 1).
            period: Seconds the restarts are counted over (default 5.0).
            auto_shutdown: `"never"` (default), `"any_significant"` or `"all_significant"`.
            clock: The clock restarts are timed with (default `time.monotonic`; for tests).

        Returns:
            The `SupFlags`.

        Raises:
            ValueError: A bad value (the message names it).
        """
        return check_flags(strategy, intensity, period, auto_shutdown, clock)

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: Name | None = None,
        strategy: Strategy | str = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown = "never",
        clock: Callable[[], float] = time.monotonic,
    ) -> Pid | None:
        """Start a supervisor linked to the caller; its pid, or None if `init` ignored.

        On `Supervisor` itself `arg` is the list of children and the keywords are the
        flags; a bad flag or spec raises before anything starts. On a subclass, `arg` goes
        to `init`. A child that fails to start fails the start with `otp.StartError`
        (reason `("shutdown", ("failed_to_start_child", id, reason))`).

        Args:
            arg: On `Supervisor`: the children; on a subclass: passed to `init` (default None).
            name: A name to register it under (default None).
            strategy: The restart strategy, on `Supervisor` only (default `"one_for_one"`).
            intensity: The most restarts within `period`, on `Supervisor` only (default 1).
            period: Seconds the restarts are counted over, on `Supervisor` only (default 5.0).
            auto_shutdown: On `Supervisor` only (default `"never"`).
            clock: The restart clock, on `Supervisor` only (default `time.monotonic`).

        Returns:
            The pid, or None if `init` returned `otp.IGNORE`.

        Raises:
            otp.StartError: A child failed to start, or `init` failed.
            otp.AlreadyStartedError: `name` is taken.
            InvalidChildSpec: A bad child (a `ValueError`), before anything starts.
            ValueError: A bad flag.
            TypeError: Flags passed to a subclass's `start_link` (they come from its `init`).
        """
        if cls is Supervisor:
            flags = check_flags(strategy, intensity, period, auto_shutdown, clock)
            preset: tuple[SupFlags, list[ChildSpec]] | None = (flags, check_children(arg, flags))
        elif (strategy, intensity, period, auto_shutdown, clock) != _DEFAULT_FLAGS:
            raise TypeError(
                f"{cls.__qualname__}.start_link() takes (arg, name=...): the flags of a "
                f"module-based supervisor come from its init, as Supervisor.flags(...)"
            )
        else:
            preset = None
        try:
            return await _SupervisorServer.start_link((cls, arg, preset), name=name)
        except otp.StartError as err:
            if isinstance(err.reason, ValueError):  # a bad spec or flag from init
                raise err.reason from None
            raise otp.StartError(
                err.reason, f"{cls.__qualname__} failed to start: {err.reason!r}"
            ) from None

    @classmethod
    def child_spec(cls, arg: Any = None, **overrides: Any) -> ChildSpec:
        """The spec to run this supervisor under another one (type "supervisor").

        Args:
            arg: Passed to `start_link` (default None).
            **overrides: `name=` for `start_link`, or `ChildSpec` fields to replace.

        Returns:
            A `ChildSpec` (id: the class; shutdown: `math.inf`).
        """
        name = overrides.pop("name", None)
        start = (cls.start_link, arg) if name is None else (_named_start, cls, arg, name)
        spec = ChildSpec(id=cls, start=start, shutdown=math.inf, type="supervisor", modules=(cls,))
        return spec.replace(**overrides) if overrides else spec

    # -- administering children --------------------------------------------------------

    @staticmethod
    async def start_child(sup: Any, child: Any) -> Pid | None:
        """Add a child and start it; its pid (None if it ignored the start).

        Args:
            sup: The supervisor (a Pid or a name).
            child: A class, `(class, arg)` or a `ChildSpec`.

        Returns:
            The child's pid, or None.

        Raises:
            SupervisorError: `.reason` is `"already_present"` (its id is known, not running)
                or an `otp.AlreadyStartedError` (its id runs).
            otp.StartError: The child failed to start.
            InvalidChildSpec: A bad child.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        spec = to_spec(child)
        return await request_supervisor(sup, ("start_child", spec))  # type: ignore[no-any-return]

    @staticmethod
    async def terminate_child(sup: Any, id: Any) -> None:
        """Stop a child (as its shutdown says); its spec stays, except a temporary one's.

        Args:
            sup: The supervisor (a Pid or a name).
            id: The child's id.

        Raises:
            SupervisorError: `"not_found"`: no child has that id.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        await request_supervisor(sup, ("terminate_child", id))

    @staticmethod
    async def restart_child(sup: Any, id: Any) -> Pid | None:
        """Start again a child that is not running.

        Args:
            sup: The supervisor (a Pid or a name).
            id: The child's id.

        Returns:
            The child's pid, or None if it ignored the start.

        Raises:
            SupervisorError: `"not_found"`, `"running"` or `"restarting"`.
            otp.StartError: The child failed to start.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        return await request_supervisor(sup, ("restart_child", id))  # type: ignore[no-any-return]

    @staticmethod
    async def delete_child(sup: Any, id: Any) -> None:
        """Forget a child that is not running.

        Args:
            sup: The supervisor (a Pid or a name).
            id: The child's id.

        Raises:
            SupervisorError: `"not_found"`, `"running"` or `"restarting"`.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        await request_supervisor(sup, ("delete_child", id))

    @staticmethod
    async def which_children(sup: Any) -> list[ChildInfo]:
        """Every child: a Supervisor lists the last added first (the reverse of its child
        list; a restart keeps a child's place), a DynamicSupervisor the oldest first (a
        restarted child counts as new; those still restarting come last).

        Args:
            sup: The supervisor (a Pid or a name).

        Returns:
            A `ChildInfo` per child.

        Raises:
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        return await request_supervisor(sup, "which_children")  # type: ignore[no-any-return]

    @staticmethod
    async def count_children(sup: Any) -> ChildCounts:
        """How many specs, running children, supervisors and workers.

        Args:
            sup: The supervisor (a Pid or a name).

        Returns:
            A `ChildCounts`.

        Raises:
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        return await request_supervisor(sup, "count_children")  # type: ignore[no-any-return]

    @staticmethod
    async def get_childspec(sup: Any, id: Any) -> ChildSpec:
        """The spec of a child.

        Args:
            sup: The supervisor (a Pid or a name).
            id: The child's id.

        Returns:
            Its `ChildSpec`.

        Raises:
            SupervisorError: `"not_found"`: no child has that id.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        return await request_supervisor(sup, ("get_childspec", id))  # type: ignore[no-any-return]


_DEFAULT_FLAGS: Final = (Strategy.ONE_FOR_ONE, 1, 5.0, "never", time.monotonic)


async def _named_start(cls: type[Supervisor], arg: Any, name: str) -> Pid | None:
    return await cls.start_link(arg, name=name)


# -- the supervisor process ----------------------------------------------------------------


class _State:
    """A running supervisor: its flags, children (in start order) and restart history."""

    __slots__ = (
        "arg",
        "by_pid",
        "children",
        "flags",
        "intensity",
        "name",
        "owner",
        "spec_changes",
    )

    def __init__(self, owner: type[Supervisor], arg: Any, flags: SupFlags) -> None:
        self.owner = owner
        self.arg = arg
        self.name: Any = None
        self.children: list[Child] = []
        self.by_pid: dict[Pid, Child] = {}
        self.flags = flags
        self.intensity = RestartIntensity(flags.intensity, flags.period, flags.clock)
        # (ids a code change added, ids it no longer lists): for sys_apply_child_specs
        self.spec_changes: tuple[list[Any], list[Any]] = ([], [])

    def set_flags(self, flags: SupFlags) -> None:
        """New flags (a code change); the restarts already counted still count, as in OTP."""
        history = self.intensity.restarts
        self.flags = flags
        self.intensity = RestartIntensity(flags.intensity, flags.period, flags.clock)
        self.intensity.restarts = type(history)(history)

    def find(self, id: Any) -> Child | None:
        for child in self.children:
            if child.id == id:
                return child
        return None


class _SupervisorServer(GenServer[_State]):
    """The GenServer every static supervisor runs."""

    async def init(self, arg: tuple[type[Supervisor], Any, Any]) -> Any:
        owner, user_arg, preset = arg
        otp.process_flag("trap_exit", True)
        me = current()
        me.behaviour = owner
        if preset is None:
            result = await _run_init(owner, user_arg)
            if result is IGNORE:
                return IGNORE
            flags, specs = result
        else:
            flags, specs = preset
        state = _State(owner, user_arg, flags)
        state.name = me.regname or me.pid
        for spec in specs:
            child = Child(spec)
            try:
                pid = await start_child_process(spec)
            except otp.StartError as err:
                report(state.name, "start_error", err.reason, spec.id)
                await _stop_children(state)
                return Stop((SHUTDOWN, ("failed_to_start_child", spec.id, err.reason)))
            if pid is not None:
                monitor_child(child, pid)
                state.by_pid[pid] = child
            elif spec.restart == "temporary":
                continue
            state.children.append(child)
        return state

    async def handle_call(self, request: Any, from_: Any, state: _State) -> Any:
        try:
            value = await _administer(state, request)
        except SupervisorError as refused:
            return Reply(("error", refused.reason), state)
        except (otp.StartError, InvalidChildSpec) as failed:  # raised again in the caller
            return Reply(("raise", failed), state)
        return Reply(("ok", value), state)

    async def handle_info(self, msg: Any, state: _State) -> Any:
        child = exited_child(msg, state.by_pid)
        if child is not None:
            return await _child_exited(state, child, msg.reason)
        if type(msg) is tuple and len(msg) == 2 and msg[0] == TRY_AGAIN:
            child = state.find(msg[1])
            if child is not None and child.pid == RESTARTING:
                await yield_before_retry()
                return await _restart(state, child)
        else:
            unexpected(state.name, state.owner, msg)
        return NoReply(state)

    async def terminate(self, reason: Any, state: _State) -> None:
        await _stop_children(state)

    def sys_children(self, state: _State) -> list[tuple[Any, Any, str, int]]:
        return [child.row() for child in state.children]

    async def code_change(self, old_vsn: Any, state: _State, extra: Any) -> _State:
        """Re-read `init`: new flags apply, new specs are added (not started), changed
        specs update their children; nothing changes if anything is invalid. As in OTP, the
        children then start (and stop) in the new init's order, and those it no longer
        lists come after them, in their old order."""
        if state.owner is Supervisor:
            return state
        owner = otp.code.target_class(state.owner)  # the upgraded class, if there is one
        result = await _run_init(owner, state.arg)
        current().behaviour = owner
        # a new state: the old one stays intact, for an upgrade that is undone to go back to
        new = copy.copy(state)
        new.owner = owner
        copies = {id(child): copy.copy(child) for child in state.children}
        for copied in copies.values():  # an id that is a class (the default) is upgraded too
            if isinstance(copied.id, type):
                with contextlib.suppress(LookupError):
                    copied.id = otp.code.target_class(copied.id)
        new.children = [copies[id(child)] for child in state.children]
        new.by_pid = {pid: copies[id(child)] for pid, child in state.by_pid.items()}
        if result is IGNORE:
            return new
        flags, specs = result
        ordered: list[Child] = []
        added: list[Any] = []
        for spec in specs:
            child = new.find(spec.id)
            if child is None:
                child = Child(spec, unstarted=True)
                added.append(spec.id)
            else:
                child.use(spec)
            ordered.append(child)
        listed = {spec.id for spec in specs}
        gone = [c for c in new.children if c.id not in listed]
        new.children = ordered + gone
        new.spec_changes = (added, [c.id for c in gone])
        new.set_flags(flags)
        return new

    async def sys_apply_child_specs(self, state: _State) -> _State:
        """After a release install: start the children a code change added, stop and delete
        those the new init no longer lists (a plain code change leaves both, as in OTP)."""
        added, gone = state.spec_changes
        state.spec_changes = ([], [])
        for id in gone:
            child = state.find(id)
            if child is None:
                continue
            if child.running:
                state.by_pid.pop(child.pid, None)  # type: ignore[arg-type]
                await shutdown_one(state.name, child)
            _remove(state, child)
        for id in added:
            child = state.find(id)
            if child is None or child.running or child.spec is None:
                continue
            try:
                pid = await start_child_process(child.spec, child.args)
            except otp.StartError as err:
                report(state.name, "start_error", err.reason, id)
                continue
            if pid is not None:
                monitor_child(child, pid)
                state.by_pid[pid] = child
                child.started()
        return state


async def _run_init(owner: type[Supervisor], arg: Any) -> Any:
    result = owner().init(arg)
    if hasattr(result, "__await__"):
        result = await result
    if result is IGNORE:
        return IGNORE
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], SupFlags)):
        raise BadReturn(
            f"{owner.__qualname__}.init",
            result,
            "(Supervisor.flags(...), [children]) or otp.IGNORE",
        )
    flags, entries = result
    return flags, check_children(entries, flags)


async def _stop_children(state: _State) -> None:
    """Stop every running child, last started first."""
    for child in reversed(state.children):
        if child.running:
            state.by_pid.pop(child.pid, None)  # type: ignore[arg-type]
            await shutdown_one(state.name, child)
        elif child.pid == RESTARTING:
            child.pid = None


def _remove(state: _State, child: Child) -> None:
    state.children.remove(child)


async def _child_exited(state: _State, child: Child, reason: Any) -> Any:
    """A child ended by itself: restart it (and maybe others), or let it be."""
    if not exit_is_restart(state.name, child, reason):
        if child.restart == "temporary":
            _remove(state, child)
        if child.significant and _auto_shutdown(state):  # asked for: no report, as in OTP
            return Stop(SHUTDOWN, state)
        return NoReply(state)
    return await _restart(state, child)


def _auto_shutdown(state: _State) -> bool:
    mode = state.flags.auto_shutdown
    if mode == "any_significant":
        return True
    if mode == "all_significant":
        return not any(c.significant and c.pid is not None for c in state.children)
    return False


async def _restart(state: _State, child: Child) -> Any:
    """Count a restart; past the intensity, shut down; else restart by strategy."""
    if not state.intensity.add():
        report(state.name, "shutdown", "reached_max_restart_intensity", child.id)
        return Stop(SHUTDOWN, state)
    strategy = state.flags.strategy
    if strategy == Strategy.ONE_FOR_ONE:
        group = [child]
    else:
        index = state.children.index(child)
        group = state.children if strategy == Strategy.ONE_FOR_ALL else state.children[index:]
        for other in reversed(group):
            if other.running:
                state.by_pid.pop(other.pid, None)  # type: ignore[arg-type]
                await shutdown_one(state.name, other)
            other.pid = None  # one still restarting (a retry) starts with the group
        for other in [c for c in group if c.restart == "temporary" and c is not child]:
            _remove(state, other)  # temporary bystanders are not restarted
        group = [c for c in group if c in state.children]
    await _start_group(state, group)
    return NoReply(state)


async def _start_group(state: _State, group: Sequence[Child]) -> None:
    """Start `group` in order. On a failure, mark that child restarting and retry later
    (the supervisor keeps answering meanwhile); as in OTP, what this round started runs
    until the retry restarts the group from the failed child."""
    for child in group:
        assert child.spec is not None
        try:
            pid = await start_child_process(child.spec, child.args)
        except otp.StartError as err:
            report(state.name, "start_error", err.reason, child.id)
            child.pid = RESTARTING
            otp.send(otp.self(), (TRY_AGAIN, child.id))
            return
        child.restarts += 1
        if pid is not None:
            monitor_child(child, pid)
            state.by_pid[pid] = child


async def _administer(state: _State, request: Any) -> Any:
    """The supervisor API, in the supervisor process."""
    match request:
        case "which_children":
            return [child.info() for child in reversed(state.children)]
        case "count_children":
            supervisors = sum(1 for c in state.children if c.type == "supervisor")
            return ChildCounts(
                specs=len(state.children),
                active=sum(1 for c in state.children if c.running),
                supervisors=supervisors,
                workers=len(state.children) - supervisors,
            )
        case ("get_childspec", id):
            child = _existing(state, id)
            if child.spec is None:
                raise SupervisorError("not_found")
            return child.spec
        case ("start_child", spec):
            spec = check_significance(check(spec), state.flags)
            existing = state.find(spec.id)
            if existing is not None:
                if existing.running:
                    raise SupervisorError(otp.AlreadyStartedError(existing.pid))
                raise SupervisorError("already_present")
            child = Child(spec)
            pid = await start_child_process(spec)
            if pid is not None:
                monitor_child(child, pid)
                state.by_pid[pid] = child
            elif spec.restart == "temporary":
                return None
            state.children.append(child)
            return pid
        case ("terminate_child", id):
            child = _existing(state, id)
            if child.running:
                state.by_pid.pop(child.pid, None)  # type: ignore[arg-type]
                await shutdown_one(state.name, child)
            child.pid = None
            if child.restart == "temporary":
                _remove(state, child)
            return None
        case ("restart_child", id):
            child = _existing(state, id)
            _not_running(child)
            assert child.spec is not None
            pid = await start_child_process(child.spec, child.args)
            if pid is not None:
                monitor_child(child, pid)
                state.by_pid[pid] = child
                child.started()  # (one that ignored stays, and can be restarted again)
            return pid
        case ("delete_child", id):
            child = _existing(state, id)
            _not_running(child)
            _remove(state, child)
            return None
    raise SupervisorError(("unknown_request", request))


def _existing(state: _State, id: Any) -> Child:
    child = None if type(id) is Pid else state.find(id)
    if child is None:
        raise SupervisorError("not_found")
    return child


def _not_running(child: Child) -> None:
    if child.running:
        raise SupervisorError("running")
    if child.pid == RESTARTING:
        raise SupervisorError("restarting")
