"""The release handler: a kernel process that boots, installs and rolls back releases.

An install checks everything first (the manifest and its hashes, the plan), then: stops the
applications the new release drops, switches the code of every changed module at once
through the code server (all or nothing: a failure here leaves the node as it was), then
gives the running applications their new specs (`config_change` for a changed env),
restarts and starts applications. Then a watch window: if the upgraded processes crash too
often, or a supervisor gives up, the handler rolls back on its own; otherwise the release
becomes permanent when the window ends.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import _call, _config, _node, application
from .._mailbox import receive, send
from .._process import current
from .._registry import register
from .._spawn import spawn
from .._timers import TimerRef, cancel_timer, send_after
from .._values import Pid, is_abnormal
from ..code import _modules
from ..code._server import Change, CodeTable, UpgradeError, UpgradeReport, perform
from ..code._server import table as code_table
from ..errors import CallError
from ..reports import emit
from ..sys import SYSTEM
from ._manifest import (
    Manifest,
    Releases,
    read_manifest,
    read_releases,
    release_dir,
    releases_lock,
    write_releases,
)
from ._plan import Plan, derive
from ._spec import Load, Release, ReleaseError, RestartApplication, Update

__all__ = ["ReleaseReport", "ReleaseTable", "boot", "preflight", "request"]

HANDLER: Final = "release_handler"
KIND: Final = "$release"

_logger = logging.getLogger("otp.release")


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    """A release event (logged on `otp.release`): `context` is `installed`, `permanent`,
    `rolled_back` or `install_failed`."""

    release: str
    vsn: str
    context: str
    from_vsn: str | None = None
    reason: Any = None


class _Trial:
    """The watch window after an install."""

    __slots__ = (
        "count",
        "crashes",
        "from_vsn",
        "max_crash_ratio",
        "modules",
        "timeout",
        "timer",
        "watcher",
    )

    def __init__(
        self, from_vsn: str, modules: set[str], count: int, ratio: float, timeout: float
    ) -> None:
        self.from_vsn = from_vsn
        self.timeout = timeout
        self.modules = modules
        self.count = max(1, count)
        self.crashes = 0
        self.max_crash_ratio = ratio
        self.timer: TimerRef | None = None
        self.watcher: Any = None


class ReleaseTable:
    """The release a node runs: where its builds are, which version runs, the statuses."""

    def __init__(self, build_dir: Path, manifest: Manifest, releases: Releases) -> None:
        self.build_dir = build_dir
        self.manifest = manifest
        self.releases = releases
        self.trial: _Trial | None = None

    @property
    def vsn(self) -> str:
        return self.manifest.vsn

    @property
    def lib(self) -> Path:
        return release_dir(self.build_dir, self.vsn) / "lib"

    def refresh(self) -> None:
        """Learn of the releases built since the node read RELEASES.json (a build adds
        them; the statuses of the ones it knows are the node's)."""
        on_disk = read_releases(self.build_dir)
        for state in [] if on_disk is None else on_disk.releases:
            if self.releases.get(state.vsn) is None:
                self.releases.set(state.vsn, state.status, state.note)

    def save(self) -> None:
        with releases_lock(self.build_dir):
            self.refresh()
            write_releases(self.build_dir, self.releases)


# -- booting --------------------------------------------------------------------------------


def preflight(build_dir: Path, vsn: str | None = None) -> tuple[Path, Releases, Manifest]:
    """The build directory (absolute: so are the paths of loaded packages), the statuses
    and the checked manifest of the release a boot would run (`vsn`, or the permanent
    one); a ReleaseError says what is missing or broken.

    Args:
        build_dir: The build directory (`_build`).
        vsn: The release to boot (default None: the permanent one).

    Returns:
        `(build_dir, releases, manifest)`.

    Raises:
        ReleaseError: `("no_release", dir)`, `("no_permanent_release", dir)`, or a missing
            or broken manifest.
    """
    build_dir = build_dir.resolve()
    releases = read_releases(build_dir)
    if releases is None:
        raise ReleaseError(
            ("no_release", str(build_dir)),
            f"no release is built in {build_dir} (build one with `otp release build SPEC`)",
        )
    if vsn is None:
        permanent = releases.with_status("permanent")
        if permanent is None:
            raise ReleaseError(("no_permanent_release", str(build_dir)), "no release is permanent")
        vsn = permanent.vsn
    return build_dir, releases, read_manifest(build_dir, vsn)


async def boot(build_dir: Path, vsn: str | None = None) -> list[str]:
    """Run release `vsn` (default: the permanent one) from its snapshot in `build_dir`:
    its code first on the path, its applications started (permanent); the names started.
    A release installed but never made permanent is marked unpacked again, as in OTP.

    Args:
        build_dir: The build directory (`_build`).
        vsn: The release to run (default None: the permanent one).

    Returns:
        The names of the applications started, in order.

    Raises:
        ReleaseError: `("already_running", vsn)` when the node runs a release, or what
            `preflight` raises.
        ApplicationError: An application failed to start.
    """
    node = _node.get()
    if node.release is not None:
        raise ReleaseError(
            ("already_running", node.release.vsn), "this node already runs a release"
        )
    build_dir, releases, manifest = preflight(build_dir, vsn)
    vsn = manifest.vsn
    lib = release_dir(build_dir, vsn) / "lib"
    sys.path.insert(0, str(lib))
    release = _release_at(manifest, lib)
    for state in releases.releases:
        if state.status == "current" and state.vsn != vsn:
            state.status, state.note = "unpacked", "installed, not made permanent before a restart"
    table = ReleaseTable(build_dir, manifest, releases)
    table.save()
    node.release = table
    _handler(node)
    started: list[str] = []
    for app in release.applications:
        application.load(app)
        started += await application.ensure_all_started(app.name, "permanent")
    return started


def _release_at(manifest: Manifest, lib: Path | None) -> Release:
    """The Release object of `manifest`'s code (checked to come from `lib` when given)."""
    module_name, _, attr = manifest.spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ReleaseError(
            ("bad_release", manifest.vsn), f"release {manifest.vsn!r}: {manifest.spec}: {exc!r}"
        ) from exc
    path = _modules.file_of(module)
    if lib is not None and (path is None or not path.resolve().is_relative_to(lib.resolve())):
        raise ReleaseError(
            ("shadowed", module_name),
            f"{module_name} was already imported from {path}, not from the release in {lib}",
        )
    release = getattr(module, attr, None)
    if not isinstance(release, Release) or release.vsn != manifest.vsn:
        raise ReleaseError(
            ("bad_release", manifest.vsn),
            f"{manifest.spec} is not release {manifest.vsn!r}\nGot: {release!r}",
        )
    return release


# -- the handler process -------------------------------------------------------------------


def _handler(node: _node.Node) -> Pid:
    pid = spawn(_serve, node.release)
    register(HANDLER, pid)
    node.system.add(pid.id)
    return pid


async def request(req: tuple[Any, ...]) -> Any:
    """Ask the release handler; its answer, or the ReleaseError it answers with."""
    node = _node.get()
    if node.release is None:
        raise ReleaseError(
            ("no_release", node.name),
            "this node does not run a release (start it with `otp run --release`)",
        )
    status, value = await _call.call(HANDLER, req, math.inf, _kind=KIND)
    if status == "error":
        raise value
    return value


async def _serve(table: ReleaseTable) -> None:
    while True:
        msg = await receive()
        if type(msg) is tuple and len(msg) == 3 and msg[0] == KIND:
            try:
                result: Any = ("ok", await _answer(table, msg[2]))
            except ReleaseError as refused:
                result = ("error", refused)
            except Exception as bug:  # the handler outlives it, and says so
                _logger.exception("the release handler failed on %r", msg[2])
                result = ("error", ReleaseError(("failed", repr(bug)), f"release: {bug!r}"))
            _call.reply(msg[1], result)
            continue
        try:
            await _on_trial_event(table, msg)
        except Exception:  # the handler must outlive a failed rollback: say so, go on
            _logger.exception("release %s: the watch window failed on %r", table.vsn, msg)


async def _on_trial_event(table: ReleaseTable, msg: Any) -> None:
    trial = table.trial
    match msg:
        case ("trial_crash", _) if trial is not None:
            trial.crashes += 1
            if trial.crashes / trial.count > trial.max_crash_ratio:
                await _roll_back(table, ("crashes", trial.crashes, trial.count), automatic=True)
        case ("trial_gave_up", supervisor) if trial is not None:
            await _roll_back(table, ("restart_intensity", supervisor), automatic=True)
        case ("trial_over", vsn) if trial is not None and vsn == table.vsn:
            _make_permanent(table)


async def _answer(table: ReleaseTable, req: Any) -> Any:
    table.refresh()
    match req:
        case ("check", vsn):
            plan, _ = _plan(table, vsn)
            return plan.describe()
        case ("install", vsn, window, ratio, timeout):
            return await _install(table, vsn, window, ratio, timeout)
        case ("rollback",):
            if table.trial is None:
                raise ReleaseError(
                    ("nothing_to_roll_back", table.vsn),
                    f"release {table.vsn} is permanent: install an older one to go back",
                )
            return await _roll_back(table, "asked", automatic=False)
        case ("make_permanent",):
            state = table.releases.get(table.vsn)
            if table.trial is not None or state is None or state.status != "permanent":
                _make_permanent(table)
            return table.vsn
        case ("which",):
            return [(r.vsn, r.status, r.note) for r in table.releases.releases]
    raise ReleaseError(("unknown_request", req), f"unknown release request {req!r}")


def _plan(table: ReleaseTable, vsn: str) -> tuple[Plan, Manifest]:
    if type(vsn) is not str:
        raise ReleaseError(("bad_vsn", vsn), f"a release version is a str\nGot: {vsn!r}")
    if vsn == table.vsn:
        raise ReleaseError(("already_current", vsn), f"release {vsn} is the one running")
    new = read_manifest(table.build_dir, vsn)
    if new.name != table.manifest.name:
        raise ReleaseError(
            ("other_release", new.name), f"{vsn} is a release of {new.name!r}, not of ours"
        )
    downgrade = _is_downgrade(table.manifest, new)
    _check_config(new)
    appups = {
        app.name: {
            frm: [_step(app.name, step) for step in steps] for frm, steps in app.appup.items()
        }
        for app in new.applications
    }
    lib = release_dir(table.build_dir, vsn) / "lib"
    plan = derive(table.manifest, new, lib, set(sys.modules), appups, downgrade=downgrade)
    return plan, new


def _is_downgrade(running: Manifest, to: Manifest) -> bool:
    """Going to a release built before the running one is a downgrade (rolling back from
    an older release to a newer permanent one is an upgrade)."""
    return to.built_at < running.built_at


def _check_config(new: Manifest) -> None:
    """The node's configuration must fit the new env defaults (as at load time)."""
    config = _node.get().config
    for entry in new.applications:
        try:
            _config.check(entry.name, entry.env, config.get(entry.name, {}))
        except _config.ConfigError as bad:
            raise ReleaseError(("bad_config", entry.name), f"release {new.vsn}: {bad}") from None


def _step(app: str, data: Any) -> Update | Load | RestartApplication:
    """An appup step as the manifest holds it; a malformed one is a ReleaseError."""
    if isinstance(data, dict):
        if isinstance(data.get("update"), str):
            return Update(data["update"], data.get("extra"))
        if isinstance(data.get("load"), str):
            return Load(data["load"])
        if isinstance(data.get("restart_application"), str):
            return RestartApplication(data["restart_application"])
    raise ReleaseError(
        ("bad_appup", app, repr(data)), f"application {app!r}: malformed appup step {data!r}"
    )


def _claim(table: ReleaseTable, what: str) -> tuple[CodeTable, object]:
    code = code_table(_node.get())
    try:
        job = code.claim(what, table.manifest.name)
    except UpgradeError as busy:
        raise ReleaseError(
            ("busy", busy.reason[1]), f"cannot {what}: an upgrade ({busy.reason[1]}) is running"
        ) from None
    return code, job


async def _install(
    table: ReleaseTable, vsn: str, window: float, ratio: float, timeout: float
) -> UpgradeReport:
    if table.trial is not None:
        raise ReleaseError(
            ("on_trial", table.vsn),
            f"release {table.vsn} is still in its watch window: make it permanent or roll it "
            "back first",
        )
    plan, new = _plan(table, vsn)
    code, job = _claim(table, "install")
    from_vsn = table.vsn
    started = time.perf_counter()
    try:
        reports = await _switch(table, code, new, plan, timeout)
    except ReleaseError as failed:
        _report(logging.ERROR, table, vsn, "install_failed", from_vsn, failed.reason)
        raise
    finally:
        code.release(job)
    table.releases.set(vsn, "current")
    table.save()
    pids = tuple(pid for r in reports for pid in r.processes)
    _report(logging.INFO, table, vsn, "installed", from_vsn)
    trial = _Trial(from_vsn, {r.module for r in reports}, len(pids), ratio, timeout)
    _start_trial(table, trial, window)
    if window <= 0:
        _make_permanent(table)
    return UpgradeReport(
        table.manifest.name,
        from_vsn,
        vsn,
        pids,
        seconds=time.perf_counter() - started,
        longest_pause=max((r.longest_pause for r in reports), default=0.0),
    )


async def _switch(
    table: ReleaseTable, code: CodeTable, new: Manifest, plan: Plan, timeout: float
) -> list[UpgradeReport]:
    """Carry out `plan` (see the module doc). Raises ReleaseError; when the code switch
    itself failed, nothing changed."""
    new_lib = release_dir(table.build_dir, new.vsn) / "lib"
    stopped = []
    for name in plan.stop_apps:
        if _running(name):
            await application.stop(name)
            stopped.append(name)
    undo_paths = _swap_paths(table.lib, new_lib)
    paths = {m.name: new_lib / m.path for m in new.modules}
    changes = [  # in dependency order: a module is loaded after those it imports
        Change(
            step.module,
            paths[step.module],
            step.extra if isinstance(step, Update) else None,
            plan.downgrade,
            switch=isinstance(step, Update),
        )
        for step in plan.steps
    ]
    try:
        reports = await perform(code, changes, timeout) if changes else []
    except UpgradeError as failed:
        undo_paths()
        for name in reversed(stopped):
            await application.ensure_all_started(name, "permanent")
        raise ReleaseError(
            ("code_change_failed", failed.module, failed.pid, failed.reason),
            f"release {new.vsn}: {failed}",
        ) from failed
    # the point of no return: what fails from here on is undone by a rollback
    old = table.manifest
    table.manifest = new
    await _apply_child_specs([pid for r in reports for pid in r.processes], timeout)
    apps = _node.get().apps
    for name in plan.stop_apps:  # dropped by the new release: unloaded too (case 152)
        if apps is not None and name in apps.loaded and not apps.is_running(name):
            apps.unload(name)
    try:
        await _take_specs(new)
        for name in plan.restart_apps:
            if _running(name):
                await application.stop(name)
            await application.ensure_all_started(name, "permanent")
        for name in plan.start_apps:
            await application.ensure_all_started(name, "permanent")
    except Exception as exc:
        if _node.get().halted.done():  # a permanent application did not start: the node stops
            permanent = table.releases.with_status("permanent")
            table.releases.set(new.vsn, "unpacked", f"did not start: {exc!r}")
            table.save()
            raise ReleaseError(
                ("start_failed", repr(exc)),
                f"release {new.vsn} failed after its code switch ({exc!r}): the node stops, "
                f"and boots release {permanent.vsn if permanent else '?'} when started again",
            ) from exc
        broken = ReleaseError(
            ("start_failed", repr(exc)),
            f"release {new.vsn} failed after its code switch, and was rolled back: {exc!r}",
        )
        if plan.downgrade:  # (no way further back)
            _fail_over(table, new.vsn, broken)
            raise broken from exc
        old_lib = release_dir(table.build_dir, old.vsn) / "lib"
        back = derive(new, old, old_lib, set(sys.modules), {}, downgrade=_is_downgrade(new, old))
        try:
            await _switch(table, code, old, back, timeout)
        except ReleaseError as worse:
            _fail_over(table, new.vsn, worse)
        raise broken from exc
    return reports


async def _apply_child_specs(pids: list[Pid], timeout: float) -> None:
    """Have every upgraded supervisor start the children its new init added and stop the
    ones it dropped (api.md: an install applies child-spec changes)."""
    requests = _call.RequestIdCollection()
    for pid in pids:
        requests.add(_call.send_request(pid, SYSTEM, "apply_child_specs"), pid)
    while requests:
        try:
            await _call.wait_any(requests, timeout, drop_on_timeout=True)
        except CallError:  # (ended meanwhile)
            continue
        except TimeoutError:
            _logger.error("supervisors did not apply their new child specs in %s s", timeout)
            return


def _running(name: str) -> bool:
    apps = _node.get().apps
    return apps is not None and apps.is_running(name)


def _swap_paths(old_lib: Path, new_lib: Path) -> Any:
    """Make imports find the new release's code: its lib on sys.path in place of the old,
    and the loaded packages' `__path__` moved; returns what undoes it."""
    old_s, new_s = str(old_lib), str(new_lib)
    saved_path = list(sys.path)
    sys.path[:] = [new_s if p == old_s else p for p in sys.path]
    moved: list[tuple[Any, list[str]]] = []
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__path__", None)
        if not isinstance(package_path, list):
            continue
        updated = [new_s + p[len(old_s) :] if p.startswith(old_s) else p for p in package_path]
        if updated != package_path:
            moved.append((module, list(package_path)))
            module.__path__ = updated

    def undo() -> None:
        sys.path[:] = saved_path
        for module, package_path in moved:
            module.__path__ = package_path

    return undo


async def _take_specs(new: Manifest) -> None:
    """Give every loaded application of the new release its new spec; tell the running ones
    whose env changed (`config_change(changed, new, removed)`)."""
    release = _release_at(new, None)
    apps = _node.get().apps
    for spec in release.all_applications().values():
        if apps is None or spec.name not in apps.loaded:
            application.load(spec)
            continue
        old_env, new_env = apps.replace(spec)
        if not apps.is_running(spec.name) or spec.config_change is None or old_env == new_env:
            continue
        changed = {k: v for k, v in new_env.items() if k in old_env and old_env[k] != v}
        added = {k: v for k, v in new_env.items() if k not in old_env}
        removed = [k for k in old_env if k not in new_env]
        try:
            result = spec.config_change(changed, added, removed)
            if hasattr(result, "__await__"):
                await result
        except Exception:
            _logger.exception("application %s: config_change failed", spec.name)


# -- the watch window ----------------------------------------------------------------------


def _start_trial(table: ReleaseTable, trial: _Trial, window: float) -> None:
    handler = current().pid

    def watch(report: Any) -> None:
        behaviour = getattr(report, "behaviour", None)
        if isinstance(behaviour, type) and behaviour.__module__ in trial.modules:
            if is_abnormal(getattr(report, "reason", None)):
                send(handler, ("trial_crash", behaviour.__module__))
        elif (
            getattr(report, "context", None) == "shutdown"
            and getattr(report, "reason", None) == "reached_max_restart_intensity"
        ):
            send(handler, ("trial_gave_up", getattr(report, "supervisor", None)))

    trial.watcher = watch
    _node.get().report_watchers.append(watch)
    if window > 0:
        trial.timer = send_after(window, handler, ("trial_over", table.vsn))
    table.trial = trial


def _end_trial(table: ReleaseTable) -> _Trial:
    trial = table.trial
    assert trial is not None
    table.trial = None
    watchers = _node.get().report_watchers
    if trial.watcher in watchers:
        watchers.remove(trial.watcher)
    if trial.timer is not None:
        cancel_timer(trial.timer)
    return trial


def _make_permanent(table: ReleaseTable) -> None:
    from_vsn = _end_trial(table).from_vsn if table.trial is not None else table.vsn
    for state in table.releases.releases:
        if state.status == "permanent":
            state.status = "old"
    table.releases.set(table.vsn, "permanent")
    table.save()
    _report(logging.INFO, table, table.vsn, "permanent", from_vsn)


async def _roll_back(table: ReleaseTable, reason: Any, *, automatic: bool) -> str:
    """Go back to the release the trial started from (a downgrade). If that fails too, the
    node stops, to be started again on its permanent release (as Erlang restarts it)."""
    trial = table.trial
    assert trial is not None
    rolled = table.vsn
    old = read_manifest(table.build_dir, trial.from_vsn)  # (before anything changes)
    lib = release_dir(table.build_dir, old.vsn) / "lib"
    plan = derive(
        table.manifest, old, lib, set(sys.modules), {}, downgrade=_is_downgrade(table.manifest, old)
    )
    while True:  # (an upgrade of one module may be on its way: it is short)
        try:
            code, job = _claim(table, "rollback")
            break
        except ReleaseError:
            await _pause()
    _end_trial(table)
    note = f"rolled back at {time.strftime('%Y-%m-%d %H:%M:%S')}: {reason!r}"
    table.releases.set(rolled, "unpacked", note)
    table.save()  # whatever happens next, the node boots the permanent release
    try:
        await _switch(table, code, old, plan, trial.timeout)
    except ReleaseError as failed:
        _fail_over(table, rolled, failed)
        raise
    finally:
        code.release(job)
    level = logging.ERROR if automatic else logging.INFO
    _report(level, table, table.vsn, "rolled_back", rolled, reason)
    return table.vsn


def _fail_over(table: ReleaseTable, vsn: str, failed: ReleaseError) -> None:
    """Neither the new release nor the way back works: stop the node, which boots its
    permanent release when it is started again."""
    _report(logging.ERROR, table, vsn, "node_stopped", table.vsn, failed.reason)
    _node.get().stop(("release_failed", vsn, failed.reason))


async def _pause() -> None:
    with contextlib.suppress(TimeoutError):
        await receive(lambda m: False, 0.01)


def _report(
    level: int, table: ReleaseTable, vsn: str, context: str, from_vsn: str, reason: Any = None
) -> None:
    """`vsn` is the release the event is about; `from_vsn` the one running before it (for
    a rollback: the one rolled back)."""
    name = table.manifest.name
    text = {
        "installed": "installed %s (from %s)",
        "install_failed": "install of %s failed (%s runs on)",
        "permanent": "%s is permanent (%s was before)",
        "rolled_back": "back to %s (rolled back from %s)",
        "node_stopped": "%s cannot run, nor %s: stopping the node (it boots the permanent one)",
    }[context]
    emit(
        _logger,
        level,
        ReleaseReport(name, vsn, context, from_vsn, reason),
        "release %s: " + text + "%s",
        name,
        vsn,
        from_vsn,
        "" if reason is None else f": {reason!r}",
    )
