"""The loop watchdog: a WARNING that names the process when one callback holds the loop.

Processes share one event loop and take turns at each `await`: a callback that blocks
(`time.sleep`, a blocking socket, a long computation) freezes every process, the control
socket included. The watchdog costs nothing per message. A timer on the loop records when
the next heartbeat is due; a thread wakes every half threshold and, when the heartbeat is
more than the threshold late, reads which task the loop is running (asyncio's table of
current tasks) and the loop thread's stack (`sys._current_frames`), and logs a `LoopBlocked`
report on the `otp.watchdog` logger. When the loop runs again it logs one more, with the
length of the stall. The thread only reads: the loop's state is never changed from it.

The threshold is `OTP_LOOP_BLOCK_WARNING` in seconds, read when a node starts (default
0.1; `0` or `off` turns the watchdog off).

The same look at the loop, taken often, is `otp top --sort time`'s: a `Sampler` thread reads
which process the loop runs every `SAMPLE_INTERVAL` seconds and adds the time since its last
look to that process's `busy` seconds, an estimate of the time each process spends in its
callbacks (a statistical profiler's, at no cost per message or callback). It runs only
while a viewer asks for it: `sampler(node)` starts it, and it ends once nobody has asked for
`SAMPLER_IDLE` seconds, or the node stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from ._call import run_directly
from ._values import Pid

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["ENV", "LoopBlocked", "Sampler", "Watchdog", "sampler", "start", "threshold_from_env"]

ENV: Final = "OTP_LOOP_BLOCK_WARNING"
DEFAULT_THRESHOLD: Final = 0.1
SAMPLE_INTERVAL: Final = 0.002  # seconds between two looks of the sampler at the loop
SAMPLER_IDLE: Final = 60.0  # seconds: a sampler nobody asked for this long ends

_logger = logging.getLogger("otp.watchdog")

_DIRECT: Final = run_directly.__code__  # (see _call.call)

# The modules whose frames are the runtime's, not the callback's.
_RUNTIME: Final = ("otp", "behaviours", "asyncio", "uvloop", "concurrent", "threading")

if sys.version_info < (3, 14):
    # The table asyncio's C tasks update on each step (3.14 keeps it on the thread state).
    _current_tasks: dict[Any, Any] | None = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
else:  # pragma: no cover
    _current_tasks = None


@dataclass(frozen=True, slots=True)
class LoopBlocked:
    """One callback held the event loop for `blocked_for` seconds (at least).

    `pid`, `registered_name` and `behaviour` (the callback class) say which process ran it,
    or `task` names the plain asyncio task when it was not a process (all None when the loop
    ran no task). `callback` is the first function of the user's code in the stack
    (`Sleeper.handle_call`) and `location` the line it was at. `ongoing` is True in the
    report sent while the loop is still blocked, False in the one sent when it ran again.
    """

    pid: Pid | None
    registered_name: str | None
    behaviour: type | None
    task: str | None
    callback: str | None
    location: str | None
    blocked_for: float
    ongoing: bool

    def offender(self) -> str:
        """Who blocked the loop, in words: `process <0.5.0> 'kv' (KV) in KV.handle_call at f:3`."""
        if self.pid is not None:
            who = f"process {self.pid!r}"
            if self.registered_name is not None:
                who += f" {self.registered_name!r}"
            if self.behaviour is not None:
                who += f" ({self.behaviour.__qualname__})"
        elif self.task is not None:
            who = f"task {self.task!r} (not a process)"
        else:
            who = "a callback outside any task"
        if self.callback is not None:
            who += f" in {self.callback}"
        if self.location is not None:
            who += f" at {self.location}"
        return who


def threshold_from_env() -> float | None:
    """The threshold `OTP_LOOP_BLOCK_WARNING` sets, in seconds; None when it is off."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    if text.lower() in ("0", "off", "false", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(
            f"{ENV} takes a threshold in seconds (e.g. 0.1) or 0/off to turn the watchdog "
            f"off, got {text!r}"
        )
    return value or None


def start(node: Node) -> Watchdog | None:
    """Start watching the node's loop (from the loop's thread); None when it is off."""
    threshold = threshold_from_env()
    if threshold is None:
        return None
    watchdog = Watchdog(node, threshold)
    watchdog.start()
    return watchdog


class Watchdog:
    """The heartbeat timer on the loop and the thread that checks it. Internal."""

    def __init__(self, node: Node, threshold: float) -> None:
        self.node = node
        self.loop = node.loop
        self.threshold = threshold
        self.interval = max(threshold / 2, 0.001)
        self.due = 0.0  # when the next heartbeat should run (time.monotonic)
        self.resumed: tuple[float, float] = (0.0, 0.0)  # (due, ran) of the last late beat
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(
            target=self._watch, name=f"otp watchdog of {node.name}", daemon=True
        )

    def start(self) -> None:
        self.due = time.monotonic() + self.interval
        self._timer = self.loop.call_later(self.interval, self._beat)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and the thread (from the loop's thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop.set()
        self._thread.join(1.0)  # (a logging handler that waits for the loop would hang it)

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self.due > self.threshold:  # late: the watchdog may be waiting for this
            self.resumed = (self.due, now)
        self.due = now + self.interval
        self._timer = self.loop.call_later(self.interval, self._beat)

    def _watch(self) -> None:
        stalled: LoopBlocked | None = None  # the report of the stall in progress
        stalled_due = 0.0
        while not self._stop.wait(self.interval):
            due = self.due
            if stalled is not None:
                if due == stalled_due:
                    continue  # still blocked: reported once already
                self._log(stalled, self._stall_length(stalled_due), ongoing=False)
                stalled = None
            late = time.monotonic() - due
            if late > self.threshold and not self._stop.is_set():
                try:
                    stalled = self._blame(late)
                except Exception:  # never let a report's details cost the report
                    stalled = LoopBlocked(None, None, None, None, None, None, late, True)
                if self.due != due:  # the loop ran on meanwhile: what was read is not it
                    stalled = None
                    continue
                stalled_due = due
                self._log(stalled, late, ongoing=True)
        if stalled is not None:  # the node stopped: the loop ran again to stop it
            self._log(stalled, self._stall_length(stalled_due), ongoing=False)

    def _stall_length(self, due: float) -> float:
        """How late the heartbeat due at `due` ran (or is, if it has not run yet)."""
        when, ran = self.resumed
        return ran - due if when == due else time.monotonic() - due

    def _blame(self, late: float) -> LoopBlocked:
        """What the loop runs now: the process (or task) and the user's function."""
        frame = sys._current_frames().get(self._loop_thread)
        stack: list[FrameType] = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        stack.reverse()  # outermost first
        if _current_tasks is not None:
            task = _current_tasks.get(self.loop)
        else:  # no table to read: the process whose outermost frame is on the stack
            task = _process_on(stack, self.node)
        # Where the loop's own code hands over: the task's outermost frame (or, for a call
        # run in its caller's turn, the frame that runs it), or else the first frame of
        # asyncio (the runner) under which the loop runs its callbacks.
        start = None
        top = None if task is None else getattr(task.get_coro(), "cr_frame", None)
        for i, f in enumerate(stack):
            if (f is top or f.f_code is _DIRECT) if top is not None else _module(f) == "asyncio":
                start = i
                break
        callback = location = None
        if start is not None:
            for f in stack[start:]:
                if _module(f) not in _RUNTIME:
                    callback = f.f_code.co_qualname
                    break
        # The line it is at: the innermost of the user's frames (the blocking call's line).
        for f in reversed(stack[start:] if start is not None else ()):
            if _module(f) not in _RUNTIME and not _in_stdlib(f.f_code.co_filename):
                location = f"{f.f_code.co_filename}:{f.f_lineno}"
                break
        pid = getattr(task, "pid", None)
        if type(pid) is Pid:
            return LoopBlocked(
                pid,
                getattr(task, "regname", None),
                getattr(task, "behaviour", None),
                None,
                callback,
                location,
                late,
                True,
            )
        name = None if task is None else task.get_name()
        return LoopBlocked(None, None, None, name, callback, location, late, True)

    def _log(self, report: LoopBlocked, blocked_for: float, *, ongoing: bool) -> None:
        report = LoopBlocked(
            report.pid,
            report.registered_name,
            report.behaviour,
            report.task,
            report.callback,
            report.location,
            blocked_for,
            ongoing,
        )
        if ongoing:
            _logger.warning(
                "event loop of node %s blocked for %.3f s so far by %s: every process and the "
                "control socket wait until it returns; run blocking code with "
                "'await asyncio.to_thread(fn, ...)' or in a process of its own "
                "(guide: Plain asyncio code and blocking calls; %s=0 turns this off)",
                self.node.name,
                blocked_for,
                report.offender(),
                ENV,
                extra={"otp_report": report},
            )
        else:
            _logger.warning(
                "event loop of node %s ran again after %.3f s blocked by %s",
                self.node.name,
                blocked_for,
                report.offender(),
                extra={"otp_report": report},
            )


class Sampler:
    """Which process the node's loop runs, looked at from a thread every `interval` seconds:
    `busy[pid id]` is an estimate, in seconds, of the time the process has spent in its
    callbacks since the sampler started (each look adds the time since the previous one to
    the process running then; a look while the loop waits for I/O or runs no process adds
    to none). Internal: use `sampler(node)`."""

    def __init__(self, node: Node, interval: float = SAMPLE_INTERVAL) -> None:
        self.node = node
        self.loop = node.loop
        self.interval = interval
        self.busy: dict[int, float] = {}  # written by the thread only
        self.asked = time.monotonic()  # when a viewer last asked (the loop's thread writes)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._sample, name=f"otp sampler of {node.name}", daemon=True
        )

    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def _sample(self) -> None:
        last = time.monotonic()
        node = self.node
        busy = self.busy
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if now - self.asked > SAMPLER_IDLE or node.halted.done() or self.loop.is_closed():
                break
            if _current_tasks is not None:
                task = _current_tasks.get(self.loop)
            else:  # pragma: no cover  (3.14: the process whose frames the loop thread runs)
                thread = getattr(self.loop, "_thread_id", None)
                frame = None if thread is None else sys._current_frames().get(thread)
                stack = []
                while frame is not None:
                    stack.append(frame)
                    frame = frame.f_back
                task = _process_on(stack, node)
            pid = getattr(task, "pid", None)
            if type(pid) is Pid:
                key = pid._id
                busy[key] = busy.get(key, 0.0) + (now - last)
            last = now
        self._stop.set()
        with _samplers_lock:  # (a dead node's sampler keeps nothing alive)
            if _samplers.get(node) is self:
                del _samplers[node]


_samplers: dict[Node, Sampler] = {}  # the running ones
_samplers_lock = threading.Lock()


def sampler(node: Node) -> Sampler:
    """The node's sampler, started if none runs; each call keeps it running for another
    `SAMPLER_IDLE` seconds. Call it from the node's loop."""
    with _samplers_lock:
        found = _samplers.get(node)
        if found is None or not found.running():
            found = _samplers[node] = Sampler(node)
            found._thread.start()
        found.asked = time.monotonic()
    return found


def _process_on(stack: list[FrameType], node: Node) -> Any:
    """The process running the coroutine whose frames are on `stack`, if one is (the
    server, for a call run in its caller's turn)."""
    for f in reversed(stack):
        if f.f_code is _DIRECT:
            return f.f_locals.get("proc")
    frames = {id(f) for f in stack}
    for proc in list(node.procs.values()):  # one C call: the loop cannot change it meanwhile
        frame = getattr(proc.get_coro(), "cr_frame", None)
        if frame is not None and id(frame) in frames:
            return proc
    return None


_STDLIB: Final = tuple(
    {os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib")}
)


def _in_stdlib(filename: str) -> bool:
    """True for the standard library's own files (not the packages installed beside it)."""
    return filename.startswith(_STDLIB) and "-packages" not in filename


def _module(frame: FrameType) -> str:
    """The top-level package of the code a frame runs (`otp`, `asyncio`, `tests`, ...)."""
    module = frame.f_globals.get("__name__", "")
    return module.split(".", 1)[0] if type(module) is str else ""
