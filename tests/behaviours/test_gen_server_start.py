"""GenServer start, naming and stop (otp-cases §8, cases 82-93)."""

from __future__ import annotations

import gc
import math
import weakref

import pytest

import otp
from behaviours import BadReturn, GenServer, Init, Reply, Stop
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import Bare, Echo, NoInit, Sleepy, pid_of


async def test_start_anonymous_then_stop_from_a_call(node: object) -> None:
    """Case 82."""
    pid = pid_of(await Echo.start(0))
    assert pid is not None
    assert await GenServer.call(pid, "state") == 0
    otp.monitor(pid)
    assert await GenServer.call(pid, ("stop", "stopped", "ok")) == "ok"
    assert (await assert_receive(otp.Down)).reason == "stopped"
    with pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, "state")
    assert info.value.reason == otp.NOPROC


async def test_start_timeout(node: object) -> None:
    """Case 83: init within the start timeout is fine; past it, StartError(TIMEOUT)."""
    pid = pid_of(await Sleepy.start(("sleep", 0.001), timeout=5.0))
    assert pid is not None
    with pytest.raises(otp.StartError) as info:
        await Sleepy.start_link(("sleep", 10), timeout=0.02)
    assert info.value.reason == otp.TIMEOUT
    assert otp.processes() == [otp.self(), pid]
    await refute_receive(timeout=0)
    await GenServer.stop(pid)


@pytest.mark.parametrize("how", ["start", "start_link", "start_monitor"])
async def test_init_results_and_what_start_returns(node: object, how: str) -> None:
    """Case 84, for start, start_link and start_monitor."""
    start = getattr(Echo, how)
    assert await start(("init_returns", otp.IGNORE)) is None

    with pytest.raises(otp.StartError) as info:
        await start(("init_returns", Stop("no")))
    assert info.value.reason == "no"

    with pytest.raises(otp.StartError) as info:
        await start(("init_returns", Reply(1, 2)))
    assert isinstance(info.value.reason, BadReturn) and "Echo.init returned Reply" in str(
        info.value.reason
    )

    with capture_reports():
        with pytest.raises(otp.StartError) as info:
            await start(("init_raises", KeyError("k")))
        assert isinstance(info.value.reason, KeyError)

        with pytest.raises(otp.StartError) as info:
            await start(("init_exits", "gone"))
        assert info.value.reason == "gone"

    with pytest.raises(otp.StartError) as info:
        await getattr(Sleepy, how)(("sleep", 10), timeout=0.01)
    assert info.value.reason == otp.TIMEOUT

    # The failed process is gone when start returns: its name is free every time.
    with capture_reports():
        for _ in range(5):
            with pytest.raises(otp.StartError):
                await start(("init_registers", "resource"))
            assert otp.whereis("resource") is None
    await refute_receive(timeout=0)  # no Exit, no Down, no stray answer
    assert otp.processes() == [otp.self()]


async def test_a_failed_start_link_does_not_kill_a_caller_that_does_not_trap(
    node: object,
) -> None:
    """A failed init is reported by StartError, not by an exit signal through the link."""
    assert otp.process_flag("trap_exit", False) is False
    with capture_reports(), pytest.raises(otp.StartError):
        await Echo.start_link(("init_exits", "abnormal"))
    assert otp.is_alive(otp.self())


async def test_start_link_with_stop_from_a_call_sends_exit_to_the_trapping_caller(
    node: object,
) -> None:
    """Case 85."""
    otp.process_flag("trap_exit", True)
    pid = pid_of(await Echo.start_link(None))
    assert await GenServer.call(pid, ("stop", "stopped", "ok")) == "ok"
    assert await assert_receive(otp.Exit) == otp.Exit(pid, "stopped")


async def test_start_monitor_returns_the_monitor(node: object) -> None:
    """Case 86."""
    started = await Echo.start_monitor(None)
    assert started is not None
    pid, ref = started
    GenServer.cast(pid, ("stop", "stopped"))
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, "stopped")


async def test_a_second_start_under_a_taken_name_is_already_started(node: object) -> None:
    """Case 87."""
    pid = pid_of(await Echo.start(1, name="echo"))
    for start in (Echo.start, Echo.start_link, Echo.start_monitor):
        with pytest.raises(otp.AlreadyStartedError) as info:
            await start(2, name="echo")
        assert info.value.pid == pid
    assert await GenServer.call("echo", "state") == 1
    assert await GenServer.call(("echo", "nonode@nohost"), "state") == 1
    await GenServer.stop("echo")
    assert otp.whereis("echo") is None
    pid2 = pid_of(await Echo.start(3, name="echo"))
    assert pid2 != pid
    await GenServer.stop(pid2)
    await refute_receive(timeout=0)


async def test_init_ignore_or_stop_leaves_the_name_free(node: object) -> None:
    """Case 88."""
    for _ in range(100):
        assert await Echo.start(("init_returns", otp.IGNORE), name="n") is None
        assert otp.whereis("n") is None
        with pytest.raises(otp.StartError):
            await Echo.start_link(("init_returns", Stop("x")), name="n")
        assert otp.whereis("n") is None


async def test_a_server_without_init_fails_to_start(node: object) -> None:
    """Case 89."""
    with capture_reports():
        for start in (NoInit.start, NoInit.start_link):
            with pytest.raises(otp.StartError) as info:
                await start(None)
            assert isinstance(info.value.reason, NotImplementedError)
            assert "NoInit defines no init" in str(info.value.reason)
    await refute_receive(timeout=0)


async def test_stop(node: object) -> None:
    """Case 90: stop by pid and by name; stop again; stop with a reason; bad timeout."""
    pid = pid_of(await Echo.start(None, name="s"))
    await GenServer.stop("s")
    assert not otp.is_alive(pid)
    with pytest.raises(otp.ExitError) as info:
        await GenServer.stop("s")
    assert info.value.reason == otp.NOPROC
    with pytest.raises(otp.ExitError) as info:
        await GenServer.stop(pid)
    assert info.value.reason == otp.NOPROC

    pid = pid_of(await Echo.start(None))
    with pytest.raises(ValueError, match="timeout"):
        await GenServer.stop(pid, otp.NORMAL, -1)
    assert otp.is_alive(pid)
    ref = otp.monitor(pid)
    await GenServer.stop(pid, ("shutdown", "done"), math.inf)
    assert (await assert_receive(otp.Down)) == otp.Down(ref, pid, ("shutdown", "done"))


async def test_stop_of_a_server_with_default_terminate(node: object) -> None:
    """Case 91."""
    for reason in (otp.NORMAL, ("error", "test")):
        pid = pid_of(await Bare.start(None))
        ref = otp.monitor(pid)
        with capture_reports():
            await GenServer.stop(pid, reason)
        assert await assert_receive(otp.Down) == otp.Down(ref, pid, reason)


class BadTerminate(GenServer[None]):
    def init(self, arg: None) -> None:
        return None

    def terminate(self, reason: object, state: None) -> None:
        raise AttributeError("terminate is broken")


async def test_a_terminate_that_raises_makes_stop_raise(node: object) -> None:
    """Case 92."""
    pid = pid_of(await BadTerminate.start(None))
    with capture_reports() as reports, pytest.raises(otp.ExitError) as info:
        await GenServer.stop(pid)
    assert isinstance(info.value.reason, AttributeError)
    assert any(isinstance(r, otp.reports.CrashReport) for r in reports)


async def test_async_callbacks(node: object) -> None:
    pid = pid_of(await Sleepy.start_link("s"))
    assert await GenServer.call(pid, ("sleep", 0.001)) == ("slept", ("sleep", 0.001))
    await GenServer.stop(pid)


async def test_init_with_timeout_fires_handle_info_timeout(node: object) -> None:
    class Timing(GenServer[object]):
        def init(self, parent: otp.Pid) -> Init[object]:
            return Init(parent, timeout=0.01)

        def handle_info(self, msg: object, state: object) -> Stop[object]:
            otp.send(state, ("info", msg))
            return Stop(otp.NORMAL, state)

    _, _ref = await Timing.start_monitor(otp.self())  # type: ignore[misc]
    assert await assert_receive(("info", otp.TIMEOUT))
    await assert_receive(otp.Down)


async def test_child_spec_defaults_and_overrides(node: object) -> None:
    spec = Echo.child_spec(5)
    assert spec.id is Echo and spec.restart == "permanent" and spec.shutdown == 5.0
    assert spec.type == "worker" and spec.modules == (Echo,)
    fn, arg = spec.start  # type: ignore[misc]
    pid = await fn(arg)
    assert await GenServer.call(pid, "state") == 5
    named = Echo.child_spec(6, name="six", restart="transient", id="six")
    assert named.id == "six" and named.restart == "transient"
    fn, *args = named.start  # type: ignore[misc]
    pid2 = await fn(*args)
    assert otp.whereis("six") == pid2
    with pytest.raises(TypeError, match="unknown child spec field"):
        Echo.child_spec(1, colour="red")
    otp.process_flag("trap_exit", True)
    for p in (pid, pid2):
        await GenServer.stop(p)
        await assert_receive(otp.Exit)


async def test_start_needs_a_str_name(node: object) -> None:
    with pytest.raises(TypeError, match="name is a str"):
        await Echo.start(None, name=42)  # type: ignore[arg-type]
    assert otp.processes() == [otp.self()]


class Payload:
    """An init argument a test can watch die (a weak reference to it goes dead)."""


class Forgets(GenServer[int]):
    def init(self, arg: Payload) -> int:
        return 0

    def handle_call(self, request: object, from_: object, state: int) -> Reply[int]:
        return Reply(state, state)


async def test_a_running_server_holds_neither_its_init_argument_nor_spawn_arguments(
    node: object,
) -> None:
    payload = Payload()
    watch = weakref.ref(payload)
    pid = pid_of(await Forgets.start_link(payload))
    del payload
    gc.collect()
    assert watch() is None  # the server's state does not hold it, so nothing may
    assert await GenServer.call(pid, "state") == 0
    await GenServer.stop(pid)
