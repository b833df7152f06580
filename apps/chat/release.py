"""The chat service's releases, kept in the repository: `python -m apps.chat.release`.

The service's modules in `apps/chat/` are release 2.0.0 (the newest); `releases/1.0.0/`
holds the modules that were different in 1.0.0. A release is built from a *staged
project*: a directory with the package `chat` (the service modules of that version, and
`chat/rel.py`, the `otp.Release`), where `otp release build chat.rel:release` snapshots it
into `_build/releases/<vsn>/`, as for any project (docs/guides/upgrades.md):

    python -m apps.chat.release /srv/chat 1.0.0 2.0.0   # stage and build both
    cd /srv/chat && otp run --release --name chat --ops-port 9100
    otp release upgrade 2.0.0 --name chat
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

__all__ = ["LATEST", "VERSIONS", "build", "stage"]

HERE: Final = Path(__file__).resolve().parent
VERSIONS: Final = ("1.0.0", "2.0.0")
LATEST: Final = VERSIONS[-1]
# What a release holds: the service, not the load generator, the demo or this module.
SERVICE: Final = (
    "__init__.py",
    "protocol.py",
    "room.py",
    "connection.py",
    "listener.py",
    "app.py",
    "rel.py",
)


def stage(root: Path, vsn: str) -> Path:
    """Write version `vsn` of the service into `root/chat/`; the package's directory."""
    if vsn not in VERSIONS:
        raise ValueError(f"the chat service has releases {', '.join(VERSIONS)}\nGot: {vsn!r}")
    package = root / "chat"
    package.mkdir(parents=True, exist_ok=True)
    for name in SERVICE:
        shutil.copyfile(HERE / name, package / name)
    if vsn != LATEST:
        for old in sorted((HERE / "releases" / vsn).glob("*.py")):
            shutil.copyfile(old, package / old.name)
    return package


def build(root: Path, vsn: str) -> str:
    """Stage `vsn` in `root` and build it (`otp release build`); what the build printed.

    Raises `subprocess.CalledProcessError` (with the build's output) if the build fails.
    """
    stage(root, vsn)
    done = subprocess.run(
        [sys.executable, "-m", "otp.cli", "release", "build", "chat.rel:release"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m apps.chat.release DIR [VSN ...]   (default: every version)")
        return 2
    root = Path(argv[0])
    for vsn in argv[1:] or VERSIONS:
        try:
            print(build(root, vsn))
        except subprocess.CalledProcessError as failed:
            print(failed.stdout + failed.stderr, file=sys.stderr, end="")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
