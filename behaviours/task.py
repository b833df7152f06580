"""Task and TaskSupervisor: one-off work in a process of its own (Elixir's Task).

    task = Task.async_(fetch, url)            # linked to the caller, and monitored
    page = await Task.await_(task, 5.0)       # its result; a timeout kills it and says so
    async for status, value in Task.async_stream(urls, fetch, max_concurrency=8):
        ...

    sup = await TaskSupervisor.start_link(name="jobs")
    task = await TaskSupervisor.async_nolink("jobs", risky)   # a crash does not kill the caller
    match await Task.yield_(task, 1.0):
        case ("ok", value): ...
        case ("exit", reason): ...
        case None: ...                      # still running

`async`, `await` and `yield` are Python keywords: Elixir's `Task.async`, `Task.await` and
`Task.yield` are `Task.async_`, `Task.await_` and `Task.yield_` here. `fn` may be a plain
function or an `async def` one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import otp
from otp import KILL, KILLED, SHUTDOWN, TIMEOUT, Down, ExitError, Pid, Ref
from otp.gen import current, kill

from ._child_spec import ChildSpec
from .dynamic_supervisor import DynamicSupervisor

__all__ = ["Task", "TaskSupervisor"]

REPLY: Final = "$task"
GO: Final = "$task_go"


@dataclass(frozen=True, slots=True)
class Task:
    """A running task: its pid, the caller's monitor on it, and the owner it answers."""

    pid: Pid
    ref: Ref
    owner: Pid
    tag: Ref  # its reply is (REPLY, tag, result)

    # -- starting ------------------------------------------------------------------------

    @staticmethod
    def async_(fn: Callable[..., Any], *args: Any) -> Task:
        """Run `fn(*args)` in a new process linked to the caller (a crash of one ends the
        other, unless it traps exits) and monitored by it; read the result with `await_`.

        Args:
            fn: A function (plain or async) to run.
            *args: Its arguments.

        Returns:
            The `Task`; only the caller (its owner) may read its result.

        Raises:
            TypeError: `fn` is not callable.
            otp.NoProcessError: Not called from a process.
        """
        _check(fn, "async_")
        me = otp.self()
        tag = otp.make_ref()
        pid = otp.spawn_link(_run, me, tag, fn, args)
        return Task(pid, otp.monitor(pid), me, tag)

    @staticmethod
    def start(fn: Callable[..., Any], *args: Any) -> Pid:
        """Run `fn(*args)` in a new process nobody waits for (no link, no result).

        Args:
            fn: A function (plain or async) to run.
            *args: Its arguments.

        Returns:
            The task's pid.

        Raises:
            TypeError: `fn` is not callable.
        """
        _check(fn, "start")
        return otp.spawn(_run, None, None, fn, args)

    # -- results -------------------------------------------------------------------------

    @staticmethod
    async def await_(task: Task, timeout: float = 5.0) -> Any:
        """The task's result. If it ends without one, `otp.ExitError` with its reason; after
        `timeout` seconds it is killed, and `otp.ExitError(TIMEOUT)` says so.

        Args:
            task: A task the caller started with `async_` or `async_nolink`.
            timeout: Seconds to wait (default 5.0).

        Returns:
            What `fn` returned.

        Raises:
            otp.ExitError: `.reason` is the task's exit reason, `TIMEOUT`, or
                `("not_owner", owner)` when the caller did not start it.
            TypeError: `task` is not a Task.
        """
        _owned(task, "await_")
        msg = await _receive(task, timeout)
        if msg is None:
            await _kill(task)
            raise ExitError(
                TIMEOUT, f"task {task.pid!r} gave no result in {timeout} s, and was killed"
            )
        if type(msg) is Down:
            raise ExitError(msg.reason, f"task {task.pid!r} ended with {msg.reason!r}")
        otp.demonitor(task.ref, flush=True)
        return msg[2]

    @staticmethod
    async def yield_(task: Task, timeout: float = 5.0) -> tuple[str, Any] | None:
        """`("ok", result)`, `("exit", reason)` if it ended without one, or None if it is
        still running after `timeout` seconds (it goes on; ask again, or `shutdown` it).

        Args:
            task: A task the caller started.
            timeout: Seconds to wait (default 5.0).

        Returns:
            `("ok", result)`, `("exit", reason)` or None.

        Raises:
            otp.ExitError: `("not_owner", owner)` when the caller did not start it.
            TypeError: `task` is not a Task.
        """
        _owned(task, "yield_")
        msg = await _receive(task, timeout)
        return None if msg is None else _outcome(task, msg)

    @staticmethod
    async def shutdown(
        task: Task, timeout: float | Literal["brutal_kill"] = 5.0
    ) -> tuple[str, Any] | None:
        """Stop the task: `SHUTDOWN`, then a kill after `timeout` seconds (or a kill at once).
        `("ok", result)` if its result came first, `("exit", reason)` if it ended otherwise
        first, None if it was stopped.

        Args:
            task: A task the caller started.
            timeout: Seconds between `SHUTDOWN` and the kill, or `"brutal_kill"` (default 5.0).

        Returns:
            `("ok", result)`, `("exit", reason)` or None.

        Raises:
            otp.ExitError: `("not_owner", owner)` when the caller did not start it.
            TypeError: `task` is not a Task.
        """
        _owned(task, "shutdown")
        otp.unlink(task.pid)
        done = await _receive(task, 0)
        if done is not None:
            return _outcome(task, done)
        watch = otp.monitor(task.pid)  # (its own monitor may be gone: a result was read)
        ended = _answers(task, watch)
        otp.exit(task.pid, KILL if timeout == "brutal_kill" else SHUTDOWN)
        wait = 0.0 if timeout == "brutal_kill" else float(timeout)
        try:
            msg = await otp.receive(ended, wait)
        except TimeoutError:
            otp.exit(task.pid, KILL)
            msg = await otp.receive(ended)
        otp.demonitor(watch, flush=True)
        otp.demonitor(task.ref, flush=True)
        if type(msg) is Down:
            return None if msg.reason in (SHUTDOWN, KILLED) else ("exit", msg.reason)
        return ("ok", msg[2])

    # -- many ----------------------------------------------------------------------------

    @staticmethod
    async def async_stream(
        items: Iterable[Any],
        fn: Callable[..., Any],
        *,
        max_concurrency: int | None = None,
        ordered: bool = True,
        timeout: float = 5.0,
        on_timeout: Literal["exit", "kill_task"] = "exit",
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """Run `fn(item)` for each item in tasks, at most `max_concurrency` at once (default:
        the number of CPUs); yield `("ok", result)` for each, in the items' order (or as they
        finish, with `ordered=False`). A task over `timeout` seconds is killed: the stream
        raises `ExitError(TIMEOUT)`, or with `on_timeout="kill_task"` yields
        `("exit", TIMEOUT)` for it and goes on. To leave the loop early, iterate inside
        `async with contextlib.aclosing(Task.async_stream(...)) as stream:`: the tasks still
        running are then killed at once (Python closes an abandoned generator only later).

        Args:
            items: The items, read as tasks are started.
            fn: A function (plain or async) of one item.
            max_concurrency: The most tasks at once (default None: the number of CPUs).
            ordered: Yield in the items' order (default True), else as they finish.
            timeout: Seconds each task may take (default 5.0).
            on_timeout: `"exit"` (default: raise) or `"kill_task"` (yield and go on).

        Yields:
            `("ok", result)`, or `("exit", reason)` for a task that ended without one.

        Raises:
            otp.ExitError: A task took over `timeout` (`.reason == TIMEOUT`), with
                `on_timeout="exit"`.
            TypeError: `fn` is not callable.
            ValueError: `max_concurrency` < 1.
        """
        _check(fn, "async_stream")
        limit = (os.cpu_count() or 1) if max_concurrency is None else max_concurrency
        if limit < 1:
            raise ValueError(f"async_stream() takes max_concurrency >= 1, got {limit!r}")
        pending = iter(enumerate(items))
        running: dict[int, Task] = {}
        done: dict[int, tuple[str, Any]] = {}
        next_out = 0
        loop = asyncio.get_running_loop()
        deadlines: dict[int, float] = {}
        try:
            while True:
                while len(running) < limit:
                    item = next(pending, None)
                    if item is None:
                        break
                    running[item[0]] = Task.async_(fn, item[1])
                    deadlines[item[0]] = loop.time() + timeout
                if not running and not done:
                    return
                if running:
                    first = min(running, key=deadlines.__getitem__)
                    index, result = await _next_of(running, deadlines[first] - loop.time())
                    if index is None:  # the oldest task ran out of time
                        index = first
                        await _kill(running.pop(index))
                        if on_timeout == "exit":
                            raise ExitError(TIMEOUT, f"async_stream: a task took over {timeout} s")
                        result = ("exit", TIMEOUT)
                    else:
                        del running[index]
                    del deadlines[index]
                    done[index] = result
                if ordered:
                    while next_out in done:
                        yield done.pop(next_out)
                        next_out += 1
                else:
                    for index in list(done):
                        yield done.pop(index)
        finally:  # the consumer stopped early, or something failed: leave no task behind
            for task in running.values():
                if _in_process():
                    await _kill(task)
                elif task.pid._proc is not None:  # closed by the collector, not the owner
                    kill(task.pid._proc, KILLED)


class TaskSupervisor:
    """A supervisor of tasks (a DynamicSupervisor of temporary children)."""

    @staticmethod
    async def start_link(*, name: str | None = None, max_children: float = math.inf) -> Pid:
        """Start a task supervisor linked to the caller.

        Args:
            name: A name to register it under (default None).
            max_children: The most tasks at once (default `math.inf`).

        Returns:
            The supervisor's pid.

        Raises:
            otp.AlreadyStartedError: `name` is taken.
            ValueError: A bad `max_children`.
        """
        pid = await DynamicSupervisor.start_link(name=name, max_children=max_children)
        assert pid is not None
        return pid

    @staticmethod
    def child_spec(*, name: str | None = None, **overrides: Any) -> ChildSpec:
        """The spec to run a task supervisor under a Supervisor.

        Args:
            name: A name to register it under (default None).
            **overrides: `ChildSpec` fields to replace.

        Returns:
            A `ChildSpec` of type "supervisor" (id: `TaskSupervisor`).
        """
        spec = ChildSpec(
            id=TaskSupervisor, start=(_start_supervisor, name), type="supervisor", shutdown=math.inf
        )
        return spec.replace(**overrides) if overrides else spec

    @staticmethod
    async def async_nolink(sup: Any, fn: Callable[..., Any], *args: Any) -> Task:
        """Run `fn(*args)` under `sup`, monitored by the caller but not linked to it: a crash
        of the task is a result for `await_`/`yield_`, not the caller's death.

        Args:
            sup: The task supervisor (a Pid or a name).
            fn: A function (plain or async) to run.
            *args: Its arguments.

        Returns:
            The `Task`, owned by the caller.

        Raises:
            behaviours.SupervisorError: `"max_children"`: the supervisor is full.
            otp.CallError: `sup` is not running.
            TypeError: `fn` is not callable.
        """
        _check(fn, "async_nolink")
        me = otp.self()
        tag = otp.make_ref()
        spec = ChildSpec(
            id=TaskSupervisor, start=(_start_task, me, tag, fn, args), restart="temporary"
        )
        pid = await DynamicSupervisor.start_child(sup, spec)
        assert pid is not None
        task = Task(pid, otp.monitor(pid), me, tag)
        otp.send(pid, (GO, tag))  # (it waits for the monitor: even a crash at once is seen)
        return task

    @staticmethod
    async def start_child(sup: Any, fn: Callable[..., Any], *args: Any) -> Pid:
        """Run `fn(*args)` under `sup`, with no result for anyone.

        Args:
            sup: The task supervisor (a Pid or a name).
            fn: A function (plain or async) to run.
            *args: Its arguments.

        Returns:
            The task's pid.

        Raises:
            behaviours.SupervisorError: `"max_children"`: the supervisor is full.
            otp.CallError: `sup` is not running.
            TypeError: `fn` is not callable.
        """
        _check(fn, "start_child")
        spec = ChildSpec(
            id=TaskSupervisor, start=(_start_task, None, None, fn, args), restart="temporary"
        )
        pid = await DynamicSupervisor.start_child(sup, spec)
        assert pid is not None
        return pid


# -- the processes ------------------------------------------------------------------------


async def _run(owner: Pid | None, tag: Ref | None, fn: Callable[..., Any], args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    if owner is not None:
        otp.send(owner, (REPLY, tag, result))


async def _run_when_watched(
    owner: Pid | None, tag: Ref | None, fn: Callable[..., Any], args: Any
) -> None:
    """`_run` once the owner monitors this process (it says so), for a supervised task;
    if the owner ends first, there is nobody to run it for."""
    if owner is not None:
        ref = otp.monitor(owner)
        go = await otp.receive(
            lambda m: (
                (type(m) is tuple and len(m) == 2 and m[0] == GO and m[1] is tag)
                or (type(m) is Down and m.ref is ref)
            )
        )
        if type(go) is Down:
            return
        otp.demonitor(ref, flush=True)
    await _run(owner, tag, fn, args)


async def _start_task(owner: Pid | None, tag: Ref | None, fn: Callable[..., Any], args: Any) -> Pid:
    return otp.spawn_link(_run_when_watched, owner, tag, fn, args)  # (linked to the supervisor)


async def _start_supervisor(name: str | None) -> Pid:
    return await TaskSupervisor.start_link(name=name)


# -- helpers ------------------------------------------------------------------------------


def _in_process() -> bool:
    try:
        current()
    except otp.NoProcessError:
        return False
    return True


def _check(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"Task.{what}() takes a function, got {fn!r}")


def _owned(task: Any, what: str) -> None:
    if not isinstance(task, Task):
        raise TypeError(f"Task.{what}() takes a Task (from Task.async_), got {task!r}")
    if task.owner != otp.self():
        raise ExitError(
            ("not_owner", task.owner),
            f"Task.{what}(): {task!r} belongs to {task.owner!r}; only its owner reads it",
        )


def _answers(task: Task, ref: Ref | None = None) -> Callable[[Any], bool]:
    """The task's reply, or the Down of `ref` (default: the owner's monitor on it)."""
    tag = task.tag
    if ref is None:
        ref = task.ref
    return lambda m: (
        (type(m) is tuple and len(m) == 3 and m[0] == REPLY and m[1] is tag)
        or (type(m) is Down and m.ref is ref)
    )


async def _receive(task: Task, timeout: float | None) -> Any:
    """The task's reply or Down; None after `timeout` seconds."""
    try:
        return await otp.receive(_answers(task), None if timeout is None else max(0.0, timeout))
    except TimeoutError:
        return None


def _outcome(task: Task, msg: Any) -> tuple[str, Any]:
    if type(msg) is Down:
        return ("exit", msg.reason)
    otp.demonitor(task.ref, flush=True)
    return ("ok", msg[2])


async def _kill(task: Task) -> None:
    """Kill the task and wait until it is gone; nothing of it is left in the mailbox."""
    watch = otp.monitor(task.pid)  # (a fresh one: its own may have been read already)
    otp.unlink(task.pid)
    otp.exit(task.pid, KILL)
    await otp.receive(lambda m: type(m) is Down and m.ref is watch)
    otp.demonitor(task.ref, flush=True)
    reply = _answers(task)
    proc = current()
    if proc.mbox:  # a reply that came before the kill
        proc.mbox = type(proc.mbox)(m for m in proc.mbox if not reply(m))


async def _next_of(running: dict[int, Task], timeout: float) -> tuple[Any, Any]:
    """The first of the running tasks to answer: `(index, ("ok", r) | ("exit", reason))`,
    or `(None, None)` after `timeout` seconds."""
    by_tag = {task.tag: i for i, task in running.items()}
    by_ref = {task.ref: i for i, task in running.items()}

    def match(m: Any) -> bool:
        if type(m) is tuple and len(m) == 3 and m[0] == REPLY:
            return m[1] in by_tag
        return type(m) is Down and m.ref in by_ref

    try:
        msg = await otp.receive(match, max(0.0, timeout))
    except TimeoutError:
        return None, None
    if type(msg) is Down:
        index = by_ref[msg.ref]
        return index, ("exit", msg.reason)
    index = by_tag[msg[1]]
    otp.demonitor(running[index].ref, flush=True)
    return index, ("ok", msg[2])
