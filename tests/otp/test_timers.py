"""Timers: send_after, cancel_timer."""

from __future__ import annotations

import math

import pytest

import otp
from otp.testing import assert_receive, refute_receive


async def test_send_after_delivers_the_message_later(node: object) -> None:
    otp.send_after(0.01, otp.self(), "tick")
    await refute_receive(timeout=0)
    assert await assert_receive("tick") == "tick"


async def test_timers_fire_in_order_of_their_deadline(node: object) -> None:
    otp.send_after(0.03, otp.self(), 3)
    otp.send_after(0.01, otp.self(), 1)
    otp.send_after(0.02, otp.self(), 2)
    assert [await assert_receive(), await assert_receive(), await assert_receive()] == [1, 2, 3]


async def test_cancel_timer_before_it_fires_stops_the_message(node: object) -> None:
    tref = otp.send_after(0.01, otp.self(), "tick")
    assert otp.cancel_timer(tref) is True
    assert otp.cancel_timer(tref) is False
    otp.send_after(0.03, otp.self(), "witness")
    assert await assert_receive() == "witness"  # "tick" would have come first


async def test_cancel_timer_after_it_fired_returns_false(node: object) -> None:
    tref = otp.send_after(0, otp.self(), "tick")
    await assert_receive("tick")
    assert otp.cancel_timer(tref) is False


async def test_a_named_destination_is_resolved_when_the_timer_fires(node: object) -> None:
    otp.send_after(0.01, "later", "hello")
    otp.send_after(0.005, "nobody", "dropped")  # nobody registered when it fires: dropped
    otp.register("later", otp.self())
    assert await assert_receive() == "hello"


async def test_a_timer_to_a_dead_pid_is_dropped(node: object) -> None:
    async def quick() -> None:
        pass

    pid, _ = otp.spawn_monitor(quick)
    await assert_receive(otp.Down)
    otp.send_after(0, pid, "lost")
    otp.send_after(0.01, otp.self(), "witness")
    assert await assert_receive() == "witness"


async def test_bad_timer_arguments_raise(node: object) -> None:
    for delay in (-1, math.nan, "1", True):
        with pytest.raises(ValueError, match="delay"):
            otp.send_after(delay, otp.self(), "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="destination"):
        otp.send_after(1, 42, "x")
    with pytest.raises(TypeError, match="TimerRef"):
        otp.cancel_timer("t")  # type: ignore[arg-type]
