"""Speed of otp.dist.etf: encode and decode ops/s of typical distribution terms.

    python bench/etf.py [--rounds N]

Best of N rounds (the machine may be busy: the best round is the least disturbed one).
The "$gen_call message" is `{'$gen_call', {Pid, Ref}, {get_value, <<"some_binary_key_xyz">>}}`
from a node `a@vm`: 97 bytes, the message of design/distribution.md's measurements.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otp import Pid, Ref
from otp.dist import Atom, ImproperList, decode, decode_from, encode

ERL_PID = Pid("a@vm", 91, 0, 1700000001)
PY_PID = Pid("py@vm", 42, 0, 1700000002)
REF = Ref("a@vm", (147064, 3543662594, 3103485137), 1700000001)

GEN_CALL = (Atom("$gen_call"), (ERL_PID, REF), (Atom("get_value"), b"some_binary_key_xyz"))
GEN_CALL_ALIAS = (
    Atom("$gen_call"),
    (ERL_PID, ImproperList([Atom("alias")], REF)),
    (Atom("get_value"), b"some_binary_key_xyz"),
)
SEND_SENDER = (22, ERL_PID, PY_PID)
BINARY_1K = bytes(range(256)) * 4
INTS_100 = list(range(100))
NESTED_MAP = {
    Atom("user"): {Atom("id"): 42, Atom("name"): b"Ada", Atom("roles"): [Atom("admin")]},
    Atom("meta"): {Atom("created"): 1700000000, Atom("tags"): {b"a": 1, b"b": 2}},
    Atom("ok"): True,
}

CASES: list[tuple[str, Any]] = [
    ("$gen_call message", GEN_CALL),
    ("$gen_call, [alias|Ref] tag", GEN_CALL_ALIAS),
    ("SEND_SENDER control", SEND_SENDER),
    ("1 KiB binary", BINARY_1K),
    ("list of 100 ints", INTS_100),
    ("nested map", NESTED_MAP),
]


def best_rate(fn: Any, rounds: int) -> float:
    """Calls per second in the best of `rounds` short rounds (of about 20 ms each: short
    rounds find the moments the shared machine leaves us alone)."""
    timer = timeit.Timer(fn)
    number = max(1, int(0.02 / (timer.timeit(100) / 100)))
    return number / min(timer.repeat(repeat=rounds, number=number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    print(f"Python {sys.version.split()[0]}, best of {rounds} rounds (ops/s)")
    print(f"{'term':32} {'bytes':>6} {'encode':>12} {'decode':>12}")
    for name, term in CASES:
        data = encode(term)
        assert decode(data) == term
        enc = best_rate(lambda term=term: encode(term), rounds)
        dec = best_rate(lambda data=data: decode(data), rounds)
        print(f"{name:32} {len(data):>6} {enc:>12,.0f} {dec:>12,.0f}")
    frame = b"p" + encode(SEND_SENDER) + encode(GEN_CALL)

    def decode_frame() -> None:
        view = memoryview(frame)
        _, at = decode_from(view, 1)
        decode_from(view, at)

    enc = best_rate(lambda: b"p" + encode(SEND_SENDER) + encode(GEN_CALL), rounds)
    dec = best_rate(decode_frame, rounds)
    print(f"{'full frame (control + message)':32} {len(frame):>6} {enc:>12,.0f} {dec:>12,.0f}")


if __name__ == "__main__":
    main()
