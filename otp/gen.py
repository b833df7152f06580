"""otp.gen: what the behaviours are built on, for authors of behaviours (Erlang's `gen` and
`proc_lib`).

GenServer, Supervisor, DynamicSupervisor, GenStatem, Agent and Task use only this module and
the public `otp` API. A behaviour of your own (a pool, a GenStage) is built the same way:

- the calling process and its record: `current()` -> `Process` (`.pid`, `.behaviour`,
  `.regname`, `.mbox`);
- messages: `send(dest, msg)`; `deliver(process, msg)` to a record (the fast path);
  `await waiter(process, loop)` for the next message when none is queued (`otp.receive`
  without its coroutine frame: a loop that waits with it is resumed through one frame
  fewer);
- the call protocol: `call`, `reply`, `send_request`, `wait_response`, `receive_response`,
  `check_response`, `wait_any`, `RequestId`, `RequestIdCollection`, `From`,
  `check_timeout`;
- the node: `node()`, with `.init_pid` (the sender of the node's own signals) and
  `.report_watchers`;
- signals: `kill(process, reason)`, an exit signal no process can trap;
- bodies: `returns_awaitable(entry)` marks a plain function a process may run: it is called
  in the process's first step and what it returns is awaited (a body that hands back its
  loop's coroutine leaves no frame of its own under the loop: GenServer's does);
- calls run in the caller's turn: a loop that waits idle with
  `await waiter(process, loop, None, 0, direct)`, where `direct` implements `DirectCalls`,
  lets `call` run `direct.call_directly(request, from_)` at once, as the process (its task
  current, in its contextvars, its waiter held so what the callback sends it queues
  behind). That returns the reply, or a `Handoff` that the loop gets as its next message
  and finishes in its own turn (GenServer's loop does this for a plain `handle_call`);
- traces: `accept_traced_calls(entry)`, `server_span(process, context)` (below).

A call is `("$gen_call", (caller, tag), request)` and its reply `(tag, value)`, as in
Erlang; system messages (`otp.sys`) are `("system", from_, request)`, handled by
`otp.sys.handle` for a process that implements `otp.sys.SystemHandler`.

**The traced form.** While the node traces its calls (`otp.ops.enable_tracing`), a call is
`("$gen_call", (caller, tag), request, context)`: the same three elements and a fourth, the
caller's OpenTelemetry `Context` (holding the span of its call). It goes only to a local
process whose body was marked with `accept_traced_calls(entry)` (the function the
behaviour spawns; GenServer's, which every behaviour here runs on, is). Every other process,
and every call while tracing is off, gets the plain form, unchanged; a reply is always
`(tag, value)`. The loop of a marked body runs the callback inside
`with server_span(process, context):`, which starts the server's span as a child of the
caller's, makes it current (a call made in the callback is its child) and records an
exception that leaves the block:

    case ("$gen_call", from_, request, context):
        with gen.server_span(gen.current(), context):
            result = self.handle_call(request, from_, state)
"""

from __future__ import annotations

from ._call import From as From
from ._call import Handoff as Handoff
from ._call import RequestId as RequestId
from ._call import RequestIdCollection as RequestIdCollection
from ._call import accept_traced_calls as accept_traced_calls
from ._call import call as call
from ._call import check_response as check_response
from ._call import check_timeout as check_timeout
from ._call import receive_response as receive_response
from ._call import reply as reply
from ._call import send_request as send_request
from ._call import server_span as server_span
from ._call import wait_any as wait_any
from ._call import wait_response as wait_response
from ._mailbox import deliver as deliver
from ._mailbox import send as send
from ._mailbox import waiter as waiter
from ._node import get as node
from ._process import DirectCalls as DirectCalls
from ._process import Process as Process
from ._process import current as current
from ._signals import kill as kill
from ._spawn import returns_awaitable as returns_awaitable

__all__ = [
    "DirectCalls",
    "From",
    "Handoff",
    "Process",
    "RequestId",
    "RequestIdCollection",
    "accept_traced_calls",
    "call",
    "check_response",
    "check_timeout",
    "current",
    "deliver",
    "kill",
    "node",
    "receive_response",
    "reply",
    "returns_awaitable",
    "send",
    "send_request",
    "server_span",
    "wait_any",
    "wait_response",
    "waiter",
]
