"""otp.code: hot code upgrade of running processes, module by module (Erlang's code server).

    otp.code.modules()                  -> [ModuleInfo(name, vsn, path, hash)]
    otp.code.processes_running(module)  -> [Pid]
    await otp.code.upgrade(module, extra=None)      -> UpgradeReport
    await otp.code.upgrade_changed()    -> [UpgradeReport]   (what SIGUSR2 does)
    otp.code.watch(paths)               -> Pid               (what `otp run --reload` does)

`upgrade` loads the module's source again (a change is seen by its content, even within
the same second), suspends every process running one of its behaviour classes, switches
each to the new class and calls `code_change(old_vsn, state, extra)`, then resumes them.
All or nothing: if the source does not load or one `code_change` raises (or takes longer
than `timeout`), the old module and every old state are restored, the processes resume,
and `UpgradeError` (`.module`, `.reason`, `.pid`) says what failed. Messages sent during
an upgrade wait in the mailboxes; calls made during it are answered after it.

A behaviour class is upgraded with the module that defines it. Starts of an old class or
function (a supervisor's child specs) start its replacement once an upgrade has committed.

For behaviour authors: `target_class(cls)` is the class a process switches to at a code
change, `snapshot(state)` the copy it keeps to revert to, `latest(fn)` what a start
function stands for now, `note_behaviour(cls)` records a behaviour class's module.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

from .. import _node
from .._values import Pid
from ._modules import ModuleInfo as ModuleInfo
from ._modules import content_hash, file_of, read_source
from ._modules import module_hash as module_hash
from ._modules import note_behaviour as note_behaviour
from ._modules import snapshot as snapshot
from ._modules import target_class as target_class
from ._server import DEFAULT_TIMEOUT, Change, request
from ._server import CodeReport as CodeReport
from ._server import UpgradeError as UpgradeError
from ._server import UpgradeReport as UpgradeReport
from ._server import latest as latest
from ._watch import watch as watch

__all__ = [
    "CodeReport",
    "ModuleInfo",
    "UpgradeError",
    "UpgradeReport",
    "changed",
    "latest",
    "module_hash",
    "modules",
    "note_behaviour",
    "processes_running",
    "snapshot",
    "target_class",
    "upgrade",
    "upgrade_changed",
    "watch",
]

_logger = logging.getLogger("otp.code")


def modules() -> list[ModuleInfo]:
    """Every loaded module that defines a behaviour class, or that a running process's
    behaviour comes from, sorted by name.

    Returns:
        A `ModuleInfo` (name, vsn, path, content hash) per module.
    """
    from ._modules import behaviour_modules, info

    names = behaviour_modules()
    node = _node.current
    if node is not None:
        names.update(
            proc.behaviour.__module__ for proc in node.procs.values() if proc.behaviour is not None
        )
    return [info(name) for name in sorted(names) if name in sys.modules]


def processes_running(module: str) -> list[Pid]:
    """The processes running a behaviour class of `module` (the kernel's own left out).

    Args:
        module: A module name, as in `sys.modules`.

    Returns:
        Their pids.

    Raises:
        NoProcessError: No node is running.
    """
    node = _node.get()
    return [
        proc.pid
        for proc in node.procs.values()
        if proc.behaviour is not None
        and proc.behaviour.__module__ == module
        and proc.pid.id not in node.system
    ]


async def upgrade(
    module: str,
    extra: Any = None,
    *,
    source: str | Path | None = None,
    downgrade: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> UpgradeReport:
    """Load `module`'s source again and switch its running processes to it, all or nothing
    (see the module doc).

    Args:
        module: the module's name, as in `sys.modules`.
        extra: passed to each `code_change`.
        source: the file to load (default: the module's own, read again).
        downgrade: the new code is older: each process's running code converts its state
            with `code_change(("down", vsn), state, extra)` first, `vsn` being the older
            class's, then the older class takes over (as Erlang's downgrade).
        timeout: seconds each process may take to suspend, and to run its `code_change`.

    Returns:
        An `UpgradeReport` (`.module`, `.old_vsn`, `.new_vsn`, `.processes`).

    Raises:
        UpgradeError: nothing changed; `.reason` says why, `.pid` which process failed.
        TypeError: `module` is not a str.
        ValueError: `timeout` is not a finite number of seconds > 0.
    """
    if type(module) is not str:
        raise TypeError(f"upgrade() takes a module name (str), got {module!r}")
    _check_timeout(timeout)
    change = Change(module, None if source is None else Path(source), extra, bool(downgrade))
    reports: list[UpgradeReport] = await request(("upgrade", [change], timeout), module)
    return reports[0]


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"upgrade() takes a timeout in seconds > 0, got {timeout!r}")
    if timeout == math.inf:
        raise ValueError("upgrade() takes a finite timeout: a hung code_change must not hang it")


def changed() -> list[str]:
    """The behaviour modules whose source file differs from the code that runs.

    Returns:
        Their names, sorted (a module whose file cannot be read is left out).
    """
    found = []
    for mod in modules():
        module = sys.modules.get(mod.name)
        path = None if module is None else file_of(module)
        if path is None or mod.hash is None:
            continue
        try:
            if content_hash(read_source(path)) != mod.hash:
                found.append(mod.name)
        except OSError:
            continue
    return found


async def upgrade_changed(extra: Any = None) -> list[UpgradeReport]:
    """Upgrade every changed behaviour module (in name order); one that fails is logged and
    left running its old code, and the others are still upgraded.

    Args:
        extra: Passed to each `code_change` (default None).

    Returns:
        The reports of the upgrades that succeeded.
    """
    reports = []
    for name in changed():
        try:
            reports.append(await upgrade(name, extra))
        except UpgradeError as failed:
            _logger.error("reload of %s failed, the old code runs on: %s", name, failed)
    return reports
