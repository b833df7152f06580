"""Node configuration: application env overrides from a TOML file and the command line.

    # sys.toml
    [chat]
    port = 6000

    otp run app:chat --config sys.toml --set chat.motd='"hello"'

Each setting remembers where it came from, so a value of the wrong type is refused with
the file (or option), the key and the type the application's default has.
"""

from __future__ import annotations

import difflib
import logging
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import OTPError

__all__ = [
    "ConfigError",
    "Settings",
    "check",
    "did_you_mean",
    "load_file",
    "parse_set",
    "warn_unclaimed",
]

_logger = logging.getLogger("otp.application")

Settings = dict[str, dict[str, tuple[Any, str]]]  # app -> key -> (value, source)


class ConfigError(OTPError):
    """Configuration that cannot be used; the message names the source, the key and why."""


def load_file(path: str | Path, settings: Settings) -> None:
    """Add the `[app]` tables of a TOML file to `settings`."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for app, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: {app}: expected a table [{app}] of settings for application "
                f"{app!r}, got {type(table).__name__} {table!r}"
            )
        for key, value in table.items():
            settings.setdefault(app, {})[key] = (value, str(path))


def parse_set(option: str, settings: Settings) -> None:
    """Add one `app.key=value` setting (the value is read as TOML, else taken as text)."""
    target, sep, text = option.partition("=")
    app, dot, key = target.partition(".")
    if not sep or not dot or not app or not key:
        raise ConfigError(f"--set {option!r}: expected app.key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    settings.setdefault(app, {})[key] = (value, f"--set {option}")


def check(
    app: str, defaults: dict[str, Any], overrides: dict[str, tuple[Any, str]]
) -> dict[str, Any]:
    """The values of `overrides` for `app`, each of the shape of its default (if it has one),
    all the way down: a list of strings takes only strings. A key the application does not
    declare is taken, with a warning that names the closest one it does."""
    values = {}
    for key, (value, source) in overrides.items():
        if key not in defaults and defaults:
            _logger.warning(
                "%s: [%s] %s: application %r declares no such key%s",
                source,
                app,
                key,
                app,
                did_you_mean(key, defaults),
            )
        wrong = _mismatch(value, defaults.get(key), "")
        if wrong is not None:
            raise ConfigError(f"{source}: [{app}] {key}{wrong}")
        values[key] = value
    return values


def warn_unclaimed(settings: Settings, loaded: Iterable[str]) -> None:
    """Warn of settings for an application that is not loaded once the node has started
    (a misspelled `[section]` or `--set app.key`), naming the closest one that is."""
    known = list(loaded)
    for app, values in settings.items():
        if app not in known and values:
            source = next(iter(values.values()))[1]
            _logger.warning(
                "%s: [%s]: no application %r is loaded, so nothing reads these settings%s",
                source,
                app,
                app,
                did_you_mean(app, known),
            )


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _mismatch(value: Any, default: Any, where: str) -> str | None:
    """How `value` differs in shape from `default` (`None`: it does not), as the rest of an
    error line: the path inside the value, what was expected and what came."""
    if default is None:
        return None
    if not _same_kind(value, default):
        return (
            f"{where}: expected {type(default).__name__} (like the default {default!r}), "
            f"got {type(value).__name__} {value!r}"
        )
    if isinstance(default, list | tuple) and default:
        for i, item in enumerate(value):
            wrong = _mismatch(item, default[0], f"{where}[{i}]")
            if wrong is not None:
                return wrong
    elif isinstance(default, dict):
        for key, item in value.items():
            wrong = _mismatch(item, default.get(key), f"{where}.{key}")
            if wrong is not None:
                return wrong
    return None


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple | list):
        return isinstance(value, tuple | list)
    return isinstance(value, type(default))
