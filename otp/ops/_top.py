"""`otp top`: a live view of a running node in the terminal, drawn with rich.

Each refresh is one `top` request over the control socket (see `otp._control._top`): the node
answers the busiest processes (by mailbox length, message rate or time in callbacks), its
supervisors and its alarms; this module only draws them.
The live view redraws every `interval` seconds in the terminal's alternate screen (as htop
does) and ends on `q` or Ctrl-C; `once` prints one frame, its rates measured over one
interval, and returns.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import _control

__all__ = ["live", "once", "render"]

SUPERVISOR_ROWS = 10  # the supervisors shown: those with the most restarts
SORTED_BY = {"mailbox": "mailbox length", "rate": "message rate", "time": "time in callbacks"}
PLAIN_WIDTH = 160  # the width of a frame printed to a file or pipe


class _Viewer:
    """One viewer's requests: its session token lets the node measure rates between them."""

    def __init__(self, path: Path, cookie: str, limit: int, sort: str) -> None:
        self.path = path
        self.cookie = cookie
        self.args = {"limit": limit, "sort": sort, "session": secrets.token_hex(8)}

    def frame(self) -> dict[str, Any]:
        result: dict[str, Any] = _control.call(self.path, self.cookie, "top", self.args)
        return result


def once(path: Path, cookie: str, *, limit: int, sort: str, interval: float, out: TextIO) -> None:
    """Print one frame to `out`: two samples `interval` seconds apart, for the rates."""
    viewer = _Viewer(path, cookie, limit, sort)
    viewer.frame()
    time.sleep(interval)
    width = None if out.isatty() else PLAIN_WIDTH
    console = Console(file=out, width=width, highlight=False)
    console.print(render(viewer.frame()))


def live(path: Path, cookie: str, *, limit: int, sort: str, interval: float) -> None:
    """Redraw a frame every `interval` seconds until `q` (or Ctrl-C)."""
    if not sys.stdin.isatty():
        raise ValueError("otp top draws in a terminal; for a pipe or a script use --once")
    viewer = _Viewer(path, cookie, limit, sort)
    console = Console(highlight=False)
    frame = viewer.frame()
    keys = sys.stdin.fileno()
    view = Live(_screen(frame, interval), console=console, screen=True, auto_refresh=False)
    with contextlib.suppress(KeyboardInterrupt), _keys_one_by_one(keys), view:
        while True:
            if _quit_pressed(keys, interval):
                return
            frame = viewer.frame()
            view.update(_screen(frame, interval), refresh=True)


@contextlib.contextmanager
def _keys_one_by_one(fd: int) -> Iterator[None]:
    """The terminal hands each key over as it is pressed (no Enter), echoing none;
    Ctrl-C still interrupts. Restored on the way out."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(fd: int, wait: float) -> bool:
    """Wait up to `wait` seconds for keys; True when one of them is `q`."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return False
        pressed = os.read(fd, 64)
        if not pressed or b"q" in pressed.lower():  # (the end of input: quit too)
            return True
    return False


def _screen(frame: dict[str, Any], interval: float) -> RenderableType:
    hint = Text(f"refreshing every {interval:g} s; q quits", style="dim", justify="right", end="")
    return Group(render(frame), hint)


def render(frame: dict[str, Any]) -> RenderableType:
    """One frame: the node, its alarms, its supervisors and its busiest processes."""
    rate = frame["rate"]
    header = Text.assemble(
        ("node ", "bold"),
        (frame["node"], "bold cyan"),
        f"  up {frame['uptime']:.0f} s  processes {frame['processes']}",
        f"  messages/s {'-' if rate is None else f'{rate:.0f}'}",
        f"  alarms {len(frame['alarms'])}",
    )
    parts: list[RenderableType] = [header]
    if frame["alarms"]:
        parts.append(_alarms_table(frame["alarms"]))
    parts.append(_supervisors_table(frame["supervisors"]))
    parts.append(_processes_table(frame))
    return Group(*parts)


def _alarms_table(alarms: list[dict[str, Any]]) -> Table:
    table = Table(title="alarms", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("kind", style="bold red")
    table.add_column("offender")
    table.add_column("since", justify="right")
    table.add_column("details")
    now = time.time()
    for alarm in alarms:
        details = " ".join(f"{k}={v}" for k, v in alarm["details"].items() if v is not None)
        table.add_row(
            alarm["kind"], alarm["offender"], f"{now - alarm['since']:.0f} s ago", details
        )
    return table


def _supervisors_table(supervisors: list[dict[str, Any]]) -> Table:
    shown = sorted(supervisors, key=lambda s: -(s["restarts"] or 0))[:SUPERVISOR_ROWS]
    title = "supervisors" + (
        f" (the {len(shown)} with most restarts of {len(supervisors)})"
        if len(shown) < len(supervisors)
        else ""
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("pid")
    table.add_column("name")
    table.add_column("behaviour")
    table.add_column("application")
    table.add_column("children", justify="right")
    table.add_column("restarts", justify="right")
    for sup in shown:
        restarts = sup["restarts"]
        table.add_row(
            sup["pid"],
            sup["name"] or "",
            sup["behaviour"],
            sup["application"],
            _count(sup["children"], sup.get("unavailable")),
            Text(_count(restarts, None), style="bold yellow" if restarts else ""),
        )
    return table


def _processes_table(frame: dict[str, Any]) -> Table:
    by_time = frame["sort"] == "time"
    title = f"processes by {SORTED_BY[frame['sort']]}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("pid")
    table.add_column("name")
    table.add_column("behaviour")
    table.add_column("mailbox", justify="right")
    table.add_column("msg/s", justify="right")
    if by_time:  # (the share of the interval the loop spent in its callbacks, sampled)
        table.add_column("time%", justify="right")
    table.add_column("application")
    for row in frame["rows"]:
        rate = row["rate"]
        cells: list[Any] = [
            row["pid"],
            row["name"] or "",
            row["behaviour"] or row["initial_call"],
            Text(str(row["mailbox"]), style="bold red" if row["mailbox"] else ""),
            "-" if rate is None else f"{rate:.0f}",
        ]
        if by_time:
            spent = row.get("time")
            cells.append("-" if spent is None else f"{spent * 100:.1f}")
        cells.append(row["application"] or ("(system)" if row["system"] else ""))
        table.add_row(*cells)
    return table


def _count(value: int | None, unavailable: str | None) -> str:
    if value is None:
        return unavailable or "-"
    return str(value)
