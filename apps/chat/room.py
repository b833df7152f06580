"""A chat room: one GenServer per room, named `("via", "chat_rooms", room)`, started on
demand under the rooms' DynamicSupervisor (`ensure_room`).

| from a connection                              | callback                                |
|------------------------------------------------|-----------------------------------------|
| `GenServer.call(room, ("join", nick, proto))`  | `handle_call`: OK JOIN; others: JOINED  |
| `GenServer.cast(room, ("say", pid, text))`     | `handle_cast`: MSG to every member      |
| `GenServer.call(room, ("leave", pid))`         | `handle_call`: OK LEAVE; others: LEFT   |
| `GenServer.call(room, "who")`                  | `handle_call`: the nicks (2.0.0)        |
| a member's connection ends                     | `handle_info(Down)`: others: LEFT       |

The room writes its lines to its members' sockets itself (`ChatProtocol.push`, which never
waits: it queues the line for the socket, and drops a client that lets too many pile up),
rather than sending each line to each member's connection process to write: a line said
in a room of 20 is then one message to the room and 20 buffer appends, not 21 messages
and 20 process wake-ups. (Phoenix channels call this "fastlane".) The connection's process
is told of its own lines only (`("said", room)`), to forget them (see `connection.py`).

Presence is kept twice: in the room's state (who gets each line) and in the registry
`chat_presence` (duplicate keys: room -> each member's connection, with its nick and its
socket's protocol), which each connection writes for itself. The registry outlives a
room: a room that crashed and was restarted by its supervisor reads its members back from
it in `init`, writes `REJOINED room` to each and tells each connection
(`("room_up", room, pid)`), so the members are back at once, before any new line.

State (release 2.0.0): `{"name", "members": {pid: (nick, proto)}, "refs": {pid: monitor},
"history": deque of (time, nick, text), "said": int}`. Release 1.0.0 kept the history as
(nick, text); `code_change` adds the time (the upgrade's: the latest time those lines can
have been said) and, on a downgrade, takes it out again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Final

import otp
from behaviours import DynamicSupervisor, GenServer, NoReply, Reply

__all__ = [
    "PRESENCE",
    "ROOMS",
    "ROOM_SUP",
    "Room",
    "ensure_room",
    "room_name",
]

ROOMS: Final = "chat_rooms"  # Registry (unique): room -> its server, for via names
PRESENCE: Final = "chat_presence"  # Registry (duplicate): room -> each member's connection
ROOM_SUP: Final = "chat_room_sup"  # DynamicSupervisor of the rooms

log = logging.getLogger("chat.room")

State = dict[str, Any]


def room_name(room: str) -> tuple[str, str, str]:
    """The via name of a room's server."""
    return ("via", ROOMS, room)


async def ensure_room(room: str) -> otp.Pid:
    """The room's server, started under the rooms' supervisor if it is not running.

    Raises `behaviours.SupervisorError("max_children")` when there are too many rooms.
    """
    pid = otp.whereis(room_name(room))
    if pid is not None:
        return pid
    spec = Room.child_spec(room, name=room_name(room), id=room, restart="transient")
    try:
        started = await DynamicSupervisor.start_child(ROOM_SUP, spec)
    except otp.StartError as failed:  # someone started it first
        if isinstance(failed.reason, otp.AlreadyStartedError):
            winner: otp.Pid = failed.reason.pid
            return winner
        raise
    assert started is not None
    return started


class Room(GenServer[State]):
    vsn = "2"

    def init(self, name: str) -> State:
        me = otp.self()
        history = otp.application.get_env("chat", "history", 100)
        members: dict[otp.Pid, tuple[str, Any]] = {}
        refs: dict[otp.Pid, otp.Ref] = {}
        for pid, (nick, proto) in otp.Registry.lookup(PRESENCE, name):
            if pid not in members and otp.is_alive(pid):
                members[pid] = (nick, proto)
                refs[pid] = otp.monitor(pid)
        if members:  # a restart: the members are back; tell them (and their clients)
            log.warning("room %s restarted with %d members", name, len(members))
            line = f"REJOINED {name}\n".encode()
            for pid, (_, proto) in members.items():
                proto.push(line)
                otp.send(pid, ("room_up", name, me))
        return {
            "name": name,
            "members": members,
            "refs": refs,
            "history": deque(maxlen=history),
            "said": 0,
        }

    def handle_call(self, request: Any, from_: Any, state: State) -> Reply[State]:
        match request:
            case ("join", nick, proto):
                pid = from_[0]
                members = state["members"]
                name = state["name"]
                proto.push(f"OK JOIN {name}\n".encode())  # before any line of the room
                if pid not in members:
                    _broadcast(members, f"JOINED {name} {nick}\n".encode())
                    members[pid] = (nick, proto)
                    state["refs"][pid] = otp.monitor(pid)
                return Reply("ok", state)
            case ("leave", leaver):
                entry = state["members"].get(leaver)
                if entry is not None:  # after every line it was sent before
                    entry[1].push(f"OK LEAVE {state['name']}\n".encode())
                self._remove(leaver, state)
                return Reply("ok", state)
            case "who":
                return Reply(sorted(nick for nick, _ in state["members"].values()), state)
            case "ping":
                return Reply("pong", state)
        return Reply(("error", "unknown request"), state)

    def handle_cast(self, msg: Any, state: State) -> NoReply[State]:
        match msg:
            case ("say", sender, text):
                members = state["members"]
                member = members.get(sender)
                name = state["name"]
                if member is None:
                    otp.send(sender, ("say_refused", name, text))
                    return NoReply(state)
                nick = member[0]
                _broadcast(members, f"MSG {name} {nick} {text}\n".encode())
                otp.send(sender, ("said", name))
                state["history"].append((time.time(), nick, text))
                state["said"] += 1
        return NoReply(state)

    def handle_info(self, msg: Any, state: State) -> NoReply[State]:
        if isinstance(msg, otp.Down) and isinstance(msg.pid, otp.Pid):  # a member ended
            self._remove(msg.pid, state)
        return NoReply(state)

    def _remove(self, member: otp.Pid, state: State) -> None:
        entry = state["members"].pop(member, None)
        ref = state["refs"].pop(member, None)
        if ref is not None:
            otp.demonitor(ref, flush=True)
        if entry is not None:
            _broadcast(state["members"], f"LEFT {state['name']} {entry[0]}\n".encode())

    def code_change(self, old_vsn: Any, state: State, extra: Any) -> State:
        old = state["history"]
        history: deque[tuple[Any, ...]]
        if isinstance(old_vsn, tuple):  # ("down", "1"): back to (nick, text)
            history = deque(((nick, text) for _, nick, text in old), maxlen=old.maxlen)
        else:  # from "1": each line gains a time
            now = time.time()
            history = deque(((now, nick, text) for nick, text in old), maxlen=old.maxlen)
        return {**state, "history": history}


def _broadcast(members: dict[otp.Pid, tuple[str, Any]], line: bytes) -> None:
    """Write `line` to every member's client, in one step (no await): a line reaches all
    the members or, if the room is killed before, none."""
    for _, proto in members.values():
        proto.push(line)
