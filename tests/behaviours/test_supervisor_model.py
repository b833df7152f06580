"""Supervisor against a model of OTP's semantics, on random seeded cases.

`OTP_MODEL_SEEDS=5000 pytest tests/behaviours/test_supervisor_model.py` runs a longer search.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

import otp

from .supervisor_model import run_batch

SEEDS = int(os.environ.get("OTP_MODEL_SEEDS", "40"))


@pytest.fixture
def no_reports() -> Iterator[None]:
    logging.disable(logging.CRITICAL)  # thousands of deliberate crashes
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.usefixtures("no_reports")
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_supervisor_matches_the_model(loop: str) -> None:
    failures: list[tuple[int, str, list[str], str]] = []
    for start in range(0, SEEDS, 50):
        seeds = list(range(start, min(SEEDS, start + 50)))
        otp.run(run_batch, seeds, failures, loop=loop)  # type: ignore[arg-type]
    details = "\n".join(
        f"seed {seed}: {msg}\n" + "\n".join(trace) for seed, msg, trace, _ in failures
    )
    assert failures == [], details
