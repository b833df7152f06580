"""Applications the distribution tests run in an `otp run` subprocess."""

from __future__ import annotations

from typing import Any

import otp
from behaviours import GenServer, Reply


class KV(GenServer[dict[Any, Any]]):
    """A key-value server, registered as "kv"."""

    def init(self, arg: Any) -> dict[Any, Any]:
        return {}

    def handle_call(self, request: Any, from_: Any, state: dict[Any, Any]) -> Reply[Any]:
        match request:
            case ("put", key, value):
                state[key] = value
                return Reply("ok", state)
            case ("get", key):
                return Reply(state.get(key), state)
            case ("whoami",):
                return Reply((otp.self(), from_[0]), state)
            case ("crash",):
                raise RuntimeError("asked to crash")
        return Reply(("unknown", request), state)


async def _start(_: Any) -> otp.Pid | None:
    return await KV.start(None, name="kv")


kv = otp.Application(name="kv", start=_start)
