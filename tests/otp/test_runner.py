"""`otp.run`'s hold on the garbage collector: full collections spaced out as the node grows,
the thresholds it found restored when it stops."""

from __future__ import annotations

import asyncio
import gc

import otp
from otp import _runner

N = 20_000


async def _idle() -> None:
    await otp.receive()


async def test_full_collections_wait_longer_as_the_node_grows(node: object) -> None:
    young, middle, old = gc.get_threshold()
    pids = [otp.spawn(_idle) for _ in range(N)]
    await asyncio.sleep(0)
    gc.collect()
    processes = len(otp.processes())
    wanted = processes * _runner.GC_OBJECTS_PER_PROCESS // (young * middle)
    assert wanted > old  # (else this test would show nothing)
    assert gc.get_threshold() == (young, middle, wanted)
    for pid in pids:
        otp.send(pid, "stop")
    while len(otp.processes()) > 1:
        await asyncio.sleep(0)
    gc.collect()  # a smaller node: back to where it started
    assert gc.get_threshold() == (young, middle, old)


def test_the_collector_is_left_as_it_was_found_when_the_node_stops() -> None:
    async def main() -> None:
        pids = [otp.spawn(_idle) for _ in range(N)]
        await asyncio.sleep(0)
        gc.collect()
        assert gc.get_threshold()[2] > 10
        for pid in pids:
            otp.exit(pid, otp.KILL)

    found = gc.get_threshold()
    callbacks = list(gc.callbacks)
    gc.set_threshold(700, 10, 10)
    try:
        otp.run(main)
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.callbacks == callbacks
    finally:
        gc.set_threshold(*found)
