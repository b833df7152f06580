"""Releases for real: `otp release build`, `otp run --release` and `otp release upgrade`,
`check`, `rollback` and `list` against a node in a subprocess, with a client calling and
casting all the time (tests/otp/release_project.py)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.otp import release_project
from tests.otp.test_cli import Node


class Project:
    """The kv project in a temp directory, its builds, and the node running it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_dir = root / "run"
        self.nodes: list[Node] = []

    def build(self, vsn: str) -> subprocess.CompletedProcess[str]:
        release_project.write(self.root, vsn)
        return self.cli("release", "build", "rel:release")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "otp.cli", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, *extra: str) -> Node:
        node = Node(self.run_dir, "--release", *extra, name="kv", spec=None, cwd=self.root)
        self.nodes.append(node)
        node.wait_for("node kv@")
        return node

    def stop(self, node: Node) -> str:
        """Stop the node; everything it logged."""
        assert node.otp("stop").returncode == 0
        assert node.finish() == 0
        return "".join(node.lines)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path)
    try:
        yield made
    finally:
        for node in made.nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()


def summary(log: str) -> dict[str, int]:
    """The client's last counts: calls, failed, wrong, sent, casts, disorder."""
    line = [line for line in log.splitlines() if "kv summary:" in line][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def releases(node: Node) -> dict[str, tuple[str, str]]:
    result = node.otp("release", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {vsn: (status, note) for vsn, status, note in json.loads(result.stdout)}


def test_an_upgrade_under_load_loses_no_call_and_no_cast(project: Project) -> None:
    assert project.build("1.0.0").returncode == 0
    node = project.start()
    node.wait_for("kv store answers as version 1")
    assert project.build("2.0.0").returncode == 0
    plan = node.otp("release", "check", "2.0.0")
    assert plan.returncode == 0, plan.stderr
    assert "upgrade modules (code_change), in order: kv.server" in plan.stdout
    assert "config_change: kv ['greeting', 'size']" in plan.stdout
    upgraded = node.otp("release", "upgrade", "2.0.0", "--window", "0")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (
        "release kv installed: 1.0.0 -> 2.0.0 (2 processes switched); now permanent"
        in upgraded.stdout
    )
    node.wait_for("kv store answers as version 2")
    node.wait_for("kv config_change changed={'greeting': 'hi'} new={'size': 3} removed=[]")
    assert releases(node) == {"1.0.0": ("old", ""), "2.0.0": ("permanent", "")}
    counts = summary(project.stop(node))
    assert counts["calls"] > 0 and counts["failed"] == 0 and counts["wrong"] == 0
    assert counts["casts"] == counts["sent"] and counts["disorder"] == 0  # none lost, in order


def test_new_code_that_crashes_is_rolled_back_on_its_own(project: Project) -> None:
    for vsn in ("1.0.0", "2.0.0", "3.0.0"):
        assert project.build(vsn).returncode == 0
    node = project.start()
    assert node.otp("release", "upgrade", "2.0.0", "--window", "0").returncode == 0
    node.wait_for("kv store answers as version 2")
    assert node.otp("release", "upgrade", "3.0.0", "--window", "60").returncode == 0
    node.wait_for("release kv: back to 2.0.0 (rolled back from 3.0.0)")
    listed = releases(node)
    assert listed["2.0.0"] == ("permanent", "")
    status, note = listed["3.0.0"]
    assert status == "unpacked" and "rolled back" in note and "crashes" in note
    status_out = node.otp("status")
    assert "kv 2.0.0 (permanent)" in status_out.stdout
    assert "release: 2.0.0, permanent\n" in status_out.stdout
    node.wait_for("kv store answers again as version 2")  # the old code serves again
    project.stop(node)


def test_a_release_never_made_permanent_is_dropped_at_the_next_boot(project: Project) -> None:
    """Case 151: the permanent release boots; statuses go unpacked -> current -> permanent
    -> old."""
    for vsn in ("1.0.0", "2.0.0"):
        assert project.build(vsn).returncode == 0
    node = project.start()
    assert releases(node) == {"1.0.0": ("permanent", ""), "2.0.0": ("unpacked", "")}
    assert node.otp("release", "upgrade", "2.0.0", "--window", "600").returncode == 0
    assert releases(node)["2.0.0"] == ("current", "")
    status = node.otp("status").stdout  # the release's status, apart from the apps' type
    assert "release: 2.0.0, current (on trial: not yet permanent)" in status
    assert "kv 2.0.0 (permanent)" in status
    project.stop(node)
    again = project.start()
    again.wait_for("kv store answers as version 1")
    status, note = releases(again)["2.0.0"]
    assert status == "unpacked" and "not made permanent" in note
    assert again.otp("release", "upgrade", "2.0.0", "--window", "600").returncode == 0
    made = again.otp("release", "permanent")
    assert made.returncode == 0 and "2.0.0" in made.stdout
    assert releases(again) == {"1.0.0": ("old", ""), "2.0.0": ("permanent", "")}
    project.stop(again)
    third = project.start()
    third.wait_for("kv store answers as version 2")
    project.stop(third)


def test_a_manual_rollback_goes_back_to_the_permanent_release(project: Project) -> None:
    for vsn in ("1.0.0", "2.0.0"):
        assert project.build(vsn).returncode == 0
    node = project.start()
    assert node.otp("release", "upgrade", "2.0.0", "--window", "600").returncode == 0
    node.wait_for("kv store answers as version 2")
    back = node.otp("release", "rollback")
    assert back.returncode == 0 and "1.0.0" in back.stdout
    node.wait_for("kv store answers as version 1")  # the downgrade ran v2's code_change
    assert releases(node)["2.0.0"][0] == "unpacked"
    counts = summary(project.stop(node))
    assert counts["failed"] == 0 and counts["casts"] == counts["sent"]
    assert counts["disorder"] == 0


def test_a_new_application_that_cannot_start_stops_the_node_onto_its_permanent_release(
    project: Project,
) -> None:
    for vsn in ("1.0.0", "4.0.0"):
        assert project.build(vsn).returncode == 0
    node = project.start()
    failed = node.otp("release", "upgrade", "4.0.0")
    assert failed.returncode == 1
    assert "the node stops, and boots release 1.0.0 when started again" in failed.stderr
    assert node.finish() != 0  # a permanent application failed to start
    again = project.start()
    again.wait_for("kv store answers as version 1")
    status, note = releases(again)["4.0.0"]
    assert status == "unpacked" and "did not start" in note
    project.stop(again)


def test_bad_release_requests_are_refused_and_the_node_runs_on(project: Project) -> None:
    for vsn in ("1.0.0", "2.0.0"):
        assert project.build(vsn).returncode == 0
    node = project.start()
    unknown = node.otp("release", "upgrade", "9.9.9")
    assert unknown.returncode == 1 and "no release '9.9.9'" in unknown.stderr
    same = node.otp("release", "upgrade", "1.0.0")
    assert same.returncode == 1 and "is the one running" in same.stderr
    nothing = node.otp("release", "rollback")
    assert nothing.returncode == 1 and "is permanent" in nothing.stderr
    tampered = project.root / "_build/releases/2.0.0/lib/kv/server.py"
    tampered.write_text(tampered.read_text() + "\n# changed after the build\n")
    mismatch = node.otp("release", "check", "2.0.0")
    assert mismatch.returncode == 1 and "does not match its manifest" in mismatch.stderr
    assert project.build("2.0.0").returncode == 1  # a built version is never rebuilt
    assert releases(node)["1.0.0"] == ("permanent", "")
    counts = summary(project.stop(node))
    assert counts["failed"] == 0


@pytest.mark.parametrize("how", ["--reload", "SIGUSR2"])
def test_a_development_node_upgrades_what_changed_on_save_or_on_sigusr2(
    project: Project, how: str
) -> None:
    release_project.write(project.root, "1.0.0")
    extra = ("--reload",) if how == "--reload" else ()
    node = Node(project.run_dir, *extra, name="kv", spec="kv.app:app", cwd=project.root)
    project.nodes.append(node)
    node.wait_for("kv store answers as version 1")
    if how == "--reload":
        node.wait_for("watching")
    release_project.write(project.root, "2.0.0")
    if how == "SIGUSR2":
        node.proc.send_signal(signal.SIGUSR2)
    node.wait_for("module kv.server upgraded")
    node.wait_for("kv store answers as version 2")
    (project.root / "kv" / "server.py").write_text("this is not python\n")
    if how == "SIGUSR2":
        node.proc.send_signal(signal.SIGUSR2)
    node.wait_for("reload of kv.server failed, the old code runs on")
    counts = summary(project.stop(node))
    assert counts["failed"] == 0 and counts["casts"] == counts["sent"]


def test_a_missing_or_broken_release_is_refused_before_the_node_starts(project: Project) -> None:
    refused = Node(project.run_dir, "--release", name="kv", spec=None, cwd=project.root)
    assert refused.finish() == 1
    text = "".join(refused.lines)
    assert "no release is built" in text and "Traceback" not in text
    assert project.build("1.0.0").returncode == 0
    wrong = Node(project.run_dir, "--release", "9.9", name="kv", spec=None, cwd=project.root)
    assert wrong.finish() == 1
    assert "no release '9.9'" in "".join(wrong.lines) and "Traceback" not in "".join(wrong.lines)


def test_build_errors_are_one_line_and_namespace_packages_are_built(project: Project) -> None:
    missing = project.cli("release", "build", "nowhere:release")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("otp: error: no module named 'nowhere' in ")
    release_project.write(project.root, "1.0.0")
    (project.root / "kv" / "__init__.py").unlink()  # kv is a namespace package now
    assert project.cli("release", "build", "rel:release").returncode == 0
    manifest = json.loads((project.root / "_build/releases/1.0.0/manifest.json").read_text())
    assert {"kv.server", "kv.app", "kv.client", "rel"} <= {m["name"] for m in manifest["modules"]}
