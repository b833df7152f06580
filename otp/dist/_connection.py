"""One distribution connection to another node, after the handshake.

Frames are `[Len:4]`; a zero-length frame is a tick. With neither the atom cache nor
fragments negotiated, every frame is a pass-through frame `112, 131+Control, [131+Message]`.
Writes made during one loop iteration go out in one `write` (the main speed lever for small
messages). The connection ticks when it has written nothing for a quarter of the tick time,
and ends with `net_tick_timeout` when it has read nothing for a whole tick time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import Any, Final

from . import etf

__all__ = ["NO_MESSAGE", "Connection", "frame"]

PASS_THROUGH: Final = 112
TICK: Final = b"\x00\x00\x00\x00"
MAX_FRAME: Final = 256 * 1024 * 1024  # a bigger frame is a broken or hostile peer
NO_MESSAGE: Final = object()  # a control message with no message part
READ_SIZE: Final = 256 * 1024
MAX_UNSENT: Final = 16 * 1024 * 1024  # bytes a peer may leave unread before it is dropped

_head = struct.Struct(">I")
decode_from = etf.decode_from


def frame(control: Any, message: Any = NO_MESSAGE) -> bytes:
    """The pass-through frame of a control message and its message."""
    body = etf.encode(control)
    if message is not NO_MESSAGE:
        body += etf.encode(message)
    return _head.pack(len(body) + 1) + b"p" + body


class _Broken(Exception):
    """The peer sent what no Erlang node sends: the connection ends."""


_logger = logging.getLogger("otp.dist")

Incoming = Callable[["Connection", Any, Any], None]
Lost = Callable[["Connection", str], None]


class Connection:
    """A live connection to `peer`: `send` control messages, receive them through `incoming`."""

    def __init__(
        self,
        peer: str,
        flags: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        ticktime: float,
        incoming: Incoming,
        lost: Lost,
    ) -> None:
        self.peer = peer
        self.flags = flags
        self._reader = reader
        self._writer = writer
        self._ticktime = ticktime
        self._incoming = incoming
        self._lost = lost
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._read_at = self._wrote_at = self._loop.time()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._task = self._loop.create_task(self._read(), name=f"otp.dist {self.peer}")
        self._tick_handle = self._loop.call_later(self._ticktime / 4, self._tick)

    # -- writing ---------------------------------------------------------------------------

    def send(self, control: Any, message: Any = NO_MESSAGE) -> None:
        """Queue one control message (and its message); written at the end of this loop
        iteration, with everything else queued in it. A term with no Erlang form raises
        `ETFError` here, in the sender."""
        self.send_frame(frame(control, message))

    def send_frame(self, data: bytes) -> None:
        """Queue a frame made by `frame`."""
        if self.closed:
            return
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self.closed or not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._wrote_at = self._loop.time()
        try:
            self._writer.write(data)
        except (ConnectionError, RuntimeError) as exc:
            self.close(f"write failed: {exc}")
            return
        transport = self._writer.transport
        if transport.get_write_buffer_size() > MAX_UNSENT:
            # Erlang suspends the senders of a busy connection; sends here never wait, so
            # a peer that stops reading is disconnected before it can exhaust memory.
            self.close(f"the peer does not read: over {MAX_UNSENT >> 20} MiB unsent", abort=True)

    def _tick(self) -> None:
        if self.closed:
            return
        now = self._loop.time()
        if now - self._read_at > self._ticktime:
            self.close("net_tick_timeout")
            return
        if now - self._wrote_at >= self._ticktime / 4 and not self._out:
            self._wrote_at = now
            try:
                self._writer.write(TICK)
            except (ConnectionError, RuntimeError) as exc:
                self.close(f"write failed: {exc}")
                return
        self._tick_handle = self._loop.call_later(self._ticktime / 4, self._tick)

    # -- reading ---------------------------------------------------------------------------

    async def _read(self) -> None:
        """Read what the peer sends in chunks and handle every whole frame in each: one
        await per chunk, not per frame."""
        reader = self._reader
        why = "connection_closed"
        buf = b""
        try:
            while True:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    break
                self._read_at = self._loop.time()
                buf = buf + chunk if buf else chunk
                pos = 0
                end = len(buf)
                while end - pos >= 4:
                    (size,) = _head.unpack_from(buf, pos)
                    if size == 0:  # a tick
                        pos += 4
                        continue
                    if size > MAX_FRAME:
                        raise _Broken(f"a frame of {size} bytes")
                    if end - pos - 4 < size:
                        break
                    start = pos + 4
                    pos = start + size
                    if buf[start] != PASS_THROUGH:
                        raise _Broken(f"a frame of kind {buf[start]} (no atom cache negotiated)")
                    control, at = decode_from(buf, start + 1, binaries="str")
                    message = decode_from(buf, at, binaries="str")[0] if at < pos else NO_MESSAGE
                    try:
                        self._incoming(self, control, message)
                    except Exception:  # a bug in handling one message must not end the link
                        _logger.exception("dist: failed to handle %r from %s", control, self.peer)
                buf = buf[pos:] if pos < end else b""
                if len(buf) >= 4:  # a frame begun: a big one is read whole, not in chunks
                    (size,) = _head.unpack_from(buf, 0)
                    if READ_SIZE < size <= MAX_FRAME and len(buf) < size + 4:
                        buf += await reader.readexactly(size + 4 - len(buf))
                        self._read_at = self._loop.time()
        except (ConnectionError, OSError):
            pass
        except _Broken as broken:
            why = str(broken)
        except etf.ETFError as exc:
            why = f"undecodable data: {exc}"
        finally:
            self.close(why)

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """Wait (at most `timeout` seconds) until the transport has closed."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), timeout)

    def close(self, why: str, *, abort: bool = False) -> None:
        """End the connection (once); its links and monitors fire with `noconnection`.
        What is queued is written first, unless `abort` (a peer that does not read)."""
        if self.closed:
            return
        self.closed = True
        if abort:
            self._out.clear()
            self._writer.transport.abort()
        if self._out:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(b"".join(self._out))
            self._out.clear()
        for handle in (self._flush_handle, self._tick_handle):
            if handle is not None:
                handle.cancel()
        self._writer.close()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._lost(self, why)
