"""Corners of gen_server the other tests do not reach: a call with a long mailbox,
format_status that is async or returns garbage, a copied `from_`, a failed request in a
collection, and Stop with a reply outside a call."""

from __future__ import annotations

import copy
import pickle
import sys
from types import FrameType
from typing import Any

import pytest

import otp
from behaviours import BadReturn, GenServer, NoReply, Reply, ServerReport, Stop
from otp.testing import assert_receive, capture_reports

from .samples import Crashable, Echo, pid_of


async def test_a_call_looks_at_none_of_the_messages_queued_before_it(node: object) -> None:
    """gen_server_SUITE's call_with_huge_message_queue: a long mailbox must not make a call
    slower. Counted, not timed: the call's match sees only what came after its request."""
    pid = pid_of(await Echo.start("s"))
    for n in range(20_000):
        otp.send(otp.self(), ("msg", n))
    looked = 0

    def count(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal looked
        code = frame.f_code
        if event == "call" and code.co_name == "match" and code.co_filename.endswith("_call.py"):
            looked += 1

    sys.setprofile(count)
    try:
        assert await GenServer.call(pid, "state") == "s"
    finally:
        sys.setprofile(None)
    assert looked <= 2  # the reply (and no more than one other message)
    info = otp.process_info(otp.self())
    assert info is not None and info.message_queue_len == 20_000  # all still there, in order
    assert await otp.receive() == ("msg", 0)
    while info.message_queue_len > 1:
        await otp.receive()
        info = otp.process_info(otp.self())
        assert info is not None
    assert await otp.receive() == ("msg", 19_999)
    await GenServer.stop(pid)


Fmt = Crashable


class AsyncFmt(Fmt):
    async def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        return {**status, "state": "hidden"}


class NoneFmt(Fmt):
    def format_status(self, status: dict[str, Any]) -> Any:
        return None


async def test_an_async_format_status_is_awaited(node: object) -> None:
    pid = pid_of(await AsyncFmt.start("secret"))
    assert (await otp.sys.get_status(pid)).state == "hidden"
    await GenServer.stop(pid)


@pytest.mark.parametrize("cls", [AsyncFmt, NoneFmt])
async def test_a_bad_format_status_neither_kills_nor_changes_the_reason(
    node: object, cls: type[Fmt]
) -> None:
    pid = pid_of(await cls.start("secret"))
    with capture_reports() as reports, pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, "crash")
    assert isinstance(info.value.reason, RuntimeError)
    assert any(isinstance(r, ServerReport) for r in reports)


async def test_get_status_survives_a_format_status_that_returns_no_dict(node: object) -> None:
    pid = pid_of(await NoneFmt.start("s"))
    await otp.sys.get_status(pid)
    assert await GenServer.call(pid, "get") == "s"
    await GenServer.stop(pid)


class Parks(GenServer[list[Any]]):
    def init(self, arg: None) -> list[Any]:
        return []

    def handle_call(self, request: Any, from_: Any, state: list[Any]) -> Any:
        if request == "wait":
            return NoReply([*state, from_])
        for waiting in state:
            GenServer.reply(waiting, "released")
        return Reply("ok", [])


async def test_a_reply_to_a_copied_from_arrives(node: object) -> None:
    """A copied pid or ref is the same pid or ref, as in Erlang."""
    pid = pid_of(await Parks.start(None))
    req = GenServer.send_request(pid, "wait")
    await otp.sys.replace_state(pid, copy.deepcopy)  # an equal state
    assert await GenServer.call(pid, "release") == "ok"
    assert await GenServer.wait_response(req, 1.0) == "released"
    await GenServer.stop(pid)


async def test_a_failed_request_in_a_collection_keeps_its_label(node: object) -> None:
    pid = pid_of(await Echo.start(None))
    coll = GenServer.reqids_new()
    coll.add(GenServer.send_request(pid, ("stop", otp.SHUTDOWN)), "lbl")
    with pytest.raises(otp.CallError) as info:
        await GenServer.wait_response(coll, 1.0)
    assert info.value.label == "lbl"  # OTP: {{error, {Reason, Server}}, Label, Collection}
    assert info.value.reason == otp.SHUTDOWN
    assert len(coll) == 0


class StopReplyFromCast(GenServer[None]):
    def init(self, arg: None) -> None:
        return None

    def handle_cast(self, msg: Any, state: None) -> Stop[None]:
        return Stop("x", state, reply="to nobody")


async def test_stop_with_a_reply_from_handle_cast_is_a_bad_return(node: object) -> None:
    started = await StopReplyFromCast.start_monitor(None)
    assert started is not None
    with capture_reports():
        GenServer.cast(started[0], "go")
        down = await assert_receive(otp.Down)
    assert isinstance(down.reason, BadReturn)  # as gen_server's handle_common_reply says


async def test_a_copied_pid_is_the_pid(node: object) -> None:
    me = otp.self()
    assert copy.copy(me) is me and copy.deepcopy(me) is me
    ref = otp.make_ref()
    assert copy.deepcopy((me, ref)) == (me, ref)
    otp.send(copy.deepcopy(me), "to a copy")
    assert await assert_receive("to a copy") == "to a copy"


REMOTE = otp.Pid("elsewhere@host", 1, 0, 1)  # a node we are not connected to


class LinksAway(GenServer[None]):
    def init(self, arg: None) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Any:
        otp.link(REMOTE)  # noconnection: this local server dies with that reason
        return Reply("unreachable", state)


async def test_nodedown_names_the_node_for_a_registered_name(node: object) -> None:
    """A local server that dies of a lost connection: the node named is ours (gen:get_node)."""
    pid_of(await LinksAway.start(None, name="srv"))
    with capture_reports(), pytest.raises(otp.CallError) as info:
        await GenServer.call("srv", "go", 1.0)
    assert info.value.reason == ("nodedown", otp.self().node)


async def test_sys_terminate_with_reason_noconnection(node: object) -> None:
    """It ended as asked: no nodedown for a reason someone chose."""
    pid = pid_of(await LinksAway.start(None))
    with capture_reports():
        await otp.sys.terminate(pid, otp.NOCONNECTION)


class Pickles(GenServer[list[bytes]]):
    def init(self, arg: None) -> list[bytes]:
        return []

    def handle_call(self, request: Any, from_: Any, state: list[bytes]) -> Any:
        if request == "wait":
            return NoReply([*state, pickle.dumps(from_)])  # e.g. a checkpointed state
        for saved in state:
            GenServer.reply(pickle.loads(saved), "released")
        return Reply("ok", [])


async def test_a_reply_to_an_unpickled_from_arrives(node: object) -> None:
    """An unpickled from_ is equal, not identical: its reply is still taken."""
    pid = pid_of(await Pickles.start(None))
    req = GenServer.send_request(pid, "wait")
    assert await GenServer.call(pid, "release") == "ok"
    assert await GenServer.wait_response(req, 1.0) == "released"
    await GenServer.stop(pid)


class SyncReturnsAwaitable(GenServer[str]):
    def init(self, arg: str) -> str:
        return arg

    def handle_call(self, request: Any, from_: Any, state: str) -> Any:
        return Reply(state, state)

    def format_status(self, status: dict[str, Any]) -> Any:  # typed dict | Awaitable[dict]
        return self._hide(status)

    async def _hide(self, status: dict[str, Any]) -> dict[str, Any]:
        return {**status, "state": "hidden"}


async def test_an_awaitable_from_a_plain_format_status_is_awaited(node: object) -> None:
    pid = pid_of(await SyncReturnsAwaitable.start("secret"))
    assert (await otp.sys.get_status(pid)).state == "hidden"
    await GenServer.stop(pid)
