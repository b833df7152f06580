"""The test kit: a pytest plugin with a `node` fixture, ExUnit-style supervised children and
mailbox assertions.

An `async def` test that takes the `node` fixture runs as the first process of a fresh node;
the test fails if it leaves a process running (a leak would outlive the test otherwise):

    async def test_echo(node):
        pid = otp.spawn(echo)
        otp.send(pid, (otp.self(), "hi"))
        assert await assert_receive("hi") == "hi"

| in the test                       | what the kit does                                     |
|-----------------------------------|-------------------------------------------------------|
| `await start_supervised(child)`   | start `child` under the test's supervisor; its pid    |
| `await stop_supervised(id)`       | stop that child now and wait until it has ended       |
| an `async def` fixture            | made in the node, in the test's process, before it    |
| the test returns or fails         | undo all of the above newest first; check for leaks   |

Run a test on the stdlib loop with
`@pytest.mark.parametrize("node", ["asyncio"], indirect=True)`.

The kit lives in the kernel, so it never imports `behaviours`: it takes children in the
shapes a Supervisor takes them, through their `child_spec` protocol, and runs them under a
small supervisor process of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pytest
from _pytest.fixtures import resolve_fixture_function

from . import _call, _node, _process, _runner
from ._mailbox import receive
from ._signals import exit, link, monitor, process_flag, unlink
from ._spawn import spawn
from ._values import KILL, SHUTDOWN, Down, Exit, Pid, Ref
from .errors import AlreadyStartedError, StartError
from .reports import describe_entry

__all__ = [
    "TestNode",
    "assert_receive",
    "capture_reports",
    "node",
    "refute_receive",
    "start_supervised",
    "stop_supervised",
]

_QUIET_TURNS = 100  # loop turns with no process ending after which the rest count as leaks
_MAX_TURNS = 20_000
_DYING_WAIT = 5.0  # seconds an exiting process's cleanup may take before it counts as a leak

_KIND: Final = "$test_supervisor"  # the call protocol's tag for the test supervisor

_FORMS: Final = """start_supervised() takes a child as a Supervisor does:
  * a GenServer or Supervisor subclass
  * (GenServer or Supervisor subclass, arg)
  * ChildSpec(id=..., start=...)"""


@dataclass
class TestNode:
    """How the `node` fixture runs a test: the event loop, the node name, the leak check."""

    __test__ = False  # not a test class, whatever pytest's name patterns say

    loop: _runner.LoopKind = "uvloop"
    name: str | None = None
    check_leaks: bool = True


@pytest.fixture
def node(request: pytest.FixtureRequest) -> TestNode:
    """Run the (async) test as a process on a fresh node. Param: the loop kind.

    Args:
        request: pytest's request; `request.param` (indirect parametrization) is the loop
            kind, `"uvloop"` (default) or `"asyncio"`.

    Returns:
        The node's settings (`loop`, `name`, `check_leaks`).
    """
    return TestNode(loop=getattr(request, "param", "uvloop"))


# -- running a test ------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an `async def` test that takes this plugin's `node` fixture as the first process
    of a fresh node, with its async fixtures made there first."""
    settings = pyfuncitem.funcargs.get("node")
    if not isinstance(settings, TestNode):  # another plugin's or the project's own `node`
        return None
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    values = dict(pyfuncitem.funcargs)  # every fixture of the test, in setup order
    argnames = pyfuncitem._fixtureinfo.argnames
    _runner.run(_run_test, test, values, argnames, settings, loop=settings.loop, name=settings.name)
    return True


@pytest.hookimpl(specname="pytest_pyfunc_call")
def pytest_pyfunc_call_without_node(pyfuncitem: pytest.Function) -> None:
    """An `async def` test that no plugin ran: tell the user to take the `node` fixture,
    where pytest would suggest installing an async plugin. (Plugins that run async tests
    do so in a tryfirst hook, before this one; pytest's own comes after it.)"""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        pytest.fail(_without_node(pyfuncitem.name, "is an async def test"), pytrace=False)


def _without_node(test: str, what: str) -> str:
    return (
        f"{test} {what} without the `node` fixture. otp.testing runs async tests: "
        f"take the fixture, `async def {test}(node, ...)`, and the test runs as the first "
        f"process of a fresh node (no pytest-asyncio needed)"
    )


class _TestRun:
    """One test inside its node: what it has set up (async fixtures, supervised children),
    undone newest first when it ends, and the supervisor its children run under."""

    def __init__(self, node: _node.Node) -> None:
        self.node = node
        self.undo: list[Callable[[], Awaitable[None]]] = []
        self.supervisor: Pid | None = None
        self.made: dict[_InNode, Any] = {}  # the async fixtures' values

    async def make(self, value: Any) -> Any:
        """The value of one fixture: an `_InNode` is made now (its own async fixtures
        first), once per test however many fixtures ask for it; others are as pytest made
        them."""
        if type(value) is not _InNode:
            return value
        if value in self.made:
            return self.made[value]
        kwargs = {name: await self.make(arg) for name, arg in value.kwargs.items()}
        result = value.func(**kwargs)
        if inspect.isasyncgen(result):
            try:
                made = await anext(result)
            except StopAsyncIteration:
                raise RuntimeError(f"async fixture {value.name!r} did not yield") from None
            self.undo.append(lambda: _finish_fixture(value.name, result))
        else:
            made = await result
        self.made[value] = made
        return made

    async def finish(self) -> None:
        """Undo the test's setup, newest first, then stop its supervisor. As pytest does
        with finalizers, a step that fails does not stop the others; the first failure is
        raised at the end."""
        errors: list[Exception] = []
        while self.undo:
            try:
                await self.undo.pop()()
            except Exception as exc:
                errors.append(exc)
        if self.supervisor is not None:
            await _call.call(self.supervisor, "quit", math.inf, _kind=_KIND)
            self.supervisor = None
        if errors:
            raise errors[0]


_current: _TestRun | None = None  # the test running now (one node per OS process)


async def _run_test(
    test: Callable[..., Any],
    values: dict[str, Any],
    argnames: tuple[str, ...],
    settings: TestNode,
) -> None:
    global _current
    run = _current = _TestRun(_node.get())
    try:
        try:
            made = {name: await run.make(value) for name, value in values.items()}
            await test(**{name: made[name] for name in argnames})
        except Exception:  # a failed test cleans up too (a killed one is left to the node)
            await run.finish()
            raise
        await run.finish()
    finally:
        _current = None
    if settings.check_leaks:  # read now: the test may have turned it off
        await _check_leaks()


# -- async fixtures: made inside the node ----------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: one per test
class _InNode:
    """What pytest holds for an async fixture until the test's node makes the value: the
    fixture function and its arguments (other fixtures' values, or `_InNode`s)."""

    name: str
    func: Callable[..., Any]
    kwargs: dict[str, Any]


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> object | None:
    """Defer an `async def` fixture (or an async generator one) to the test's node: pytest
    sets fixtures up before the node exists, so it records the call, and the node makes the
    value just before the test runs, in the test's process."""
    func = resolve_fixture_function(fixturedef, request)
    name: str = fixturedef.argname
    if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
        for arg in fixturedef.argnames:  # (pytest asks for them next; they are cached)
            if type(request.getfixturevalue(arg)) is _InNode:
                pytest.fail(
                    f"fixture {name!r} is a plain def but uses the async fixture {arg!r}, "
                    f"whose value is made inside the node when the test starts: make "
                    f"{name!r} an async def fixture too",
                    pytrace=False,
                )
        return None
    if fixturedef.scope != "function":
        pytest.fail(
            f"async fixture {name!r} has scope={fixturedef.scope!r}; an async fixture is "
            f"made inside the test's node, and every test has a fresh node: drop the scope "
            f"(or make a plain def fixture for what tests may share)",
            pytrace=False,
        )
    if "node" in request.fixturenames:
        if not isinstance(request.getfixturevalue("node"), TestNode):
            return None  # another plugin's `node`: its async fixtures are its business
        if not inspect.iscoroutinefunction(request.function):
            pytest.fail(
                f"{request.node.name} is a plain def test, so the async fixture {name!r} "
                f"has no node to run in: make the test `async def`",
                pytrace=False,
            )
    else:
        pytest.fail(
            _without_node(request.node.name, f"asks for the async fixture {name!r}"),
            pytrace=False,
        )
    kwargs = {arg: request.getfixturevalue(arg) for arg in fixturedef.argnames}
    value = _InNode(name, func, kwargs)
    fixturedef.cached_result = (value, fixturedef.cache_key(request), None)
    return value


async def _finish_fixture(name: str, gen: Any) -> None:
    """Run the part of an async generator fixture after its `yield`."""
    try:
        await anext(gen)
    except StopAsyncIteration:
        return
    await gen.aclose()
    raise RuntimeError(f"async fixture {name!r} yielded more than once; a fixture yields once")


# -- supervised children ---------------------------------------------------------------------


async def start_supervised(child: Any, **overrides: Any) -> Pid:
    """Start `child` under the test's own supervisor; its pid. ExUnit's `start_supervised!`.

    `child` is what a Supervisor takes: a GenServer or Supervisor subclass, `(cls, arg)`, or
    a `ChildSpec`; `overrides` replace spec fields (`id=`, `shutdown=`). When the test ends,
    passed or failed, the test's children are stopped newest first, each as its `shutdown`
    says, before the leak check; `stop_supervised(id)` stops one sooner. The test's
    supervisor does not restart children: one that exits is gone. A child that fails to
    start raises `otp.StartError`; one that returns `otp.IGNORE` raises `AssertionError`
    (a test that means to check that calls `start_link` itself).

        async def test_counter(node):
            pid = await start_supervised((Counter, 0))
            assert await GenServer.call(pid, 1) == 1

    Args:
        child: A GenServer or Supervisor subclass, `(cls, arg)` or a `ChildSpec`.
        **overrides: Spec fields to replace (`id=`, `shutdown=`).

    Returns:
        The child's pid.

    Raises:
        otp.StartError: The child failed to start.
        otp.AlreadyStartedError: A child with the same id runs under the test's supervisor.
        AssertionError: The child's start returned no pid (`otp.IGNORE`).
        TypeError: `child` is none of the accepted forms.
        RuntimeError: Called outside a test that takes the `node` fixture.
    """
    run = _running("start_supervised")
    spec = _spec_of(child)
    if overrides:
        spec = spec.replace(**overrides)
    if run.supervisor is None:
        run.supervisor = spawn(_test_supervisor, run.node.init_pid)
        run.node.system.add(run.supervisor.id)  # the runtime's own: never a leak
    status, value = await _call.call(run.supervisor, ("start", spec), math.inf, _kind=_KIND)
    if status == "error":
        raise value
    run.undo.append(lambda: _stop_child(run, spec.id, must_exist=False))
    pid: Pid = value
    return pid


async def stop_supervised(id: Any) -> None:
    """Stop the child `id` that `start_supervised` started (as its `shutdown` says) and
    wait until it has ended. The id of `Counter` or `(Counter, arg)` is `Counter`.

    Args:
        id: The child's id.

    Raises:
        ValueError: No child with that id runs under the test's supervisor.
        RuntimeError: Called outside a test that takes the `node` fixture.
    """
    await _stop_child(_running("stop_supervised"), id, must_exist=True)


def _running(what: str) -> _TestRun:
    run = _current
    if run is None or _node.current is not run.node:
        raise RuntimeError(
            f"{what}() works inside a test that takes the `node` fixture "
            f"(async def test_x(node): ...), or in an async fixture of such a test"
        )
    return run


async def _stop_child(run: _TestRun, id: Any, *, must_exist: bool) -> None:
    found, running_ids = False, []
    if run.supervisor is not None:
        found, running_ids = await _call.call(run.supervisor, ("stop", id), math.inf, _kind=_KIND)
    if must_exist and not found:
        running = ", ".join(_show_id(c) for c in running_ids) or "none"
        raise ValueError(
            f"stop_supervised({_show_id(id)}): no child with that id runs under the test's "
            f"supervisor (running: {running}); a child's id is its class unless its spec "
            f"says otherwise"
        )


def _spec_of(child: Any) -> Any:
    """The child spec of `child` in any form a Supervisor takes, through the behaviours'
    own `child_spec` (the kernel does not import them)."""
    factory = getattr(child, "child_spec", None) if isinstance(child, type) else None
    if callable(factory):
        return factory()
    if type(child) is tuple and len(child) == 2 and isinstance(child[0], type):
        factory = getattr(child[0], "child_spec", None)
        if callable(factory):
            return factory(child[1])
    if callable(getattr(child, "start_call", None)) and hasattr(child, "id"):  # a ChildSpec
        return child
    raise TypeError(f"{_FORMS}\nGot: {child!r}")


def _show_id(id: Any) -> str:
    return id.__qualname__ if isinstance(id, type) else repr(id)


@dataclass
class _Child:
    id: Any
    pid: Pid
    ref: Ref  # the supervisor's monitor on it
    shutdown: Any  # seconds, math.inf or "brutal_kill"


async def _test_supervisor(node_pid: Pid) -> None:
    """The test's supervisor: starts children on request (so they link to it, not to the
    test), stops one on request, and stops them all, newest first, when the test is done
    or when the node shuts it down. It traps exits; a child that exits is forgotten."""
    process_flag("trap_exit", True)
    children: list[_Child] = []  # in start order
    while True:
        msg = await receive()
        match msg:
            case (str() as kind, from_, ("start", spec)) if kind == _KIND:
                _call.reply(from_, await _start(children, spec))
            case (str() as kind, from_, ("stop", id)) if kind == _KIND:
                found = [c for c in children if c.id == id]
                for child in found:
                    children.remove(child)
                    await _shutdown(child)
                _call.reply(from_, (bool(found), [c.id for c in children]))
            case (str() as kind, from_, "quit") if kind == _KIND:
                for child in reversed(children):
                    await _shutdown(child)
                _call.reply(from_, None)
                return
            case Exit(pid=pid, reason=reason) if pid == node_pid:  # the node is stopping
                for child in reversed(children):
                    await _shutdown(child)
                exit(reason)
            case Exit(pid=pid) | Down(pid=pid):
                children[:] = [c for c in children if c.pid != pid]


async def _start(children: list[_Child], spec: Any) -> tuple[str, Any]:
    """Run `spec`'s start in the test supervisor: `("ok", pid)` or `("error", exc)`."""
    taken = next((c for c in children if c.id == spec.id), None)
    if taken is not None:
        return "error", AlreadyStartedError(
            taken.pid,
            f"start_supervised: a child with id {_show_id(spec.id)} already runs under the "
            f"test's supervisor as {taken.pid!r}; give this one an id of its own: "
            f"start_supervised(..., id='another')",
        )
    fn, args = spec.start_call()
    try:
        pid = await fn(*args)
    except Exception as exc:
        reason = exc.reason if isinstance(exc, StartError) else exc
        error = StartError(
            reason, f"start_supervised: {_show_id(spec.id)} failed to start: {reason!r}"
        )
        error.__cause__ = exc
        return "error", error
    if type(pid) is not Pid:
        return "error", AssertionError(
            f"start_supervised: the start of {_show_id(spec.id)} returned {pid!r}, not a "
            f"running process (otp.IGNORE?); to test that, call its start_link directly"
        )
    shutdown = spec.shutdown
    if shutdown is None:
        shutdown = math.inf if getattr(spec, "type", "worker") == "supervisor" else 5.0
    link(pid)  # whatever its start did, as a Supervisor does; the monitor sees it end
    children.append(_Child(spec.id, pid, monitor(pid), shutdown))  # even if it unlinks
    return "ok", pid


async def _shutdown(child: _Child) -> None:
    """Stop one child as its `shutdown` says (`SHUTDOWN`, then `KILL` after that many
    seconds; `"brutal_kill"` at once) and wait until it has ended."""
    pid, ref, shutdown = child.pid, child.ref, child.shutdown
    unlink(pid)  # its end comes as the Down (an Exit already queued is dropped by the loop)
    exit(pid, KILL if shutdown == "brutal_kill" else SHUTDOWN)
    wait = None if shutdown in ("brutal_kill", math.inf) else float(shutdown)

    def down(msg: Any) -> bool:
        return type(msg) is Down and msg.ref == ref

    try:
        await receive(down, wait)
    except TimeoutError:
        exit(pid, KILL)
        await receive(down)


# -- the leak check --------------------------------------------------------------------------


async def _check_leaks() -> None:
    """Fail if a process other than the test's is still running once exits have settled:
    processes may still be ending (a supervisor stopping its children one by one), so the
    check waits until none has ended for a while."""
    me = _process.current()
    node = _node.get()

    def others() -> list[Any]:
        return [p for p in node.procs.values() if p is not me and p.pid.id not in node.system]

    left, quiet = len(others()), 0
    for _ in range(_MAX_TURNS):
        dying = [p for p in others() if p.exiting]  # on their way out: wait for them
        if dying:
            done, _ = await asyncio.wait(dying, timeout=_DYING_WAIT)
            if not done:
                break
            left, quiet = len(others()), 0
            continue
        if not left or quiet >= _QUIET_TURNS:
            break
        await asyncio.sleep(0)
        now = len(others())
        quiet = quiet + 1 if now == left else 0
        left = now
    leaked = others()
    if leaked:
        raise AssertionError(_leak_report(leaked))


def _leak_report(leaked: list[Any]) -> str:
    """Name each leaked process by its behaviour class (else its function) and registered
    name, and say how to end it."""
    lines = [f"the test left {len(leaked)} process(es) running:"]
    for proc in leaked:
        what = describe_entry(proc.behaviour or proc.entry)
        name = f" registered as {proc.regname!r}" if proc.regname else ""
        lines.append(f"  {proc.pid!r} {what}{name}")
    lines += [
        "End each one before the test returns:",
        "  * start it with `await otp.testing.start_supervised(...)`, which stops it when the "
        "test ends;",
        "  * or stop it: `await GenServer.stop(pid)`, or `otp.exit(pid, otp.SHUTDOWN)` and "
        "wait for its Down;",
        "  * or link it to the process that owns it (otp.spawn_link), so it ends with its owner.",
    ]
    return "\n".join(lines)


# -- mailbox assertions and reports ---------------------------------------------------------


def _predicate(pattern: Any) -> Callable[[Any], bool]:
    if isinstance(pattern, type):
        return lambda msg: isinstance(msg, pattern)
    if callable(pattern):
        return lambda msg: bool(pattern(msg))
    return lambda msg: bool(msg == pattern)


def _mailbox() -> list[Any]:
    return list(_process.current().mbox or ())


async def assert_receive(pattern: Any = object, timeout: float = 1.0) -> Any:
    """Receive the first message matching `pattern` within `timeout` s, or fail the test.

    `pattern` is a predicate, a type (isinstance), or a value compared with `==`
    (`unittest.mock.ANY` works inside tuples).

    Args:
        pattern: A predicate, a type, or a value (default `object`: any message).
        timeout: Seconds to wait (default 1.0).

    Returns:
        The message, taken out of the mailbox.

    Raises:
        AssertionError: No matching message arrived in time (the message shows the mailbox).
    """
    try:
        return await receive(_predicate(pattern), timeout=timeout)
    except TimeoutError:
        raise AssertionError(
            f"no message matching {pattern!r} arrived within {timeout} s; "
            f"the mailbox holds {_mailbox()!r}"
        ) from None


async def refute_receive(pattern: Any = object, timeout: float = 0.1) -> None:
    """Fail the test if a message matching `pattern` arrives within `timeout` s.

    Args:
        pattern: A predicate, a type, or a value (default `object`: any message).
        timeout: Seconds to wait (default 0.1).

    Raises:
        AssertionError: A matching message arrived (it is taken out of the mailbox).
    """
    try:
        msg = await receive(_predicate(pattern), timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError(f"received {msg!r}, which matches {pattern!r}, within {timeout} s")


class _ReportCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.reports: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        report = getattr(record, "otp_report", None)
        if report is not None:
            self.reports.append(report)


@contextmanager
def capture_reports(logger: str = "otp") -> Iterator[list[Any]]:
    """Collect the report records logged under `logger` (all of the runtime's by default).

    A context manager; the logger's level is DEBUG inside it (info reports included).

    Args:
        logger: A logger name (default `"otp"`).

    Yields:
        The list the reports are appended to, as they are logged.
    """
    collector = _ReportCollector()
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.DEBUG)  # info reports too (application started/stopped)
    log.addHandler(collector)
    try:
        yield collector.reports
    finally:
        log.removeHandler(collector)
        log.setLevel(level)
