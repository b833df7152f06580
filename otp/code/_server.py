"""The code server: a kernel process that upgrades a module's running processes in place.

An upgrade of module M, all or nothing:
  1. load M's new source into a fresh module (the old module object is kept);
  2. every process running a behaviour class of M suspends itself, switches to the class
     of the same name in the new module and runs its `code_change(old_vsn, state, extra)`
     (one system message, `upgrade_code`; a downgrade runs the current code's
     `code_change(("down", vsn), ...)` first, then switches); each snapshots its state first;
  3. commit (later starts of M's classes use the new ones) and resume them all.
If anything fails, the old module goes back, every process that changed reverts to its old
class and snapshot, all resume, and `UpgradeError` names the module, the process and why.
Messages sent meanwhile wait in the mailboxes: none is lost or reordered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Final

from .. import _call, _node
from .._mailbox import deliver, receive
from .._node import make_ref
from .._registry import register, whereis
from .._signals import kill
from .._spawn import spawn
from .._values import KILLED, Pid
from ..errors import CallError, OTPError
from ..reports import emit
from ..sys import SYSTEM
from . import _modules

__all__ = [
    "Change",
    "CodeReport",
    "CodeTable",
    "UpgradeError",
    "UpgradeReport",
    "latest",
    "perform",
    "request",
    "table",
]

SERVER: Final = "code_server"
KIND: Final = "$code"
DEFAULT_TIMEOUT: Final = 5.0

_logger = logging.getLogger("otp.code")


class UpgradeError(OTPError):
    """An upgrade that failed and was undone; `.module`, `.reason`, and `.pid` when one
    process's `code_change` failed (or did not answer).

    Args:
        module: The module's name.
        reason: Why it failed.
        pid: The process whose `code_change` failed (default None).
    """

    def __init__(self, module: str, reason: Any, pid: Pid | None = None) -> None:
        self.module = module
        self.reason = reason
        self.pid = pid
        where = "" if pid is None else f" in {pid!r}"
        super().__init__(
            f"upgrade of {module} failed{where}: {reason!r}; the old code and states are back"
        )


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    """A module upgraded: its versions before and after, and the processes switched."""

    module: str
    old_vsn: str
    new_vsn: str
    processes: tuple[Pid, ...]
    seconds: float = 0.0
    longest_pause: float = 0.0


@dataclass(frozen=True, slots=True)
class CodeReport:
    """An upgrade of `module` that was done (`context="upgraded"`) or undone ("failed")."""

    module: str
    context: str
    old_vsn: str
    new_vsn: str | None
    processes: int
    reason: Any = None
    pid: Pid | None = None


class CodeTable:
    """The node's code state: which objects newer code replaced, and the job running."""

    def __init__(self) -> None:
        # old class or function -> its replacement, for starts of old specs (supervisors)
        self.replaced: dict[Any, Any] = {}
        self.busy: str | None = None  # what is being upgraded or installed
        self._job: object | None = None

    def claim(self, what: str, module: str) -> object:
        """Take the table for one job, or refuse: upgrades run one at a time. Returns the
        job's token, for `release`."""
        if self.busy is not None:
            raise UpgradeError(module, ("busy", self.busy))
        self.busy, self._job = what, object()
        return self._job

    def release(self, job: object) -> None:
        """The job is over (only its own token frees the table)."""
        if self._job is job:
            self.busy, self._job = None, None

    def commit(self, old: ModuleType, new: ModuleType) -> None:
        """`new` replaces `old`: map `old`'s classes and functions (and what mapped to them)
        to `new`'s, and let code that imported `old` read `new` through it."""
        mapping: dict[Any, Any] = {}
        for attr, value in vars(old).items():
            if isinstance(value, type | FunctionType) and value.__module__ == old.__name__:
                replacement = getattr(new, attr, None)
                if replacement is not None and replacement is not value:
                    mapping[value] = replacement
        for key, value in list(self.replaced.items()):
            if value in mapping:
                self.replaced[key] = mapping[value]
        self.replaced.update(mapping)
        # code that imported the module (`import m`, then `m.f()`) holds the old object: it
        # reads the new code through it from now on, as a fully-qualified call in Erlang
        vars(old).update(vars(new))


def table(node: _node.Node) -> CodeTable:
    """The node's code table; the code server process is started with it (again, if it
    was killed)."""
    if node.code is None:
        node.code = CodeTable()
    code: CodeTable = node.code
    if whereis(SERVER) is None:
        pid = spawn(_server, code)
        register(SERVER, pid)
        node.system.add(pid.id)
    return code


def latest(obj: Any) -> Any:
    """What a start function (or a class) stands for now: its replacement by an upgrade,
    for a class, a function or a class's bound method; `obj` itself otherwise.

    Args:
        obj: A class, a function or a bound method (a child spec's start).

    Returns:
        Its replacement, or `obj`.
    """
    node = _node.current
    code = None if node is None else node.code
    if code is None or not code.replaced:
        return obj
    replaced = code.replaced
    try:
        found = replaced.get(obj)
    except TypeError:  # unhashable: nothing we replaced
        return obj
    if found is not None:
        return found
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, type) and owner in replaced:
        return getattr(replaced[owner], obj.__name__, obj)
    return obj


async def request(req: tuple[Any, ...], module: str) -> Any:
    """Run a job in the code server; its result, or the UpgradeError it failed with."""
    code = table(_node.get())
    job = code.claim(req[0], module)  # here, not in the server: a second job fails at once
    try:
        status, value = await _call.call(SERVER, (*req, job), math.inf, _kind=KIND)
    except CallError as lost:  # the server ended before it answered
        code.release(job)
        raise UpgradeError(module, ("code_server_down", lost.reason)) from None
    # (a caller cancelled meanwhile leaves the table to the job, which frees it when done)
    if status == "error":
        raise value
    return value


async def _server(code: CodeTable) -> None:
    while True:
        msg = await receive()
        if type(msg) is not tuple or len(msg) != 3 or msg[0] != KIND:
            continue  # (only the API below sends to it)
        from_, req = msg[1], msg[2]
        try:
            match req:
                case ("upgrade", changes, timeout, _):
                    result: Any = ("ok", await perform(code, changes, timeout))
                case _:
                    result = ("error", UpgradeError("?", ("unknown_request", req)))
        except UpgradeError as failed:
            result = ("error", failed)
        except Exception as bug:  # the code server outlives it, and says so
            _logger.exception("the code server failed on %r", req)
            result = ("error", UpgradeError("?", bug))
        finally:
            code.release(req[-1])
        _call.reply(from_, result)


# -- upgrades ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One module of an upgrade: the code to load (default: its own file, read again), the
    `extra` for its code_change, `down` for a downgrade, and `switch=False` to load the code
    without touching the processes that run the module (Erlang's load_module)."""

    module: str
    source: Path | None = None
    extra: Any = None
    down: bool = False
    switch: bool = True


class _Loaded:
    __slots__ = ("change", "new", "new_vsn", "old", "old_vsn")

    def __init__(self, change: Change, old: ModuleType, new: ModuleType, old_vsn: str) -> None:
        self.change = change
        self.old = old
        self.new = new
        self.old_vsn = old_vsn
        self.new_vsn = _modules.module_vsn(new)


async def perform(
    code: CodeTable, changes: list[Change], timeout: float = DEFAULT_TIMEOUT
) -> list[UpgradeReport]:
    """Upgrade the modules of `changes` together, in their order, all or nothing: if one
    fails, none changed. Runs in a kernel process (the code server, the release handler)."""
    started = time.perf_counter()
    loaded: list[_Loaded] = []
    try:
        for change in changes:
            loaded.append(_load(change))
    except UpgradeError as failed:
        for done in reversed(loaded):
            _modules.put(done.change.module, done.old)
        _failed(failed.module, "-", None, 0, failed.reason, None)
        raise
    by_name = {done.change.module: done for done in loaded if done.change.switch}
    module_of, requests = _requests(by_name, lambda cls: True)
    pause_start = time.perf_counter()
    collecting = gc.isenabled()
    gc.disable()  # (a full collection walks every state; none is due to this upgrade)
    committed = False
    try:
        changed, failure, silent = await _each(
            module_of, list(requests), requests.__getitem__, timeout
        )
        if failure is not None:
            for done in reversed(loaded):
                _modules.put(done.change.module, done.old)
            for pid in silent:  # busy or hung: undone once it gets to these, or killed
                _tell(pid, "revert_code")
                reaper = spawn(_reap, pid, timeout)
                _node.get().system.add(reaper.id)
            await _each(module_of, changed, "revert_code", timeout)
            await _each(module_of, changed, "resume", timeout)
            _purge_new(loaded, requests)
            _failed(failure.module, "-", None, len(requests), failure.reason, failure.pid)
            raise failure
        for done in loaded:
            code.commit(done.old, done.new)
        committed = True
        await _each(module_of, changed, "resume", timeout)
    except BaseException as exc:
        if not isinstance(exc, UpgradeError):  # killed meanwhile: leave nobody held
            if not committed:
                for done in reversed(loaded):
                    _modules.put(done.change.module, done.old)
            for pid in requests:
                if not committed:
                    _tell(pid, "revert_code")
                _tell(pid, "resume")
        raise
    finally:
        if collecting:
            gc.enable()
    pause = time.perf_counter() - pause_start
    late = await _stragglers(code, by_name, timeout)
    module_of.update(late)
    changed += late
    seconds = time.perf_counter() - started
    reports = []
    for done in loaded:
        pids = tuple(pid for pid in changed if module_of[pid] is done)
        change = done.change
        reports.append(
            UpgradeReport(change.module, done.old_vsn, done.new_vsn, pids, seconds, pause)
        )
        emit(
            _logger,
            logging.INFO,
            CodeReport(change.module, "upgraded", done.old_vsn, done.new_vsn, len(pids)),
            "module %s %s from %s to %s (%d process%s, paused %.1f ms)",
            change.module,
            "downgraded" if change.down else "upgraded",
            done.old_vsn,
            done.new_vsn,
            len(pids),
            "" if len(pids) == 1 else "es",
            pause * 1000,
        )
    return reports


def _requests(
    by_name: dict[str, _Loaded], wanted: Callable[[type], bool]
) -> tuple[dict[Pid, _Loaded], dict[Pid, Any]]:
    """The processes running a behaviour class of the modules in `by_name` (and `wanted`),
    and the change_code request each gets."""
    node = _node.get()
    module_of: dict[Pid, _Loaded] = {}
    requests: dict[Pid, Any] = {}
    for proc in list(node.procs.values()):
        cls = proc.behaviour
        if cls is None or proc.exiting or proc.pid.id in node.system:
            continue
        of = by_name.get(cls.__module__)
        if of is None or not wanted(cls):
            continue
        module_of[proc.pid] = of
        extra = of.change.extra
        if of.change.down:
            target = getattr(_modules.target_class(cls), "vsn", of.new_vsn)
            requests[proc.pid] = ("upgrade_code", ("down", target), extra)
        else:
            requests[proc.pid] = ("upgrade_code", getattr(cls, "vsn", of.old_vsn), extra)
    return module_of, requests


async def _stragglers(
    code: CodeTable, by_name: dict[str, _Loaded], timeout: float
) -> dict[Pid, _Loaded]:
    """Switch the processes that started on the old code while the upgrade went on (a
    supervisor's restart, say); one that cannot switch is killed, for its supervisor to
    start it again on the new code (as Erlang purges old code)."""
    switched: dict[Pid, _Loaded] = {}
    for _ in range(3):
        module_of, requests = _requests(by_name, lambda cls: cls in code.replaced)
        if not requests:
            break
        ok, _, _ = await _each(module_of, list(requests), requests.__getitem__, timeout)
        await _each(module_of, ok, "resume", timeout)
        switched.update((pid, module_of[pid]) for pid in ok)
        for pid in requests:
            proc = pid._proc
            if pid not in ok and proc is not None:
                _logger.error(
                    "%r did not switch to the new code of %s: killed",
                    pid,
                    module_of[pid].change.module,
                )
                kill(proc, KILLED)
    return switched


def _purge_new(loaded: list[_Loaded], requests: dict[Pid, Any]) -> None:
    """An upgrade undone: starts of the new code's classes start the old ones, and a process
    that started on the new code meanwhile (imported while it was loaded) is killed, for
    its supervisor to start it again on the old code."""
    node = _node.get()
    code = node.code
    for done in loaded:  # a start of the undone code starts the old (a supervisor's spec)
        code.commit(done.new, done.old)
    news = {done.change.module: done.new for done in loaded}
    for proc in list(node.procs.values()):
        cls = proc.behaviour
        new = None if cls is None else news.get(cls.__module__)
        if new is None or proc.pid in requests or proc.pid.id in node.system:
            continue
        if cls is not None and _modules.defined_in(cls, new, unknown=False):
            _logger.error("%r started on code of %s that was undone: killed", proc.pid, new)
            kill(proc, KILLED)


def _load(change: Change) -> _Loaded:
    """Load the new code of one module (nothing else changes yet)."""
    module = change.module
    old = sys.modules.get(module)
    if old is None:
        raise UpgradeError(module, "not_loaded")
    path = change.source if change.source is not None else _modules.file_of(old)
    if path is None:
        raise UpgradeError(module, "no_source_file")
    old_vsn = _modules.module_vsn(old)
    try:
        data = _modules.read_source(path)
    except OSError as exc:
        raise UpgradeError(module, ("cannot_read", str(path), exc)) from exc
    try:
        _, new = _modules.install(module, path, data)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # SystemExit at import too: a module that does not load
        raise UpgradeError(module, exc) from exc
    return _Loaded(change, old, new, old_vsn)


def _failed(
    module: str, old_vsn: str, new_vsn: str | None, count: int, reason: Any, pid: Pid | None
) -> None:
    emit(
        _logger,
        logging.ERROR,
        CodeReport(module, "failed", old_vsn, new_vsn, count, reason, pid),
        "upgrade of module %s failed%s: %r; the old code runs on",
        module,
        "" if pid is None else f" in {pid!r}",
        reason,
    )


async def _each(
    module_of: dict[Pid, _Loaded],
    pids: list[Pid],
    request: str | Callable[[Pid], Any],
    timeout: float,
) -> tuple[list[Pid], UpgradeError | None, list[Pid]]:
    """Send each pid its system request at once, then collect the answers:
    `(pids that answered ok, the first failure, pids silent for timeout seconds)`. A
    process that ended meanwhile is left out: there is nothing of it to upgrade."""
    coll = _call.RequestIdCollection()
    for i, pid in enumerate(pids, 1):
        payload = request if isinstance(request, str) else request(pid)
        coll.add(_call.send_request(pid, SYSTEM, payload), pid)
        if i % 256 == 0:
            await asyncio.sleep(0)  # let the processes that answered run meanwhile
    ok: list[Pid] = []
    failure: UpgradeError | None = None
    deadline = time.monotonic() + timeout
    while coll:
        try:
            (status, value), pid = await _call.wait_any(
                coll, max(0.0, deadline - time.monotonic()), drop_on_timeout=False
            )
        except CallError:  # the process ended
            continue
        except TimeoutError:
            silent = [pid for _, pid in coll.to_list()]
            coll.abandon_all()
            if failure is None:
                module = module_of[silent[0]].change.module
                failure = UpgradeError(module, ("timeout", timeout), silent[0])
            return ok, failure, silent
        if status == "ok":
            ok.append(pid)
        elif failure is None:
            reason = value[1] if type(value) is tuple and len(value) == 2 else value
            failure = UpgradeError(module_of[pid].change.module, reason, pid)
    return ok, failure, []


async def _reap(pid: Pid, timeout: float) -> None:
    """A process that did not answer an undone upgrade in time gets as long again to take
    back its old code; one still stuck (a code_change that never returns) is killed, for its
    supervisor to start it again on the old code, rather than left suspended for ever."""
    resumed = _call.send_request(pid, SYSTEM, "resume")
    try:
        await _call.wait_response(resumed, timeout)
    except CallError:  # it ended meanwhile
        return
    except TimeoutError:
        _call.abandon(resumed)
        proc = pid._proc
        if proc is not None:
            _logger.error(
                "%r is still in its code_change %s s after its upgrade was undone: killed",
                pid,
                timeout,
            )
            kill(proc, KILLED)


def _tell(pid: Pid, request: Any) -> None:
    """A system request whose answer nobody waits for (to a process that did not answer:
    it handles it once it is done with what kept it)."""
    proc = pid._proc
    if proc is not None:
        deliver(proc, (SYSTEM, (_node.get().init_pid, ("alias", make_ref())), request))
