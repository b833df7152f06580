"""Requests with replies: the call protocol under `GenServer.call` and `otp.sys`.

A request is `(kind, (caller, tag), payload)`; the reply is `(tag, value)`. The caller
monitors the server for the duration, so the server's death ends the wait with its reason.
While the node's calls are traced (`otp.ops.enable_tracing`), a call to a process whose loop
takes it is `("$gen_call", (caller, tag), payload, context)`: the traced form (`otp.gen`).
The tag `("alias", monitor_ref)` makes the reply an alias reply (as Erlang's `[alias|Ref]`):
`reply` delivers it only while the caller still waits, so a late reply never lands in the
caller's mailbox.
"""

from __future__ import annotations

import itertools
import math
import types
from asyncio import Future
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Final

from . import _node, _registry, _signals
from ._mailbox import EXPIRED, arm, deliver, receive, resume_wait, waiter
from ._process import DirectCalls, Process, current, running_task, swap_running_task
from ._values import NOCONNECTION, TIMEOUT, Down, Pid, Ref
from .errors import CallError, CallTimeout

__all__ = [
    "TRACED_ENTRIES",
    "From",
    "Handoff",
    "RequestId",
    "RequestIdCollection",
    "abandon",
    "accept_traced_calls",
    "call",
    "check_response",
    "check_timeout",
    "receive_response",
    "reply",
    "send_request",
    "server_span",
    "settle",
    "wait_any",
    "wait_response",
]

ALIAS: Final = "alias"
CALL: Final = "$gen_call"
_call_ids = itertools.count(1)  # the keys of calls' monitors
NO_REPLY: Final = "no_reply"

# The process bodies whose loop takes the traced form of a call (see otp.gen); the tracing
# of otp.ops sends that form only to a process that runs one of them.
TRACED_ENTRIES: Final[set[Callable[..., Any]]] = set()

From = tuple[Pid, Any]


class RequestId:
    """A request sent with `send_request`, until its reply (or the server's death) is read."""

    __slots__ = ("match", "ref", "request", "server", "tag")

    tag: tuple[str, Ref] | Ref  # a bare ref for a request to another node (otp.dist)
    match: Callable[[Any], bool]

    def __init__(self, server: Any, request: Any, ref: Ref) -> None:
        self.server = server
        self.request = request
        self.ref = ref
        self.tag = (ALIAS, ref)
        self.match = answers(self.tag, ref)

    def __repr__(self) -> str:
        return f"<RequestId {self.ref!r} to {self.server!r}>"


def answers(tag: tuple[str, Ref | int], ref: Ref | int) -> Callable[[Any], bool]:
    """The predicate of the messages that end a request: its reply, or the `Down` of the
    server it went to."""

    def match(msg: Any) -> bool:
        t = type(msg)
        if t is tuple and len(msg) == 2:  # a tag that went through pickle is equal, not it
            first = msg[0]
            return first is tag or (type(first) is tuple and first == tag)
        return t is Down and msg.ref is ref

    return match


def check_timeout(timeout: object, what: str) -> float | None:
    """The receive timeout for a call timeout in seconds (`math.inf`: none).

    Args:
        timeout: Seconds >= 0, or `math.inf`.
        what: The caller's name, for the error message.

    Returns:
        `timeout` as a float, or None for `math.inf`.

    Raises:
        ValueError: A negative, NaN or non-numeric `timeout`.
    """
    if timeout is math.inf:  # the default of every start and supervisor request
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"{what}() takes a timeout in seconds >= 0 or math.inf, got {timeout!r}")
    return None if timeout == math.inf else float(timeout)


def send_request(server: Any, kind: str, payload: Any, me: Process | None = None) -> RequestId:
    """Monitor `server` and send it a request; the reply is read with `wait_response`.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        kind: The protocol's tag, `"$gen_call"` or `"system"`.
        payload: The request.
        me: The calling process (default None: `current()`).

    Returns:
        The request's id; a server that is not there answers with its `Down` at once.

    Raises:
        CallError: `"calling_self"`: the caller is the server.
    """
    if me is None:
        me = current()
    proc, lost = _registry.locate(server, me.pid.node)
    if proc is None:
        dist = _node.current.dist  # type: ignore[union-attr]  # (a process runs)
        if dist is not None and lost == NOCONNECTION:  # a process of another node
            return dist.send_request(me, server, kind, payload)  # type: ignore[no-any-return]
        req = RequestId(server, payload, _node.make_ref())
        deliver(me, Down(req.ref, server, lost))
        return req
    if proc is me:
        raise CallError("calling_self", server, payload)
    req = RequestId(server, payload, _signals.add_monitor(me, proc))
    deliver(proc, (kind, (me.pid, req.tag), payload))
    return req


def settle(req: RequestId, msg: Any) -> Any:
    """The reply value in `msg`, or the `CallError` for the server's `Down`."""
    if type(msg) is Down:
        raise CallError(msg.reason, req.server, req.request)
    _signals.demonitor(req.ref, flush=True)
    return msg[1]


def abandon(req: RequestId) -> None:
    """Give up on `req`: stop its monitor and drop its reply or `Down` if already queued."""
    me = current()
    _signals.demonitor(req.ref, flush=True)
    if me.mbox:
        match = req.match
        me.mbox = deque(m for m in me.mbox if not match(m))


async def call(server: Any, payload: Any, timeout: float = 5.0, *, _kind: str = CALL) -> Any:
    """Send `payload` and wait for the reply (this is `GenServer.call`; `_kind` is the
    protocol's tag, `"$gen_call"` or `otp.sys`'s `"system"`).

    Args:
        server: A Pid, a registered name, `(name, node)` or a via name.
        payload: The request for `handle_call`.
        timeout: Seconds to wait for the reply (default 5.0; `math.inf`: no limit).

    Returns:
        The server's reply.

    Raises:
        otp.CallTimeout: No reply within `timeout` (`.reason == TIMEOUT`).
        otp.CallError: The server is not there (`.reason == NOPROC`), its node is not
            connected (`("nodedown", node)`), it dies first (its exit reason), or the
            caller calls itself (`"calling_self"`).
        ValueError: A negative or non-numeric `timeout`.
        NoProcessError: Not called from a process.
    """
    wait = timeout if type(timeout) is float and 0 <= timeout < math.inf else None
    if wait is None:
        wait = check_timeout(timeout, "call")
    node = _node.current
    me = None if node is None else running_task(node.loop)
    if type(me) is not Process:
        me = current()  # raises the error that says why
    proc = server._proc if type(server) is Pid else None  # the common case, without a call
    if proc is None or proc.finished:
        proc, lost = _registry.locate(server, me.pid.node)
        if proc is None:
            dist = node.dist  # type: ignore[union-attr]  # (a process runs)
            if dist is not None and lost == NOCONNECTION:  # a process of another node
                return await dist.call(me, server, payload, wait)
            raise CallError(failed_reason(lost, server), server, payload)
    if proc is me:
        raise CallError("calling_self", server, payload)
    ops = node.ops  # type: ignore[union-attr]  # otp.ops's metrics and traces; None when off
    # (None: a plain call; else one to time or trace, which says what message to send)
    seen = None if ops is None else ops.call_started(proc, _kind, wait)
    # The monitor for the call's duration is keyed by a plain int: it never leaves the
    # call, and an int is made and hashed in C (a Ref's are Python code, ~0.4 us a call).
    ref = next(_call_ids)
    tag = (ALIAS, ref)
    mbox = me.mbox
    queued = len(mbox) if mbox else 0  # none of these can be the answer
    direct = proc.direct
    if (  # the server waits idle in its loop: its callback runs now, as the server
        direct is not None
        and proc.waiter is not None
        and _kind == CALL
        and (seen is None or seen.untraced)
        and not me.exiting
    ):
        answer = run_directly(me, proc, direct, payload, (me.pid, tag), ref, queued)
        if answer is not _WAIT:
            await _next_turn()  # the caller's turn ends, as it would waiting for the reply
            if seen is not None:
                seen.done()
            return answer
    else:
        _signals.add_monitor(me, proc, ref)
        if seen is None:
            deliver(proc, (_kind, (me.pid, tag), payload))
        else:
            deliver(proc, seen.request(_kind, (me.pid, tag), payload))

    match = answers(tag, ref)
    try:
        mbox = me.mbox
        if mbox and len(mbox) > queued:  # (an answer came already: a full server's refusal)
            msg = await receive(match, wait, _after=queued)
        else:  # receive() without its coroutine: one frame fewer to resume through
            loop = node.loop  # type: ignore[union-attr]
            fut = waiter(me, loop, match, queued)
            if wait is not None:
                arm(me, loop, loop.time() + wait)
            try:
                msg = await fut
            finally:
                me.deadline = None  # (the waiter is cleared by whoever ended the wait)
            if msg is EXPIRED:  # what came meanwhile still beats the timeout
                msg = await receive(match, 0, _after=queued)
    except BaseException as exc:  # a timeout, or the caller cancelled: leave nothing behind
        _signals.remove_monitor(me, ref, flush=True)
        if me.mbox:
            me.mbox = deque(m for m in me.mbox if not match(m))
        if isinstance(exc, TimeoutError):
            timed_out = CallTimeout(TIMEOUT, server, payload)
            if seen is not None:
                seen.failed(timed_out)
            raise timed_out from None
        if seen is not None:
            seen.failed(exc)
        raise
    if type(msg) is Down:
        failed = CallError(failed_reason(msg.reason, server), server, payload)
        if seen is not None:
            seen.failed(failed)
        raise failed
    _signals.remove_monitor(me, ref, flush=True)
    if seen is not None:
        seen.done()
    return msg[1]


class Handoff:
    """What a behaviour's `call_directly` returns for a call its loop must finish in its own
    turn (a callback that raised, or a result other than a plain reply): handed to the
    server's waiting loop as its next message, before anything sent since."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


_WAIT: Final = Handoff(None)  # (`run_directly`: the caller waits for the reply)


@types.coroutine
def _next_turn() -> Generator[None, None, None]:
    """End the caller's turn of the loop (`asyncio.sleep(0)` without its coroutine)."""
    yield


def run_directly(
    me: Process,
    proc: Process,
    server: DirectCalls,
    payload: Any,
    from_: From,
    ref: int,
    queued: int,
) -> Any:
    """Run a call to `proc`, a server that waits idle in its loop, here in the caller's
    turn: as `proc` (the running task, its contextvars), with its waiter held so what the
    callback sends it queues behind the call. The reply; or `_WAIT`, with the call's
    monitor set, when the reply is to be received (the server finishes the call in its
    own turn, or the callback answered it with `reply` already).

    A server takes the call as it would have in its next turn: nothing else reached it
    since it began to wait, and a plain callback runs to its end without a turn of the
    loop in between. It saves the server's turn, its waiter and the reply's message.
    """
    monitors = me.monitors
    if monitors is None:
        monitors = me.monitors = {}
    monitors[ref] = proc.pid  # the alias stands: a `reply` from the callback reaches `me`
    fut: Future[Any] = proc.waiter  # type: ignore[assignment]  # (checked by the caller)
    proc.waiter = None
    proc.msg_count += 1
    loop = fut.get_loop()
    swap_running_task(loop, proc)
    try:
        answer = proc.context.run(server.call_directly, payload, from_)
    except BaseException:  # (the behaviour's own fault, not its callback's: it waits on)
        monitors.pop(ref, None)
        if not fut.done():
            resume_wait(proc, fut)
        raise
    finally:
        swap_running_task(loop, me)
    mbox = me.mbox
    if type(answer) is not Handoff and not (mbox and len(mbox) > queued):
        del monitors[ref]
        if not monitors:
            me.monitors = None
        if not fut.done():
            resume_wait(proc, fut)
        return answer
    if proc.watchers is None:
        proc.watchers = {}
    proc.watchers[ref] = me.pid  # the rest of the call's monitor
    if type(answer) is not Handoff:  # the callback replied already: this reply follows it
        reply(from_, answer)
        if not fut.done():
            resume_wait(proc, fut)
    elif not fut.done():
        proc.handed = fut
        fut.set_result(answer)
    return _WAIT


def accept_traced_calls(entry: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `entry`, the function a behaviour's processes run, as one whose loop takes the
    traced form of a call; returns it (usable as a decorator).

    Args:
        entry: The function the behaviour's processes run.

    Returns:
        `entry`.
    """
    TRACED_ENTRIES.add(entry)
    return entry


def server_span(process: Process, context: Any) -> Any:
    """The context manager around the callback of a traced call (see `otp.gen`).

    Args:
        process: The server's process record.
        context: The caller's OpenTelemetry `Context`, from the call message.

    Returns:
        A context manager: the server span, current while it is open.
    """
    from .ops._traces import server_span  # (loaded already: tracing is on)

    return server_span(process, context)


def failed_reason(reason: Any, server: Any) -> Any:
    """Why a call failed: the server's exit reason, or, when its node cannot be reached,
    `("nodedown", node)`, as gen:call says."""
    if type(reason) is not str or reason != NOCONNECTION:
        return reason
    if type(server) is Pid:
        node = server.node
    elif type(server) is tuple:  # (name, node)
        node = server[1]
    else:  # a local name: the server lost its own link to another node
        node = _node.get().name
    return ("nodedown", node)


async def wait_response(req: RequestId, timeout: float = math.inf) -> Any:
    """The reply to `req`; `TimeoutError` leaves it pending, `CallError` if the server died.

    Args:
        req: The request `send_request` returned.
        timeout: Seconds to wait (default `math.inf`).

    Returns:
        The reply.

    Raises:
        TimeoutError: No reply within `timeout` (the request stays pending).
        CallError: The server died or was not there (`.reason`: its exit reason).
    """
    msg = await receive(req.match, check_timeout(timeout, "wait_response"))
    return settle(req, msg)


async def receive_response(req: RequestId, timeout: float = math.inf) -> Any:
    """`wait_response`, except that a timeout abandons the request (no reply will come).

    Args:
        req: The request `send_request` returned.
        timeout: Seconds to wait (default `math.inf`).

    Returns:
        The reply.

    Raises:
        TimeoutError: No reply within `timeout`.
        CallError: The server died or was not there.
    """
    try:
        return await wait_response(req, timeout)
    except TimeoutError:
        abandon(req)
        raise


class RequestIdCollection:
    """Requests sent with `send_request`, each under a label, answered in any order."""

    __slots__ = ("_by_ref",)

    def __init__(self) -> None:
        self._by_ref: dict[Ref, tuple[RequestId, Any]] = {}

    def add(self, req: RequestId, label: Any) -> None:
        """Collect `req` under `label`; a request can be in a collection only once.

        Args:
            req: The request `send_request` returned.
            label: Any value, returned with its reply.

        Raises:
            ValueError: `req` is in the collection already.
        """
        if req.ref in self._by_ref:
            raise ValueError(f"{req!r} is already in this collection")
        self._by_ref[req.ref] = (req, label)

    def __len__(self) -> int:
        return len(self._by_ref)

    def to_list(self) -> list[tuple[RequestId, Any]]:
        """`(request, label)` pairs, in the order they were added.

        Returns:
            The pairs.
        """
        return list(self._by_ref.values())

    def owns(self, msg: Any) -> bool:
        """True for a reply to, or the `Down` of the server of, a collected request.

        Args:
            msg: A message (usable as a `receive` predicate).

        Returns:
            True when `settle` takes it.
        """
        return self._entry(msg) is not None

    def _entry(self, msg: Any) -> tuple[RequestId, Any] | None:
        t = type(msg)
        if t is Down:
            return self._by_ref.get(msg.ref)
        if t is tuple and len(msg) == 2:
            tag = msg[0]
            if type(tag) is tuple and len(tag) == 2 and tag[0] == ALIAS:
                entry = self._by_ref.get(tag[1])
                if entry is not None and entry[0].tag == tag:
                    return entry
            elif type(tag) is Ref:  # a request to another node is tagged with its ref
                entry = self._by_ref.get(tag)
                if entry is not None and entry[0].tag == tag:
                    return entry
        return None

    def settle(self, msg: Any) -> tuple[Any, Any]:
        """`(reply, label)` for a message `owns` accepted; the request leaves the collection.

        Args:
            msg: A message `owns` accepted.

        Returns:
            `(reply, label)`.

        Raises:
            CallError: `msg` is the server's `Down` (`.label` names the request).
        """
        entry = self._entry(msg)
        assert entry is not None
        req, label = entry
        del self._by_ref[req.ref]
        try:
            return settle(req, msg), label
        except CallError as failed:  # which request failed matters as much as why
            failed.label = label
            raise

    def abandon_all(self) -> None:
        """Give up on every collected request (their replies will be dropped) and empty it."""
        for req, _ in self._by_ref.values():
            abandon(req)
        self._by_ref.clear()


NO_REQUEST: Final = "no_request"


async def wait_any(coll: RequestIdCollection, timeout: float, drop_on_timeout: bool) -> Any:
    """`(reply, label)` of the first collected request answered; `"no_request"` if none
    is collected. A timeout raises TimeoutError and, with `drop_on_timeout`, abandons them.

    Args:
        coll: The collection.
        timeout: Seconds to wait (`math.inf`: no limit).
        drop_on_timeout: Abandon every request on a timeout.

    Returns:
        `(reply, label)`, or `"no_request"`.

    Raises:
        TimeoutError: No answer within `timeout`.
        CallError: The first answer is a server's `Down` (`.label` names the request).
    """
    if not coll:
        return NO_REQUEST
    try:
        msg = await receive(coll.owns, check_timeout(timeout, "wait_response"))
    except TimeoutError:
        if drop_on_timeout:
            coll.abandon_all()
        raise
    return coll.settle(msg)


def check_response(msg: Any, req: RequestId | RequestIdCollection) -> Any:
    """`("reply", value)` if `msg` answers `req` (`("reply", value, label)` for a
    collection), `"no_reply"` if it is unrelated, `"no_request"` for an empty collection.

    Args:
        msg: A message the caller received.
        req: A `RequestId`, or a `RequestIdCollection`.

    Returns:
        `("reply", value)`, `("reply", value, label)`, `"no_reply"` or `"no_request"`.

    Raises:
        CallError: `msg` is the `Down` of the server the request went to.
    """
    if isinstance(req, RequestIdCollection):
        if not req:
            return NO_REQUEST
        if not req.owns(msg):
            return NO_REPLY
        value, label = req.settle(msg)
        return ("reply", value, label)
    if not req.match(msg):
        return NO_REPLY
    return ("reply", settle(req, msg))


def reply(from_: From, value: Any) -> None:
    """Answer the request that came with `from_`; dropped if the caller stopped waiting.

    Args:
        from_: The `(caller, tag)` of the request.
        value: The reply.
    """
    pid, tag = from_
    proc = pid._proc
    if proc is None:
        node = _node.current
        if node is not None and node.dist is not None and pid.node != node.name:
            node.dist.send(pid, (tag, value))  # the caller is on another node
        return
    if type(tag) is tuple and len(tag) == 2 and tag[0] == ALIAS:
        monitors = proc.monitors
        if not monitors or tag[1] not in monitors:
            return  # the caller gave up (timeout) or is gone: do not leave a stray reply
    deliver(proc, (tag, value))
