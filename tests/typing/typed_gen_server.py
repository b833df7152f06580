"""A typed GenServer: mypy checks these assert_type lines; a wrong type fails `make test`."""

from __future__ import annotations

from typing import assert_type

import otp
from behaviours import ChildSpec, GenServer, Init, NoReply, Reply, Stop
from behaviours.gen_server import RequestId


class Counter(GenServer[int]):
    vsn = "1"

    def init(self, start: int) -> int | Init[int]:
        return Init(start, timeout=1.0) if start < 0 else start

    def handle_call(self, request: str, from_: tuple[otp.Pid, object], state: int) -> Reply[int]:
        return Reply(state, state + 1)

    def handle_cast(self, msg: int, state: int) -> NoReply[int] | Stop[int]:
        return Stop("negative", state) if msg < 0 else NoReply(state + msg)


async def client() -> None:
    pid = await Counter.start_link(0, name="counter")
    assert_type(pid, otp.Pid | None)
    started = await Counter.start_monitor(1)
    assert_type(started, tuple[otp.Pid, otp.Ref] | None)
    assert_type(Counter.child_spec(0, restart="transient"), ChildSpec)
    assert_type(Counter.vsn, str)
    req = GenServer.send_request("counter", "get")
    assert_type(req, RequestId)
    GenServer.cast("counter", 1)
    await GenServer.stop("counter")

    reply = Reply("answer", 3)
    assert_type(reply, Reply[int])
    assert_type(reply.state, int)
    assert_type(NoReply("s").state, str)
    assert_type(Init([1, 2]).state, list[int])
    assert_type(Stop("normal", 1.5).state, float | None)
