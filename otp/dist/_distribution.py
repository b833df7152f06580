"""A node's distribution: its listener, its EPMD registration, its connections, and the
mapping of Erlang's control messages onto the local runtime.

The kernel calls in only where a process or a pid is not local: a send to a remote pid or
`(name, node)`, a call, a link, a monitor or an exit signal across nodes, and the end of a
process that has remote links or monitors. Everything else runs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
import ssl
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import _node, _signals
from .._call import RequestId, failed_reason
from .._mailbox import deliver, receive
from .._process import Process, current
from .._spawn import spawn
from .._values import NOCONNECTION, NOPROC, Down, Pid, Ref
from ..errors import CallError, CallTimeout, ExitError
from . import _epmd, _handshake
from ._connection import NO_MESSAGE, Connection, frame
from .etf import Atom, encode

__all__ = ["Distribution", "read_cookie", "start_distribution"]

_logger = logging.getLogger("otp.dist")

# Control message operations (erts/doc/guides/erl_dist_protocol.md).
LINK: Final = 1
SEND: Final = 2
EXIT: Final = 3
REG_SEND: Final = 6
EXIT2: Final = 8
SEND_TT: Final = 12
EXIT_TT: Final = 13
REG_SEND_TT: Final = 16
EXIT2_TT: Final = 18
MONITOR_P: Final = 19
DEMONITOR_P: Final = 20
MONITOR_P_EXIT: Final = 21
SEND_SENDER: Final = 22
SEND_SENDER_TT: Final = 23
PAYLOAD_EXIT: Final = 24
PAYLOAD_EXIT_TT: Final = 25
PAYLOAD_EXIT2: Final = 26
PAYLOAD_EXIT2_TT: Final = 27
PAYLOAD_MONITOR_P_EXIT: Final = 28
SPAWN_REQUEST: Final = 29
SPAWN_REQUEST_TT: Final = 30
SPAWN_REPLY: Final = 31
UNLINK_ID: Final = 35
UNLINK_ID_ACK: Final = 36

EMPTY: Final = Atom("")
GEN_CALL: Final = Atom("$gen_call")
TICKTIME: Final = 60.0
ABANDONED: Final = 10_000  # remote calls given up on that are remembered (late replies)
NET_KERNEL: Final = "net_kernel"


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS distribution (Erlang's `inet_tls_dist`): this node's certificate and key, and
    the CA its peers' certificates must chain to. Both sides verify (mutual TLS), unless
    `verify` is False."""

    certfile: str
    keyfile: str
    cacertfile: str
    verify: bool = True

    def context(self, *, server: bool) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        ctx.load_verify_locations(self.cacertfile)
        ctx.check_hostname = False  # peers are known by their certificate, not a host name
        ctx.verify_mode = ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE
        return ctx

    @classmethod
    def from_env(cls) -> TLS | None:
        """`OTP_DIST_CERTFILE`, `OTP_DIST_KEYFILE`, `OTP_DIST_CACERTFILE` (all three, or
        none: plain TCP); `OTP_DIST_VERIFY=none` turns verification off."""
        files = [os.environ.get(f"OTP_DIST_{k}", "") for k in ("CERTFILE", "KEYFILE", "CACERTFILE")]
        if not any(files):
            return None
        if not all(files):
            raise ValueError(
                "TLS distribution needs OTP_DIST_CERTFILE, OTP_DIST_KEYFILE and "
                "OTP_DIST_CACERTFILE together"
            )
        certfile, keyfile, cacertfile = files
        verify = os.environ.get("OTP_DIST_VERIFY", "peer") != "none"
        return cls(certfile, keyfile, cacertfile, verify=verify)


async def start_distribution(node: _node.Node, cookie: str) -> Distribution:
    """Start `node`'s distribution as the environment says: `OTP_DIST_LISTEN` (host:port
    to listen on, default 127.0.0.1 and any port), `OTP_EPMD` (`auto`, the default: the
    system's EPMD if one answers, else an embedded one; `system`; `embedded`),
    `ERL_EPMD_PORT`, `OTP_TICKTIME` (seconds, default 60)."""
    listen = os.environ.get("OTP_DIST_LISTEN", "127.0.0.1:0")
    host, _, port = listen.rpartition(":")
    mode = os.environ.get("OTP_EPMD", "auto")
    if mode not in ("auto", "system", "embedded") or not host or not port.isdigit():
        raise ValueError(
            f"OTP_EPMD is auto, system or embedded (got {mode!r}); OTP_DIST_LISTEN is "
            f"host:port (got {listen!r})"
        )
    ticktime = float(os.environ.get("OTP_TICKTIME", TICKTIME))
    tls = TLS.from_env()
    dist = Distribution(
        node,
        cookie,
        host=host,
        port=int(port),
        epmd="system" if mode == "auto" else mode,
        ticktime=ticktime,
        tls=tls,
    )
    try:
        await dist.start()
    except _epmd.EpmdError as exc:
        await dist.stop()
        if mode != "auto" or not isinstance(exc, _epmd.EpmdUnreachable):
            raise  # (a taken name, say: an embedded EPMD would not help)
        dist = Distribution(
            node, cookie, host=host, port=int(port), epmd="embedded", ticktime=ticktime, tls=tls
        )
        await dist.start()
    return dist


def read_cookie(path: Path | None = None) -> str:
    """The cookie in `~/.erlang.cookie` (made, owner-only, when missing), as Erlang does.

    Args:
        path: The cookie file (default None: `~/.erlang.cookie`).

    Returns:
        The cookie, stripped.

    Raises:
        PermissionError: The file is readable or writable by others than its owner.
    """
    path = Path.home() / ".erlang.cookie" if path is None else path
    if not path.exists():
        cookie = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR)
        with os.fdopen(fd, "w") as f:
            f.write(cookie)
        return cookie
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} must be accessible by its owner only (chmod 400 {path})")
    return path.read_text().strip()


class Distribution:
    """The distribution of one node (its `node.dist`). Internal: `otp.run` with a
    name@host name starts it (`start_distribution`)."""

    def __init__(
        self,
        node: _node.Node,
        cookie: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        epmd: str = "system",
        epmd_port: int | None = None,
        ticktime: float = TICKTIME,
        tls: TLS | None = None,
    ) -> None:
        if "@" not in node.name:
            raise ValueError(f"a distributed node needs a name@host name, got {node.name!r}")
        if epmd not in ("system", "embedded"):
            raise ValueError(f"epmd is 'system' or 'embedded', got {epmd!r}")
        self.node = node
        self.name = node.name
        self.cookie = cookie
        self.host = host
        self.port = port
        self.epmd_mode = epmd
        self.epmd_port = _epmd.epmd_port() if epmd_port is None else epmd_port
        self.ticktime = ticktime
        self.tls_server = None if tls is None else tls.context(server=True)
        self.tls_client = None if tls is None else tls.context(server=False)
        self.conns: dict[str, Connection] = {}
        self._connecting: dict[str, asyncio.Future[Connection | None]] = {}
        self._queued: dict[str, list[bytes]] = {}  # frames sent while connecting
        self._server: asyncio.Server | None = None
        self._registration: _epmd.Registration | None = None
        self._embedded: _epmd.EmbeddedEpmd | None = None
        self.monitors: dict[Ref, tuple[Pid, str, Any]] = {}  # ours on remote processes
        self.named_watch: dict[Ref, Any] = {}  # remote monitors of our names: ref -> name
        self.node_monitors: dict[str, list[Pid]] = {}  # monitor_node
        self._unlink_ids = 0
        self._unlinking: dict[tuple[Pid, Pid], int] = {}  # (ours, theirs) -> unlink id
        self._tasks: set[asyncio.Task[None]] = set()
        self._up_waiters: dict[str, list[asyncio.Future[Connection]]] = {}
        self.rpc: dict[tuple[str, str], Callable[..., Any]] = {}  # what erpc may call
        # the refs of remote calls given up on (timeout): their late replies are dropped
        self._abandoned: dict[Ref, None] = {}

    # -- starting and stopping ---------------------------------------------------------------

    async def start(self) -> None:
        """Listen, register with EPMD (the embedded one when asked), take its creation."""
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.port, ssl=self.tls_server
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.epmd_mode == "embedded":
            self._embedded = _epmd.EmbeddedEpmd()
            await self._embedded.start(self.epmd_port, self.host)
        alive = self.name.split("@", 1)[0]
        local = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        self._registration = await _epmd.register(alive, self.port, host=local, epmd=self.epmd_port)
        self.node.creation = self._registration.creation
        self.node.init_pid = Pid(self.name, 0, 0, self.node.creation)
        _logger.info("node %s listens for peers on %s:%d", self.name, self.host, self.port)

    async def stop(self) -> None:
        """Close every connection (firing links and monitors), unregister, stop listening;
        wait (briefly) for the connections to close, TLS ones included."""
        conns = list(self.conns.values())
        for conn in conns:
            conn.close("node_stopped")
        tasks = list(self._tasks)  # connects and handshakes under way
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._registration is not None:
            self._registration.close()
        if self._server is not None:
            self._server.close()
        if self._embedded is not None:
            self._embedded.close()
        for conn in conns:
            await conn.wait_closed()

    # -- connections -------------------------------------------------------------------------

    async def connect(self, peer: str) -> Connection | None:
        """The connection to `peer`, set up if needed; None if it cannot be reached."""
        conn = self.conns.get(peer)
        if conn is not None:
            return conn
        pending = self._connecting.get(peer)
        if pending is None:
            pending = self._start_connect(peer)
        return await asyncio.shield(pending)

    def _start_connect(self, peer: str) -> asyncio.Future[Connection | None]:
        pending = self._connecting[peer] = asyncio.get_running_loop().create_future()
        self._background(self._connect(peer, pending))
        return pending

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the distribution holds until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, peer: str, pending: asyncio.Future[Connection | None]) -> None:
        conn = None
        try:
            conn = await self._dial(peer)
        except _handshake.LostSimultaneous:  # the peer's connection to us is coming
            conn = await self._came_up(peer)
        except (OSError, _handshake.HandshakeError, ValueError) as exc:
            _logger.warning("dist: cannot connect to %s: %s", peer, exc)
        finally:
            if self._connecting.get(peer) is pending:
                del self._connecting[peer]
            if conn is None and peer not in self.conns:
                self._queued.pop(peer, None)
                self._down(peer)  # its links and monitors fire: it cannot be reached
            if not pending.done():
                pending.set_result(conn)

    async def _came_up(self, peer: str) -> Connection | None:
        """The connection `peer` sets up to us, once up (None if it does not come)."""
        if peer in self.conns:
            return self.conns[peer]
        waiter = asyncio.get_running_loop().create_future()
        self._up_waiters.setdefault(peer, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, _handshake.TIMEOUT)
        except TimeoutError:
            return None
        finally:
            waiters = self._up_waiters.get(peer)
            if waiters and waiter in waiters:
                waiters.remove(waiter)

    async def _dial(self, peer: str) -> Connection | None:
        alive, _, host = peer.partition("@")
        if not alive or not host:
            raise ValueError(f"a node name is name@host, got {peer!r}")
        entry = await _epmd.port_please(alive, host, epmd=self.epmd_port)
        if entry is None:
            raise OSError(f"EPMD on {host} does not know {alive!r}")
        reader, writer = await asyncio.wait_for(  # (Erlang's setup timer)
            asyncio.open_connection(
                host,
                entry.port,
                ssl=self.tls_client,
                server_hostname=host if self.tls_client else None,
            ),
            _handshake.TIMEOUT,
        )
        _nodelay(writer)
        try:
            found = await _handshake.initiate(
                reader,
                writer,
                frame_size=4 if self.tls_client else 2,  # inet_tls_dist frames it {packet,4}
                name=self.name,
                creation=self.node.creation,
                cookie=self.cookie,
                expected=peer,
                connected=lambda: peer in self.conns,
            )
        except BaseException:
            writer.close()
            raise
        if peer in self.conns:  # the peer's connect to us won meanwhile
            writer.close()
            return self.conns[peer]
        return self._up(found, reader, writer)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # (a handshake under way ends with the node)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        _nodelay(writer)
        try:
            found = await _handshake.accept(
                reader,
                writer,
                frame_size=4 if self.tls_server else 2,
                name=self.name,
                creation=self.node.creation,
                cookie=self.cookie,
                admit=self._admit,
            )
        except _handshake.HandshakeError as exc:
            _logger.warning("dist: refused a connection: %s", exc)
            writer.close()
            return
        except BaseException:  # (the node stops meanwhile)
            writer.close()
            raise
        self._up(found, reader, writer)

    async def _admit(self, peer: str) -> str:
        """The status for `peer` connecting to us (simultaneous connects: the greater
        name keeps its own connection)."""
        if peer == self.name:
            return "not_allowed"
        if peer in self.conns:
            return "alive"
        if peer in self._connecting:
            return "nok" if self.name > peer else "ok_simultaneous"
        return "ok"

    def _up(
        self, peer: _handshake.Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Connection:
        old = self.conns.get(peer.name)
        if old is not None:
            old.close("replaced")
        conn = Connection(
            peer.name,
            peer.flags,
            reader,
            writer,
            ticktime=self.ticktime,
            incoming=self._incoming,
            lost=self._lost,
        )
        self.conns[peer.name] = conn
        conn.start()
        for data in self._queued.pop(peer.name, ()):  # first, in order
            conn.send_frame(data)
        for waiter in self._up_waiters.pop(peer.name, ()):
            if not waiter.done():
                waiter.set_result(conn)
        _logger.info("dist: connected to %s", peer.name)
        return conn

    def _lost(self, conn: Connection, why: str) -> None:
        """The connection ended: every link and monitor over it fires with `noconnection`."""
        peer = conn.peer
        if self.conns.get(peer) is not conn:
            return
        del self.conns[peer]
        _logger.info("dist: lost %s (%s)", peer, why)
        self._down(peer)

    def _down(self, peer: str) -> None:
        """`peer` is not (or no longer) connected: the links, monitors and node monitors
        that went (or were to go) over its connection fire with `noconnection`."""
        for key in [k for k in self._unlinking if k[1].node == peer]:
            del self._unlinking[key]
        for ref, (watcher, node, target) in list(self.monitors.items()):
            if node == peer:
                del self.monitors[ref]
                proc = watcher._proc
                if proc is not None:
                    deliver(proc, Down(ref, target, NOCONNECTION))
        for proc in list(self.node.procs.values()):
            links = proc.links
            if links:
                for other in [p for p in links if p.node == peer]:
                    links.discard(other)
                    _signals.exit_signal(proc, other, NOCONNECTION, linked=True)
            watchers = proc.watchers
            if watchers:
                for watch in [r for r, w in watchers.items() if w.node == peer]:
                    del watchers[watch]
                    self.named_watch.pop(watch, None)  # type: ignore[arg-type]  # (a Ref)
        for pid in self.node_monitors.pop(peer, ()):
            proc = pid._proc
            if proc is not None:
                deliver(proc, (Atom("nodedown"), peer))

    def _route(self, peer: str, control: Any, message: Any = NO_MESSAGE) -> bool:
        """Send over the connection to `peer`, connecting first if there is none (what
        is sent meanwhile waits for it); False when `peer` cannot be a node."""
        data = frame(control, message)  # (a term with no Erlang form raises here)
        conn = self.conns.get(peer)
        if conn is not None:
            conn.send_frame(data)
            return True
        if "@" not in peer or peer == self.name:
            return False
        self._queued.setdefault(peer, []).append(data)
        if peer not in self._connecting:
            self._start_connect(peer)
        return True

    # -- from the kernel ---------------------------------------------------------------------

    def send(self, dest: Any, msg: Any) -> None:
        """`otp.send` to a pid or `(name, node)` of another node (dropped if none)."""
        sender = _sender()
        msg = _protocol(msg)
        if type(dest) is Pid:
            if dest.node != self.name:
                self._route(dest.node, (SEND_SENDER, sender, dest), msg)
        elif type(dest) is tuple and len(dest) == 2 and dest[1] != self.name:
            self._route(dest[1], (REG_SEND, sender, EMPTY, Atom(dest[0])), msg)

    async def call(self, me: Process, server: Any, payload: Any, timeout: float | None) -> Any:
        """`GenServer.call` to a process of another node: `send_request`, then wait (a
        node that cannot be reached ends it at once with `("nodedown", node)`)."""
        req = self.send_request(me, server, "$gen_call", payload)
        ref = req.ref
        try:
            msg = await receive(req.match, timeout)
        except BaseException as exc:
            self.demonitor(me, ref)
            _flush(me, req.match)
            self._abandoned[ref] = None
            if len(self._abandoned) > ABANDONED:
                del self._abandoned[next(iter(self._abandoned))]
            if isinstance(exc, TimeoutError):
                raise CallTimeout("timeout", server, payload) from None
            raise
        if type(msg) is Down:
            raise CallError(failed_reason(msg.reason, server), server, payload)
        self.demonitor(me, ref)
        return msg[1]

    def send_request(self, me: Process, server: Any, kind: str, payload: Any) -> RequestId:
        """`GenServer.send_request` to a process of another node: monitored and sent as
        `call` does; its reply, `(ref, value)`, is read with `wait_response`."""
        peer, target = _remote(server)
        ref = _node.make_ref()
        req = RequestId(server, payload, ref)
        req.tag = ref
        req.match = _answers(ref)
        if peer is None or peer == self.name:
            deliver(me, Down(ref, server, NOPROC))
            return req
        self.monitors[ref] = (me.pid, peer, server)
        self._route(peer, (MONITOR_P, me.pid, target, ref))
        request = (Atom(kind), (me.pid, ref), payload)
        if type(target) is Pid:
            self._route(peer, (SEND_SENDER, me.pid, target), request)
        else:
            self._route(peer, (REG_SEND, me.pid, EMPTY, target), request)
        return req

    def monitor(self, me: Process, target: Any) -> Ref:
        """`otp.monitor` of a process of another node."""
        peer, remote = _remote(target)
        ref = _node.make_ref()
        if peer is None or not self._route(peer, (MONITOR_P, me.pid, remote, ref)):
            deliver(me, Down(ref, target, NOPROC))
            return ref
        self.monitors[ref] = (me.pid, peer, target)
        return ref

    def demonitor(self, me: Process, ref: Ref) -> bool:
        """Stop a monitor of a remote process, if `ref` is one; True when it was active."""
        found = self.monitors.pop(ref, None)
        if found is None:
            return False
        _, peer, target = found
        conn = self.conns.get(peer)
        if conn is not None:
            conn.send((DEMONITOR_P, me.pid, _remote(target)[1], ref))
        return True

    def link(self, me: Process, pid: Pid) -> None:
        if me.links is None:
            me.links = set()
        me.links.add(pid)
        if not self._route(pid.node, (LINK, me.pid, pid)):
            me.links.discard(pid)
            _signals.exit_signal(me, pid, NOCONNECTION, linked=True)

    def unlink(self, me: Process, pid: Pid) -> None:
        """`otp.unlink` of a linked process of another node (the link protocol of OTP 23:
        until the peer acknowledges, a LINK or an exit from it is ignored)."""
        conn = self.conns.get(pid.node)
        if conn is None:  # the link went with the connection: nothing to tell
            return
        self._unlink_ids += 1
        self._unlinking[(me.pid, pid)] = self._unlink_ids
        conn.send((UNLINK_ID, self._unlink_ids, me.pid, pid))

    def exit(self, sender: Pid, pid: Pid, reason: Any) -> None:
        """`otp.exit(pid, reason)` to a process of another node."""
        self._route(pid.node, (PAYLOAD_EXIT2, sender, pid), _reason(reason))

    def process_ended(self, proc: Process, reason: Any) -> None:
        """`proc` ended: its remote links get an exit, its remote watchers a down, and its
        monitors of remote processes end. (The kernel has handled the local ones.)"""
        pid = proc.pid
        links = proc.links
        watchers = proc.watchers
        wire = None
        if links:
            for other in links:
                if other.node != self.name:
                    wire = _encodable_reason(reason) if wire is None else wire
                    self._route(other.node, (PAYLOAD_EXIT, pid, other), wire)
        if watchers:
            for ref, watcher in watchers.items():
                if watcher.node != self.name:
                    wire = _encodable_reason(reason) if wire is None else wire
                    watched = self.named_watch.pop(ref, pid)  # type: ignore[arg-type]  # (a Ref)
                    self._route(watcher.node, (PAYLOAD_MONITOR_P_EXIT, watched, watcher, ref), wire)
        if self.monitors:
            for ref in [r for r, (w, _, _) in self.monitors.items() if w == pid]:
                self.demonitor(proc, ref)
        if self.node_monitors:
            for watching in self.node_monitors.values():
                if pid in watching:
                    watching.remove(pid)

    # -- from the peers ----------------------------------------------------------------------

    def _incoming(self, conn: Connection, control: Any, message: Any) -> None:
        if not self._valid(conn, control):  # Erlang drops a peer that sends these
            _logger.warning("dist: %s sent an invalid control message %r", conn.peer, control)
            conn.close("an invalid control message")
            return
        op = control[0]
        if op in (SEND_SENDER, SEND_SENDER_TT):
            self._deliver(control[2], message)
        elif op in (REG_SEND, REG_SEND_TT):
            self._deliver_named(conn, control[1], control[3], message)
        elif op in (SEND, SEND_TT):
            self._deliver(control[2], message)
        elif op in (MONITOR_P, DEMONITOR_P):
            self._watch(conn, op, control[1], control[2], control[3])
        elif op in (PAYLOAD_MONITOR_P_EXIT, MONITOR_P_EXIT):
            reason = message if op == PAYLOAD_MONITOR_P_EXIT else control[4]
            self._monitor_fired(conn, control[1], control[2], control[3], reason)
        elif op == LINK:
            self._linked(conn, control[1], control[2])
        elif op in (SPAWN_REQUEST, SPAWN_REQUEST_TT):
            self._spawn_request(conn, control, message)
        elif op == UNLINK_ID:
            self._unlinked(control[2], control[3])
            conn.send((UNLINK_ID_ACK, control[1], control[3], control[2]))
        elif op == UNLINK_ID_ACK:  # (36, Id, From: theirs, To: ours)
            key = (control[3], control[2])
            if self._unlinking.get(key) == control[1]:
                del self._unlinking[key]
        elif op in (EXIT, EXIT_TT, PAYLOAD_EXIT, PAYLOAD_EXIT_TT):
            reason = message if op in (PAYLOAD_EXIT, PAYLOAD_EXIT_TT) else control[-1]
            self._exited(control[1], control[2], reason, linked=True)
        elif op in (EXIT2, EXIT2_TT, PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT):
            reason = message if op in (PAYLOAD_EXIT2, PAYLOAD_EXIT2_TT) else control[-1]
            self._exited(control[1], control[2], reason, linked=False)
        else:
            _logger.debug("dist: ignored control message %r from %s", control, conn.peer)

    def _valid(self, conn: Connection, control: Any) -> bool:
        """True when `control` has the shape of its operation: the peer's own pids as
        senders, this node's as receivers, refs and atoms where they go."""
        if type(control) is not tuple or not control or type(control[0]) is not int:
            return False
        shape = _SHAPES.get(control[0])
        if shape is None:
            return True  # an operation this node does not take: ignored
        if len(control) != len(shape) + 1:
            return False
        peer, here = conn.peer, self.name
        for kind, value in zip(shape, control[1:], strict=True):
            t = type(value)
            if kind == "P":
                ok = t is Pid and value.node == peer
            elif kind == "O":
                ok = t is Pid and value.node == here
            elif kind == "R":
                ok = t is Ref
            elif kind == "A":
                ok = t is Atom
            elif kind == "T":
                ok = t is Atom or (t is Pid and value.node == here)
            elif kind == "F":
                ok = t is Atom or (t is Pid and value.node == peer)
            elif kind == "I":
                ok = t is int
            else:
                ok = True
            if not ok:
                return False
        return True

    def _deliver(self, to: Any, message: Any) -> None:
        proc = to._proc if type(to) is Pid else None
        if proc is None or message is NO_MESSAGE:
            return
        if self._abandoned and type(message) is tuple and len(message) == 2:
            tag = message[0]
            if type(tag) is Ref and tag in self._abandoned:  # a reply that came too late
                del self._abandoned[tag]
                return
        deliver(proc, message)

    def _deliver_named(self, conn: Connection, sender: Any, name: Any, message: Any) -> None:
        proc = self.node.names.get(str(name))
        if proc is not None:
            deliver(proc, message)
        elif str(name) == NET_KERNEL:
            self._net_kernel(conn, message)

    def _net_kernel(self, conn: Connection, message: Any) -> None:
        """`net_adm:ping` is a gen_server call `{is_auth, Node}` to net_kernel: answer yes."""
        if (
            type(message) is tuple
            and len(message) == 3
            and message[0] == GEN_CALL
            and type(message[1]) is tuple
            and len(message[1]) == 2
        ):
            caller, tag = message[1]
            if type(caller) is Pid:
                conn.send((SEND_SENDER, self.node.init_pid, caller), (tag, Atom("yes")))

    def _watch(self, conn: Connection, op: int, watcher: Any, target: Any, ref: Any) -> None:
        name = str(target) if type(target) is Atom else None
        proc = (
            self.node.names.get(name)
            if name is not None
            else (target._proc if type(target) is Pid else None)
        )
        if op == DEMONITOR_P:
            if proc is not None and proc.watchers:
                proc.watchers.pop(ref, None)
            self.named_watch.pop(ref, None)
            return
        if type(watcher) is not Pid or type(ref) is not Ref:
            return
        if proc is None or proc.finished:
            if name == NET_KERNEL:  # the node itself answers net_kernel's calls
                return
            conn.send((PAYLOAD_MONITOR_P_EXIT, target, watcher, ref), Atom(NOPROC))
            return
        if proc.watchers is None:
            proc.watchers = {}
        proc.watchers[ref] = watcher
        if name is not None:
            self.named_watch[ref] = target

    def _monitor_fired(
        self, conn: Connection, target: Any, watcher: Any, ref: Any, reason: Any
    ) -> None:
        found = self.monitors.pop(ref, None)
        if found is None:
            return
        pid, _, monitored = found
        proc = pid._proc
        if proc is not None:
            deliver(proc, Down(ref, monitored, _local_reason(reason)))

    def _linked(self, conn: Connection, sender: Any, to: Any) -> None:
        if (to, sender) in self._unlinking:  # crossed our unlink: ignored, as in OTP
            return
        proc = to._proc
        if proc is None or proc.finished:
            conn.send((PAYLOAD_EXIT, to, sender), Atom(NOPROC))
            return
        if proc.links is None:
            proc.links = set()
        proc.links.add(sender)

    def _unlinked(self, sender: Any, to: Any) -> None:
        proc = to._proc if type(to) is Pid else None
        if proc is not None and proc.links:
            proc.links.discard(sender)

    def _exited(self, sender: Any, to: Any, reason: Any, *, linked: bool) -> None:
        proc = to._proc if type(to) is Pid else None
        if proc is None or type(sender) is not Pid:
            return
        if linked:
            if not proc.links or sender not in proc.links or (to, sender) in self._unlinking:
                return  # not linked (any more, or being unlinked): Erlang ignores it
            proc.links.discard(sender)
        _signals.exit_signal(proc, sender, _local_reason(reason), linked=linked)

    # -- erpc into this node ---------------------------------------------------------------

    def _spawn_request(self, conn: Connection, control: Any, args: Any) -> None:
        """A spawn request: Erlang's erpc runs `erpc:execute_call/4` (or `execute_cast/3`)
        on the target node; here that calls a function `otp.dist.allow_rpc` exposed, in a
        process of its own, and answers as execute_call would. Any other spawn is refused."""
        req_id, sender, mfa, opts = control[1], control[2], control[4], control[5]
        opts = opts if type(opts) is list else []
        reply = not any(type(o) is tuple and o[:2] == ("reply", "no") for o in opts)
        monitor = "monitor" in opts
        if mfa == ("erpc", "execute_call", 4) and type(args) is list and len(args) == 4:
            tag, module, function, fargs = args
        elif mfa == ("erpc", "execute_cast", 3) and type(args) is list and len(args) == 3:
            tag, (module, function, fargs) = None, args
        else:
            if reply:
                conn.send((SPAWN_REPLY, req_id, sender, 0, Atom("notsup")))
            return
        fn = self.rpc.get((str(module), str(function)))
        proc = spawn(_run_rpc, fn, tag, module, function, fargs)._proc
        assert proc is not None
        if monitor:
            if proc.watchers is None:
                proc.watchers = {}
            proc.watchers[req_id] = sender
        if "link" in opts:
            if proc.links is None:
                proc.links = set()
            proc.links.add(sender)
        if reply:
            flags = (1 if "link" in opts else 0) | (2 if monitor else 0)
            conn.send((SPAWN_REPLY, req_id, sender, flags, proc.pid))

    # -- monitor_node ------------------------------------------------------------------------

    def monitor_node(self, me: Process, peer: str, flag: bool) -> None:
        if peer == self.name:  # (as erts: this node is never down to itself)
            return
        watchers = self.node_monitors.setdefault(peer, [])
        if not flag:
            with contextlib.suppress(ValueError):
                watchers.remove(me.pid)
            return
        watchers.append(me.pid)
        if peer not in self.conns:

            async def reach() -> None:
                if await self.connect(peer) is None and me.pid in self.node_monitors.get(peer, ()):
                    self.node_monitors[peer].remove(me.pid)
                    proc = me.pid._proc
                    if proc is not None:
                        deliver(proc, (Atom("nodedown"), peer))

            self._background(reach())


async def _run_rpc(
    fn: Callable[..., Any] | None, tag: Any, module: Any, function: Any, args: Any
) -> None:
    """The body of an erpc process: its exit reason is erpc's answer, `{Tag, return, R}`,
    `{Tag, error|exit|throw, Reason[, Stack]}`."""
    if fn is None or type(args) is not list:
        result: Any = (Atom("error"), Atom("undef"), [(module, function, args, [])])
    else:
        try:
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await value
            encode(value)  # (no Erlang term for it: the caller gets an error, not a hang)
            result = (Atom("return"), value)
        except ExitError as e:
            result = (Atom("exit"), _reason(e.reason))
        except Exception as e:  # the caller's erpc raises it as error:{Type, Message}
            result = (Atom("error"), _reason(e), [])
    if tag is None:  # execute_cast: nobody waits for the result
        return
    _signals.kill(current(), (tag, *result))  # (an exit, as erpc's; not a crash to report)


def _answers(ref: Ref) -> Callable[[Any], bool]:
    """The predicate of what ends a request to another node: its reply `(ref, value)`, or
    the `Down` of its monitor."""

    def answer(m: Any) -> bool:
        t = type(m)
        if t is tuple and len(m) == 2:
            return type(m[0]) is Ref and m[0] == ref
        return t is Down and m.ref == ref

    return answer


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _sender() -> Pid:
    try:
        return current().pid
    except Exception:
        return _node.get().init_pid


def _remote(dest: Any) -> tuple[str | None, Any]:
    """The node of a remote destination, and how the control messages name it."""
    if type(dest) is Pid:
        return dest.node, dest
    if type(dest) is tuple and len(dest) == 2 and type(dest[0]) is str:
        return dest[1], Atom(dest[0])
    return None, dest


_PROTOCOL_TAGS: Final = frozenset({"$gen_call", "$gen_cast"})


def _protocol(msg: Any) -> Any:
    """A message with the runtime's protocol tags as atoms (`("$gen_cast", m)` is what an
    Erlang gen_server takes as a cast)."""
    if type(msg) is tuple and msg and type(msg[0]) is str and msg[0] in _PROTOCOL_TAGS:
        return (Atom(msg[0]), *msg[1:])
    return msg


# The fields of each control message this node takes (erl_dist_protocol.md): P the peer's
# pid, O a pid of this node, R a ref, A an atom, T an atom or a pid of this node, F an atom or
# the peer's pid, I an int, * anything.
_SHAPES: Final = {
    SEND: "*O",
    SEND_TT: "*O*",
    REG_SEND: "P*A",
    REG_SEND_TT: "P*A*",
    SEND_SENDER: "PO",
    SEND_SENDER_TT: "PO*",
    LINK: "PO",
    EXIT: "PO*",
    EXIT_TT: "PO**",
    EXIT2: "PO*",
    EXIT2_TT: "PO**",
    PAYLOAD_EXIT: "PO",
    PAYLOAD_EXIT_TT: "PO*",
    PAYLOAD_EXIT2: "PO",
    PAYLOAD_EXIT2_TT: "PO*",
    MONITOR_P: "PTR",
    DEMONITOR_P: "PTR",
    MONITOR_P_EXIT: "FOR*",
    PAYLOAD_MONITOR_P_EXIT: "FOR",
    SPAWN_REQUEST: "RP***",
    SPAWN_REQUEST_TT: "RP****",
    UNLINK_ID: "IPO",
    UNLINK_ID_ACK: "IPO",
}


def _encodable_reason(reason: Any) -> Any:
    """`_reason(reason)`, or, when it has no Erlang term (a set, an object), a tuple
    `{unencodable, Repr}` that says what it was: a process's end must reach its links."""
    wire = _reason(reason)
    try:
        encode(wire)
    except Exception:
        return (Atom("unencodable"), repr(reason)[:1000])
    return wire


def _reason(reason: Any) -> Any:
    """An exit reason for the wire: a str is an atom (`normal`, `shutdown`, `noproc`...),
    as are the str tags of tuples (`{shutdown, X}`); an exception is `{Type, Message}`."""
    if type(reason) is str and len(reason) <= 255:  # (longer: no atom, a binary)
        return Atom(reason)
    if type(reason) is tuple and reason and type(reason[0]) is str and len(reason[0]) <= 255:
        return (Atom(reason[0]), *reason[1:])
    if isinstance(reason, BaseException):
        return (Atom(type(reason).__name__), str(reason))
    return reason


def _local_reason(reason: Any) -> Any:
    """An exit reason from the wire: atoms are the runtime's str reasons (and the tags of
    tuples, as `("shutdown", x)`); a binary stays bytes, so `<<"kill">>` is not `kill`."""
    if type(reason) is Atom:
        return str(reason)
    if type(reason) is str:  # (a binary, decoded as text)
        return reason.encode()
    if type(reason) is tuple and reason and type(reason[0]) is Atom:
        return (str(reason[0]), *reason[1:])
    return reason


def _flush(me: Process, match: Any) -> None:
    if me.mbox:
        kept = [m for m in me.mbox if not match(m)]
        me.mbox.clear()
        me.mbox.extend(kept)
