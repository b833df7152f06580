"""The chat server on bare asyncio (uvloop): the baseline the framework's chat is compared with.

    python bench/chat_asyncio.py [--port 5556]

The same protocol as `apps/chat` (`apps/chat/protocol.py`: NICK, JOIN, LEAVE, SAY, WHO,
QUIT, ERR), the same bounded history per room, the same slow-client policy (a client with
more than 1000 lines queued is dropped), on one event loop with no processes: a room is a
dict, and a SAY writes the line to every member's transport directly, in the reading
client's callback. What it does not have is what the framework gives the chat app: no
isolation (an exception in a room's code would break the callback of whichever client
triggered it), no restart, no hot upgrade. `make demo` runs the load generator against it
in the same run, and reports the chat app's throughput as a ratio to this one's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.chat.protocol import MAX_LINE, Error, Join, Leave, Nick, Quit, Say, Who, err, parse

MAX_QUEUED_LINES = 1000
HISTORY = 100


class Room:
    __slots__ = ("history", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Client, str] = {}
        self.history: deque[tuple[float, str, str]] = deque(maxlen=HISTORY)


class Server:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.nicks: dict[str, Client] = {}


class Client(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: Any = None
        self.buf = b""
        self.skipping = False
        self.nick: str | None = None
        self.rooms: set[str] = set()
        self.out: list[bytes] = []
        self.written = 0
        self.batches: deque[tuple[int, int]] = deque()
        self.queued = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone()

    def gone(self) -> None:
        for name in list(self.rooms):
            self.leave(name)
        if self.nick is not None and self.server.nicks.get(self.nick) is self:
            del self.server.nicks[self.nick]

    def write(self, line: bytes) -> None:
        """As `apps/chat`: the lines of one turn of the loop go out in one system call."""
        if self.transport.is_closing():
            return
        out = self.out
        out.append(line)
        if len(out) == 1:
            asyncio.get_running_loop().call_soon(self.flush)
        if self.queued > MAX_QUEUED_LINES:
            print(f"dropping client {self.nick}: too many lines queued", file=sys.stderr)
            self.transport.abort()

    def flush(self) -> None:
        out, self.out = self.out, []
        transport = self.transport
        if not out or transport.is_closing():
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        transport.write(data)
        unsent = transport.get_write_buffer_size()
        self.written += len(data)
        if not unsent:
            if self.batches:
                self.batches.clear()
                self.queued = 0
            return
        self.batches.append((self.written, len(out)))
        self.queued += len(out)
        sent = self.written - unsent
        while self.batches and self.batches[0][0] <= sent:
            self.queued -= self.batches.popleft()[1]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if self.skipping:
                self.skipping = False
                continue
            self.command(line)
        if len(self.buf) > MAX_LINE + 1 and not self.skipping:
            self.command(self.buf)
            self.buf = b""
            self.skipping = True
        elif self.skipping:
            self.buf = b""

    def leave(self, name: str) -> None:
        self.rooms.discard(name)
        room = self.server.rooms.get(name)
        if room is None:
            return
        nick = room.members.pop(self, None)
        if nick is not None:
            line = f"LEFT {name} {nick}\n".encode()
            for member in room.members:
                member.write(line)

    def command(self, line: bytes) -> None:
        match parse(line):
            case Say(name, text):
                if name not in self.rooms:
                    self.write(err(f"not in room {name}"))
                    return
                room = self.server.rooms[name]
                out = f"MSG {name} {self.nick} {text}\n".encode()
                for member in room.members:
                    member.write(out)
                room.history.append((time.time(), self.nick or "", text))
            case Error(reason):
                self.write(err(reason))
            case Nick(name):
                if self.rooms:
                    self.write(err("leave your rooms before changing nick"))
                elif self.server.nicks.get(name, self) is not self:
                    self.write(err(f"nick {name} is taken"))
                else:
                    if self.nick is not None:
                        self.server.nicks.pop(self.nick, None)
                    self.nick = name
                    self.server.nicks[name] = self
                    self.write(b"OK NICK\n")
            case Join(name):
                if self.nick is None:
                    self.write(err("no nick: send NICK name first"))
                elif name in self.rooms:
                    self.write(err(f"already in room {name}"))
                else:
                    room = self.server.rooms.get(name) or self.server.rooms.setdefault(
                        name, Room(name)
                    )
                    line = f"JOINED {name} {self.nick}\n".encode()
                    for member in room.members:
                        member.write(line)
                    room.members[self] = self.nick
                    self.rooms.add(name)
                    self.write(f"OK JOIN {name}\n".encode())
            case Leave(name):
                if name not in self.rooms:
                    self.write(err(f"not in room {name}"))
                else:
                    self.leave(name)
                    self.write(f"OK LEAVE {name}\n".encode())
            case Who(name):
                found = self.server.rooms.get(name)
                if found is None:
                    self.write(err(f"no room {name}"))
                else:
                    nicks = ",".join(sorted(found.members.values()))
                    self.write(f"WHO {name} {nicks}\n".encode())
            case Quit():
                self.transport.close()


async def serve(host: str, port: int) -> None:
    server = Server()
    listener = await asyncio.get_running_loop().create_server(
        lambda: Client(server), host, port, reuse_address=True, backlog=4096
    )
    print(f"bare asyncio chat listening on {host}:{port}", flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5556)
    args = parser.parse_args()
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
