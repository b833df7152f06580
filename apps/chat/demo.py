"""`make demo`: the chat service under load, crashed and hot-upgraded, with a short report.

    python -m apps.chat.demo [--clients 1000] [--rooms 50] [--quick]

1. Builds releases 1.0.0 and 2.0.0 of the chat service in a temporary project
   (`apps/chat/release.py`), and runs the same server on bare asyncio
   (`bench/chat_asyncio.py`) under the load generator, as the baseline.
2. Starts release 1.0.0 with `otp run --release --ops-port ...` and waits for `/readyz`.
3. Runs the load generator (`apps/chat/loadgen.py`, another OS process) in three phases:
   `max` (closed loop: the most it delivers), `steady` (half that load: latency), and
   `chaos` (the same load, while room processes are killed at random and
   `otp release upgrade 2.0.0` runs half way). Each kill first suspends the room until
   lines are waiting in its mailbox, so the kill really loses work in the room that the
   connections must send again; its recovery is the time from the kill until the new room
   answers (its members taken back).
4. Asks `WHO` before the upgrade (1.0.0: `ERR unknown command`) and after it.
5. Stops the node (`otp stop`) and prints the report. Whatever happens (a failure,
   Ctrl-C), the node, the baseline and the load generator are stopped and the temporary
   project is removed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import release

__all__ = ["Settings", "main", "run"]

REPO = Path(__file__).resolve().parents[2]
NAME = "chat"

# Runs inside the node (otp eval): kill random rooms, each once lines wait in its mailbox;
# for each, when it was killed and how long until the restarted room answered a call.
CHAOS = """
import random
import time

async def _chaos(rooms, kills, interval, seed):
    rnd = random.Random(seed)
    done = []
    for _ in range(kills):
        await asyncio.sleep(interval)
        room = rnd.choice(rooms)
        name = ("via", "chat_rooms", room)
        old = otp.whereis(name)
        if old is None:
            continue
        await otp.sys.suspend(old)
        waited = time.perf_counter()
        while True:  # until 3 lines wait (or 1, after 0.1 s; or none came in 2 s)
            info = otp.process_info(old)
            held = time.perf_counter() - waited
            if info is None or held > 2.0 or info.message_queue_len >= (3 if held < 0.1 else 1):
                break
            await asyncio.sleep(0.001)
        info = otp.process_info(old)
        queued = info.message_queue_len if info is not None else 0
        killed_at = time.monotonic()  # the clock the load generator's processes share
        started = time.perf_counter()
        otp.exit(old, otp.KILL)
        while True:
            new = otp.whereis(name)
            if new is not None and new != old:
                try:
                    await GenServer.call(new, "ping", timeout=1.0)
                    break
                except otp.CallError:
                    pass
            await asyncio.sleep(0.0002)
        done.append((room, queued, time.perf_counter() - started, killed_at))
    return done

await _chaos(ROOMS, KILLS, INTERVAL, SEED)
"""


@dataclass
class Settings:
    clients: int = 1000
    rooms: int = 50
    max_seconds: float = 5.0
    steady_seconds: float = 5.0
    steady_rate: float = 25_000  # delivered msgs/s: half the 50,000 of the target
    heavy_seconds: float = 4.0  # at half of the measured maximum (0: no such phase)
    chaos_seconds: float = 14.0
    chaos_rate: float = 50_000  # delivered msgs/s: the target
    kills: int = 10
    baseline: bool = True
    window: int = 2
    progress: bool = True


class Demo:
    """The processes of one run, each stopped in `close`."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.root = Path(tempfile.mkdtemp(prefix="chat-demo-"))
        self.run_dir = self.root / "run"
        self.run_dir.mkdir(mode=0o700)
        self.log_path = self.root / "node.log"
        self.procs: list[subprocess.Popen[Any]] = []
        self.files: list[Any] = []
        self.node: subprocess.Popen[Any] | None = None
        self.port = free_port()
        self.ops_port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.env.pop("OTP_COOKIE", None)

    # -- helpers -----------------------------------------------------------------------

    def say(self, text: str) -> None:
        if self.s.progress:
            print(text, flush=True)

    def otp(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """An `otp` command against the demo's node."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "otp.cli",
                *args,
                "--name",
                NAME,
                "--run-dir",
                str(self.run_dir),
            ],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[Any]:
        # a session of its own: Ctrl-C reaches the demo only, which then stops each in order
        proc = subprocess.Popen(args, env=self.env, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop everything this run started; remove its files."""
        if self.node is not None and self.node.poll() is None:
            with contextlib.suppress(Exception):
                self.otp("stop", timeout=10.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.node.wait(timeout=15.0)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        for file in self.files:
            file.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- steps -------------------------------------------------------------------------

    def build(self) -> None:
        for vsn in release.VERSIONS:
            release.build(self.root, vsn)

    def baseline(self) -> dict[str, Any]:
        port = free_port()
        server = self.start(
            [sys.executable, str(REPO / "bench" / "chat_asyncio.py"), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        server.stdout.readline()  # "bare asyncio chat listening on ..."
        try:
            report = self.load(
                port, [("max", self.s.max_seconds, "")], label="baseline", server=server.pid
            )
        finally:
            server.kill()
            server.wait()
        return report

    def start_node(self) -> None:
        log = self.log_path.open("w")
        self.files.append(log)
        self.node = self.start(
            [
                sys.executable,
                "-m",
                "otp.cli",
                "run",
                "--release",
                "--name",
                NAME,
                "--run-dir",
                str(self.run_dir),
                "--ops-port",
                str(self.ops_port),
                "--set",
                f"chat.port={self.port}",
                "--log-level",
                "info",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30.0
        while self.http("/readyz")[0] != 200:
            if self.node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as failed:
            return failed.code, failed.read().decode()
        except OSError:
            return 0, ""

    def who(self, room: str) -> str:
        """Ask `WHO room` on a connection of its own (which joins nothing)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10.0) as sock:
            sock.sendall(f"WHO {room}\n".encode())
            reply = sock.makefile("rb").readline().decode().rstrip("\n")
            sock.sendall(b"QUIT\n")
        return reply

    def load(
        self,
        port: int,
        phases: list[tuple[str, float, float | str]],
        label: str,
        on_event: Any = None,
        server: int | None = None,
        hold: Any = None,
    ) -> dict[str, Any]:
        """Run the load generator against `port`; its report. With `server` (an OS pid),
        each phase also gets the server's CPU seconds (`server_cpu`). With `hold` (a
        function that returns when the run's own work is done), the load generator keeps
        its connections after its phases until `hold()` has returned."""
        args = [
            sys.executable,
            "-m",
            "apps.chat.loadgen",
            "--port",
            str(port),
            "--clients",
            str(self.s.clients),
            "--rooms",
            str(self.s.rooms),
            "--window",
            str(self.s.window),
        ]
        for name, seconds, rate in phases:
            args += ["--phase", f"{name}:{seconds}" + (f":{rate}" if rate else "")]
        if hold is not None:
            args.append("--hold")
        gen = self.start(args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def release() -> None:
            hold()
            assert gen.stdin is not None
            with contextlib.suppress(OSError):
                gen.stdin.write("go\n")
                gen.stdin.close()

        assert gen.stdout is not None
        report: dict[str, Any] | None = None
        cpu: dict[str, float] = {}
        for raw in gen.stdout:
            event = json.loads(raw)
            used = cpu_seconds(server) if server is not None else None
            if event["event"] == "phase" and used is not None:
                cpu[event["phase"]] = used
            elif event["event"] == "phase_done" and used is not None and event["name"] in cpu:
                cpu[event["name"]] = used - cpu[event["name"]]
            elif event["event"] == "holding":
                threading.Thread(target=release, daemon=True).start()
            elif event["event"] == "report":
                report = event
                for phase in report["phases"]:
                    phase["server_cpu"] = cpu.get(phase["name"])
            elif event["event"] == "progress":
                self.progress(label, event)
            if on_event is not None:
                on_event(event)
        gen.wait()
        if self.s.progress and sys.stdout.isatty():
            print("\r" + " " * 100 + "\r", end="", flush=True)
        if report is None:
            raise RuntimeError(f"the load generator ({label}) ended without a report")
        return report

    def progress(self, label: str, event: dict[str, Any]) -> None:
        if not self.s.progress:
            return
        line = (
            f"  [{label}: {event['phase']} {event['elapsed']:4.1f}/{event['seconds']:g} s] "
            f"{event['delivered_per_s']:>8,} msgs/s  dropped {event['dropped']}  "
            f"rejoined {event['rejoined']}"
        )
        if sys.stdout.isatty():
            print("\r" + line.ljust(100), end="", flush=True)
        else:
            print(line, flush=True)

    def chaos(self, rooms: list[str], kills: int, interval: float, seed: int) -> list[Any]:
        """Kill `kills` random rooms inside the node, `interval` s apart; each kill's (room,
        lines waiting in its mailbox, seconds until the new room answered, when it was
        killed (time.monotonic()))."""
        code = (
            CHAOS.replace("ROOMS", repr(rooms))
            .replace("KILLS", str(kills))
            .replace("INTERVAL", repr(interval))
            .replace("SEED", str(seed))
        )
        timeout = kills * (interval + 2.0) + 10.0
        done = self.otp("eval", "--timeout", str(timeout), code, timeout=timeout + 10.0)
        if done.returncode != 0:
            raise RuntimeError(f"the room kills failed: {done.stderr}")
        return list(ast.literal_eval(done.stdout))

    def upgrade(self) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        done = self.otp("release", "upgrade", "2.0.0", "--window", "0")
        return done, time.monotonic() - started

    def node_pauses(self) -> list[float]:
        """The code server's `paused X ms` for each module it upgraded (from the node's log)."""
        text = self.log_path.read_text()
        return [float(ms) for ms in re.findall(r"upgraded from .* paused ([\d.]+) ms", text)]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) used so far by process `pid`; None where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(settings: Settings) -> dict[str, Any]:
    """The whole demo; its results (what the report prints)."""
    demo = Demo(settings)
    s = settings
    result: dict[str, Any] = {"settings": vars(s).copy(), "load_before": os.getloadavg()}
    try:
        demo.say(f"building releases {' and '.join(release.VERSIONS)} of the chat service ...")
        demo.build()
        if s.baseline:
            demo.say(f"baseline: the same chat on bare asyncio, {s.clients:,} clients ...")
            base = demo.baseline()
            result["baseline"] = base["phases"][0]
        demo.say(f"starting release 1.0.0: otp run --release --ops-port {demo.ops_port} ...")
        demo.start_node()
        rooms = [f"room{i}" for i in range(min(s.rooms, s.clients))]
        chaos: dict[str, Any] = {"kills": [], "errors": []}
        events: queue.Queue[dict[str, Any]] = queue.Queue()

        def on_event(event: dict[str, Any]) -> None:
            if event["event"] == "phase" and event["phase"] == "chaos":
                threading.Thread(target=run_chaos, daemon=True).start()
            events.put(event)

        def run_chaos() -> None:
            """Kills in the first 40% of the chaos phase, the upgrade at 50%, kills again
            until 85%: all of it while the load runs."""
            try:
                begun = time.monotonic()
                before = (s.kills + 1) // 2
                after = s.kills - before
                chaos["who_before"] = demo.who(rooms[0])
                if before:
                    interval = 0.4 * s.chaos_seconds / before
                    chaos["kills"] += demo.chaos(rooms, before, interval, seed=1)
                time.sleep(max(0.0, begun + 0.5 * s.chaos_seconds - time.monotonic()))
                done, took = demo.upgrade()
                chaos["upgrade"] = {
                    "returncode": done.returncode,
                    "output": (done.stdout + done.stderr).strip(),
                    "seconds": took,
                }
                chaos["who_after"] = demo.who(rooms[0])
                if after:
                    left = begun + 0.85 * s.chaos_seconds - time.monotonic()
                    chaos["kills"] += demo.chaos(rooms, after, max(left / after, 0.05), seed=2)
                chaos["late"] = time.monotonic() - begun > s.chaos_seconds  # a busy machine
            except Exception as exc:
                chaos["errors"].append(repr(exc))
            finally:
                chaos["done"] = True

        demo.say(f"load: {s.clients:,} clients in {len(rooms)} rooms (apps/chat/loadgen.py) ...")
        per_line = s.clients // len(rooms)  # members of a room: deliveries per line said
        phases: list[tuple[str, float, float | str]] = [
            ("max", s.max_seconds, ""),
            ("steady", s.steady_seconds, s.steady_rate / per_line),
        ]
        phases.append(("chaos", s.chaos_seconds, s.chaos_rate / per_line))
        if s.heavy_seconds:  # last: an open loop this fast leaves a backlog behind
            phases.append(("heavy", s.heavy_seconds, "half"))
        assert demo.node is not None

        def chaos_done() -> None:
            deadline = time.monotonic() + 60.0
            while "done" not in chaos and time.monotonic() < deadline:
                time.sleep(0.05)

        report = demo.load(
            demo.port,
            phases,
            label="chat",
            on_event=on_event,
            server=demo.node.pid,
            hold=chaos_done,
        )
        result["load"] = report
        result["chaos"] = chaos
        result["pauses_ms"] = demo.node_pauses()
        status, health = demo.http("/healthz")
        result["healthz"] = (status, json.loads(health) if health else None)
        stopped = demo.otp("stop")
        assert demo.node is not None
        result["node_exit"] = demo.node.wait(timeout=30.0)
        result["stopped"] = stopped.returncode
        result["node_errors"] = [
            line for line in demo.log_path.read_text().splitlines() if " ERROR " in line
        ]
    finally:
        demo.close()
    result["left_running"] = [p.pid for p in demo.procs if p.poll() is None]
    return result


def verdict(result: dict[str, Any]) -> list[str]:
    """What went wrong (nothing: an empty list)."""
    load, chaos = result["load"], result["chaos"]
    wrong = []
    if load["dropped"]:
        wrong.append(f"{load['dropped']} connections dropped")
    if load["lost"]:
        wrong.append(f"{load['lost']} messages lost")
    if load["duplicates"] or load["reordered"]:
        wrong.append(f"{load['duplicates']} duplicates, {load['reordered']} reordered")
    upgrade = chaos.get("upgrade")
    if upgrade is None or upgrade["returncode"] != 0:
        wrong.append(f"the upgrade failed: {upgrade}")
    if any(r == float("inf") for r in recoveries(result)):
        wrong.append("a killed room's members were not all told REJOINED")
    if not who_ok(chaos.get("who_after", ""), result):
        wrong.append(f"WHO after the upgrade answered {chaos.get('who_after')!r}")
    if chaos["errors"]:
        wrong.append(f"chaos: {chaos['errors']}")
    if "done" not in chaos:
        wrong.append("the kills and the upgrade did not finish")
    if result["left_running"]:
        wrong.append(f"left running: {result['left_running']}")
    return wrong


def who_ok(answer: str, result: dict[str, Any]) -> bool:
    """`WHO room0 u0,u50,...`: exactly the load generator's members of room0."""
    s = result["settings"]
    rooms = min(s["rooms"], s["clients"])
    members = sorted(f"u{i}" for i in range(0, s["clients"], rooms))
    return answer == f"WHO room0 {','.join(members)}"


def recoveries(result: dict[str, Any]) -> list[float]:
    """Each kill's recovery as its room's members saw it: from the kill until the last of
    them read `REJOINED room` (seconds); a kill whose members were not all told: inf."""
    s = result["settings"]
    members = s["clients"] // min(s["rooms"], s["clients"])
    rejoins = result["load"]["rejoins"]
    out = []
    for room, _, _, killed_at in result["chaos"]["kills"]:
        seen = sorted(t - killed_at for r, t in rejoins if r == room and t >= killed_at)
        out.append(seen[members - 1] if len(seen) >= members else float("inf"))
    return out


def per_delivery(phase: dict[str, Any]) -> float | None:
    """Microseconds of the server's CPU per delivered message in `phase`."""
    cpu = phase.get("server_cpu")
    return cpu * 1e6 / phase["delivered"] if cpu and phase["delivered"] else None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def print_report(result: dict[str, Any]) -> None:
    s = result["settings"]
    load, chaos = result["load"], result["chaos"]
    phases = {p["name"]: p for p in load["phases"]}
    top, steady, wild = phases["max"], phases["steady"], phases["chaos"]
    print()
    print(
        f"chat demo: {s['clients']:,} clients in {load['rooms']} rooms, release 1.0.0 -> 2.0.0 "
        f"under load ({os.cpu_count()} cores; load average before the run "
        f"{result['load_before'][0]:.2f}: other programs running share the cores)"
    )
    print(f"throughput (closed loop, {s['window']} lines in flight per client, {top['seconds']} s)")
    print(f"  framework (apps/chat)          {top['delivered_per_s']:>9,} delivered msgs/s")
    base = result.get("baseline")
    if base:
        ratio = top["delivered_per_s"] / max(base["delivered_per_s"], 1)
        print(f"  bare asyncio (bench/)          {base['delivered_per_s']:>9,} delivered msgs/s")
        print(f"  ratio                          {ratio:>9.2f}x          target >= 0.7x")
        ours, theirs = per_delivery(top), per_delivery(base)
        if ours and theirs:
            print(
                f"  server CPU per delivered msg   {ours:.2f} us (framework), {theirs:.2f} us "
                f"(bare asyncio): {theirs / ours:.2f}x the efficiency"
            )
    print(
        f"latency at {steady['delivered_per_s']:,} msgs/s (half the 50,000 of the target), "
        f"{steady['seconds']} s"
    )
    print(
        f"  p50 / p99 / max                {steady['p50_ms']} / {steady['p99_ms']} / "
        f"{steady['max_ms']} ms      target p99 < 50 ms"
    )
    kills = chaos["kills"]
    print(
        f"chaos at {wild['delivered_per_s']:,} msgs/s ({wild['seconds']} s): "
        f"{len(kills)} room kills, the upgrade half way"
    )
    print(
        f"  latency p50 / p99 / max        {wild['p50_ms']} / {wild['p99_ms']} / "
        f"{wild['max_ms']} ms"
    )
    if kills:
        rec = [r * 1000 for r in recoveries(result)]
        answered = [k[2] * 1000 for k in kills]
        print(
            f"  room recovery                  p50 {_pct(rec, 0.5):.1f} ms, p99 "
            f"{_pct(rec, 0.99):.1f} ms (of {len(rec)})   target p99 < 100 ms"
        )
        print(
            f"    (from the kill until every member has read REJOINED; until the new room "
            f"answers a call: p50 {_pct(answered, 0.5):.1f} ms, p99 {_pct(answered, 0.99):.1f} ms)"
        )
        print(
            f"  lines waiting in killed rooms  {sum(k[1] for k in kills)} (sent again by their "
            f"connections); {load['rejoined']} REJOINED lines to members"
        )
    upgrade = chaos.get("upgrade")
    if upgrade:
        pauses = result["pauses_ms"]
        print(
            f"  upgrade 1.0.0 -> 2.0.0         `otp release upgrade` took "
            f"{upgrade['seconds'] * 1000:.0f} ms; longest process pause "
            f"{max(pauses, default=0.0):.1f} ms (code server)"
        )
        print(f"    {upgrade['output']}")
    print(f"  WHO before the upgrade         {chaos.get('who_before')}")
    after = chaos.get("who_after", "")
    shown = after if len(after) < 60 else after[:57] + "..."
    mark = "ok" if who_ok(after, result) else "WRONG"
    print(f"  WHO after the upgrade          {shown} ({mark})")
    heavy = phases.get("heavy")
    if heavy:
        print(
            f"latency at half the closed loop's maximum ({heavy['delivered_per_s']:,} msgs/s, "
            f"{heavy['seconds']} s, open loop: lines one by one, fewer per write)"
        )
        print(
            f"  p50 / p99 / max                {heavy['p50_ms']} / {heavy['p99_ms']} / "
            f"{heavy['max_ms']} ms"
        )
    print(f"connections dropped              {load['dropped']}   (must be 0)")
    print(
        f"messages lost                    {load['lost']}   (must be 0; every line said, checked "
        f"at every member: {load['received']:,} deliveries)"
    )
    print(f"duplicates / reordered           {load['duplicates']} / {load['reordered']}")
    status, health = result["healthz"]
    print(
        f"/healthz before the stop         {status} {health and health.get('status')}; "
        f"node stopped with status {result['node_exit']}; "
        f"left running: {len(result['left_running'])}"
    )
    kills = len(chaos["kills"])
    others = [e for e in result["node_errors"] if "reason='killed'" not in e]
    print(
        f"errors in the node's log        {len(result['node_errors'])}: the supervisor reports of "
        f"the {kills} kills" + (f", and {others[:3]}" if others else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.chat.demo", description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100 clients, a few seconds")
    args = parser.parse_args(argv)
    settings = Settings(
        clients=args.clients, rooms=args.rooms, kills=args.kills, baseline=not args.no_baseline
    )
    if args.quick:
        settings = Settings(
            clients=100,
            rooms=10,
            max_seconds=1.5,
            steady_seconds=1.0,
            heavy_seconds=0.0,
            chaos_seconds=3.0,
            kills=2,
        )
    for signum in (signal.SIGINT, signal.SIGTERM):  # (even where started with SIGINT ignored)
        signal.signal(signum, signal.default_int_handler)  # stop like Ctrl-C: clean up
    started = time.monotonic()
    try:
        result = run(settings)
    except KeyboardInterrupt:
        print("\ninterrupted: everything the demo started is stopped", file=sys.stderr)
        return 130
    print_report(result)
    wrong = verdict(result)
    print(f"done in {time.monotonic() - started:.0f} s: " + ("; ".join(wrong) or "all good"))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
