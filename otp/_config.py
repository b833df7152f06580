"""Node configuration: application env overrides from a TOML file and the command line.

    # sys.toml
    [chat]
    port = 6000

    otp run app:chat --config sys.toml --set chat.motd='"hello"'

Each setting remembers where it came from, so a value of the wrong type is refused with
the file (or option), the key and the type the application's default has.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import OTPError

__all__ = ["ConfigError", "Settings", "check", "load_file", "parse_set"]

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
    """The values of `overrides` for `app`, each of the type of its default (if it has one)."""
    values = {}
    for key, (value, source) in overrides.items():
        default = defaults.get(key)
        if default is not None and not _same_kind(value, default):
            raise ConfigError(
                f"{source}: [{app}] {key}: expected {type(default).__name__} "
                f"(like the default {default!r}), got {type(value).__name__} {value!r}"
            )
        values[key] = value
    return values


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple | list):
        return isinstance(value, tuple | list)
    return isinstance(value, type(default))
