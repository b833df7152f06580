"""GenServer's loop against gen_server's rules, on random seeded runs (see gen_server_model).

`OTP_MODEL_SEEDS=2000 pytest tests/behaviours/test_gen_server_model.py` runs a longer search.
"""

from __future__ import annotations

import os

import pytest

import otp

from .gen_server_model import run_batch

SEEDS = int(os.environ.get("OTP_MODEL_SEEDS", "100"))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_gen_server_loop_keeps_the_rules(loop: str) -> None:
    failures: list[tuple[int, list[str]]] = []
    for start in range(0, SEEDS, 50):
        seeds = list(range(start, min(SEEDS, start + 50)))
        otp.run(run_batch, seeds, failures, loop=loop)  # type: ignore[arg-type]
    details = "\n".join(f"seed {seed}:\n  " + "\n  ".join(found[:8]) for seed, found in failures)
    assert failures == [], details
