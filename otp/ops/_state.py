"""What `otp.ops` has turned on for a node: its `node.ops`, None while nothing is.

`GenServer.call` checks `node.ops` once: None (metrics and traces off) costs nothing more.
Otherwise `Ops.call_started` says what to do with the call: nothing (most calls, with
metrics only: one in `call_sample` is timed), time it (`TimedCall`), or trace it (a
`_traces.ClientCall`, which times it too when it is the sampled one).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Final

from .. import _node

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .._process import Process
    from .._values import Pid
    from ._metrics import Metrics
    from ._traces import ClientCall, Tracing

__all__ = ["Ops", "TimedCall", "ops_of", "release_ops"]

CALL: Final = "$gen_call"


class Ops:
    """The node's metrics and tracing (either may be None; not both: then `node.ops` is
    None), and the count the kernel keeps for the metrics. Internal."""

    __slots__ = (
        "built_provider",
        "call_sample",
        "countdown",
        "ended_messages",
        "metrics",
        "tracing",
    )

    def __init__(self) -> None:
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        self.call_sample = 1  # the metrics time one call in call_sample ...
        self.countdown = 1  # ... this one when it reaches 0
        self.built_provider: TracerProvider | None = None  # a provider enable_tracing built
        self.ended_messages = 0  # messages of the processes that ended (see otp.messages.sent)

    def call_started(
        self, proc: Process, kind: str, timeout: float | None
    ) -> TimedCall | ClientCall | None:
        """What to do with a call to `proc`: None for a plain call, else the call to time
        or trace (`kind` "system", otp.sys's, is timed but never traced)."""
        tracing = self.tracing
        if tracing is None:  # then the metrics are on: the common case, kept short
            self.countdown -= 1
            if self.countdown:
                return None
            self.countdown = self.call_sample
            return TimedCall(self.metrics, proc, time.perf_counter())  # type: ignore[arg-type]
        metrics = self.metrics
        started = 0.0
        if metrics is not None:
            self.countdown -= 1
            if not self.countdown:
                self.countdown = self.call_sample
                started = time.perf_counter()
        if kind != CALL:  # (otp.sys's: timed, never traced)
            return None if not started else TimedCall(metrics, proc, started)  # type: ignore[arg-type]
        return tracing.client(proc, timeout, metrics, started)

    def mailbox_dropped(self, proc: Process) -> None:
        """A full bounded mailbox dropped a message (`otp._overload`): the metrics count it."""
        if self.metrics is not None:
            self.metrics.mailbox_dropped(proc)


class TimedCall:
    """A call timed for `otp.call.duration`, not traced (sent in the plain form)."""

    __slots__ = ("metrics", "proc", "started")

    untraced: ClassVar[bool] = True  # a call run directly is timed the same (see _call.call)

    def __init__(self, metrics: Metrics, proc: Process, started: float) -> None:
        self.metrics = metrics
        self.proc = proc
        self.started = started

    def request(self, kind: str, from_: tuple[Pid, Any], payload: Any) -> tuple[Any, ...]:
        return (kind, from_, payload)

    def done(self) -> None:
        self.metrics.call_done(self.proc, self.started)

    def failed(self, error: BaseException) -> None:
        """Only calls that were answered are timed."""


def ops_of(node: _node.Node) -> Ops:
    """The node's `Ops`, made when nothing was on yet."""
    ops = node.ops
    if ops is None:
        ops = node.ops = Ops()
    return ops  # type: ignore[no-any-return]


def release_ops(node: _node.Node) -> None:
    """`node.ops` back to None once nothing is on."""
    ops = node.ops
    if ops is not None and ops.metrics is None and ops.tracing is None:
        node.ops = None
