"""Every Python code block in docs/ runs, and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

BLOCKS = [
    pytest.param(code, id=f"{path.relative_to(DOCS)}:{n}")
    for path in sorted(DOCS.rglob("*.md"))
    for n, code in enumerate(BLOCK.findall(path.read_text()), start=1)
]


@pytest.mark.parametrize("code", BLOCKS)
def test_doc_example_runs(code: str) -> None:
    exec(compile(code, "<doc>", "exec"), {"__name__": "doc_example"})
