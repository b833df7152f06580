"""One GenServer per client connection, under the connections' DynamicSupervisor.

The socket is an asyncio transport; `ChatProtocol` (plain asyncio code, no process) cuts
what arrives into lines and sends each to the connection's process as `("in", line)`.
The process parses the line (`protocol.parse`), acts, and writes the reply. Rooms write
their lines (`MSG`, `JOINED`, `LEFT`, and the `OK JOIN` / `OK LEAVE` that must come
before or after them) to the member's `ChatProtocol` themselves (`push`, see `room.py`),
so the lines of a room and the replies of the connection share one ordered queue.

Isolation:

- **Output is bounded.** Writes never wait: the lines written in one turn of the event
  loop go to the transport together, and the protocol counts the lines still queued in
  the transport. A client that lets more than `max_queued_lines` (application env,
  default 1000) pile up is dropped: a WARNING on `chat.connection` names it, its socket is
  aborted and its process ends with `("shutdown", "slow_client")`. A room never waits for
  a socket, so a slow client never slows its rooms.
- **Input is bounded.** Past `IN_HIGH` lines received but not yet handled, the protocol
  stops reading the socket (TCP pushes back on the client) until the process catches up.
- **The socket dies with the process.** A guard process monitors the connection and
  closes its socket when it ends, by a crash or a kill included: a crashed connection
  process closes its own connection and nothing else.
- **No message is lost when a room crashes.** Each `SAY` stays in the connection's
  `unacked` queue for that room until the room has written it to every member and says
  so (`("said", room)`). When the room dies, what it had not handled is still there; its
  supervisor restarts it, the new room reads its members from the presence registry,
  writes `REJOINED room` to each and sends each connection `("room_up", room, pid)`; the
  connection sends its unacked lines again, in order. A room writes a line to all its
  members in one step, so a line is handled by a room either completely or not at all:
  nothing is delivered twice.

A connection never waits in a call to a room: `JOIN`, `LEAVE` and `WHO` send their request
(`GenServer.send_request`), the answer comes to `handle_info`, and the lines the client
sends meanwhile are held until then. (An upgrade suspends rooms and connections together:
a connection waiting in a call to a suspended room could not take its own suspension.)

State (release 1.0.0): `{"proto", "nick", "rooms": {room: {"pid", "ref", "unacked"}},
"pending": the request waiting for its room, "held": lines}`. `WHO` is not served yet:
it gets `ERR unknown command`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Final

import otp
from behaviours import GenServer, NoReply, Stop, SupervisorError

from .protocol import MAX_LINE, Error, Join, Leave, Nick, Quit, Say, Who, err, parse
from .room import PRESENCE, ensure_room

__all__ = ["CONN_SUP", "NICKS", "ChatProtocol", "Connection"]

CONN_SUP: Final = "chat_conn_sup"  # DynamicSupervisor of the connections
NICKS: Final = "chat_nicks"  # Registry (unique): nick -> its connection

IN_HIGH: Final = 64  # lines received and not yet handled: stop reading the socket
IN_LOW: Final = 16  # ... and read again below this
MAX_RESENDS: Final = 3  # a line whose room crashed this many times is given up (a poison line)
ROOM_CHECK: Final = 0.5  # seconds after a room's crash to start it ourselves if nobody has
SLOW_CLIENT: Final = ("shutdown", "slow_client")

log = logging.getLogger("chat.connection")

State = dict[str, Any]


class ChatProtocol(asyncio.Protocol):
    """The socket side of a connection: lines in, lines out, both bounded."""

    def __init__(self, listener: otp.Pid, max_queued_lines: int) -> None:
        self.listener = listener
        self.max_queued_lines = max_queued_lines
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.owner: otp.Pid | None = None
        self.nick: str | None = None
        self.dropped = False
        self.early: list[Any] = []  # what arrived before the process took the socket
        self.buf = b""
        self.skipping = False  # the rest of an over-long line is being thrown away
        self.received = 0  # lines sent to the process
        self.handled = 0  # lines the process has handled
        self.paused = False
        self.out: list[bytes] = []  # lines written in this turn of the loop
        self.written = 0  # bytes ever handed to the transport
        self.batches: deque[tuple[int, int]] = deque()  # (where it ends, lines) of each unsent
        self.queued = 0  # lines in the transport's buffer, not yet sent

    def __deepcopy__(self, memo: dict[int, Any]) -> ChatProtocol:
        """The socket is not a value: an upgrade's snapshot of the state keeps it as it is."""
        return self

    # -- asyncio callbacks (plain code, on the node's loop) ---------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        if not otp.is_alive(self.listener):  # a listener that has just died accepted it
            transport.close()
            return
        otp.send(self.listener, ("accepted", self))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if self.skipping:  # the end of a line already answered as too long
                self.skipping = False
                continue
            self._forward(("in", line))
        if len(self.buf) > MAX_LINE + 1 and not self.skipping:
            self._forward(("in", self.buf))  # answered "line too long"; the rest is skipped
            self.buf = b""
            self.skipping = True
        elif self.skipping:
            self.buf = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._forward(("closed",))

    # -- used by the connection's process -------------------------------------------------

    def _forward(self, msg: Any) -> None:
        if self.owner is None:
            self.early.append(msg)
            return
        otp.send(self.owner, msg)
        if msg[0] == "in":
            self.received += 1
            if self.received - self.handled > IN_HIGH and not self.paused:
                self.paused = True
                assert self.transport is not None
                self.transport.pause_reading()

    def attach(self, owner: otp.Pid) -> None:
        """The process `owner` takes the socket: what arrived so far goes to it."""
        self.owner = owner
        early, self.early = self.early, []
        for msg in early:
            self._forward(msg)

    def done(self) -> None:
        """The process handled one line."""
        self.handled += 1
        if self.paused and self.received - self.handled < IN_LOW:
            self.paused = False
            assert self.transport is not None
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def push(self, line: bytes) -> None:
        """Write `line` to the client; drop the client (its connection's process ends with
        `("shutdown", "slow_client")`, and its socket closes) when more than
        `max_queued_lines` wait in its socket. Never waits, never raises: rooms call it
        for their members, the connection's process for its replies."""
        queued = self.write(line)
        if queued > self.max_queued_lines and not self.dropped:
            self.dropped = True
            log.warning(
                "dropping client %s (nick %s): %d lines queued, more than max_queued_lines=%d "
                "(it reads too slowly)",
                self.peer,
                self.nick,
                queued,
                self.max_queued_lines,
            )
            assert self.transport is not None
            self.transport.abort()
            if self.owner is not None:
                otp.exit(self.owner, SLOW_CLIENT)

    def write(self, line: bytes) -> int:
        """Queue `line` for the socket; how many lines the socket has not sent yet (as of
        the last write: the lines of this turn are not counted, they are not late yet).

        Lines written in one turn of the event loop go to the socket together, in one
        system call, at the end of that turn (`_flush`): under load a connection gets
        several lines per turn, and one write instead of one per line is what keeps up.
        """
        if self.transport is None or self.transport.is_closing():
            return 0  # the client is gone: ("closed",) is on its way
        out = self.out
        out.append(line)
        if len(out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return self.queued

    def close(self) -> None:
        """Close the socket once what was written to it is sent."""
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        out, self.out = self.out, []
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        transport.write(data)
        unsent = transport.get_write_buffer_size()
        self.written += len(data)
        batches = self.batches
        if not unsent:
            if batches:
                batches.clear()
                self.queued = 0
            return
        batches.append((self.written, len(out)))
        self.queued += len(out)
        sent = self.written - unsent
        while batches and batches[0][0] <= sent:
            self.queued -= batches.popleft()[1]


async def _guard(owner: otp.Pid, transport: asyncio.Transport) -> None:
    """Close the connection's socket when its process ends, however it ends (linked to it,
    and monitoring it for a normal end)."""
    ref = otp.monitor(owner)
    try:
        await otp.receive(lambda m: type(m) is otp.Down and m.ref == ref)
    finally:
        if not transport.is_closing():
            transport.abort()


class Connection(GenServer[State]):
    vsn = "1"

    def init(self, proto: ChatProtocol) -> State:
        me = otp.self()
        assert proto.transport is not None
        otp.spawn_link(_guard, me, proto.transport)
        proto.attach(me)
        return {"proto": proto, "nick": None, "rooms": {}, "pending": None, "held": deque()}

    def handle_info(self, msg: Any, state: State) -> Any:
        pending = state["pending"]
        if pending is not None:  # a JOIN, LEAVE or WHO waits for its room's answer
            try:
                answer = GenServer.check_response(msg, pending["req"])
            except otp.CallError:  # the room ended before it answered
                state["pending"] = None
                return self._resume(self._unanswered(pending, state))
            if answer != "no_reply":
                state["pending"] = None
                return self._resume(self._answered(pending, answer[1], state))
        match msg:
            case ("in", line):
                if pending is not None or state["held"]:  # after the command that waits
                    state["held"].append(line)
                    return NoReply(state)
                state["proto"].done()
                return self._command(line, state)
            case ("resume",):
                held = state["held"]
                if state["pending"] is not None or not held:
                    return NoReply(state)
                state["proto"].done()
                result = self._command(held.popleft(), state)
                if held:
                    otp.send(otp.self(), ("resume",))  # the next one, unless it waits
                return result
            case ("said", room):  # the room has written our line to every member
                entry = state["rooms"].get(room)
                if entry is not None and entry["unacked"]:
                    entry["unacked"].popleft()
                return NoReply(state)
            case ("room_up", room, pid):
                return self._room_up(room, pid, state)
            case otp.Down(ref=ref, pid=pid, reason=reason):
                for room, entry in state["rooms"].items():
                    if entry["ref"] == ref:
                        entry["pid"] = entry["ref"] = None  # its lines wait in unacked
                        otp.send_after(ROOM_CHECK, otp.self(), ("check_room", room))
                        log.info("room %s (%s) went down: %r", room, pid, reason)
                return NoReply(state)
            case ("check_room", room):
                entry = state["rooms"].get(room)
                if entry is not None and entry["pid"] is None:
                    return NoReply(state, continue_=("check_room", room))
                return NoReply(state)
            case ("say_refused", room, _text):
                entry = state["rooms"].get(room)
                if entry is not None and entry["unacked"]:
                    entry["unacked"].popleft()
                return self._out(err(f"not in room {room}"), state)
            case ("closed",):
                return Stop(otp.NORMAL, state)
        log.warning("connection %s: unexpected message %r", state["proto"].peer, msg)
        return NoReply(state)

    async def handle_continue(self, step: Any, state: State) -> Any:
        """The commands that wait for another process."""
        match step:
            case ("join", room, attempt):
                return await self._join(room, attempt, state)
            case ("check_room", room):
                try:  # its supervisor did not bring it back: start it; it sends us room_up
                    await ensure_room(room)
                except (otp.OTPError, SupervisorError) as exc:
                    log.warning("room %s is still down: %r", room, exc)
                    otp.send_after(ROOM_CHECK, otp.self(), ("check_room", room))
        return NoReply(state)

    def _out(self, line: bytes, state: State) -> Any:
        proto = state["proto"]
        proto.push(line)
        if proto.dropped:
            return Stop(SLOW_CLIENT, state)
        return NoReply(state)

    def _room_up(self, room: str, pid: otp.Pid, state: State) -> Any:
        """The room restarted (after a crash) and took us back: send what it lost."""
        entry = state["rooms"].get(room)
        if entry is None or entry["pid"] == pid:
            return NoReply(state)
        if entry["ref"] is not None:
            otp.demonitor(entry["ref"], flush=True)
        entry["pid"], entry["ref"] = pid, otp.monitor(pid)
        kept: deque[tuple[str, int]] = deque()
        for text, tries in entry["unacked"]:
            if tries + 1 >= MAX_RESENDS:  # it crashed the room each time: give it up
                state["proto"].write(err(f"message lost in room {room}: it crashed the room"))
                continue
            kept.append((text, tries + 1))
            GenServer.cast(pid, ("say", otp.self(), text))
        entry["unacked"] = kept
        return NoReply(state)

    def _command(self, line: bytes, state: State) -> Any:
        command = parse(line)
        rooms = state["rooms"]
        match command:
            case Say(room, text):
                entry = rooms.get(room)
                if entry is None:
                    return self._out(err(f"not in room {room}"), state)
                entry["unacked"].append((text, 0))
                if entry["pid"] is not None:
                    GenServer.cast(entry["pid"], ("say", otp.self(), text))
                return NoReply(state)
            case Error(reason):
                return self._out(err(reason), state)
            case Nick(name):
                return self._nick(name, state)
            case Join(room):
                if state["nick"] is None:
                    return self._out(err("no nick: send NICK name first"), state)
                if room in rooms:
                    return self._out(err(f"already in room {room}"), state)
                return NoReply(state, continue_=("join", room, 0))
            case Leave(room):
                entry = rooms.pop(room, None)
                if entry is None:
                    return self._out(err(f"not in room {room}"), state)
                otp.Registry.unregister(PRESENCE, room)
                if entry["ref"] is None:  # the room is down: nobody to tell
                    return self._out(f"OK LEAVE {room}\n".encode(), state)
                otp.demonitor(entry["ref"], flush=True)
                # the room answers OK LEAVE, after every line it wrote us before
                return self._ask(entry["pid"], ("leave", otp.self()), "leave", room, state)
            case Who():
                return self._out(err("unknown command"), state)
            case Quit():
                state["proto"].close()  # what is queued is still sent
                return Stop(otp.NORMAL, state)
        return NoReply(state)

    def _ask(self, pid: otp.Pid, request: Any, kind: str, room: str, state: State) -> Any:
        """Send `request` to a room without waiting: its answer comes to `handle_info`, and
        the lines the client sends meanwhile wait for it (`held`). A connection never
        waits in a call to a room: an upgrade that suspends the rooms and the
        connections together would wait for it."""
        req = GenServer.send_request(pid, request)
        state["pending"] = {"req": req, "kind": kind, "room": room, "pid": pid}
        return NoReply(state)

    def _answered(self, pending: dict[str, Any], answer: Any, state: State) -> Any:
        room = pending["room"]
        match pending["kind"]:
            case "join":  # the room has written OK JOIN
                pid = pending["pid"]
                state["rooms"][room] = {
                    "pid": pid,
                    "ref": otp.monitor(pid),
                    "unacked": deque(),
                }
        return NoReply(state)  # leave: the room has written OK LEAVE

    def _unanswered(self, pending: dict[str, Any], state: State) -> Any:
        room = pending["room"]
        match pending["kind"]:
            case "join":  # it crashed between its start and our join: again
                attempt = pending["attempt"] + 1
                if attempt < 3:
                    return NoReply(state, continue_=("join", room, attempt))
                otp.Registry.unregister(PRESENCE, room)
                return self._out(err(f"room {room} is unavailable"), state)
        return self._out(f"OK LEAVE {room}\n".encode(), state)  # it took us out with it

    def _resume(self, result: Any) -> Any:
        """After an answer: the lines held meanwhile go on (one `("resume",)` at a time)."""
        state = result.state
        if state["held"] and state["pending"] is None:
            otp.send(otp.self(), ("resume",))
        return result

    def _nick(self, name: str, state: State) -> Any:
        if state["nick"] == name:
            return self._out(b"OK NICK\n", state)
        if state["rooms"]:
            return self._out(err("leave your rooms before changing nick"), state)
        try:
            otp.Registry.register(NICKS, name)
        except otp.AlreadyRegisteredError:
            return self._out(err(f"nick {name} is taken"), state)
        if state["nick"] is not None:
            otp.Registry.unregister(NICKS, state["nick"])
        state["nick"] = state["proto"].nick = name
        return self._out(b"OK NICK\n", state)

    async def _join(self, room: str, attempt: int, state: State) -> Any:
        nick, proto = state["nick"], state["proto"]
        try:
            pid = await ensure_room(room)
        except SupervisorError:
            if attempt:
                otp.Registry.unregister(PRESENCE, room)
            return self._resume(self._out(err("too many rooms"), state))
        except otp.OTPError as exc:
            log.info("join %s: the room did not start: %r", room, exc)
            if attempt:
                otp.Registry.unregister(PRESENCE, room)
            return self._resume(self._out(err(f"room {room} is unavailable"), state))
        if not attempt:  # after its start: a room that finds members has restarted
            otp.Registry.register(PRESENCE, room, (nick, proto))
        result = self._ask(pid, ("join", nick, proto), "join", room, state)
        state["pending"]["attempt"] = attempt
        return result
