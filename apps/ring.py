"""The kernel demo: a ring of 10,000 linked processes passes a token, then one crashes.

The crash travels the ring through the links; a process that traps exits watches it all
and reports what it saw. Run it with `make demo` or `python -m apps.ring [N] [ROUNDS]`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

import otp


async def ring_member(observer: otp.Pid) -> None:
    """Wait for the next member's pid, then forward tokens; crash on the poisoned one."""
    _, successor = await otp.receive(lambda m: isinstance(m, tuple) and m[0] == "next")
    otp.link(successor)
    while True:
        token = await otp.receive()
        match token:
            case ("token", hops_left) if hops_left > 0:
                otp.send(successor, ("token", hops_left - 1))
            case ("token", _):
                otp.send(observer, ("lap_done", otp.self()))
            case "poison":
                raise RuntimeError(f"member {otp.self()} swallowed the poison")


async def observer(size: int, rounds: int) -> dict[str, object]:
    otp.process_flag("trap_exit", True)
    me = otp.self()

    started = time.perf_counter()
    members = [otp.spawn(ring_member, me) for _ in range(size)]
    for member, successor in zip(members, members[1:] + members[:1], strict=True):
        otp.send(member, ("next", successor))
    otp.link(members[0])
    refs = {otp.monitor(pid) for pid in members}
    built = time.perf_counter() - started
    print(f"built a ring of {size:,} linked processes in {built * 1000:.0f} ms")

    hops = size * rounds
    started = time.perf_counter()
    otp.send(members[0], ("token", hops - 1))
    await otp.receive(lambda m: isinstance(m, tuple) and m[0] == "lap_done", timeout=60)
    passed = time.perf_counter() - started
    print(
        f"passed the token {hops:,} hops ({rounds} laps) in {passed * 1000:.0f} ms: "
        f"{hops / passed:,.0f} messages/s"
    )

    victim = members[size // 2]
    print(f"poisoning {victim} ...")
    started = time.perf_counter()
    otp.send(victim, "poison")
    exit_msg = await otp.receive(lambda m: isinstance(m, otp.Exit), timeout=10)
    reasons: Counter[str] = Counter()
    while refs:
        down = await otp.receive(lambda m: isinstance(m, otp.Down), timeout=10)
        refs.discard(down.ref)
        reasons[repr(down.reason)] += 1
    spread = time.perf_counter() - started
    print(f"the observer trapped {exit_msg!r}")
    print(f"all {size:,} members went down in {spread * 1000:.1f} ms, with these reasons:")
    for reason, count in reasons.items():
        print(f"  {count:>6,} x {reason}")
    print(f"processes still alive: {len(otp.processes())} (the observer)")
    return {"size": size, "reasons": dict(reasons), "survivors": len(otp.processes())}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    size = int(argv[0]) if argv else 10_000
    rounds = int(argv[1]) if len(argv) > 1 else 10
    summary = otp.run(observer, size, rounds)
    return 0 if summary["survivors"] == 1 and len(summary["reasons"]) == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
