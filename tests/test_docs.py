"""Every Python code block in docs/ and the README runs, and its assertions hold; the
tutorial is followed as a reader would, and every output it shows is what the commands print.

Three kinds of block, told apart by the fence's info string:

- ```` ```python ````: a self-contained example, executed here.
- ```` ```python title="path" ```` (or any language with a `title`): a file of the reader's
  project. `docs/tutorial.md` writes it into a temp project, in page order (a later block
  with the same title replaces the file); other pages only show it.
- ```` ```console ```` in `docs/tutorial.md`: commands (`$ ...`) and what each prints. They
  run in the project, in page order, after the files written so far; `otp run` starts the
  node in the background (the reader's first terminal), and a console block without a
  command is more of that node's output. `sh` blocks (installation) are not run.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
TUTORIAL = DOCS / "tutorial.md"

BLOCKS = [
    pytest.param(code, id=f"{path.relative_to(ROOT)}:{n}")
    for path in PAGES
    for n, code in enumerate(BLOCK.findall(path.read_text()), start=1)
]


@pytest.mark.parametrize("code", BLOCKS)
def test_doc_example_runs(code: str) -> None:
    exec(compile(code, "<doc>", "exec"), {"__name__": "doc_example"})


# -- the tutorial ----------------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.S | re.M)
TITLE = re.compile(r'title="([^"]+)"')

# What differs from one run (and one machine) to the next: replaced on both sides.
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"), "<time>"),
    (re.compile(r"<\d+\.\d+\.\d+>"), "<pid>"),
    (re.compile(r"@[\w.-]+"), "@<host>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<hash>"),
    (re.compile(r"os pid \d+"), "os pid <n>"),
    (re.compile(r"control socket \S+"), "control socket <path>"),
    (re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])"), "<n>"),  # durations and sizes, not versions
    (re.compile(r"(?<=\S)\s+"), " "),  # (column widths; the indentation stays)
]


def normalize(line: str) -> str:
    for pattern, replacement in VOLATILE:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def shown_as(expected: list[str]) -> re.Pattern[str]:
    """The output `expected` shows; a line `...` stands for any lines."""
    parts = [
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(normalize(line)) + r"\n"
        for line in expected
    ]
    return re.compile("".join(parts))


def tutorial_steps() -> Iterator[tuple[str, str, str]]:
    """("file", path, text) and ("console", "", text), in page order."""
    for lang, info, body in FENCE.findall(TUTORIAL.read_text()):
        if title := TITLE.search(info):
            yield "file", title.group(1), body
        elif lang == "console":
            yield "console", "", body


def commands(block: str) -> list[tuple[str, list[str]]]:
    """Each `$ command` with the lines it prints; ("", lines) for a block of node output."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif not steps:
            steps.append(("", [line]))
        else:
            steps[-1][1].append(line)
    return steps


class Background:
    """The node the reader runs in the first terminal, and what it has logged so far."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.seen = 0  # lines matched by the page so far
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self._queue.put(line)
        self._queue.put(None)

    def expect(self, expected: list[str], timeout: float = 20.0) -> None:
        """Wait until the node has logged `expected`, in order, after what it showed before."""
        pattern = shown_as(["...", *expected])
        deadline = time.monotonic() + timeout
        while True:
            text = "".join(normalize(line) + "\n" for line in self.lines[self.seen :])
            if found := pattern.match(text):
                self.seen += found.group(0).count("\n")
                return
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    "the node did not log what the tutorial shows:\n"
                    + "\n".join(expected)
                    + "\n-- it logged:\n"
                    + "".join(self.lines)
                )
            self.lines.append(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.mark.timeout(180)  # about 10 s: three nodes and some 40 commands
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    """Write the tutorial's files and run its commands in order, as a reader would."""
    project = tmp_path / "hits-project"
    project.mkdir()
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "XDG_RUNTIME_DIR": str(tmp_path),  # the nodes' control sockets: ours alone
        "COLUMNS": "80",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)
    env.pop("OTP_COOKIE", None)
    nodes: list[Background] = []
    try:
        for kind, name, body in tutorial_steps():
            if kind == "file":
                target = project / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(body)
                continue
            for command, expected in commands(body):
                if not command:
                    assert nodes, f"node output shown before any `otp run`: {expected}"
                    nodes[-1].expect(expected)
                    continue
                argv = shlex.split(command)
                argv[0] = shutil.which(argv[0], path=path) or argv[0]
                if command.startswith("otp run"):
                    nodes.append(Background(argv, project, env))
                    nodes[-1].expect(expected)
                    continue
                done = subprocess.run(
                    argv,
                    cwd=project,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=60,
                )
                output = "".join(normalize(line) + "\n" for line in done.stdout.splitlines())
                assert shown_as(expected).fullmatch(output), (
                    f"$ {command}\n-- the tutorial shows:\n"
                    + "\n".join(expected)
                    + f"\n-- it printed (exit status {done.returncode}):\n{done.stdout}"
                )
                if argv[1:2] == ["stop"]:
                    assert nodes and nodes[-1].proc.wait(timeout=20) == 0
        assert nodes and all(node.proc.poll() is not None for node in nodes), (
            "the tutorial leaves a node running"
        )
    finally:
        for node in nodes:
            node.kill()
