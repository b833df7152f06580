"""The chat application: its supervision tree and its `otp.Application`.

    chat_sup (rest_for_one)
    ├─ chat_rooms       Registry (unique): room -> its server (via names)
    ├─ chat_presence    Registry (duplicate): room -> each member's connection
    ├─ chat_nicks       Registry (unique): nick -> its connection
    ├─ chat_room_sup    DynamicSupervisor: one Room per room, started on demand
    ├─ chat_conn_sup    DynamicSupervisor: one Connection per client
    └─ listener         the TCP listener (a plain process that owns the socket)

`rest_for_one`: a registry that dies takes down what was started after it (what used it),
and they start again in order; a room or a connection that dies is restarted (rooms) or
not (connections) by its own DynamicSupervisor, and nothing else notices.

    otp run apps.chat.app:app --ops-port 9100      # from the repository, in development
"""

from __future__ import annotations

from typing import Any

import otp
from behaviours import ChildSpec, DynamicSupervisor, Supervisor

from .connection import CONN_SUP, NICKS
from .listener import start_listener
from .room import PRESENCE, ROOM_SUP, ROOMS

__all__ = ["ChatSup", "app"]


async def _start_registry(name: str, keys: str) -> otp.Pid:
    return await otp.Registry.start_link(name, keys=keys)  # type: ignore[arg-type]


async def _start_dynamic(name: str, intensity: int, max_children: int) -> otp.Pid:
    return await DynamicSupervisor.start_link(
        name=name, intensity=intensity, period=5.0, max_children=max_children
    )


class ChatSup(Supervisor):
    def init(self, arg: Any) -> Any:
        env = otp.application.get_env
        return Supervisor.flags(strategy="rest_for_one", intensity=10, period=10.0), [
            ChildSpec(id=ROOMS, start=(_start_registry, ROOMS, "unique")),
            ChildSpec(id=PRESENCE, start=(_start_registry, PRESENCE, "duplicate")),
            ChildSpec(id=NICKS, start=(_start_registry, NICKS, "unique")),
            ChildSpec(
                id=ROOM_SUP,
                start=(_start_dynamic, ROOM_SUP, 100, env("chat", "max_rooms", 10_000)),
                type="supervisor",
                shutdown=10.0,
            ),
            ChildSpec(
                id=CONN_SUP,
                start=(_start_dynamic, CONN_SUP, 1000, env("chat", "max_connections", 100_000)),
                type="supervisor",
                shutdown=10.0,
            ),
            ChildSpec(
                id="listener",
                start=(start_listener, env("chat", "host", "127.0.0.1"), env("chat", "port", 5555)),
            ),
        ]


app = otp.Application(
    name="chat",
    vsn="2.0.0",
    description="a chat service: rooms, presence, history; one process per room and per client",
    start=ChatSup.start_link,
    env={
        "host": "127.0.0.1",
        "port": 5555,
        "max_queued_lines": 1000,
        "history": 100,
        "max_rooms": 10_000,
        "max_connections": 100_000,
    },
)
