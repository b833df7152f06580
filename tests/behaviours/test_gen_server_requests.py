"""Asynchronous requests in collections, multi_call/abcast on one node, enter_loop
(otp-cases 93, 107-109)."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Reply, Timeout
from otp.testing import assert_receive, refute_receive

from .samples import Echo, pid_of


async def test_collected_requests_come_back_with_their_labels_in_arrival_order(
    node: object,
) -> None:
    """Case 108."""
    a, b = pid_of(await Echo.start("a")), pid_of(await Echo.start("b"))
    coll = GenServer.reqids_new()
    coll.add(GenServer.send_request(a, ("reply_later", 0.03)), "slow")
    coll.add(GenServer.send_request(b, "state"), "fast")
    assert len(coll) == 2
    assert await GenServer.wait_response(coll) == ("b", "fast")
    assert await GenServer.wait_response(coll) == ("delayed", "slow")
    assert await GenServer.wait_response(coll) == "no_request"
    for pid in (a, b):
        await GenServer.stop(pid)


async def test_a_request_cannot_be_collected_twice(node: object) -> None:
    """Case 108."""
    pid = pid_of(await Echo.start(None))
    req = GenServer.send_request(pid, "state")
    coll = GenServer.reqids_new()
    coll.add(req, 1)
    with pytest.raises(ValueError, match="already in this collection"):
        coll.add(req, 2)
    assert coll.to_list() == [(req, 1)]
    await GenServer.wait_response(coll)
    await GenServer.stop(pid)


async def test_receive_response_drops_what_a_timeout_left_and_wait_response_keeps_it(
    node: object,
) -> None:
    """Case 108."""
    pid = pid_of(await Echo.start(None))
    coll = GenServer.reqids_new()
    coll.add(GenServer.send_request(pid, ("reply_later", 0.05)), "kept")
    with pytest.raises(TimeoutError):
        await GenServer.wait_response(coll, 0)
    assert len(coll) == 1
    with pytest.raises(TimeoutError):
        await GenServer.receive_response(coll, 0)
    assert len(coll) == 0
    single = GenServer.send_request(pid, ("reply_later", 0.05))
    with pytest.raises(TimeoutError):
        await GenServer.receive_response(single, 0)
    assert await GenServer.call(pid, ("reply_later", 0.1)) == "delayed"  # after the others
    await refute_receive(timeout=0)  # the abandoned replies never arrived
    await GenServer.stop(pid)


async def test_check_response_on_a_collection(node: object) -> None:
    """Case 108."""
    pid = pid_of(await Echo.start("s"))
    coll = GenServer.reqids_new()
    coll.add(GenServer.send_request(pid, "state"), "label")
    assert GenServer.check_response("foreign", coll) == "no_reply"
    msg = await otp.receive()
    assert GenServer.check_response(msg, coll) == ("reply", "s", "label")
    assert GenServer.check_response(msg, coll) == "no_request"
    await GenServer.stop(pid)


async def test_a_dead_server_in_a_collection_raises_call_error(node: object) -> None:
    pid = pid_of(await Echo.start(None))
    await GenServer.stop(pid)
    coll = GenServer.reqids_new()
    coll.add(GenServer.send_request(pid, "state"), "gone")
    with pytest.raises(otp.CallError) as info:
        await GenServer.wait_response(coll, 1.0)
    assert info.value.reason == otp.NOPROC


async def test_multi_call_and_abcast_on_one_node(node: object) -> None:
    """Case 109."""
    pid = pid_of(await Echo.start("s", name="everywhere"))
    here = otp.self().node
    assert await GenServer.multi_call("everywhere", "state") == ([(here, "s")], [])
    replies, bad = await GenServer.multi_call(
        "everywhere", "state", nodes=[here, "far@away"], timeout=0.5
    )
    assert replies == [(here, "s")] and bad == ["far@away"]
    assert await GenServer.multi_call("nobody", "x") == ([], [here])
    assert GenServer.abcast("everywhere", ("set", "new"), nodes=[here, "far@away"]) == "abcast"
    assert await GenServer.call(pid, "state") == "new"
    await GenServer.stop(pid)


class Entered(GenServer[Any]):
    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply[Any]:
        return Reply(("entered", state), state)

    def handle_info(self, msg: Any, state: Any) -> NoReply[Any]:
        return NoReply(("timed out",) if msg == otp.TIMEOUT else state)


async def test_enter_loop_turns_a_process_into_a_server(node: object) -> None:
    """Case 93."""

    async def becomes_server(name: str | None) -> None:
        await Entered.enter_loop("mine", name=name)

    anonymous, _ = otp.spawn_monitor(becomes_server, None)
    assert await GenServer.call(anonymous, "x") == ("entered", "mine")
    named, _ = otp.spawn_monitor(becomes_server, "entered")
    otp.register("entered", named)  # registered before it runs, as enter_loop requires
    assert await GenServer.call("entered", "x") == ("entered", "mine")
    assert otp.process_info(named).behaviour is Entered  # type: ignore[union-attr]
    _, wref = otp.spawn_monitor(becomes_server, "not_mine")
    down = await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == wref)
    assert down.reason == "process_not_registered"
    for pid in (anonymous, named):
        await GenServer.stop(pid)


class Ticking(GenServer[list[Any]]):
    def init(self, arg: Any) -> list[Any]:
        return []

    def handle_cast(self, msg: Any, state: list[Any]) -> NoReply[list[Any]]:
        seconds, message = msg
        return NoReply([*state, "armed"], timeout=Timeout(seconds, message))

    def handle_info(self, msg: Any, state: list[Any]) -> NoReply[list[Any]]:
        if msg == "tick":
            otp.send("watcher", "ticked")
        return NoReply([*state, msg])

    def handle_call(self, request: Any, from_: Any, state: list[Any]) -> Reply[list[Any]]:
        return Reply(state, state)


async def test_a_timeout_action_delivers_its_message(node: object) -> None:
    """Case 106: Timeout(t, msg) delivers msg to handle_info unless an event comes first;
    a zero one fires before the messages already queued."""
    pid = pid_of(await Ticking.start())
    GenServer.cast(pid, (0.01, "tick"))
    otp.register("watcher", otp.self())
    await otp.sys.get_status(pid)  # system messages do not cancel it
    await assert_receive("ticked")
    GenServer.cast(pid, (10, "never"))
    otp.send(pid, "an event")  # cancels it
    GenServer.cast(pid, (0, "first"))
    otp.send(pid, "queued")
    assert await GenServer.call(pid, "state") == [
        "armed",
        "tick",
        "armed",
        "an event",
        "armed",
        "first",
        "queued",
    ]
    await GenServer.stop(pid)
