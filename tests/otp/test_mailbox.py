"""send and receive: order, selective receive, timeouts, bad destinations."""

from __future__ import annotations

import asyncio

import pytest

import otp
from otp.testing import assert_receive, refute_receive


async def collect(parent: otp.Pid, n: int, match: object = None) -> None:
    got = [await otp.receive(match) for _ in range(n)]  # type: ignore[arg-type]
    otp.send(parent, ("got", got))


async def test_messages_from_one_sender_arrive_in_order(node: object) -> None:
    for i in range(100):
        otp.send(otp.self(), i)
    assert [await otp.receive() for _ in range(100)] == list(range(100))


async def test_selective_receive_takes_the_first_match_and_keeps_the_rest_in_order(
    node: object,
) -> None:
    for msg in ["a", 1, "b", 2, "c", 3]:
        otp.send(otp.self(), msg)
    assert await otp.receive(lambda m: isinstance(m, int)) == 1
    assert await otp.receive(lambda m: m == 3) == 3
    assert [await otp.receive(timeout=0) for _ in range(4)] == ["a", "b", 2, "c"]


async def test_a_waiting_selective_receive_skips_later_non_matching_messages(
    node: object,
) -> None:
    pid = otp.spawn(collect, otp.self(), 1, lambda m: m == "wanted")
    for i in range(5):
        otp.send(pid, i)
    await asyncio.sleep(0)
    info = otp.process_info(pid)
    assert info is not None and info.status == "waiting" and info.message_queue_len == 5
    otp.send(pid, "wanted")
    assert await assert_receive() == ("got", ["wanted"])


async def test_a_waiting_receive_gets_a_message_sent_later(node: object) -> None:
    pid = otp.spawn(collect, otp.self(), 3)
    await asyncio.sleep(0)
    for msg in ("x", "y", "z"):
        otp.send(pid, msg)
    assert await assert_receive() == ("got", ["x", "y", "z"])


async def test_receive_timeout_raises_timeout_error_and_leaves_the_mailbox_alone(
    node: object,
) -> None:
    otp.send(otp.self(), "other")
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: m == "never", timeout=0.01)
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: m == "never", timeout=0)
    assert await otp.receive(timeout=0) == "other"


async def test_a_message_arriving_before_the_timeout_is_received(node: object) -> None:
    otp.send_after(0.01, otp.self(), "soon")
    assert await otp.receive(timeout=5.0) == "soon"
    await refute_receive()


async def test_a_predicate_that_raises_raises_in_the_receiver_not_the_sender(
    node: object,
) -> None:
    async def picky(parent: otp.Pid) -> None:
        otp.send(parent, "waiting")
        await otp.receive(lambda m: m["key"] == 1)

    pid, ref = otp.spawn_monitor(picky, otp.self())
    await assert_receive("waiting")
    await asyncio.sleep(0)
    otp.send(pid, "not a dict")  # the predicate raises TypeError: the sender carries on
    down = await assert_receive(otp.Down)
    assert down.ref == ref and isinstance(down.reason, TypeError)


async def test_send_to_a_dead_pid_is_dropped(node: object) -> None:
    pid, _ = otp.spawn_monitor(collect, otp.self(), 0)
    await assert_receive(otp.Down)
    otp.send(pid, "into the void")
    assert not otp.is_alive(pid)


async def test_send_to_an_unregistered_name_raises(node: object) -> None:
    with pytest.raises(otp.NotRegisteredError, match="'nobody'") as info:
        otp.send("nobody", "hello")
    assert info.value.name == "nobody"
    with pytest.raises(otp.NotRegisteredError):
        otp.send(("nobody", "nonode@nohost"), "hello")


async def test_send_by_name_and_by_name_at_node(node: object) -> None:
    otp.register("me", otp.self())
    otp.send("me", 1)
    otp.send(("me", "nonode@nohost"), 2)
    otp.send(("me", "elsewhere@host"), 3)  # no connection to that node: dropped
    assert [await otp.receive(timeout=0), await otp.receive(timeout=0)] == [1, 2]
    await refute_receive(timeout=0)


async def test_send_to_something_that_is_not_a_destination_raises_type_error(
    node: object,
) -> None:
    for bad in (42, ("a", 1), None):
        with pytest.raises(TypeError, match="destination"):
            otp.send(bad, "x")


async def test_send_from_outside_a_process_is_delivered(node: object) -> None:
    me = otp.self()
    asyncio.get_running_loop().call_soon(otp.send, me, "from a callback")
    assert await assert_receive() == "from a callback"


async def test_cancelling_a_receive_from_inside_the_process_keeps_the_message(
    node: object,
) -> None:
    # asyncio.timeout cancels the task; a message handed over at that moment is not lost.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await otp.receive()
    otp.send(otp.self(), "after")
    assert await otp.receive(timeout=0) == "after"


async def test_message_count_counts_deliveries(node: object) -> None:
    for i in range(3):
        otp.send(otp.self(), i)
    info = otp.process_info(otp.self())
    assert info is not None and info.message_count == 3 and info.message_queue_len == 3
    for _ in range(3):
        await otp.receive()


async def test_a_message_handed_to_a_waiting_receive_then_cancelled_goes_back_first(
    node: object,
) -> None:
    """The task of a process blocked in receive() is cancelled (asyncio.timeout's way) in the
    same loop step a message is handed to it: the message is not lost, and stays first."""

    async def receiver(parent: otp.Pid) -> None:
        otp.send(parent, "waiting")
        try:
            await otp.receive()
        except asyncio.CancelledError:
            otp.send(parent, ("kept", [await otp.receive(timeout=0) for _ in range(2)]))

    pid = otp.spawn(receiver, otp.self())
    await assert_receive("waiting")
    await asyncio.sleep(0)  # it waits in receive()
    proc = pid._proc
    assert proc is not None and proc.waiter is not None
    otp.send(pid, "handed")  # handed to its wait: the task is scheduled, not yet run
    otp.send(pid, "queued")
    proc.cancel()
    assert await assert_receive(lambda m: m[0] == "kept") == ("kept", ["handed", "queued"])


async def test_a_selective_receive_handed_a_message_then_cancelled_keeps_its_order(
    node: object,
) -> None:
    async def receiver(parent: otp.Pid) -> None:
        otp.send(parent, "waiting")
        try:
            await otp.receive(lambda m: m == "B")
        except asyncio.CancelledError:
            otp.send(parent, ("kept", [await otp.receive(timeout=0) for _ in range(3)]))

    pid = otp.spawn(receiver, otp.self())
    await assert_receive("waiting")
    otp.send(pid, "A")
    await asyncio.sleep(0)  # it has looked at "A" and waits for "B"
    proc = pid._proc
    assert proc is not None and proc.waiter is not None
    otp.send(pid, "B")  # handed: it would have been queued after "A"
    otp.send(pid, "C")
    proc.cancel()
    assert await assert_receive(lambda m: m[0] == "kept") == ("kept", ["A", "B", "C"])


async def test_a_process_can_be_just_receive(node: object) -> None:
    """otp.receive is not an async def (a process blocked in it is one frame shallower), and
    spawn still takes it: a process that takes one message and ends."""
    pid, ref = otp.spawn_monitor(otp.receive)
    otp.send(pid, "one")
    down = await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)
    assert down.reason == otp.NORMAL


async def test_a_receive_its_awaiter_cancelled_loses_no_message(node: object) -> None:
    """asyncio.wait_for cancels what it waits on when it times out (on 3.11, the waiter
    future itself): the next message is queued, not handed to the cancelled wait."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(otp.receive(), 0.01)
    otp.send(otp.self(), "after")
    assert await otp.receive(timeout=0) == "after"


async def test_two_receives_at_once_in_one_process_are_refused(node: object) -> None:
    first = otp.receive()
    with pytest.raises(RuntimeError, match="already waiting for a message"):
        otp.receive()
    otp.send(otp.self(), "one")
    assert await first == "one"
