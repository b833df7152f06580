"""What Supervisor and DynamicSupervisor share: starting a child, shutting children down,
counting restarts, and the supervisor reports."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import otp
from otp import KILL, KILLED, NORMAL, SHUTDOWN, Down, Exit, Pid, Ref, is_abnormal
from otp.gen import current
from otp.reports import emit, wanted

from ._child_spec import ChildSpec
from .gen_server import GenServer, UnexpectedMessage

__all__ = [
    "RESTARTING",
    "Child",
    "ChildCounts",
    "ChildInfo",
    "RestartIntensity",
    "SupervisorError",
    "SupervisorReport",
    "exit_is_restart",
    "exited_child",
    "monitor_child",
    "report",
    "request_supervisor",
    "shutdown_all",
    "shutdown_one",
    "start_child_process",
    "unexpected",
    "yield_before_retry",
]

RESTARTING: Final = "restarting"
"""The pid a child has while its restart keeps failing (the supervisor retries)."""

_logger = logging.getLogger("otp.supervisor")

ReportContext = Literal["start_error", "child_terminated", "shutdown_error", "shutdown"]


class SupervisorError(otp.OTPError):
    """A supervisor refused a request; `.reason` is `"not_found"`, `"running"`,
    `"restarting"`, `"already_present"`, `"max_children"`, or an `otp.AlreadyStartedError`.

    Args:
        reason: Why, kept as `.reason`.
        message: The text (default: `supervisor refused: <reason>`).
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"supervisor refused: {reason!r}")


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of `which_children`: `.pid` is a Pid, None (not running) or "restarting"."""

    id: Any
    pid: Pid | str | None
    type: str
    modules: tuple[Any, ...] | str


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """What `count_children` reports."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class SupervisorReport:
    """A supervisor event worth an operator's attention (logged on `otp.supervisor`).

    `context` is `start_error`, `child_terminated`, `shutdown_error`, or `shutdown` (with
    `reason="reached_max_restart_intensity"`). An auto shutdown is asked for, not reported.
    """

    supervisor: Any
    context: ReportContext
    reason: Any
    offender: Any


def report(supervisor: Any, context: ReportContext, reason: Any, offender: Any) -> None:
    """Log a `SupervisorReport` at ERROR (built only if someone will get it)."""
    if not wanted(_logger, logging.ERROR):
        return
    emit(
        _logger,
        logging.ERROR,
        SupervisorReport(supervisor, context, reason, offender),
        "SUPERVISOR REPORT supervisor=%s context=%s reason=%r offender=%s",
        supervisor,
        context,
        reason,
        offender.__qualname__ if isinstance(offender, type) else repr(offender),
    )


async def yield_before_retry() -> None:
    """Let the other processes run before a supervisor retries a failed restart: a start
    that fails without waiting would otherwise retry in a loop no one else gets into (OTP
    leaves the retry to a message to itself, behind whatever came meanwhile)."""
    await asyncio.sleep(0)


def unexpected(supervisor: Any, behaviour: type, msg: Any) -> None:
    """Log, at ERROR as OTP does, a message a supervisor has no use for. An exit signal
    from a process that is not a child is not one: it is ignored, as in OTP."""
    if type(msg) is Exit:
        return
    proc = current()
    emit(
        _logger,
        logging.ERROR,
        UnexpectedMessage(proc.pid, proc.regname, behaviour, msg),
        "supervisor %s received an unexpected message: %r",
        supervisor,
        msg,
    )


class Child:
    """A supervised child. A temporary child keeps no spec (nor start arguments): it is
    never restarted, so nothing of its start is worth holding. An anonymous child (a
    DynamicSupervisor's) is known by its pid: its spec's id names no one child."""

    __slots__ = (
        "anonymous",
        "args",
        "id",
        "modules",
        "pid",
        "ref",
        "restart",
        "restarts",
        "shutdown",
        "significant",
        "spec",
        "type",
    )

    def __init__(
        self,
        spec: ChildSpec,
        args: tuple[Any, ...] = (),
        *,
        anonymous: bool = False,
        unstarted: bool = False,
    ) -> None:
        """`unstarted`: added without being started (a code change); it keeps its spec
        until it starts, even if temporary, so that `restart_child` can start it."""
        self.anonymous = anonymous
        self.id = spec.id
        self.restart = spec.restart
        self.shutdown = spec.shutdown
        self.type = spec.type
        self.significant = spec.significant
        self.modules = spec.modules
        self.spec: ChildSpec | None = spec
        self.args = args
        if not unstarted:
            self.started()
        self.pid: Pid | str | None = None
        self.ref: Ref | None = None
        self.restarts = 0  # how often the supervisor restarted it (otp tree shows it)

    def started(self) -> None:
        """It has been started: a temporary child forgets how."""
        if self.restart == "temporary":
            self.spec, self.args = None, ()

    def use(self, spec: ChildSpec) -> None:
        """Take a changed spec (code change): it applies from the next (re)start."""
        self.restart = spec.restart
        self.shutdown = spec.shutdown
        self.type = spec.type
        self.significant = spec.significant
        self.modules = spec.modules
        self.spec = spec

    @property
    def running(self) -> bool:
        return type(self.pid) is Pid

    def row(self) -> tuple[Any, Any, str, int]:
        """Its `otp.sys.get_children` row: `(id, pid, type, restarts)`."""
        return (None if self.anonymous else self.id, self.pid, self.type, self.restarts)

    def info(self) -> ChildInfo:
        """Its `which_children` row; anonymous children show no id."""
        return ChildInfo(None if self.anonymous else self.id, self.pid, self.type, self.modules)

    def offender(self, pid: Any) -> Any:
        """How a report names the child that ran as `pid`: by id, or by pid if anonymous."""
        return pid if self.anonymous else self.id


async def start_child_process(spec: ChildSpec, extra: tuple[Any, ...] = ()) -> Pid | None:
    """Run the spec's start in the supervisor; the child's pid, linked and monitored by the
    caller, or None when it chose not to start. A failure raises `otp.StartError`."""
    fn, args = spec.start_call()
    latest = otp.code.latest  # an upgraded class or function starts as its new code
    fn, args = latest(fn), tuple(map(latest, args))
    try:
        result = await fn(*extra, *args)
    except otp.StartError:
        raise
    except otp.AlreadyStartedError as exc:
        raise otp.StartError(exc, f"child {spec.id!r} is already started as {exc.pid!r}") from exc
    except Exception as exc:
        raise otp.StartError(exc, f"child {spec.id!r} failed to start: {exc!r}") from exc
    if result is None or result is otp.IGNORE:
        return None
    if type(result) is not Pid:
        raise otp.StartError(
            ("bad_start_return", result),
            f"the start of child {spec.id!r} returned {result!r}; expected a Pid or None",
        )
    otp.link(result)  # whatever the start function did, a supervisor links its children
    return result


async def request_supervisor(sup: Any, request: Any) -> Any:
    """Call a supervisor's API; raise what it refused (SupervisorError) or what failed in it
    on the caller's behalf (StartError, InvalidChildSpec)."""
    status, value = await GenServer.call(sup, request, math.inf)
    if status == "ok":
        return value
    if status == "raise":
        raise value
    raise SupervisorError(value, f"supervisor {sup!r} refused {request!r}: {value!r}")


def exited_child(msg: Any, children: dict[Pid, Child]) -> Child | None:
    """The child `msg` reports the end of (an `Exit` through the link, or a `Down` for a
    child that had unlinked itself), taken out of `children`; None for anything else."""
    if type(msg) is Exit:
        child = children.pop(msg.pid, None)
        if child is not None and child.ref is not None:
            otp.demonitor(child.ref, flush=True)  # its Down would say it again
            return child
    elif type(msg) is Down:
        child = children.get(msg.pid)  # type: ignore[arg-type]
        if child is not None and child.ref is msg.ref:
            del children[msg.pid]  # type: ignore[arg-type]
            return child
    return None


def monitor_child(child: Child, pid: Pid) -> None:
    child.pid = pid
    child.ref = otp.monitor(pid)


async def _forget_exit(pid: Pid) -> None:
    """Drop an `Exit` of `pid` already queued (it died before we unlinked)."""
    try:  # noqa: SIM105  (an await cannot sit in contextlib.suppress any cheaper)
        await otp.receive(lambda m: type(m) is Exit and m.pid == pid, timeout=0)
    except TimeoutError:
        pass


def _expected(child: Child, reason: Any) -> bool:
    """A reason a shut-down child may end with without a `shutdown_error` report (OTP's
    `shutdown/1`): what it was sent (`killed` for brutal_kill, else `shutdown`), or, for a
    child that is not permanent, any normal end."""
    if reason == (KILLED if child.shutdown == "brutal_kill" else SHUTDOWN):
        return True
    if child.restart == "permanent":
        return False
    if reason in (SHUTDOWN, NORMAL):
        return True
    return type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN


async def shutdown_one(supervisor: Any, child: Child) -> Any:
    """Stop one running child as its `shutdown` says; wait until it is gone; its reason."""
    pid, ref = child.pid, child.ref
    child.pid, child.ref = None, None
    if type(pid) is not Pid or ref is None:
        return None
    otp.unlink(pid)
    await _forget_exit(pid)
    shutdown = child.shutdown
    otp.exit(pid, KILL if shutdown == "brutal_kill" else SHUTDOWN)

    def down(m: Any) -> bool:
        return type(m) is Down and m.ref is ref

    wait = None if shutdown in ("brutal_kill", math.inf) else float(shutdown)  # type: ignore[arg-type]
    try:
        msg = await otp.receive(down, wait)
    except TimeoutError:
        otp.exit(pid, KILL)
        msg = await otp.receive(down)
    if not _expected(child, msg.reason):
        report(supervisor, "shutdown_error", msg.reason, child.offender(pid))
    return msg.reason


async def shutdown_all(supervisor: Any, children: Iterable[Child]) -> None:
    """Stop many children at once (DynamicSupervisor): signal all, then collect every exit,
    killing the ones that outlive their shutdown time (one timer per distinct time)."""
    me = otp.self()
    pending: dict[Ref, Child] = {}
    timers: dict[float, otp.TimerRef] = {}
    for child in children:
        pid, ref = child.pid, child.ref
        if type(pid) is not Pid or ref is None:
            continue
        otp.unlink(pid)
        pending[ref] = child
        shutdown = child.shutdown
        if shutdown == "brutal_kill":
            otp.exit(pid, KILL)
        else:
            otp.exit(pid, SHUTDOWN)
            if (
                isinstance(shutdown, float | int)
                and shutdown != math.inf
                and shutdown not in timers
            ):
                timers[shutdown] = otp.send_after(shutdown, me, ("$shutdown_timeout", shutdown))

    def ours(m: Any) -> bool:
        if type(m) is Down:
            return m.ref in pending
        return type(m) is tuple and len(m) == 2 and m[0] == "$shutdown_timeout" and m[1] in timers

    while pending:
        msg = await otp.receive(ours)
        if type(msg) is Down:
            child = pending.pop(msg.ref)
            if not _expected(child, msg.reason):
                report(supervisor, "shutdown_error", msg.reason, child.offender(child.pid))
            child.pid, child.ref = None, None
        else:
            late = msg[1]
            del timers[late]
            for child in pending.values():
                if child.shutdown == late and type(child.pid) is Pid:
                    otp.exit(child.pid, KILL)
    for timer in timers.values():
        otp.cancel_timer(timer)


def exit_is_restart(supervisor: Any, child: Child, reason: Any) -> bool:
    """Report a child's own exit as OTP does; True when its restart type asks for a restart
    (permanent: always; transient: after an abnormal exit; temporary: never)."""
    pid = child.pid
    child.pid, child.ref = None, None
    abnormal = is_abnormal(reason)
    if child.restart == "permanent" or abnormal:
        report(supervisor, "child_terminated", reason, child.offender(pid))
    return child.restart == "permanent" or (child.restart == "transient" and abnormal)


class RestartIntensity:
    """At most `intensity` restarts within any `period` seconds (a sliding window)."""

    __slots__ = ("clock", "intensity", "period", "restarts")

    def __init__(
        self, intensity: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.intensity = intensity
        self.period = period
        self.clock = clock
        self.restarts: deque[float] = deque()

    def add(self) -> bool:
        """Record a restart; False when that is one too many."""
        now = self.clock()
        restarts = self.restarts
        restarts.append(now)
        while restarts and now - restarts[0] > self.period:
            restarts.popleft()
        return len(restarts) <= self.intensity
