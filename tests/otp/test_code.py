"""otp.code: upgrading the running processes of a module, all or nothing.

Each test copies versions of `data/counter_v*.py` over one module file under a fresh module
name, so nothing is shared between tests.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import otp
from behaviours import GenServer, Supervisor
from otp.testing import assert_receive, capture_reports

DATA = Path(__file__).parent / "data"
_names = (f"hot_counter_{i}" for i in itertools.count())


class Module:
    """One reloadable module: its name, its file, and the versions written over it."""

    def __init__(self, root: Path) -> None:
        self.name = next(_names)
        self.path = root / f"{self.name}.py"

    def write(self, version: int) -> None:
        self.path.write_bytes((DATA / f"counter_v{version}.py").read_bytes())

    @property
    def module(self) -> ModuleType:
        return sys.modules[self.name]

    def cls(self, attr: str = "Counter") -> Any:
        return getattr(self.module, attr)


@pytest.fixture
def mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Module]:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = Module(tmp_path)
    module.write(1)
    importlib.import_module(module.name)
    yield module
    sys.modules.pop(module.name, None)


async def crash(pid: Any) -> None:
    """Make a supervised child die, and wait until it has."""
    ref = otp.monitor(pid)
    otp.exit(pid, "die")
    await assert_receive(otp.Down(ref, pid, "die"))


async def stop_all(*pids: Any) -> None:
    for pid in pids:
        await GenServer.stop(pid)


async def test_an_upgrade_switches_every_process_and_converts_its_state(
    node: object, mod: Module
) -> None:
    old_class = mod.cls()
    pids = [await old_class.start([i]) for i in range(3)]
    assert set(otp.code.processes_running(mod.name)) == set(pids)
    assert await GenServer.call(pids[0], "get") == ("v1", [0])
    mod.write(2)
    report = await otp.code.upgrade(mod.name, "extra!")
    assert report.module == mod.name and set(report.processes) == set(pids)
    assert report.old_vsn != report.new_vsn
    for i, pid in enumerate(pids):
        assert await GenServer.call(pid, "get") == (
            "v2",
            {"seen": [i], "from": "1", "extra": "extra!"},
        )
        info = otp.process_info(pid)
        assert info is not None and info.behaviour is mod.cls() and info.behaviour is not old_class
    assert mod.cls().vsn == "2" and old_class.vsn == "1"
    await stop_all(*pids)


async def test_a_rewrite_within_the_same_second_with_the_same_size_is_seen(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([])
    before = mod.path.stat()
    text = mod.path.read_text()
    mod.path.write_text(text.replace('("v1", state)', '("v9", state)'))
    os.utime(mod.path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same time
    assert mod.path.stat().st_size == before.st_size
    assert mod.name in otp.code.changed()  # (other tests' modules may be there too)
    await otp.code.upgrade(mod.name)
    assert await GenServer.call(pid, "get") == ("v9", [])
    assert mod.name not in otp.code.changed()
    await stop_all(pid)


async def test_a_code_change_that_raises_puts_back_every_old_class_and_state(
    node: object, mod: Module
) -> None:
    old_module, old_class = mod.module, mod.cls()
    pids = [await old_class.start([i]) for i in (1, 2, 3, 4)]
    mod.write(3)  # its code_change appends to the state in place, then raises for [3]
    with capture_reports("otp.code") as reports, pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    failed = info.value
    assert failed.module == mod.name and failed.pid == pids[2]
    assert isinstance(failed.reason, RuntimeError) and "cannot convert" in str(failed)
    assert mod.module is old_module  # the old code is the module's code again
    for i, pid in zip((1, 2, 3, 4), pids, strict=True):
        assert await GenServer.call(pid, "get") == ("v1", [i])  # not changed in place
        info_ = otp.process_info(pid)
        assert info_ is not None and info_.behaviour is old_class
    (report,) = reports
    assert report.context == "failed" and report.pid == pids[2]
    await stop_all(*pids)


async def test_a_module_that_does_not_import_changes_nothing(node: object, mod: Module) -> None:
    old_module = mod.module
    pid = await mod.cls().start([7])
    mod.write(4)
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert isinstance(info.value.reason, ModuleNotFoundError) and info.value.pid is None
    assert mod.module is old_module
    assert await GenServer.call(pid, "get") == ("v1", [7])
    mod.path.write_text("def broken(:\n")
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert isinstance(info.value.reason, SyntaxError)
    assert await GenServer.call(pid, "get") == ("v1", [7])
    await stop_all(pid)


async def test_no_message_sent_during_an_upgrade_is_lost_or_reordered(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([])
    for i in range(250):
        GenServer.cast(pid, i)
    mod.write(2)
    me = otp.self()
    otp.spawn(_upgrade_and_report, mod.name, ("wait", me), me)
    await assert_receive(("waiting", pid))  # suspended, inside its code_change
    for i in range(250, 500):
        GenServer.cast(pid, i)
    otp.spawn(_call_and_report, pid, me)  # a call made meanwhile waits, then is answered
    otp.send(pid, "go")
    await assert_receive(("upgraded", mod.name))
    _, (version, _) = await assert_receive(lambda m: type(m) is tuple and m[0] == "answer")
    assert version == "v2"
    _, final = await GenServer.call(pid, "get")
    assert final["seen"] == list(range(500))  # every cast, once, in order, across the switch
    await stop_all(pid)


async def _upgrade_and_report(module: str, extra: Any, report_to: otp.Pid) -> None:
    otp.send(report_to, ("upgrading", otp.self()))
    report = await otp.code.upgrade(module, extra)
    otp.send(report_to, ("upgraded", report.module))


async def _call_and_report(pid: otp.Pid, report_to: otp.Pid) -> None:
    otp.send(report_to, ("answer", await GenServer.call(pid, "get")))


async def test_a_code_change_that_hangs_times_out_and_is_undone_when_it_ends(
    node: object, mod: Module
) -> None:
    pids = [await mod.cls().start([i]) for i in (1, 2)]
    mod.write(2)
    me = otp.self()
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name, ("wait", me), timeout=0.2)
    assert info.value.reason == ("timeout", 0.2) and info.value.pid in pids
    for pid in pids:
        await assert_receive(("waiting", pid))
        otp.send(pid, "go")  # its code_change ends; then it reverts and resumes
    for i, pid in zip((1, 2), pids, strict=True):
        assert await GenServer.call(pid, "get") == ("v1", [i])
    await stop_all(*pids)


async def test_an_upgrade_while_another_runs_is_refused(node: object, mod: Module) -> None:
    pid = await mod.cls().start([])
    mod.write(2)
    me = otp.self()
    otp.spawn(_upgrade_and_report, mod.name, ("wait", me), me)
    await assert_receive(("waiting", pid))
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert info.value.reason == ("busy", "upgrade")
    otp.send(pid, "go")
    await assert_receive(("upgraded", mod.name))
    await otp.code.upgrade(mod.name)  # free again
    await stop_all(pid)


async def test_a_downgrade_runs_the_newer_code_change_with_down(node: object, mod: Module) -> None:
    pid = await mod.cls().start(["x"])
    mod.write(2)
    await otp.code.upgrade(mod.name)
    v1 = mod.path.with_name("v1_copy.py")
    v1.write_bytes((DATA / "counter_v1.py").read_bytes())
    report = await otp.code.upgrade(mod.name, source=v1, downgrade=True)
    assert report.new_vsn != report.old_vsn
    assert await GenServer.call(pid, "get") == ("v1", ["x", ("down", "1")])
    await stop_all(pid)


async def test_an_upgraded_supervisor_takes_its_new_flags_and_specs(
    node: object, mod: Module
) -> None:
    """Cases 147 (a supervisor's new strategy and child shutdown, through its code change)
    and the restart of a child on the new code."""
    sup = await mod.cls("Sup").start_link()
    before = {c.id: c.pid for c in await Supervisor.which_children(sup)}
    mod.write(2)
    report = await otp.code.upgrade(mod.name)
    assert set(report.processes) == {sup, *before.values()}
    assert (await Supervisor.get_childspec(sup, "a")).shutdown == "brutal_kill"
    assert (await otp.sys.get_state(sup)).flags.strategy == "one_for_all"
    assert (await GenServer.call(before["b"], "get"))[0] == "v2"
    await crash(before["a"])
    after = {c.id: c.pid for c in await Supervisor.which_children(sup)}
    assert after["a"] != before["a"] and after["b"] != before["b"]  # one_for_all
    assert await GenServer.call(after["a"], "get") == ("v2", {"seen": [], "from": None})
    otp.unlink(sup)
    await GenServer.stop(sup)


async def test_supervisors_start_an_upgraded_class_as_its_new_code(
    node: object, mod: Module
) -> None:
    """Specs that name the old class (a supervisor outside the module, a dynamic start
    with a class imported before the upgrade) start the new code, as Erlang's M:F(A)."""
    from behaviours import DynamicSupervisor

    old_class = mod.cls()
    sup: Any = await Supervisor.start_link([old_class.child_spec([], id="c")])
    pool: Any = await DynamicSupervisor.start_link()
    mod.write(2)
    await otp.code.upgrade(mod.name)
    (child,) = await Supervisor.which_children(sup)
    await crash(child.pid)
    (child,) = await Supervisor.which_children(sup)
    assert await GenServer.call(child.pid, "get") == ("v2", {"seen": [], "from": None})
    dynamic = await DynamicSupervisor.start_child(pool, old_class.child_spec([]))
    assert (await GenServer.call(dynamic, "get"))[0] == "v2"
    for s in (sup, pool):
        otp.unlink(s)
        await GenServer.stop(s)


async def test_a_supervisor_whose_new_init_is_invalid_fails_the_whole_upgrade(
    node: object, mod: Module
) -> None:
    """Case 148: nothing changes, the children included."""
    sup = await mod.cls("Sup").start_link()
    children = {c.id: c.pid for c in await Supervisor.which_children(sup)}
    mod.write(3)
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert info.value.pid == sup and "shutdown" in str(info.value.reason)
    assert (await Supervisor.get_childspec(sup, "a")).shutdown == 2.0
    assert (await otp.sys.get_state(sup)).flags.strategy == "one_for_one"
    for pid in children.values():
        assert await GenServer.call(pid, "get") == ("v1", [])  # not "changed in place"
    await crash(children["a"])
    restarted = {c.id: c.pid for c in await Supervisor.which_children(sup)}
    assert await GenServer.call(restarted["a"], "get") == ("v1", [])  # the old code starts
    assert restarted["b"] == children["b"]
    otp.unlink(sup)
    await GenServer.stop(sup)


async def test_modules_lists_what_runs_with_its_version_and_content_hash(
    node: object, mod: Module
) -> None:
    import hashlib

    pid = await mod.cls().start([])
    (info,) = [m for m in otp.code.modules() if m.name == mod.name]
    digest = hashlib.sha256(mod.path.read_bytes()).hexdigest()
    assert info.hash == digest and info.vsn == digest[:16] and info.path == str(mod.path)
    mod.write(2)
    await otp.code.upgrade(mod.name)
    (info,) = [m for m in otp.code.modules() if m.name == mod.name]
    assert info.hash == hashlib.sha256(mod.path.read_bytes()).hexdigest()
    await stop_all(pid)


async def test_bad_upgrade_requests_are_refused_by_name(node: object) -> None:
    with pytest.raises(otp.code.UpgradeError, match="no_such_module_here"):
        await otp.code.upgrade("no_such_module_here")
    with pytest.raises(TypeError, match="module name"):
        await otp.code.upgrade(otp)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        await otp.code.upgrade("otp", timeout=0)
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade("sys")  # built in: no source to load
    assert info.value.reason == "no_source_file"


async def test_watch_upgrades_a_module_when_its_file_changes(node: object, mod: Module) -> None:
    pid = await mod.cls().start([])
    watcher = otp.code.watch([mod.path.parent])
    deadline = asyncio.get_running_loop().time() + 20
    while (await GenServer.call(pid, "get"))[0] != "v2":
        assert asyncio.get_running_loop().time() < deadline, "the change was not picked up"
        mod.write(2)  # again and again: the watcher may not have been watching yet
        await asyncio.sleep(0.05)
    ref = otp.monitor(watcher)
    otp.exit(watcher, otp.KILL)
    await assert_receive(otp.Down(ref, watcher, otp.KILLED))
    await stop_all(pid)


async def test_killing_the_code_server_mid_upgrade_leaves_nobody_held(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([5])
    mod.write(2)
    me = otp.self()
    upgrading = otp.spawn(_upgrade_and_report, mod.name, ("wait", me), me)
    await assert_receive(("waiting", pid))
    server = otp.whereis("code_server")
    assert server is not None
    ref = otp.monitor(server)
    otp.exit(server, otp.KILL)
    await assert_receive(otp.Down(ref, server, otp.KILLED))
    otp.send(pid, "go")  # its code_change ends; the revert and resume it was sent follow
    assert await GenServer.call(pid, "get") == ("v1", [5])
    assert mod.module.__name__ == mod.name and mod.cls().vsn == "1"  # the old module is back
    await otp.code.upgrade(mod.name)  # a new code server, and a free table
    assert (await GenServer.call(pid, "get"))[0] == "v2"
    assert upgrading not in otp.processes()
    await stop_all(pid)


async def test_an_upgrade_whose_caller_dies_still_holds_the_table_until_done(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([])
    mod.write(2)
    me = otp.self()
    caller = otp.spawn(_upgrade_and_report, mod.name, ("wait", me), me)
    await assert_receive(("waiting", pid))
    ref = otp.monitor(caller)
    otp.exit(caller, otp.KILL)
    await assert_receive(otp.Down(ref, caller, otp.KILLED))
    with pytest.raises(otp.code.UpgradeError) as info:  # the job is still on
        await otp.code.upgrade(mod.name)
    assert info.value.reason == ("busy", "upgrade")
    otp.send(pid, "go")
    assert (await GenServer.call(pid, "get"))[0] == "v2"
    await otp.code.upgrade(mod.name)  # the job freed the table when it was done
    await stop_all(pid)


async def test_an_upgraded_package_keeps_its_submodules(
    node: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = next(_names)
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    (package / "sub.py").write_text("Y = 2\n")
    importlib.import_module(f"{name}.sub")
    try:
        (package / "__init__.py").write_text("X = 10\n")
        await otp.code.upgrade(name)
        assert sys.modules[name].X == 10 and sys.modules[name].sub.Y == 2
    finally:
        for key in [name, f"{name}.sub"]:
            sys.modules.pop(key, None)


async def test_new_code_without_a_running_class_fails_the_upgrade(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([1])
    mod.path.write_text(mod.path.read_text().replace("class Counter(", "class Renamed("))
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert isinstance(info.value.reason, LookupError) and "Counter" in str(info.value)
    assert await GenServer.call(pid, "get") == ("v1", [1])
    await stop_all(pid)


async def test_a_code_change_that_returns_nothing_fails_the_upgrade(
    node: object, mod: Module
) -> None:
    pid = await mod.cls().start([1])
    mod.write(2)
    mod.path.write_text(mod.path.read_text().replace('return {"seen": state,', '{"seen": state,'))
    with pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name)
    assert "code_change returned None" in str(info.value.reason)
    assert await GenServer.call(pid, "get") == ("v1", [1])
    await stop_all(pid)


async def test_a_process_started_on_new_code_of_an_undone_upgrade_is_restarted_on_the_old(
    node: object, mod: Module
) -> None:
    sup: Any = await Supervisor.start_link([])
    held = await mod.cls().start([1])
    mod.write(2)
    failing = mod.path.read_text().replace(
        '            await otp.receive(lambda m: m == "go")',
        '            await otp.receive(lambda m: m == "go")\n'
        '            raise RuntimeError("undo it")',
    )
    mod.path.write_text(failing)
    me = otp.self()
    otp.spawn(_upgrade_and_report, mod.name, ("wait", me), me)
    await assert_receive(("waiting", held))
    # meanwhile, a supervisor starts a child from the module as imported now: the new code
    late: Any = await Supervisor.start_child(sup, mod.cls().child_spec([], id="late"))
    assert (await GenServer.call(late, "get"))[0] == "v2"
    ref = otp.monitor(late)
    otp.send(held, "go")
    await assert_receive(otp.Down(ref, late, otp.KILLED))
    (child,) = await Supervisor.which_children(sup)
    assert await GenServer.call(child.pid, "get") == ("v1", [])  # restarted on the old code
    assert await GenServer.call(held, "get") == ("v1", [1])
    otp.unlink(sup)
    await stop_all(held, sup)


async def test_code_that_imported_an_upgraded_module_calls_its_new_code(
    node: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import helper` then `helper.f()` reads the new code, as a fully-qualified call in
    Erlang; a name bound by `from helper import f` is a copy, and keeps the old one."""
    monkeypatch.syspath_prepend(str(tmp_path))
    helper, user = next(_names), next(_names)
    (tmp_path / f"{helper}.py").write_text("def f():\n    return 'old'\n")
    (tmp_path / f"{user}.py").write_text(f"import {helper}\n\ndef g():\n    return {helper}.f()\n")
    using = importlib.import_module(user)
    try:
        assert using.g() == "old"
        (tmp_path / f"{helper}.py").write_text("def f():\n    return 'new'\n")
        await otp.code.upgrade(helper)
        assert using.g() == "new"
    finally:
        for name in (helper, user):
            sys.modules.pop(name, None)


async def test_a_code_change_that_never_returns_is_killed_and_restarted_on_the_old_code(
    node: object, mod: Module
) -> None:
    sup: Any = await Supervisor.start_link([mod.cls().child_spec([7], id="c")])
    (child,) = await Supervisor.which_children(sup)
    pid: Any = child.pid
    mod.write(2)
    me = otp.self()
    ref = otp.monitor(pid)
    with capture_reports("otp.code"), pytest.raises(otp.code.UpgradeError) as info:
        await otp.code.upgrade(mod.name, ("wait", me), timeout=0.1)
    assert info.value.reason == ("timeout", 0.1)
    await assert_receive(otp.Down(ref, pid, otp.KILLED))  # its "go" never came
    (again,) = await Supervisor.which_children(sup)
    assert await GenServer.call(again.pid, "get") == ("v1", [7])
    await assert_receive(("waiting", pid))
    otp.unlink(sup)
    await stop_all(sup)
