"""The chat load generator: N clients in M rooms, saying lines, checking every delivery.

    python -m apps.chat.loadgen --port 5555 --clients 1000 --rooms 50 \\
        --phase max:5 --phase steady:5 --phase chaos:15

Client `i` is `u<i>` in room `room<i % M>`; all of them join before anyone says a word, and
nobody leaves, so every room's members are known. Each `SAY` carries its sender's sequence
number and the time it was sent (`SAY room7 42:1234.567890`). Phases, one after another on
the same connections:

- `max:S`: closed loop, `--window` lines in flight per client (each client says its next
  line when its own comes back): the most the server delivers, for S seconds;
- any other name, `NAME:S[:RATE]`: open loop at RATE lines said per second in all, spread
  over the clients (each line reaches every member of its room: clients/rooms deliveries);
  RATE `half` is half of what the last `max` phase said per second; without RATE,
  `--rate`, and with `--rate 0`, `half`.

What it measures (a JSON line per second on stdout, then a report):

- **delivered**: `MSG` lines received, per second (each line said reaches every member);
- **latency**: from a line's `SAY` to each member's `MSG`, p50/p99/max, per phase;
- **dropped**: connections the server closed;
- **lost**: after the last phase, it waits (up to `--drain` seconds) until every member has
  received every line said in its room by a client whose connection was not dropped; what
  is still missing then is lost. A line counts from the moment it was written to the
  socket, acknowledged or not: so a line that was in a room's mailbox when the room was
  killed must still arrive (the connection says it again, see `connection.py`);
- **duplicates** and **reordered**: a line received twice, or before an earlier line of the
  same sender (each sender's lines must arrive in order);
- **rejoined**: `REJOINED` lines (a room restarted and took its members back), each with
  the room and when it arrived (`time.monotonic()`, the clock every process of the
  machine shares), for the demo to time each room's recovery as its members saw it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Load", "main", "run"]

now = time.perf_counter


@dataclass
class Phase:
    name: str
    seconds: float
    mode: str  # "max" or "rate"
    rate: float = 0.0  # lines said per second (open loop)
    start: float = 0.0
    end: float = 0.0
    said: int = 0
    delivered: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))


class Client(asyncio.Protocol):
    """One simulated user: its socket, what it said, what it received."""

    def __init__(self, load: Load, index: int) -> None:
        self.load = load
        self.index = index
        self.nick = f"u{index}".encode()
        self.room = f"room{index % load.rooms}"
        self.say_prefix = f"SAY {self.room} ".encode()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.joined = asyncio.get_running_loop().create_future()
        self.closing = False
        self.dropped = False
        self.seq = 0  # lines said
        self.in_flight = 0  # said, own MSG not back yet
        self.got: dict[int, int] = {}  # sender -> lines received from it
        self.last: dict[int, int] = {}  # sender -> last sequence number received
        self.errors: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"NICK %s\nJOIN %s\n" % (self.nick, self.room.encode()))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.dropped = True
            self.load.dropped += 1
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"{self.nick!r} lost its connection"))

    def say(self) -> None:
        if self.dropped or self.transport is None:
            return
        self.seq += 1
        self.in_flight += 1
        self.transport.write(b"%s%d:%.6f\n" % (self.say_prefix, self.seq, now()))

    def data_received(self, data: bytes) -> None:
        load = self.load
        phase = load.phase
        t = now()
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        got, last = self.got, self.last
        for line in lines:
            if line.startswith(b"MSG "):
                _, _, nick, text = line.split(b" ", 3)
                seq_b, _, sent_b = text.partition(b":")
                sender = int(nick[1:])
                seq = int(seq_b)
                previous = last.get(sender, 0)
                if seq <= previous:
                    load.duplicates += 1
                    continue
                if seq != previous + 1:
                    load.reordered += 1
                last[sender] = seq
                got[sender] = got.get(sender, 0) + 1
                load.received += 1
                if phase is not None:
                    phase.delivered += 1
                    phase.latencies.append(t - float(sent_b))
                if nick == self.nick:
                    self.in_flight -= 1
                    if load.closed_loop and phase is not None:
                        self.say()
                        phase.said += 1
            elif line.startswith(b"OK JOIN"):
                if not self.joined.done():
                    self.joined.set_result(None)
            elif line.startswith(b"REJOINED"):
                load.rejoined += 1
                load.rejoins.append((line[9:].decode(), time.monotonic()))
            elif line.startswith(b"ERR"):
                load.error_count += 1
                if len(self.errors) < 3:
                    self.errors.append(line)


class Load:
    """The clients and the counts of one run."""

    def __init__(self, host: str, port: int, clients: int, rooms: int) -> None:
        self.host = host
        self.port = port
        self.n = clients
        self.rooms = min(rooms, clients)
        self.clients: list[Client] = []
        self.phase: Phase | None = None
        self.closed_loop = False
        self.received = 0
        self.dropped = 0
        self.duplicates = 0
        self.reordered = 0
        self.rejoined = 0
        self.rejoins: list[tuple[str, float]] = []  # (room, time.monotonic()) of each REJOINED
        self.error_count = 0

    async def connect(self, concurrency: int = 100) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Client:
            async with gate:
                _, client = await loop.create_connection(
                    lambda: Client(self, i), self.host, self.port
                )
                await asyncio.wait_for(client.joined, 30.0)
                return client

        self.clients = list(await asyncio.gather(*(one(i) for i in range(self.n))))

    def expected(self) -> int:
        """Deliveries still missing (from senders that were not dropped)."""
        missing = 0
        by_room: dict[str, list[Client]] = {}
        for client in self.clients:
            by_room.setdefault(client.room, []).append(client)
        for members in by_room.values():
            senders = [(c.index, c.seq) for c in members if not c.dropped]
            for receiver in members:
                if receiver.dropped:
                    continue
                for index, said in senders:
                    missing += max(0, said - receiver.got.get(index, 0))
        return missing

    async def run_phase(self, phase: Phase, rate: float, report: Any) -> None:
        self.phase = phase
        phase.rate = rate
        phase.start = now()
        phase.end = phase.start + phase.seconds
        live = [c for c in self.clients if not c.dropped]
        if phase.mode == "max":
            self.closed_loop = True
            for client in live:
                for _ in range(self.window):
                    client.say()
                    phase.said += 1
        tick = 0.002
        next_report = phase.start + 1.0
        last_delivered = 0
        cursor = 0
        while (t := now()) < phase.end:
            if phase.mode == "rate" and live:
                due = int(rate * (t - phase.start)) - phase.said
                for _ in range(due):
                    live[cursor % len(live)].say()
                    cursor += 1
                phase.said += max(due, 0)
            if t >= next_report:
                report(
                    {
                        "event": "progress",
                        "phase": phase.name,
                        "elapsed": round(t - phase.start, 1),
                        "seconds": phase.seconds,
                        "delivered_per_s": phase.delivered - last_delivered,
                        "dropped": self.dropped,
                        "rejoined": self.rejoined,
                    }
                )
                last_delivered = phase.delivered
                next_report += 1.0
            await asyncio.sleep(tick)
        self.closed_loop = False
        phase.end = now()

    async def drain(self, seconds: float) -> int:
        """Wait until every line said has reached every member, or `seconds` pass; what is
        still missing."""
        self.phase = None
        deadline = now() + seconds
        while (missing := self.expected()) and now() < deadline:
            await asyncio.sleep(0.05)
        return missing

    def close(self) -> None:
        for client in self.clients:
            client.closing = True
            if client.transport is not None:
                client.transport.close()

    window = 2


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(phase: Phase) -> dict[str, Any]:
    seconds = max(phase.end - phase.start, 1e-9)
    lat = sorted(phase.latencies)
    return {
        "name": phase.name,
        "mode": phase.mode,
        "rate": round(phase.rate),
        "seconds": round(seconds, 2),
        "said": phase.said,
        "said_per_s": round(phase.said / seconds),
        "delivered": phase.delivered,
        "delivered_per_s": round(phase.delivered / seconds),
        "p50_ms": round(_percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
        "max_ms": round((lat[-1] if lat else 0.0) * 1000, 2),
    }


async def run(
    host: str,
    port: int,
    *,
    clients: int = 1000,
    rooms: int = 50,
    phases: list[tuple[str, float, float | str | None]],
    rate: float = 0.0,
    window: int = 2,
    drain: float = 10.0,
    hold: bool = False,
    report: Any = None,
) -> dict[str, Any]:
    """Run the load; the report (also given to `report` as events along the way)."""

    def emit(event: dict[str, Any]) -> None:
        if report is not None:
            report(event)

    load = Load(host, port, clients, rooms)
    load.window = window
    started = now()
    await load.connect()
    emit({"event": "connected", "clients": clients, "seconds": round(now() - started, 2)})
    done: list[dict[str, Any]] = []
    try:
        for name, seconds, phase_rate in phases:
            mode = "max" if name == "max" else "rate"
            phase = Phase(name, seconds, mode)
            said_rate = rate if phase_rate is None else phase_rate
            if mode == "rate" and (said_rate == "half" or not said_rate):
                maxed = [p for p in done if p["mode"] == "max"]
                said_rate = maxed[-1]["said_per_s"] / 2 if maxed else 100.0 * load.rooms
            emit({"event": "phase", "phase": name, "seconds": seconds, "rate": said_rate})
            await load.run_phase(phase, float(said_rate), emit)
            if mode == "max":  # let the lines in flight come back before the next phase
                await load.drain(5.0)
            done.append(summary(phase))
            emit({"event": "phase_done", **done[-1]})
        if hold:  # the connections stay until whoever runs us says so (a line on stdin)
            emit({"event": "holding"})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        lost = await load.drain(drain)
    finally:
        load.close()
    errors = [e.decode(errors="replace") for c in load.clients for e in c.errors][:5]
    result = {
        "event": "report",
        "clients": clients,
        "rooms": load.rooms,
        "phases": done,
        "said": sum(c.seq for c in load.clients),
        "received": load.received,
        "dropped": load.dropped,
        "lost": lost,
        "duplicates": load.duplicates,
        "reordered": load.reordered,
        "rejoined": load.rejoined,
        "rejoins": load.rejoins,
        "errors": load.error_count,
        "first_errors": errors,
    }
    emit(result)
    return result


def _phase(text: str) -> tuple[str, float, float | str | None]:
    name, _, rest = text.partition(":")
    seconds, _, rate = rest.partition(":")
    return name, float(seconds or 5), None if not rate else rate if rate == "half" else float(rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.chat.loadgen", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.0, help="lines said per second, in all")
    parser.add_argument("--window", type=int, default=2, help="lines in flight per client (max)")
    parser.add_argument("--phase", action="append", type=_phase, help="NAME:SECONDS[:RATE]")
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument(
        "--hold", action="store_true", help="after the phases, wait for a line on stdin"
    )
    args = parser.parse_args(argv)
    phases = args.phase or [("rate", 10.0, None)]

    def report(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    result = runner(
        run(
            args.host,
            args.port,
            clients=args.clients,
            rooms=args.rooms,
            phases=phases,
            rate=args.rate,
            window=args.window,
            drain=args.drain,
            hold=args.hold,
            report=report,
        )
    )
    return 0 if result["dropped"] == 0 and result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
