"""GenServer calls, casts, info, timeouts and errors (otp-cases §9, cases 94-109)."""

from __future__ import annotations

import pytest

import otp
from behaviours import BadReturn, GenServer, ServerReport
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import Echo, pid_of


async def start_echo(state: object = None, **kw: object) -> otp.Pid:
    pid = await Echo.start(state, **kw)  # type: ignore[arg-type]
    assert pid is not None
    return pid


async def watch_terminate() -> None:
    otp.register("watcher", otp.self())


async def test_a_reply_can_come_later_from_another_callback(node: object) -> None:
    """Case 94."""
    pid = await start_echo()
    assert await GenServer.call(pid, ("reply_later", 0.001)) == "delayed"
    await GenServer.stop(pid)


async def test_a_call_timeout_leaves_the_server_alone_and_no_late_reply(node: object) -> None:
    """Case 95."""
    pid = await start_echo("s")
    with pytest.raises(otp.CallTimeout) as info:
        await GenServer.call(pid, ("reply_later", 0.03), timeout=0.001)
    err = info.value
    assert err.reason == otp.TIMEOUT and isinstance(err, TimeoutError)
    assert err.server == pid and err.request == ("reply_later", 0.03)
    assert "timeout" in str(err)
    # this reply comes after the late one was sent (timers fire in order): it was dropped
    assert await GenServer.call(pid, ("reply_later", 0.05)) == "delayed"
    await refute_receive(timeout=0)
    assert await GenServer.call(pid, "state") == "s"
    await GenServer.stop(pid)


async def test_a_reply_timeout_is_cancelled_by_the_next_call(node: object) -> None:
    """Case 96."""
    otp.register("watcher", otp.self())
    pid = await start_echo("s")
    assert await GenServer.call(pid, ("reply_with_timeout", 0.3)) == "ok"
    assert await GenServer.call(pid, "state") == "s"  # within the timeout: cancels it
    await refute_receive(("timed_out", pid), timeout=0.4)
    assert await GenServer.call(pid, ("reply_with_timeout", 0.01)) == "ok"
    await assert_receive(("timed_out", pid))
    assert await GenServer.call(pid, "state") == ("timed_out", "s")
    await GenServer.stop(pid)


async def test_a_bad_return_from_handle_call_fails_the_call_and_kills_the_server(
    node: object,
) -> None:
    """Case 97."""
    pid = await start_echo()
    ref = otp.monitor(pid)
    with capture_reports() as reports, pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, ("return", "garbage"))
    reason = info.value.reason
    assert isinstance(reason, BadReturn) and reason.value == "garbage"
    assert "Echo.handle_call returned 'garbage'" in str(reason)
    assert (await assert_receive(otp.Down)) == otp.Down(ref, pid, reason)
    assert any(isinstance(r, ServerReport) and r.reason is reason for r in reports)


async def test_a_crash_in_handle_call_fails_the_call_kills_the_parent_and_is_reported(
    node: object,
) -> None:
    """Case 98."""
    otp.process_flag("trap_exit", True)
    pid = pid_of(await Echo.start_link("the state", name="crasher"))
    crash = RuntimeError("crashed")
    with capture_reports() as reports, pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, ("raise", crash))
    assert info.value.reason is crash
    assert await assert_receive(otp.Exit) == otp.Exit(pid, crash)
    server_reports = [r for r in reports if isinstance(r, ServerReport)]
    assert len(server_reports) == 1
    report = server_reports[0]
    assert report.reason is crash and report.state == "the state" and report.name == "crasher"
    assert report.last_message[0] == "$gen_call" and report.last_message[2] == ("raise", crash)
    assert report.client == otp.self() and report.behaviour is Echo
    assert any(isinstance(r, otp.reports.CrashReport) for r in reports)  # then a crash report


@pytest.mark.parametrize(
    "request_",
    [
        ("exit", otp.SHUTDOWN),
        ("exit", ("shutdown", "r")),
        ("stop", otp.SHUTDOWN),
        ("stop", ("shutdown", "r")),
    ],
)
async def test_shutdown_reasons_reach_caller_and_parent_without_reports(
    node: object, request_: tuple[str, object]
) -> None:
    """Case 99."""
    otp.process_flag("trap_exit", True)
    pid = pid_of(await Echo.start_link(None))
    with capture_reports() as reports, pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, request_)
    assert info.value.reason == request_[1]
    assert await assert_receive(otp.Exit) == otp.Exit(pid, request_[1])
    assert reports == []


async def test_calls_to_dead_or_unregistered_servers_fail_with_noproc(node: object) -> None:
    """Case 100."""
    pid = await start_echo()
    await GenServer.stop(pid)
    for server in (pid, "nobody", ("nobody", "nonode@nohost")):
        with pytest.raises(otp.CallError) as info:
            await GenServer.call(server, "state")
        assert info.value.reason == otp.NOPROC
        assert info.value.server == server
    assert "no process is registered under that name" in str(info.value)
    await refute_receive(timeout=0)


async def test_a_call_to_a_node_we_are_not_connected_to_fails(node: object) -> None:
    """As gen:call: ("nodedown", node), for a call, a stop and a sys request alike."""
    with pytest.raises(otp.CallError, match="not connected") as info:
        await GenServer.call(("name", "other@host"), "x", timeout=0.01)
    assert info.value.reason == ("nodedown", "other@host")
    with pytest.raises(otp.ExitError) as stopped:
        await GenServer.stop(("name", "other@host"))
    assert stopped.value.reason == ("nodedown", "other@host")
    with pytest.raises(otp.CallError) as info:
        await otp.sys.get_state(("name", "other@host"))
    assert info.value.reason == ("nodedown", "other@host")
    await refute_receive(timeout=0)


async def test_calling_self_fails_at_once(node: object) -> None:
    """Case 102."""
    otp.register("me", otp.self())
    for server in (otp.self(), "me"):
        with pytest.raises(otp.CallError, match="calling_self") as info:
            await GenServer.call(server, "hello")
        assert info.value.reason == "calling_self"
    await refute_receive(timeout=0)


async def test_cast(node: object) -> None:
    """Case 103: cast runs handle_cast; NoReply timeouts fire; Stop runs terminate."""
    await watch_terminate()
    pid = await start_echo("s")
    assert GenServer.cast(pid, ("set", "cast state")) is None
    assert await GenServer.call(pid, "state") == "cast state"
    GenServer.cast(pid, ("timeout", 0.01))
    await assert_receive(("timed_out", pid))
    assert await GenServer.call(pid, "state") == ("timed_out", "cast state")
    GenServer.cast(pid, ("stop", "casted"))
    msg = await assert_receive(lambda m: m[0] == "terminated")
    assert msg == ("terminated", pid, "casted", ("timed_out", "cast state"))
    GenServer.cast(pid, "to a dead server is fine")
    GenServer.cast("nobody", "to no one is fine")


async def test_info(node: object) -> None:
    """Case 104."""
    await watch_terminate()
    pid = await start_echo("s")
    otp.send(pid, "hello")
    assert await GenServer.call(pid, "state") == ("info", "hello")
    otp.send(pid, ("timeout", 0.01))
    await assert_receive(("timed_out", pid))
    assert await GenServer.call(pid, "state") == ("timed_out", ("info", "hello"))
    with capture_reports():
        otp.send(pid, ("stop", "info stop"))
        msg = await assert_receive(lambda m: m[0] == "terminated")
    assert msg[2] == "info stop"


async def test_a_system_message_does_not_cancel_an_idle_timeout(node: object) -> None:
    """Case 105."""
    otp.register("watcher", otp.self())
    pid = await start_echo("s")
    GenServer.cast(pid, ("timeout", 0.05))
    await otp.sys.get_status(pid)  # handled before the timeout: does not cancel it
    await assert_receive(("timed_out", pid))
    GenServer.cast(pid, ("timeout", 0.05))
    req = GenServer.send_request(pid, "state")  # queued behind the cast: cancels it
    assert await GenServer.wait_response(req) == ("timed_out", "s")
    await refute_receive(("timed_out", pid), timeout=0.1)
    await GenServer.stop(pid)


async def test_send_request_wait_and_check_response(node: object) -> None:
    """Case 107."""
    pid = await start_echo("s")
    req = GenServer.send_request(pid, ("reply_later", 0.02))
    with pytest.raises(TimeoutError):
        await GenServer.wait_response(req, 0)
    assert await GenServer.wait_response(req) == "delayed"

    req = GenServer.send_request(pid, "state")
    assert GenServer.check_response("foreign", req) == "no_reply"
    msg = await otp.receive()
    assert GenServer.check_response(msg, req) == ("reply", "s")

    req = GenServer.send_request(pid, ("stop", ("shutdown", "done")))
    with pytest.raises(otp.CallError) as info:
        await GenServer.wait_response(req)
    assert info.value.reason == ("shutdown", "done")

    req = GenServer.send_request(pid, "state")
    with pytest.raises(otp.CallError) as info:
        await GenServer.wait_response(req, 1.0)
    assert info.value.reason == otp.NOPROC
    await refute_receive(timeout=0)


async def test_hibernate_is_accepted_and_keeps_state(node: object) -> None:
    """Case 115."""
    pid = await start_echo("s")
    assert await GenServer.call(pid, "hibernate") == "hibernating"
    await otp.sys.suspend(pid)
    await otp.sys.resume(pid)
    assert await GenServer.call(pid, "state") == "s"
    await GenServer.stop(pid)


async def test_a_bad_call_timeout_is_refused_before_sending(node: object) -> None:
    pid = await start_echo("s")
    for bad in (-1, "5", None):
        with pytest.raises(ValueError, match="timeout"):
            await GenServer.call(pid, "state", timeout=bad)  # type: ignore[arg-type]
    assert await GenServer.call(pid, "state") == "s"
    await GenServer.stop(pid)


async def test_a_server_killed_during_a_call_fails_it_with_its_reason(node: object) -> None:
    pid = await start_echo()

    async def killer() -> None:
        otp.exit(pid, "murdered")

    req = GenServer.send_request(pid, ("reply_later", 10))
    otp.spawn(killer)
    with pytest.raises(otp.CallError) as info:
        await GenServer.wait_response(req)
    assert info.value.reason == "murdered"
