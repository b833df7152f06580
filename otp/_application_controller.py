"""The application controller: a kernel process that starts and stops applications.

The table of loaded and running applications lives on the node (`AppTable`), so reads
(`get_env`, `which_applications`) never wait for a process; changes that start or stop
processes go through the controller, one at a time per application. Each running
application has a master process: it runs the application's `start`, owns the processes
spawned from it (they inherit its application), and on `stop` ends the tree, runs the
application's `stop`, then kills whatever of the application is still alive.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from . import _call, _config, _node
from ._app import Application, ApplicationError
from ._mailbox import receive, send
from ._process import current
from ._registry import register, whereis
from ._signals import exit, link, monitor, process_flag, unlink
from ._spawn import spawn, spawn_link
from ._values import KILL, NORMAL, SHUTDOWN, Down, Exit, Pid
from .errors import ExitError
from .reports import emit

__all__ = ["AppTable", "ApplicationReport", "request", "stop_all", "table"]

CONTROLLER: Final = "application_controller"
KIND: Final = "$app"

_logger = logging.getLogger("otp.application")


@dataclass(frozen=True, slots=True)
class ApplicationReport:
    """An application started, stopped, or exited by itself (`context`), with its type."""

    application: str
    context: str
    type: str
    reason: Any = None


def _report(level: int, name: str, context: str, type_: str, reason: Any = None) -> None:
    text = f"application {name} {context}" + ("" if reason is None else f": {reason!r}")
    emit(
        _logger, level, ApplicationReport(name, context, type_, reason), "%s (type %s)", text, type_
    )


class _Loaded:
    __slots__ = ("env", "spec")

    def __init__(self, spec: Application, env: dict[str, Any]) -> None:
        self.spec = spec
        self.env = env


class _Running:
    __slots__ = ("master", "name", "top", "type")

    def __init__(self, name: str, master: Pid, top: Pid | None, type_: str) -> None:
        self.name = name
        self.master = master
        self.top = top
        self.type = type_


class AppTable:
    """Loaded and running applications of one node; read without going through a process."""

    def __init__(self, node: _node.Node) -> None:
        self.node = node
        self.loaded: dict[str, _Loaded] = {}
        self.running: dict[str, _Running] = {}
        self.order: list[str] = []  # running applications, in start order
        # started, then ended by themselves (not stopped): OTP's "started, not running"
        self.ended: set[str] = set()

    # -- loading ---------------------------------------------------------------------

    def load(self, spec: Application) -> None:
        _check_spec(spec)
        current_ = self.loaded.get(spec.name)
        if current_ is not None:
            if current_.spec is spec:
                return
            raise ApplicationError(
                ("already_loaded", spec.name),
                f"another application named {spec.name!r} is already loaded",
            )
        for dep in spec.applications:
            if not isinstance(dep, str):
                from .application import load

                load(dep)
        env = dict(spec.env)
        env.update(_config.check(spec.name, env, self.node.config.get(spec.name, {})))
        self.loaded[spec.name] = _Loaded(spec, env)

    def replace(self, spec: Application) -> tuple[dict[str, Any], dict[str, Any]]:
        """Take a new version of a loaded application's spec (a release upgrade): its env is
        its defaults under the node's configuration again; `(old env, new env)`."""
        loaded = self._loaded(spec.name)
        _check_spec(spec)
        env = dict(spec.env)
        env.update(_config.check(spec.name, env, self.node.config.get(spec.name, {})))
        old = loaded.env
        self.loaded[spec.name] = _Loaded(spec, env)
        return old, dict(env)

    def unload(self, name: str) -> None:
        if name in self.running:
            raise ApplicationError(("running", name), f"cannot unload {name!r}: it is running")
        if self.loaded.pop(name, None) is None:
            raise ApplicationError(("not_loaded", name), f"application {name!r} is not loaded")
        self.ended.discard(name)

    def spec(self, name: str) -> Application:
        loaded = self.loaded.get(name)
        if loaded is None:
            raise ApplicationError(("not_loaded", name), f"application {name!r} is not loaded")
        return loaded.spec

    def start_order(self, name: str) -> list[str]:
        """`name`'s dependencies (transitively) then `name`, each after what it needs."""
        order: list[str] = []
        visiting: list[str] = []

        def visit(app: str) -> None:
            if app in order:
                return
            if app in visiting:
                cycle = [*visiting[visiting.index(app) :], app]
                raise ApplicationError(
                    ("cycle", cycle), f"applications depend on each other: {' -> '.join(cycle)}"
                )
            visiting.append(app)
            for dep in self.spec(app).applications:
                visit(dep if isinstance(dep, str) else dep.name)
            visiting.pop()
            order.append(app)

        visit(name)
        return order

    def is_running(self, name: str) -> bool:
        return name in self.running

    def which(self) -> list[tuple[str, str, str]]:
        specs = [self.loaded[name].spec for name in reversed(self.order)]
        return [(s.name, s.description, s.vsn) for s in specs]

    # -- env -------------------------------------------------------------------------

    def get_env(self, app: str, key: str, default: Any) -> Any:
        loaded = self.loaded.get(app)
        return default if loaded is None else loaded.env.get(key, default)

    def all_env(self, app: str) -> dict[str, Any]:
        loaded = self.loaded.get(app)
        return {} if loaded is None else dict(loaded.env)

    def set_env(self, app: str, key: str, value: Any) -> None:
        self._loaded(app).env[key] = value

    def unset_env(self, app: str, key: str) -> None:
        self._loaded(app).env.pop(key, None)

    def _loaded(self, app: str) -> _Loaded:
        loaded = self.loaded.get(app)
        if loaded is None:
            raise ApplicationError(("not_loaded", app), f"application {app!r} is not loaded")
        return loaded


def _check_spec(spec: Application) -> None:
    if type(spec.name) is not str or not spec.name:
        raise _bad_spec(spec, "an application name is a non-empty str", spec.name)
    if spec.start is not None and not callable(spec.start):
        raise _bad_spec(spec, "start must be an async callable or None", spec.start)
    if spec.stop is not None and not callable(spec.stop):
        raise _bad_spec(spec, "stop must be an async callable or None", spec.stop)
    if not isinstance(spec.applications, tuple | list) or not all(
        isinstance(dep, str | Application) for dep in spec.applications
    ):
        raise _bad_spec(spec, "applications must be names or Applications", spec.applications)
    if not all(type(key) is str for key in spec.env):
        raise _bad_spec(spec, "env keys must be str", dict(spec.env))


def _bad_spec(spec: Application, rule: str, value: Any) -> ApplicationError:
    return ApplicationError(
        ("bad_application", spec.name), f"application {spec.name!r}: {rule}\nGot: {value!r}"
    )


def table(node: _node.Node) -> AppTable:
    """The node's application table; the controller process is started with it."""
    if node.apps is None:
        node.apps = AppTable(node)
        pid = spawn(_controller, node.apps)
        register(CONTROLLER, pid)  # before it first runs: callers can reach it at once
        node.system.add(pid.id)
    apps: AppTable = node.apps
    return apps


async def request(req: Any) -> Any:
    """Ask the controller; its answer, or the ApplicationError it answers with."""
    table(_node.get())
    status, value = await _call.call(CONTROLLER, req, math.inf, _kind=KIND)
    if status == "error":
        raise value
    return value


async def stop_all(node: _node.Node) -> None:
    """Stop every running application, newest first (the node is stopping)."""
    controller = whereis(CONTROLLER)
    if controller is None or controller._proc is None:
        return
    done: asyncio.Future[None] = node.loop.create_future()
    send(controller, ("$shutdown", done))
    await asyncio.wait((done, controller._proc), return_when=asyncio.FIRST_COMPLETED)


# -- the controller process -------------------------------------------------------------


async def _controller(apps: AppTable) -> None:
    process_flag("trap_exit", True)
    controller = _Controller(apps)
    while True:
        await controller.handle(await receive())


class _Controller:
    """The controller's state: starts and stops in progress, the masters, the shutdown.

    Nothing here waits for an application: a start or a stop is a message to a master, and
    its answer comes back as a message, so the controller keeps serving meanwhile (an
    application's `stop` may itself stop another application, even during the shutdown).
    """

    def __init__(self, apps: AppTable) -> None:
        self.apps = apps
        self.starting: dict[str, list[Any]] = {}  # name -> callers waiting for the start
        self.stopping: dict[str, list[Any]] = {}  # name -> callers waiting for the stop
        self.types: dict[str, str] = {}
        self.masters: dict[Pid, str] = {}
        self.shutdown: asyncio.Future[None] | None = None

    async def handle(self, msg: Any) -> None:
        apps = self.apps
        match msg:
            case ("$app", from_, ("start", name, type_)):
                refusal = self.refuse_start(name)
                if refusal is not None:
                    _call.reply(from_, ("error", refusal))
                elif name in self.starting:
                    self.starting[name].append(from_)  # started once; every caller is told
                else:
                    self.starting[name] = [from_]
                    self.types[name] = type_
                    master = spawn_link(_master, apps.spec(name), current().pid)
                    self.masters[master] = name
            case ("$app", from_, ("stop", name)):
                running = apps.running.get(name)
                if running is None and name in apps.ended:  # nothing left to stop
                    apps.ended.discard(name)
                    _call.reply(from_, ("ok", None))
                elif running is None:
                    error = ApplicationError(
                        ("not_started", name), f"application {name!r} is not started"
                    )
                    _call.reply(from_, ("error", error))
                else:
                    self.stop(running, from_)
            case ("$master", name, "started", top, master):
                apps.ended.discard(name)
                apps.running[name] = _Running(name, master, top, self.types[name])
                apps.order.append(name)
                _report(logging.INFO, name, "started", self.types[name])
                waiters = self.starting.pop(name, [])
                for n, waiter in enumerate(waiters):  # the first asked: it started it
                    _call.reply(waiter, ("ok", "started" if n == 0 else "joined"))
            case ("$master", name, "start_failed", reason, _):
                _report(logging.ERROR, name, "start_failed", self.types[name], reason)
                self.fail_start(name, reason)
            case ("$master", name, "stopped", _, _):
                _forget(apps, name)
                _report(logging.INFO, name, "stopped", self.types.get(name, "temporary"))
                self.stopped(name)
            case ("$master", name, "exited", reason, _):
                _exited(apps, name, reason, stopping=self.shutdown is not None)
                self.stopped(name)
            case Exit(pid=pid, reason=reason):
                name = self.masters.pop(pid, None)
                if name is not None:
                    await self.master_gone(name, pid, reason)
                elif pid == self.apps.node.init_pid:  # the node's own shutdown signal
                    exit(reason)
                # any other linked process's end is ignored, as in OTP
            case ("$shutdown", done):
                self.shutdown = done
                for master, name in list(self.masters.items()):
                    if name in self.starting:  # abandon starts: stop what runs, in order
                        exit(master, KILL)
                self.next_shutdown_step()

    def refuse_start(self, name: str) -> ApplicationError | None:
        if self.shutdown is not None:
            return ApplicationError(
                ("node_stopping", name), f"cannot start {name!r}: the node is stopping"
            )
        return _refuse_start(self.apps, name, self.starting)

    def stop(self, running: _Running, from_: Any | None) -> None:
        waiters = self.stopping.get(running.name)
        if waiters is None:
            waiters = self.stopping[running.name] = []
            send(running.master, ("$stop",))
        if from_ is not None:
            waiters.append(from_)

    def fail_start(self, name: str, reason: Any) -> None:
        """Tell every caller; as OTP's controller, a permanent application that fails to
        start stops the node, and so does a transient one unless its start exited normally."""
        error = ApplicationError(reason, f"application {name!r} failed to start: {reason!r}")
        for waiter in self.starting.pop(name, []):
            _call.reply(waiter, ("error", error))
        type_ = self.types.get(name, "temporary")
        normal = type(reason) is str and reason == NORMAL
        if self.shutdown is None and (
            type_ == "permanent" or (type_ == "transient" and not normal)
        ):
            self.apps.node.stop(("application_start_failure", name, reason))

    def stopped(self, name: str) -> None:
        for waiter in self.stopping.pop(name, []):
            _call.reply(waiter, ("ok", None))
        self.next_shutdown_step()

    async def master_gone(self, name: str, master: Pid, reason: Any) -> None:
        """A master ended without the report its end should have sent (it was killed)."""
        if name in self.starting:
            self.fail_start(name, reason)
        running = self.apps.running.get(name)
        if running is not None and running.master == master:
            _exited(self.apps, name, reason, stopping=self.shutdown is not None)
        await _kill_members(name)
        self.stopped(name)

    def next_shutdown_step(self) -> None:
        """During the shutdown: stop the newest running application, one at a time."""
        if self.shutdown is None or self.stopping:
            return
        if self.apps.order:
            self.stop(self.apps.running[self.apps.order[-1]], None)
        elif not self.starting and not self.shutdown.done():
            self.shutdown.set_result(None)


def _refuse_start(
    apps: AppTable, name: str, starting: dict[str, list[Any]]
) -> ApplicationError | None:
    if name not in apps.loaded:
        return ApplicationError(("not_loaded", name), f"application {name!r} is not loaded")
    if name in apps.running:
        return ApplicationError(
            ("already_started", name), f"application {name!r} is already started"
        )
    if name in starting:
        return None
    for dep in apps.spec(name).applications:
        dep_name = dep if isinstance(dep, str) else dep.name
        if dep_name in apps.ended:
            return ApplicationError(
                ("not_running", dep_name),
                f"cannot start {name!r}: it needs {dep_name!r}, which was started and ended",
            )
        if dep_name not in apps.running:
            return ApplicationError(
                ("not_started", dep_name),
                f"cannot start {name!r}: it needs {dep_name!r}, which is not started",
            )
    return None


def _forget(apps: AppTable, name: str) -> None:
    apps.running.pop(name, None)
    if name in apps.order:
        apps.order.remove(name)


def _exited(apps: AppTable, name: str, reason: Any, *, stopping: bool) -> None:
    """An application ended by itself: report it; stop the node if its type says so (and
    the node is not already `stopping`).

    For an application only `normal` is a normal end: a top supervisor that gives up exits
    with `shutdown`, and that is the crash a transient application must not survive.
    """
    running = apps.running.get(name)
    type_ = running.type if running is not None else "temporary"
    _forget(apps, name)
    apps.ended.add(name)
    normal = type(reason) is str and reason == NORMAL
    _report(logging.INFO if normal else logging.ERROR, name, "exited", type_, reason)
    if not stopping and (type_ == "permanent" or (type_ == "transient" and not normal)):
        apps.node.stop(("application_terminated", name, reason))


# -- one application's master ----------------------------------------------------------


async def _master(spec: Application, controller: Pid) -> None:
    me = current()
    me.app = spec.name
    process_flag("trap_exit", True)
    pid = me.pid

    def tell(event: str, value: Any) -> None:
        send(controller, ("$master", spec.name, event, value, pid))

    try:
        top = None if spec.start is None else await spec.start(spec.start_args)
    except Exception as exc:  # otp.exit(r) in start means r, as for any process
        await _kill_members(spec.name)
        tell("start_failed", exc.reason if type(exc) is ExitError else exc)
        return
    if spec.start is not None and type(top) is not Pid:  # None too: OTP's bad_return
        await _kill_members(spec.name)
        tell("start_failed", ("bad_start_return", top))
        return
    if top is not None:
        link(top)  # whatever start did: the application ends when its top process does
    tell("started", top)

    def mine(m: Any) -> bool:
        return m == ("$stop",) or type(m) is Exit

    while True:  # Exits of other processes linked to the master (helpers of start) don't count
        msg = await receive(mine)
        if msg == ("$stop",) or msg.pid == top or msg.pid == controller:
            break
    if type(msg) is Exit and msg.pid == top:  # the top supervisor ended by itself
        await _kill_members(spec.name)
        tell("exited", msg.reason)
        return
    if top is not None:
        unlink(top)
        ref = monitor(top)
        exit(top, SHUTDOWN)
        await receive(lambda m: type(m) is Down and m.ref is ref)
    if spec.stop is not None:
        try:
            await spec.stop()
        except Exception as exc:
            emit(
                _logger,
                logging.ERROR,
                ApplicationReport(spec.name, "stop_failed", "", exc),
                "application %s: stop raised %r",
                spec.name,
                exc,
                exc=exc,
            )
    await _kill_members(spec.name)
    tell("stopped", NORMAL)


async def _kill_members(name: str) -> None:
    """Kill every process of application `name` but the caller; wait until they are gone."""
    me = current()
    node = _node.get()
    members = [p.pid for p in node.procs.values() if p.app == name and p is not me]
    refs = {monitor(pid) for pid in members}
    for pid in members:
        exit(pid, KILL)
    while refs:
        down = await receive(lambda m: type(m) is Down and m.ref in refs)
        refs.discard(down.ref)
