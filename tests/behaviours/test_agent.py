"""Agent: state behind get / update / get_and_update / cast (Elixir's Agent)."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import Agent, Supervisor
from otp.testing import assert_receive


async def test_get_update_get_and_update_and_cast(node: object) -> None:
    agent = await Agent.start_link(lambda: 0, name="counter")
    await Agent.update("counter", lambda n: n + 1)
    assert await Agent.get(agent, lambda n: n) == 1
    assert await Agent.get_and_update(agent, lambda n: (n, n * 10)) == 1
    Agent.cast(agent, lambda n: n - 1)
    assert await Agent.get(agent, lambda n: n) == 9  # the cast came first: it was sent first
    otp.unlink(agent)
    await Agent.stop(agent)
    assert not otp.is_alive(agent)


async def test_functions_may_be_async(node: object) -> None:
    async def double(n: int) -> int:
        return n * 2

    agent = await Agent.start(lambda: 21)
    await Agent.update(agent, double)
    assert await Agent.get(agent, lambda n: n) == 42
    await Agent.stop(agent)


async def test_a_failing_start_or_function_is_an_error_where_it_belongs(node: object) -> None:
    with pytest.raises(otp.StartError) as start:
        await Agent.start(lambda: 1 / 0)
    assert isinstance(start.value.reason, ZeroDivisionError)
    agent = await Agent.start(dict)
    ref = otp.monitor(agent)
    with pytest.raises(otp.CallError) as call:
        await Agent.get(agent, lambda state: state["missing"])
    assert isinstance(call.value.reason, KeyError)
    await assert_receive(otp.Down(ref, agent, call.value.reason))
    with pytest.raises(TypeError, match=r"Agent\.update\(\) takes a function of the state"):
        await Agent.update(agent, 42)  # type: ignore[arg-type]


async def test_get_and_update_must_return_a_reply_and_a_state(node: object) -> None:
    agent = await Agent.start(lambda: 0)
    with pytest.raises(otp.CallError, match=r"\(reply, new_state\)"):
        await Agent.get_and_update(agent, lambda n: n + 1)


async def test_an_agent_runs_under_a_supervisor(node: object) -> None:
    sup: Any = await Supervisor.start_link([Agent.child_spec(list, name="bag")])
    await Agent.update("bag", lambda items: [*items, "a"])
    (child,) = await Supervisor.which_children(sup)
    assert child.id is Agent and child.pid == otp.whereis("bag")
    ref = otp.monitor(child.pid)  # type: ignore[arg-type]
    otp.exit(child.pid, "die")  # type: ignore[arg-type]
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)
    await Supervisor.which_children(sup)  # (it has handled the exit: the agent restarted)
    assert await Agent.get("bag", lambda items: items) == []  # restarted from init
    otp.unlink(sup)
    await Agent.stop(sup)
