"""What a release is made of: its spec, its error, and the steps an application's appup
may list instead of the derived plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._app import Application
from ..errors import OTPError

__all__ = [
    "Instruction",
    "Load",
    "Release",
    "ReleaseError",
    "RestartApplication",
    "Update",
    "load",
    "restart_application",
    "update",
]


class ReleaseError(OTPError):
    """A release that could not be built, booted, checked or installed; `.reason` says why.
    An install that fails before it changed anything leaves the node as it was.

    Args:
        reason: Why, kept as `.reason`.
        message: The text (default: `release: <reason>`).
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"release: {reason!r}")


@dataclass(frozen=True)
class Release:
    """A release: a name, a version, and the applications it runs (started in this order,
    each after the ones it depends on). `otp release build` snapshots its code.

    Args:
        name: The release's name.
        vsn: Its version, usable as a directory name.
        applications: The `Application`s it runs (default `()`).

    Raises:
        ReleaseError: `("bad_release", name)` or `("bad_vsn", vsn)`.
    """

    name: str
    vsn: str
    applications: Sequence[Application] = ()

    def __post_init__(self) -> None:
        if type(self.name) is not str or not self.name:
            raise ReleaseError(
                ("bad_release", self.name), f"a release name is a str\nGot: {self.name!r}"
            )
        if type(self.vsn) is not str or not self.vsn or "/" in self.vsn or self.vsn.startswith("."):
            raise ReleaseError(
                ("bad_vsn", self.vsn),
                f"release {self.name!r}: a version is a str usable as a directory name\n"
                f"Got: {self.vsn!r}",
            )
        if not all(isinstance(app, Application) for app in self.applications):
            raise ReleaseError(
                ("bad_release", self.name),
                f"release {self.name!r}: applications are otp.Application objects\n"
                f"Got: {list(self.applications)!r}",
            )

    def all_applications(self) -> dict[str, Application]:
        """Its applications and those they name as objects, by name.

        Returns:
            A dict of name -> `Application`.
        """
        found: dict[str, Application] = {}

        def collect(app: Application) -> None:
            if app.name not in found:
                found[app.name] = app
                for dep in app.applications:
                    if isinstance(dep, Application):
                        collect(dep)

        for app in self.applications:
            collect(app)
        return found


@dataclass(frozen=True, slots=True)
class Update:
    """Upgrade a module's code and switch its processes (their `code_change(old, state,
    extra)` runs): what the derived plan does for every changed module."""

    module: str
    extra: Any = None


@dataclass(frozen=True, slots=True)
class Load:
    """Load a module's new code without touching its processes (a library module)."""

    module: str


@dataclass(frozen=True, slots=True)
class RestartApplication:
    """Stop an application, then start it again on the new code."""

    application: str


Instruction = Update | Load | RestartApplication


def update(module: str, extra: Any = None) -> Update:
    """An appup step: upgrade `module` and switch its processes.

    Args:
        module: A module name.
        extra: Passed to each `code_change` (default None).

    Returns:
        The `Update` step.
    """
    return Update(module, extra)


def load(module: str) -> Load:
    """An appup step: load `module`'s new code without touching its processes.

    Args:
        module: A module name.

    Returns:
        The `Load` step.
    """
    return Load(module)


def restart_application(application: str) -> RestartApplication:
    """An appup step: stop `application`, then start it again on the new code.

    Args:
        application: An application name.

    Returns:
        The `RestartApplication` step.
    """
    return RestartApplication(application)
