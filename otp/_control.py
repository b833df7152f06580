"""The control socket: how `otp status`, `otp tree` and `otp stop` reach a running node.

A Unix domain socket in the run directory (owner-only), one request per connection:
a frame is a 4-byte big-endian length and a msgpack body (msgspec; never pickle).
Every request carries the node's cookie. A malformed or unauthenticated request gets an
error reply and the connection is closed; the node is not disturbed by it. When the node
stops, every connection still open is answered that the node is stopping, then closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from . import _node
from . import sys as otp_sys
from ._signals import kill
from ._spawn import spawn
from ._values import KILLED, NORMAL, Pid
from .errors import OTPError

__all__ = ["ControlError", "ControlServer", "Request", "Response", "call", "serve"]

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


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)


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
            response = await self._answer(reader)
            try:
                payload = _encoder.encode(response)
            except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
                payload = _encoder.encode(Response(False, error=f"cannot encode the reply: {exc}"))
            writer.write(_frame(payload))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            del self.open[task], self.readers[task]
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Response:
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # a client that sends nothing is let go
                size = int.from_bytes(await reader.readexactly(4), "big")
                if size > MAX_FRAME:
                    return Response(
                        False, error=f"malformed request: a frame of {size} bytes is too large"
                    )
                request = _request_decoder.decode(await reader.readexactly(size))
        except TimeoutError:
            return Response(False, error=f"no request within {READ_TIMEOUT} s")
        except asyncio.IncompleteReadError:
            if self.stopping:
                return Response(False, error=STOPPING)
            return Response(False, error="malformed request: the frame is truncated")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Response(False, error=f"malformed request: {exc}")
        except RecursionError:
            return Response(False, error="malformed request: nested too deeply")
        if not hmac.compare_digest(request.cookie.encode(), self.cookie):
            return Response(False, error="unauthenticated: wrong cookie")
        command = _COMMANDS.get(request.command)
        if command is None:
            known = ", ".join(sorted(_COMMANDS))
            return Response(False, error=f"unknown command {request.command!r}; known: {known}")
        done: asyncio.Future[Any] = self.node.loop.create_future()
        worker = spawn(_run_command, command, request.args, done)  # commands talk to processes
        try:
            return Response(True, result=await asyncio.wait_for(done, COMMAND_TIMEOUT))
        except Exception as exc:
            if self.stopping or self.node.stopping:
                return Response(False, error=STOPPING)
            return Response(False, error=f"{request.command} failed: {exc!r}")
        finally:
            if worker._proc is not None:  # timed out (or the client left): do not leave it
                kill(worker._proc, KILLED)


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


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise ConnectionError("the node closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
