"""The chat service in a node, over real TCP connections: the protocol end to end, rooms
that crash and come back without losing a line, and the isolation of connections."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest

import otp
from apps.chat.app import ChatSup, app
from apps.chat.connection import NICKS, Connection
from apps.chat.listener import listening_port
from apps.chat.protocol import MAX_LINE
from apps.chat.room import Room, room_name
from otp.testing import assert_receive, start_supervised

TIMEOUT = 5.0


class Client:
    """One test client: a line-based TCP connection to the chat service."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, nick: str | None = None, rcvbuf: int = 0) -> Client:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        client = cls(*await asyncio.open_connection(sock=sock, limit=1 << 20))
        if nick is not None:
            assert await client.ask(f"NICK {nick}") == "OK NICK"
        return client

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            self.writer.write(line if isinstance(line, bytes) else line.encode() + b"\n")

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert raw.endswith(b"\n"), f"the server closed the connection (got {raw!r})"
        return raw.decode().rstrip("\n")

    async def lines(self, n: int) -> list[str]:
        return [await self.line() for _ in range(n)]

    async def ask(self, line: str | bytes) -> str:
        self.send(line)
        return await self.line()

    async def closed(self) -> bool:
        """Whether the server closed the connection (after anything still to read)."""
        try:
            while await asyncio.wait_for(self.reader.read(1 << 16), TIMEOUT):
                pass
        except ConnectionResetError:
            pass
        self.writer.close()
        return True

    def close(self) -> None:
        self.writer.close()


def connection_of(nick: str) -> otp.Pid:
    [(pid, _)] = otp.Registry.lookup(NICKS, nick)
    return pid


class Chat:
    """The service under test, and its clients (closed when the test ends)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clients: list[Client] = []

    async def connect(self, nick: str | None = None, rcvbuf: int = 0) -> Client:
        client = await Client.connect(self.port, nick, rcvbuf)
        self.clients.append(client)
        return client


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    """The chat service's tree under the test's supervisor, on a free port."""
    otp.application.load(app)
    otp.application.set_env("chat", "port", 0)
    otp.application.set_env("chat", "max_queued_lines", 20)
    await start_supervised(ChatSup)
    made = Chat(await listening_port())
    yield made
    for client in made.clients:
        client.close()


async def test_join_say_leave_and_quit(node: Any, chat: Chat) -> None:
    ann = await chat.connect("ann")
    bob = await chat.connect("bob")
    assert await ann.ask("JOIN lobby") == "OK JOIN lobby"
    assert await bob.ask("JOIN lobby") == "OK JOIN lobby"
    assert await ann.line() == "JOINED lobby bob"
    ann.send("SAY lobby hello, bob")
    assert await ann.line() == "MSG lobby ann hello, bob"  # the sender included
    assert await bob.line() == "MSG lobby ann hello, bob"
    assert await bob.ask("WHO lobby") == "WHO lobby ann,bob"
    assert await bob.ask("LEAVE lobby") == "OK LEAVE lobby"
    assert await ann.line() == "LEFT lobby bob"
    assert await ann.ask("WHO lobby") == "WHO lobby ann"
    ann.send("QUIT")
    assert await ann.closed()
    assert await bob.ask("WHO lobby") == "WHO lobby "


async def test_a_bad_line_gets_err_and_the_connection_stays_up(node: Any, chat: Chat) -> None:
    client = await chat.connect()
    assert await client.ask("HELLO") == "ERR unknown command"
    assert await client.ask(b"NICK \xff\xfe\n") == "ERR invalid utf-8"
    assert await client.ask("NICK " + "x" * 40) == "ERR bad nick"
    assert await client.ask("") == "ERR empty line"
    # an over-long line, in pieces and with no end for a while, is one ERR; the rest of it
    # is thrown away up to its end
    client.send(b"SAY lobby " + b"x" * (2 * MAX_LINE))
    await client.writer.drain()
    assert await client.line() == "ERR line too long"
    client.send(b"y" * (3 * MAX_LINE) + b"\n", "NICK ann")
    assert await client.line() == "OK NICK"
    assert await client.ask("SAY lobby hi") == "ERR not in room lobby"
    assert await client.ask("JOIN lobby") == "OK JOIN lobby"
    assert await client.ask("JOIN lobby") == "ERR already in room lobby"
    assert await client.ask("NICK bob") == "ERR leave your rooms before changing nick"
    assert await client.ask("LEAVE hall") == "ERR not in room hall"
    assert await client.ask("WHO hall") == "ERR no room hall"
    assert await client.ask("SAY lobby still here") == "MSG lobby ann still here"


async def test_nicks_are_unique_and_needed_to_join(node: Any, chat: Chat) -> None:
    ann = await chat.connect("ann")
    other = await chat.connect()
    assert await other.ask("JOIN lobby") == "ERR no nick: send NICK name first"
    assert await other.ask("NICK ann") == "ERR nick ann is taken"
    ref = otp.monitor(connection_of("ann"))
    ann.send("QUIT")
    assert await ann.closed()
    await assert_receive(lambda m: isinstance(m, otp.Down) and m.ref == ref)
    assert await other.ask("NICK ann") == "OK NICK"  # free again once its owner has gone


async def test_a_killed_room_comes_back_with_its_members_and_loses_no_line(
    node: Any, chat: Chat
) -> None:
    ann = await chat.connect("ann")
    bob = await chat.connect("bob")
    assert await ann.ask("JOIN lobby") == "OK JOIN lobby"
    assert await bob.ask("JOIN lobby") == "OK JOIN lobby"
    assert await ann.line() == "JOINED lobby bob"
    room = otp.whereis(room_name("lobby"))
    assert room is not None
    await otp.sys.suspend(room)
    # Lines said now wait in the room's mailbox. Each connection handles its lines in
    # order: the OK NICK after a SAY means that SAY has been passed on to the room.
    ann.send("SAY lobby one from ann", "SAY lobby two from ann", "NICK ann")
    bob.send("SAY lobby one from bob", "NICK bob")
    assert await ann.line() == "OK NICK"
    assert await bob.line() == "OK NICK"
    info = otp.process_info(room)
    assert info is not None and info.message_queue_len == 3
    ref = otp.monitor(room)
    otp.exit(room, otp.KILL)  # what it had not handled is gone with it
    await assert_receive(otp.Down(ref, room, otp.KILLED))
    said = {
        "MSG lobby ann one from ann",
        "MSG lobby ann two from ann",
        "MSG lobby bob one from bob",
    }
    for client in (ann, bob):
        assert await client.line() == "REJOINED lobby"
        got = await client.lines(3)
        assert set(got) == said  # each line once, and each sender's in order:
        assert got.index("MSG lobby ann one from ann") < got.index("MSG lobby ann two from ann")
    again = otp.whereis(room_name("lobby"))
    assert again is not None and again != room
    state = await otp.sys.get_state(again)
    assert sorted(nick for nick, _ in state["members"].values()) == ["ann", "bob"]
    assert await ann.ask("WHO lobby") == "WHO lobby ann,bob"


async def test_a_join_that_waits_for_its_room_leaves_the_connection_free(
    node: Any, chat: Chat
) -> None:
    """A connection does not wait in a call to its room: while the room is suspended (as
    an upgrade suspends it), the connection still answers system messages, which is what
    lets an upgrade suspend it too; what its client sends meanwhile waits, in order."""
    ann = await chat.connect("ann")
    bob = await chat.connect("bob")
    assert await ann.ask("JOIN lobby") == "OK JOIN lobby"
    room = otp.whereis(room_name("lobby"))
    assert room is not None
    await otp.sys.suspend(room)
    bob.send("JOIN lobby", "WHO lobby", "NICK bob")
    conn = connection_of("bob")
    # each get_state is answered by the connection: it is not stuck (until its JOIN has
    # come through the socket, it is not waiting yet)
    while (await otp.sys.get_state(conn))["pending"] is None:
        pass
    await otp.sys.resume(room)
    assert await bob.lines(3) == ["OK JOIN lobby", "WHO lobby ann,bob", "OK NICK"]
    assert await ann.line() == "JOINED lobby bob"


async def test_a_killed_connection_closes_only_its_own_socket(node: Any, chat: Chat) -> None:
    ann = await chat.connect("ann")
    bob = await chat.connect("bob")
    assert await ann.ask("JOIN lobby") == "OK JOIN lobby"
    assert await bob.ask("JOIN lobby") == "OK JOIN lobby"
    assert await ann.line() == "JOINED lobby bob"
    otp.exit(connection_of("bob"), otp.KILL)
    assert await bob.closed()
    assert await ann.line() == "LEFT lobby bob"
    assert await ann.ask("SAY lobby alone now") == "MSG lobby ann alone now"


async def test_a_client_that_does_not_read_is_dropped_and_the_room_goes_on(
    node: Any, chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    fast = await chat.connect("fast")
    slow = await chat.connect("slow", rcvbuf=4096)  # and it never reads
    assert await fast.ask("JOIN lobby") == "OK JOIN lobby"
    assert await slow.ask("JOIN lobby") == "OK JOIN lobby"
    assert await fast.line() == "JOINED lobby slow"
    ref = otp.monitor(connection_of("slow"))
    text = "x" * (MAX_LINE - 20)
    caplog.set_level(logging.WARNING, logger="chat.connection")
    down = None
    others: list[str] = []  # what the fast client reads besides its own lines: LEFT
    for batch in range(400):  # up to 40 MB for the slow client: more than any buffer holds
        fast.send(*(f"SAY lobby {batch}:{i}:{text}" for i in range(100)))
        got: list[str] = []
        while len(got) < 100:  # the room goes on at the pace of the fast client
            line = await fast.line()
            (got if line.startswith("MSG") else others).append(line)
        assert got == [f"MSG lobby fast {batch}:{i}:{text}" for i in range(100)]
        down = await _down(ref)
        if down is not None:
            break
    assert down is not None, "the slow client was never dropped"
    assert down.reason == ("shutdown", "slow_client")
    [record] = [r for r in caplog.records if "dropping client" in r.getMessage()]
    assert "nick slow" in record.getMessage() and "max_queued_lines=20" in record.getMessage()
    if not others:
        others.append(await fast.line())
    assert others == ["LEFT lobby slow"]
    assert await fast.ask("WHO lobby") == "WHO lobby fast"


async def _down(ref: otp.Ref) -> otp.Down | None:
    """The Down of `ref` if it is in the mailbox now."""
    try:
        down: otp.Down = await otp.receive(
            lambda m: isinstance(m, otp.Down) and m.ref == ref, timeout=0
        )
    except TimeoutError:
        return None
    return down


def test_a_room_upgraded_from_1_gets_times_in_its_history_and_loses_them_going_back() -> None:
    old = {
        "name": "lobby",
        "members": {},
        "refs": {},
        "history": deque([("ann", "hi"), ("bob", "yo")], maxlen=3),
        "said": 2,
    }
    before = time.time()
    new = Room().code_change("1", old, None)
    assert [(nick, text) for _, nick, text in new["history"]] == [("ann", "hi"), ("bob", "yo")]
    assert all(before <= t <= time.time() for t, _, _ in new["history"])
    assert new["history"].maxlen == 3 and new["said"] == 2
    assert old["history"] == deque([("ann", "hi"), ("bob", "yo")])  # a new state, not a change
    back = Room().code_change(("down", "1"), new, None)
    assert back == old


def test_a_connection_upgraded_from_1_gets_joined_at_and_loses_it_going_back() -> None:
    lobby: dict[str, Any] = {"pid": None, "ref": None, "unacked": deque([("hi", 0)])}
    old: dict[str, Any] = {
        "proto": None,
        "nick": "ann",
        "rooms": {"lobby": lobby},
    }
    new = Connection().code_change("1", old, None)
    assert set(new["rooms"]["lobby"]) == {"pid", "ref", "unacked", "joined_at"}
    assert new["rooms"]["lobby"]["unacked"] == deque([("hi", 0)])
    assert "joined_at" not in lobby
    assert Connection().code_change(("down", "1"), new, None) == old
