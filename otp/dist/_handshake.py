"""The distribution handshake, version 6 (OTP 23+), as the initiator and as the acceptor.

Frames are `[Len:2]` (`[Len:4]` inside TLS). The initiator sends its name and flags; the
acceptor answers a status, then its own name, flags and a challenge; each side proves it
knows the cookie with `md5(cookie ++ decimal challenge)`. A peer without the flags every
OTP 25+ node requires is refused with `not_allowed`. Cookies are compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FLAGS",
    "MANDATORY",
    "HandshakeError",
    "LostSimultaneous",
    "Peer",
    "accept",
    "digest",
    "initiate",
]

# The flags (erts/emulator/beam/dist.h).
EXTENDED_REFERENCES: Final = 0x4
DIST_MONITOR: Final = 0x8
FUN_TAGS: Final = 0x10
DIST_MONITOR_NAME: Final = 0x20
NEW_FUN_TAGS: Final = 0x80
EXTENDED_PIDS_PORTS: Final = 0x100
EXPORT_PTR_TAG: Final = 0x200
BIT_BINARIES: Final = 0x400
NEW_FLOATS: Final = 0x800
UNICODE_IO: Final = 0x1000
SMALL_ATOM_TAGS: Final = 0x4000
UTF8_ATOMS: Final = 0x10000
MAP_TAG: Final = 0x20000
BIG_CREATION: Final = 0x40000
SEND_SENDER: Final = 0x80000
BIG_SEQTRACE_LABELS: Final = 0x100000
EXIT_PAYLOAD: Final = 0x400000
HANDSHAKE_23: Final = 0x1000000
UNLINK_ID: Final = 0x2000000
MANDATORY_25_DIGEST: Final = 0x4000000
SPAWN: Final = 1 << 32
V4_NC: Final = 1 << 34

# What an OTP 25 node requires of its peers (OTP 26 adds V4_NC and UNLINK_ID).
MANDATORY: Final = (
    EXTENDED_REFERENCES
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23
)
# What this node offers: the mandatory set of OTP 25 and 26, monitors, payload exits, and
# spawn requests (erpc). Not offered (yet): the atom cache, fragments, ALIAS; a hidden node.
FLAGS: Final = (
    MANDATORY
    | MANDATORY_25_DIGEST
    | V4_NC
    | UNLINK_ID
    | DIST_MONITOR
    | DIST_MONITOR_NAME
    | SEND_SENDER
    | EXIT_PAYLOAD
    | UNICODE_IO
    | SMALL_ATOM_TAGS
    | BIG_SEQTRACE_LABELS
    | SPAWN
)
TIMEOUT: Final = 7.0  # seconds for the whole handshake (Erlang's setup time)


class HandshakeError(ConnectionError):
    """The handshake failed: refused, a wrong cookie, missing flags, or a broken peer."""


class LostSimultaneous(HandshakeError):
    """The peer is connecting to us at the same time, and its connection is the one kept."""


@dataclass(frozen=True, slots=True)
class Peer:
    """The other side of a handshake that succeeded."""

    name: str
    flags: int
    creation: int


def digest(cookie: str, challenge: int) -> bytes:
    """`md5(cookie ++ integer_to_list(challenge))`, the proof of the cookie."""
    return hashlib.md5(cookie.encode() + str(challenge).encode(), usedforsecurity=False).digest()


class _Frames:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int):
        self.reader = reader
        self.writer = writer
        self.head = ">H" if size == 2 else ">I"
        self.size = size

    def send(self, data: bytes) -> None:
        self.writer.write(struct.pack(self.head, len(data)) + data)

    async def recv(self) -> bytes:
        (length,) = struct.unpack(self.head, await self.reader.readexactly(self.size))
        if not 0 < length <= 4096:
            raise HandshakeError(f"a handshake frame of {length} bytes")
        return await self.reader.readexactly(length)


async def initiate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    name: str,
    creation: int,
    cookie: str,
    expected: str,
    frame_size: int = 2,
    connected: Callable[[], bool] = lambda: False,
) -> Peer:
    """Connect as `name` to the node `expected` over an open stream; the peer, or
    `HandshakeError`. `connected()` says whether a connection to it is up meanwhile (then
    the peer's old one is kept when it asks)."""
    try:
        return await asyncio.wait_for(
            _initiate(
                _Frames(reader, writer, frame_size), name, creation, cookie, expected, connected
            ),
            TIMEOUT,
        )
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, struct.error) as exc:
        if isinstance(exc, HandshakeError):
            raise
        raise HandshakeError(f"the handshake with {expected} failed: {_why(exc)}") from None


async def _initiate(
    frames: _Frames,
    name: str,
    creation: int,
    cookie: str,
    expected: str,
    connected: Callable[[], bool],
) -> Peer:
    me = name.encode()
    frames.send(b"N" + struct.pack(">QIH", FLAGS, creation, len(me)) + me)
    status = await frames.recv()
    if status[:1] != b"s":
        raise HandshakeError(f"{expected} answered the name with {status[:1]!r}, not a status")
    said = status[1:]
    if said == b"alive":  # it has a connection from us: replace it, unless it is up here too
        if connected():
            frames.send(b"sfalse")
            raise LostSimultaneous(f"{expected} and we are connected already")
        frames.send(b"strue")
    elif said == b"nok":
        raise LostSimultaneous(f"{expected} is connecting to us too, and keeps its own (nok)")
    elif said not in (b"ok", b"ok_simultaneous"):
        raise HandshakeError(f"{expected} refused the connection ({said.decode(errors='replace')})")
    challenge_frame = await frames.recv()
    if challenge_frame[:1] != b"N" or len(challenge_frame) < 19:
        raise HandshakeError(f"{expected} sent no challenge (got {challenge_frame[:1]!r})")
    flags, challenge, peer_creation, nlen = struct.unpack_from(">QIIH", challenge_frame, 1)
    peer = challenge_frame[19 : 19 + nlen].decode(errors="replace")
    if peer != expected:
        raise HandshakeError(f"connected to {expected}, but the node there is {peer}")
    _check_flags(flags, peer)
    ours = secrets.randbits(32)
    frames.send(b"r" + struct.pack(">I", ours) + digest(cookie, challenge))
    ack = await frames.recv()
    if ack[:1] != b"a" or not hmac.compare_digest(ack[1:17], digest(cookie, ours)):
        raise HandshakeError(f"{peer} did not prove it has our cookie (a different cookie?)")
    return Peer(peer, flags & FLAGS, peer_creation)


Admit = Callable[[str], Awaitable[str]]
"""How the acceptor decides on a peer's name: "ok", "ok_simultaneous", "nok", "alive" or
"not_allowed" (see `Distribution.admit`)."""


async def accept(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    name: str,
    creation: int,
    cookie: str,
    admit: Admit,
    frame_size: int = 2,
) -> Peer:
    """Accept a connection as `name`; the peer, or `HandshakeError`."""
    try:
        return await asyncio.wait_for(
            _accept(_Frames(reader, writer, frame_size), name, creation, cookie, admit), TIMEOUT
        )
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, struct.error) as exc:
        if isinstance(exc, HandshakeError):
            raise
        raise HandshakeError(f"a handshake from a peer failed: {_why(exc)}") from None


async def _accept(frames: _Frames, name: str, creation: int, cookie: str, admit: Admit) -> Peer:
    hello = await frames.recv()
    complement = False  # an OTP 23/24 node's old name frame: the rest of it comes later
    if hello[:1] == b"N" and len(hello) >= 15:
        flags, peer_creation, nlen = struct.unpack_from(">QIH", hello, 1)
        peer = hello[15 : 15 + nlen].decode(errors="replace")
    elif hello[:1] == b"n" and len(hello) >= 7:  # 'n', Version:2, Flags:4, Name
        _version, flags = struct.unpack_from(">HI", hello, 1)
        peer, peer_creation = hello[7:].decode(errors="replace"), 0
        complement = True
        if not flags & HANDSHAKE_23:
            frames.send(b"snot_allowed")
            raise HandshakeError(f"{peer} speaks only the version 5 handshake (OTP 22 or older)")
    else:
        frames.send(b"snot_allowed")
        raise HandshakeError(f"a peer opened with {hello[:1]!r}, not a name frame")
    if "@" not in peer:
        frames.send(b"snot_allowed")
        raise HandshakeError(f"a peer gave the name {peer!r}, not name@host")
    try:
        _check_flags(flags, peer)
    except HandshakeError:
        frames.send(b"snot_allowed")
        raise
    status = await admit(peer)
    frames.send(b"s" + status.encode())
    if status == "alive":
        answer = await frames.recv()
        if answer != b"strue":
            raise HandshakeError(f"{peer} keeps its connection to us")
    elif status not in ("ok", "ok_simultaneous"):
        raise HandshakeError(f"refused {peer} ({status})")
    me = name.encode()
    ours = secrets.randbits(32)
    frames.send(b"N" + struct.pack(">QIIH", FLAGS, ours, creation, len(me)) + me)
    if complement:  # 'c', FlagsHigh:4, Creation:4: the part the old name frame lacked
        extra = await frames.recv()
        if extra[:1] != b"c" or len(extra) < 9:
            raise HandshakeError(f"{peer} sent no complement to its name (got {extra[:1]!r})")
        high, peer_creation = struct.unpack_from(">II", extra, 1)
        flags |= high << 32
    reply = await frames.recv()
    if reply[:1] != b"r" or len(reply) < 21:
        raise HandshakeError(f"{peer} answered the challenge with {reply[:1]!r}")
    (theirs,) = struct.unpack_from(">I", reply, 1)
    if not hmac.compare_digest(reply[5:21], digest(cookie, ours)):
        raise HandshakeError(f"{peer} does not have our cookie (its challenge reply is wrong)")
    frames.send(b"a" + digest(cookie, theirs))
    return Peer(peer, flags & FLAGS, peer_creation)


def _check_flags(flags: int, peer: str) -> None:
    missing = MANDATORY & ~flags
    if missing:
        raise HandshakeError(
            f"{peer} lacks distribution flags every OTP 25+ node needs (missing {missing:#x})"
        )


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the peer closed the connection (a wrong cookie, or it refused us)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT} s"
    return str(exc) or type(exc).__name__
