"""GenStatem against gen_statem's rules (otp-cases.md section 12, cases 124-132)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import pytest

import otp
from behaviours import Supervisor
from behaviours.gen_statem import (
    EventTimeout,
    GenericTimeout,
    GenStatem,
    KeepState,
    NextEvent,
    NextState,
    Postpone,
    RepeatState,
    ReplyTo,
    StateTimeout,
    Stop,
    StopAndReply,
)
from otp.testing import assert_receive


def log(data: dict[str, Any], *entry: Any) -> dict[str, Any]:
    return {**data, "log": [*data["log"], entry]}


async def logged(pid: Any) -> list[Any]:
    _, data = await otp.sys.get_state(pid)
    return list(data["log"])


class Switch(GenStatem):
    """Two states; calls say where it is; "flip" moves; everything is logged."""

    state_enter = True

    def init(self, arg: Any) -> Any:
        if arg == "ignore":
            return otp.IGNORE
        if arg == "stop":
            return Stop("no thanks")
        return "off", {"log": []}

    def off(self, event_type: Any, content: Any, data: Any) -> Any:
        return self.either("off", "on", event_type, content, data)

    def on(self, event_type: Any, content: Any, data: Any) -> Any:
        return self.either("on", "off", event_type, content, data)

    def either(self, here: str, there: str, event_type: Any, content: Any, data: Any) -> Any:
        data = log(
            data, here, event_type if type(event_type) is not tuple else event_type[0], content
        )
        match event_type, content:
            case ("call", from_), "where":
                return KeepState(data, [ReplyTo(from_, here)])
            case ("call", from_), "flip":
                return NextState(there, data, [ReplyTo(from_, there)])
            case ("call", from_), "repeat":
                return RepeatState(data, [ReplyTo(from_, here)])
            case ("call", from_), "bad":
                return 42
            case ("call", from_), "stop":
                return StopAndReply("normal", [ReplyTo(from_, "bye")], data)
            case _:
                return KeepState(data)


async def test_start_call_and_stop_in_state_functions_mode(node: object) -> None:
    """Cases 124, 127: the initial enter call passes the state itself as the old state."""
    pid = await Switch.start_link(None, name="switch")
    assert pid is not None and otp.whereis("switch") == pid
    assert await GenStatem.call("switch", "where") == "off"
    assert await GenStatem.call(pid, "flip") == "on"
    assert await GenStatem.call(pid, "where") == "on"
    assert await otp.sys.get_state(pid) == ("on", {"log": await logged(pid)})
    assert (await logged(pid))[:1] == [("off", "enter", "off")]
    await GenStatem.stop(pid)
    with pytest.raises(otp.CallError) as info:
        await GenStatem.call(pid, "where")
    assert info.value.reason == otp.NOPROC


async def test_ignore_stop_and_a_taken_name_at_start(node: object) -> None:
    assert await Switch.start("ignore") is None
    with pytest.raises(otp.StartError) as info:
        await Switch.start("stop")
    assert info.value.reason == "no thanks"
    pid = await Switch.start(None, name="one")
    with pytest.raises(otp.AlreadyStartedError):
        await Switch.start(None, name="one")
    await GenStatem.stop(pid)


async def test_enter_runs_on_changes_and_repeat_not_on_keep(node: object) -> None:
    """Case 127."""
    pid = await Switch.start(None)
    await GenStatem.call(pid, "where")  # keep: no enter
    await GenStatem.call(pid, "flip")  # change: enter on, from off
    await GenStatem.call(pid, "repeat")  # repeat: enter on, from on
    enters = [e for e in await logged(pid) if e[1] == "enter"]
    assert enters == [("off", "enter", "off"), ("on", "enter", "off"), ("on", "enter", "on")]
    await GenStatem.stop(pid)


async def test_a_bad_result_stops_the_machine_and_the_caller_learns_why(node: object) -> None:
    """Case 125."""
    pid: Any = await Switch.start(None)
    with pytest.raises(otp.CallError) as info:
        await GenStatem.call(pid, "bad")
    assert "Switch.off returned 42" in str(info.value.reason)
    assert "'call'" in str(info.value.reason) and "'bad'" in str(info.value.reason)
    assert not otp.is_alive(pid)


async def test_a_call_timeout_leaves_the_machine_running(node: object) -> None:
    """Case 125: a call nobody answers times out; the process lives on."""

    class Silent(GenStatem):
        def init(self, arg: Any) -> Any:
            return "idle", None

        def idle(self, event_type: Any, content: Any, data: Any) -> Any:
            return KeepState()

    pid: Any = await Silent.start(None)
    with pytest.raises(otp.CallTimeout):
        await GenStatem.call(pid, "anyone?", timeout=0.01)
    assert otp.is_alive(pid)
    await GenStatem.stop(pid)


async def test_stop_and_reply_answers_before_the_exit(node: object) -> None:
    """Case 126."""
    otp.process_flag("trap_exit", True)
    pid: Any = await Switch.start_link(None)
    assert await GenStatem.call(pid, "stop") == "bye"
    await assert_receive(otp.Exit(pid, otp.NORMAL))


class Ordered(GenStatem):
    """Case 128: casts postponed in "start" come after the inserted events, in order."""

    callback_mode = "handle_event_function"

    def init(self, arg: Any) -> Any:
        return "start", {"log": []}

    def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        if state == "start":
            if content == "go":
                return NextState(
                    "running",
                    data,
                    [
                        NextEvent("internal", "first"),
                        NextEvent("internal", "second"),
                        EventTimeout(0, "never"),
                    ],
                )
            return KeepState(data, [Postpone()])
        if event_type == ("call", content) or type(event_type) is tuple:
            return KeepState(data, [ReplyTo(event_type[1], data["log"])])
        return KeepState(log(data, event_type, content))


async def test_postponed_events_follow_the_inserted_ones_in_their_order(node: object) -> None:
    pid = await Ordered.start(None)
    for msg in ("a", "b", "c"):
        GenStatem.cast(pid, msg)
    GenStatem.cast(pid, "go")
    assert await GenStatem.call(pid, "log") == [
        ("internal", "first"),
        ("internal", "second"),
        ("cast", "a"),
        ("cast", "b"),
        ("cast", "c"),
    ]  # and the zero event timeout never fired: events were waiting
    await GenStatem.stop(pid)


class Timers(GenStatem):
    """Cases 129 and 130: state, event and generic timeouts."""

    callback_mode = "handle_event_function"

    def init(self, arg: Any) -> Any:
        return "a", {"log": []}

    def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        if (event_type, content) == ("cast", "arm"):
            return KeepState(log(data, state, event_type, content), [EventTimeout(0, "z")])
        if type(event_type) is tuple and event_type[0] == "call":
            from_ = event_type[1]
            match content:
                case "log":
                    return KeepState(data, [ReplyTo(from_, data["log"])])
                case ("state_timeout", t):
                    return KeepState(data, [ReplyTo(from_, "ok"), StateTimeout(t, "st")])
                case ("generic", name, t, msg):
                    return KeepState(data, [ReplyTo(from_, "ok"), GenericTimeout(name, t, msg)])
                case ("goto", there):
                    return NextState(there, data, [ReplyTo(from_, "ok")])
                case "zeros":
                    return KeepState(
                        data,
                        [
                            ReplyTo(from_, "ok"),
                            NextEvent("internal", "inserted"),
                            StateTimeout(0, "st0"),
                            GenericTimeout("g", 0, "g0"),
                            EventTimeout(0, "cancelled by st0"),
                        ],
                    )
        return KeepState(log(data, state, event_type, content))


async def test_a_state_change_cancels_the_state_timeout_and_other_events_do_not(
    node: object,
) -> None:
    pid = await Timers.start(None)
    await GenStatem.call(pid, ("state_timeout", 0.05))
    GenStatem.cast(pid, "other event")  # does not cancel it
    await GenStatem.call(pid, ("generic", "g", 0.06, "after"))  # comes after the state timeout
    while not any(e[1] == ("timeout", "g") for e in await logged(pid)):
        await _tick()
    entries = await logged(pid)
    assert ("a", "state_timeout", "st") in entries
    await GenStatem.call(pid, ("state_timeout", 0.05))
    await GenStatem.call(pid, ("goto", "b"))  # cancels it
    await GenStatem.call(pid, ("generic", "h", 0.1, "h"))  # after the cancelled one was due
    while not any(e[1] == ("timeout", "h") for e in await logged(pid)):
        await _tick()
    assert [e for e in await logged(pid) if e[1] == "state_timeout"] == [
        ("a", "state_timeout", "st")
    ]
    await GenStatem.stop(pid)


async def _tick() -> None:
    """Let a timer come due (the tests wait for what it logs, not for a time)."""
    with contextlib.suppress(TimeoutError):
        await otp.receive(lambda m: False, 0.01)


async def test_zero_timeouts_come_after_inserted_events_in_the_order_set(node: object) -> None:
    """Case 129: and a zero event timeout is cancelled by the queued zero state timeout."""
    pid = await Timers.start(None)
    await GenStatem.call(pid, "zeros")
    assert await GenStatem.call(pid, "log") == [
        ("a", "internal", "inserted"),
        ("a", "state_timeout", "st0"),
        ("a", ("timeout", "g"), "g0"),
    ]
    await GenStatem.stop(pid)


async def test_a_zero_event_timeout_fires_once_the_machine_has_nothing_queued(
    node: object,
) -> None:
    """Case 128's event timeout: inserted events cancel it; a message still in the mailbox
    does not (gen_statem fires zero timeouts before it reads the mailbox again)."""
    pid = await Timers.start(None)
    await otp.sys.suspend(pid)  # both casts are queued before it looks at either
    GenStatem.cast(pid, "arm")
    GenStatem.cast(pid, "next")
    await otp.sys.resume(pid)
    assert await GenStatem.call(pid, "log") == [
        ("a", "cast", "arm"),
        ("a", "timeout", "z"),
        ("a", "cast", "next"),
    ]
    await GenStatem.stop(pid)


class ZeroTimeouts(GenStatem):
    """Zero timeouts wait until the queue is empty, where they can still be cancelled."""

    callback_mode = "handle_event_function"

    def init(self, arg: Any) -> Any:
        return "s1", {"log": []}, [Postpone()]  # (nothing to postpone at the start: ignored)

    def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        if type(event_type) is tuple and event_type[0] == "call":
            return KeepState(data, [ReplyTo(event_type[1], data["log"])])
        data = log(data, state, event_type, content)
        match event_type, content:
            case "cast", "moves":  # a zero state timeout, then a move that cancels it
                return KeepState(data, [StateTimeout(0, "x"), NextEvent("internal", "move")])
            case "internal", "move":
                return NextState("s2", data)
            case "cast", "twice":  # the last setting wins; math.inf cancels
                return KeepState(
                    data,
                    [
                        StateTimeout(0, "a"),
                        StateTimeout(0, "b"),
                        GenericTimeout("g", 0, "g"),
                        GenericTimeout("g", math.inf),
                    ],
                )
            case "cast", "p":
                return KeepState(data, [Postpone()]) if state == "s2" else KeepState(data)
            case "cast", "go":
                return NextState("s3", data, [StateTimeout(0, "after the postponed")])
        return KeepState(data)


async def test_zero_timeouts_can_be_cancelled_and_come_after_postponed_events(
    node: object,
) -> None:
    pid = await ZeroTimeouts.start(None)
    GenStatem.cast(pid, "moves")
    GenStatem.cast(pid, "twice")
    GenStatem.cast(pid, "p")
    GenStatem.cast(pid, "go")
    assert await GenStatem.call(pid, "log") == [
        ("s1", "cast", "moves"),
        ("s1", "internal", "move"),  # the state changed: the zero state timeout is gone
        ("s2", "cast", "twice"),
        ("s2", "state_timeout", "b"),  # only the last setting; g was cancelled
        ("s2", "cast", "p"),
        ("s2", "cast", "go"),
        ("s3", "cast", "p"),  # the postponed event, then the zero state timeout
        ("s3", "state_timeout", "after the postponed"),
    ]
    await GenStatem.stop(pid)


async def test_start_returns_before_the_events_init_inserts_run(node: object) -> None:
    """gen_statem acknowledges the start, then runs init's actions and enter call."""

    class Slow(GenStatem):
        def init(self, me: Any) -> Any:
            return "connecting", me, [NextEvent("internal", "connect")]

        async def connecting(self, event_type: Any, content: Any, me: Any) -> Any:
            if event_type == "internal":
                otp.send(me, ("connecting", otp.self()))
                await otp.receive(lambda m: m == "connected")
                return NextState("up", me)
            return KeepState(me, [Postpone()])

        def up(self, event_type: Any, content: Any, me: Any) -> Any:
            return KeepState(me, [ReplyTo(event_type[1], "up")])

    pid: Any = await Slow.start(otp.self())  # returns while "connect" still waits
    await assert_receive(("connecting", pid))
    otp.send(pid, "connected")
    assert await GenStatem.call(pid, "state?") == "up"
    await GenStatem.stop(pid)


async def test_a_plain_machine_whose_callback_returns_a_coroutine_still_runs_it(
    node: object,
) -> None:
    import functools

    def traced(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            return fn(*args)  # a plain def that returns fn's coroutine

        return wrapper

    class Decorated(GenStatem):
        def init(self, arg: Any) -> Any:
            return "s", 0

        @traced
        async def s(self, event_type: Any, content: Any, data: int) -> Any:
            return KeepState(data + 1, [ReplyTo(event_type[1], data + 1)])

    pid = await Decorated.start(None)
    assert await GenStatem.call(pid, "one") == 1
    assert await GenStatem.call(pid, "two") == 2
    await GenStatem.stop(pid)


async def test_generic_timeouts_survive_state_changes_and_can_be_rearmed_or_cancelled(
    node: object,
) -> None:
    """Case 130."""
    pid = await Timers.start(None)
    await GenStatem.call(pid, ("generic", "x", 0.03, "first"))
    await GenStatem.call(pid, ("generic", "x", 0.03, "second"))  # re-armed: replaces it
    await GenStatem.call(pid, ("generic", "y", 0.02, "cancelled"))
    await GenStatem.call(pid, ("generic", "y", math.inf, None))  # cancelled by name
    await GenStatem.call(pid, ("goto", "b"))  # state changes leave x be
    while not any(e[1] == ("timeout", "x") for e in await logged(pid)):
        await _tick()
    assert [e for e in await logged(pid) if e[1][0] == "timeout"] == [
        ("b", ("timeout", "x"), "second")
    ]
    await GenStatem.stop(pid)


async def test_next_event_inserts_any_event_type(node: object) -> None:
    """Case 131, including a call inserted with its from_."""

    class Inserter(GenStatem):
        callback_mode = "handle_event_function"

        def init(self, arg: Any) -> Any:
            events = [
                NextEvent("internal", 1),
                NextEvent("state_timeout", 2),
                NextEvent("timeout", 3),
                NextEvent("info", 4),
                NextEvent("cast", 5),
                NextEvent(("timeout", "n"), 6),
                NextEvent(("call", (arg, ("alias", "no-one"))), 7),
            ]
            return "s", {"log": []}, events

        def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
            if type(event_type) is tuple and event_type[0] == "call" and content == "log":
                return KeepState(data, [ReplyTo(event_type[1], data["log"])])
            kind = (
                event_type if type(event_type) is not tuple or event_type[0] != "call" else "call"
            )
            return KeepState(log(data, kind, content))

    pid = await Inserter.start(otp.self())
    assert await GenStatem.call(pid, "log") == [
        ("internal", 1),
        ("state_timeout", 2),
        ("timeout", 3),
        ("info", 4),
        ("cast", 5),
        (("timeout", "n"), 6),
        ("call", 7),
    ]
    await GenStatem.stop(pid)


async def test_get_state_and_replace_state_work_on_state_and_data(node: object) -> None:
    """Case 132."""
    pid = await Switch.start(None)
    assert (await otp.sys.replace_state(pid, lambda sd: ("on", {"log": []}))) == (
        "on",
        {"log": []},
    )
    assert await GenStatem.call(pid, "where") == "on"
    await GenStatem.stop(pid)


async def test_bad_states_and_actions_stop_with_a_reason_that_names_them(node: object) -> None:
    class Broken(GenStatem):
        def init(self, arg: Any) -> Any:
            return arg, None

        def here(self, event_type: Any, content: Any, data: Any) -> Any:
            return KeepState(data, ["not an action"])

    for state, text in (
        ("nowhere", "has no state function 'nowhere'"),
        ("start", "it is GenStatem's own 'start'"),
        (
            "here",
            "Broken.here returned 'not an action'; expected an action (not an action) "
            "(in state 'here', for the event (('call', ",
        ),
    ):
        pid = await Broken.start(state)
        with pytest.raises(otp.CallError) as info:
            await GenStatem.call(pid, "hello")
        assert text in str(info.value.reason), str(info.value.reason)


async def test_a_machine_runs_under_a_supervisor(node: object) -> None:
    sup: Any = await Supervisor.start_link([Switch.child_spec(None, name="sw")])
    assert await GenStatem.call("sw", "flip") == "on"
    (child,) = await Supervisor.which_children(sup)
    assert child.id is Switch and child.modules == (Switch,)
    info = otp.process_info(child.pid)  # type: ignore[arg-type]
    assert info is not None and info.behaviour is Switch
    otp.unlink(sup)
    await GenStatem.stop(sup)


V1 = """
from behaviours.gen_statem import GenStatem, KeepState, NextState, ReplyTo

class Light(GenStatem):
    vsn = "1"

    def init(self, arg):
        return "off", 0

    def off(self, event_type, content, data):
        return NextState("on", data + 1, [ReplyTo(event_type[1], ("v1", "on"))])

    def on(self, event_type, content, data):
        return NextState("off", data, [ReplyTo(event_type[1], ("v1", "off"))])
"""

V2 = """
from behaviours.gen_statem import GenStatem, KeepState, NextState, ReplyTo

class Light(GenStatem):
    vsn = "2"
    callback_mode = "handle_event_function"

    def init(self, arg):
        return "off", {"flips": 0}

    def handle_event(self, event_type, content, state, data):
        there = "on" if state == "off" else "off"
        flips = data["flips"] + 1
        return NextState(there, {"flips": flips}, [ReplyTo(event_type[1], ("v2", there, flips))])

    def code_change(self, old_vsn, state, data, extra):
        return state, {"flips": data, "from": old_vsn}
"""


async def test_an_upgrade_can_switch_the_callback_mode(
    node: object, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 132, through the code server as for a GenServer."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "statem_light.py").write_text(V1)
    light = importlib.import_module("statem_light")
    try:
        pid = await light.Light.start(None)
        assert await GenStatem.call(pid, "flip") == ("v1", "on")
        (tmp_path / "statem_light.py").write_text(V2)
        report = await otp.code.upgrade("statem_light")
        assert report.processes == (pid,)
        assert await otp.sys.get_state(pid) == ("on", {"flips": 1, "from": "1"})
        assert await GenStatem.call(pid, "flip") == ("v2", "off", 2)
        await GenStatem.stop(pid)
    finally:
        sys.modules.pop("statem_light", None)


async def test_async_state_functions_and_enter_calls(node: object) -> None:
    """A machine with `async def` callbacks runs the same events in the same order."""

    class Slow(GenStatem):
        state_enter = True

        def init(self, arg: Any) -> Any:
            return "a", {"log": []}, [NextEvent("internal", "first")]

        async def a(self, event_type: Any, content: Any, data: Any) -> Any:
            await asyncio.sleep(0)  # (a real await: this machine runs on coroutines)
            if event_type == "enter":
                return KeepState(log(data, "a", "enter", content))
            if type(event_type) is tuple:
                return NextState("b", data, [ReplyTo(event_type[1], data["log"])])
            return KeepState(
                log(data, "a", event_type, content), [Postpone()] if content == "p" else []
            )

        async def b(self, event_type: Any, content: Any, data: Any) -> Any:
            if event_type == "enter":
                return KeepState(log(data, "b", "enter", content))
            if type(event_type) is tuple:
                return KeepState(data, [ReplyTo(event_type[1], data["log"])])
            return KeepState(log(data, "b", event_type, content))

    pid = await Slow.start(None)
    GenStatem.cast(pid, "p")
    assert await GenStatem.call(pid, "go") == [
        ("a", "enter", "a"),
        ("a", "internal", "first"),
        ("a", "cast", "p"),
    ]
    assert await GenStatem.call(pid, "log") == [
        ("a", "enter", "a"),
        ("a", "internal", "first"),
        ("a", "cast", "p"),
        ("b", "enter", "a"),
        ("b", "cast", "p"),
    ]
    await GenStatem.stop(pid)


def test_the_door_example_runs_as_documented() -> None:
    """`python -m apps.door`, the docs' larger example."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", "apps.door"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers = [line.rsplit("-> ", 1)[1] for line in done.stdout.splitlines()]
    assert answers == ["wrong", "open", "open", "open", "wrong", "wrong", "blocked", "blocked"]
