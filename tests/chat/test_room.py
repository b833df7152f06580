"""A room on its own, with stand-ins for its members' connections: what each member is
sent, in which order, and what a restarted room takes back from the presence registry."""

from __future__ import annotations

from typing import Any

import otp
from apps.chat.room import PRESENCE, ROOMS, Room, room_name
from behaviours import GenServer
from otp.testing import assert_receive, start_supervised


class Socket:
    """Stands in for a member's `ChatProtocol`: keeps what the room pushes to it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def push(self, line: bytes) -> None:
        self.lines.append(line.decode().rstrip("\n"))

    def take(self) -> list[str]:
        taken, self.lines = self.lines, []
        return taken


async def member(test: otp.Pid, room: str, nick: str, sock: Socket) -> None:
    """A member's connection, reduced to what the room sees: it registers its presence,
    joins, then passes on what the test asks and reports what the room sends it."""
    otp.Registry.register(PRESENCE, room, (nick, sock))
    await GenServer.call(room_name(room), ("join", nick, sock))
    otp.send(test, ("joined", nick))
    while True:
        match await otp.receive():
            case ("say", text):
                GenServer.cast(room_name(room), ("say", otp.self(), text))
            case ("leave",):
                otp.Registry.unregister(PRESENCE, room)
                await GenServer.call(room_name(room), ("leave", otp.self()))
                otp.send(test, ("left", nick))
            case other:
                otp.send(test, (nick, other))


async def start_room(name: str) -> otp.Pid:
    otp.process_flag("trap_exit", True)  # the test kills members linked to it
    await start_supervised(_registry(ROOMS, "unique"))
    await start_supervised(_registry(PRESENCE, "duplicate"))
    return await start_supervised(Room.child_spec(name, name=room_name(name)))


def _registry(name: str, keys: str) -> Any:
    from behaviours import ChildSpec

    async def start() -> otp.Pid:
        return await otp.Registry.start_link(name, keys=keys)  # type: ignore[arg-type]

    return ChildSpec(id=name, start=start)


async def test_a_room_answers_joins_says_and_leaves_in_order(node: Any) -> None:
    room = await start_room("lobby")
    me = otp.self()
    ann, bob = Socket(), Socket()
    ann_pid = otp.spawn_link(member, me, "lobby", "ann", ann)
    await assert_receive(("joined", "ann"))
    bob_pid = otp.spawn_link(member, me, "lobby", "bob", bob)
    await assert_receive(("joined", "bob"))
    assert ann.take() == ["OK JOIN lobby", "JOINED lobby bob"]
    assert bob.take() == ["OK JOIN lobby"]
    otp.send(ann_pid, ("say", "hi bob"))
    await assert_receive(("ann", ("said", "lobby")))  # the room tells the sender its line is out
    assert ann.take() == bob.take() == ["MSG lobby ann hi bob"]
    assert await GenServer.call(room, "who") == ["ann", "bob"]
    otp.send(bob_pid, ("leave",))
    await assert_receive(("left", "bob"))
    assert await GenServer.call(room, "who") == ["ann"]
    assert bob.take() == ["OK LEAVE lobby"] and ann.take() == ["LEFT lobby bob"]
    otp.send(bob_pid, ("say", "am I here?"))
    await assert_receive(("bob", ("say_refused", "lobby", "am I here?")))
    assert ann.take() == []
    gone = otp.monitor(ann_pid)
    otp.exit(ann_pid, otp.KILL)  # a member's connection dies: it leaves
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == gone)
    assert await GenServer.call(room, "who") == []
    state = await otp.sys.get_state(room)
    assert [(nick, text) for _, nick, text in state["history"]] == [("ann", "hi bob")]
    otp.exit(bob_pid, otp.KILL)


async def test_a_restarted_room_takes_its_members_back_from_the_registry(node: Any) -> None:
    room = await start_room("lobby")
    me = otp.self()
    ann = Socket()
    ann_pid = otp.spawn_link(member, me, "lobby", "ann", ann)
    await assert_receive(("joined", "ann"))
    ann.take()
    otp.exit(room, otp.KILL)  # its supervisor (the test's) does not restart it: we do
    ref = otp.monitor(room)
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    again = await Room.start("lobby")  # unnamed: only what its init does matters here
    assert again is not None
    await assert_receive(("ann", ("room_up", "lobby", again)))
    assert ann.take() == ["REJOINED lobby"]
    assert await GenServer.call(again, "who") == ["ann"]
    await GenServer.stop(again)
    otp.exit(ann_pid, otp.KILL)
