"""Bounded mailboxes: `max_mailbox` with the policies drop_newest, drop_oldest and exit.

Every drop is counted; signals, system messages and replies are never dropped; a caller of a
full server fails at once. Each test synchronises on messages: the receiver says "ready" in
the same step as it starts to wait, so what it holds is known exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otp
from behaviours import GenServer, NoReply, Reply, Supervisor
from otp import _mailbox
from otp.reports import MailboxOverflowReport
from otp.testing import assert_receive, capture_reports, start_supervised


async def hold(parent: otp.Pid) -> None:
    """Queue everything until "go", then send back the whole mailbox, in order."""
    otp.send(parent, "ready")
    await otp.receive(lambda m: m == "go")
    held = []
    while True:
        try:
            held.append(await otp.receive(timeout=0))
        except TimeoutError:
            break
    otp.send(parent, ("held", held))


async def held_by(pid: otp.Pid) -> list[Any]:
    otp.send(pid, "go")
    _, held = await assert_receive(lambda m: type(m) is tuple and m[0] == "held")
    return list(held)


def info(pid: otp.Pid) -> otp.ProcessInfo:
    found = otp.process_info(pid)
    assert found is not None
    return found


async def test_drop_newest_keeps_the_first_messages_and_counts_the_rest(node: object) -> None:
    pid = otp.spawn_opt(hold, otp.self(), max_mailbox=3)
    await assert_receive("ready")
    for i in range(10):
        otp.send(pid, i)
    assert info(pid).message_queue_len == 3
    assert (info(pid).max_mailbox, info(pid).overload, info(pid).dropped) == (3, "drop_newest", 7)
    assert await held_by(pid) == [0, 1, 2]


async def test_drop_oldest_keeps_the_last_messages(node: object) -> None:
    pid = otp.spawn_opt(hold, otp.self(), max_mailbox=3, overload="drop_oldest")
    await assert_receive("ready")
    for i in range(10):
        otp.send(pid, i)
    assert info(pid).dropped == 7
    assert await held_by(pid) == [7, 8, 9]


async def test_exit_ends_the_process_with_mailbox_full_even_when_it_traps_exits(
    node: object,
) -> None:
    async def trapping(parent: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        await hold(parent)

    pid, ref = otp.spawn_opt(trapping, otp.self(), max_mailbox=2, overload="exit", monitor=True)
    await assert_receive("ready")
    for i in range(3):
        otp.send(pid, i)
    down = await assert_receive(lambda m: type(m) is otp.Down and m.ref == ref)
    assert down.reason == ("mailbox_full", 2)


async def test_the_default_is_unbounded(node: object) -> None:
    pid = otp.spawn(hold, otp.self())
    await assert_receive("ready")
    for i in range(5000):
        otp.send(pid, i)
    assert (info(pid).max_mailbox, info(pid).overload, info(pid).dropped) == (None, None, 0)
    assert await held_by(pid) == list(range(5000))


async def test_signals_system_messages_and_replies_are_never_dropped(node: object) -> None:
    async def trapping(parent: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        await hold(parent)

    async def link_then_die(target: otp.Pid) -> None:
        otp.link(target)
        otp.exit("linked_died")

    pid = otp.spawn_opt(trapping, otp.self(), max_mailbox=1, overload="drop_oldest")
    await assert_receive("ready")
    otp.send(pid, "user")  # full from here on
    _, ref = otp.spawn_monitor(link_then_die, pid)
    down = await assert_receive(lambda m: type(m) is otp.Down and m.ref == ref)
    otp.send(pid, down)
    otp.send(pid, (("alias", ref), "a reply"))
    otp.send(pid, ("system", (otp.self(), "tag"), "get_state"))
    otp.send(pid, "late user")  # drops the oldest user message, never a signal
    assert info(pid).dropped == 1
    held = await held_by(pid)
    assert held == [
        otp.Exit(down.pid, "linked_died"),
        down,
        (("alias", ref), "a reply"),
        ("system", (otp.self(), "tag"), "get_state"),
        "late user",
    ]


class Blocking(GenServer[list[Any]]):
    """A server that blocks in handle_cast("block") until it receives "unblock"."""

    def init(self, parent: otp.Pid) -> list[Any]:
        self.parent = parent
        return []

    async def handle_cast(self, msg: Any, state: list[Any]) -> NoReply[list[Any]]:
        if msg == "block":
            otp.send(self.parent, "blocked")
            await otp.receive(lambda m: m == "unblock")
        else:
            state.append(msg)
        return NoReply(state)

    def handle_call(self, request: Any, from_: Any, state: list[Any]) -> Reply[list[Any]]:
        return Reply(list(state), state)


async def start_blocked(max_mailbox: int, overload: otp.Overload = "drop_newest") -> otp.Pid:
    pid = await start_supervised(
        Blocking.child_spec(otp.self(), max_mailbox=max_mailbox, overload=overload)
    )
    GenServer.cast(pid, "block")
    await assert_receive("blocked")
    return pid


async def test_a_caller_of_a_full_server_fails_at_once(node: object) -> None:
    pid = await start_blocked(2)
    GenServer.cast(pid, 1)
    GenServer.cast(pid, 2)
    with pytest.raises(otp.CallError) as failed:
        await GenServer.call(pid, "state", timeout=math.inf)  # no timeout: only at once ends it
    assert failed.value.reason == ("mailbox_full", 2)
    me = info(otp.self())
    assert pid not in me.monitors  # the call's monitor ended with it
    assert "the server's mailbox was full, at its max_mailbox of 2" in str(failed.value)
    otp.send(pid, "unblock")
    assert await otp.sys.get_state(pid) == [1, 2]  # (a system message is never dropped)


async def test_a_request_dropped_as_the_oldest_fails_its_caller(node: object) -> None:
    pid = await start_blocked(2, "drop_oldest")

    async def caller(parent: otp.Pid) -> None:
        otp.send(parent, "calling")  # the request is queued before the parent runs again
        try:
            await GenServer.call(pid, "state", timeout=math.inf)
        except otp.CallError as e:
            otp.send(parent, ("failed", e.reason))

    calling = otp.spawn(caller, otp.self())
    await assert_receive("calling")
    assert info(pid).message_queue_len == 1
    GenServer.cast(pid, "a")
    GenServer.cast(pid, "b")  # full: the request, the oldest, goes
    assert await assert_receive(lambda m: type(m) is tuple and m[0] == "failed") == (
        "failed",
        ("mailbox_full", 2),
    )
    assert calling not in info(pid).monitored_by  # the call's monitor ended with it
    otp.send(pid, "unblock")
    assert await otp.sys.get_state(pid) == ["a", "b"]


async def test_system_messages_reach_a_full_server(node: object) -> None:
    pid = await start_blocked(1)
    GenServer.cast(pid, "kept")
    GenServer.cast(pid, "dropped")
    state = otp.spawn_monitor(_get_state, otp.self(), pid)
    otp.send(pid, "unblock")
    assert await assert_receive(lambda m: type(m) is tuple and m[0] == "state") == (
        "state",
        ["kept"],
    )
    await assert_receive(lambda m: type(m) is otp.Down and m.ref == state[1])


async def _get_state(parent: otp.Pid, pid: otp.Pid) -> None:
    otp.send(parent, ("state", await otp.sys.get_state(pid)))


class Overflowing(GenServer[None]):
    max_mailbox = 2
    overload = "exit"

    def init(self, arg: Any) -> None:
        return None

    async def handle_cast(self, msg: Any, state: None) -> NoReply[None]:
        await otp.receive(lambda m: m == "never")
        return NoReply(state)


async def test_a_server_that_exits_on_a_full_mailbox_is_restarted(node: object) -> None:
    otp.process_flag("trap_exit", True)
    sup = await Supervisor.start_link([Overflowing], strategy="one_for_one")
    assert sup is not None
    [child] = await Supervisor.which_children(sup)
    first = child.pid
    assert type(first) is otp.Pid
    ref = otp.monitor(first)
    with capture_reports() as reports:
        for i in range(4):  # one taken, two queued, the fourth finds it full
            GenServer.cast(first, i)
        down = await assert_receive(lambda m: type(m) is otp.Down and m.ref == ref)
    assert down.reason == ("mailbox_full", 2)
    [child] = await Supervisor.which_children(sup)
    second = child.pid
    assert type(second) is otp.Pid and second != first and otp.is_alive(second)
    assert any(type(r).__name__ == "SupervisorReport" and r.reason == down.reason for r in reports)
    otp.exit(sup, otp.SHUTDOWN)
    await assert_receive(otp.Exit(sup, otp.SHUTDOWN))


async def test_start_options_override_the_class_attributes(node: object) -> None:
    pid = await Overflowing.start(None, max_mailbox=5, overload="drop_oldest")
    assert pid is not None
    assert (info(pid).max_mailbox, info(pid).overload) == (5, "drop_oldest")
    await GenServer.stop(pid)


async def test_overflow_is_reported_on_the_first_drop_then_at_most_once_a_second(
    node: object,
) -> None:
    pid = otp.spawn_opt(hold, otp.self(), max_mailbox=1)
    otp.register("bounded", pid)
    await assert_receive("ready")
    with capture_reports() as reports:
        for i in range(101):
            otp.send(pid, i)
    overflows = [r for r in reports if type(r) is MailboxOverflowReport]
    assert overflows[0].dropped == 1 and overflows[0].since_last == 1
    assert overflows[0].registered_name == "bounded"
    assert (overflows[0].max_mailbox, overflows[0].policy) == (1, "drop_newest")
    assert len(overflows) < 100  # not one per drop
    assert sum(r.since_last for r in overflows) <= info(pid).dropped == 100
    await held_by(pid)


class Counter(GenServer[int]):
    def init(self, arg: Any) -> int:
        return 0

    def handle_cast(self, msg: Any, count: int) -> NoReply[int]:
        return NoReply(count + 1)

    def handle_call(self, request: Any, from_: Any, count: int) -> Reply[int]:
        return Reply(count, count)


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_every_drop_is_counted_under_a_live_consumer(
    node: object, policy: otp.Overload
) -> None:
    pid = await start_supervised(Counter.child_spec(max_mailbox=16, overload=policy))
    sent = 0
    for burst in range(200):
        for _ in range(burst % 40):
            GenServer.cast(pid, sent)
            sent += 1
        await asyncio.sleep(0)  # the server runs between bursts
    refused = 0
    while True:  # a call to a full server fails at once: yield and call again
        try:
            counted = await GenServer.call(pid, "count")
            break
        except otp.CallError as e:
            if e.reason != ("mailbox_full", 16):
                raise
            refused += 1  # (a dropped request counts as a drop)
            await asyncio.sleep(0)
    dropped = info(pid).dropped
    assert dropped > 0
    assert counted + dropped - refused == sent


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_mailbox": 0}, "max_mailbox must be an int >= 1 or None, got 0"),
        ({"max_mailbox": 2.5}, "max_mailbox must be an int >= 1 or None, got 2.5"),
        ({"max_mailbox": 4, "overload": "block"}, "overload must be one of"),
    ],
)
async def test_bad_options_are_refused_and_spawn_nothing(
    node: object, options: dict[str, Any], error: str
) -> None:
    before = len(otp.processes())
    with pytest.raises(ValueError, match=error):
        otp.spawn_opt(hold, otp.self(), **options)
    with pytest.raises(ValueError, match=error):
        await Blocking.start(None, **options)
    assert len(otp.processes()) == before


# -- a model: the mailbox's contents and drop count after any sequence of sends and takes --

KEPT = ("system", ("from", "tag"), "get_state")
Op = tuple[str, int]
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 99)),
        st.tuples(st.just("signal"), st.just(0)),
        st.tuples(st.just("take"), st.just(0)),
    ),
    max_size=60,
)


def model(ops: list[Op], limit: int, policy: str) -> tuple[list[Any], int]:
    box: deque[Any] = deque()
    dropped = 0
    for kind, value in ops:
        if kind == "take":
            if box:
                box.popleft()
            continue
        msg = KEPT if kind == "signal" else value
        if len(box) < limit or msg == KEPT:
            box.append(msg)
        elif policy == "drop_newest":
            dropped += 1
        else:
            oldest = next((i for i, m in enumerate(box) if m != KEPT), None)
            if oldest is not None:
                del box[oldest]
                box.append(msg)
            dropped += 1
    return list(box), dropped


async def apply(ops: list[Op], limit: int, policy: otp.Overload) -> tuple[list[Any], int]:
    async def owner() -> None:
        me = otp.self()
        for kind, value in ops:
            if kind == "take":
                with contextlib.suppress(TimeoutError):
                    await otp.receive(timeout=0)
            else:
                otp.send(me, KEPT if kind == "signal" else value)
        box = otp.gen.current().mbox
        otp.send(parent, (list(box or ()), info(me).dropped))

    parent = otp.self()
    otp.spawn_opt(owner, max_mailbox=limit, overload=policy)
    result: tuple[list[Any], int] = await otp.receive(timeout=5.0)
    return result


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
@given(ops=ops_strategy, limit=st.integers(1, 5))
def test_a_bounded_mailbox_matches_its_model(
    policy: otp.Overload, ops: list[Op], limit: int
) -> None:
    assert otp.run(apply, ops, limit, policy) == model(ops, limit, policy)


async def test_a_drop_of_the_oldest_keeps_a_waiting_receive_in_step(node: object) -> None:
    """The receive's timer fires, then a send drops the oldest message to queue a match:
    the receive still finds the match (the drop moved the point it looks from)."""

    async def waiting(parent: otp.Pid) -> None:
        otp.send(parent, "ready")
        try:
            otp.send(parent, ("got", await otp.receive(lambda m: m == "wanted", timeout=60)))
        except TimeoutError:
            otp.send(parent, ("got", "a timeout"))

    pid = otp.spawn_opt(waiting, otp.self(), max_mailbox=2, overload="drop_oldest")
    otp.send(pid, "a")
    otp.send(pid, "b")
    await assert_receive("ready")  # it waits, having looked at "a" and "b"
    proc = pid._proc
    assert proc is not None
    proc.deadline = 0.0  # its timer fires at its deadline: what comes next is queued
    _mailbox._expire(proc, proc.get_loop())  # unlooked-at
    otp.send(pid, "wanted")  # full: "a" goes
    assert await assert_receive(lambda m: type(m) is tuple and m[0] == "got") == ("got", "wanted")
