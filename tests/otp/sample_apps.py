"""Three applications for the command-line tests: store <- cache <- chat (~50 processes)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import otp
from behaviours import DynamicSupervisor, GenServer, NoReply, Reply, Supervisor


class Store(GenServer[dict[str, Any]]):
    def init(self, arg: Any) -> dict[str, Any]:
        otp.process_flag("trap_exit", True)
        return {"size": otp.application.get_env("store", "size")}

    def handle_call(self, request: Any, from_: Any, state: dict[str, Any]) -> Reply[Any]:
        return Reply(state, state)


class Room(GenServer[str]):
    def init(self, name: str) -> str:
        return name

    def handle_cast(self, msg: Any, state: str) -> NoReply[str]:
        raise RuntimeError(f"room {state} crashed")


class StoreSup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), [Store.child_spec(None, name="store")]


class CacheSup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), [
            DynamicSupervisor.child_spec(name="cache_pool", id="cache_pool")
        ]


class ChatSup(Supervisor):
    def init(self, rooms: int) -> Any:
        return Supervisor.flags(intensity=5), [
            Room.child_spec(f"room{i}", id=f"room{i}") for i in range(rooms)
        ]


store = otp.Application(
    name="store", vsn="1.0.0", description="a store", start=StoreSup.start_link, env={"size": 10}
)
cache = otp.Application(name="cache", vsn="1.1.0", start=CacheSup.start_link, applications=(store,))
chat = otp.Application(
    name="chat",
    vsn="2.0.0",
    description="chat rooms",
    start=ChatSup.start_link,
    start_args=40,
    applications=(cache, "store"),
    env={"port": 5555, "motd": "hi"},
)


# -- for the command line's corner cases ----------------------------------------------------


class OddIds(Supervisor):
    """A child id msgpack cannot carry as a number (a uuid's int is 128 bits)."""

    def init(self, arg: Any) -> Any:
        return Supervisor.flags(), [
            Store.child_spec(None, id="plain"),
            Store.child_spec(None, id=2**64),
        ]


odd_ids = otp.Application(name="odd_ids", start=OddIds.start_link)


class Nest(Supervisor):
    def init(self, depth: int) -> Any:
        children = [] if depth == 0 else [Nest.child_spec(depth - 1, id=f"n{depth}")]
        return Supervisor.flags(), children


async def _deep(_: Any) -> otp.Pid | None:
    return await Nest.start_link(otp.application.get_env("deep", "depth", 150))


deep = otp.Application(name="deep", start=_deep, env={"depth": 150})


async def _stop_forever() -> None:
    logging.getLogger("tests.sample_apps").warning("hung_stop: stopping, for ever")
    await asyncio.Event().wait()


async def _store(_: Any) -> otp.Pid | None:
    return await StoreSup.start_link()


hung_stop = otp.Application(name="hung_stop", start=_store, stop=_stop_forever)
