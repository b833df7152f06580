"""The application spec and its error (re-exported by `otp` and `otp.application`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._values import Pid
from .errors import OTPError

__all__ = ["START_TYPES", "Application", "ApplicationError", "StartType"]

StartType = Literal["permanent", "transient", "temporary"]
START_TYPES = ("permanent", "transient", "temporary")


class ApplicationError(OTPError):
    """A refused or failed application request; `.reason` is `("already_started", name)`,
    `("not_started", name)`, `("not_loaded", name)`, `("not_running", name)`,
    `("cycle", [names])`, or the start failure.

    Args:
        reason: Why, kept as `.reason`.
        message: The text (default: `application: <reason>`).
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"application: {reason!r}")


@dataclass(frozen=True)
class Application:
    """An application spec. `start(start_args)` is an async callable returning the pid of the
    top supervisor (`start=None`: a library application, with no processes); `stop()` runs
    after the tree has stopped. `applications` are started first; `env` holds the defaults.

    For releases: `config_change(changed, new, removed)` is called when an upgrade changes
    the env of the running application (`changed` and `new` map keys to their new values,
    `removed` lists keys); `appup` maps a previous `vsn` to the steps an upgrade from it
    takes instead of the derived plan (`otp.release.update/load/restart_application`).

    Args:
        name: The application's name.
        start: An async callable of `start_args` returning the top supervisor's pid
            (default None: a library application).
        vsn: Its version (default `"0"`).
        description: One line (default `""`).
        stop: An async callable of no arguments, run after the tree stopped (default None).
        applications: Names (or `Application`s) started first (default `()`).
        env: The env defaults (default `{}`).
        start_args: What `start` receives (default None).
        config_change: Called by an upgrade that changes the env (default None).
        appup: Previous `vsn` -> upgrade steps (default `{}`).
    """

    name: str
    start: Callable[[Any], Awaitable[Pid | None]] | None = None
    vsn: str = "0"
    description: str = ""
    stop: Callable[[], Awaitable[None]] | None = None
    applications: tuple[str | Application, ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)
    start_args: Any = None
    config_change: Callable[[dict[str, Any], dict[str, Any], list[str]], Any] | None = None
    appup: Mapping[str, Sequence[Any]] = field(default_factory=dict)
