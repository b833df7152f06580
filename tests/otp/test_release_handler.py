"""The release handler in-process: plans, appups, application changes, config_change, the
watch window's restart-intensity rule, and bad releases. Each test builds its own project
(a package with a fresh name, so nothing is shared) with the real `otp release build`, then
boots it in the test's node with `otp.release.boot`."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otp
from behaviours import GenServer
from otp.testing import assert_receive, capture_reports

_names = (f"relpkg{i}" for i in itertools.count())

SERVER = """
import otp
from behaviours import GenServer, NoReply, Reply

VERSION = {version!r}


class Store(GenServer):
    vsn = VERSION

    def init(self, arg):
        return {{"version": VERSION, "changes": []}}

    def handle_call(self, request, from_, state):
        if VERSION == "crashing" and request == "boom":
            raise RuntimeError("new code crashes")
        return Reply((VERSION, state), state)

    def handle_cast(self, msg, state):
        if VERSION == "crashing":
            raise RuntimeError("new code crashes")
        return NoReply(state)

    def code_change(self, old_vsn, state, extra):
        return {{**state, "changes": [*state["changes"], (old_vsn, extra)]}}
"""

APP = """
import otp
from behaviours import Supervisor

from .server import Store


def config_change(changed, new, removed):
    otp.send("probe", ("config_change", changed, new, removed))


class Inner(Supervisor):
    def init(self, arg):
        return Supervisor.flags(intensity=1, period=60.0), [Store.child_spec(None, name={name!r})]


class Top(Supervisor):
    def init(self, arg):
        return Supervisor.flags(intensity=100, period=60.0), [
            Inner.child_spec(None, id="inner", type="supervisor"),
            *[Store.child_spec(None, name={name!r} + "_" + id, id=id) for id in {children!r}],
        ]


async def start_nothing(arg):
    return None


app = otp.Application(
    name={name!r}, vsn={vsn!r}, start=Top.start_link, env={env!r},
    config_change=config_change, appup={appup},
)
old = otp.Application(name={name!r} + "_old", vsn="1")
extra = otp.Application(name={name!r} + "_extra", vsn="1")
"""

REL = """
import otp
from {name}.app import app, old, extra

release = otp.Release({name!r}, {vsn!r}, applications=[{apps}])
"""


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = next(_names)
        self.build_dir = root / "_build"

    def write(
        self,
        vsn: str,
        *,
        version: str | None = None,
        env: dict[str, Any] | None = None,
        apps: str = "app",
        appup: str = "{}",
        files: dict[str, str] | None = None,
        children: tuple[str, ...] = (),
    ) -> None:
        package = self.root / self.name
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
        for file, text in (files or {}).items():
            (package / file).write_text(text)
        (package / "server.py").write_text(SERVER.format(version=version or vsn))
        (package / "app.py").write_text(
            textwrap.dedent(APP).format(
                name=self.name,
                vsn=vsn,
                env=env or {"greeting": "hello"},
                appup=appup,
                children=list(children),
            )
        )
        (self.root / f"rel_{self.name}.py").write_text(
            REL.format(name=self.name, vsn=vsn, apps=apps)
        )

    def build(self, vsn: str, **options: Any) -> None:
        self.write(vsn, **options)
        built = self.run_build()
        assert built.returncode == 0, built.stderr

    def run_build(self) -> subprocess.CompletedProcess[str]:
        """`otp release build` of what is written now."""
        return subprocess.run(
            [sys.executable, "-m", "otp.cli", "release", "build", f"rel_{self.name}:release"],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def call(self, request: Any = "get") -> Any:
        return await GenServer.call(self.name, request)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    saved = list(sys.path)
    yield Project(tmp_path)
    sys.path[:] = saved


async def stop_apps() -> None:
    for name, _, _ in otp.application.which_applications():
        await otp.application.stop(name)


async def test_an_install_stops_starts_and_reconfigures_applications(
    node: object, project: Project
) -> None:
    """Cases 143, 145 and 152: a dropped application is stopped, a new one started, a
    running one with a changed env gets config_change; the appup's update gives the extra."""
    project.build("1", apps="app, old")
    project.build(
        "2",
        env={"greeting": "hi", "size": 3},
        apps="app, extra",
        appup=f'{{"1": [otp.release.update("{project.name}.server", "x")]}}',
    )
    otp.register("probe", otp.self())
    assert await otp.release.boot(project.build_dir) == [project.name, f"{project.name}_old"]
    plan = await otp.release.check("2")
    assert plan["update"][0] == f"{project.name}.server"
    assert plan["stop_applications"] == [f"{project.name}_old"]
    assert plan["start_applications"] == [f"{project.name}_extra"]
    assert plan["config_change"] == {
        project.name: {"changed": ["greeting"], "new": ["size"], "removed": []}
    }
    report = await otp.release.install("2", window=0)
    assert (report.old_vsn, report.new_vsn) == ("1", "2")
    assert report.processes
    await assert_receive(("config_change", {"greeting": "hi"}, {"size": 3}, []))
    running = {name for name, _, _ in otp.application.which_applications()}
    assert running == {project.name, f"{project.name}_extra"}
    assert otp.application.get_key(f"{project.name}_old", "vsn") is None  # unloaded
    assert otp.application.get_env(project.name, "size") == 3
    version, state = await project.call()
    assert version == "2" and state["changes"] == [("1", "x")]
    assert await otp.release.which_releases() == [("1", "old", ""), ("2", "permanent", "")]
    await stop_apps()


async def test_a_rollback_restores_the_old_code_and_env(node: object, project: Project) -> None:
    """Case 145's downgrade: the old behaviour and env are back, announced by
    config_change, and the running code converted its state with ("down", vsn)."""
    project.build("1")
    project.build("2", env={"greeting": "hi"})
    otp.register("probe", otp.self())
    await otp.release.boot(project.build_dir)
    await otp.release.install("2", window=600)
    await assert_receive(("config_change", {"greeting": "hi"}, {}, []))
    assert await otp.release.rollback() == "1"
    await assert_receive(("config_change", {"greeting": "hello"}, {}, []))
    assert otp.application.get_env(project.name, "greeting") == "hello"
    version, state = await project.call()
    assert version == "1" and state["changes"] == [("1", None), (("down", "1"), None)]
    releases = {vsn: status for vsn, status, _ in await otp.release.which_releases()}
    assert releases == {"1": "permanent", "2": "unpacked"}
    await stop_apps()


def test_a_bad_appup_step_is_refused_when_the_release_is_built(project: Project) -> None:
    """Case 150: an instruction that is not one is refused before anything is installed."""
    project.write("2", appup='{"1": ["restart everything"]}')
    built = project.run_build()
    assert built.returncode == 1 and "appup" in built.stderr and "Traceback" not in built.stderr
    assert not (project.build_dir / "releases" / "2").exists()


async def test_an_appup_can_load_code_alone_and_restart_an_application(
    node: object, project: Project
) -> None:
    project.build("1")
    module = f"{project.name}.server"
    project.build("2", appup=f'{{"1": [otp.release.load({module!r})]}}')
    project.build(
        "3",
        appup=f'{{"2": [otp.release.load({module!r}), '
        f"otp.release.restart_application({project.name!r})]}}",
    )
    await otp.release.boot(project.build_dir)
    before: Any = otp.whereis(project.name)
    running = otp.process_info(before)
    await otp.release.install("2", window=0)
    after = otp.process_info(before)  # loaded alone: the process kept its class and state
    assert running is not None and after is not None and after.behaviour is running.behaviour
    assert (await project.call())[1] == {"version": "1", "changes": []}
    assert sys.modules[module].VERSION == "2"
    await otp.release.install("3", window=0)
    assert (await project.call()) == ("3", {"version": "3", "changes": []})  # restarted
    assert otp.whereis(project.name) != before
    await stop_apps()


async def test_a_supervisor_that_gives_up_in_the_window_rolls_the_release_back(
    node: object, project: Project
) -> None:
    project.build("1")
    project.build("2", version="crashing")
    await otp.release.boot(project.build_dir)
    with capture_reports("otp.release") as reports:
        await otp.release.install("2", window=60, max_crash_ratio=100.0)  # only the rule
        for _ in range(2):  # the inner supervisor allows 1 restart: the second crash is one
            pid = otp.whereis(project.name)
            ref = otp.monitor(pid)  # type: ignore[arg-type]
            GenServer.cast(pid, "poke")
            await assert_receive(lambda m, r=ref: type(m) is otp.Down and m.ref is r)
            while otp.whereis(project.name) in (None, pid):  # restarted by now, or soon
                await asyncio.sleep(0.01)
        while not any(r.context == "rolled_back" for r in reports):
            await asyncio.sleep(0.01)
    (back,) = [r for r in reports if r.context == "rolled_back"]
    assert back.reason[0] == "restart_intensity"
    assert (await project.call())[0] == "1"
    assert dict((v, s) for v, s, _ in await otp.release.which_releases())["2"] == "unpacked"
    await stop_apps()


async def test_bad_releases_are_refused_by_name_and_change_nothing(
    node: object, project: Project
) -> None:
    with pytest.raises(otp.release.ReleaseError, match="no release is built"):
        await otp.release.boot(project.build_dir)
    project.build("1")
    project.build("2")
    with pytest.raises(otp.release.ReleaseError, match="no release '7'"):
        await otp.release.boot(project.build_dir, "7")
    await otp.release.boot(project.build_dir)
    with pytest.raises(otp.release.ReleaseError, match="already runs a release"):
        await otp.release.boot(project.build_dir)
    manifest = project.build_dir / "releases/2/manifest.json"
    manifest.write_text(manifest.read_text()[:-20])
    with pytest.raises(otp.release.ReleaseError, match="is malformed") as info:
        await otp.release.install("2")
    assert info.value.reason == ("bad_release", "2")
    with pytest.raises(ValueError, match="window"):
        await otp.release.install("2", window=-1)
    assert (await project.call())[0] == "1"
    assert [s for _, s, _ in await otp.release.which_releases()] == ["permanent", "unpacked"]
    await stop_apps()


async def test_an_install_while_an_upgrade_runs_is_refused(node: object, project: Project) -> None:
    project.build("1")
    project.build("2")
    await otp.release.boot(project.build_dir)
    data = Path(__file__).parent / "data"
    module = f"{project.name}_busy"
    (project.root / f"{module}.py").write_bytes((data / "counter_v1.py").read_bytes())
    sys.path.insert(0, str(project.root))
    server = await importlib.import_module(module).Counter.start([])
    (project.root / f"{module}.py").write_bytes((data / "counter_v2.py").read_bytes())
    me = otp.self()
    upgrading = otp.spawn(otp.code.upgrade, module, ("wait", me))
    await assert_receive(("waiting", server))  # the upgrade holds the code server
    with pytest.raises(otp.release.ReleaseError) as info:
        await otp.release.install("2")
    assert info.value.reason == ("busy", "upgrade")
    ref = otp.monitor(upgrading)
    otp.send(server, "go")
    await assert_receive(otp.Down(ref, upgrading, otp.NORMAL))
    await otp.release.install("2", window=0)
    await GenServer.stop(server)
    await stop_apps()


async def test_a_node_without_a_release_says_so(node: object) -> None:
    with pytest.raises(otp.release.ReleaseError, match="does not run a release"):
        await otp.release.which_releases()


async def test_the_direction_of_an_install_is_the_order_of_the_builds(
    node: object, project: Project
) -> None:
    """1 -> 2 -> 1 -> 2: the last is an upgrade again, whatever the statuses say."""
    project.build("1")
    project.build("2")
    await otp.release.boot(project.build_dir)
    await otp.release.install("2", window=0)
    await otp.release.install("1", window=0)
    version, state = await project.call()
    assert version == "1" and state["changes"][-1] == (("down", "1"), None)
    await otp.release.install("2", window=0)
    version, state = await project.call()
    assert version == "2" and state["changes"][-1] == ("1", None)
    await stop_apps()


async def test_a_node_booted_on_a_newer_release_downgrades_to_the_permanent_one(
    node: object, project: Project
) -> None:
    project.build("1")
    project.build("2")
    await otp.release.boot(project.build_dir, "2")
    assert await otp.release.make_permanent() == "2"  # an explicit boot can be made so
    assert [s for _, s, _ in await otp.release.which_releases()] == ["old", "permanent"]
    await otp.release.install("1", window=0)
    _, state = await project.call()
    assert state["changes"] == [(("down", "1"), None)]
    await stop_apps()


async def test_a_relative_build_dir_moves_packages_to_the_new_release(
    node: object, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.build("1")
    project.build("2", files={"late.py": "WHERE = 'release 2'\n"})
    monkeypatch.chdir(project.root)
    await otp.release.boot(Path("_build"))
    await otp.release.install("2", window=0)
    late = importlib.import_module(f"{project.name}.late")  # first imported after it
    assert late.WHERE == "release 2"
    assert "releases/2/lib" in str(late.__file__)
    await stop_apps()


async def test_check_refuses_an_env_the_node_configuration_does_not_fit(
    node: object, project: Project
) -> None:
    project.build("1")
    project.build("2", env={"greeting": 42})
    await otp.release.boot(project.build_dir)
    otp._node.get().config[project.name] = {"greeting": ("hey", "--set")}
    with pytest.raises(otp.release.ReleaseError) as info:
        await otp.release.check("2")
    assert info.value.reason == ("bad_config", project.name) and "greeting" in str(info.value)
    assert (await project.call())[0] == "1"
    await stop_apps()


async def test_a_malformed_appup_in_a_manifest_is_an_error_not_a_dead_handler(
    node: object, project: Project
) -> None:
    project.build("1")
    project.build("2")
    manifest = project.build_dir / "releases/2/manifest.json"
    manifest.write_text(manifest.read_text().replace('"appup": {}', '"appup": {"1": [{"x": 1}]}'))
    await otp.release.boot(project.build_dir)
    with pytest.raises(otp.release.ReleaseError, match="malformed appup step"):
        await otp.release.check("2")
    assert len(await otp.release.which_releases()) == 2  # the handler is still there
    await stop_apps()


async def test_the_watch_window_counts_crashes_whatever_the_log_levels(
    node: object, project: Project
) -> None:
    import logging

    project.build("1")
    project.build("2", version="crashing")
    await otp.release.boot(project.build_dir)
    quiet = logging.getLogger("otp.gen_server")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with capture_reports("otp.release") as reports:
            await otp.release.install("2", window=60)
            pid = otp.whereis(project.name)
            ref = otp.monitor(pid)  # type: ignore[arg-type]
            GenServer.cast(pid, "poke")
            await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)
            while not any(r.context == "rolled_back" for r in reports):
                await asyncio.sleep(0.01)
    finally:
        quiet.setLevel(level)
    assert [r.reason[:2] for r in reports if r.context == "rolled_back"] == [("crashes", 1)]
    await stop_apps()


async def test_an_install_applies_the_supervisors_new_child_specs(
    node: object, project: Project
) -> None:
    """api.md: children the new init adds are started, those it drops are stopped."""
    project.build("1", children=("kept", "dropped"))
    project.build("2", children=("kept", "added"))
    await otp.release.boot(project.build_dir)
    kept, dropped = otp.whereis(f"{project.name}_kept"), otp.whereis(f"{project.name}_dropped")
    assert kept is not None and dropped is not None
    ref = otp.monitor(dropped)
    await otp.release.install("2", window=0)
    await assert_receive(otp.Down(ref, dropped, otp.SHUTDOWN))
    added = otp.whereis(f"{project.name}_added")
    assert added is not None and otp.whereis(f"{project.name}_kept") == kept
    assert (await GenServer.call(added, "get"))[0] == "2"
    await stop_apps()


async def test_a_module_that_imports_a_changed_one_is_loaded_again(
    node: object, project: Project
) -> None:
    """`from .tag import TAG` binds the old value: an install reloads the importer too."""
    reader = "from .tag import TAG\n\n\ndef read():\n    return TAG\n"
    project.build("1", files={"tag.py": "TAG = 'one'\n", "reader.py": reader})
    project.build("2", files={"tag.py": "TAG = 'two'\n", "reader.py": reader})
    await otp.release.boot(project.build_dir)
    importlib.import_module(f"{project.name}.reader")
    plan = await otp.release.check("2")
    assert f"{project.name}.reader" in plan["update"]
    assert plan["update"].index(f"{project.name}.tag") < plan["update"].index(
        f"{project.name}.reader"
    )
    await otp.release.install("2", window=0)
    assert sys.modules[f"{project.name}.reader"].read() == "two"
    await stop_apps()


async def test_rolling_back_a_downgrade_is_an_upgrade(node: object, project: Project) -> None:
    project.build("1")
    project.build("2")
    await otp.release.boot(project.build_dir, "2")
    await otp.release.make_permanent()
    await otp.release.install("1", window=600)  # a downgrade, on trial
    assert await otp.release.rollback() == "2"
    version, state = await project.call()
    assert version == "2" and state["changes"][-2:] == [(("down", "1"), None), ("1", None)]
    await stop_apps()
