"""Development reload: watch source trees and upgrade the behaviour modules that change."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from .._spawn import spawn
from .._values import Pid

__all__ = ["watch"]

_logger = logging.getLogger("otp.code")


def watch(paths: Iterable[str | Path], *, debounce: float = 0.2) -> Pid:
    """Start a process that, whenever a `.py` file under `paths` changes, upgrades every
    behaviour module whose source differs from what runs (as `upgrade_changed`). Exit the
    process to stop watching. A change that fails to load is logged; the old code runs on.

    Args:
        paths: Files or directories to watch.
        debounce: Seconds to gather changes before upgrading (default 0.2).

    Returns:
        The watcher's pid.

    Raises:
        FileNotFoundError: A path does not exist.
        NoProcessError: No node is running.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"watch(): no such file or directory: {root}")
    return spawn(_watcher, roots, debounce)


async def _watcher(roots: list[Path], debounce: float) -> None:
    import watchfiles  # (only a node that watches pays for the import)

    from . import upgrade_changed

    armed = False
    async for changes in watchfiles.awatch(
        *roots,
        watch_filter=watchfiles.PythonFilter(),
        debounce=int(debounce * 1000),
        rust_timeout=1000,
        yield_on_timeout=True,  # (the first yield says the watch is on)
    ):
        if not armed:  # what changed before the watch was on is upgraded now
            armed = True
            _logger.info("watching %s for changes", ", ".join(map(str, roots)))
            await upgrade_changed()
        elif changes:
            await upgrade_changed()
