"""The handshake and EPMD without erl: both sides of the handshake over a local socket, and
the embedded EPMD answering the client."""

from __future__ import annotations

import asyncio
import re
import struct
from typing import Any

import pytest

from otp.dist import _epmd, _handshake


async def pair(
    *, cookie_a: str = "c", cookie_b: str = "c", admit: str = "ok", flags: int | None = None
) -> tuple[Any, Any]:
    """Run an initiator and an acceptor against each other; what each ended with."""
    results: dict[str, Any] = {}
    accepted = asyncio.Event()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def decide(peer: str) -> str:
            return admit

        try:
            results["b"] = await _handshake.accept(
                reader, writer, name="b@host", creation=2, cookie=cookie_b, admit=decide
            )
        except _handshake.HandshakeError as e:
            results["b"] = e
        writer.close()
        accepted.set()

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if flags is None:
            results["a"] = await _handshake.initiate(
                reader, writer, name="a@host", creation=1, cookie=cookie_a, expected="b@host"
            )
        else:  # a peer with its own flags: send the name frame by hand
            name = b"a@host"
            frame = b"N" + struct.pack(">QIH", flags, 1, len(name)) + name
            writer.write(struct.pack(">H", len(frame)) + frame)
            head = await reader.readexactly(2)
            results["a"] = await reader.readexactly(struct.unpack(">H", head)[0])
    except _handshake.HandshakeError as e:
        results["a"] = e
    writer.close()
    await accepted.wait()
    server.close()
    return results["a"], results["b"]


def test_a_handshake_with_the_same_cookie_connects_both_sides() -> None:
    a, b = asyncio.run(pair())
    assert (a.name, a.creation) == ("b@host", 2)
    assert (b.name, b.creation) == ("a@host", 1)
    assert a.flags & _handshake.MANDATORY == _handshake.MANDATORY


def test_a_wrong_cookie_fails_both_sides() -> None:
    a, b = asyncio.run(pair(cookie_a="right", cookie_b="wrong"))
    assert isinstance(a, _handshake.HandshakeError)
    assert isinstance(b, _handshake.HandshakeError) and "cookie" in str(b)


@pytest.mark.parametrize("status", ["nok", "not_allowed"])
def test_a_refusal_is_told_to_the_initiator(status: str) -> None:
    a, b = asyncio.run(pair(admit=status))
    assert isinstance(a, _handshake.HandshakeError) and status in str(a)
    assert isinstance(b, _handshake.HandshakeError)


def test_a_peer_without_the_mandatory_flags_is_not_allowed() -> None:
    a, b = asyncio.run(pair(flags=_handshake.MANDATORY & ~_handshake.UTF8_ATOMS))
    assert a == b"snot_allowed"
    assert isinstance(b, _handshake.HandshakeError) and "0x10000" in str(b)


def test_the_digest_is_md5_of_cookie_and_decimal_challenge() -> None:
    import hashlib

    assert _handshake.digest("abc", 1234) == hashlib.md5(b"abc1234").digest()


def test_the_embedded_epmd_registers_looks_up_and_forgets() -> None:
    async def main() -> tuple[Any, ...]:
        epmd = _epmd.EmbeddedEpmd()
        port = await epmd.start(0)
        reg = await _epmd.register("alpha", 4242, epmd=port)
        found = await _epmd.port_please("alpha", "127.0.0.1", epmd=port)
        listed = await _epmd.names(epmd=port)
        with pytest.raises(_epmd.EpmdError, match="already running"):
            await _epmd.register("alpha", 4343, epmd=port)
        reg.close()
        for _ in range(100):  # EPMD forgets a name when its connection closes
            if "alpha" not in epmd.nodes:
                break
            await asyncio.sleep(0.01)
        gone = await _epmd.port_please("alpha", "127.0.0.1", epmd=port)
        epmd.close()
        return found, listed, reg.creation, gone

    found, listed, creation, gone = asyncio.run(main())
    assert (found.name, found.port, found.node_type) == ("alpha", 4242, _epmd.NODE_HIDDEN)
    assert listed == {"alpha": 4242}
    assert creation != 0
    assert gone is None


def test_epmd_that_cannot_be_reached_is_a_clear_error() -> None:
    async def main() -> None:
        await _epmd.port_please("x", "127.0.0.1", epmd=1)

    with pytest.raises(_epmd.EpmdError, match=re.escape("cannot reach EPMD at 127.0.0.1:1 ")):
        asyncio.run(main())
