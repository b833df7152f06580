"""otp.sys on a GenServer: state, suspend/resume, status, format_status, code_change
(otp-cases §11, cases 116-123)."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from behaviours import GenServer, NoReply, Reply, ServerReport
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import Crashable, Echo, pid_of


async def started(state: object = None, name: str | None = None) -> otp.Pid:
    pid = pid_of(await Echo.start(state, name=name))
    assert pid is not None
    return pid


async def test_get_state_also_while_suspended(node: object) -> None:
    """Case 116."""
    pid = await started({"a": 1}, name="kv")
    assert await otp.sys.get_state(pid) == {"a": 1}
    assert await otp.sys.get_state("kv", timeout=1.0) == {"a": 1}
    await otp.sys.suspend(pid)
    assert await otp.sys.get_state(pid) == {"a": 1}
    await otp.sys.resume(pid)
    await GenServer.stop(pid)


async def test_replace_state(node: object) -> None:
    """Case 117."""
    pid = await started(1)
    assert await otp.sys.replace_state(pid, lambda s: s + 1) == 2
    assert await GenServer.call(pid, "state") == 2

    def fail(state: int) -> int:
        raise ValueError("fail")

    with pytest.raises(otp.sys.SysError) as info:
        await otp.sys.replace_state(pid, fail)
    assert info.value.reason[0] == "callback_failed"
    assert isinstance(info.value.reason[1], ValueError)
    assert await otp.sys.get_state(pid) == 2
    await otp.sys.suspend(pid)
    assert await otp.sys.replace_state(pid, lambda s: s * 10) == 20
    await otp.sys.resume(pid)
    assert await GenServer.call(pid, "state") == 20
    await GenServer.stop(pid)


async def test_a_suspended_server_queues_calls_until_resumed(node: object) -> None:
    """Case 118."""
    pid = await started("s")
    await otp.sys.suspend(pid)
    with pytest.raises(otp.CallTimeout):
        await GenServer.call(pid, "state", timeout=0.05)
    req = GenServer.send_request(pid, ("set", "new"))
    GenServer.cast(pid, ("notify", otp.self(), "cast handled"))
    await refute_receive(timeout=0.05)
    info = otp.process_info(pid)
    # the timed-out call is still queued too; its reply will be dropped
    assert info is not None and info.message_queue_len == 3
    await otp.sys.resume(pid)
    assert await GenServer.wait_response(req) == "ok"
    await assert_receive("cast handled")
    assert await GenServer.call(pid, "state") == "new"
    await GenServer.stop(pid)


async def test_get_status(node: object) -> None:
    """Case 119, by pid and by name."""
    pid = await started({"k": "v"}, name="st")
    for server in (pid, "st"):
        status = await otp.sys.get_status(server)
        assert status.pid == pid and status.behaviour is Echo and status.status == "running"
        assert status.parent is None and status.name == "st" and status.state == {"k": "v"}
    await otp.sys.suspend(pid)
    assert (await otp.sys.get_status(pid)).status == "suspended"
    await otp.sys.resume(pid)
    await GenServer.stop(pid)
    linked = pid_of(await Echo.start_link(None))
    assert (await otp.sys.get_status(linked)).parent == otp.self()
    otp.unlink(linked)
    await GenServer.stop(linked)


class Secretive(GenServer[dict[str, Any]]):
    """format_status hides the password, in status and in crash reports."""

    def init(self, arg: dict[str, Any]) -> dict[str, Any]:
        return arg

    def handle_call(self, request: object, from_: object, state: dict[str, Any]) -> Reply[Any]:
        if request == "crash":
            raise RuntimeError("crash with a secret")
        return Reply(state, state)

    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        state = {k: ("***" if k == "password" else v) for k, v in status["state"].items()}
        shown = {**status, "state": state}
        if "reason" in status:
            shown["reason"] = "redacted reason"
        if "message" in status:
            shown["message"] = "redacted message"
        return shown


async def test_format_status_shapes_status_and_crash_reports(node: object) -> None:
    """Cases 120 and 122."""
    pid = pid_of(await Secretive.start({"user": "u", "password": "p"}))
    assert (await otp.sys.get_status(pid)).state == {"user": "u", "password": "***"}
    with capture_reports() as reports, pytest.raises(otp.CallError):
        await GenServer.call(pid, "crash")
    (report,) = [r for r in reports if isinstance(r, ServerReport)]
    assert report.state == {"user": "u", "password": "***"}
    assert report.reason == "redacted reason" and report.last_message == "redacted message"


class BadFormat(Crashable):
    def format_status(self, status: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("format_status is broken")


async def test_a_crashing_format_status_is_replaced_by_a_placeholder(node: object) -> None:
    """Case 121."""
    pid = pid_of(await BadFormat.start("s"))
    assert (await otp.sys.get_status(pid)).state == "BadFormat.format_status crashed"
    assert await GenServer.call(pid, "get") == "s"  # still working
    with capture_reports() as reports, pytest.raises(otp.CallError):
        await GenServer.call(pid, "crash")
    (report,) = [r for r in reports if isinstance(r, ServerReport)]
    assert report.state == "BadFormat.format_status crashed"


class Crashing(GenServer[str]):
    def init(self, arg: str) -> str:
        otp.process_flag("trap_exit", True)
        return arg

    def handle_cast(self, msg: object, state: str) -> NoReply[str]:
        raise RuntimeError("first crash")

    def terminate(self, reason: object, state: str) -> None:
        raise ValueError("crash in terminate")


async def test_a_crash_in_terminate_becomes_the_exit_reason(node: object) -> None:
    """Case 120: the linked parent gets EXIT with terminate's error."""
    otp.process_flag("trap_exit", True)
    pid = pid_of(await Crashing.start_link("s"))
    with capture_reports() as reports:
        GenServer.cast(pid, "go")
        exit_msg = await assert_receive(otp.Exit)
    assert exit_msg.pid == pid and isinstance(exit_msg.reason, ValueError)
    (report,) = [r for r in reports if isinstance(r, ServerReport)]
    assert isinstance(report.reason, ValueError)


class Versioned(GenServer[Any]):
    vsn = "2"

    def init(self, arg: Any) -> Any:
        return arg

    def handle_call(self, request: object, from_: object, state: Any) -> Reply[Any]:
        return Reply(state, state)

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        if extra == "fail":
            state["mutated"] = True
            raise RuntimeError("cannot convert")
        return {"from": old_vsn, "old": state, "extra": extra}


async def test_change_code_on_a_suspended_server(node: object) -> None:
    """Case 123."""
    pid = pid_of(await Versioned.start({"v": 1}))
    with pytest.raises(otp.sys.SysError, match="not_suspended"):
        await otp.sys.change_code(pid, "1", None)
    await otp.sys.suspend(pid)
    await otp.sys.change_code(pid, "1", "x")
    await otp.sys.resume(pid)
    assert await GenServer.call(pid, "state") == {"from": "1", "old": {"v": 1}, "extra": "x"}
    await GenServer.stop(pid)


async def test_a_failing_code_change_keeps_the_old_state(node: object) -> None:
    """Case 123: the server stays alive with its old state."""
    pid = pid_of(await Versioned.start(("immutable", "state")))
    await otp.sys.suspend(pid)
    with pytest.raises(otp.sys.SysError) as info:
        await otp.sys.change_code(pid, "1", "fail")
    assert info.value.reason[0] == "code_change_failed"
    await otp.sys.resume(pid)
    assert await GenServer.call(pid, "state") == ("immutable", "state")
    await GenServer.stop(pid)


async def test_default_code_change_keeps_the_state_and_vsn_defaults_to_a_hash(
    node: object,
) -> None:
    pid = await started("same")
    await otp.sys.suspend(pid)
    await otp.sys.change_code(pid, "0", None)
    await otp.sys.resume(pid)
    assert await GenServer.call(pid, "state") == "same"
    await GenServer.stop(pid)
    assert Versioned.vsn == "2"
    assert len(Echo.vsn) == 16 and Echo.vsn == Echo.vsn


async def test_sys_on_a_process_that_is_not_there(node: object) -> None:
    with pytest.raises(otp.CallError) as info:
        await otp.sys.get_state("nobody")
    assert info.value.reason == otp.NOPROC


async def test_an_unknown_system_request_is_refused(node: object) -> None:
    from otp import _call

    pid = await started("s")
    status, value = await _call.call(pid, "frobnicate", 1.0, _kind="system")
    assert status == "error" and value == ("unknown_system_request", "frobnicate")
    await GenServer.stop(pid)
