"""Receive timeouts share one timer per process (`_mailbox.arm`): the timer is kept across
receives and calls, moved only when a receive must time out earlier, and dropped with the
process; no receive times out early or late because of it."""

from __future__ import annotations

import asyncio

import pytest

import otp
import otp.testing
from behaviours import GenServer, Reply
from otp import _process


class Echo(GenServer[None]):
    """Its calls wait for their reply: an async handle_call is never run in the caller's
    turn (a plain one to an idle server is, and waits for nothing)."""

    def init(self, arg: None) -> None:
        return None

    async def handle_call(self, request: object, from_: object, state: None) -> Reply[None]:
        return Reply(request, state)


async def test_many_calls_with_a_timeout_keep_one_timer(node: object) -> None:
    pid = await otp.testing.start_supervised(Echo.child_spec(None))
    me = _process.current()
    await GenServer.call(pid, 0)
    timer = me.wake
    assert timer is not None
    for i in range(1, 1000):
        assert await GenServer.call(pid, i) == i
    assert me.wake is timer  # the first call's timer, still armed: no timer per call
    assert me.deadline is None  # no receive waits now


async def test_a_shorter_timeout_gets_its_own_timer(node: object) -> None:
    pid = await otp.testing.start_supervised(Echo.child_spec(None))
    me = _process.current()
    assert await GenServer.call(pid, "now", timeout=60) == "now"
    long_timer = me.wake
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0.01)
    assert long_timer is not None and long_timer[0].cancelled()


async def test_a_longer_receive_outlives_the_timer_of_a_shorter_one(node: object) -> None:
    pid = await otp.testing.start_supervised(Echo.child_spec(None))
    assert await GenServer.call(pid, "first", timeout=0.01) == "first"  # a timer: +10 ms
    assert _process.current().wake is not None
    otp.send_after(0.05, otp.self(), "late")
    # That timer fires while this receive waits: it must set itself again, not expire it.
    assert await otp.receive(timeout=30) == "late"


async def test_a_message_queued_before_the_deadline_beats_it(node: object) -> None:
    async def waiter(parent: otp.Pid) -> None:
        try:
            otp.send(parent, ("got", await otp.receive(lambda m: m == "wanted", timeout=0.05)))
        except TimeoutError:
            otp.send(parent, "timeout")

    pid = otp.spawn(waiter, otp.self())
    await asyncio.sleep(0)
    otp.send(pid, "unwanted")
    assert await otp.receive() == "timeout"


async def test_a_receive_without_timeout_is_not_expired_by_an_old_timer(node: object) -> None:
    pid = await otp.testing.start_supervised(Echo.child_spec(None))
    assert await GenServer.call(pid, "first", timeout=0.01) == "first"
    assert _process.current().wake is not None
    otp.send_after(0.05, otp.self(), "late")
    assert await otp.receive() == "late"  # the 10 ms timer fired meanwhile, into nothing


async def test_a_process_that_ends_drops_its_timer(node: object) -> None:
    timers: list[asyncio.Handle | None] = []

    async def caller(server: otp.Pid) -> None:
        await GenServer.call(server, "x", timeout=600)
        wake = _process.current().wake
        timers.append(None if wake is None else wake[0])

    server = await otp.testing.start_supervised(Echo.child_spec(None))
    pid, ref = otp.spawn_monitor(caller, server)
    down = await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    assert down.reason == otp.NORMAL
    assert timers[0] is not None and timers[0].cancelled()
    assert pid._proc is None
