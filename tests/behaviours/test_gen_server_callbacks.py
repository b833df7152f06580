"""continue, terminate, missing callbacks (otp-cases §10, cases 110-114)."""

from __future__ import annotations

from unittest import mock

import pytest

import otp
from behaviours import GenServer, NoReply, Reply, UnexpectedMessage
from otp.testing import assert_receive, capture_reports, refute_receive

from .samples import Bare, Continuing, Echo, pid_of


async def test_continue_from_init_runs_before_any_queued_message(node: object) -> None:
    """Case 110: even before a message init sent to itself."""
    pid = pid_of(await Continuing.start(otp.self()))
    assert await assert_receive(lambda m: m[0] == "continued") == ("continued", ("started",))
    assert await GenServer.call(pid, "state") == ("continued", "queued before continue")
    await GenServer.stop(pid)


async def test_continue_from_call_replies_first_then_continues(node: object) -> None:
    """Case 111."""
    pid = pid_of(await Echo.start(()))
    assert await GenServer.call(pid, ("continue", ("notify", otp.self()))) == "continuing"
    assert await assert_receive(lambda m: m[0] == "continued") == ("continued", ())
    # a continue can chain another continue; all run before the next message
    assert await GenServer.call(pid, ("continue", ("chain", 3))) == "continuing"
    assert await GenServer.call(pid, "state") == (3, 2, 1)
    # Stop from handle_continue ends the server with that reason
    ref = otp.monitor(pid)
    assert await GenServer.call(pid, ("continue", ("stop", otp.NORMAL))) == "continuing"
    assert await assert_receive(otp.Down) == otp.Down(ref, pid, otp.NORMAL)


class ContinueFromCastAndInfo(GenServer[list[object]]):
    def init(self, arg: None) -> list[object]:
        return []

    def handle_cast(self, msg: object, state: list[object]) -> NoReply[list[object]]:
        return NoReply([*state, ("cast", msg)], continue_="after cast")

    def handle_info(self, msg: object, state: list[object]) -> NoReply[list[object]]:
        return NoReply([*state, ("info", msg)], continue_="after info")

    def handle_continue(self, term: object, state: list[object]) -> NoReply[list[object]]:
        return NoReply([*state, term])

    def handle_call(self, request: object, from_: object, state: list[object]) -> NoReply[object]:
        GenServer.reply(from_, state)  # type: ignore[arg-type]
        return NoReply(state)


async def test_continue_from_cast_and_info(node: object) -> None:
    pid = pid_of(await ContinueFromCastAndInfo.start())
    GenServer.cast(pid, "c")
    otp.send(pid, "i")
    assert await GenServer.call(pid, "state") == [
        ("cast", "c"),
        "after cast",
        ("info", "i"),
        "after info",
    ]
    await GenServer.stop(pid)


async def test_missing_handle_call_and_cast_crash_the_server(node: object) -> None:
    """Case 112."""
    pid = pid_of(await Bare.start(None))
    with capture_reports(), pytest.raises(otp.CallError) as info:
        await GenServer.call(pid, "hello")
    assert isinstance(info.value.reason, NotImplementedError)
    assert "Bare received the call 'hello' but defines no handle_call" in str(info.value.reason)
    assert not otp.is_alive(pid)

    started = await Bare.start_monitor(None)
    assert started is not None
    pid, _ref = started
    with capture_reports():
        GenServer.cast(pid, "hello")
        down = await assert_receive(otp.Down)
    assert isinstance(down.reason, NotImplementedError) and "handle_cast" in str(down.reason)


async def test_missing_handle_info_logs_a_warning_and_keeps_going(node: object) -> None:
    """Case 113."""
    pid = pid_of(await Bare.start("s"))
    with capture_reports() as reports:
        otp.send(pid, "unexpected")
        assert await otp.sys.get_state(pid) == "s"
    assert reports == [UnexpectedMessage(pid, None, Bare, "unexpected")]
    await GenServer.stop(pid)


class BrokenInfo(GenServer[None]):
    def init(self, arg: None) -> None:
        return None

    def handle_info(self, msg: object, state: None) -> NoReply[None]:
        return self.undefined_function()  # type: ignore[attr-defined,no-any-return]


async def test_a_handle_info_that_fails_crashes_the_server(node: object) -> None:
    """Case 113, second part."""
    started = await BrokenInfo.start_monitor()
    assert started is not None
    pid, _ = started
    with capture_reports():
        otp.send(pid, "boom")
        down = await assert_receive(otp.Down)
    assert isinstance(down.reason, AttributeError)


async def parent_of(server: type[GenServer[object]], arg: object, top: otp.Pid) -> None:
    """A parent that starts `server` linked, reports its pid, then waits to be told to exit."""
    pid = pid_of(await server.start_link(arg))
    otp.send(top, ("child", pid))
    reason = await otp.receive()
    otp.exit(reason)


class TrapsExits(GenServer[str]):
    def init(self, arg: str) -> str:
        otp.process_flag("trap_exit", True)
        return arg

    def handle_info(self, msg: object, state: str) -> NoReply[str]:
        otp.send("watcher", ("info", msg))
        return NoReply(state)

    def terminate(self, reason: object, state: str) -> None:
        otp.send("watcher", ("terminated", reason, state))


async def test_a_trapping_server_runs_terminate_when_its_parent_exits(node: object) -> None:
    """Case 114: parent EXIT -> terminate(reason), exit with reason."""
    otp.register("watcher", otp.self())
    parent = otp.spawn(parent_of, TrapsExits, "st", otp.self())
    otp.register("the_parent", parent)  # terminate also runs when the parent is registered
    _, child = await assert_receive(lambda m: m[0] == "child")
    ref = otp.monitor(child)
    otp.send(parent, ("shutdown", "parent going"))
    assert await assert_receive(lambda m: m[0] == "terminated") == (
        "terminated",
        ("shutdown", "parent going"),
        "st",
    )
    assert await assert_receive(otp.Down) == otp.Down(ref, child, ("shutdown", "parent going"))


async def test_exit_from_a_non_parent_goes_to_handle_info(node: object) -> None:
    """Case 114: EXIT from a process that is not its parent."""
    otp.register("watcher", otp.self())
    pid = pid_of(await TrapsExits.start("st"))
    otp.exit(pid, "from a stranger")
    assert await assert_receive(lambda m: m[0] == "info") == (
        "info",
        otp.Exit(otp.self(), "from a stranger"),
    )
    await GenServer.stop(pid)
    await assert_receive(lambda m: m[0] == "terminated")


async def test_a_server_that_does_not_trap_dies_with_its_parent_without_terminate(
    node: object,
) -> None:
    """Case 114: no trap_exit, no terminate."""
    otp.register("watcher", otp.self())
    parent = otp.spawn(parent_of, Echo, "st", otp.self())
    _, child = await assert_receive(lambda m: m[0] == "child")
    ref = otp.monitor(child)
    otp.send(parent, otp.SHUTDOWN)
    assert await assert_receive(otp.Down) == otp.Down(ref, child, otp.SHUTDOWN)
    await refute_receive(lambda m: m[0] == "terminated", timeout=0.02)


class Doubler:
    """A callable object as a callback: not a method, so it gets no callbacks object."""

    def __call__(self, request: object, from_: object, state: int) -> Reply[int]:
        return Reply(state * 2, state)


def _cast(msg: int, state: int) -> NoReply[int]:
    return NoReply(state + msg)


class OddCallbacks(GenServer[int]):
    """Callbacks that are not plain methods: each is called as Python would call it."""

    def init(self, arg: int) -> int:
        return arg

    handle_call = Doubler()
    handle_cast = staticmethod(_cast)

    @classmethod
    def handle_info(cls, msg: object, state: int) -> NoReply[int]:
        assert cls is OddCallbacks
        return NoReply(state - 1)


async def test_callbacks_that_are_not_plain_methods(node: object) -> None:
    pid = pid_of(await OddCallbacks.start(5))
    GenServer.cast(pid, 10)
    otp.send(pid, "tick")
    assert await GenServer.call(pid, "double") == 28
    await GenServer.stop(pid)


class Plain(GenServer[int]):
    def init(self, arg: int) -> int:
        return arg

    def handle_call(self, request: object, from_: object, state: int) -> Reply[int]:
        return Reply(("plain", request), state)


async def test_a_callback_mocked_on_the_class_is_called_as_before(node: object) -> None:
    with mock.patch.object(Plain, "handle_call", return_value=Reply("mocked", 5)) as patched:
        pid = pid_of(await Plain.start(5))
        assert await GenServer.call(pid, "hello") == "mocked"
    patched.assert_called_once_with("hello", mock.ANY, 5)
    await GenServer.stop(pid)


def _answer(request: object, from_: object, state: int) -> Reply[int]:
    return Reply(("static", request), state)


async def test_a_callback_replaced_on_the_class_by_a_staticmethod(
    node: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Plain, "handle_call", staticmethod(_answer))
    pid = pid_of(await Plain.start(5))
    assert await GenServer.call(pid, "hello") == ("static", "hello")
    await GenServer.stop(pid)


class PerInstance(GenServer[int]):
    """A callback set on the instance (in init) wins over the class's, as for any method."""

    def init(self, arg: int) -> int:
        self.handle_cast = self.add  # type: ignore[method-assign]
        return arg

    def add(self, msg: int, state: int) -> NoReply[int]:
        return NoReply(state + msg)

    def handle_call(self, request: object, from_: object, state: int) -> Reply[int]:
        return Reply(state, state)


async def test_a_callback_set_on_the_instance(node: object) -> None:
    pid = pid_of(await PerInstance.start(1))
    GenServer.cast(pid, 2)
    assert await GenServer.call(pid, "state") == 3
    await GenServer.stop(pid)
