"""Version 2: the state becomes a dict; calls answer "v2"; a new strategy and shutdown."""

from typing import Any

import otp
from behaviours import GenServer, NoReply, Reply, Supervisor


class Counter(GenServer[Any]):
    vsn = "2"

    def init(self, start: Any) -> Any:
        return {"seen": start, "from": None}

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(("v2", state), state)

    def handle_cast(self, msg: Any, state: Any) -> Any:
        return NoReply({**state, "seen": [*state["seen"], msg]})

    async def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        if isinstance(extra, tuple) and extra[0] == "wait":  # hold on until the test says go
            otp.send(extra[1], ("waiting", otp.self()))
            await otp.receive(lambda m: m == "go")
        if isinstance(old_vsn, tuple):  # ("down", vsn): back to version 1's shape
            return [*state["seen"], old_vsn]
        return {"seen": state, "from": old_vsn, "extra": extra}


class Sup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(strategy="one_for_all"), [
            Counter.child_spec([], id="a", shutdown="brutal_kill"),
            Counter.child_spec([], id="b", shutdown="brutal_kill"),
        ]
