"""The kernel's hot paths as workloads, each in two versions run the same way:

- `otp_*` on this kernel, inside `otp.run`;
- `bare_*` on a bare baseline: tasks with a deque mailbox and a single waiter future (the
  floor an asyncio design can reach), on the same uvloop.

Each returns the seconds its measured part took (and memory figures where asked).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

# The workloads block the loop on purpose (100,000 spawns in one go): no watchdog warnings.
os.environ.setdefault("OTP_LOOP_BLOCK_WARNING", "off")

import otp
from otp import _node

BATCH = 1000  # senders yield to the loop after this many sends


class BareMailbox:
    """The baseline's process: a deque and one waiter future."""

    __slots__ = ("queue", "waiter")

    def __init__(self) -> None:
        self.queue: deque[Any] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def send(self, msg: Any) -> None:
        self.queue.append(msg)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def receive(self) -> Any:
        queue = self.queue
        while not queue:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return queue.popleft()


def run_bare(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    return uvloop.run(coro_fn(*args))


def run_otp(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    return otp.run(fn, *args, loop="uvloop")


# -- send + receive throughput: one sender, one receiver ---------------------------------


async def bare_send_receive(n: int) -> float:
    box = BareMailbox()
    done = asyncio.get_running_loop().create_future()

    async def receiver() -> None:
        for _ in range(n):
            await box.receive()
        done.set_result(None)

    task = asyncio.get_running_loop().create_task(receiver())
    start = time.perf_counter()
    for i in range(n):
        box.send(i)
        if i % BATCH == 0:
            await asyncio.sleep(0)
    await done
    elapsed = time.perf_counter() - start
    await task
    return elapsed


async def otp_send_receive(n: int) -> float:
    async def receiver(parent: otp.Pid) -> None:
        receive = otp.receive
        for _ in range(n):
            await receive()
        otp.send(parent, "done")

    pid = otp.spawn(receiver, otp.self())
    send = otp.send
    start = time.perf_counter()
    for i in range(n):
        send(pid, i)
        if i % BATCH == 0:
            await asyncio.sleep(0)
    await otp.receive()
    return time.perf_counter() - start


# -- spawn idle processes (each blocked in receive), with memory per process -------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def bare_spawn_idle(n: int, trace: bool = False) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    boxes: list[BareMailbox] = []
    tasks: list[asyncio.Task[None]] = []

    async def idle(box: BareMailbox) -> None:
        await box.receive()

    async def create() -> None:
        boxes.extend(BareMailbox() for _ in range(n))
        tasks.extend(loop.create_task(idle(box)) for box in boxes)
        await asyncio.sleep(0)  # every task has run up to its receive

    figures = await _idle_figures(n, trace, create)
    for box in boxes:
        box.send("stop")
    await asyncio.gather(*tasks)
    return figures


async def otp_spawn_idle(n: int, trace: bool = False) -> tuple[float, float, float]:
    pids: list[otp.Pid] = []

    async def idle() -> None:
        await otp.receive()

    async def create() -> None:
        spawn = otp.spawn
        pids.extend(spawn(idle) for _ in range(n))
        await asyncio.sleep(0)  # every process has run up to its receive

    figures = await _idle_figures(n, trace, create)
    for pid in pids:
        otp.send(pid, "stop")
    await _until_alone()
    return figures


async def _until_alone() -> None:
    procs = _node.get().procs
    while len(procs) > 1:
        await asyncio.sleep(0)


# -- request / reply round trips -----------------------------------------------------------


async def bare_round_trip(n: int) -> float:
    loop = asyncio.get_running_loop()
    server_box, client_box = BareMailbox(), BareMailbox()

    async def server() -> None:
        while True:
            msg = await server_box.receive()
            if msg is None:
                return
            reply_to, request = msg
            reply_to.send(request)

    task = loop.create_task(server())
    start = time.perf_counter()
    for i in range(n):
        server_box.send((client_box, i))
        await client_box.receive()
    elapsed = time.perf_counter() - start
    server_box.send(None)
    await task
    return elapsed


async def otp_round_trip(n: int) -> float:
    async def server() -> None:
        receive, send = otp.receive, otp.send
        while True:
            sender, ref, request = await receive()
            send(sender, (ref, request))

    pid = otp.spawn_link(server)
    me = otp.self()
    receive, send, make_ref = otp.receive, otp.send, otp.make_ref
    start = time.perf_counter()
    for i in range(n):
        ref = make_ref()
        send(pid, (me, ref, i))
        await receive(lambda m, ref=ref: m[0] is ref)
    elapsed = time.perf_counter() - start
    otp.unlink(pid)
    otp.exit(pid, otp.KILL)
    return elapsed


# -- spawn and finish short-lived processes -------------------------------------------------


async def bare_spawn_exit(n: int) -> float:
    loop = asyncio.get_running_loop()
    left = [n]
    done = loop.create_future()

    async def short() -> None:
        left[0] -= 1
        if not left[0]:
            done.set_result(None)

    start = time.perf_counter()
    tasks = [loop.create_task(short()) for _ in range(n)]
    await done
    del tasks
    return time.perf_counter() - start


async def otp_spawn_exit(n: int) -> float:
    async def short() -> None:
        pass

    spawn = otp.spawn
    start = time.perf_counter()
    for _ in range(n):
        spawn(short)
    await _until_alone()
    return time.perf_counter() - start


# -- exit propagation: a hub with n linked spokes dies ------------------------------------


async def bare_exit_propagation(n: int) -> float:
    loop = asyncio.get_running_loop()
    left = [n]
    done = loop.create_future()

    async def spoke() -> None:
        try:
            await loop.create_future()
        finally:
            left[0] -= 1
            if not left[0]:
                done.set_result(None)

    spokes = [loop.create_task(spoke()) for _ in range(n)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for task in spokes:  # what the hub's death does: cancel every linked task
        task.cancel()
    await done
    return time.perf_counter() - start


async def otp_exit_propagation(n: int) -> float:
    async def spoke() -> None:
        await otp.receive()

    async def hub(parent: otp.Pid) -> None:
        for _ in range(n):
            otp.spawn_link(spoke)
        otp.send(parent, "ready")
        await otp.receive()

    pid = otp.spawn(hub, otp.self())
    await otp.receive()
    await asyncio.sleep(0)
    start = time.perf_counter()
    otp.exit(pid, "boom")
    await _until_alone()
    return time.perf_counter() - start


# -- GenServer -------------------------------------------------------------------------------

from behaviours import GenServer, GenStatem, NoReply, Reply  # noqa: E402
from behaviours.gen_statem import KeepState, NextState, ReplyTo  # noqa: E402


class CounterServer(GenServer[int]):
    def init(self, start: int) -> int:
        return start

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply(state, state)

    def handle_cast(self, msg: Any, state: int) -> NoReply[int]:
        return NoReply(state + 1)


async def _bare_counter(box: BareMailbox) -> None:
    """The baseline server: a task with a deque mailbox, answering calls through a future."""
    state = 0
    receive = box.receive
    while True:
        msg = await receive()
        if type(msg) is tuple:
            request, fut = msg
            if request is None:
                fut.set_result(state)
                return
            fut.set_result(state)
        else:
            state += 1


async def _bare_call(box: BareMailbox, request: Any) -> Any:
    fut = asyncio.get_running_loop().create_future()
    box.send((request, fut))
    return await fut


async def bare_gen_call(n: int) -> float:
    box = BareMailbox()
    task = asyncio.get_running_loop().create_task(_bare_counter(box))
    start = time.perf_counter()
    for _ in range(n):
        await _bare_call(box, "get")
    elapsed = time.perf_counter() - start
    await _bare_call(box, None)
    await task
    return elapsed


async def bare_protocol_call(n: int) -> float:
    """`bare_gen_call` with what OTP's call protocol adds, on bare tasks: the caller
    monitors the server for the call's duration (an entry on each side, an int key), the
    request carries `(caller, tag)`, the reply is a message `(tag, value)` sent only while
    the monitor stands (an alias) and taken by the caller's receive by its tag, then the
    monitor goes. No processes, timeouts or callbacks: the protocol's floor."""
    server_box, client_box = BareMailbox(), BareMailbox()
    watchers: dict[int, BareMailbox] = {}
    monitors: dict[int, BareMailbox] = {}
    ids = iter(range(1, n + 2))

    async def server() -> None:
        state = 0
        while True:
            _, (caller, tag), request = await server_box.receive()
            if request is None:
                return
            if tag[1] in monitors:  # the alias stands: the caller still waits
                caller.send((tag, state))

    task = asyncio.get_running_loop().create_task(server())
    start = time.perf_counter()
    for _ in range(n):
        ref = next(ids)
        watchers[ref] = client_box
        monitors[ref] = server_box
        tag = ("alias", ref)
        server_box.send(("$gen_call", (client_box, tag), "get"))
        msg = await client_box.receive()
        assert msg[0] is tag
        del monitors[ref]
        watchers.pop(ref)
    elapsed = time.perf_counter() - start
    server_box.send(("$gen_call", (client_box, ("alias", 0)), None))
    await task
    return elapsed


async def otp_gen_call(n: int) -> float:
    return await _calls(n, None)


class AsyncCounterServer(CounterServer):
    """`CounterServer` whose calls wait for the server's own turn: an `async def`
    handle_call never runs in the caller's (a plain one to an idle server does)."""

    async def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:  # type: ignore[override]
        return Reply(state, state)


async def otp_gen_call_queued(n: int) -> float:
    """`otp_gen_call` through the server's mailbox and turn: the request and reply messages."""
    pid = await AsyncCounterServer.start_link(0)
    call = GenServer.call
    start = time.perf_counter()
    for _ in range(n):
        await call(pid, "get")
    elapsed = time.perf_counter() - start
    otp.unlink(pid)
    await GenServer.stop(pid)
    return elapsed


async def otp_gen_call_named(n: int, via: bool = False) -> float:
    """`otp_gen_call` by a registered name, or with `via` by ("via", registry, key)."""
    if via:
        await otp.Registry.start_link("bench")
        return await _calls(n, ("via", "bench", "counter"))
    return await _calls(n, "counter")


async def _calls(n: int, name: Any) -> float:
    """`n` calls to a counter server, by its pid (`name` None) or by `name`."""
    pid = await CounterServer.start_link(0, name=name)
    target = pid if name is None else name
    call = GenServer.call
    start = time.perf_counter()
    for _ in range(n):
        await call(target, "get")
    elapsed = time.perf_counter() - start
    otp.unlink(pid)  # type: ignore[arg-type]
    await GenServer.stop(pid)
    return elapsed


async def otp_dispatch(rounds: int, registry: bool = False) -> float:
    """`rounds` messages to each of 1,000 processes: a send each, or with `registry` one
    `otp.Registry.dispatch` to the 1,000 under one duplicate key."""
    me = otp.self()

    async def member() -> None:
        if registry:
            otp.Registry.register("fanout", "all")
        otp.send(me, "ready")
        for _ in range(rounds):
            await otp.receive()
        otp.send(me, "done")

    if registry:
        await otp.Registry.start_link("fanout", keys="duplicate")
    pids = [otp.spawn(member) for _ in range(FANOUT_SERVERS)]
    for _ in pids:
        await otp.receive(lambda m: m == "ready")
    send = otp.send
    start = time.perf_counter()
    for _ in range(rounds):
        if registry:
            otp.Registry.dispatch("fanout", "all", lambda es: [send(p, "m") for p, _ in es])
        else:
            for pid in pids:
                send(pid, "m")
        await asyncio.sleep(0)
    for _ in pids:
        await otp.receive(lambda m: m == "done")
    return time.perf_counter() - start


async def otp_gen_call_metrics(n: int, call_sample: int | None = None) -> float:
    """`otp_gen_call` with the node's metrics on (`otp.ops.enable_metrics`), into an SDK
    meter provider with an in-memory reader; `call_sample` None: the default sampling."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import otp.ops

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    sample = otp.ops.CALL_SAMPLE if call_sample is None else call_sample
    otp.ops.enable_metrics(provider, call_sample=sample)
    try:
        elapsed = await otp_gen_call(n)
        reader.get_metrics_data()  # one collection, outside the measured part
    finally:
        otp.ops.disable_metrics()
        provider.shutdown()
    return elapsed


async def otp_gen_call_traced(n: int, sample_ratio: float = 1.0) -> float:
    """`otp_gen_call` with the node's calls traced (`otp.ops.enable_tracing`): an SDK tracer
    provider sampling `sample_ratio` of the traces, its spans batched to an exporter that
    drops them (what a real exporter adds is its own)."""
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    import otp.ops

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=1 << 17))
    otp.ops.enable_tracing(provider)
    try:
        elapsed = await otp_gen_call(n)
    finally:
        otp.ops.disable_tracing()
        provider.shutdown()
    return elapsed


async def otp_gen_call_sampled_top(n: int) -> float:
    """`otp_gen_call` while `otp top --sort time`'s sampler looks at the loop."""
    from otp import _watchdog

    sampler = _watchdog.sampler(_node.get())
    try:
        return await otp_gen_call(n)
    finally:
        sampler.stop()


async def bare_gen_cast(n: int) -> float:
    box = BareMailbox()
    task = asyncio.get_running_loop().create_task(_bare_counter(box))
    start = time.perf_counter()
    for i in range(n):
        box.send("inc")
        if i % BATCH == 0:
            await asyncio.sleep(0)
    assert await _bare_call(box, "get") == n
    elapsed = time.perf_counter() - start
    await _bare_call(box, None)
    await task
    return elapsed


async def otp_gen_cast(n: int) -> float:
    return await _casts(CounterServer, n)


async def otp_gen_cast_bounded(n: int) -> float:
    """`otp_gen_cast` to a server with a bounded mailbox that never fills."""
    return await _casts(CounterServer, n, max_mailbox=4096)


async def _casts(server: Any, n: int, **options: Any) -> float:
    """`n` casts to a counter started from `server`, then a call to see them all counted."""
    pid = await server.start_link(0, **options)
    cast = GenServer.cast
    start = time.perf_counter()
    for i in range(n):
        cast(pid, "inc")
        if i % BATCH == 0:
            await asyncio.sleep(0)
    assert await GenServer.call(pid, "get") == n
    elapsed = time.perf_counter() - start
    otp.unlink(pid)
    await GenServer.stop(pid)
    return elapsed


class CounterMachine(GenStatem):
    """The state machine of the GenStatem row: a cast is one state function and NextState."""

    def init(self, start: int) -> tuple[str, int]:
        return "counting", start

    def counting(self, event_type: Any, content: Any, data: int) -> Any:
        if event_type == "cast":
            return NextState("counting", data + 1)
        return KeepState(data, [ReplyTo(event_type[1], data)])


async def otp_statem_cast(n: int) -> float:
    """`otp_gen_cast` with a GenStatem: cast -> state function -> NextState."""
    return await _casts(CounterMachine, n)


FANOUT_SERVERS = 1000


async def bare_fanout(rounds: int) -> float:
    loop = asyncio.get_running_loop()
    boxes = [BareMailbox() for _ in range(FANOUT_SERVERS)]
    tasks = [loop.create_task(_bare_counter(box)) for box in boxes]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for _ in range(rounds):
        for box in boxes:
            box.send("inc")
        await asyncio.sleep(0)
    for box in boxes:
        assert await _bare_call(box, "get") == rounds
    elapsed = time.perf_counter() - start
    for box in boxes:
        await _bare_call(box, None)
    await asyncio.gather(*tasks)
    return elapsed


async def otp_fanout(rounds: int) -> float:
    pids = [await CounterServer.start(0) for _ in range(FANOUT_SERVERS)]
    cast = GenServer.cast
    await asyncio.sleep(0)
    start = time.perf_counter()
    for _ in range(rounds):
        for pid in pids:
            cast(pid, "inc")
        await asyncio.sleep(0)
    for pid in pids:
        assert await GenServer.call(pid, "get") == rounds
    elapsed = time.perf_counter() - start
    for pid in pids:
        await GenServer.stop(pid)
    return elapsed


CALLERS = 100


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return sum(samples) / (len(samples) * 1.0), pick(0.5), pick(0.99)


async def bare_call_latency(calls_each: int) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    box = BareMailbox()
    server = loop.create_task(_bare_counter(box))
    samples: list[float] = []

    async def caller() -> None:
        clock = time.perf_counter
        for _ in range(calls_each):
            t = clock()
            await _bare_call(box, "get")
            samples.append(clock() - t)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    await _bare_call(box, None)
    await server
    return _percentiles(samples)


async def otp_call_latency(calls_each: int) -> tuple[float, float, float]:
    pid = await CounterServer.start(0)
    samples: list[float] = []

    async def caller(parent: otp.Pid) -> None:
        clock, call = time.perf_counter, GenServer.call
        for _ in range(calls_each):
            t = clock()
            await call(pid, "get")
            samples.append(clock() - t)
        otp.send(parent, "done")

    me = otp.self()
    for _ in range(CALLERS):
        otp.spawn(caller, me)
    for _ in range(CALLERS):
        await otp.receive()
    await GenServer.stop(pid)
    return _percentiles(samples)


# -- Supervisors ------------------------------------------------------------------------------

import logging  # noqa: E402

from behaviours import DynamicSupervisor, Supervisor  # noqa: E402


def quiet_reports() -> None:
    """Crash and supervisor reports are built and dropped (no I/O in the measurement)."""
    log = logging.getLogger("otp")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())


class Crashy(GenServer[int]):
    def init(self, arg: int) -> int:
        return arg

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply[int]:
        return Reply("pong", state)

    def handle_cast(self, msg: Any, state: int) -> NoReply[int]:
        raise RuntimeError("crash on purpose")


async def _bare_crashy(box: BareMailbox, ack_to: BareMailbox | None = None) -> None:
    """The baseline's restarted child: answers pings, raises on "crash"; acks its start
    to `ack_to` when given."""
    if ack_to is not None:
        ack_to.send(("ack", box))
    while True:
        msg = await box.receive()
        if msg == "crash":
            raise RuntimeError("crash on purpose")
        _, fut = msg
        fut.set_result("pong")


async def bare_restart_latency(n: int) -> list[float]:
    """A task that respawns its child task (with a fresh mailbox) when it raises."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    current: list[BareMailbox] = []
    respawned: list[asyncio.Future[None]] = []

    async def supervisor() -> None:
        for _ in range(n + 1):
            box = BareMailbox()
            current[:] = [box]
            if respawned:
                respawned.pop().set_result(None)
            with contextlib.suppress(RuntimeError):
                await loop.create_task(_bare_crashy(box))

    sup = loop.create_task(supervisor())
    await asyncio.sleep(0)
    for _ in range(n):
        t = time.perf_counter()
        done = loop.create_future()
        respawned.append(done)
        current[0].send("crash")
        await done
        await _bare_call(current[0], "ping")
        samples.append(time.perf_counter() - t)
    current[0].send("crash")
    await sup
    return samples


async def bare_protocol_restart_latency(n: int) -> list[float]:
    """OTP's restart protocol on bare tasks: the supervisor learns of the crash from a
    message, starts the new child and waits for its ack before serving anything else; the
    client learns of the crash from a message, asks the supervisor for the new child and
    calls it. No links, monitors, reports or restart accounting: the protocol's floor."""
    loop = asyncio.get_running_loop()
    sup_box, client_box = BareMailbox(), BareMailbox()

    def ended(box: BareMailbox, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would log it otherwise
        sup_box.send(("exit", box))
        client_box.send(("down", box))

    def start() -> asyncio.Task[None]:
        box = BareMailbox()
        task = loop.create_task(_bare_crashy(box, sup_box))
        task.add_done_callback(lambda t: ended(box, t))
        return task

    async def ack() -> BareMailbox:
        """Selective receive of the child's ack: what comes first waits, in order."""
        held: list[Any] = []
        while True:
            msg = await sup_box.receive()
            if msg[0] == "ack":
                sup_box.queue.extendleft(reversed(held))
                return msg[1]  # type: ignore[no-any-return]
            held.append(msg)

    async def supervisor() -> None:
        task = start()
        box = await ack()
        while True:
            msg = await sup_box.receive()
            if msg[0] == "exit" and msg[1] is box:
                task = start()
                box = await ack()
            elif msg[0] == "which":
                msg[1].set_result(box)
            elif msg[0] == "stop":
                task.cancel()
                return

    async def which() -> BareMailbox:
        fut = loop.create_future()
        sup_box.send(("which", fut))
        return await fut  # type: ignore[no-any-return]

    sup = loop.create_task(supervisor())
    box = await which()
    samples: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        box.send("crash")
        await client_box.receive()
        box = await which()
        await _bare_call(box, "ping")
        samples.append(time.perf_counter() - t)
    sup_box.send(("stop",))
    await sup
    return samples


def erlang_restart_latency(n: int) -> tuple[float, float, str] | None:
    """The restart workload on Erlang/OTP (`bench/erlang/`), one scheduler like the one
    event loop here: `(p50, p99, OTP release)` in seconds, or None without `erlc`/`erl`."""
    erlc, erl = shutil.which("erlc"), shutil.which("erl")
    if erlc is None or erl is None:
        return None
    source = Path(__file__).parent / "erlang"
    with tempfile.TemporaryDirectory() as out:
        erl_files = sorted(str(f) for f in source.glob("*.erl"))
        subprocess.run([erlc, "-o", out, *erl_files], check=True)
        run = subprocess.run(
            [erl, "+S", "1", "-pa", out, "-noshell", "-s", "restart_latency", "main", str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
    p50, p99, release = run.stdout.split()
    return int(p50) / 1e9, int(p99) / 1e9, release


async def otp_restart_latency(n: int) -> list[float]:
    quiet_reports()
    otp.process_flag("trap_exit", True)
    sup = await Supervisor.start_link(
        [Crashy.child_spec(0, id="crashy")], intensity=n + 10, period=3600
    )
    samples: list[float] = []
    child = (await Supervisor.which_children(sup))[0].pid
    for _ in range(n):
        t = time.perf_counter()
        ref = otp.monitor(child)  # type: ignore[arg-type]
        GenServer.cast(child, "crash")
        await otp.receive(lambda m, ref=ref: type(m) is otp.Down and m.ref is ref)
        child = (await Supervisor.which_children(sup))[0].pid
        await GenServer.call(child, "ping")
        samples.append(time.perf_counter() - t)
    await GenServer.stop(sup, otp.SHUTDOWN)
    return samples


async def otp_dynamic_churn(n: int) -> float:
    """Start then terminate n temporary children; seconds per child."""
    quiet_reports()
    otp.process_flag("trap_exit", True)
    sup = await DynamicSupervisor.start_link()
    spec = Crashy.child_spec(0, restart="temporary")
    start = time.perf_counter()
    pids = [await DynamicSupervisor.start_child(sup, spec) for _ in range(n)]
    for pid in pids:
        await DynamicSupervisor.terminate_child(sup, pid)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    await GenServer.stop(sup, otp.SHUTDOWN)
    return elapsed / n


class Branch(Supervisor):
    def init(self, width: int) -> Any:
        return Supervisor.flags(), [Crashy.child_spec(i, id=i) for i in range(width)]


async def otp_tree_shutdown(width: int) -> tuple[float, int]:
    """A top supervisor over `width` supervisors of `width` workers each: time to stop it."""
    quiet_reports()
    otp.process_flag("trap_exit", True)
    children = [Branch.child_spec(width, id=i) for i in range(width)]
    top = await Supervisor.start_link(children)
    count = len(otp.processes())
    start = time.perf_counter()
    await GenServer.stop(top, otp.SHUTDOWN)
    elapsed = time.perf_counter() - start
    assert otp.processes() == [otp.self()]
    return elapsed, count


# -- Hot code upgrade ----------------------------------------------------------------------------

import importlib  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

# Version 1 of the upgraded module: a server whose state is a small dict; a call answers the
# code version that handled it.
HOT_V1 = '''"""Version 1 of the upgrade benchmark's server (written by bench/workloads.py)."""

from typing import Any

from behaviours import GenServer, Reply


class Hot(GenServer[Any]):
    vsn = "1"

    def init(self, n: int) -> Any:
        return {"id": n, "count": 0}

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        state["count"] += 1
        return Reply("1", state)
'''

# Version 2: the state changes shape, and code_change converts it.
HOT_V2 = '''"""Version 2 of the upgrade benchmark's server (written by bench/workloads.py)."""

from typing import Any

from behaviours import GenServer, Reply


class Hot(GenServer[Any]):
    vsn = "2"

    def init(self, n: int) -> Any:
        return {"id": n, "stats": {"calls": 0}, "vsn": "2"}

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        state["stats"]["calls"] += 1
        return Reply("2", state)

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        return {"id": state["id"], "stats": {"calls": state["count"]}, "vsn": "2"}
'''

UPGRADE_CLIENTS = 4  # the steady call load: clients, each sending a call every CALL_INTERVAL
CALL_INTERVAL = 0.001
LOAD_BEFORE = 0.5  # seconds of load before the upgrade starts, and after it ends
LOAD_AFTER = 0.2

_hot_names = itertools.count()


@contextlib.contextmanager
def hot_module() -> Iterator[tuple[str, Path]]:
    """A fresh module (unique name) written as HOT_V1 into a temporary directory on sys.path
    and imported: `(name, path)`. Write HOT_V2 over `path`, then upgrade `name`."""
    name = f"bench_hot_{os.getpid()}_{next(_hot_names)}"
    with tempfile.TemporaryDirectory(prefix="otp-bench-") as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(HOT_V1)
        sys.path.insert(0, tmp)
        try:
            importlib.invalidate_caches()
            importlib.import_module(name)
            yield name, path
        finally:
            sys.modules.pop(name, None)
            sys.path.remove(tmp)


@dataclass
class UpgradeRun:
    """One upgrade of a module run by `processes` GenServers, in seconds."""

    processes: int
    seconds: float  # the report's total
    longest_pause: float  # the report's: its first suspend to its last resume
    wall: float  # `await otp.code.upgrade(...)` as its caller saw it
    probe_gap: float  # longest wait between two answers to a probe calling a server back to back
    loop_stall: float  # longest a 1 ms timer fired late: what every process of the node felt
    gc_seconds: float = 0.0  # spent in the cyclic garbage collector during the upgrade
    gc_collections: tuple[int, int, int] = (0, 0, 0)  # its collections, by generation
    # each call of the steady load as (sent, answered), and the upgrade's window
    calls: list[tuple[float, float]] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    load_seconds: float = 0.0
    # traced runs only: when each process handled each system request ("upgrade_code",
    # "resume"), as seconds from the upgrade's start
    marks: dict[str, dict[otp.Pid, float]] = field(default_factory=dict)

    def latencies(self, part: str) -> list[float]:
        """The load's call latencies "before" the upgrade (answered before it started),
        "during" it (sent or answered inside its window) or "after" it (sent after it)."""
        start, end = self.window
        if part == "before":
            chosen = [(s, a) for s, a in self.calls if a < start]
        elif part == "during":
            chosen = [(s, a) for s, a in self.calls if s <= end and a >= start]
        else:
            chosen = [(s, a) for s, a in self.calls if s > end]
        return [a - s for s, a in chosen]

    def calls_per_second(self) -> float:
        return len(self.calls) / self.load_seconds if self.load_seconds else 0.0

    def pauses(self) -> list[float]:
        """Traced runs: each process's own pause, from its suspend (the code server's
        `upgrade_code` request) to its resume."""
        suspended, resumed = self.marks.get("upgrade_code", {}), self.marks.get("resume", {})
        return sorted(resumed[pid] - t for pid, t in suspended.items() if pid in resumed)


class _GcClock:
    """The time the cyclic garbage collector takes while it is on (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def _trace_system_messages(marks: dict[str, dict[otp.Pid, float]]) -> Callable[[], None]:
    """Record when each process has handled each system request (a GenServer looks up
    `otp.sys.handle` at every system message); returns what undoes it."""
    handle = otp.sys.handle
    clock = time.perf_counter

    async def traced(handler: Any, from_: Any, request: Any) -> None:
        await handle(handler, from_, request)
        kind = request if type(request) is str else request[0]
        marks.setdefault(kind, {})[otp.self()] = clock()

    otp.sys.handle = traced

    def untrace() -> None:
        otp.sys.handle = handle

    return untrace


async def _gap_probe(pid: otp.Pid, running: list[bool], out: list[float], parent: otp.Pid) -> None:
    """Call `pid` back to back; the longest time between two answers is the longest pause
    this server's callers felt."""
    clock, call = time.perf_counter, GenServer.call
    last, longest = clock(), 0.0
    while running[0]:
        await call(pid, "get")
        now = clock()
        longest = max(longest, now - last)
        last = now
    out.append(longest)
    otp.send(parent, "helper_done")


async def _ticker(running: list[bool], out: list[float], parent: otp.Pid) -> None:
    """Sleep 1 ms at a time; the latest wake-up is the longest the event loop was held."""
    clock, sleep, tick = time.perf_counter, asyncio.sleep, 0.001
    longest = 0.0
    while running[0]:
        t = clock()
        await sleep(tick)
        longest = max(longest, clock() - t - tick)
    out.append(longest)
    otp.send(parent, "helper_done")


async def _paced_client(
    pids: list[otp.Pid],
    running: list[bool],
    out: list[tuple[float, float]],
    parent: otp.Pid,
) -> None:
    """A steady load: a call to the next server every CALL_INTERVAL, whether or not the
    earlier ones were answered (a paused server does not slow the load down); each call is
    recorded as (sent, answered)."""
    clock = time.perf_counter
    send_request, wait_response = GenServer.send_request, GenServer.wait_response
    pending = GenServer.reqids_new()
    sent = 0
    due = clock()
    while running[0] or pending:
        now = clock()
        while running[0] and now >= due:  # behind schedule (the loop was held): catch up
            pending.add(send_request(pids[sent % len(pids)], "get"), clock())
            sent += 1
            due += CALL_INTERVAL
        wait = max(due - clock(), 0.001) if running[0] else 5.0  # (uvloop's timers: 1 ms)
        if not pending:
            await asyncio.sleep(wait)
            continue
        try:
            _, sent_at = await wait_response(pending, wait)
        except TimeoutError:
            continue
        out.append((sent_at, clock()))
    otp.send(parent, "helper_done")


async def otp_upgrade(
    n: int, clients: int = 0, trace: bool = False, profiler: Any = None
) -> UpgradeRun:
    """Start `n` servers of HOT_V1, write HOT_V2 over it and upgrade: measured by the report,
    by two probes calling the first and the last server back to back, and by a 1 ms ticker.

    `clients`: that many clients make a steady load of calls to the servers (from
    LOAD_BEFORE seconds before the upgrade to LOAD_AFTER after it). `trace`: record when each
    process handled each system request (costs a little). `profiler`: a `cProfile.Profile`
    enabled for the upgrade only.
    """
    quiet_reports()
    clock = time.perf_counter
    with hot_module() as (name, path):
        cls = sys.modules[name].Hot
        pids = [await cls.start(i) for i in range(n)]
        me = otp.self()
        running = [True]
        gaps: list[float] = []
        stalls: list[float] = []
        calls: list[tuple[float, float]] = []
        helpers = [otp.spawn(_gap_probe, pid, running, gaps, me) for pid in (pids[0], pids[-1])]
        helpers.append(otp.spawn(_ticker, running, stalls, me))
        for k in range(clients):
            helpers.append(otp.spawn(_paced_client, pids[k::clients], running, calls, me))
        load_start = clock()
        await asyncio.sleep(LOAD_BEFORE if clients else 0.01)
        path.write_text(HOT_V2)
        marks: dict[str, dict[otp.Pid, float]] = {}
        untrace = _trace_system_messages(marks) if trace else None
        try:
            if profiler is not None:
                profiler.enable()
            with _GcClock() as collector:
                start = clock()
                report = await otp.code.upgrade(name)
                end = clock()
        finally:
            if profiler is not None:
                profiler.disable()
            if untrace is not None:
                untrace()
        if clients:
            await asyncio.sleep(LOAD_AFTER)
        running[0] = False
        load_seconds = clock() - load_start
        for _ in helpers:
            await otp.receive(lambda m: m == "helper_done")
        # what was measured is an upgrade: every server runs the new code, none was lost
        assert len(report.processes) == n, (len(report.processes), n)
        assert await GenServer.call(pids[n // 2], "get") == "2"
        for pid in pids:
            otp.exit(pid, otp.KILL)
        for pid in pids:
            while otp.is_alive(pid):
                await asyncio.sleep(0)
    return UpgradeRun(
        processes=n,
        seconds=report.seconds,
        longest_pause=report.longest_pause,
        wall=end - start,
        probe_gap=max(gaps),
        loop_stall=max(stalls),
        gc_seconds=collector.seconds,
        gc_collections=(
            collector.collections[0],
            collector.collections[1],
            collector.collections[2],
        ),
        calls=calls,
        window=(start, end),
        load_seconds=load_seconds if clients else 0.0,
        marks={kind: {pid: t - start for pid, t in times.items()} for kind, times in marks.items()},
    )


# -- start idle GenServers; the cost per process as the node grows (bench/scaling.py) -------


async def otp_gen_start_idle(n: int, trace: bool = False) -> tuple[float, float, float]:
    """Start `n` GenServers one after the other, as a supervisor does (each start waits for
    its `init`), and leave them waiting: seconds, then tracemalloc and RSS bytes per server.

    The servers stay up: the node's shutdown stops them."""
    start = CounterServer.start

    async def start_all() -> list[Any]:
        return [await start(0) for _ in range(n)]

    return await _idle_figures(n, trace, start_all)


async def _idle_figures(
    n: int, trace: bool, create: Callable[[], Coroutine[Any, Any, Any]]
) -> tuple[float, float, float]:
    """Seconds `create` takes to make `n` waiting processes, then tracemalloc bytes (with
    `trace`, else 0) and RSS bytes per process; what `create` returns is kept alive until
    the figures are taken."""
    gc.collect()
    rss0 = _rss()
    if trace:
        tracemalloc.start()
    mem0 = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    created = await create()
    elapsed = time.perf_counter() - start
    traced = (tracemalloc.get_traced_memory()[0] - mem0) / n
    rss = (_rss() - rss0) / n
    if trace:
        tracemalloc.stop()
    del created
    return elapsed, traced, rss


async def bare_gen_start_idle(n: int, trace: bool = False) -> tuple[float, float, float]:
    """The floor of `otp_gen_start_idle`: a start with a handshake on bare tasks. Each
    server is a task with a deque mailbox that acknowledges its start through a future (as
    `init` returning does) and then waits in its receive; the starter awaits each
    acknowledgement before it starts the next, as `GenServer.start` does."""
    loop = asyncio.get_running_loop()

    async def server(box: BareMailbox, started: asyncio.Future[None]) -> None:
        started.set_result(None)
        await box.receive()

    async def start() -> tuple[BareMailbox, asyncio.Task[None]]:
        box = BareMailbox()
        started = loop.create_future()
        task = loop.create_task(server(box, started))
        await started
        return box, task

    servers: list[tuple[BareMailbox, asyncio.Task[None]]] = []

    async def start_all() -> list[tuple[BareMailbox, asyncio.Task[None]]]:
        for _ in range(n):
            servers.append(await start())
        return servers

    figures = await _idle_figures(n, trace, start_all)
    for box, _ in servers:
        box.send("stop")
    await asyncio.gather(*(task for _, task in servers))
    return figures
