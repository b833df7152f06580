"""GenServer's loop against gen_server's rules, on random seeded runs.

A run starts one server whose callbacks (each sync or async, as the seed says) log every
message they handle into the state and answer, at random, with a continue, an idle timeout,
`Timeout(0 or t, msg)`, hibernate, a reply sent later (from `handle_continue`, or with
`GenServer.reply`), after a nested call, or after yielding to the loop. One to three clients
cast, send, call and `send_request`; the first also suspends and resumes the server, and
replaces its state or changes its code while it is suspended. Every message carries a
sequence number taken when it is sent. The log then must show:

- every message handled once, as what it was sent as; every call answered with its number;
- messages handled in the order they were sent, except system messages while suspended;
- nothing but system messages handled while the server is suspended;
- a continue run right after the callback that asked for it;
- `Timeout(0, msg)` run before anything else; an idle timeout only when the one armed by
  the last callback is still armed, and every armed timeout firing in the end;
- `terminate` seeing the final state, and the server ending with the expected reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import otp
from behaviours import GenServer, NoReply, Reply, Timeout

CALLBACKS = (
    "init",
    "handle_call",
    "handle_cast",
    "handle_info",
    "handle_continue",
    "code_change",
    "terminate",
)
Event = tuple[str, Any, Any, Any, int]  # kind, number, armed timeout, continue, phase
RUNNING, MAYBE_SUSPENDED, SUSPENDED = 0, 1, 2


@dataclass
class Run:
    """One seeded run: what was sent, what went wrong, and the harness's view."""

    seed: int
    rng: random.Random
    yields: Callable[[], int]
    sent: dict[int, tuple[str, int]] = field(default_factory=dict)  # number -> (kind, client)
    count: int = 0
    # The harness knows the server is suspended from the suspend's answer until it sends
    # the resume, and that it may be from sending the suspend until the resume's answer.
    suspended: bool = False
    maybe_suspended: bool = False
    violations: list[str] = field(default_factory=list)
    final: tuple[Any, Any] | None = None  # what terminate saw
    helper: Any = None  # an echo server for nested calls
    harness: Any = None  # told of every timeout the server handles

    @property
    def phase(self) -> int:
        if self.suspended:
            return SUSPENDED
        return MAYBE_SUSPENDED if self.maybe_suspended else RUNNING

    def number(self, kind: str, client: int) -> int:
        self.count += 1
        self.sent[self.count] = (kind, client)
        return self.count


def result(
    run: Run, kind: str, state: list[Event], plan: tuple[Any, ...], g: Any, from_: Any
) -> Any:
    """The callback result `plan` asks for, after logging the event as number `g`. What the
    result arms is tagged with `g`, or `("k", g)` for a continue (which continues may chain)."""
    mode = plan[0]
    tag = ("k", g) if kind == "continue" else g
    options: dict[str, Any] = {}
    armed: Any = None
    cont: Any = None
    if mode == "cont":
        cont = ("c", tag, plan[1])
        options["continue_"] = cont
    elif mode == "idle":
        options["timeout"] = plan[1]
        armed = ("idle", None)
    elif mode == "tmo":
        options["timeout"] = Timeout(plan[1], ("tmo", tag))
        armed = ("tmo0" if plan[1] == 0 else "tmo", tag)
    elif mode == "hibernate":
        options["hibernate"] = True
    elif mode == "hibernate_timeout":
        options["timeout"] = "hibernate"
    elif mode == "infinity":
        options["timeout"] = math.inf
    elif mode == "cont_and_idle":  # the continue's own result decides what is armed
        cont = ("c", tag, ("plain",))
        options["continue_"] = cont
        options["timeout"] = plan[1]
    elif mode == "reply_later":
        cont = ("reply", g, from_)
        options["continue_"] = cont
    state.append((kind, g, armed, cont, run.phase))
    if kind == "call" and mode not in ("reply_later", "reply_direct"):
        return Reply(g, state, **options)
    if kind == "call" and mode == "reply_direct":
        GenServer.reply(from_, g)
    return NoReply(state, **options)


def make_server(run: Run, async_callbacks: frozenset[str]) -> type[GenServer[list[Event]]]:
    """A GenServer class logging into its state; the callbacks in `async_callbacks` are
    `async def` and yield to the loop (and make nested calls) at random first."""

    async def pause(msg: Any) -> None:
        nested = type(msg) is tuple and len(msg) == 3 and msg[2] == ("nested",)
        if nested and await GenServer.call(run.helper, msg[1]) != msg[1]:
            run.violations.append(f"nested call {msg[1]} got a wrong reply")
        for _ in range(run.yields()):
            await asyncio.sleep(0)

    def call(request: Any, from_: Any, state: list[Event]) -> Any:
        _, g, plan = request
        return result(run, "call", list(state), plan, g, from_)

    def cast(msg: Any, state: list[Event]) -> Any:
        _, g, plan = msg
        return result(run, "cast", list(state), plan, g, None)

    def info(msg: Any, state: list[Event]) -> Any:
        state = list(state)
        if type(msg) is tuple and msg[0] == "info":
            _, g, plan = msg
            return result(run, "info", state, plan, g, None)
        if msg == otp.TIMEOUT or (type(msg) is tuple and msg[0] == "tmo"):
            state.append(("timeout", None if msg == otp.TIMEOUT else msg, None, None, run.phase))
            otp.send(run.harness, "timed out")
            return NoReply(state)
        run.violations.append(f"unexpected message {msg!r}")
        return NoReply(state)

    def continue_(term: Any, state: list[Event]) -> Any:
        state = list(state)
        if term[0] == "reply":
            _, g, from_ = term
            GenServer.reply(from_, g)
            state.append(("continue", g, None, None, run.phase))
            return NoReply(state)
        _, g, plan = term
        return result(run, "continue", state, plan, g, None)

    def code_change(old_vsn: Any, state: list[Event], extra: Any) -> list[Event]:
        return [*state, ("sys", extra, None, None, run.phase)]

    def terminate(reason: Any, state: list[Event]) -> None:
        run.final = (reason, state)

    bodies: dict[str, Callable[..., Any]] = {  # in the order of CALLBACKS
        "init": lambda arg: [],
        "handle_call": call,
        "handle_cast": cast,
        "handle_info": info,
        "handle_continue": continue_,
        "code_change": code_change,
        "terminate": terminate,
    }
    namespace: dict[str, Any] = {}
    for name, body in bodies.items():

        async def async_callback(self: Any, *args: Any, body: Callable[..., Any] = body) -> Any:
            await pause(args[0])
            return body(*args)

        def sync_callback(self: Any, *args: Any, body: Callable[..., Any] = body) -> Any:
            return body(*args)

        callback = async_callback if name in async_callbacks else sync_callback
        callback.__name__ = name
        namespace[name] = callback
    return type("Modelled", (GenServer,), namespace)


class Echo(GenServer[None]):
    def init(self, arg: None) -> None:
        return None

    def handle_call(self, request: Any, from_: Any, state: None) -> Reply[None]:
        return Reply(request, state)


def plan(rng: random.Random, kind: str) -> tuple[Any, ...]:
    """What a callback answers: mostly plainly, else one of the loop's options."""
    options: list[tuple[Any, ...]] = [("plain",)] * 8 + [
        ("cont", rng.choice([("plain",), ("idle", 0.002), ("tmo", 0), ("tmo", 0.001)])),
        ("idle", rng.choice([0, 0.0, 0.001, 0.003, 0.02])),
        ("tmo", rng.choice([0, 0.001, 0.004])),
        ("tmo", 0),
        ("hibernate",),
        ("hibernate_timeout",),
        ("infinity",),
        ("cont_and_idle", 0.001),
        ("nested",),
        ("nested",),
    ]
    if kind == "call":
        options += [("reply_later",), ("reply_direct",)]
    return rng.choice(options)


async def client(run: Run, pid: otp.Pid, me: int, ops: int, controller: bool) -> None:
    """Send `ops` random requests; the controller also suspends, resumes and changes code."""
    rng = random.Random(run.rng.random())
    pending: list[tuple[int, Any]] = []
    suspended = False
    for _ in range(ops):
        r = rng.random()
        if controller and r < 0.12:
            if suspended:
                run.suspended = suspended = False
                await otp.sys.resume(pid)
                run.maybe_suspended = False
            else:
                run.maybe_suspended = True
                await otp.sys.suspend(pid)
                run.suspended = suspended = True
            continue
        if controller and suspended and r < 0.2:
            await otp.sys.change_code(pid, "old", run.number("sys", me))
            continue
        r = rng.random()
        if r < 0.35:
            g = run.number("cast", me)
            GenServer.cast(pid, ("cast", g, plan(rng, "cast")))
        elif r < 0.55:
            g = run.number("info", me)
            otp.send(pid, ("info", g, plan(rng, "info")))
        elif r < 0.65:
            if suspended:
                continue  # a call to a server it suspended would wait forever
            g = run.number("call", me)
            answer = await GenServer.call(pid, ("call", g, plan(rng, "call")), math.inf)
            if answer != g:
                run.violations.append(f"call {g} was answered {answer!r}")
        elif r < 0.75:
            g = run.number("call", me)
            pending.append((g, GenServer.send_request(pid, ("call", g, plan(rng, "call")))))
        elif r < 0.82:
            g = run.number("sys", me)

            def log(state: list[Event], g: int = g) -> list[Event]:
                return [*state, ("sys", g, None, None, run.phase)]

            await otp.sys.replace_state(pid, log)
        elif r < 0.87:
            state = await otp.sys.get_state(pid)
            if not isinstance(state, list):
                run.violations.append(f"get_state returned {state!r}")
        elif r < 0.95:
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(rng.choice([0, 0.0005, 0.002]))
        if pending and not suspended and rng.random() < 0.2:
            g, request = pending.pop(rng.randrange(len(pending)))
            await expect_answer(run, g, request)
    if suspended:
        run.suspended = False
        await otp.sys.resume(pid)
        run.maybe_suspended = False
    for g, request in pending:
        await expect_answer(run, g, request)


async def expect_answer(run: Run, g: int, request: Any) -> None:
    answer = await GenServer.wait_response(request)
    if answer != g:
        run.violations.append(f"send_request {g} was answered {answer!r}")


def check(run: Run, log: list[Event]) -> tuple[list[str], Any]:
    """What in `log` breaks the rules, and the timeout still armed at its end (or None)."""
    found: list[str] = []
    bad = found.append
    seen: dict[int, int] = {}
    for i, (kind, g, *_rest) in enumerate(log):
        if kind in ("cast", "call", "info", "sys"):
            if g in seen:
                bad(f"{kind} {g} handled twice (at {seen[g]} and {i})")
            seen[g] = i
            if run.sent.get(g, (None,))[0] != kind:
                bad(f"{kind} {g} handled, but it was sent as {run.sent.get(g)}")
    lost = sorted(set(run.sent) - set(seen))
    if lost:
        bad(f"never handled: {[(g, run.sent[g]) for g in lost]}")
    handled: set[int] = set()
    for i, (kind, g, _armed, _cont, phase) in enumerate(log):
        if kind != "sys" and phase == SUSPENDED:
            bad(f"{kind} {g} handled while the server was suspended (at {i})")
        if kind in ("cast", "call", "info") or (kind == "sys" and phase == RUNNING):
            early = [h for h in seen if h < g and h not in handled]
            if early:
                bad(f"{kind} {g} handled before {early[:5]}, sent earlier (at {i})")
        if kind in ("cast", "call", "info", "sys"):
            handled.add(g)
    armed: Any = None
    expected_continue: Any = None
    for i, event in enumerate(log):
        kind, g, arms, cont, _phase = event
        if expected_continue is not None:
            if kind != "continue" or g != expected_continue[1]:
                bad(f"continue {expected_continue} did not run next; {event} did (at {i})")
            expected_continue = None
        if armed is not None and armed[0] == "tmo0" and kind != "timeout":
            bad(f"Timeout(0) armed by {armed[1]} did not run first; {event} did (at {i})")
        if kind == "timeout":
            if armed is None:
                bad(f"timeout {g} with none armed (at {i})")
            elif armed[0] == "idle" and g is not None:
                bad(f"timeout {g} while an idle timeout was armed (at {i})")
            elif armed[0] in ("tmo", "tmo0") and g != ("tmo", armed[1]):
                bad(f"timeout {g} while {armed} was armed (at {i})")
            armed = None
        elif kind in ("cast", "call", "info", "continue"):
            armed = arms
            if cont is not None:
                expected_continue = cont
    if expected_continue is not None:
        bad(f"continue {expected_continue} never ran")
    return found, armed


async def run_one(seed: int) -> list[str]:
    """Run seed `seed`; what it found wrong."""
    rng = random.Random(seed)
    async_callbacks = frozenset(name for name in CALLBACKS if rng.random() < 0.4)
    most = rng.choice([0, 1, 3])
    yields = random.Random(seed * 7 + 1)
    run = Run(seed, rng, lambda: yields.randint(0, most))
    run.harness = otp.self()
    run.helper = await Echo.start_link(None)
    ending = rng.choice(["stop", "stop", "parent_exit"])
    pid = await make_server(run, async_callbacks).start_link(None)
    assert pid is not None
    if ending == "parent_exit":  # the server traps exits, so its parent's exit stops it
        await otp.sys.replace_state(pid, lambda s: (otp.process_flag("trap_exit", True), s)[1])
    clients = rng.randint(1, 3)
    me = otp.self()

    async def drive(n: int, ops: int) -> None:
        await client(run, pid, n, ops, n == 0)
        otp.send(me, ("done", n))

    for n in range(clients):
        otp.spawn_link(drive, n, rng.randint(5, 40))
    for _ in range(clients):
        await otp.receive(lambda m: type(m) is tuple and m[0] == "done")
    if run.violations:
        return run.violations
    state = await otp.sys.get_state(pid)
    found, armed = check(run, state)
    while armed is not None and not found:  # a timeout is still armed: it must fire
        try:
            await otp.receive(lambda m: m == "timed out", timeout=10)
        except TimeoutError:
            found.append(f"the timeout {armed} never fired")
            break
        state = await otp.sys.get_state(pid)
        found, armed = check(run, state)
    run.violations += found
    ref = otp.monitor(pid)
    if rng.random() < 0.3:  # end while suspended, with messages queued that must not run
        run.maybe_suspended = True
        await otp.sys.suspend(pid)
        run.suspended = True
        for _ in range(rng.randint(0, 4)):
            GenServer.cast(pid, ("cast", -1, ("plain",)))
            otp.send(pid, ("info", -1, ("plain",)))
    expected = otp.NORMAL if ending == "stop" else otp.SHUTDOWN
    if ending == "stop":
        await GenServer.stop(pid)
    else:
        otp.unlink(pid)  # the parent's exit signal, delivered as an Exit: the server traps
        otp.exit(pid, otp.SHUTDOWN)
    down = await otp.receive(lambda m: type(m) is otp.Down and m.ref is ref)
    if down.reason != expected:
        run.violations.append(f"the server ended with {down.reason!r}, not {expected!r}")
    if run.final is None or run.final[1] != state:
        run.violations.append(f"terminate saw {run.final!r}, not the last state")
    await GenServer.stop(run.helper)
    with contextlib.suppress(TimeoutError):
        while True:  # drop the timeout notices, for the next seed
            await otp.receive(lambda m: m == "timed out", timeout=0)
    if otp.processes() != [me]:
        run.violations.append(f"processes left over: {otp.processes()}")
    return run.violations


async def run_batch(seeds: list[int], failures: list[tuple[int, list[str]]]) -> None:
    """Run each seed on this node, one after the other; collect the failing ones."""
    for seed in seeds:
        found = await run_one(seed)
        if found:
            failures.append((seed, found))
