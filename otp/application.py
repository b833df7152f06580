"""Applications: a supervision tree with a name, a version, an environment and dependencies.

    store = otp.Application(name="store", start=StoreSup.start_link, env={"size": 10})
    chat = otp.Application(
        name="chat", vsn="1.0.0", start=ChatSup.start_link, applications=("store",),
        env={"port": 5555},
    )

    otp.application.load(store); otp.application.load(chat)
    await otp.application.ensure_all_started("chat")    # -> ["store", "chat"]
    otp.application.get_env("chat", "port")              # -> 5555
    await otp.application.stop("chat")

| API                              | through the controller? |
|----------------------------------|-------------------------|
| `load`, `unload`                 | no (a table update)     |
| `get_env`, `set_env`, ...        | no (reads never wait)   |
| `which_applications`             | no                      |
| `start`, `stop`, `ensure_all_started` | yes (`application_controller`) |

A process belongs to the application whose process spawned it (transitively); `stop` ends
the application's tree and then every process of it still alive. Types: a `"permanent"`
application that ends stops the node; `"transient"` does so after an abnormal end only;
`"temporary"` (the default) is only reported, on the `otp.application` logger.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from . import _application_controller as _controller
from . import _node
from ._app import START_TYPES, Application, ApplicationError, StartType
from ._process import current
from ._values import Pid

__all__ = [
    "Application",
    "ApplicationError",
    "StartType",
    "ensure_all_started",
    "get_all_env",
    "get_application",
    "get_env",
    "get_key",
    "load",
    "set_env",
    "start",
    "stop",
    "unload",
    "unset_env",
    "which_applications",
]


def load(app: Application | str) -> str:
    """Load an application (and the ones it names as objects or paths); its name.

    Loading again the same spec is a no-op; configuration given to the node overrides
    `env` here.

    Args:
        app: An `Application`, or a `"package.module:attr"` path to one.

    Returns:
        The application's name.

    Raises:
        ApplicationError: `("bad_application", app)` for a path that does not lead to an
            `Application` or a bad spec, `("already_loaded", name)` for another spec of the
            same name.
        NoProcessError: No node is running.
    """
    spec = resolve(app)
    _controller.table(_node.get()).load(spec)
    return spec.name


def resolve(app: Application | str) -> Application:
    """The `Application` for an object or a `"package.module:attr"` path."""
    if isinstance(app, Application):
        return app
    if type(app) is not str or ":" not in app:
        raise ApplicationError(
            ("bad_application", app),
            f"expected an otp.Application or a 'package.module:attr' path to one\nGot: {app!r}",
        )
    module_name, _, attr = app.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ApplicationError(
            ("bad_application", app), f"cannot import {module_name!r} for {app!r}: {exc}"
        ) from exc
    spec = getattr(module, attr, None)
    if not isinstance(spec, Application):
        raise ApplicationError(
            ("bad_application", app),
            f"{app!r} is not an otp.Application\nGot: {spec!r}",
        )
    return spec


def unload(name: str) -> None:
    """Forget a loaded application that is not running.

    Args:
        name: The application's name.

    Raises:
        ApplicationError: `("running", name)` or `("not_loaded", name)`.
    """
    _controller.table(_node.get()).unload(name)


async def start(name: str, type: StartType = "temporary") -> None:
    """Start a loaded application whose dependencies run; concurrent starts start it once.

    Args:
        name: The application's name.
        type: `"temporary"` (default), `"transient"` or `"permanent"`: what its end does.

    Raises:
        ApplicationError: `("not_loaded", name)`, `("already_started", name)`,
            `("not_started", dep)`, `("not_running", dep)` (a dependency that ended),
            `("node_stopping", name)`, or the start failure as `.reason`.
        ValueError: A bad `type`.
        TypeError: `name` is not a str.
    """
    _check_name(name)
    if type not in START_TYPES:
        raise ValueError(
            f"an application type is 'permanent', 'transient' or 'temporary'\nGot: {type!r}"
        )
    await _controller.request(("start", name, type))


async def ensure_all_started(name: str | Application, type: StartType = "temporary") -> list[str]:
    """Start `name` and, first, every dependency not running yet; the names started, in
    order. If one fails, the ones this call started are stopped again (newest first).

    Args:
        name: The application's name, or an `Application` (loaded first).
        type: The start type of each (default `"temporary"`).

    Returns:
        The names this call started, in start order.

    Raises:
        ApplicationError: `("cycle", names)`, `("not_loaded", name)`, or `(app, reason)`
            when `app` failed to start.
    """
    if not isinstance(name, str):
        name = load(name)
    order = _controller.table(_node.get()).start_order(name)
    started: list[str] = []
    for app in order:
        if _controller.table(_node.get()).is_running(app):
            continue
        try:
            outcome = await _controller.request(("start", app, type))
        except ApplicationError as err:
            if err.reason == ("already_started", app):
                continue
            for done in reversed(started):  # only what this call started, newest first
                with contextlib.suppress(ApplicationError):  # one already gone: go on
                    await stop(done)
            raise ApplicationError(
                (app, err.reason), f"cannot start {name!r}: {app!r} failed: {err.reason!r}"
            ) from err
        if outcome == "started":  # not "joined": another caller's start is not ours to undo
            started.append(app)
    return started


async def stop(name: str) -> None:
    """Stop a running application: its tree, its `stop`, then every process of it.

    Args:
        name: The application's name.

    Raises:
        ApplicationError: `("not_started", name)`.
        TypeError: `name` is not a str.
    """
    _check_name(name)
    await _controller.request(("stop", name))


def _check_name(name: object) -> None:
    if type(name) is not str:
        raise TypeError(f"an application is named by a str, got {name!r}")


def which_applications() -> list[tuple[str, str, str]]:
    """`(name, description, vsn)` of the running applications, the newest first.

    Returns:
        The tuples (empty when no node runs).
    """
    node = _node.current
    return [] if node is None or node.apps is None else node.apps.which()


def get_key(app: str, key: str, default: Any = None) -> Any:
    """A field of a loaded application's spec (`vsn`, `description`, `applications`,
    `env`, `start_args`, ...); `default` for an unknown application or key.

    Args:
        app: The application's name.
        key: An `Application` field name.
        default: What to return otherwise (default None).

    Returns:
        The field's value, or `default`.
    """
    node = _node.current
    loaded = None if node is None or node.apps is None else node.apps.loaded.get(app)
    if loaded is None or key not in Application.__dataclass_fields__:
        return default
    return getattr(loaded.spec, key)


def get_application(pid: Pid | None = None) -> str | None:
    """The application the process `pid` (default: the caller) belongs to, or None.

    Args:
        pid: A process (default None: the caller).

    Returns:
        The application's name, or None (also for a dead pid).

    Raises:
        NoProcessError: `pid` is None and the caller is not a process.
    """
    proc = current() if pid is None else pid._proc
    return None if proc is None else proc.app


def get_env(app: str, key: str, default: Any = None) -> Any:
    """The configured value of `key` for `app` (default when the app or the key is unknown).
    Reads the table directly: no process is involved.

    Args:
        app: The application's name.
        key: The env key.
        default: What to return otherwise (default None).

    Returns:
        The value, or `default`.
    """
    node = _node.current
    if node is None or node.apps is None:
        return default
    return node.apps.get_env(app, key, default)


def get_all_env(app: str) -> dict[str, Any]:
    """Every env value of `app`.

    Args:
        app: The application's name.

    Returns:
        A copy of its env (empty for an unknown application).
    """
    node = _node.current
    return {} if node is None or node.apps is None else node.apps.all_env(app)


def set_env(app: str, key: str, value: Any) -> None:
    """Set `key` of a loaded application's env.

    Args:
        app: The application's name.
        key: The env key.
        value: The new value.

    Raises:
        ApplicationError: `("not_loaded", app)`.
        NoProcessError: No node is running.
    """
    _controller.table(_node.get()).set_env(app, key, value)


def unset_env(app: str, key: str) -> None:
    """Remove `key` from a loaded application's env.

    Args:
        app: The application's name.
        key: The env key (an absent one is no error).

    Raises:
        ApplicationError: `("not_loaded", app)`.
        NoProcessError: No node is running.
    """
    _controller.table(_node.get()).unset_env(app, key)
