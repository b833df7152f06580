"""Agent: state behind a process, read and changed by functions sent to it (Elixir's Agent).

    counter = await Agent.start_link(lambda: 0, name="counter")
    await Agent.update(counter, lambda n: n + 1)
    await Agent.get(counter, lambda n: n)                      # -> 1
    await Agent.get_and_update(counter, lambda n: (n, n * 10))  # -> 1; the state is now 10
    Agent.cast(counter, lambda n: n - 1)                       # does not wait

The functions run inside the agent, one at a time, so no two see the same state; a function
that raises crashes the agent (and the caller gets the `CallError`), as in Elixir. Use an
Agent for a piece of shared state; when the state has rules of its own (what may change it,
and how), write a GenServer instead.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from otp import Overload, Pid

from ._child_spec import ChildSpec
from ._results import BadReturn, NoReply, Reply
from .gen_server import GenServer

__all__ = ["Agent"]

S = TypeVar("S")


class Agent(Generic[S]):
    """The Agent API (static methods); `start_link` starts one."""

    @staticmethod
    async def start_link(
        init: Callable[[], Any],
        *,
        name: str | None = None,
        timeout: float = math.inf,
        max_mailbox: int | None = None,
        overload: Overload = "drop_newest",
    ) -> Pid:
        """Start an agent linked to the caller, its state what `init()` returns (run in the
        agent; an exception there fails the start with `otp.StartError`). `max_mailbox` and
        `overload` bound its mailbox (see `otp.spawn_opt`).

        Args:
            init: A function of no arguments (plain or async) that returns the state.
            name: A name to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The most messages its mailbox holds (default None: unbounded).
            overload: What a full mailbox does (default `"drop_newest"`).

        Returns:
            The agent's pid.

        Raises:
            otp.StartError: `init` raised (`.reason`: the exception) or took too long.
            otp.AlreadyStartedError: `name` is taken.
            TypeError: `init` is not callable.
        """
        pid = await _AgentServer.start_link(
            _checked(init, "start_link"),
            name=name,
            timeout=timeout,
            max_mailbox=max_mailbox,
            overload=overload,
        )
        assert pid is not None  # (an agent never ignores its start)
        return pid

    @staticmethod
    async def start(
        init: Callable[[], Any],
        *,
        name: str | None = None,
        timeout: float = math.inf,
        max_mailbox: int | None = None,
        overload: Overload = "drop_newest",
    ) -> Pid:
        """`start_link` without the link.

        Args:
            init: A function of no arguments (plain or async) that returns the state.
            name: A name to register it under (default None).
            timeout: Seconds `init` may take (default `math.inf`).
            max_mailbox: The most messages its mailbox holds (default None: unbounded).
            overload: What a full mailbox does (default `"drop_newest"`).

        Returns:
            The agent's pid.

        Raises:
            otp.StartError: `init` raised or took too long.
            otp.AlreadyStartedError: `name` is taken.
            TypeError: `init` is not callable.
        """
        pid = await _AgentServer.start(
            _checked(init, "start"),
            name=name,
            timeout=timeout,
            max_mailbox=max_mailbox,
            overload=overload,
        )
        assert pid is not None
        return pid

    @staticmethod
    def child_spec(init: Callable[[], Any], **overrides: Any) -> ChildSpec:
        """The spec a supervisor uses to run `Agent.start_link(init)` (`name=` names it).

        Args:
            init: The function that returns the state.
            **overrides: `name=`, or `ChildSpec` fields to replace.

        Returns:
            A `ChildSpec` (id: `Agent`).
        """
        name = overrides.pop("name", None)
        spec = ChildSpec(id=Agent, start=(_start_named, init, name), modules=(Agent,))
        return spec.replace(**overrides) if overrides else spec

    @staticmethod
    async def get(agent: Any, fn: Callable[[Any], Any], timeout: float = 5.0) -> Any:
        """`fn(state)`, computed in the agent; the state stays as it is.

        Args:
            agent: The agent (a Pid or a name).
            fn: A function of the state (plain or async).
            timeout: Seconds to wait (default 5.0).

        Returns:
            What `fn` returned.

        Raises:
            otp.CallError: The agent is not there, or crashed (`fn` raised: the exception
                is the reason); `otp.CallTimeout` after `timeout`.
            TypeError: `fn` is not callable.
        """
        return await GenServer.call(agent, ("get", _checked(fn, "get")), timeout)

    @staticmethod
    async def update(agent: Any, fn: Callable[[Any], Any], timeout: float = 5.0) -> None:
        """Make `fn(state)` the state; returns once it is.

        Args:
            agent: The agent (a Pid or a name).
            fn: A function of the state (plain or async) that returns the new state.
            timeout: Seconds to wait (default 5.0).

        Raises:
            otp.CallError: The agent is not there, or crashed (`fn` raised: the exception
                is the reason); `otp.CallTimeout` after `timeout`.
            TypeError: `fn` is not callable.
        """
        await GenServer.call(agent, ("update", _checked(fn, "update")), timeout)

    @staticmethod
    async def get_and_update(
        agent: Any, fn: Callable[[Any], tuple[Any, Any]], timeout: float = 5.0
    ) -> Any:
        """`fn(state)` returns `(reply, new_state)`: the state becomes `new_state` and
        `reply` is returned.

        Args:
            agent: The agent (a Pid or a name).
            fn: A function of the state (plain or async) returning `(reply, new_state)`.
            timeout: Seconds to wait (default 5.0).

        Returns:
            The `reply`.

        Raises:
            otp.CallError: The agent is not there, or crashed (`fn` raised: the exception
                is the reason; a return that is not a pair crashes it with `BadReturn`);
                `otp.CallTimeout` after `timeout`.
            TypeError: `fn` is not callable.
        """
        return await GenServer.call(
            agent, ("get_and_update", _checked(fn, "get_and_update")), timeout
        )

    @staticmethod
    def cast(agent: Any, fn: Callable[[Any], Any]) -> None:
        """Make `fn(state)` the state, without waiting (never fails, as GenServer.cast).

        Args:
            agent: The agent (a Pid or a name).
            fn: A function of the state that returns the new state.

        Raises:
            TypeError: `fn` is not callable.
        """
        GenServer.cast(agent, ("update", _checked(fn, "cast")))

    @staticmethod
    async def stop(agent: Any, reason: Any = "normal", timeout: float = math.inf) -> None:
        """Stop the agent (as GenServer.stop).

        Args:
            agent: The agent (a Pid or a name).
            reason: The exit reason (default `"normal"`).
            timeout: Seconds to wait (default `math.inf`).

        Raises:
            otp.ExitError: `NOPROC` for no such agent, `TIMEOUT` past `timeout`.
        """
        await GenServer.stop(agent, reason, timeout)


async def _start_named(init: Callable[[], Any], name: str | None) -> Pid:
    return await Agent.start_link(init, name=name)


def _checked(fn: Any, what: str) -> Callable[..., Any]:
    if not callable(fn):
        raise TypeError(f"Agent.{what}() takes a function of the state, got {fn!r}")
    return fn  # type: ignore[no-any-return]


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.iscoroutine(result):  # an async def function, awaited in the agent (a
        result = await result  # Future as the state is a state, not something to wait for)
    return result


class _AgentServer(GenServer[Any]):
    """The GenServer every agent runs."""

    async def init(self, init: Callable[[], Any]) -> Any:
        return await _run(init)

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        kind, fn = request
        if kind == "get":
            return Reply(await _run(fn, state), state)
        if kind == "update":
            return Reply(None, await _run(fn, state))
        result = await _run(fn, state)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise BadReturn("Agent.get_and_update's function", result, "(reply, new_state)")
        return Reply(result[0], result[1])

    async def handle_cast(self, request: Any, state: Any) -> Any:
        _, fn = request
        return NoReply(await _run(fn, state))
