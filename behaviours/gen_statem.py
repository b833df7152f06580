"""GenStatem: Erlang's state machine behaviour.

| API (client side)                       | callback (server side)                          |
|-----------------------------------------|-------------------------------------------------|
| `start` / `start_link` / `start_monitor` | `init(arg)` -> `(state, data[, actions])`       |
| `GenStatem.call(server, request)`       | `<state>(("call", from_), request, data)`       |
| `GenStatem.cast(server, msg)`           | `<state>("cast", msg, data)`                    |
| `otp.send(server, msg)`                 | `<state>("info", msg, data)`                    |
| timeouts, `NextEvent`                   | `"state_timeout"`, `"timeout"`, `("timeout", n)` |
| a state change, with `state_enter`      | `<state>("enter", old_state, data)`             |
| `otp.sys.change_code`, an upgrade       | `code_change(old_vsn, state, data, extra)`      |

With `callback_mode = "handle_event_function"` one method,
`handle_event(event_type, content, state, data)`, takes every event instead.

    class Door(GenStatem):
        def init(self, code):
            return "locked", {"code": code}

        def locked(self, event_type, content, data):
            if content == data["code"]:
                return NextState("open", data, [ReplyTo(event_type[1], "ok"), StateTimeout(5)])
            return KeepState(data, [ReplyTo(event_type[1], "wrong")])

        def open(self, event_type, content, data):
            if event_type == "state_timeout":
                return NextState("locked", data)
            return KeepState(data, [Postpone()])

The machine runs on the GenServer loop (start, calls, `otp.sys`, crash reports, code
upgrades): its state there is the machine, and `otp.sys.get_state` shows `(state, data)`.
Postponed events are retried after a state change, after the events inserted with
`NextEvent`, in their original order; a state change cancels the state timeout; any event
cancels the event timeout; generic timeouts live until they fire or are re-armed. Zero-time
timeouts fire once the queued events have run, in the order set, before the mailbox.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, ClassVar, Final, NoReturn

import otp
from otp import IGNORE, Pid, Ref
from otp.gen import current

from ._child_spec import ChildSpec
from ._results import NO_STATE, BadReturn, Init, NoReply, Stop, _Marker, _Result
from .gen_server import _DEFAULT_VSN, GenServer, Name, _bound, _ModuleVersion, server_spec

__all__ = [
    "EventTimeout",
    "GenStatem",
    "GenericTimeout",
    "Hibernate",
    "KeepState",
    "NextEvent",
    "NextState",
    "Postpone",
    "RepeatState",
    "ReplyTo",
    "StateTimeout",
    "Stop",
    "StopAndReply",
]

KEEP: Final[Any] = NO_STATE  # "the data as it is"
TIMER: Final = "$statem_timeout"


# -- results and actions --------------------------------------------------------------------


class NextState(_Result, frozen=True):
    """Go to `state` with `data`, then carry out `actions`."""

    state: Any
    data: Any
    actions: Any = ()


class KeepState(_Result, frozen=True):
    """Stay in the state (no enter call; postponed events stay postponed); without `data`,
    the data as it is."""

    data: Any = KEEP
    actions: Any = ()


class RepeatState(KeepState, frozen=True):
    """Stay in the state, but as if entered again: its enter call runs (with state_enter)."""


class StopAndReply(_Result, frozen=True):
    """Send `replies` (ReplyTo actions), then stop with `reason`."""

    reason: Any
    replies: Any
    data: Any = KEEP


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Answer the call that came from `from_` (an event type `("call", from_)`)."""

    from_: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Postpone:
    """Keep this event until the state changes; it is then handled again."""


@dataclass(frozen=True, slots=True)
class StateTimeout:
    """A `"state_timeout"` event with `msg` after `seconds`, unless the state changes first;
    `math.inf` cancels it."""

    seconds: float
    msg: Any = None


@dataclass(frozen=True, slots=True)
class EventTimeout:
    """A `"timeout"` event with `msg` after `seconds`, unless another event comes first."""

    seconds: float
    msg: Any = None


@dataclass(frozen=True, slots=True)
class GenericTimeout:
    """A `("timeout", name)` event with `msg` after `seconds`; state changes leave it be,
    setting it again re-arms it, `math.inf` cancels it."""

    name: Any
    seconds: float
    msg: Any = None


@dataclass(frozen=True, slots=True)
class NextEvent:
    """Handle this event (of any type) next, before anything from the mailbox."""

    type: Any
    content: Any = None


@dataclass(frozen=True, slots=True)
class Hibernate:
    """Accepted, and has no effect (as GenServer's hibernate)."""


_RESULTS: Final = "NextState(...), KeepState(...), RepeatState(...), Stop(...) or StopAndReply(...)"


# -- the behaviour --------------------------------------------------------------------------


class GenStatem:
    """Base class of a state machine's callbacks. Subclass it; see the module doc."""

    callback_mode: ClassVar[str] = "state_functions"
    state_enter: ClassVar[bool] = False
    vsn: ClassVar[str] = _DEFAULT_VSN  # type: ignore[assignment]
    max_mailbox: ClassVar[int | None] = None  # a bound on the mailbox (as GenServer's)
    overload: ClassVar[otp.Overload] = "drop_newest"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        otp.code.note_behaviour(cls)
        if isinstance(cls.__dict__.get("vsn", _DEFAULT_VSN), _ModuleVersion):
            cls.vsn  # noqa: B018  (taken now, from the module that defines it)

    def init(self, arg: Any) -> Any:
        """Return `(state, data)` or `(state, data, actions)`, `Stop(reason)` or IGNORE.

        Args:
            arg: The `arg` given to `start_link`.

        Returns:
            `(state, data)`, `(state, data, actions)`, `Stop(reason)` (then `start_link`
            raises `StartError`) or `otp.IGNORE` (it returns None).
        """
        raise NotImplementedError(f"{type(self).__qualname__} defines no init(arg)")

    def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        """Take every event, with `callback_mode = "handle_event_function"`; no default.

        Args:
            event_type: `("call", from_)`, `"cast"`, `"info"`, `"enter"`, a timeout type...
            content: The request, message or timeout content (the old state for `"enter"`).
            state: The current state.
            data: The current data.

        Returns:
            `NextState`, `KeepState`, `RepeatState`, `Stop` or `StopAndReply`.
        """
        raise NotImplementedError(
            f"{type(self).__qualname__} uses handle_event_function but defines no handle_event"
        )

    def terminate(self, reason: Any, state: Any, data: Any) -> Any:
        """Runs before the machine exits (as GenServer's `terminate`); does nothing by default.

        Args:
            reason: The exit reason.
            state: The last state.
            data: The last data.

        Returns:
            Ignored.
        """
        return None

    def code_change(self, old_vsn: Any, state: Any, data: Any, extra: Any) -> Any:
        """Return `(state, data)` converted from code version `old_vsn`.

        Args:
            old_vsn: The `vsn` of the class the machine ran before.
            state: The current state.
            data: The current data.
            extra: The `extra` of the upgrade.

        Returns:
            `(state, data)` (default: unchanged); raising rolls the upgrade back.
        """
        return state, data

    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        """Rewrite what status and crash reports show (as GenServer's `format_status`).

        Args:
            status: A dict whose `state` is `(state, data)`.

        Returns:
            The dict to show (default: `status` unchanged).
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
        """Start a machine linked to the caller (as GenServer.start_link, its mailbox bound
        included).

        Args:
            arg: Passed to `init` (default None).
            name: A str or `("via", registry, key)` to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The mailbox bound (default: the class attribute, None: unbounded).
            overload: What a full mailbox does (default: the class attribute).

        Returns:
            The pid, or None if `init` returned `otp.IGNORE`.

        Raises:
            otp.StartError: `init` raised, returned `Stop(reason)` or took too long.
            otp.AlreadyStartedError: `name` is taken.
        """
        max_mailbox, overload = _bound(cls, max_mailbox, overload)
        return await _server(cls).start_link(
            (cls, arg), name=name, timeout=timeout, max_mailbox=max_mailbox, overload=overload
        )

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
        """Start a machine with no link to the caller (see `start_link`).

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
        max_mailbox, overload = _bound(cls, max_mailbox, overload)
        return await _server(cls).start(
            (cls, arg), name=name, timeout=timeout, max_mailbox=max_mailbox, overload=overload
        )

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
        """Start a machine monitored by the caller (see `start_link`).

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
        max_mailbox, overload = _bound(cls, max_mailbox, overload)
        return await _server(cls).start_monitor(
            (cls, arg), name=name, timeout=timeout, max_mailbox=max_mailbox, overload=overload
        )

    @classmethod
    def child_spec(cls, arg: Any = None, **overrides: Any) -> ChildSpec:
        """The spec a supervisor uses to run `cls.start_link(arg)` (as GenServer's).

        Args:
            arg: Passed to `init` (default None).
            **overrides: `start_link` keywords, or `ChildSpec` fields to replace.

        Returns:
            A `ChildSpec`.
        """
        return server_spec(cls, arg, overrides)

    call = staticmethod(GenServer.call)
    cast = staticmethod(GenServer.cast)
    reply = staticmethod(GenServer.reply)
    stop = staticmethod(GenServer.stop)


def _server(cls: type[GenStatem]) -> type[_StatemServer]:
    """The GenServer that runs `cls`: without coroutines when its callbacks are all `def`."""
    plain = not any(
        inspect.iscoroutinefunction(getattr(cls, name, None))
        for name in dir(cls)
        if not name.startswith("__") and (name not in _RESERVED or name in _CALLBACKS)
    )
    return _PlainStatemServer if plain else _StatemServer


_RESERVED: Final = frozenset(name for name in dir(GenStatem) if not name.startswith("__"))
_CALLBACKS: Final = frozenset({"init", "handle_event", "terminate", "code_change", "format_status"})


# -- the machine ----------------------------------------------------------------------------


class _Halt(Exception):
    """The machine stops: the GenServer result that says how."""

    def __init__(self, result: Stop[Any]) -> None:
        self.result = result


class _Machine:
    """A running machine: its callbacks, state and data, and what is pending."""

    __slots__ = (
        "by_state",
        "callbacks",
        "cls",
        "data",
        "function",
        "noreply",
        "postponed",
        "queue",
        "state",
        "t0q",
        "timers",
    )

    def __init__(self, cls: type[GenStatem], callbacks: GenStatem, state: Any, data: Any) -> None:
        self.cls = cls
        self.callbacks = callbacks
        self.state = state
        self.data = data
        self.by_state = cls.callback_mode == "state_functions"
        self.function: Any = None  # the current state's function (state_functions mode)
        self.postponed: list[tuple[Any, Any]] = []
        self.queue: deque[tuple[Any, Any]] = deque()
        self.timers: dict[Any, tuple[Ref, Any, Any]] = {}  # key -> (token, tref, event)
        # the zero timeouts set, in order: they fire once the queue is empty (gen_statem's t0q)
        self.t0q: list[Any] = []
        self.noreply = NoReply(self)  # (the result of nearly every event: made once)

    def moved(self, cls: type[GenStatem], callbacks: GenStatem, state: Any, data: Any) -> _Machine:
        """This machine on other code (a code change), with what is pending."""
        new = _Machine(cls, callbacks, state, data)
        new.postponed, new.queue, new.timers = (
            list(self.postponed),
            deque(self.queue),
            dict(self.timers),
        )
        new.t0q = list(self.t0q)
        return new

    # -- events --------------------------------------------------------------------------

    async def handle(self, event_type: Any, content: Any) -> Any:
        """One event from the mailbox, then everything it queued; a GenServer result."""
        try:
            pending = self.run(event_type, content)
            if pending is None and (self.queue or self.t0q):
                pending = self.step()
            while pending is not None:
                await pending
                pending = self.step()
        except _Halt as halt:
            return halt.result
        return self.noreply

    def handle_plain(self, event_type: Any, content: Any) -> Any:
        """`handle` for a machine whose callbacks are all plain `def`: no coroutine at all.
        (One that returns a coroutine after all, from code loaded since, or a decorated
        `async def`, is awaited in the GenServer's continue.)"""
        try:
            pending = self.run(event_type, content)
            if pending is None and (self.queue or self.t0q):
                pending = self.step()
        except _Halt as halt:
            return halt.result
        return self.noreply if pending is None else NoReply(self, continue_=pending)

    def step(self) -> Coroutine[Any, Any, None] | None:
        """Handle the queued events, then the zero timeouts in the order they were set,
        until one needs awaiting: that; None when all is done."""
        while True:
            while self.queue:
                pending = self.run(*self.queue.popleft())
                if pending is not None:
                    return pending
            if not self.t0q:
                return None
            _, _, event = self.timers.pop(self.t0q.pop(0))
            pending = self.run(*event)
            if pending is not None:
                return pending

    def run(self, event_type: Any, content: Any) -> Coroutine[Any, Any, None] | None:
        """Handle one event; what is left to await when a callback is async (None: done).
        (A plain function, so a machine of plain `def` callbacks makes no coroutine here.)"""
        if self.timers and "event" in self.timers:  # any event cancels the event timeout
            self.cancel("event")
        if self.by_state:
            function = self.function or self.state_function(event_type, content)
            result = function(event_type, content, self.data)
        else:
            result = self.callbacks.handle_event(event_type, content, self.state, self.data)
        kind = type(result)
        same = kind is KeepState or (kind is NextState and result.state == self.state)
        if same and not result.actions:  # the commonest results, handled here
            if result.data is not KEEP:
                self.data = result.data
            return None
        if kind is CoroutineType:  # an async def callback
            return self.finish(result, event_type, content)
        old = self.apply(result, event_type, content, False)
        return None if old is _NO_ENTER else self.enter(old)

    async def finish(self, pending: Any, event_type: Any, content: Any) -> None:
        old = self.apply(await pending, event_type, content, False)
        if old is not _NO_ENTER:
            entering = self.enter(old)
            if entering is not None:
                await entering

    def state_function(self, event_type: Any, content: Any) -> Any:
        """The current state's method (looked up once per state)."""
        state = self.state
        if type(state) is not str or state in _RESERVED or state.startswith("_"):
            self.fail(
                ValueError(
                    f"{self.cls.__qualname__}: state {state!r} cannot name a state function "
                    f"(it is not a plain name, or it is GenStatem's own {state!r}); use "
                    "handle_event_function for such states"
                )
            )
        function = getattr(self.callbacks, state, None)
        if function is None:
            self.fail(
                AttributeError(
                    f"{self.cls.__qualname__} has no state function {state!r} for the event "
                    f"{(event_type, content)!r}"
                )
            )
        self.function = function
        return function

    def fail(self, error: Exception) -> NoReturn:
        raise _Halt(Stop(error, self))

    def bad(self, event_type: Any, content: Any, value: Any, expected: str) -> NoReturn:
        """Stop: the callback for this event returned (or listed) `value`; the reason names
        the callback, the state, the event and the value."""
        by_state = self.state if self.by_state else "handle_event"
        name = "init" if event_type is _INIT else by_state
        self.fail(
            BadReturn(
                f"{self.cls.__qualname__}.{name}",
                value,
                f"{expected} (in state {self.state!r}, for the event {(event_type, content)!r})",
            )
        )

    # -- results --------------------------------------------------------------------------

    def apply(self, result: Any, event_type: Any, content: Any, enter: bool) -> Any:
        """Carry out a callback's result; the old state when an enter call is due now."""
        kind = type(result)
        if kind is NextState:
            new_state, data, actions = result.state, result.data, result.actions
        elif kind is KeepState or kind is RepeatState:
            new_state, data, actions = self.state, result.data, result.actions
        elif kind is Stop:
            if result.state is not NO_STATE:
                self.data = result.state
            raise _Halt(Stop(result.reason, self))
        elif kind is StopAndReply:
            for reply in _listed(result.replies):
                if type(reply) is not ReplyTo:
                    self.bad(event_type, content, reply, "ReplyTo(...) in the replies")
                GenServer.reply(reply.from_, reply.value)
            if result.data is not KEEP:
                self.data = result.data
            raise _Halt(Stop(result.reason, self))
        else:
            self.bad(event_type, content, result, _RESULTS)
        if data is not KEEP:
            self.data = data
        changed = new_state != self.state
        if enter and changed:
            self.bad(event_type, content, result, "an enter call keeps the state")
        if not changed and not actions:  # the common case: nothing more to do
            return self.state if kind is RepeatState and self.cls.state_enter else _NO_ENTER
        postpone = False
        inserted: list[tuple[Any, Any]] = []
        if changed:
            self.cancel("state")
        for action in _listed(actions):
            atype = type(action)
            if atype is ReplyTo:
                to = action.from_
                if not (type(to) is tuple and len(to) == 2 and type(to[0]) is Pid):
                    self.bad(
                        event_type,
                        content,
                        action,
                        "ReplyTo(from_, value) with the from_ of a call event",
                    )
                GenServer.reply(to, action.value)
            elif atype is Postpone and not enter:
                postpone = event_type is not _INIT  # (nothing to postpone at the start)
            elif atype is NextEvent and not enter:
                inserted.append((action.type, action.content))
            elif atype is StateTimeout:
                self.arm("state", "state_timeout", action, event_type, content)
            elif atype is GenericTimeout:
                key = ("generic", action.name)
                self.arm(key, ("timeout", action.name), action, event_type, content)
            elif atype is EventTimeout:
                self.arm("event", "timeout", action, event_type, content)
            elif atype is not Hibernate:
                why = "in an enter call" if atype in (Postpone, NextEvent) else "not an action"
                self.bad(event_type, content, action, f"an action ({why})")
        if postpone:
            self.postponed.append((event_type, content))
        first = inserted
        if changed:
            old, self.state, self.function = self.state, new_state, None
            first += self.postponed
            self.postponed = []
            if first:
                self.queue.extendleft(reversed(first))
            return old if self.cls.state_enter else _NO_ENTER
        if first:
            self.queue.extendleft(reversed(first))
        return self.state if kind is RepeatState and self.cls.state_enter else _NO_ENTER

    def enter(self, old_state: Any) -> Coroutine[Any, Any, None] | None:
        """The enter call of the state just entered (a coroutine when it is async)."""
        if self.by_state:
            function = self.function or self.state_function("enter", old_state)
            result = function("enter", old_state, self.data)
        else:
            result = self.callbacks.handle_event("enter", old_state, self.state, self.data)
        if type(result) is CoroutineType:
            return self.entered(result, old_state)
        self.apply(result, "enter", old_state, True)
        return None

    async def entered(self, pending: Any, old_state: Any) -> None:
        self.apply(await pending, "enter", old_state, True)

    # -- timers ---------------------------------------------------------------------------

    def arm(self, key: Any, timeout_type: Any, action: Any, event_type: Any, content: Any) -> None:
        """Set (or, with math.inf, cancel) a timeout; a zero one waits in `t0q` until the
        queue is empty, where a state change or a new setting can still cancel it."""
        self.cancel(key)
        seconds, event = action.seconds, (timeout_type, action.msg)
        if seconds == math.inf:
            return
        if type(seconds) not in (int, float) or not 0 <= seconds < math.inf:
            self.bad(event_type, content, action, "a timeout of seconds >= 0 or math.inf")
        if seconds == 0:
            self.timers[key] = (None, None, event)  # type: ignore[assignment]
            self.t0q.append(key)
            return
        token = otp.make_ref()
        tref = otp.send_after(seconds, current().pid, (TIMER, token))
        self.timers[key] = (token, tref, event)

    def cancel(self, key: Any) -> None:
        timer = self.timers.pop(key, None)
        if timer is None:
            return
        if timer[1] is not None:
            otp.cancel_timer(timer[1])
        else:
            self.t0q.remove(key)

    def fired(self, token: Ref) -> tuple[Any, Any] | None:
        """The event of the timer `token` stands for, if it is still armed."""
        for key, (armed, _, event) in self.timers.items():
            if armed is token:
                del self.timers[key]
                return event  # type: ignore[no-any-return]
        return None


_NO_ENTER: Final[Any] = object()
_INIT: Final[Any] = _Marker("<init>")  # the "event" init's actions come with


def _listed(actions: Any) -> Iterable[Any]:
    if isinstance(actions, list | tuple):
        return actions
    return (actions,)


# -- the GenServer that runs a machine ----------------------------------------------------


class _StatemServer(GenServer[_Machine]):
    """The GenServer every state machine runs (composition, as the supervisors do)."""

    async def init(self, arg: tuple[type[GenStatem], Any]) -> Any:
        cls, user_arg = arg
        current().behaviour = cls
        callbacks = cls()
        result = callbacks.init(user_arg)
        if type(result) is CoroutineType:  # an async def callback
            result = await result
        if result is IGNORE or type(result) is Stop:
            return result
        if not (isinstance(result, tuple) and len(result) in (2, 3)):
            raise BadReturn(
                f"{cls.__qualname__}.init",
                result,
                "(state, data), (state, data, actions), Stop(reason) or otp.IGNORE",
            )
        machine = _Machine(cls, callbacks, result[0], result[1])
        actions = result[2] if len(result) == 3 else ()
        # started: init's actions, the first enter call and the events they insert run
        # once the starter has its answer, as gen_statem does after init_ack
        return Init(machine, continue_=(_INIT, actions))

    async def handle_continue(self, continue_: Any, machine: _Machine) -> Any:
        """The start's rest (init's actions and the first enter call), or what a plain
        machine's callback left to await."""
        try:
            if type(continue_) is tuple and continue_[0] is _INIT:
                machine.apply(KeepState(KEEP, continue_[1]), _INIT, None, False)
                pending = machine.enter(machine.state) if machine.cls.state_enter else None
            else:
                pending = continue_
            if pending is None:
                pending = machine.step()
            while pending is not None:
                await pending
                pending = machine.step()
        except _Halt as halt:
            return halt.result
        return machine.noreply

    async def handle_call(self, request: Any, from_: Any, machine: _Machine) -> Any:
        return await machine.handle(("call", from_), request)

    async def handle_cast(self, msg: Any, machine: _Machine) -> Any:
        return await machine.handle("cast", msg)

    async def handle_info(self, msg: Any, machine: _Machine) -> Any:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == TIMER:
            event = machine.fired(msg[1])
            if event is None:  # cancelled or re-armed meanwhile
                return NoReply(machine)
            return await machine.handle(*event)
        return await machine.handle("info", msg)

    async def terminate(self, reason: Any, machine: _Machine) -> None:
        result = machine.callbacks.terminate(reason, machine.state, machine.data)
        if inspect.isawaitable(result):
            await result

    async def code_change(self, old_vsn: Any, machine: _Machine, extra: Any) -> _Machine:
        """Convert with the user's code_change and switch to the upgraded class: up, the
        new class converts; down (`("down", vsn)`), the running one does, then switches."""
        target = otp.code.target_class(machine.cls)
        down = type(old_vsn) is tuple and len(old_vsn) == 2 and old_vsn[0] == "down"
        runs = machine.callbacks if down else target()
        result = runs.code_change(old_vsn, machine.state, machine.data, extra)
        if type(result) is CoroutineType:  # an async def callback
            result = await result
        if not (isinstance(result, tuple) and len(result) == 2):
            raise BadReturn(f"{type(runs).__qualname__}.code_change", result, "(state, data)")
        current().behaviour = target
        return machine.moved(target, runs if not down else target(), result[0], result[1])

    def sys_get_state(self, machine: _Machine) -> tuple[Any, Any]:
        return machine.state, machine.data

    def sys_replace_state(self, machine: _Machine, fn: Any) -> tuple[_Machine, Any]:
        state, data = fn((machine.state, machine.data))
        machine.state, machine.data, machine.function = state, data, None
        return machine, (state, data)

    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        machine = status.get("state")
        if not isinstance(machine, _Machine):
            return status
        return machine.callbacks.format_status({**status, "state": (machine.state, machine.data)})


class _PlainStatemServer(_StatemServer):
    """The server of a machine whose callbacks are all plain `def` (most): it handles each
    event without a coroutine (GenServer's fast path)."""

    def handle_call(self, request: Any, from_: Any, machine: _Machine) -> Any:
        return machine.handle_plain(("call", from_), request)

    def handle_cast(self, msg: Any, machine: _Machine) -> Any:
        return machine.handle_plain("cast", msg)

    def handle_info(self, msg: Any, machine: _Machine) -> Any:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == TIMER:
            event = machine.fired(msg[1])
            return machine.noreply if event is None else machine.handle_plain(*event)
        return machine.handle_plain("info", msg)
