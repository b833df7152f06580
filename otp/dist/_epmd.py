"""EPMD, the port mapper of Erlang nodes: a client, and an embedded server for hosts with none.

A node registers its name and distribution port with ALIVE2_REQ and keeps that connection
open for as long as it is registered (EPMD forgets a name whose socket closes). A peer's port
is looked up with PORT_PLEASE2_REQ. `EmbeddedEpmd` answers the same three requests (ALIVE2,
PORT_PLEASE2, NAMES) for the nodes of one host when no `epmd` runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_PORT",
    "EmbeddedEpmd",
    "EpmdError",
    "EpmdUnreachable",
    "NodeEntry",
    "Registration",
    "epmd_port",
    "names",
    "port_please",
    "register",
]

DEFAULT_PORT: Final = 4369
ALIVE2_REQ: Final = 120
ALIVE2_X_RESP: Final = 118
ALIVE2_RESP: Final = 121  # (an old EPMD: a 16-bit creation)
PORT_PLEASE2_REQ: Final = 122
PORT2_RESP: Final = 119
NAMES_REQ: Final = 110
NODE_NORMAL: Final = 77
NODE_HIDDEN: Final = 72
PROTO_TCP4: Final = 0
VERSION: Final = 6
TIMEOUT: Final = 5.0  # seconds for one EPMD exchange

_logger = logging.getLogger("otp.dist")


class EpmdError(OSError):
    """EPMD refused a request, answered nonsense, or could not be reached."""


class EpmdUnreachable(EpmdError):
    """No EPMD answers at the address (none runs there)."""


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """What EPMD knows of a node: where its distribution listens, and how it speaks."""

    name: str
    port: int
    node_type: int
    protocol: int
    highest: int
    lowest: int
    extra: bytes = b""


def epmd_port() -> int:
    """The EPMD port: `ERL_EPMD_PORT` when set (as Erlang reads it), else 4369."""
    value = os.environ.get("ERL_EPMD_PORT", "")
    if not value:
        return DEFAULT_PORT
    try:
        port = int(value)
    except ValueError:
        raise EpmdError(f"ERL_EPMD_PORT must be a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise EpmdError(f"ERL_EPMD_PORT must be a port number, got {value!r}")
    return port


class Registration:
    """A node's registration with EPMD: it lasts while this connection is open."""

    def __init__(self, writer: asyncio.StreamWriter, creation: int) -> None:
        self._writer = writer
        self.creation = creation

    def close(self) -> None:
        """Unregister (EPMD forgets a name whose connection closes)."""
        self._writer.close()


async def register(
    alive: str, port: int, *, host: str = "127.0.0.1", epmd: int | None = None, hidden: bool = True
) -> Registration:
    """Register `alive` (the name before the @) as listening on `port`."""
    name = alive.encode()
    body = (
        struct.pack(
            ">BHBBHHH",
            ALIVE2_REQ,
            port,
            NODE_HIDDEN if hidden else NODE_NORMAL,
            PROTO_TCP4,
            VERSION,
            VERSION,
            len(name),
        )
        + name
        + struct.pack(">H", 0)
    )
    reader, writer = await _open(host, epmd)
    try:
        writer.write(struct.pack(">H", len(body)) + body)
        head = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
        if head[0] == ALIVE2_X_RESP:
            rest = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
            creation = struct.unpack(">I", rest)[0]
        elif head[0] == ALIVE2_RESP:
            rest = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
            creation = struct.unpack(">H", rest)[0]
        else:
            raise EpmdError(f"EPMD answered ALIVE2 with the unknown code {head[0]}")
        if head[1] != 0:
            raise EpmdError(
                f"EPMD refused to register {alive!r} (result {head[1]}): "
                "is a node of that name already running?"
            )
    except BaseException as exc:
        writer.close()
        if isinstance(exc, asyncio.IncompleteReadError | TimeoutError):
            raise EpmdError(
                f"EPMD closed or did not answer the registration of {alive!r}"
            ) from None
        raise
    return Registration(writer, creation or 1)


async def port_please(alive: str, host: str, *, epmd: int | None = None) -> NodeEntry | None:
    """Where the node `alive`@`host` listens, or None if EPMD there does not know it."""
    name = alive.encode()
    reader, writer = await _open(host, epmd)
    try:
        body = bytes((PORT_PLEASE2_REQ,)) + name
        writer.write(struct.pack(">H", len(body)) + body)
        head = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
        if head[0] != PORT2_RESP:
            raise EpmdError(f"EPMD answered PORT_PLEASE2 with the unknown code {head[0]}")
        if head[1] != 0:
            return None
        fixed = await asyncio.wait_for(reader.readexactly(10), TIMEOUT)
        port, node_type, protocol, highest, lowest, nlen = struct.unpack(">HBBHHH", fixed)
        found = await asyncio.wait_for(reader.readexactly(nlen), TIMEOUT)
        elen = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), TIMEOUT))[0]
        extra = await asyncio.wait_for(reader.readexactly(elen), TIMEOUT)
    except (asyncio.IncompleteReadError, TimeoutError):
        raise EpmdError(f"EPMD on {host} closed or did not answer about {alive!r}") from None
    finally:
        writer.close()
    return NodeEntry(
        found.decode(errors="replace"), port, node_type, protocol, highest, lowest, extra
    )


async def names(host: str = "127.0.0.1", *, epmd: int | None = None) -> dict[str, int]:
    """The names EPMD on `host` has registered, with their ports (`epmd -names`)."""
    reader, writer = await _open(host, epmd)
    try:
        writer.write(struct.pack(">HB", 1, NAMES_REQ))
        await asyncio.wait_for(reader.readexactly(4), TIMEOUT)  # EPMD's own port
        text = await asyncio.wait_for(reader.read(), TIMEOUT)
    except (asyncio.IncompleteReadError, TimeoutError):
        raise EpmdError(f"EPMD on {host} closed or did not answer NAMES") from None
    finally:
        writer.close()
    found = {}
    for line in text.decode(errors="replace").splitlines():
        parts = line.split()  # "name NAME at port PORT"
        if len(parts) == 5 and parts[0] == "name" and parts[3] == "port":
            found[parts[1]] = int(parts[4])
    return found


async def _open(host: str, epmd: int | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = epmd_port() if epmd is None else epmd
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise EpmdUnreachable(
            f"cannot reach EPMD at {host}:{port} ({exc}): start one (`epmd -daemon`), "
            "or run the node with the embedded EPMD"
        ) from None


def _local(writer: asyncio.StreamWriter) -> bool:
    """True for a connection from this host: a loopback address, or the address it came to."""
    peer = writer.get_extra_info("peername")
    here = writer.get_extra_info("sockname")
    if not peer or not here:
        return False
    try:
        return ipaddress.ip_address(peer[0]).is_loopback or peer[0] == here[0]
    except ValueError:
        return False


class EmbeddedEpmd:
    """An EPMD in this process, for a host with no `epmd`: ALIVE2, PORT_PLEASE2 and NAMES.

    A name stays registered while its registering connection is open, as in EPMD.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[NodeEntry, int]] = {}  # name -> (entry, creation)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, port: int | None = None, host: str = "127.0.0.1") -> int:
        """Listen on `host`:`port` (EPMD's port by default); the port it listens on."""
        self._server = await asyncio.start_server(
            self._serve, host, epmd_port() if port is None else port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def close(self) -> None:
        """Stop serving, and drop every registration (their connections close)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._clients):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        registered: str | None = None
        self._clients.add(writer)
        try:
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            if not 0 < size <= 1024:
                return
            request = await reader.readexactly(size)
            code = request[0]
            if code == ALIVE2_REQ:
                if not _local(writer):  # (as epmd: only this host's nodes register)
                    return
                registered = self._alive(request, writer)
                if registered is not None:
                    await reader.read()  # registered until the node closes the connection
            elif code == PORT_PLEASE2_REQ:
                self._port_please(request[1:].decode(errors="replace"), writer)
            elif code == NAMES_REQ:
                lines = "".join(
                    f"name {name} at port {entry.port}\n" for name, (entry, _) in self.nodes.items()
                )
                writer.write(struct.pack(">I", self.port) + lines.encode())
        except (asyncio.IncompleteReadError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            self._clients.discard(writer)
            if registered is not None:
                self.nodes.pop(registered, None)
            writer.close()

    def _alive(self, request: bytes, writer: asyncio.StreamWriter) -> str | None:
        try:
            port, node_type, protocol, highest, lowest, nlen = struct.unpack_from(
                ">HBBHHH", request, 1
            )
            name = request[11 : 11 + nlen].decode()
        except (struct.error, UnicodeDecodeError):
            writer.write(struct.pack(">BBI", ALIVE2_X_RESP, 1, 0))
            return None
        if not name or name in self.nodes:
            writer.write(struct.pack(">BBI", ALIVE2_X_RESP, 1, 0))
            return None
        creation = secrets.randbelow(2**32 - 1) + 1
        self.nodes[name] = (NodeEntry(name, port, node_type, protocol, highest, lowest), creation)
        writer.write(struct.pack(">BBI", ALIVE2_X_RESP, 0, creation))
        return name

    def _port_please(self, name: str, writer: asyncio.StreamWriter) -> None:
        found = self.nodes.get(name)
        if found is None:
            writer.write(bytes((PORT2_RESP, 1)))
            return
        entry = found[0]
        raw = entry.name.encode()
        writer.write(
            struct.pack(
                ">BBHBBHHH",
                PORT2_RESP,
                0,
                entry.port,
                entry.node_type,
                entry.protocol,
                entry.highest,
                entry.lowest,
                len(raw),
            )
            + raw
            + struct.pack(">H", len(entry.extra))
            + entry.extra
        )
