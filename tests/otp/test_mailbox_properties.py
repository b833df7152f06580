"""Property: any interleaving of sends and selective receives delivers each message exactly
once, and in send order among the messages a predicate accepts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otp

PREDICATES: list[Callable[[Any], bool]] = [
    lambda m: type(m) is int,
    lambda m: type(m) is int and m % 2 == 0,
    lambda m: type(m) is int and m % 2 == 1,
    lambda m: type(m) is int and m % 3 == 0,
    lambda m: type(m) is int and m > 10,
]

Op = tuple[str, int]
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 20)),
        st.tuples(st.just("recv"), st.integers(0, len(PREDICATES) - 1)),
        st.tuples(st.just("sender_yield"), st.just(0)),
        st.tuples(st.just("receiver_yield"), st.just(0)),
    ),
    max_size=40,
)


def model(ops: list[Op]) -> tuple[list[Op], list[tuple[int, int]], list[int]]:
    """What a correct mailbox gives: each receive takes the first unconsumed match in send
    order; receives nothing could satisfy are dropped (they would wait forever)."""
    sent = [(i, v) for i, (kind, v) in enumerate(ops) if kind == "send"]
    left = list(sent)
    kept: list[Op] = []
    got: list[tuple[int, int]] = []
    for op in ops:
        if op[0] != "recv":
            kept.append(op)
            continue
        match = PREDICATES[op[1]]
        hit = next((m for m in left if match(m[1])), None)
        if hit is not None:
            left.remove(hit)
            got.append(hit)
            kept.append(op)
    return kept, got, [v for _, v in left]


async def receiver(parent: otp.Pid, steps: list[Op]) -> None:
    got = []
    for kind, arg in steps:
        if kind == "recv":
            got.append(await otp.receive(PREDICATES[arg]))
        else:
            await asyncio.sleep(0)
    await otp.receive(lambda m: m == "end")
    rest = []
    while True:
        try:
            rest.append(await otp.receive(timeout=0))
        except TimeoutError:
            break
    otp.send(parent, (got, rest))


async def run_ops(ops: list[Op]) -> tuple[list[int], list[int]]:
    steps = [op for op in ops if op[0] in ("recv", "receiver_yield")]
    pid = otp.spawn(receiver, otp.self(), steps)
    for kind, arg in ops:
        if kind == "send":
            otp.send(pid, arg)
        elif kind == "sender_yield":
            await asyncio.sleep(0)
    otp.send(pid, "end")
    result: tuple[list[int], list[int]] = await otp.receive(timeout=5.0)
    return result


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@given(ops=ops_strategy)
def test_selective_receive_delivers_each_message_once_and_in_order(
    loop: str, ops: list[Op]
) -> None:
    kept, expected, expected_rest = model(ops)
    got, rest = otp.run(run_ops, kept, loop=loop)  # type: ignore[arg-type]
    assert got == [v for _, v in expected]
    assert rest == expected_rest
