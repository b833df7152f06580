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
import contextlib
import hashlib
import inspect
import logging
import math
import sys as _pysys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, NoReturn, TypeVar

import otp
from otp import IGNORE, NORMAL, Exit, ExitError, Pid, Ref, StartError, _call, is_abnormal
from otp import sys as otp_sys
from otp._process import Process, current

from ._child_spec import ChildSpec
from ._results import NO_CONTINUE, NO_REPLY, BadReturn, Init, NoReply, Reply, Stop

__all__ = ["GenServer", "RequestId", "ServerReport", "UnexpectedMessage"]

S = TypeVar("S")

CALL: Final = "$gen_call"
CAST: Final = "$gen_cast"
ACK: Final = "$ack"

_logger = logging.getLogger("otp.gen_server")

RequestId = _call.RequestId
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
    """`vsn` when a class does not set one: the content hash of its module's source."""

    def __get__(self, instance: object, owner: type) -> str:
        cached = owner.__dict__.get("_module_vsn")
        if cached is not None:
            return str(cached)
        module = _pysys.modules.get(owner.__module__)
        try:
            source = inspect.getsource(module) if module is not None else owner.__qualname__
        except (OSError, TypeError):
            source = owner.__qualname__
        vsn = hashlib.sha256(source.encode()).hexdigest()[:16]
        type.__setattr__(owner, "_module_vsn", vsn)
        return vsn


class GenServer(Generic[S]):
    """Base class of a GenServer's callbacks. Subclass it and override what you need."""

    vsn: ClassVar[str] = _ModuleVersion()  # type: ignore[assignment]
    _async: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._async = frozenset(
            name for name in _CALLBACKS if inspect.iscoroutinefunction(getattr(cls, name))
        )

    # -- callbacks ----------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        """Return the initial state, `Init(state, ...)`, `Stop(reason)` or `otp.IGNORE`."""
        raise NotImplementedError(f"{type(self).__qualname__} defines no init(arg)")

    def handle_call(self, request: Any, from_: From, state: S) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} received the call {request!r} but defines no handle_call"
        )

    def handle_cast(self, msg: Any, state: S) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} received the cast {msg!r} but defines no handle_cast"
        )

    def handle_info(self, msg: Any, state: S) -> Any:
        """Default: log a warning (never drop a message silently) and keep the state."""
        proc = current()
        report = UnexpectedMessage(proc.pid, proc.regname, type(self), msg)
        _logger.warning(
            "GenServer %s %r received an unexpected message in handle_info: %r "
            "(define handle_info to handle it)",
            type(self).__qualname__,
            report.name or report.pid,
            msg,
            extra={"otp_report": report},
        )
        return NoReply(state)

    def handle_continue(self, continue_: Any, state: S) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} was asked to continue with {continue_!r} "
            "but defines no handle_continue"
        )

    def terminate(self, reason: Any, state: S) -> Any:
        """Runs before the server exits (on Stop, a crash, or its parent's exit when trapping)."""
        return None

    def code_change(self, old_vsn: Any, state: S, extra: Any) -> Any:
        """Return the state converted from code version `old_vsn`."""
        return state

    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """Rewrite what status and crash reports show: keys `state`, `message`, `reason`."""
        return status

    # -- starting -----------------------------------------------------------------------

    @classmethod
    async def start_link(
        cls, arg: Any = None, *, name: str | None = None, timeout: float = math.inf
    ) -> Pid | None:
        """Start a server linked to the caller; its pid, or None if `init` returned IGNORE.

        Raises `otp.StartError` if `init` raises or returns `Stop(reason)`, and
        `otp.AlreadyStartedError` if `name` is taken.
        """
        pid, _ = await _start(cls, arg, name, timeout, link=True, keep_monitor=False)
        return pid

    @classmethod
    async def start(
        cls, arg: Any = None, *, name: str | None = None, timeout: float = math.inf
    ) -> Pid | None:
        """Start a server with no link to the caller (see `start_link`)."""
        pid, _ = await _start(cls, arg, name, timeout, link=False, keep_monitor=False)
        return pid

    @classmethod
    async def start_monitor(
        cls, arg: Any = None, *, name: str | None = None, timeout: float = math.inf
    ) -> tuple[Pid, Ref] | None:
        """Start a server monitored by the caller; `(pid, monitor_ref)` (see `start_link`)."""
        pid, ref = await _start(cls, arg, name, timeout, link=False, keep_monitor=True)
        return None if pid is None or ref is None else (pid, ref)

    @classmethod
    def child_spec(cls, arg: Any = None, **overrides: Any) -> ChildSpec:
        """The spec a supervisor uses to run `cls.start_link(arg)`; `name=` names the server,
        other keywords override spec fields (`id`, `restart`, `shutdown`, ...)."""
        name = overrides.pop("name", None)
        start = (cls.start_link, arg) if name is None else (_named_start, cls, arg, name)
        spec = ChildSpec(id=cls, start=start, modules=(cls,))
        return spec.replace(**overrides) if overrides else spec

    # -- client API ---------------------------------------------------------------------

    @staticmethod
    async def call(server: Any, request: Any, timeout: float = 5.0) -> Any:
        """Send `request` and wait for the reply.

        Raises `otp.CallError` when the server is not there (`.reason == NOPROC`) or dies
        first (its exit reason), and `otp.CallTimeout` after `timeout` seconds.
        """
        return await _call.call(server, CALL, request, timeout)

    @staticmethod
    def cast(server: Any, msg: Any) -> None:
        """Send `msg` to `handle_cast`; never fails, never waits."""
        with contextlib.suppress(otp.NotRegisteredError):
            otp.send(server, (CAST, msg))

    @staticmethod
    def reply(from_: From, value: Any) -> None:
        """Answer a call whose `handle_call` returned `NoReply`."""
        _call.reply(from_, value)

    @staticmethod
    async def stop(server: Any, reason: Any = NORMAL, timeout: float = math.inf) -> None:
        """Make the server run `terminate(reason, state)` and exit; wait until it has.

        A dead or unknown server raises `otp.ExitError(NOPROC)`.
        """
        await otp_sys.terminate(server, reason, timeout)

    @staticmethod
    def send_request(server: Any, request: Any) -> RequestId:
        """Send a call without waiting; read the reply with `wait_response`/`check_response`."""
        return _call.send_request(server, CALL, request)

    @staticmethod
    async def wait_response(req: RequestId, timeout: float = math.inf) -> Any:
        """The reply to `req`. `TimeoutError` keeps it pending; `CallError` if the server died."""
        return await _call.wait_response(req, timeout)

    @staticmethod
    def check_response(msg: Any, req: RequestId) -> tuple[str, Any] | str:
        """`("reply", value)` if `msg` is the reply to `req`, else `"no_reply"`."""
        return _call.check_response(msg, req)


async def _named_start(cls: type[GenServer[Any]], arg: Any, name: str) -> Pid | None:
    return await cls.start_link(arg, name=name)


# -- starting ------------------------------------------------------------------------------


async def _start(
    cls: type[GenServer[Any]],
    arg: Any,
    name: str | None,
    timeout: float,
    *,
    link: bool,
    keep_monitor: bool,
) -> tuple[Pid | None, Ref | None]:
    if not (isinstance(cls, type) and issubclass(cls, GenServer)):
        raise TypeError(f"start_link() is called on a GenServer subclass, got {cls!r}")
    if name is not None and type(name) is not str:
        raise TypeError(f"a server name is a str, got {name!r}")
    wait = _call.check_timeout(timeout, "start")
    me = current()
    tag = otp.make_ref()
    parent = me.pid if link else None
    spawn = otp.spawn_link if link else otp.spawn
    pid = spawn(_server_main, cls, arg, name, me.pid, parent, tag)
    ref = otp.monitor(pid)

    def answer(m: Any) -> bool:
        t = type(m)
        return (t is tuple and len(m) == 3 and m[0] == ACK and m[1] is tag) or (
            t is otp.Down and m.ref is ref
        )

    try:
        msg = await otp.receive(answer, wait)
    except TimeoutError:
        otp.unlink(pid)
        otp.exit(pid, otp.KILL)
        await _await_down(ref)
        raise StartError(
            otp.TIMEOUT, f"{cls.__qualname__}.init did not finish in {timeout} s"
        ) from None
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


def _reason_of(exc: BaseException) -> Any:
    """The exit reason an exception stands for: `otp.exit(r)` means `r`, anything else itself."""
    return exc.reason if isinstance(exc, ExitError) else exc


async def _await_down(ref: Ref) -> None:
    await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def _server_main(
    cls: type[GenServer[Any]],
    arg: Any,
    name: str | None,
    starter: Pid,
    parent: Pid | None,
    tag: Ref,
) -> None:
    """The body of a GenServer process: register, init, acknowledge, then serve."""
    proc = current()
    proc.behaviour = cls

    def answer(result: tuple[Any, ...]) -> None:
        if result[0] != "ok" and parent is not None:
            otp.unlink(parent)  # a failed start is reported by the answer, not by a signal
        otp.send(starter, (ACK, tag, result))

    if name is not None:
        holder = otp.whereis(name)
        if holder is not None:
            answer(("already_started", holder))
            return
        otp.register(name, proc.pid)
    callbacks = cls()
    try:
        result = callbacks.init(arg)
        if "init" in cls._async:
            result = await result
    except Exception as exc:
        answer(("error", _reason_of(exc)))
        raise
    timeout: float | None = None
    continue_: Any = NO_CONTINUE
    rtype = type(result)
    if rtype is Init:
        state, timeout, continue_ = result
    elif rtype is Stop:
        answer(("error", result.reason))
        raise ExitError(result.reason)
    elif result is IGNORE:
        answer(("ignore",))
        return
    elif rtype is Reply or rtype is NoReply:
        bad = BadReturn(
            f"{cls.__qualname__}.init", result, "the state, Init(...), Stop(...) or otp.IGNORE"
        )
        answer(("error", bad))
        raise bad
    else:
        state = result
    answer(("ok",))
    server = _Server(proc, cls, callbacks, state, parent, name)
    server.set_timeout(timeout)
    server.continue_ = continue_
    await server.serve()


# -- the server loop -----------------------------------------------------------------------


class _Server:
    """A running GenServer: its callbacks, state and loop; answers system messages."""

    __slots__ = (
        "callbacks",
        "cls",
        "continue_",
        "deadline",
        "is_async",
        "last_message",
        "loop",
        "name",
        "parent",
        "proc",
        "state",
        "suspended",
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
        self.cls = cls
        self.callbacks = callbacks
        self.is_async = cls._async
        self.state = state
        self.parent = parent
        self.name = name
        self.suspended = False
        self.deadline: float | None = None
        self.continue_: Any = NO_CONTINUE
        self.last_message: Any = None
        self.loop = asyncio.get_running_loop()

    def set_timeout(self, timeout: float | str | None) -> None:
        if timeout is None or timeout == math.inf or timeout == "hibernate":
            self.deadline = None
        else:
            self.deadline = self.loop.time() + float(timeout)

    async def serve(self) -> None:
        """Handle messages until a callback stops the server (which raises out of here)."""
        receive = otp.receive
        while True:
            if self.continue_ is not NO_CONTINUE:
                continue_, self.continue_ = self.continue_, NO_CONTINUE
                self.last_message = ("continue", continue_)
                await self.run_callback("handle_continue", (continue_,), None)
                continue
            if self.suspended:
                msg = await receive(self.is_system_or_parent)
            elif self.deadline is None:
                msg = await receive()
            else:
                try:
                    msg = await receive(None, max(0.0, self.deadline - self.loop.time()))
                except TimeoutError:
                    self.deadline = None
                    self.last_message = otp.TIMEOUT
                    await self.run_callback("handle_info", (otp.TIMEOUT,), None)
                    continue
            await self.dispatch(msg)

    def is_system_or_parent(self, msg: Any) -> bool:
        return otp_sys.is_system_message(msg) or (type(msg) is Exit and msg.pid == self.parent)

    async def dispatch(self, msg: Any) -> None:
        if type(msg) is tuple:
            size = len(msg)
            if size == 3:
                kind = msg[0]
                if kind == CALL:
                    self.last_message = msg
                    from_ = msg[1]
                    await self.run_callback("handle_call", (msg[2], from_), from_)
                    return
                if kind == otp_sys.SYSTEM:
                    await otp_sys.handle(self, msg[1], msg[2])
                    return
            elif size == 2 and msg[0] == CAST:
                self.last_message = msg
                await self.run_callback("handle_cast", (msg[1],), None)
                return
        elif type(msg) is Exit and self.parent is not None and msg.pid == self.parent:
            self.last_message = msg
            await self.stop_with(msg.reason, None)
        self.last_message = msg
        await self.run_callback("handle_info", (msg,), None)

    async def run_callback(self, name: str, args: tuple[Any, ...], from_: From | None) -> None:
        """Run one message callback and act on its result; a crash ends the server."""
        try:
            result = getattr(self.callbacks, name)(*args, self.state)
            if name in self.is_async:
                result = await result
        except Exception as exc:
            await self.crash(exc)
        rtype = type(result)
        if rtype is Reply and from_ is not None:
            _call.reply(from_, result.reply)
        elif rtype is Stop:
            if result.reply is not NO_REPLY and from_ is not None:
                _call.reply(from_, result.reply)
            self.state = result.state
            await self.stop_with(result.reason, None)
        elif rtype is not NoReply:
            expected = _HANDLE_RESULT if from_ is not None else _NOREPLY_RESULT
            await self.crash(BadReturn(f"{self.cls.__qualname__}.{name}", result, expected))
        self.state = result.state
        self.continue_ = result.continue_
        if result.timeout is None:
            self.deadline = None
        else:
            self.set_timeout(result.timeout)

    async def crash(self, exc: Exception) -> NoReturn:
        """A callback raised (or returned garbage): terminate, report, end with `exc`."""
        await self.stop_with(_reason_of(exc), exc)

    async def stop_with(self, reason: Any, error: BaseException | None) -> NoReturn:
        """Run `terminate(reason, state)`, report an abnormal end, and exit with `reason`."""
        try:
            result = self.callbacks.terminate(reason, self.state)
            if "terminate" in self.is_async:
                await result
        except Exception as crash:  # terminate itself failed: that is how the server ends
            reason = _reason_of(crash)
            error = crash
        if is_abnormal(reason):
            self.report(reason, error)
        if error is not None:
            raise error
        raise ExitError(reason)

    def formatted(self, **status: Any) -> dict[str, Any]:
        status["state"] = self.state
        try:
            return self.callbacks.format_status(status)
        except Exception:
            return {**status, "state": f"{self.cls.__qualname__}.format_status crashed"}

    def report(self, reason: Any, exc: BaseException | None) -> None:
        last = self.last_message
        client = last[1][0] if type(last) is tuple and len(last) == 3 and last[0] == CALL else None
        shown = self.formatted(message=last, reason=reason)
        report = ServerReport(
            pid=self.proc.pid,
            name=self.name,
            behaviour=self.cls,
            last_message=shown.get("message", last),
            state=shown.get("state"),
            reason=shown.get("reason", reason),
            client=client,
        )
        _logger.error(
            "GenServer %s %r terminating\n** Last message in: %r\n** When state == %r\n"
            "** Reason: %r%s",
            self.cls.__qualname__,
            self.name or self.proc.pid,
            report.last_message,
            report.state,
            report.reason,
            f"\n** Client: {client!r}" if client is not None else "",
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            extra={"otp_report": report},
        )

    # -- otp.sys.SystemHandler ----------------------------------------------------------

    def system_get_state(self) -> Any:
        return self.state

    def system_replace_state(self, fn: Callable[[Any], Any]) -> Any:
        self.state = fn(self.state)
        return self.state

    async def system_code_change(self, old_vsn: Any, extra: Any) -> None:
        result = self.callbacks.code_change(old_vsn, self.state, extra)
        if "code_change" in self.is_async:
            result = await result
        self.state = result

    def system_get_status(self) -> otp_sys.Status:
        return otp_sys.Status(
            pid=self.proc.pid,
            behaviour=self.cls,
            status="suspended" if self.suspended else "running",
            parent=self.parent,
            name=self.name,
            state=self.formatted().get("state"),
        )

    async def system_terminate(self, reason: Any) -> NoReturn:
        self.last_message = ("system", "terminate", reason)
        await self.stop_with(reason, None)
