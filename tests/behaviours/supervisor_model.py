"""A model of OTP's supervisor semantics, and random cases checked against it.

Each case starts a Supervisor (random strategy, intensity, period on a fake clock) over
2-5 recording children, applies random events (exits with every kind of reason, kills,
failing restarts, the admin API, clock moves), and after each one compares the live
supervisor with the model: which children run and with which pids, the specs kept, the
counts, stop and start order, and whether the intensity was exceeded.
Used by test_supervisor_model.py.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import random
import traceback
from dataclasses import dataclass, field
from typing import Any

import otp
from behaviours import GenServer, NoReply, Reply, Stop, Supervisor, SupervisorError

from .samples import FakeClock

LOG: list[Any] = []  # shared start/terminate log
SLOW = 0.03
STATS: collections.Counter = collections.Counter()
FAILS: dict[Any, int] = {}  # id -> how many of its next starts fail


class Rec(GenServer[Any]):
    """Traps exits; records start/terminate; ("exit", R) makes it stop with R."""

    def init(self, arg: Any) -> Any:
        otp.process_flag("trap_exit", True)
        if FAILS.get(arg[0], 0) > 0:
            FAILS[arg[0]] -= 1
            LOG.append(("fail", arg[0], None))
            return Stop(("start_failed", arg[0]))
        LOG.append(("start", arg[0], otp.self()))
        return arg

    def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        return Reply(state, state)

    def handle_info(self, msg: Any, state: Any) -> Any:
        if type(msg) is tuple and msg[0] == "exit":
            return Stop(msg[1], state)
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        LOG.append(("terminate", state[0], otp.self(), reason))
        if state[1]:
            await asyncio.sleep(SLOW)


@dataclass
class MChild:
    id: Any
    restart: str
    shutdown: Any
    slow: bool
    running: bool = True

    def spec(self) -> Any:
        return Rec.child_spec(
            (self.id, self.slow), id=self.id, restart=self.restart, shutdown=self.shutdown
        )


@dataclass
class Model:
    strategy: str
    intensity: int
    period: float
    children: list[MChild]
    now: float = 0.0
    restarts: list[float] = field(default_factory=list)
    alive: bool = True
    fails: dict = field(default_factory=dict)

    def find(self, id: Any) -> MChild | None:
        return next((c for c in self.children if c.id == id), None)

    def child_exit(self, c: MChild, reason: Any) -> tuple[list, list]:
        """OTP semantics of a child's own exit: (ids stopped in order, ids started in order)."""
        c.running = False
        stops: list = [c.id]
        restart = c.restart == "permanent" or (c.restart == "transient" and otp.is_abnormal(reason))
        if not restart:
            STATS["exit_no_restart"] += 1
            if c.restart == "temporary":
                self.children.remove(c)
            return stops, []
        return self.restart_loop(c, stops)

    def restart_loop(self, c: MChild, stops: list) -> tuple[list, list]:
        """Restart for `c`; a failed start marks that child restarting and retries (each
        attempt counts against the intensity) until all start or the supervisor gives up.
        `starts` holds ("start"|"fail", id) in attempt order."""
        starts: list = []
        started_fresh: set = set()
        while True:
            _, _, failed = self.restart_once(c, stops, starts, started_fresh)
            if failed is None or not self.alive:
                return stops, starts
            STATS["failed_restart_retry"] += 1
            c = failed

    def restart_once(self, c: MChild, stops: list, starts: list, fresh: set):
        self.restarts.append(self.now)
        self.restarts = [t for t in self.restarts if self.now - t <= self.period]
        if len(self.restarts) > self.intensity:
            STATS["intensity_exceeded"] += 1
            self.alive = False
            for o in reversed(self.children):
                if o.running:
                    if o.id not in fresh:
                        stops.append(o.id)
                    o.running = False
            return stops, starts, None
        if self.strategy == "one_for_one":
            group = [c]
        else:
            i = self.children.index(c)
            group = list(self.children if self.strategy == "one_for_all" else self.children[i:])
            for o in reversed(group):
                if o is not c and o.running:
                    if o.id not in fresh:
                        stops.append(o.id)
                    o.running = False
            for o in group:
                if o.restart == "temporary" and o is not c:
                    STATS["temporary_bystander_removed"] += 1
                    self.children.remove(o)
            group = [o for o in group if o in self.children]
            if len(group) > 1:
                STATS["group_restart"] += 1
            if any(not o.running and o is not c and o.id not in stops for o in group):
                STATS["group_restarts_stopped_child"] += 1
        STATS["restart"] += 1
        for o in group:
            if self.fails.get(o.id, 0) > 0:
                self.fails[o.id] -= 1
                starts.append(("fail", o.id))  # what started before runs until the retry
                return stops, starts, o
            o.running = True
            fresh.add(o.id)
            starts.append(("start", o.id))
        return stops, starts, None


class Divergence(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise Divergence(msg)


@dataclass
class Obs:
    victims: dict  # id -> Down reason
    downs: list  # (id, reason) of others, in order
    starts: list  # (id, pid) in order
    infos: list | None
    counts: Any
    sup_exit: Any  # reason or None


EXIT_HOWS = ["normal", "shutdown", ("shutdown", "x"), "died", ("died", 1), "killed_reason", "kill"]


class Case:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = self.rng = random.Random(seed)
        n = rng.randint(2, 5)
        self.next_id = 0
        self.specs: dict[Any, MChild] = {}
        children = [self.new_child() for _ in range(n)]
        self.model = Model(
            rng.choice(["one_for_one", "one_for_all", "rest_for_one"]),
            rng.choice([0, 1, 2, 3, 4, 8, 30]),
            rng.choice([1, 2, 5, 10]),
            children,
        )
        self.nevents = rng.randint(1, 30)
        self.trace: list[str] = []

    def new_child(self, cid: Any = None) -> MChild:
        rng = self.rng
        if cid is None:
            cid = f"c{self.next_id}"
            self.next_id += 1
        return MChild(
            cid,
            rng.choice(["permanent", "transient", "temporary"]),
            rng.choice(["brutal_kill", 0, 0.01, 1.0]),
            rng.random() < 0.15,
        )

    def gen_event(self) -> tuple:
        rng = self.rng
        m = self.model
        running = [c for c in m.children if c.running]
        ids = [c.id for c in m.children]
        r = rng.random()
        if r < 0.40 and running:
            return ("exit", rng.choice(running).id, rng.choice(EXIT_HOWS))
        if r < 0.47 and len(running) >= 2:
            a, b = rng.sample(running, 2)
            return ("double_exit", a.id, rng.choice(EXIT_HOWS), b.id, rng.choice(EXIT_HOWS))
        if r < 0.57:
            return (
                "advance",
                rng.choice([0.5, 1, m.period / 2, m.period, m.period + 0.5, 3 * m.period]),
            )
        any_id = lambda: rng.choice([*ids, "nope"]) if ids else "nope"  # noqa: E731
        if r < 0.68:
            return ("terminate_child", any_id())
        if r < 0.70 and running:
            return ("terminate_child_pid", rng.choice(running).id)
        if r < 0.80:
            return ("restart_child", any_id())
        if r < 0.87:
            return ("delete_child", any_id())
        gone = [i for i in self.specs if i not in ids]
        x = rng.random()
        if x < 0.2 and ids:
            return ("start_child_dup", rng.choice(ids))
        if x < 0.45 and gone:
            return ("start_child", self.new_child(rng.choice(gone)))
        return ("start_child", self.new_child())

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        m = self.model
        otp.process_flag("trap_exit", True)
        self.clock = FakeClock()
        LOG.clear()
        self.trace.append(
            f"start_link strategy={m.strategy} intensity={m.intensity} period={m.period} children="
            + ", ".join(
                f"{c.id}:{c.restart}/{c.shutdown}{'/slow' if c.slow else ''}" for c in m.children
            )
        )
        for c in m.children:
            self.specs[c.id] = c
        self.sup = await Supervisor.start_link(
            [c.spec() for c in m.children],
            strategy=m.strategy,
            intensity=m.intensity,
            period=m.period,
            clock=self.clock,
        )
        self.supref = otp.monitor(self.sup)
        self.pids: dict[Any, otp.Pid] = {}
        self.refs: dict[Any, tuple[Any, otp.Pid]] = {}  # monitor ref -> (id, pid)
        ids0 = [c.id for c in m.children]
        await self.settle(([], [("start", i) for i in ids0]))
        for _ in range(self.nevents):
            if not self.model.alive:
                break
            await self.apply(self.gen_event())
        m = self.model
        if m.alive:
            how = self.rng.choice(["exit_signal", "gen_server_stop"])
            self.trace.append(f"stop supervisor ({how})")
            LOG.clear()
            stops = [c.id for c in reversed(m.children) if c.running]
            for c in m.children:
                c.running = False
            m.alive = False
            STATS["sup_stopped_by_test"] += 1
            if how == "exit_signal":
                otp.exit(self.sup, otp.SHUTDOWN)
            else:
                await GenServer.stop(self.sup, otp.SHUTDOWN)
            await self.settle((stops, []))
        for _ in range(100):
            if otp.processes() == [otp.self()]:
                break
            await asyncio.sleep(0)
        check(otp.processes() == [otp.self()], f"leaked processes {otp.processes()}")
        try:
            stray = await otp.receive(timeout=0)
            check(False, f"stray message {stray!r}")
        except TimeoutError:
            pass
        STATS["cases"] += 1

    def ref_of(self, cid: Any) -> Any:
        pid = self.pids[cid]
        return next(r for r, (i, p) in self.refs.items() if p == pid)

    async def apply(self, ev: tuple) -> None:
        m = self.model
        kind = ev[0]
        STATS["ev_" + kind] += 1
        self.trace.append(
            repr(
                ev
                if kind != "start_child"
                else (
                    "start_child",
                    ev[1].id,
                    ev[1].restart,
                    ev[1].shutdown,
                    "slow" if ev[1].slow else "",
                )
            )
        )
        LOG.clear()
        FAILS.clear()
        if kind == "exit":
            _, cid, how = ev
            STATS[f"exit_{m.find(cid).restart}_{how}"] += 1
            if self.rng.random() < 0.3:
                cands = [c for c in m.children if c.restart != "temporary"]
                for c in self.rng.sample(cands, min(len(cands), self.rng.randint(1, 2))):
                    FAILS[c.id] = m.fails[c.id] = self.rng.randint(1, 3)
                self.trace[-1] += f"  [failing starts {dict(FAILS)}]"
                STATS["fail_injected"] += 1
            reason = self.send_exit(cid, how)
            stops, starts = m.child_exit(m.find(cid), reason)
            try:
                await self.settle((stops, starts), victims={cid: reason})
            finally:
                FAILS.clear()
                m.fails.clear()
            return
        if kind == "double_exit":
            _, a, ha, b, hb = ev
            ra = self.send_exit(a, ha)
            rb = self.send_exit(b, hb)
            cands = []
            for order in ((a, ra, b, rb), (b, rb, a, ra)):
                mm = copy.deepcopy(m)
                stops, starts = mm.child_exit(mm.find(order[0]), order[1])
                second = mm.find(order[2])
                if mm.alive and second is not None and order[2] not in stops and second.running:
                    s2, st2 = mm.child_exit(second, order[3])
                    fresh = {i for _, i in starts}
                    stops += [x for x in s2 if x not in fresh]  # fresh pids are not monitored yet
                    starts += st2
                cands.append((mm, (stops, starts)))
            await self.settle(None, victims={a: ra, b: rb}, cands=cands)
            return
        if kind == "advance":
            self.clock.now += ev[1]
            m.now += ev[1]
            await self.settle(([], []))
            return
        if kind == "start_child_dup":
            c = m.find(ev[1])
            try:
                res = await Supervisor.start_child(self.sup, c.spec())
                check(False, f"start_child dup returned {res!r}")
            except SupervisorError as e:
                if c.running:
                    check(
                        isinstance(e.reason, otp.AlreadyStartedError)
                        and e.reason.pid == self.pids[c.id],
                        f"dup running: {e.reason!r}",
                    )
                else:
                    check(e.reason == "already_present", f"dup stopped: {e.reason!r}")
            await self.settle(([], []))
            return
        if kind == "start_child":
            c = ev[1]
            res = await Supervisor.start_child(self.sup, c.spec())
            m.children.append(c)
            self.specs[c.id] = c
            await self.settle(([], [("start", c.id)]), returned=(c.id, res))
            return
        if kind == "terminate_child_pid":
            try:
                await Supervisor.terminate_child(self.sup, self.pids[ev[1]])
                err = None
            except SupervisorError as e:
                err = e.reason
            check(err == "not_found", f"terminate_child(pid) on static sup: {err!r}")
            await self.settle(([], []))
            return
        cid = ev[1]
        c = m.find(cid)
        fn = {
            "terminate_child": Supervisor.terminate_child,
            "restart_child": Supervisor.restart_child,
            "delete_child": Supervisor.delete_child,
        }[kind]
        try:
            res = await fn(self.sup, cid)
            err = None
        except SupervisorError as e:
            res, err = None, e.reason
        stops: list = []
        starts: list = []
        if c is None:
            check(err == "not_found", f"{kind} unknown: {err!r}")
        elif kind == "terminate_child":
            check(err is None and res is None, f"terminate_child: {err!r} {res!r}")
            if c.running:
                stops = [cid]
                c.running = False
            if c.restart == "temporary":
                m.children.remove(c)
        elif kind == "restart_child":
            if c.running:
                check(err == "running", f"restart_child running: {err!r}")
            else:
                check(err is None and type(res) is otp.Pid, f"restart_child: {err!r} {res!r}")
                c.running = True
                starts = [("start", cid)]
        elif kind == "delete_child":
            if c.running:
                check(err == "running", f"delete_child running: {err!r}")
            else:
                check(err is None, f"delete_child: {err!r}")
                m.children.remove(c)
        await self.settle((stops, starts), returned=(cid, res) if starts else None)

    def send_exit(self, cid: Any, how: Any) -> Any:
        pid = self.pids[cid]
        if how == "kill":
            otp.exit(pid, otp.KILL)
            return otp.KILLED
        reason = "killed" if how == "killed_reason" else how
        otp.send(pid, ("exit", reason))
        return reason

    # -- observing and comparing ------------------------------------------------------

    async def observe(self, victims: dict, alive: bool) -> Obs:
        got_victims = {}
        for cid in victims:
            ref = self.ref_of(cid)
            down = await otp.receive(
                lambda x, ref=ref: type(x) is otp.Down and x.ref is ref, timeout=5
            )
            got_victims[cid] = down.reason
            del self.refs[ref]
        infos = counts = sup_exit = None
        try:
            for _ in range(10000):
                infos = await Supervisor.which_children(self.sup)
                if not any(i.pid == "restarting" for i in infos):
                    break
                STATS["polled_while_restarting"] += 1
            counts = await Supervisor.count_children(self.sup)
        except otp.OTPError:
            infos = counts = None
        if infos is None or not alive:
            try:
                msg = await otp.receive(
                    lambda x: type(x) is otp.Exit and x.pid == self.sup, timeout=5
                )
                sup_exit = msg.reason
                await otp.receive(lambda x: type(x) is otp.Down and x.ref is self.supref, timeout=5)
            except TimeoutError:
                sup_exit = "<no exit within 5 s>"
        downs = []
        while True:
            try:
                d = await otp.receive(
                    lambda x: type(x) is otp.Down and x.ref in self.refs, timeout=0
                )
            except TimeoutError:
                break
            cid, _ = self.refs.pop(d.ref)
            downs.append((cid, d.reason))
        starts = [(e[0], e[1], e[2]) for e in LOG if e[0] in ("start", "fail")]
        return Obs(got_victims, downs, starts, infos, counts, sup_exit)

    def compare(
        self, m: Model, exp: tuple, obs: Obs, victims: dict, returned: Any, exact_victims: bool
    ) -> None:
        stops, starts = exp
        changed = {i for k, i in starts if k == "start"}
        if exact_victims:
            for cid, reason in victims.items():
                check(
                    obs.victims[cid] == reason,
                    f"victim {cid} Down reason {obs.victims[cid]!r} != {reason!r}",
                )
        if m.alive:
            check(
                obs.infos is not None and obs.sup_exit is None,
                f"supervisor gone (exit {obs.sup_exit!r}); model says alive",
            )
        else:
            check(
                obs.sup_exit == otp.SHUTDOWN,
                f"supervisor exit {obs.sup_exit!r}; model says exit shutdown",
            )
        exp_stops = [s for s in stops if s not in victims]
        got_stops = [d[0] for d in obs.downs]
        check(got_stops == exp_stops, f"stop order {got_stops} != model {exp_stops}")
        for cid, reason in obs.downs:
            c = self.specs[cid]
            sd = c.shutdown
            if sd == "brutal_kill" or (c.slow and sd in (0, 0.01)):
                ok = reason == otp.KILLED
            elif sd == 0:
                ok = reason in (otp.KILLED, otp.SHUTDOWN)
            else:
                ok = reason == otp.SHUTDOWN
            check(ok, f"{cid} (shutdown={sd}, slow={c.slow}) stopped with {reason!r}")
        got_starts = [(s[0], s[1]) for s in obs.starts]
        check(got_starts == starts, f"start order {got_starts} != model {starts}")
        if obs.infos is None:
            return
        exp_ids = [c.id for c in reversed(m.children)]
        check(
            [i.id for i in obs.infos] == exp_ids,
            f"which_children ids {[i.id for i in obs.infos]} != model {exp_ids}",
        )
        new_pids = {s[2] for s in obs.starts}
        for info in obs.infos:
            c = m.find(info.id)
            if not c.running:
                check(info.pid is None, f"{c.id} should be stopped, pid={info.pid!r}")
                continue
            check(
                type(info.pid) is otp.Pid and otp.is_alive(info.pid),
                f"{c.id} should run: {info.pid!r}",
            )
            old = self.pids.get(c.id)
            if c.id in changed:
                check(
                    info.pid != old and info.pid in new_pids,
                    f"{c.id} should have a new pid (old {old!r}, now {info.pid!r})",
                )
            else:
                check(info.pid == old, f"{c.id} should keep pid {old!r}, has {info.pid!r}")
        if returned is not None:
            rid, rpid = returned
            row = next(i for i in obs.infos if i.id == rid)
            check(row.pid == rpid, f"returned pid {rpid!r} != listed {row.pid!r}")
        exp_counts = (len(m.children), sum(c.running for c in m.children), 0, len(m.children))
        c = obs.counts
        got = (c.specs, c.active, c.supervisors, c.workers)
        check(got == exp_counts, f"count_children {got} != model {exp_counts}")

    def commit(self, obs: Obs) -> None:
        if obs.infos is None:
            self.pids.clear()
            return
        for info in obs.infos:
            if type(info.pid) is otp.Pid:
                if self.pids.get(info.id) != info.pid:
                    self.pids[info.id] = info.pid
                    self.refs[otp.monitor(info.pid)] = (info.id, info.pid)
            else:
                self.pids.pop(info.id, None)
        listed = {i.id for i in obs.infos}
        for cid in list(self.pids):
            if cid not in listed:
                del self.pids[cid]

    async def settle(self, exp, victims=None, returned=None, cands=None) -> None:
        victims = victims or {}
        m = self.model
        alive_hint = m.alive if cands is None else any(mm.alive for mm, _ in cands)
        obs = await self.observe(victims, alive_hint)
        if cands is None:
            self.compare(m, exp, obs, victims, returned, exact_victims=True)
        else:
            errors = []
            for i, (mm, e) in enumerate(cands):
                try:
                    self.compare(mm, e, obs, victims, returned, exact_victims=False)
                except Divergence as d:
                    errors.append(f"order {i}: {d}")
                    continue
                self.model = mm
                STATS[f"double_exit_order{i}"] += 1
                break
            else:
                check(False, "no exit order matches: " + "; ".join(errors))
        self.commit(obs)
        if obs.sup_exit is not None:
            self.trace[-1] += f"  [supervisor exited {obs.sup_exit!r}]"


async def run_batch(seeds: list[int], failures: list) -> None:
    for seed in seeds:
        case = Case(seed)
        try:
            await case.run()
        except Exception as e:
            failures.append((seed, f"{type(e).__name__}: {e}", case.trace, traceback.format_exc()))
            for p in otp.processes():
                if p != otp.self():
                    otp.exit(p, otp.KILL)
            return  # restart a fresh node for the rest of the batch
