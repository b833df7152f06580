"""otp.release: releases, built as snapshots and installed on a running node (Erlang's
release handler).

    release = otp.Release("chat", "1.1.0", applications=[chat_app])   # in rel.py
    $ otp release build rel:release            # -> _build/releases/1.1.0/
    $ otp run --release                         # runs the permanent release
    $ otp release check 1.1.0                   # the plan, without doing it
    $ otp release upgrade 1.1.0                 # install it on the running node
    $ otp release list                          # each version and its status

    await otp.release.install("1.1.0")   -> UpgradeReport
    await otp.release.check("1.1.0")     -> the plan, as data
    await otp.release.rollback() / make_permanent() / which_releases()

An install validates everything first, then switches the code of every changed module at
once (all or nothing), applies application changes (`config_change` for a changed env,
started and stopped applications), and opens a watch window: if more than
`max_crash_ratio` of the upgraded processes crash, or a supervisor reaches its restart
intensity, the node rolls back on its own; otherwise the release becomes permanent when the
window ends. Statuses: `unpacked` (built), `current` (installed, on trial), `permanent`
(what the node boots), `old` (a previous permanent one). A failure before the code switch
leaves everything as it was and raises `ReleaseError`.
"""

from __future__ import annotations

import math
from typing import Any

from ..code._server import DEFAULT_TIMEOUT, UpgradeReport
from ._handler import ReleaseReport as ReleaseReport
from ._handler import boot as boot
from ._handler import preflight as preflight
from ._handler import request
from ._manifest import Manifest as Manifest
from ._manifest import build as build
from ._plan import Plan as Plan
from ._spec import Load as Load
from ._spec import Release as Release
from ._spec import ReleaseError as ReleaseError
from ._spec import RestartApplication as RestartApplication
from ._spec import Update as Update
from ._spec import load as load
from ._spec import restart_application as restart_application
from ._spec import update as update

__all__ = [
    "DEFAULT_MAX_CRASH_RATIO",
    "DEFAULT_WINDOW",
    "Load",
    "Manifest",
    "Plan",
    "Release",
    "ReleaseError",
    "ReleaseReport",
    "RestartApplication",
    "Update",
    "boot",
    "build",
    "check",
    "install",
    "load",
    "make_permanent",
    "preflight",
    "restart_application",
    "rollback",
    "update",
    "which_releases",
]

DEFAULT_WINDOW = 30.0
DEFAULT_MAX_CRASH_RATIO = 0.05


async def check(vsn: str) -> dict[str, Any]:
    """What installing `vsn` would do (a dry run): modules to upgrade in order, modules
    loaded alone, applications stopped, started and restarted, env changes.

    Args:
        vsn: A release built in the node's build directory.

    Returns:
        The plan as plain data (what `otp release check` prints).

    Raises:
        ReleaseError: `("no_release", node)` when the node does not run a release, or `vsn`
            cannot be installed (`("already_current", vsn)`, `("bad_vsn", vsn)`, a
            missing or broken manifest, ...).
    """
    plan: dict[str, Any] = await request(("check", vsn))
    return plan


async def install(
    vsn: str,
    *,
    window: float = DEFAULT_WINDOW,
    max_crash_ratio: float = DEFAULT_MAX_CRASH_RATIO,
    timeout: float = DEFAULT_TIMEOUT,
) -> UpgradeReport:
    """Upgrade the running node to release `vsn` in place (see the module doc).

    Args:
        vsn: a release built in the node's build directory.
        window: seconds of watching before the release becomes permanent (0: at once).
        max_crash_ratio: crashes of upgraded processes, as a share of them, above which the
            node rolls back on its own during the window.
        timeout: seconds each process may take to suspend and to run its code_change.

    Returns:
        An `UpgradeReport` whose `.module` is the release's name, `.old_vsn`/`.new_vsn` the
        versions, and `.processes` the processes switched.

    Raises:
        ReleaseError: nothing changed (or, after the code switch, the node rolled back).
        ValueError: a negative `window` or `max_crash_ratio`, or a `timeout` that is not a
            finite number > 0.
    """
    for name, value, low in (("window", window, 0.0), ("max_crash_ratio", max_crash_ratio, 0.0)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
            raise ValueError(f"install() takes {name} >= {low}, got {value!r}")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise ValueError(f"install() takes a finite timeout > 0, got {timeout!r}")
    report: UpgradeReport = await request(
        ("install", vsn, float(window), float(max_crash_ratio), float(timeout))
    )
    return report


async def rollback() -> str:
    """Go back from the release on trial to the permanent one; the version now running.

    Returns:
        The version now running.

    Raises:
        ReleaseError: `("no_release", node)` when the node does not run a release, or
            `("nothing_to_roll_back", vsn)` when the running release is permanent.
    """
    vsn: str = await request(("rollback",))
    return vsn


async def make_permanent() -> str:
    """End the watch window now: the running release becomes permanent; its version.

    Returns:
        The version now permanent.

    Raises:
        ReleaseError: `("no_release", node)` when the node does not run a release.
    """
    vsn: str = await request(("make_permanent",))
    return vsn


async def which_releases() -> list[tuple[str, str, str]]:
    """`(vsn, status, note)` of every release built, the note saying why one was rolled back.

    Returns:
        The tuples; status is `unpacked`, `current`, `permanent` or `old`.

    Raises:
        ReleaseError: `("no_release", node)` when the node does not run a release.
    """
    releases: list[tuple[str, str, str]] = await request(("which",))
    return releases
