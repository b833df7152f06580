"""Sample GenServers for the behaviour tests."""

from __future__ import annotations

import asyncio
from typing import Any

import otp
from behaviours import GenServer, Init, NoReply, Reply, Stop


class Echo(GenServer[Any]):
    """Replies with what it gets; records what it saw; obeys commands in the request."""

    def init(self, arg: Any) -> Any:
        match arg:
            case ("init_returns", value):
                return value
            case ("init_raises", exc):
                raise exc
            case ("init_exits", reason):
                otp.exit(reason)
            case ("init_sleeps", seconds, state):
                return _sleep_then(seconds, state)
            case ("init_registers", name):
                otp.register(name, otp.self())
                return Stop("cannot go on")
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        match request:
            case "state":
                return Reply(state, state)
            case ("set", value):
                return Reply("ok", value)
            case ("return", value):
                return value
            case ("raise", exc):
                raise exc
            case ("exit", reason):
                otp.exit(reason)
            case ("stop", reason, answer):
                return Stop(reason, state, reply=answer)
            case ("stop", reason):
                return Stop(reason, state)
            case ("reply_later", delay):
                otp.send_after(delay, otp.self(), ("reply_to", from_, "delayed"))
                return NoReply(state)
            case ("reply_with_timeout", timeout):
                return Reply("ok", state, timeout=timeout)
            case ("continue", term):
                return Reply("continuing", state, continue_=term)
            case "hibernate":
                return Reply("hibernating", state, hibernate=True)
        return Reply(("echo", request), state)

    def handle_cast(self, msg: Any, state: Any) -> Any:
        match msg:
            case ("set", value):
                return NoReply(value)
            case ("timeout", timeout):
                return NoReply(state, timeout=timeout)
            case ("stop", reason):
                return Stop(reason, state)
            case ("notify", pid, what):
                otp.send(pid, what)
                return NoReply(state)
        return NoReply(state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        match msg:
            case ("reply_to", from_, value):
                GenServer.reply(from_, value)
                return NoReply(state)
            case otp.TIMEOUT:
                watcher = otp.whereis("watcher")
                if watcher is not None:
                    otp.send(watcher, ("timed_out", otp.self()))
                return NoReply(("timed_out", state))
            case ("timeout", timeout):
                return NoReply(state, timeout=timeout)
            case ("stop", reason):
                return Stop(reason, state)
            case ("watch", pid):
                return NoReply(("watching", pid))
        return NoReply(("info", msg))

    def handle_continue(self, continue_: Any, state: Any) -> Any:
        match continue_:
            case ("chain", 0):
                return NoReply(state)
            case ("chain", n):
                return NoReply((*state, n), continue_=("chain", n - 1))
            case ("stop", reason):
                return Stop(reason, state)
            case ("notify", pid):
                otp.send(pid, ("continued", state))
                return NoReply(state)
        return NoReply((*state, continue_) if isinstance(state, tuple) else continue_)

    def terminate(self, reason: Any, state: Any) -> None:
        watcher = otp.whereis("watcher")
        if watcher is not None:
            otp.send(watcher, ("terminated", otp.self(), reason, state))


async def _sleep_then(seconds: float, state: Any) -> Any:
    await asyncio.sleep(seconds)
    return state


class Sleepy(GenServer[Any]):
    """Async callbacks: init and handle_call may wait."""

    async def init(self, arg: Any) -> Any:
        if isinstance(arg, tuple) and arg[0] == "sleep":
            await asyncio.sleep(arg[1])
        return arg

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        if isinstance(request, tuple) and request[0] == "sleep":
            await asyncio.sleep(request[1])
        return Reply(("slept", request), state)


class Continuing(GenServer[Any]):
    """init returns a continue; the first thing it does is handle_continue."""

    def init(self, parent: otp.Pid) -> Any:
        otp.send(otp.self(), "queued before continue")
        return Init(("started",), continue_=("notify", parent))

    def handle_continue(self, continue_: Any, state: Any) -> Any:
        _, parent = continue_
        otp.send(parent, ("continued", state))
        return NoReply(("continued",))

    def handle_info(self, msg: Any, state: Any) -> Any:
        return NoReply((*state, msg))

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(state, state)


class Bare(GenServer[Any]):
    """Only init: every other callback is the default."""

    def init(self, arg: Any) -> Any:
        return arg


class NoInit(GenServer[Any]):
    """No init at all."""


def pid_of(pid: otp.Pid | None) -> otp.Pid:
    """The pid a start returned, which the test expects to be there."""
    assert pid is not None
    return pid


class Worker(GenServer[Any]):
    """The test child of OTP's supervisor suite: traps exits; "stop" ends it with normal,
    "die" with "died"; an exit signal from its supervisor ends it with that reason."""

    def init(self, arg: Any) -> Any:
        otp.process_flag("trap_exit", True)
        match arg:
            case ("fail_if", flags, key) if flags.get(key):
                return Stop(("start_failed", key))
            case ("fail_times", counts, key) if counts.get(key, 0) > 0:
                counts[key] -= 1
                return Stop(("start_failed", key))
            case ("ignore",):
                return otp.IGNORE
            case ("slow_exit", seconds):
                return ("slow_exit", seconds)
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(state, state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        match msg:
            case "stop":
                return Stop(otp.NORMAL, state)
            case "die":
                return Stop("died", state)
            case ("exit", reason):
                return Stop(reason, state)
            case "unlink":
                info = otp.process_info(otp.self())
                assert info is not None
                otp.unlink(info.parent)
                return NoReply(state)
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        if isinstance(state, tuple) and state[0] == "slow_exit":
            await asyncio.sleep(state[1])
        watcher = otp.whereis("watcher")
        if watcher is not None:
            otp.send(watcher, ("terminated", otp.self(), reason))


class FakeClock:
    """A clock the test moves by hand, for restart-intensity windows."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AdvancingClock(FakeClock):
    """A clock that moves `step` seconds each time it is read: with a step longer than the
    period, failing restarts never pile up, so a restart loop can go on while a test looks."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def ended(target: otp.Pid) -> Any:
    """Wait for `target` to end; its reason (a supervisor of it has seen the exit by then)."""
    ref = otp.monitor(target)
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref == ref, timeout=5)
    return down.reason


async def stop_supervisor(sup: otp.Pid) -> None:
    """Stop a supervisor the test started linked (trapping exits), and take its Exit."""
    await GenServer.stop(sup, otp.SHUTDOWN)
    await otp.receive(lambda m: isinstance(m, otp.Exit) and m.pid == sup, timeout=5)


class Crashable(GenServer[str]):
    """Answers its state; the call "crash" makes it raise (a crash with a report)."""

    def init(self, arg: str) -> str:
        return arg

    def handle_call(self, request: object, from_: object, state: str) -> Reply[str]:
        if request == "crash":
            raise RuntimeError("crash")
        return Reply(state, state)
