"""Version 1 of a reloadable server (the code tests copy it under a fresh module name)."""

from typing import Any

from behaviours import GenServer, NoReply, Reply, Supervisor


class Counter(GenServer[Any]):
    vsn = "1"

    def init(self, start: Any) -> Any:
        return start

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(("v1", state), state)

    def handle_cast(self, msg: Any, state: Any) -> Any:
        return NoReply([*state, msg] if isinstance(state, list) else state)


class Sup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(strategy="one_for_one"), [
            Counter.child_spec([], id="a", shutdown=2.0),
            Counter.child_spec([], id="b", shutdown=2.0),
        ]
