"""A call to a server that waits idle runs its plain `handle_call` in the caller's turn
(`otp._call.run_directly`): as the server, with the same results as a call the server takes
in its own turn."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

import otp
import otp.testing
from behaviours import GenServer, NoReply, Reply, Stop
from otp import _node
from otp.testing import assert_receive, capture_reports

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


class Probe(GenServer[Any]):
    """Answers what it sees of the process it runs in, and does what a request asks."""

    def init(self, arg: Any) -> Any:
        who.set("server")
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        match request:
            case "seen":
                task = asyncio.current_task()
                return Reply((otp.self(), getattr(task, "pid", None), who.get()), state)
            case ("set", value):
                who.set(value)
                return Reply("set", state)
            case ("then_info", new_state):  # a message to itself, before the new state
                otp.send(otp.self(), "info")
                return Reply("ok", new_state)
            case ("then_info_noreply", new_state):
                otp.send(otp.self(), "info")
                GenServer.reply(from_, "early")
                return NoReply(new_state)
            case ("twice", first, second):
                GenServer.reply(from_, first)
                return Reply(second, state)
            case ("stop", reason):
                return Stop(reason, reply="bye")
            case ("raise", exc):
                raise exc
            case ("exit", reason):
                otp.exit(reason)
            case "state":
                return Reply(state, state)
        raise AssertionError(request)

    def handle_info(self, msg: Any, state: Any) -> NoReply[Any]:
        otp.send("tester", ("info", msg, state, who.get()))
        return NoReply(state)


async def start(state: Any = None) -> otp.Pid:
    return await otp.testing.start_supervised(Probe.child_spec(state), restart="temporary")


def waits_idle(pid: otp.Pid) -> bool:
    """True while the server waits in its loop for a call it may take in the caller's turn."""
    proc = pid._proc
    return proc is not None and proc.direct is not None and proc.waiter is not None


async def test_the_callback_runs_as_the_server(node: object) -> None:
    who.set("caller")
    pid = await start()
    assert waits_idle(pid)
    assert await GenServer.call(pid, "seen") == (pid, pid, "server")
    assert asyncio.current_task() is _node.get().procs[otp.self()._id]  # (back to the caller)
    assert who.get() == "caller"


async def test_contextvars_set_in_the_callback_stay_the_server_s(node: object) -> None:
    otp.register("tester", otp.self())
    pid = await start()
    assert await GenServer.call(pid, ("set", "changed")) == "set"
    assert who.get() == "nobody"  # the caller's own context is untouched
    otp.send(pid, "look")
    assert await assert_receive(("info", "look", None, "changed"))


async def test_a_message_the_callback_sends_itself_comes_after_the_call(node: object) -> None:
    otp.register("tester", otp.self())
    pid = await start("old")
    assert await GenServer.call(pid, ("then_info", "new")) == "ok"
    assert await assert_receive(("info", "info", "new", "server"))
    assert await GenServer.call(pid, ("then_info_noreply", "newer")) == "early"
    assert await assert_receive(("info", "info", "newer", "server"))
    assert waits_idle(pid)


async def test_a_reply_sent_from_the_callback_comes_first(node: object) -> None:
    pid = await start()
    assert await GenServer.call(pid, ("twice", 1, 2)) == 1


async def test_stop_with_a_reply_answers_then_stops_the_server(node: object) -> None:
    pid = await start()
    ref = otp.monitor(pid)
    assert await GenServer.call(pid, ("stop", "done")) == "bye"
    down = await assert_receive(otp.Down)
    assert (down.ref, down.reason) == (ref, "done")


@pytest.mark.parametrize("how", ["raise", "exit"])
async def test_a_callback_that_fails_ends_the_server_in_its_own_turn(
    node: object, how: str
) -> None:
    pid = await start("kept")
    ref = otp.monitor(pid)
    failure: Any = ValueError("bad") if how == "raise" else "quit"
    with capture_reports() as reports, pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, (how, failure))
    assert info.value.reason is failure
    down = await assert_receive(otp.Down)
    assert (down.ref, down.reason) == (ref, failure)
    [report] = [r for r in reports if getattr(r, "last_message", None) is not None]
    assert report.last_message == ("$gen_call", report.last_message[1], (how, failure))
    assert report.state == "kept"


async def test_the_call_counts_as_a_message_of_the_server(node: object) -> None:
    pid = await start()
    before = otp.process_info(pid).message_count  # type: ignore[union-attr]
    for _ in range(5):
        await GenServer.call(pid, "state")
    assert otp.process_info(pid).message_count == before + 5  # type: ignore[union-attr]


async def test_a_caller_in_a_loop_still_gives_every_other_process_its_turns(
    node: object,
) -> None:
    turns = [0]

    async def ticker() -> None:
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    tick, ref = otp.spawn_monitor(ticker)
    pid = await start(0)
    await asyncio.sleep(0)
    first = turns[0]
    for _ in range(100):
        await GenServer.call(pid, "state")
    assert turns[0] - first >= 99  # one turn of the loop per call, as when it waited
    otp.exit(tick, otp.KILL)
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def test_a_server_that_is_not_idle_takes_the_call_in_its_own_turn(node: object) -> None:
    otp.register("tester", otp.self())
    pid = await start("s")
    otp.send(pid, "queued")  # handed to the server: it is no longer idle
    assert not waits_idle(pid)
    assert await GenServer.call(pid, "state") == "s"
    assert await assert_receive(("info", "queued", "s", "server"))
    await otp.sys.suspend(pid)
    assert not waits_idle(pid)
    req = otp.gen.send_request(pid, "$gen_call", "state")
    with pytest.raises(TimeoutError):
        await otp.gen.wait_response(req, 0.01)
    await otp.sys.resume(pid)
    assert await otp.gen.wait_response(req, 1.0) == "s"


async def test_a_fault_of_the_behaviour_itself_leaves_the_server_waiting(
    node: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from behaviours import gen_server

    pid = await start("s")

    def broken(self: Any, request: Any, from_: Any) -> Any:
        raise RuntimeError("behaviour bug")

    monkeypatch.setattr(gen_server._Server, "call_directly", broken)
    with pytest.raises(RuntimeError, match="behaviour bug"):
        await GenServer.call(pid, "state")
    assert otp.self()._proc.monitors is None or not otp.self()._proc.monitors  # type: ignore[union-attr]
    monkeypatch.undo()
    assert waits_idle(pid)
    assert await GenServer.call(pid, "state") == "s"
