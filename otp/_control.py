"""The control socket: how `otp status`, `otp tree`, `otp top`, `otp stop`, `otp eval`
and `otp remote` reach a running node.

A Unix domain socket in the run directory (owner-only), one request per connection:
a frame is a 4-byte big-endian length and a msgpack body (msgspec; never pickle).
Every request carries the node's cookie. A malformed or unauthenticated request gets an
error reply and the connection is closed; the node is not disturbed by it. When the node
stops, every connection still open is answered that the node is stopping, then closed.

A remote shell is the one request that keeps its connection: `Request(command="remote")`,
once answered, turns the connection into a session. The client then sends frames of its
own (`Eval`, `Interrupt`, `Complete`, a tagged msgpack union) and gets one `Response` for
each `Eval` and `Complete`. The session's names live as long as the connection; its code
runs in a process of the node (its shell process, as in Erlang), which an `Interrupt`, a
timeout or an exit signal may kill: the next evaluation gets a new one, with the same names.

    client                                node
    Request(cookie, "remote")   ---->
                                <----     Response(ok, {"node", "pid", "imported"})
    Eval("await f()", timeout)  ---->     (runs in the session's process)
    Interrupt()                 ---->     (Ctrl-C: the process is killed)
                                <----     Response(ok, Evaluated(output, value, error))
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import heapq
import hmac
import inspect
import linecache
import math
import os
import resource
import rlcompleter
import signal
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from . import _node, _watchdog
from . import sys as otp_sys
from ._mailbox import receive, send
from ._process import Process, current
from ._signals import kill
from ._spawn import spawn
from ._values import KILLED, NORMAL, SHUTDOWN, Pid
from .errors import OTPError
from .ops import _alarms
from .registry import via_names
from .reports import describe_entry

__all__ = [
    "Complete",
    "ControlError",
    "ControlServer",
    "Eval",
    "Evaluated",
    "Interrupt",
    "Request",
    "Response",
    "Session",
    "call",
    "serve",
]

MAX_FRAME: Final = 1 << 20  # requests are small; anything bigger is not one of ours
COMMAND_TIMEOUT: Final = 30.0
READ_TIMEOUT: Final = 5.0  # for the request to arrive once connected
CLOSE_WAIT: Final = 1.0  # how long a stopping node waits to answer its open connections
TREE_WAIT: Final = 1.0  # how long `otp tree` waits for one supervisor's children
MAX_DEPTH: Final = 100  # how deep `otp tree` goes into nested supervisors


class Request(msgspec.Struct, forbid_unknown_fields=True):
    cookie: str
    command: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Response(msgspec.Struct):
    ok: bool
    result: Any = None
    error: str | None = None


class ControlError(OTPError):
    """The node refused a control request, or could not be reached."""


# a remote session's frames, client to node


class Eval(msgspec.Struct, tag="eval", forbid_unknown_fields=True):
    """Run `source` (statements; the value of a last expression is shown) in the session."""

    source: str
    timeout: float | None = None  # seconds; then the evaluation is killed


class Interrupt(msgspec.Struct, tag="interrupt", forbid_unknown_fields=True):
    """Ctrl-C: kill the evaluation running now (nothing, if none is)."""


class Complete(msgspec.Struct, tag="complete", forbid_unknown_fields=True):
    """Tab: the session's names (or attributes, after a dot) that start with `text`."""

    text: str


class Evaluated(msgspec.Struct):
    """How an `Eval` went: what `print` wrote, the value's repr (None: no value, or None),
    or the traceback; `leave` when the code called exit()."""

    output: str = ""
    value: str | None = None
    error: str | None = None
    leave: bool = False


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)
_session_decoder = msgspec.msgpack.Decoder(Eval | Interrupt | Complete)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


# -- the node side ------------------------------------------------------------------------

STOPPING: Final = "the node is stopping"


class ControlServer:
    """The listening socket and the connections it is answering."""

    def __init__(self, node: _node.Node, cookie: bytes) -> None:
        self.node = node
        self.cookie = cookie
        self.server: asyncio.AbstractServer | None = None
        self.open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.readers: dict[asyncio.Task[None], asyncio.StreamReader] = {}
        self.stopping = False

    async def close(self) -> None:
        """Stop listening; answer each open connection that the node is stopping, close it.

        The handlers are not cancelled (asyncio 3.11's streams log a cancelled one as an
        error): an end of input is fed to each reader, and a handler that meets it while
        the node stops answers so."""
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for reader in self.readers.values():
            reader.feed_eof()
        for cut_off in (False, True):
            if not self.open:
                return
            if cut_off:  # a client that does not read its answer: drop the connection
                for writer in self.open.values():
                    writer.transport.abort()
            await asyncio.wait(list(self.open), timeout=CLOSE_WAIT)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.open[task] = writer
        self.readers[task] = reader
        try:
            response, session = await self._answer(reader)
            await _reply(writer, response)
            if session is not None:
                await self._session(session, reader, writer)
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            del self.open[task], self.readers[task]
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response, _Session | None]:
        """The answer to the connection's request, and the session it opens (`remote`)."""
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # a client that sends nothing is let go
                size = int.from_bytes(await reader.readexactly(4), "big")
                if size > MAX_FRAME:
                    return Response(
                        False, error=f"malformed request: a frame of {size} bytes is too large"
                    ), None
                request = _request_decoder.decode(await reader.readexactly(size))
        except TimeoutError:
            return Response(False, error=f"no request within {READ_TIMEOUT} s"), None
        except asyncio.IncompleteReadError:
            if self.stopping:
                return Response(False, error=STOPPING), None
            return Response(False, error="malformed request: the frame is truncated"), None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Response(False, error=f"malformed request: {exc}"), None
        except RecursionError:
            return Response(False, error="malformed request: nested too deeply"), None
        if not hmac.compare_digest(request.cookie.encode(), self.cookie):
            return Response(False, error="unauthenticated: wrong cookie"), None
        if request.command == "remote":
            if self.stopping or self.node.stopping:
                return Response(False, error=STOPPING), None
            session = _Session()
            return Response(True, result=session.hello(self.node)), session
        command = _COMMANDS.get(request.command)
        if command is None:
            known = ", ".join(sorted([*_COMMANDS, "remote"]))
            return Response(
                False, error=f"unknown command {request.command!r}; known: {known}"
            ), None
        done: asyncio.Future[Any] = self.node.loop.create_future()
        worker = spawn(_run_command, command, request.args, done)  # commands talk to processes
        try:
            return Response(True, result=await asyncio.wait_for(done, COMMAND_TIMEOUT)), None
        except Exception as exc:
            if self.stopping or self.node.stopping:
                return Response(False, error=STOPPING), None
            return Response(False, error=f"{request.command} failed: {exc!r}"), None
        finally:
            if worker._proc is not None:  # timed out (or the client left): do not leave it
                kill(worker._proc, KILLED)

    async def _session(
        self, session: _Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer a remote shell's frames until the client leaves or the node stops."""
        frames: asyncio.Queue[Any] = asyncio.Queue()
        pump = asyncio.ensure_future(_pump(reader, frames))
        try:
            while True:
                frame = await frames.get()
                match frame:
                    case Eval():
                        try:
                            evaluated = await self._evaluate(session, frame, frames)
                        except _Stopping:
                            await _reply(writer, Response(False, error=STOPPING))
                            return
                        if evaluated is None:  # what ended it is next in `frames`
                            continue
                        await _reply(writer, Response(True, result=evaluated))
                    case Complete(text=text):
                        await _reply(writer, Response(True, result=session.complete(text)))
                    case Interrupt():
                        pass  # nothing runs: nothing to interrupt (Ctrl-C as a reply came)
                    case str():  # a malformed frame: say so and end the session
                        await _reply(writer, Response(False, error=frame))
                        return
                    case _:  # the end of input: the client left, or the node stops
                        if self.stopping:
                            await _reply(writer, Response(False, error=STOPPING))
                        return
        finally:
            pump.cancel()
            await asyncio.wait([pump])
            session.close()

    async def _evaluate(
        self, session: _Session, frame: Eval, frames: asyncio.Queue[Any]
    ) -> Evaluated | None:
        """Have the session's process run `frame`; an Interrupt, a timeout, or the process
        dying end the wait. None: the client left, or sent what it should not (the
        evaluation is killed, and what ended it is put back in `frames`)."""
        if self.stopping or self.node.stopping:
            raise _Stopping
        notice = session.ensure_process()
        proc = session.proc
        assert proc is not None
        done: asyncio.Future[Evaluated] = self.node.loop.create_future()
        send(proc.pid, _Job(frame.source, done))
        timeout = frame.timeout
        deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
        getter = asyncio.ensure_future(frames.get())
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        waiting: set[asyncio.Future[Any]] = {done, proc, getter}
        finished, _ = await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        if getter not in finished:
            getter.cancel()
            await asyncio.wait([getter])
            if not getter.cancelled():  # it came as it was cancelled: for the session loop
                frames.put_nowait(getter.result())
        if done in finished:
            result = done.result()
            result.output = notice + result.output
            return result
        if proc in finished:  # an exit signal ended it while it evaluated
            if self.stopping or self.node.stopping:
                raise _Stopping
            session.proc = None
            return Evaluated(
                output=notice + session.output.take(),
                error=f"** the session's process {proc.pid} exited: {proc.exit_reason!r} "
                f"(the next input runs in a new one; your names are kept)\n",
            )
        session.end_process(KILLED)
        if not finished:
            return Evaluated(
                output=notice + session.output.take(),
                error=f"TimeoutError: the evaluation took longer than {timeout} s, so its "
                f"process {proc.pid} was killed (give it more time with --timeout)\n",
            )
        frame_in = getter.result()
        if isinstance(frame_in, Interrupt):
            return Evaluated(
                output=notice + session.output.take(),
                error=f"KeyboardInterrupt: the evaluation was interrupted, and its process "
                f"{proc.pid} killed (the next input runs in a new one; your names are kept)\n",
            )
        if isinstance(frame_in, Eval | Complete):  # out of turn: a client's bug
            frames.put_nowait(f"malformed session: {type(frame_in).__name__} while an Eval ran")
            return None
        frames.put_nowait(frame_in)  # the end of input (the client left, or the node
        if self.stopping:  # stops), or a malformed frame: for the session loop
            raise _Stopping
        return None


async def _reply(writer: asyncio.StreamWriter, response: Response) -> None:
    try:
        payload = _encoder.encode(response)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        payload = _encoder.encode(Response(False, error=f"cannot encode the reply: {exc}"))
    writer.write(_frame(payload))
    await writer.drain()


_EOF: Final = None  # what `_pump` queues at the end of a session's input


async def _pump(reader: asyncio.StreamReader, frames: asyncio.Queue[Any]) -> None:
    """Read a session's frames into `frames`, then `_EOF`, or the text of what was wrong."""
    while True:
        try:
            size = int.from_bytes(await reader.readexactly(4), "big")
            if size > MAX_FRAME:
                frames.put_nowait(f"malformed session frame: {size} bytes is too large")
                return
            frames.put_nowait(_session_decoder.decode(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            frames.put_nowait(_EOF)
            return
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            frames.put_nowait(f"malformed session frame: {exc}")
            return
        except RecursionError:
            frames.put_nowait("malformed session frame: nested too deeply")
            return


# -- remote shells: the node side -----------------------------------------------------------

MAX_OUTPUT: Final = 1 << 20  # characters of printed output or of a repr sent back at once
_PRELUDE: Final = (  # what a session starts with (run as code: otp never imports behaviours)
    "import otp",
    "import asyncio",
    "from behaviours import DynamicSupervisor, GenServer, Supervisor",
)
_FRAMEWORK: Final = (
    str(Path(__file__).resolve().parent) + os.sep,  # otp/
    str(Path(__file__).resolve().parent.parent / "behaviours") + os.sep,
)


class _Stopping(Exception):
    """The node stops: the session ends with that answer."""


class _Leave(BaseException):
    """exit() or quit() at the remote prompt."""


class _Quitter:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return (
            f"Use {self.name}() or Ctrl-D (end of input) to leave the remote shell; "
            f"the node keeps running"
        )

    def __call__(self, code: object = None) -> None:
        raise _Leave


class _Output:
    """What `print` wrote in a session since its last answer (kept to MAX_OUTPUT)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        if self.size + len(text) > MAX_OUTPUT:
            self.dropped += len(text)
        else:
            self.parts.append(text)
            self.size += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"... ({self.dropped} more characters of output not shown)\n"
        self.parts, self.size, self.dropped = [], 0, 0
        return text


class _Job:
    """One `Eval` for the session's process."""

    __slots__ = ("done", "source")

    def __init__(self, source: str, done: asyncio.Future[Evaluated]) -> None:
        self.source = source
        self.done = done


class _Session:
    """A remote shell's names, its output, and the process that runs its code."""

    def __init__(self) -> None:
        self.output = _Output()
        self.namespace: dict[str, Any] = {
            "__name__": "__remote__",
            "__builtins__": builtins,
            "exit": _Quitter("exit"),
            "quit": _Quitter("quit"),
            "print": self._print,
        }
        self.imported: list[str] = []
        for line in _PRELUDE:
            try:
                exec(line, self.namespace)
            except ImportError:
                continue
            self.imported.append(line)
        self.inputs = 0
        self.filenames: list[str] = []
        self.proc: Process | None = None

    def _print(self, *values: object, file: Any = None, **options: Any) -> None:
        """print() at the prompt writes to the remote terminal, not to the node's stdout."""
        builtins.print(*values, file=self.output if file is None else file, **options)

    def hello(self, node: _node.Node) -> dict[str, Any]:
        self.ensure_process()
        assert self.proc is not None
        return {"node": node.name, "pid": repr(self.proc.pid), "imported": self.imported}

    def ensure_process(self) -> str:
        """Start the session's process if it has none; a note when the old one died."""
        old = self.proc
        if old is not None and not old.finished:
            return ""
        self.proc = spawn(_evaluator, self)._proc
        if old is None:
            return ""
        return (
            f"** the session's process {old.pid} exited: {old.exit_reason!r}; "
            f"{self.proc.pid if self.proc else '?'} takes its place (your names are kept)\n"
        )

    def end_process(self, reason: Any) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and not proc.finished:
            kill(proc, reason)

    def close(self) -> None:
        self.end_process(SHUTDOWN)  # processes it linked to go too (not as a crash)
        for name in self.filenames:
            linecache.cache.pop(name, None)
        self.namespace.clear()

    def complete(self, text: str) -> list[str]:
        if not text.strip():
            return []
        completer = rlcompleter.Completer(self.namespace)
        try:
            matches = (
                completer.attr_matches(text) if "." in text else completer.global_matches(text)
            )
        except Exception:  # an attribute that raises while looked up: no completions
            return []
        return sorted(set(matches))[:500]

    async def run(self, source: str) -> Evaluated:
        """Compile and run `source` here (in the session's process), as the REPL does:
        the value of a last expression is shown, top-level await works."""
        self.inputs += 1
        filename = f"<remote-{self.inputs}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        self.filenames.append(filename)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | flags)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            steps = [compile(tree, filename, "exec", flags)] if tree.body else []
            if isinstance(last, ast.Expr):
                expression = ast.Expression(last.value)
                steps.append(compile(expression, filename, "eval", flags))
            value = None
            for step in steps:
                value = eval(step, self.namespace)
                if step.co_flags & inspect.CO_COROUTINE:
                    value = await value
            if last is None:
                value = None
            text = None
            if value is not None:
                self.namespace["_"] = value
                text = repr(value)
                if len(text) > MAX_OUTPUT:
                    text = f"{text[:MAX_OUTPUT]}... ({len(text)} characters in all)"
        except asyncio.CancelledError:
            raise  # killed (an interrupt, a timeout, an exit signal): the process ends
        except _Leave:
            return Evaluated(output=self.output.take(), leave=True)
        except BaseException as exc:  # whatever the code raised, the process carries on
            return Evaluated(output=self.output.take(), error=_format_exception(exc))
        return Evaluated(output=self.output.take(), value=text)


async def _evaluator(session: _Session) -> None:
    """The session's process: run each job it is sent, in order, for ever."""
    while True:
        job: _Job = await receive(lambda m: type(m) is _Job)
        result = await session.run(job.source)
        if not job.done.done():
            job.done.set_result(result)


def _format_exception(exc: BaseException) -> str:
    """The traceback as the REPL shows it, less the framework's own frames."""
    shown = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    todo = [shown]
    while todo:
        te = todo.pop()
        if id(te) in seen:
            continue
        seen.add(id(te))
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if not f.filename.startswith(_FRAMEWORK)]
        )
        todo.extend(t for t in (te.__cause__, te.__context__) if t is not None)
    return "".join(shown.format())


async def serve(path: Path, cookie: str) -> ControlServer:
    """Listen on `path` (created owner-only) for control requests to the running node.

    The caller owns the path (it holds the name's lock): a socket left there is a dead
    node's, and is replaced."""
    control = ControlServer(_node.get(), cookie.encode())
    path.unlink(missing_ok=True)  # noqa: ASYNC240  (a stale socket of a dead node; instant)
    old_mask = os.umask(0o177)  # owner-only from the moment the socket exists
    try:
        control.server = await asyncio.start_unix_server(control._handle, path=str(path))
    finally:
        os.umask(old_mask)
    return control


async def _run_command(
    command: Callable[[dict[str, Any]], Awaitable[Any]],
    args: dict[str, Any],
    done: asyncio.Future[Any],
) -> None:
    try:
        result = await command(args)
    except Exception as exc:
        if not done.done():
            done.set_exception(exc)
        return
    except BaseException:  # ended by a signal (the node's shutdown): the handler waits on
        if not done.done():
            done.set_exception(ControlError(STOPPING))
        raise
    if not done.done():
        done.set_result(result)


async def _status(args: dict[str, Any]) -> dict[str, Any]:
    node = _node.get()
    apps = node.apps
    running = [] if apps is None else [apps.running[name] for name in apps.order]
    return {
        "node": node.name,
        "os_pid": os.getpid(),
        "uptime": round(time.time() - node.started_at, 3),
        "processes": len(node.procs),
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "release": _release_status(node),
        "nodes": None if node.dist is None else sorted(node.dist.conns),
        "applications": [
            {
                "name": r.name,
                "vsn": apps.loaded[r.name].spec.vsn,
                "description": apps.loaded[r.name].spec.description,
                "type": r.type,
            }
            for r in running
        ],
    }


def _release_status(node: _node.Node) -> dict[str, Any] | None:
    """The release the node runs, and its status: "permanent", or "current" while it is
    on trial (installed, not made permanent)."""
    table = node.release
    if table is None:
        return None
    state = table.releases.get(table.vsn)
    return {"vsn": table.vsn, "status": None if state is None else state.status}


async def _tree(args: dict[str, Any]) -> list[dict[str, Any]]:
    node = _node.get()
    apps = node.apps
    if apps is None:
        return []
    trees = []
    for name in apps.order:
        top = apps.running[name].top
        tree = None if top is None else await _describe(top, None, "supervisor", 0, 0)
        trees.append({"application": name, "tree": tree})
    return trees


async def _describe(pid: Any, id: Any, kind: str, restarts: int, depth: int) -> dict[str, Any]:
    """One node of the tree: the process, and below a supervisor, its children (down to
    MAX_DEPTH levels: a deeper tree is cut there, and says so)."""
    entry: dict[str, Any] = {
        "id": id if id is None or type(id) is str or _small_int(id) else _name(id),
        "pid": repr(pid) if type(pid) is Pid else pid,
        "type": kind,
        "restarts": restarts,
    }
    proc = pid._proc if type(pid) is Pid else None
    if proc is None:
        return entry
    entry.update(
        name=proc.regname,
        behaviour=None if proc.behaviour is None else _name(proc.behaviour),
        mailbox=len(proc.mbox or ()),
    )
    via = via_names(pid)
    if via:
        entry["via"] = [repr(name) for name in via]
    if kind == "supervisor" and proc.behaviour is not None:
        if depth >= MAX_DEPTH:
            entry["unavailable"] = f"deeper than {MAX_DEPTH} levels"
            return entry
        try:
            children = await otp_sys.get_children(pid, TREE_WAIT)
        except OTPError as exc:  # busy (starting a child) or gone meanwhile: say so, go on
            entry["unavailable"] = "busy" if isinstance(exc, TimeoutError) else "gone"
            return entry
        if children is not None:
            entry["children"] = [
                await _describe(child_pid, child_id, child_type, child_restarts, depth + 1)
                for child_id, child_pid, child_type, child_restarts in children
            ]
    return entry


def _small_int(value: Any) -> bool:
    """An int msgpack carries as a number (others are shown as text)."""
    return type(value) is int and -(2**63) <= value < 2**64


def _name(value: Any) -> str:
    return getattr(value, "__qualname__", None) or repr(value)


# -- otp top: the busiest processes, the supervisors and the alarms ------------------------

TOP_LIMIT: Final = 30  # process rows `top` answers unless asked for another number
TOP_MAX_LIMIT: Final = 10_000
TOP_SORTS: Final = ("mailbox", "rate", "time")
TOP_SESSIONS: Final = 8  # viewers whose last sample a node keeps (for their rates)
TOP_IDLE: Final = 60.0  # seconds: a viewer not heard from for this long is forgotten


@dataclass(slots=True)
class _Sample:
    """What one viewer of `otp top` saw last: each process's message count, by pid id,
    and, when it sorts by time, the sampler's busy seconds of each."""

    node: _node.Node
    at: float  # time.monotonic()
    counts: dict[int, int]
    sampler: _watchdog.Sampler | None = None
    busy: dict[int, float] | None = None


_samples: dict[str, _Sample] = {}  # by the viewer's session token


def _top_args(args: dict[str, Any]) -> tuple[int, str, str | None]:
    limit = args.get("limit", TOP_LIMIT)
    if type(limit) is not int or not 1 <= limit <= TOP_MAX_LIMIT:
        raise ValueError(f"limit is a whole number from 1 to {TOP_MAX_LIMIT}; got {limit!r}")
    sort = args.get("sort", "mailbox")
    if sort not in TOP_SORTS:
        raise ValueError(f"sort is one of {', '.join(TOP_SORTS)}; got {sort!r}")
    session = args.get("session")
    if session is not None and (type(session) is not str or not 0 < len(session) <= 64):
        raise ValueError(f"session is a token of 1 to 64 characters; got {session!r}")
    return limit, sort, session


async def _top(args: dict[str, Any]) -> dict[str, Any]:
    """The `limit` processes with the longest mailboxes (or highest message rates, or most
    time in callbacks), from one pass over the process table; the supervisors with their
    children's restarts; the active alarms. A message rate is messages received per second
    since the same `session`'s previous request (None on its first): the node keeps each
    session's last message counts, for at most TOP_SESSIONS sessions, each until TOP_IDLE
    seconds unused. Nothing is counted per message: `msg_count` is kept by the mailbox
    anyway. The time in callbacks (`time`: the share of the interval the loop ran the
    process) comes from the loop sampler (`_watchdog.sampler`), which a request sorted by
    time starts and keeps running; other requests leave it None."""
    limit, sort, session = _top_args(args)
    node = _node.get()
    now = time.monotonic()
    for token, old in list(_samples.items()):  # forget viewers gone (and dead nodes)
        if old.node is not node or now - old.at > TOP_IDLE:
            del _samples[token]
    last = None if session is None else _samples.pop(session, None)
    before = {} if last is None else last.counts
    counts: dict[int, int] = {}
    by_rate = sort == "rate"
    by_time = sort == "time"
    sampler = _watchdog.sampler(node) if by_time else None
    busy: dict[int, float] = {} if sampler is None else dict(sampler.busy)  # (one C call)
    # the busy seconds the session saw last, if the same sampler ran since (else: none yet)
    timed = sampler is not None and last is not None and last.sampler is sampler
    busy_before = last.busy if timed and last is not None and last.busy is not None else {}
    # one pass; a heap of the top `limit` (sort key, second key, age: older first on ties)
    heap: list[tuple[float, int, int]] = []
    received = 0
    procs = node.procs
    me = current()  # (the process answering this request is left out of the rows)
    for pid_id, proc in procs.items():
        count = proc.msg_count
        counts[pid_id] = count
        delta = count - before.get(pid_id, 0)  # (a new process: all it received is new)
        received += delta
        if proc is me:
            continue
        mbox = proc.mbox
        length = len(mbox) if mbox else 0
        if by_time:
            spent = busy.get(pid_id, 0.0) - busy_before.get(pid_id, 0.0)
            item: tuple[float, int, int] = (spent, length, -pid_id)
        elif by_rate:
            item = (delta, length, -pid_id)
        else:
            item = (length, delta, -pid_id)
        if len(heap) < limit:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    if session is not None:
        if len(_samples) >= TOP_SESSIONS:  # the longest unused goes
            del _samples[min(_samples, key=lambda t: _samples[t].at)]
        _samples[session] = _Sample(node, now, counts, sampler, busy)
    if sampler is not None:
        for gone in busy.keys() - procs.keys():  # (ended: never running again)
            sampler.busy.pop(gone, None)
    elapsed = None if last is None else now - last.at
    rows = []
    for *_, age in sorted(heap, reverse=True):
        proc = procs[-age]  # (no await since the pass: it is still there)
        pid_id = -age
        delta = counts[pid_id] - before.get(pid_id, 0)
        spent = busy.get(pid_id, 0.0) - busy_before.get(pid_id, 0.0)
        rows.append(
            {
                "pid": repr(proc.pid),
                "name": proc.regname,
                "behaviour": None if proc.behaviour is None else _name(proc.behaviour),
                "initial_call": describe_entry(proc.entry),
                "application": proc.app,
                "mailbox": len(proc.mbox or ()),
                "messages": proc.msg_count,
                "rate": None if not elapsed else delta / elapsed,
                "time": None if not (timed and elapsed) else max(0.0, spent) / elapsed,
                "system": -age in node.system,
            }
        )
    return {
        "node": node.name,
        "uptime": round(time.time() - node.started_at, 3),
        "processes": len(node.procs),
        "sort": sort,
        "interval": elapsed,
        "rate": None if not elapsed else received / elapsed,
        "rows": rows,
        "supervisors": await _supervisors(node),
        "alarms": [alarm.as_json() for alarm in _alarms.active(node)],
    }


async def _supervisors(node: _node.Node) -> list[dict[str, Any]]:
    """Each supervisor of the applications' trees, top down, with its number of children
    and their restarts (as `otp tree` reads them: one `get_children` each)."""
    found: list[dict[str, Any]] = []
    apps = node.apps
    if apps is None:
        return found
    todo: list[tuple[Any, str, int]] = []
    for name in reversed(apps.order):
        top = apps.running[name].top
        if type(top) is Pid:
            todo.append((top, name, 0))
    while todo:
        pid, app, depth = todo.pop()
        proc = pid._proc
        if proc is None or proc.behaviour is None:
            continue
        entry: dict[str, Any] = {
            "pid": repr(pid),
            "name": proc.regname,
            "behaviour": _name(proc.behaviour),
            "application": app,
            "children": None,
            "restarts": None,
        }
        found.append(entry)
        if depth >= MAX_DEPTH:
            entry["unavailable"] = f"deeper than {MAX_DEPTH} levels"
            continue
        try:
            children = await otp_sys.get_children(pid, TREE_WAIT)
        except OTPError as exc:  # busy (starting a child) or gone meanwhile: say so, go on
            entry["unavailable"] = "busy" if isinstance(exc, TimeoutError) else "gone"
            continue
        if children is None:
            continue
        entry["children"] = len(children)
        entry["restarts"] = sum(restarts for _, _, _, restarts in children)
        todo.extend(
            (child, app, depth + 1)
            for _, child, kind, _ in reversed(children)
            if kind == "supervisor" and type(child) is Pid
        )
    return found


async def _stop(args: dict[str, Any]) -> str:
    """A clean stop, as SIGTERM; asked again while stopping, an exit at once, as a second
    SIGTERM (the node's signal handler does it)."""
    node = _node.get()
    if node.halted.done():
        node.loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
        return "exiting at once"
    node.loop.call_soon(node.stop, NORMAL)  # after the reply is on its way
    return "stopping"


async def _release(args: dict[str, Any], step: str) -> Any:
    from . import release

    match step:
        case "check":
            return await release.check(args.get("vsn"))  # type: ignore[arg-type]
        case "upgrade":
            report = await release.install(
                args.get("vsn"),  # type: ignore[arg-type]
                window=args.get("window", release.DEFAULT_WINDOW),
                max_crash_ratio=args.get("max_crash_ratio", release.DEFAULT_MAX_CRASH_RATIO),
            )
            return {
                "release": report.module,
                "from": report.old_vsn,
                "to": report.new_vsn,
                "processes": len(report.processes),
            }
        case "rollback":
            return await release.rollback()
        case "permanent":
            return await release.make_permanent()
    return [list(row) for row in await release.which_releases()]


def _release_step(step: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    async def command(args: dict[str, Any]) -> Any:
        return await _release(args, step)

    return command


_COMMANDS: Final[dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]] = {
    "status": _status,
    "tree": _tree,
    "stop": _stop,
    "top": _top,
    **{
        f"release_{step}": _release_step(step)
        for step in ("check", "upgrade", "rollback", "permanent", "list")
    },
}


# -- the client side ----------------------------------------------------------------------


def call(path: Path, cookie: str, command: str, args: dict[str, Any] | None = None) -> Any:
    """Send one request to the node listening on `path`; its result, or ControlError."""
    if not path.exists():
        raise ControlError(f"no node is running there: no control socket at {path}")
    request = Request(cookie=cookie, command=command, args=args or {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(COMMAND_TIMEOUT + 5)
        try:
            sock.connect(str(path))
            sock.sendall(_frame(_encoder.encode(request)))
            size = int.from_bytes(_read(sock, 4), "big")
            response = _response_decoder.decode(_read(sock, size))
        except OSError as exc:
            raise ControlError(f"cannot talk to the node at {path}: {exc}") from None
    if not response.ok:
        raise ControlError(response.error or "the node refused the request")
    return response.result


class Session:
    """The client's end of a remote shell: `evaluate` code in the node, `complete` names.

    Ctrl-C (KeyboardInterrupt) while an evaluation runs asks the node to kill it, and
    waits for the answer; a second one gives up on the session."""

    def __init__(self, path: Path, cookie: str) -> None:
        if not path.exists():
            raise ControlError(f"no node is running there: no control socket at {path}")
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buffer = bytearray()
        try:
            self.sock.settimeout(COMMAND_TIMEOUT + 5)
            self.sock.connect(str(path))
            self._send(Request(cookie=cookie, command="remote"))
            hello = self._receive()
            self.sock.settimeout(None)  # an evaluation takes as long as it takes
        except BaseException:
            self.sock.close()
            raise
        self.node: str = hello["node"]
        self.pid: str = hello["pid"]
        self.imported: list[str] = hello["imported"]

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def evaluate(self, source: str, timeout: float | None = None) -> Evaluated:
        self._send(Eval(source, timeout))
        try:
            result = self._receive()
        except KeyboardInterrupt:
            self._send(Interrupt())
            try:
                result = self._receive()  # the evaluation's answer: interrupted, or done
            except KeyboardInterrupt:  # its answer would come as the next one's: give up
                self.close()
                raise ControlError(
                    "interrupted again before the node answered: the session is closed "
                    "(the node keeps running)"
                ) from None
        return msgspec.convert(result, Evaluated)

    def complete(self, text: str) -> list[str]:
        self._send(Complete(text))
        matches: list[str] = self._receive()
        return matches

    def _send(self, message: msgspec.Struct) -> None:
        try:
            self.sock.sendall(_frame(_encoder.encode(message)))
        except OSError as exc:
            raise ControlError(f"cannot talk to the node at {self.path}: {exc}") from None

    def _receive(self) -> Any:
        """The next answer's result (what was read before a Ctrl-C stays buffered)."""
        try:
            while len(self.buffer) < 4 or len(self.buffer) < 4 + int.from_bytes(
                self.buffer[:4], "big"
            ):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the node closed the connection")
                self.buffer += chunk
        except OSError as exc:
            raise ControlError(f"cannot talk to the node at {self.path}: {exc}") from None
        size = 4 + int.from_bytes(self.buffer[:4], "big")
        response = _response_decoder.decode(bytes(self.buffer[4:size]))
        del self.buffer[:size]
        if not response.ok:
            raise ControlError(response.error or "the node refused the request")
        return response.result


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise ConnectionError("the node closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
