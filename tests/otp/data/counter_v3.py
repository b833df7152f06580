"""Version 3: code_change changes a state in place, then raises for the state [3]."""

from typing import Any

from behaviours import GenServer, Reply, Supervisor


class Counter(GenServer[Any]):
    vsn = "3"

    def init(self, start: Any) -> Any:
        return start

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(("v3", state), state)

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        state.append("changed in place")
        if state[:1] == [3]:
            raise RuntimeError("cannot convert [3]")
        return state


class Sup(Supervisor):
    def init(self, arg: Any) -> Any:
        return Supervisor.flags(strategy="one_for_one"), [
            Counter.child_spec([], id="a", shutdown=-1),  # an invalid shutdown
        ]
