"""Corners of the kernel found against Erlang's semantics: an exiting process is not alive,
a broken log handler cannot keep a process from ending, the shutdown reaches the children
of a process that ignores it, and a timer to a pid dies with the process."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

import otp
from otp.testing import assert_receive


async def idle() -> None:
    await otp.receive(lambda m: False)


async def test_a_process_sent_an_exit_is_not_alive_for_its_sender(node: object) -> None:
    """is_process_alive and process_info see every signal the caller sent before."""
    for reason in (otp.KILL, "boom"):
        pid, ref = otp.spawn_monitor(idle)
        otp.exit(pid, reason)
        assert otp.is_alive(pid) is False
        assert otp.process_info(pid) is None
        await assert_receive(lambda m, ref=ref: isinstance(m, otp.Down) and m.ref == ref)


async def test_a_log_handler_that_raises_does_not_keep_a_crash_from_ending(
    node: object, capsys: Any
) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler broke")

    handler = Broken()
    logger = logging.getLogger("otp")
    logger.addHandler(handler)
    try:

        async def body() -> None:
            otp.register("crasher", otp.self())
            raise ValueError("x")

        _, ref = otp.spawn_monitor(body)
        down = await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    finally:
        logger.removeHandler(handler)
    assert isinstance(down.reason, ValueError)
    assert otp.whereis("crasher") is None
    assert "handler broke" in capsys.readouterr().err  # told, not swallowed


def test_the_children_of_a_process_that_ignores_the_shutdown_still_get_it() -> None:
    """api.md: every remaining process gets SHUTDOWN before run returns (then KILL)."""
    seen: list[Any] = []

    async def child(main: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        otp.send(main, "ready")
        seen.append(await otp.receive())

    async def stubborn(main: otp.Pid) -> None:
        otp.process_flag("trap_exit", True)
        otp.spawn(child, main)
        await otp.receive(lambda m: m == "never")

    async def main() -> None:
        otp.spawn(stubborn, otp.self())
        await otp.receive(lambda m: m == "ready")

    otp.run(main, shutdown_timeout=0.1)
    assert len(seen) == 1 and seen[0].reason == otp.SHUTDOWN


class Payload:
    """A message a test can watch die."""


async def test_a_timer_to_a_pid_dies_with_the_process(node: object) -> None:
    """Erlang cancels a timer to a pid when the process exits: its message is let go."""
    pid, ref = otp.spawn_monitor(idle)
    payload = Payload()
    alive = weakref.ref(payload)
    tref = otp.send_after(3600, pid, payload)
    del payload
    otp.exit(pid, otp.KILL)
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    assert otp.cancel_timer(tref) is False
    gc.collect()
    assert alive() is None
