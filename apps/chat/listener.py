"""The TCP listener: a process that owns the listening socket and starts one `Connection`
per accepted client under the connections' DynamicSupervisor.

It is a plain process rather than a GenServer so that the socket is closed however the
process ends: a kill cancels it, and its `finally` closes the server, so the restart its
supervisor makes can listen on the same port at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import otp
from behaviours import DynamicSupervisor

from .connection import CONN_SUP, ChatProtocol, Connection

__all__ = ["LISTENER", "listening_port", "start_listener"]

LISTENER: Final = "chat_listener"
_STARTED: Final = ("listening", "failed")

log = logging.getLogger("chat.listener")


async def start_listener(host: str, port: int) -> otp.Pid:
    """Start the listener, linked to the caller (its supervisor); its pid once it listens.

    Raises the `OSError` of a port it cannot listen on.
    """
    pid = otp.spawn_link(_listen, otp.self(), host, port)
    answer = await otp.receive(
        lambda m: type(m) is tuple and len(m) == 3 and m[1] == pid and m[0] in _STARTED
    )
    if answer[0] == "failed":
        raise answer[2]
    return pid


async def listening_port() -> int:
    """The port the listener listens on (for a node started with port 0); from a process."""
    ref = otp.make_ref()
    otp.send(LISTENER, ("port", otp.self(), ref))
    _, _, port = await otp.receive(
        lambda m: type(m) is tuple and len(m) == 3 and m[0] == "port" and m[1] == ref, timeout=5.0
    )
    return int(port)


async def _listen(parent: otp.Pid, host: str, port: int) -> None:
    me = otp.self()
    queued = otp.application.get_env("chat", "max_queued_lines", 1000)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: ChatProtocol(me, queued), host, port, reuse_address=True, backlog=4096
        )
    except OSError as exc:
        otp.send(parent, ("failed", me, exc))
        return
    try:
        bound = server.sockets[0].getsockname()[1]
        otp.register(LISTENER, me)
        log.info("chat listening on %s:%d", host, bound)
        otp.send(parent, ("listening", me, bound))
        while True:
            msg: Any = await otp.receive()
            match msg:
                case ("accepted", ChatProtocol() as proto):
                    await _start_connection(proto)
                case ("port", sender, ref):
                    otp.send(sender, ("port", ref, bound))
                case _:
                    log.warning("chat listener: unexpected message %r", msg)
    finally:
        server.close()


async def _start_connection(proto: ChatProtocol) -> None:
    spec = Connection.child_spec(proto, restart="temporary")
    try:
        await DynamicSupervisor.start_child(CONN_SUP, spec)
    except Exception as exc:  # too many connections, or its init failed: only this client
        log.warning("cannot serve client %s: %r", proto.peer, exc)
        if proto.transport is not None:
            proto.transport.write(b"ERR server busy\n")
            proto.transport.close()
