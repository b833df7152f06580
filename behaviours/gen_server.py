"""GenServer: a process that holds a state and serves calls, casts and plain messages.

| API (client side)                      | callback (server side)                    |
|----------------------------------------|-------------------------------------------|
| `start` / `start_link` / `start_monitor` | `init(arg)`                             |
| `call(server, request)`                | `handle_call(request, from_, state)`      |
| `cast(server, msg)`                    | `handle_cast(msg, state)`                 |
| `otp.send(server, msg)`, timeouts      | `handle_info(msg, state)`                 |
| `continue_=` in a result               | `handle_continue(term, state)`            |
| `stop(server, reason)`, `Stop(...)`    | `terminate(reason, state)`                |
| `otp.sys.change_code(...)`             | `code_change(old_vsn, state, extra)`      |
| `otp.sys.get_status`, crash reports    | `format_status(status)`                   |

    class Counter(GenServer[int]):
        def init(self, start: int) -> int:
            return start

        def handle_call(self, request, from_, state):
            return Reply(state + request, state + request)

    pid = await Counter.start_link(0, name="counter")
    await GenServer.call("counter", 2)        # -> 2

Callbacks may be `def` or `async def`; which one is read once per class. State is passed in
and returned, never kept on `self`. The wire shapes are Erlang's: a call is
`("$gen_call", (caller, tag), request)`, a cast `("$gen_cast", msg)`.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import inspect
import logging
import math
import types
import warnings
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, NoReturn, TypeVar

import otp
from otp import IGNORE, NORMAL, Exit, ExitError, Pid, Ref, StartError, is_abnormal
from otp import gen as _call
from otp import sys as otp_sys
from otp.gen import Handoff, Process, current, deliver, send, waiter
from otp.reports import emit, wanted

from ._child_spec import ChildSpec
from ._results import (
    NO_CONTINUE,
    NO_REPLY,
    NO_STATE,
    BadReturn,
    Init,
    NoReply,
    Reply,
    Stop,
    Timeout,
)

__all__ = [
    "CallbackNameWarning",
    "GenServer",
    "RequestId",
    "RequestIdCollection",
    "ServerReport",
    "UnexpectedMessage",
]

S = TypeVar("S")

CALL: Final = "$gen_call"
CAST: Final = "$gen_cast"
ACK: Final = "$ack"

_logger = logging.getLogger("otp.gen_server")

NOTHING_YET: Final[Any] = object()  # wait_message handled a timeout instead of a message

Name = str | tuple[str, Any, Any]  # a registered name, or ("via", registry, key)
RequestId = _call.RequestId
RequestIdCollection = _call.RequestIdCollection
From = _call.From

_CALLBACKS: Final = (
    "init",
    "handle_call",
    "handle_cast",
    "handle_info",
    "handle_continue",
    "terminate",
    "code_change",
    "format_status",
)
_HANDLE_RESULT: Final = "Reply(...), NoReply(...) or Stop(...)"
_NOREPLY_RESULT: Final = "NoReply(...) or Stop(...)"


@dataclass(frozen=True, slots=True)
class ServerReport:
    """A GenServer terminated with an abnormal reason (logged on `otp.gen_server`)."""

    pid: Pid
    name: str | None
    behaviour: type
    last_message: Any
    state: Any
    reason: Any
    client: Pid | None


@dataclass(frozen=True, slots=True)
class UnexpectedMessage:
    """A GenServer without `handle_info` received a plain message (logged as a warning)."""

    pid: Pid
    name: str | None
    behaviour: type
    message: Any


class _ModuleVersion:
    """`vsn` when a class does not set one: the content hash of its module's source (16 hex
    digits), taken as the class is defined, so an old class keeps its own after an upgrade."""

    def __get__(self, instance: object, owner: type) -> str:
        cached = owner.__dict__.get("_module_vsn")
        if cached is None:
            digest = otp.code.module_hash(owner.__module__)
            cached = digest[:16] if digest is not None else _qualname_hash(owner)
            type.__setattr__(owner, "_module_vsn", cached)
        return str(cached)


def warn_misspelled(cls: type, callbacks: Sequence[str], cutoff: float = 0.85) -> None:
    """Warn, as `cls` is defined, of a method named almost like a callback (`handle_cal`):
    the behaviour would never call it, and the first message would crash the server."""
    for name, value in vars(cls).items():
        if name in callbacks or name.startswith("_") or not callable(value):
            continue
        close = difflib.get_close_matches(name, callbacks, n=1, cutoff=cutoff)
        if close:
            warnings.warn(
                f"{cls.__qualname__.rpartition('<locals>.')[2]}.{name} is not a callback: "
                f"did you mean {close[0]}?",
                CallbackNameWarning,
                stacklevel=3,
            )


class CallbackNameWarning(UserWarning):
    """A behaviour class defines a method named almost like one of its callbacks."""


def _qualname_hash(owner: type) -> str:
    return hashlib.sha256(owner.__qualname__.encode()).hexdigest()[:16]


_DEFAULT_VSN: Final = _ModuleVersion()


class GenServer(Generic[S]):
    """Base class of a GenServer's callbacks. Subclass it and override what you need."""

    vsn: ClassVar[str] = _DEFAULT_VSN  # type: ignore[assignment]
    max_mailbox: ClassVar[int | None] = None  # a bound on the mailbox (None: unbounded)
    overload: ClassVar[otp.Overload] = "drop_newest"  # what a full mailbox does
    _async: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        warn_misspelled(cls, _CALLBACKS)
        otp.code.note_behaviour(cls)
        if isinstance(cls.__dict__.get("vsn", _DEFAULT_VSN), _ModuleVersion):
            cls.vsn  # noqa: B018  (taken now, from the module that defines it)
        cls._async = frozenset(
            name for name in _CALLBACKS if inspect.iscoroutinefunction(getattr(cls, name))
        )

    # -- callbacks ----------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        """Return the initial state, `Init(state, ...)`, `Stop(reason)` or `otp.IGNORE`.

        Runs in the new process, before `start_link` returns.

        Args:
            arg: The `arg` given to `start_link`.

        Returns:
            The state, `Init(state, timeout=..., continue_=...)`, `Stop(reason)` (then
            `start_link` raises `StartError`) or `otp.IGNORE` (it returns None).
        """
        raise NotImplementedError(f"{type(self).__qualname__} defines no init(arg)")

    def handle_call(self, request: Any, from_: From, state: S) -> Any:
        """Answer a `GenServer.call`; no default (a server without it stops on a call).

        Args:
            request: The call's request.
            from_: The caller, for a later `GenServer.reply`.
            state: The current state.

        Returns:
            `Reply(reply, state)`, `NoReply(state)` (answer later with `reply`) or
            `Stop(reason, state, reply=...)`.
        """
        raise NotImplementedError(
            f"{type(self).__qualname__} received the call {request!r} but defines no handle_call"
        )

    def handle_cast(self, msg: Any, state: S) -> Any:
        """Handle a `GenServer.cast`; no default (a server without it stops on a cast).

        Args:
            msg: The cast's message.
            state: The current state.

        Returns:
            `NoReply(state)` or `Stop(reason, state)`.
        """
        raise NotImplementedError(
            f"{type(self).__qualname__} received the cast {msg!r} but defines no handle_cast"
        )

    def handle_info(self, msg: Any, state: S) -> Any:
        """Default: log a warning (never drop a message silently) and keep the state.

        Gets every message that is not a call, a cast or a system message: a plain send,
        an `Exit`, a `Down`, `otp.TIMEOUT` after an idle timeout.

        Args:
            msg: The message.
            state: The current state.

        Returns:
            `NoReply(state)` or `Stop(reason, state)`.
        """
        proc = current()
        report = UnexpectedMessage(proc.pid, proc.regname, type(self), msg)
        emit(
            _logger,
            logging.WARNING,
            report,
            "gen_server.no_handle_info: GenServer %s %r received an unexpected message "
            "in handle_info: %r (define handle_info to handle it)",
            type(self).__qualname__,
            report.name or report.pid,
            msg,
        )
        return NoReply(state)

    def handle_continue(self, continue_: Any, state: S) -> Any:
        """Run the `continue_=` of a result before the next message; no default.

        Args:
            continue_: The term given as `continue_=`.
            state: The current state.

        Returns:
            `NoReply(state)` or `Stop(reason, state)`.
        """
        raise NotImplementedError(
            f"{type(self).__qualname__} was asked to continue with {continue_!r} "
            "but defines no handle_continue"
        )

    def terminate(self, reason: Any, state: S) -> Any:
        """Runs before the server exits (on Stop, a crash, or its parent's exit when trapping).

        Args:
            reason: The exit reason.
            state: The last state.

        Returns:
            Ignored.
        """
        return None

    def code_change(self, old_vsn: Any, state: S, extra: Any) -> Any:
        """Return the state converted from code version `old_vsn`.

        Called during an upgrade (`otp.code.upgrade`, `otp.sys.change_code`), in the
        suspended process, on an instance of the new class. Default: the state unchanged.

        Args:
            old_vsn: The `vsn` of the class the process ran before.
            state: The current state.
            extra: The `extra` of the upgrade.

        Returns:
            The new state; raising rolls the upgrade back.
        """
        return state

    def format_status(self, status: dict[str, Any]) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """Rewrite what status and crash reports show: keys `state`, `message`, `reason`.

        Args:
            status: A dict with the keys that apply (`state`; `message`, `reason` in a crash).

        Returns:
            The dict to show (default: `status` unchanged), e.g. with secrets masked.
        """
        return status

    # -- starting -----------------------------------------------------------------------

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: Name | None = None,
        timeout: float = math.inf,
        max_mailbox: int | None = None,
        overload: otp.Overload | None = None,
    ) -> Pid | None:
        """Start a server linked to the caller; its pid, or None if `init` returned IGNORE.

        Args:
            arg: Passed to `init` (default None).
            name: A str or `("via", registry, key)` to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The most messages its mailbox holds (default: the class attribute
                of the same name, None: unbounded; see `otp.spawn_opt`).
            overload: What a full mailbox does (default: the class attribute).

        Returns:
            The pid, or None if `init` returned `otp.IGNORE`.

        Raises:
            otp.StartError: `init` raised or returned `Stop(reason)` (`.reason`), the
                process exited during `init`, or `init` took longer than `timeout`
                (`.reason == TIMEOUT`, the process is killed).
            otp.AlreadyStartedError: `name` is taken (`.pid`: its holder).
            TypeError: Called on a class that is not a GenServer, or a bad `name`.
            ValueError: A bad `timeout`, `max_mailbox` or `overload`.
        """
        bound = _bound(cls, max_mailbox, overload)
        pid, _ = await _start(cls, arg, name, timeout, bound, link=True, keep_monitor=False)
        return pid

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: Name | None = None,
        timeout: float = math.inf,
        max_mailbox: int | None = None,
        overload: otp.Overload | None = None,
    ) -> Pid | None:
        """Start a server with no link to the caller (see `start_link`).

        Args:
            arg: Passed to `init` (default None).
            name: A str or `("via", registry, key)` to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The mailbox bound (default: the class attribute).
            overload: What a full mailbox does (default: the class attribute).

        Returns:
            The pid, or None if `init` returned `otp.IGNORE`.

        Raises:
            otp.StartError: As for `start_link`.
            otp.AlreadyStartedError: `name` is taken.
        """
        bound = _bound(cls, max_mailbox, overload)
        pid, _ = await _start(cls, arg, name, timeout, bound, link=False, keep_monitor=False)
        return pid

    @classmethod
    async def start_monitor(
        cls,
        arg: Any = None,
        *,
        name: Name | None = None,
        timeout: float = math.inf,
        max_mailbox: int | None = None,
        overload: otp.Overload | None = None,
    ) -> tuple[Pid, Ref] | None:
        """Start a server monitored by the caller; `(pid, monitor_ref)` (see `start_link`).

        Args:
            arg: Passed to `init` (default None).
            name: A str or `("via", registry, key)` to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The mailbox bound (default: the class attribute).
            overload: What a full mailbox does (default: the class attribute).

        Returns:
            `(pid, monitor_ref)`, or None if `init` returned `otp.IGNORE`.

        Raises:
            otp.StartError: As for `start_link`.
            otp.AlreadyStartedError: `name` is taken.
        """
        bound = _bound(cls, max_mailbox, overload)
        pid, ref = await _start(cls, arg, name, timeout, bound, link=False, keep_monitor=True)
        return None if pid is None or ref is None else (pid, ref)

    @classmethod
    def child_spec(cls, arg: Any = None, **overrides: Any) -> ChildSpec:
        """The spec a supervisor uses to run `cls.start_link(arg)`; `name=`, `max_mailbox=`
        and `overload=` go to `start_link`, other keywords override spec fields (`id`,
        `restart`, `shutdown`, ...).

        Args:
            arg: Passed to `init` (default None).
            **overrides: `start_link` keywords, or `ChildSpec` fields to replace.

        Returns:
            A `ChildSpec` (id: the class; shutdown: 5.0 s).
        """
        return server_spec(cls, arg, overrides)

    # -- client API ---------------------------------------------------------------------

    call = staticmethod(_call.call)

    @staticmethod
    def cast(server: Any, msg: Any) -> None:
        """Send `msg` to `handle_cast`; never fails, never waits.

        Args:
            server: A Pid, a registered name, `(name, node)` or a via name; a dead or
                unknown one drops the message.
            msg: The message.
        """
        proc = server._proc if type(server) is Pid else None
        if proc is not None:  # otp.send to a pid, inlined: casts are sent by the million
            mbox = proc.mbox
            if mbox is not None and proc.waiter is None and len(mbox) < proc.limit:
                proc.msg_count += 1
                mbox.append((CAST, msg))
            else:
                deliver(proc, (CAST, msg))
            return
        try:  # noqa: SIM105  (contextlib.suppress costs more than the send)
            send(server, (CAST, msg))
        except otp.NotRegisteredError:
            pass

    @staticmethod
    def reply(from_: From, value: Any) -> None:
        """Answer a call whose `handle_call` returned `NoReply`.

        Args:
            from_: The `from_` that `handle_call` received.
            value: The reply; dropped if the caller no longer waits.
        """
        _call.reply(from_, value)

    @staticmethod
    async def stop(server: Any, reason: Any = NORMAL, timeout: float = math.inf) -> None:
        """Make the server run `terminate(reason, state)` and exit; wait until it has.

        Args:
            server: A Pid, a registered name or `(name, node)`.
            reason: The exit reason (default `NORMAL`).
            timeout: Seconds to wait (default `math.inf`).

        Raises:
            otp.ExitError: `.reason` is `NOPROC` (no such server), `TIMEOUT` (it took
                longer; it is left to finish), or the reason it ended with otherwise.
        """
        await otp_sys.terminate(server, reason, timeout)

    @staticmethod
    def send_request(server: Any, request: Any) -> RequestId:
        """Send a call without waiting; read the reply with `wait_response`/`check_response`.

        Args:
            server: A Pid, a registered name or `(name, node)`.
            request: The request for `handle_call`.

        Returns:
            The request's id (the server is monitored until the reply is read); a server
            that is not there answers with its `Down` (read as `CallError(NOPROC)`).

        Raises:
            otp.CallError: `"calling_self"`: the caller is the server.
        """
        return _call.send_request(server, CALL, request)

    @staticmethod
    def reqids_new() -> RequestIdCollection:
        """An empty collection of requests (`coll.add(req, label)`), to wait for together.

        Returns:
            A new `RequestIdCollection`.
        """
        return RequestIdCollection()

    @staticmethod
    async def wait_response(req: RequestId | RequestIdCollection, timeout: float = math.inf) -> Any:
        """The reply to `req`. `TimeoutError` keeps it pending; `CallError` if the server died.

        Args:
            req: A `RequestId`, or a `RequestIdCollection`.
            timeout: Seconds to wait (default `math.inf`).

        Returns:
            The reply; for a collection, `(reply, label)` of the first answer (which
            leaves the collection), or `"no_request"` when it is empty.

        Raises:
            TimeoutError: No reply within `timeout` (the request stays pending).
            otp.CallError: The server died or was not there (`.label` set for a collection).
        """
        if isinstance(req, RequestIdCollection):
            return await _call.wait_any(req, timeout, drop_on_timeout=False)
        return await _call.wait_response(req, timeout)

    @staticmethod
    async def receive_response(
        req: RequestId | RequestIdCollection, timeout: float = math.inf
    ) -> Any:
        """`wait_response`, except that on a timeout the request(s) are abandoned.

        Args:
            req: A `RequestId`, or a `RequestIdCollection`.
            timeout: Seconds to wait (default `math.inf`).

        Returns:
            As `wait_response`.

        Raises:
            TimeoutError: No reply within `timeout` (a late reply is dropped).
            otp.CallError: The server died or was not there.
        """
        if isinstance(req, RequestIdCollection):
            return await _call.wait_any(req, timeout, drop_on_timeout=True)
        return await _call.receive_response(req, timeout)

    @staticmethod
    def check_response(msg: Any, req: RequestId | RequestIdCollection) -> Any:
        """`("reply", value)` if `msg` is the reply to `req` (`("reply", value, label)` for
        a collection), else `"no_reply"` (`"no_request"` for an empty collection).

        Args:
            msg: A message the caller received.
            req: A `RequestId`, or a `RequestIdCollection`.

        Returns:
            `("reply", value)`, `("reply", value, label)`, `"no_reply"` or `"no_request"`.

        Raises:
            otp.CallError: `msg` is the `Down` of the request's server.
        """
        return _call.check_response(msg, req)

    @staticmethod
    async def multi_call(
        name: str, request: Any, nodes: Sequence[str] | None = None, timeout: float = 5.0
    ) -> tuple[list[tuple[str, Any]], list[str]]:
        """Call the server registered as `name` on each node (default: this one);
        `(replies as (node, reply), nodes that could not answer)`.

        Args:
            name: The registered name of the servers.
            request: The request for each `handle_call`.
            nodes: Node names (default None: this node only).
            timeout: Seconds for each call (default 5.0).

        Returns:
            `(replies, bad_nodes)`: `(node, reply)` pairs and the nodes whose call failed.

        Raises:
            NoProcessError: Not called from a process.
        """
        here = current().pid.node
        replies: list[tuple[str, Any]] = []
        bad: list[str] = []
        for node in [here] if nodes is None else nodes:
            try:
                replies.append((node, await _call.call((name, node), request, timeout)))
            except otp.CallError:
                bad.append(node)
        return replies, bad

    @staticmethod
    def abcast(name: str, msg: Any, nodes: Sequence[str] | None = None) -> str:
        """Cast `msg` to the server registered as `name` on each node; never fails.

        Args:
            name: The registered name of the servers.
            msg: The message for each `handle_cast`.
            nodes: Node names (default None: this node only).

        Returns:
            `"abcast"`, as Erlang's.
        """
        here = current().pid.node
        for node in [here] if nodes is None else nodes:
            GenServer.cast((name, node), msg)
        return "abcast"

    @classmethod
    async def enter_loop(
        cls, state: Any, *, name: Name | None = None, timeout: float | None = None
    ) -> NoReturn:
        """Turn the calling process into a server of `cls` with `state` (no `init`).

        With `name`, the process must already be registered under it. Its parent is the
        process that spawned it. Does not return: the process ends as the server does.

        Args:
            state: The server's state.
            name: The name the process is registered under (default None).
            timeout: An idle timeout in seconds before the first message (default None).

        Raises:
            otp.ExitError: `"process_not_registered"` if the caller is not registered as
                `name`; otherwise the server's own exit, when it ends.
        """
        proc = current()
        if name is not None and proc.regname != name:
            raise ExitError(
                "process_not_registered",
                f"enter_loop as {name!r}: the process is registered as {proc.regname!r}",
            )
        proc.behaviour = cls
        parent = None if proc.parent == _call.node().init_pid else proc.parent
        server = _Server(proc, cls, cls(), state, parent, name)
        server.set_timeout(timeout)
        await server.serve()
        raise AssertionError("unreachable: a server ends by raising")


_START_OPTIONS: Final = ("name", "max_mailbox", "overload")


def server_spec(cls: Any, arg: Any, overrides: dict[str, Any]) -> ChildSpec:
    """The child spec of a server class (GenServer's, GenStatem's): the keywords of
    `start_link` in `overrides` go to it, the others replace spec fields."""
    options = {k: overrides.pop(k) for k in _START_OPTIONS if k in overrides}
    start = (cls.start_link, arg) if not options else (_start_with, cls, arg, options)
    spec = ChildSpec(id=cls, start=start, shutdown=5.0, modules=(cls,))
    return spec.replace(**overrides) if overrides else spec


async def _start_with(cls: Any, arg: Any, options: dict[str, Any]) -> Pid | None:
    pid: Pid | None = await cls.start_link(arg, **options)
    return pid


# -- starting ------------------------------------------------------------------------------


def _bound(
    cls: Any, max_mailbox: int | None, overload: otp.Overload | None
) -> tuple[int | None, otp.Overload]:
    """The mailbox bound of a start: its keywords, else the class attributes of `cls`."""
    return (
        cls.max_mailbox if max_mailbox is None else max_mailbox,
        cls.overload if overload is None else overload,
    )


async def _start(
    cls: type[GenServer[Any]],
    arg: Any,
    name: Name | None,
    timeout: float,
    bound: tuple[int | None, otp.Overload],
    *,
    link: bool,
    keep_monitor: bool,
) -> tuple[Pid | None, Ref | None]:
    if not (isinstance(cls, type) and issubclass(cls, GenServer)):
        raise TypeError(f"start_link() is called on a GenServer subclass, got {cls!r}")
    if name is not None and type(name) is not str and not _is_via(name):
        raise TypeError(f"a server name is a str or ('via', registry, key), got {name!r}")
    wait = _call.check_timeout(timeout, "start")
    me = current()
    tag = otp.make_ref()
    parent = me.pid if link else None
    max_mailbox, overload = bound
    pid, ref = otp.spawn_opt(
        _server_main,
        *(cls, arg, name, me.pid, parent, tag),
        link=link,
        monitor=True,
        max_mailbox=max_mailbox,
        overload=overload,
    )

    def answer(m: Any) -> bool:
        # (never raises: `m[0] ==` runs only for the answer itself, found by its tag)
        t = type(m)
        return (t is tuple and len(m) == 3 and m[1] is tag and m[0] == ACK) or (
            t is otp.Down and m.ref is ref
        )

    try:
        if wait is None and not me.mbox:  # (the common case) receive() without its coroutine
            msg = await waiter(me, me.get_loop(), answer)
        else:
            msg = await otp.receive(answer, wait)
    except TimeoutError:
        otp.unlink(pid)
        otp.exit(pid, otp.KILL)
        await _await_down(ref)
        raise StartError(
            otp.TIMEOUT, f"{cls.__qualname__}.init did not finish in {timeout} s"
        ) from None
    except BaseException:  # the caller was cancelled: drop the monitor, keep nothing queued
        otp.demonitor(ref, flush=True)
        raise
    if type(msg) is otp.Down:
        raise StartError(msg.reason, f"{cls.__qualname__} exited during init: {msg.reason!r}")
    result = msg[2]
    if result[0] == "ok":
        if not keep_monitor:
            otp.demonitor(ref, flush=True)
            return pid, None
        return pid, ref
    await _await_down(ref)  # the failed server is gone (and its name free) before we return
    match result:
        case ("ignore",):
            return None, None
        case ("already_started", holder):
            raise otp.AlreadyStartedError(
                holder,
                f"cannot start {cls.__qualname__} as {name!r}: already started as {holder!r}",
            )
        case (_, reason):
            raise StartError(reason, f"{cls.__qualname__} failed to start: {reason!r}")
    raise AssertionError(f"unexpected start answer {result!r}")


def _is_via(name: Any) -> bool:
    return type(name) is tuple and len(name) == 3 and name[0] == "via"


def _reason_of(exc: BaseException) -> Any:
    """The exit reason an exception stands for: `otp.exit(r)` means `r`, anything else
    (a failed call included) itself."""
    return exc.reason if type(exc) is ExitError else exc


async def _await_down(ref: Ref) -> None:
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)


@_call.accept_traced_calls
@_call.returns_awaitable
def _server_main(
    cls: type[GenServer[Any]],
    arg: Any,
    name: str | None,
    starter: Pid,
    parent: Pid | None,
    tag: Ref,
) -> Awaitable[None]:
    """The body of a GenServer process: register, init, acknowledge, then serve.

    Not an `async def`: the process calls it in its first step and awaits what it returns,
    the loop's own coroutine after a plain `init`, so a waiting server is one coroutine
    frame shallower. An async `init` is awaited in `_serve_after` first."""
    proc = current()
    proc.behaviour = cls
    if name is not None:
        holder = otp.whereis(name)
        if holder is not None:
            _answer(starter, tag, parent, ("already_started", holder))
            return _not_started()
        otp.register(name, proc.pid)
    callbacks = cls()
    try:
        result = callbacks.init(arg)
    except Exception as exc:
        _answer(starter, tag, parent, ("error", _reason_of(exc)))
        raise
    start = (proc, cls, callbacks, name, starter, parent, tag)
    if "init" in cls._async:
        return _serve_after(result, start)
    server = _init_server(result, *start)
    return _not_started() if server is None else server.serve()


async def _serve_after(pending: Awaitable[Any], start: tuple[Any, ...]) -> None:
    """`_server_main` after an async `init`: await it, then answer and serve."""
    try:
        result = await pending
    except Exception as exc:
        _answer(start[4], start[6], start[5], ("error", _reason_of(exc)))
        raise
    server = _init_server(result, *start)
    del start, result  # this frame waits for the server's whole life
    if server is not None:
        await server.serve()


async def _not_started() -> None:
    """What a server that did not start (IGNORE, a taken name) ends with: nothing to do."""


def _init_server(
    result: Any,
    proc: Process,
    cls: type[GenServer[Any]],
    callbacks: GenServer[Any],
    name: str | None,
    starter: Pid,
    parent: Pid | None,
    tag: Ref,
) -> _Server | None:
    """Answer the starter by what `init` returned; the server to run, or None when it
    chose not to start (a failure raises, ending the process)."""
    timeout: float | None = None
    continue_: Any = NO_CONTINUE
    rtype = type(result)
    if rtype is Init:
        state, timeout, continue_ = result.state, result.timeout, result.continue_
    elif rtype is Stop:
        _answer(starter, tag, parent, ("error", result.reason))
        raise ExitError(result.reason)
    elif result is IGNORE:
        _answer(starter, tag, parent, ("ignore",))
        return None
    elif rtype is Reply or rtype is NoReply:
        bad = BadReturn(
            f"{cls.__qualname__}.init", result, "the state, Init(...), Stop(...) or otp.IGNORE"
        )
        _answer(starter, tag, parent, ("error", bad))
        raise bad
    else:
        state = result
    _answer(starter, tag, parent, ("ok",))
    server = _Server(proc, cls, callbacks, state, parent, name)
    server.set_timeout(timeout)
    server.continue_ = continue_
    return server


def _answer(starter: Pid, tag: Ref, parent: Pid | None, result: tuple[Any, ...]) -> None:
    """Tell the starter how `init` went; a failed start is reported by this answer, not by
    an exit signal through the link."""
    if result[0] != "ok" and parent is not None:
        otp.unlink(parent)
    otp.send(starter, (ACK, tag, result))


# -- the server loop -----------------------------------------------------------------------


def _unbound(callbacks: GenServer[Any], name: str) -> Any:
    """Callback `name` as a function the loop calls with `callbacks` first: a method's
    function, so the server holds no bound methods (three more objects per server, each
    walked by every full garbage collection for the server's whole life)."""
    method = getattr(callbacks, name)
    if type(method) is types.MethodType and method.__self__ is callbacks:
        return method.__func__
    return lambda _callbacks, *args: method(*args)  # a staticmethod, a mock, ...


class _Server:
    """A running GenServer: its callbacks, state and loop; answers system messages.

    The loop is written flat on purpose: a call or a cast whose callback returns a plain
    `Reply`/`NoReply` costs no extra coroutine and no lookup by name.
    """

    __slots__ = (
        "a_call",
        "a_cast",
        "a_info",
        "callbacks",
        "cls",
        "code_snapshot",
        "continue_",
        "deadline",
        "h_call",
        "h_cast",
        "h_info",
        "is_async",
        "last_message",
        "loop",
        "name",
        "node_pid",
        "parent",
        "proc",
        "state",
        "suspended",
        "timeout_first",
        "timeout_message",
    )

    def __init__(
        self,
        proc: Process,
        cls: type[GenServer[Any]],
        callbacks: GenServer[Any],
        state: Any,
        parent: Pid | None,
        name: str | None,
    ) -> None:
        self.proc = proc
        self.state = state
        self.parent = parent
        self.name = name
        self.suspended = False
        self.code_snapshot: Any = None
        self.deadline: float | None = None
        self.timeout_message: Any = otp.TIMEOUT
        self.timeout_first = False
        self.continue_: Any = NO_CONTINUE
        self.last_message: Any = None
        self.loop = asyncio.get_running_loop()
        self.node_pid = _call.node().init_pid
        self.bind(cls, callbacks)

    def bind(self, cls: type[GenServer[Any]], callbacks: GenServer[Any]) -> None:
        """Take the callbacks of `cls` (at start, and when its code is replaced)."""
        self.cls = cls
        self.callbacks = callbacks
        self.is_async = cls._async
        self.h_call = _unbound(callbacks, "handle_call")
        self.h_cast = _unbound(callbacks, "handle_cast")
        self.h_info = _unbound(callbacks, "handle_info")
        self.a_call = "handle_call" in cls._async
        self.a_cast = "handle_cast" in cls._async
        self.a_info = "handle_info" in cls._async

    def set_timeout(self, timeout: float | Timeout | str | None) -> None:
        """Arm the idle timeout a result asked for (None / math.inf: none)."""
        self.timeout_message = otp.TIMEOUT
        self.timeout_first = False
        if type(timeout) is Timeout:
            self.timeout_message = timeout.message
            self.timeout_first = timeout.seconds == 0  # before what is already queued
            timeout = timeout.seconds
        if timeout is None or timeout == math.inf or timeout == "hibernate":
            self.deadline = None
        else:
            self.deadline = self.loop.time() + float(timeout)  # type: ignore[arg-type]

    async def serve(self) -> None:
        """Handle messages until a callback stops the server (which raises out of here).

        `last_message` (for crash reports) is recorded only on the paths that can report.
        """
        proc = self.proc
        loop = self.loop
        reply = _call.reply
        receive = otp.receive
        h_call, a_call, h_cast, a_cast = self.h_call, self.a_call, self.h_cast, self.a_cast
        callbacks = self.callbacks
        direct = None if a_call else self  # a plain handle_call may run in the caller's turn
        while True:
            if self.continue_ is not NO_CONTINUE:
                await self.run_continue()
                continue
            if self.suspended or self.deadline is not None:
                msg = await self.wait_message()
                if msg is NOTHING_YET:
                    continue
            elif proc.mbox:
                msg = await receive()
            else:  # receive() without its coroutine: one frame fewer to resume through
                msg = await waiter(proc, loop, None, 0, direct)
            # Handle `msg`, then whatever is already queued, for as long as every result is a
            # plain Reply/NoReply (nothing that suspends, sets a timeout or a continue).
            while True:
                if type(msg) is tuple:
                    size = len(msg)
                    if size == 2 and msg[0] == CAST:
                        try:
                            result = h_cast(callbacks, msg[1], self.state)
                            if a_cast:
                                result = await result
                        except Exception as exc:
                            self.last_message = msg
                            await self.crash(exc)
                        if (
                            type(result) is not NoReply
                            or result.timeout is not None
                            or result.continue_ is not NO_CONTINUE
                        ):
                            self.last_message = msg
                            await self.apply(result, None, "handle_cast")
                            break
                        self.state = result.state
                        self.deadline = None
                    elif size == 3 and msg[0] == CALL:
                        from_ = msg[1]
                        try:
                            result = h_call(callbacks, msg[2], from_, self.state)
                            if a_call:
                                result = await result
                        except Exception as exc:
                            self.last_message = msg
                            await self.crash(exc)
                        if (
                            type(result) is not Reply
                            or result.timeout is not None
                            or result.continue_ is not NO_CONTINUE
                        ):
                            self.last_message = msg
                            await self.apply(result, from_, "handle_call")
                            break
                        reply(from_, result.reply)
                        self.state = result.state
                        self.deadline = None
                    elif size == 3 and msg[0] == otp_sys.SYSTEM:
                        await otp_sys.handle(self, msg[1], msg[2])
                        # a code change may have replaced the callbacks
                        h_call, a_call = self.h_call, self.a_call
                        h_cast, a_cast = self.h_cast, self.a_cast
                        callbacks = self.callbacks
                        direct = None if a_call else self
                        break
                    elif size == 4 and msg[0] == CALL:  # the traced form (see otp.gen)
                        await self.traced_call(msg)
                        break
                    else:
                        await self.run_info(msg)
                        break
                elif type(msg) is Exit and self.from_parent(msg):
                    self.last_message = msg
                    await self.stop_with(msg.reason, None)
                elif type(msg) is Handoff:
                    await self.finish_call(*msg.payload)
                    break
                else:
                    await self.run_info(msg)
                    break
                mbox = proc.mbox  # receive() inlined for what is already queued
                if not mbox:
                    break
                if proc.exiting:  # an exit signal is pending: stop here
                    raise CancelledError
                msg = mbox.popleft()

    def call_directly(self, request: Any, from_: From) -> Any:
        """`handle_call` in the caller's turn, as this server (see `otp.gen.DirectCalls`):
        the reply of a plain `Reply`; anything else is handed to the loop to finish."""
        try:
            result = self.h_call(self.callbacks, request, from_, self.state)
        except BaseException as exc:
            return Handoff((request, from_, None, exc))
        if type(result) is Reply and result.timeout is None and result.continue_ is NO_CONTINUE:
            self.state = result.state
            return result.reply
        return Handoff((request, from_, result, None))

    async def finish_call(
        self, request: Any, from_: From, result: Any, exc: BaseException | None
    ) -> None:
        """Finish, in the server's turn, a call whose `handle_call` ran in the caller's."""
        self.last_message = (CALL, from_, request)
        if exc is not None:
            if isinstance(exc, Exception):
                await self.crash(exc)
            raise exc
        await self.apply(result, from_, "handle_call")

    async def traced_call(self, msg: tuple[Any, From, Any, Any]) -> None:
        """A call in the traced form: `handle_call` runs inside the server's span."""
        self.last_message = msg[:3]  # (the plain form: what crash reports show)
        from_ = msg[1]
        try:
            with _call.server_span(self.proc, msg[3]):
                result = self.h_call(self.callbacks, msg[2], from_, self.state)
                if self.a_call:
                    result = await result
        except Exception as exc:
            await self.crash(exc)
        await self.apply(result, from_, "handle_call")

    async def wait_message(self) -> Any:
        """Wait for the next message this server may take now; NOTHING_YET after a timeout."""
        if self.suspended:
            return await otp.receive(self.is_system_or_parent)
        if self.deadline is None:
            return await otp.receive()
        if not self.timeout_first:
            try:
                return await otp.receive(None, max(0.0, self.deadline - self.loop.time()))
            except TimeoutError:
                pass
        self.deadline = None
        await self.run_info(self.timeout_message)
        return NOTHING_YET

    def is_system_or_parent(self, msg: Any) -> bool:
        return otp_sys.is_system_message(msg) or (type(msg) is Exit and self.from_parent(msg))

    def from_parent(self, msg: Exit) -> bool:
        """An exit from the parent, or from the node itself (its shutdown): terminate."""
        return (self.parent is not None and msg.pid == self.parent) or msg.pid == self.node_pid

    async def run_info(self, msg: Any) -> None:
        self.last_message = msg
        try:
            result = self.h_info(self.callbacks, msg, self.state)
            if self.a_info:
                result = await result
        except Exception as exc:
            await self.crash(exc)
        await self.apply(result, None, "handle_info")

    async def run_continue(self) -> None:
        continue_, self.continue_ = self.continue_, NO_CONTINUE
        self.last_message = ("continue", continue_)
        try:
            result = self.callbacks.handle_continue(continue_, self.state)
            if "handle_continue" in self.is_async:
                result = await result
        except Exception as exc:
            await self.crash(exc)
        await self.apply(result, None, "handle_continue")

    async def apply(self, result: Any, from_: From | None, callback: str) -> None:
        """Act on any callback result: reply, new state, timeout, continue, or stop."""
        rtype = type(result)
        if rtype is Reply and from_ is not None:
            _call.reply(from_, result.reply)
        elif rtype is Stop and (from_ is not None or result.reply is NO_REPLY):
            if result.state is not NO_STATE:
                self.state = result.state
            answer = (from_, result.reply) if result.reply is not NO_REPLY and from_ else None
            await self.stop_with(result.reason, None, answer)
        elif rtype is not NoReply:  # a Stop with a reply outside a call is one too (OTP)
            expected = _HANDLE_RESULT if from_ is not None else _NOREPLY_RESULT
            await self.crash(BadReturn(f"{self.cls.__qualname__}.{callback}", result, expected))
        self.state = result.state
        self.continue_ = result.continue_
        self.set_timeout(result.timeout)

    async def crash(self, exc: Exception) -> NoReturn:
        """A callback raised (or returned garbage): terminate, report, end with `exc`."""
        await self.stop_with(_reason_of(exc), exc)

    async def stop_with(
        self, reason: Any, error: BaseException | None, answer: tuple[From, Any] | None = None
    ) -> NoReturn:
        """Run `terminate(reason, state)`, answer a pending `Stop(reply=...)`, report an
        abnormal end, and exit with `reason`."""
        try:
            result = self.callbacks.terminate(reason, self.state)
            if "terminate" in self.is_async:
                await result
        except Exception as crash:  # terminate itself failed: that is how the server ends
            reason = _reason_of(crash)
            error = crash
        if answer is not None:
            _call.reply(*answer)
        if is_abnormal(reason):
            if wanted(_logger, logging.ERROR):  # (else no report, nor format_status, as in OTP)
                await self.report(reason, error)
            otp.reports.reported(self.proc)  # (one crash, one report)
        if error is not None:
            raise error
        raise ExitError(reason)

    async def formatted(self, **status: Any) -> dict[str, Any]:
        """`status` with the state, as `format_status` rewrites them; a placeholder state
        if it raises or returns something else than a dict (as OTP's gen does)."""
        status["state"] = self.state
        try:
            shown: Any = self.callbacks.format_status(status)
            if inspect.isawaitable(shown):  # its type allows any awaitable
                shown = await shown
        except Exception:
            return {**status, "state": f"{self.cls.__qualname__}.format_status crashed"}
        if not isinstance(shown, dict):
            return {
                **status,
                "state": f"{self.cls.__qualname__}.format_status did not return a dict",
            }
        return shown

    async def report(self, reason: Any, exc: BaseException | None) -> None:
        """Log the `ServerReport` of an abnormal end, through `format_status`."""
        last = self.last_message
        client = last[1][0] if type(last) is tuple and len(last) == 3 and last[0] == CALL else None
        shown = await self.formatted(message=last, reason=reason)
        report = ServerReport(
            pid=self.proc.pid,
            name=self.name,
            behaviour=self.cls,
            last_message=shown.get("message", last),
            state=shown.get("state"),
            reason=shown.get("reason", reason),
            client=client,
        )
        emit(
            _logger,
            logging.ERROR,
            report,
            "GenServer %s %r terminating\n** Last message in: %r\n** When state == %r\n"
            "** Reason: %r%s",
            self.cls.__qualname__,
            self.name or self.proc.pid,
            report.last_message,
            report.state,
            report.reason,
            f"\n** Client: {client!r}" if client is not None else "",
            exc=exc,
        )

    # -- otp.sys.SystemHandler ----------------------------------------------------------

    def system_get_state(self) -> Any:
        view = getattr(self.callbacks, "sys_get_state", None)  # (a state machine's view)
        return self.state if view is None else view(self.state)

    def system_replace_state(self, fn: Callable[[Any], Any]) -> Any:
        replace = getattr(self.callbacks, "sys_replace_state", None)
        if replace is not None:  # a behaviour built on this loop shows its state its way
            self.state, shown = replace(self.state, fn)
            return shown
        self.state = fn(self.state)
        return self.state

    async def system_code_change(self, old_vsn: Any, extra: Any, upgrade: bool = False) -> None:
        """Switch to the class now loaded under this one's name and convert the state with
        its `code_change` (on a downgrade, `old_vsn` is `("down", vsn)`: the running code
        converts the state, then the older class takes over). On failure nothing changed.
        `upgrade`: the code server asks; nothing newer loaded means its upgrade is over."""
        proc = self.proc
        behaviour = proc.behaviour
        if upgrade and behaviour is not None and otp.code.target_class(behaviour) is behaviour:
            return  # (an upgrade undone before this process got to it)
        down = type(old_vsn) is tuple and len(old_vsn) == 2 and old_vsn[0] == "down"
        target: type[GenServer[Any]] = otp.code.target_class(self.cls)
        runs = (self.cls if down else target).code_change
        # the default code_change changes nothing: the state itself is its snapshot
        kept = self.state if runs is GenServer.code_change else otp.code.snapshot(self.state)
        saved = (self.cls, self.callbacks, proc.behaviour, kept)
        try:
            if not down:
                self.switch(target)
            result = self.callbacks.code_change(old_vsn, self.state, extra)
            if "code_change" in self.is_async:
                result = await result
            if down:
                self.switch(otp.code.target_class(self.cls))
            if result is None and kept is not None and runs is not GenServer.code_change:
                raise BadReturn(
                    f"{self.cls.__qualname__}.code_change", None, "the new state (a return?)"
                )
        except BaseException:
            self.code_snapshot = saved
            self.system_revert_code()
            self.code_snapshot = None
            raise
        self.state = result
        self.code_snapshot = saved

    def switch(self, cls: type[GenServer[Any]]) -> None:
        """Run the callbacks of `cls` from now on (a code change)."""
        if cls is not self.cls:
            if self.proc.behaviour is self.cls:
                self.proc.behaviour = cls
            self.bind(cls, cls())

    def system_revert_code(self) -> None:
        self.cls, callbacks, self.proc.behaviour, self.state = self.code_snapshot
        self.bind(self.cls, callbacks)

    async def system_get_status(self) -> otp_sys.Status:
        return otp_sys.Status(
            pid=self.proc.pid,
            behaviour=self.cls,
            status="suspended" if self.suspended else "running",
            parent=self.parent,
            name=self.name,
            state=(await self.formatted()).get("state"),
        )

    def system_children(self) -> list[otp_sys.Child] | None:
        """What a supervisor's callbacks report as its children (`otp.sys.get_children`)."""
        children = getattr(self.callbacks, "sys_children", None)
        return None if children is None else children(self.state)

    async def system_apply_child_specs(self) -> None:
        """What a supervisor's callbacks do after a release install (nothing for others)."""
        apply = getattr(self.callbacks, "sys_apply_child_specs", None)
        if apply is not None:
            self.state = await apply(self.state)

    async def system_terminate(self, reason: Any) -> NoReturn:
        self.last_message = ("system", "terminate", reason)
        await self.stop_with(reason, None)
