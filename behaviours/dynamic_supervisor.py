"""DynamicSupervisor: children started on demand, all alike, stopped all at once.

| API                                        | what the supervisor does                     |
|--------------------------------------------|----------------------------------------------|
| `DynamicSupervisor.start_link(...)`        | start with no children                       |
| `start_child(sup, spec)`                   | start one (`extra_arguments` go first)        |
| a child exits                              | restart it by its restart type (one_for_one) |
| `terminate_child(sup, pid)`                | stop that child                              |
| the supervisor is stopped                  | stop every child concurrently                |

Children are known by pid; the spec of a temporary child is not kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import otp
from otp import SHUTDOWN, Pid
from otp.gen import current

from ._child_spec import ChildSpec, InvalidChildSpec, check, to_spec
from ._results import NoReply, Reply, Stop
from ._supervision import (
    Child,
    ChildCounts,
    RestartIntensity,
    exit_is_restart,
    exited_child,
    monitor_child,
    report,
    request_supervisor,
    shutdown_all,
    shutdown_one,
    start_child_process,
    unexpected,
    yield_before_retry,
)
from .gen_server import GenServer, Name
from .supervisor import Supervisor, check_flags

__all__ = ["DynamicSupervisor"]

TRY_AGAIN: Final = "$try_again_restart"


class DynamicSupervisor:
    """The DynamicSupervisor API (static methods; there is nothing to subclass)."""

    @staticmethod
    async def start_link(
        name: Name | None = None,
        strategy: str = "one_for_one",
        intensity: int = 3,
        period: float = 5.0,
        max_children: float = math.inf,
        extra_arguments: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> Pid:
        """Start an empty dynamic supervisor linked to the caller.

        Args:
            name: A name to register it under (default None).
            strategy: `"one_for_one"`, the only one (default).
            intensity: The most restarts within `period` (default 3).
            period: Seconds the restarts are counted over (default 5.0).
            max_children: The most children at once (default `math.inf`).
            extra_arguments: Passed first to every child's start (default `()`).
            clock: The restart clock (default `time.monotonic`; for tests).

        Returns:
            The supervisor's pid.

        Raises:
            ValueError: A bad value (the message names it).
            otp.AlreadyStartedError: `name` is taken.
        """
        if strategy != "one_for_one":
            raise ValueError(f"a DynamicSupervisor's strategy is 'one_for_one'\nGot: {strategy!r}")
        flags = check_flags(strategy, intensity, period, "never", clock)
        if isinstance(max_children, bool) or not (
            isinstance(max_children, int | float) and max_children >= 0
        ):
            raise ValueError(f"max_children must be a number >= 0\nGot: {max_children!r}")
        if not isinstance(extra_arguments, list | tuple):
            raise ValueError(f"extra_arguments must be a list or tuple\nGot: {extra_arguments!r}")
        setup = _Setup(
            RestartIntensity(flags.intensity, flags.period, flags.clock),
            max_children,
            tuple(extra_arguments),
        )
        pid = await _DynamicServer.start_link(setup, name=name)
        assert pid is not None
        return pid

    @staticmethod
    def child_spec(**options: Any) -> ChildSpec:
        """The spec to run a DynamicSupervisor under a Supervisor (`id` defaults to the
        name, or the DynamicSupervisor class).

        Args:
            **options: `id=`, and the keywords of `start_link`.

        Returns:
            A `ChildSpec` of type "supervisor".
        """
        name = options.get("name")
        spec_id = options.pop("id", name if name is not None else DynamicSupervisor)
        return ChildSpec(
            id=spec_id,
            start=(_start_with, options),
            type="supervisor",
            modules=(DynamicSupervisor,),
        )

    @staticmethod
    async def start_child(sup: Any, child: Any) -> Pid | None:
        """Start a child; its pid, or None if it ignored the start.

        Args:
            sup: The supervisor (a Pid or a name).
            child: A class, `(class, arg)` or a `ChildSpec`.

        Returns:
            The child's pid, or None.

        Raises:
            SupervisorError: `"max_children"`: it has `max_children` children already.
            otp.StartError: The child failed to start.
            InvalidChildSpec: A bad child, or a significant one.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        spec = to_spec(child)
        if spec.significant:
            raise InvalidChildSpec(
                "a DynamicSupervisor has no auto_shutdown: its children cannot be significant",
                spec.significant,
                "significant",
            )
        return await request_supervisor(sup, ("start_child", spec))  # type: ignore[no-any-return]

    @staticmethod
    async def terminate_child(sup: Any, pid: Pid) -> None:
        """Stop the child `pid`; `SupervisorError("not_found")` if it is not a child.

        Args:
            sup: The supervisor (a Pid or a name).
            pid: The child's pid.

        Raises:
            SupervisorError: `"not_found"`: `pid` is not its child.
            otp.CallError: `sup` is not running (`.reason == NOPROC`).
        """
        await request_supervisor(sup, ("terminate_child", pid))

    # The same requests as a Supervisor's: rows have no id, and `specs` counts every child.
    which_children = staticmethod(Supervisor.which_children)
    count_children = staticmethod(Supervisor.count_children)


async def _start_with(options: dict[str, Any]) -> Pid:
    return await DynamicSupervisor.start_link(**options)


class _Setup:
    __slots__ = ("extra", "intensity", "max_children")

    def __init__(
        self, intensity: RestartIntensity, max_children: float, extra: tuple[Any, ...]
    ) -> None:
        self.intensity = intensity
        self.max_children = max_children
        self.extra = extra


class _State:
    __slots__ = ("children", "name", "restarting", "setup")

    def __init__(self, setup: _Setup, name: Any) -> None:
        self.setup = setup
        self.name = name
        self.children: dict[Pid, Child] = {}
        self.restarting: dict[Pid, Child] = {}  # by the pid each had before it exited


class _DynamicServer(GenServer[_State]):
    """The GenServer every DynamicSupervisor runs."""

    def init(self, setup: _Setup) -> _State:
        otp.process_flag("trap_exit", True)
        me = current()
        me.behaviour = DynamicSupervisor
        return _State(setup, me.regname or me.pid)

    async def handle_call(self, request: Any, from_: Any, state: _State) -> Any:
        match request:
            case ("start_child", spec):
                if len(state.children) + len(state.restarting) >= state.setup.max_children:
                    return Reply(("error", "max_children"), state)
                spec = check(spec)
                try:
                    pid = await start_child_process(spec, state.setup.extra)
                except otp.StartError as failed:  # raised again in the caller
                    return Reply(("raise", failed), state)
                if pid is not None:
                    child = Child(spec, state.setup.extra, anonymous=True)
                    monitor_child(child, pid)
                    state.children[pid] = child
                return Reply(("ok", pid), state)
            case ("terminate_child", pid):
                found = state.children.pop(pid, None) if type(pid) is Pid else None
                if found is not None:
                    await shutdown_one(state.name, found)
                    return Reply(("ok", None), state)
                if state.restarting.pop(pid, None) is not None:  # stuck restarting: let go
                    return Reply(("ok", None), state)
                return Reply(("error", "not_found"), state)
            case "which_children":
                infos = [c.info() for c in state.children.values()]
                infos += [c.info() for c in state.restarting.values()]
                return Reply(("ok", infos), state)
            case "count_children":
                everyone = [*state.children.values(), *state.restarting.values()]
                supervisors = sum(1 for c in everyone if c.type == "supervisor")
                counts = ChildCounts(
                    specs=len(everyone),
                    active=len(state.children),
                    supervisors=supervisors,
                    workers=len(everyone) - supervisors,
                )
                return Reply(("ok", counts), state)
        return Reply(("error", ("unknown_request", request)), state)

    async def handle_info(self, msg: Any, state: _State) -> Any:
        child = exited_child(msg, state.children)
        if child is not None:
            return await _exited(state, child, msg.reason)
        if type(msg) is tuple and len(msg) == 2 and msg[0] == TRY_AGAIN:
            waiting = state.restarting.pop(msg[1], None)
            if waiting is not None:
                await yield_before_retry()
                return await _restart(state, waiting, msg[1])
        else:
            unexpected(state.name, DynamicSupervisor, msg)
        return NoReply(state)

    def sys_children(self, state: _State) -> list[tuple[Any, Any, str, int]]:
        rows = [child.row() for child in state.children.values()]
        return rows + [child.row() for child in state.restarting.values()]

    async def terminate(self, reason: Any, state: _State) -> None:
        state.restarting.clear()
        await shutdown_all(state.name, list(state.children.values()))
        state.children.clear()


async def _exited(state: _State, child: Child, reason: Any) -> Any:
    old_pid = child.pid
    assert type(old_pid) is Pid
    if not exit_is_restart(state.name, child, reason):
        return NoReply(state)
    return await _restart(state, child, old_pid)


async def _restart(state: _State, child: Child, old_pid: Pid) -> Any:
    if not state.setup.intensity.add():
        report(state.name, "shutdown", "reached_max_restart_intensity", old_pid)
        return Stop(SHUTDOWN, state)
    assert child.spec is not None
    try:
        pid = await start_child_process(child.spec, child.args)
    except otp.StartError as err:
        report(state.name, "start_error", err.reason, old_pid)
        child.pid = "restarting"
        state.restarting[old_pid] = child  # known by the pid it had: terminate_child finds it
        otp.send(otp.self(), (TRY_AGAIN, old_pid))
        return NoReply(state)
    child.restarts += 1
    if pid is not None:  # a restart that is ignored drops the child
        monitor_child(child, pid)
        state.children[pid] = child
    return NoReply(state)
