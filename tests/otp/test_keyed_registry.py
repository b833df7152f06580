"""otp.Registry (Elixir's Registry) and `via` names, after Elixir's registry tests."""

from __future__ import annotations

import random
from typing import Any

import pytest

import otp
from behaviours import DynamicSupervisor, GenServer, NoReply, Reply
from otp.testing import assert_receive


async def holder(registry: str, keys: list[Any], report_to: otp.Pid) -> None:
    """Registers itself under `keys`, says so, then waits for "stop"."""
    for key in keys:
        otp.Registry.register(registry, key, f"value of {key}")
    otp.send(report_to, ("registered", otp.self()))
    await otp.receive(lambda m: m == "stop")


async def started_holder(registry: str, keys: list[Any]) -> otp.Pid:
    pid = otp.spawn(holder, registry, keys, otp.self())
    await assert_receive(("registered", pid))
    return pid


async def stopped(pid: otp.Pid) -> None:
    ref = otp.monitor(pid)
    otp.send(pid, "stop")
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def end(registry: Any) -> None:
    otp.unlink(registry)
    ref = otp.monitor(registry)
    otp.exit(registry, otp.SHUTDOWN)
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def test_unique_keys(node: object) -> None:
    reg = await otp.Registry.start_link("reg")
    me = otp.self()
    otp.Registry.register("reg", "me", 1)
    with pytest.raises(otp.AlreadyRegisteredError) as taken:
        otp.Registry.register("reg", "me", 2)
    assert taken.value.pid == me
    other = await started_holder("reg", ["a", "b"])
    assert otp.Registry.lookup("reg", "a") == [(other, "value of a")]
    assert sorted(otp.Registry.keys("reg", other)) == ["a", "b"]
    assert otp.Registry.count("reg") == 3
    assert otp.Registry.match("reg", "me", lambda v: v == 1) == [(me, 1)]
    assert sorted(k for k, p, _ in otp.Registry.select("reg", lambda k, p, v: p == other)) == [
        "a",
        "b",
    ]
    assert otp.Registry.update_value("reg", "me", lambda v: v + 1) == 2
    await stopped(other)  # its entries go with it
    assert otp.Registry.lookup("reg", "a") == [] and otp.Registry.count("reg") == 1
    again = await started_holder("reg", ["a"])  # and the key is free at once
    otp.Registry.unregister("reg", "me")
    assert otp.Registry.lookup("reg", "me") == []
    await stopped(again)
    await end(reg)


async def test_duplicate_keys_and_dispatch(node: object) -> None:
    reg = await otp.Registry.start_link("topics", keys="duplicate")
    subscribers = [await started_holder("topics", ["news"]) for _ in range(3)]
    otp.Registry.register("topics", "news", "me once")
    otp.Registry.register("topics", "news", "me twice")
    assert len(otp.Registry.lookup("topics", "news")) == 5
    reached: list[otp.Pid] = []
    otp.Registry.dispatch("topics", "news", lambda entries: reached.extend(p for p, _ in entries))
    assert reached.count(otp.self()) == 2 and set(subscribers) <= set(reached)
    called: list[Any] = []
    otp.Registry.dispatch("topics", "sports", called.append)  # nobody: fn is not called
    assert called == []
    for pid in subscribers:
        await stopped(pid)
    assert [v for _, v in otp.Registry.lookup("topics", "news")] == ["me once", "me twice"]
    await end(reg)


class Room(GenServer[Any]):
    def init(self, topic: str) -> str:
        return topic

    def handle_call(self, request: Any, from_: Any, state: str) -> Any:
        return Reply(state, state)

    def handle_cast(self, msg: Any, state: str) -> Any:
        return NoReply(state)


async def test_via_names_start_call_cast_send_and_whereis(node: object) -> None:
    reg = await otp.Registry.start_link("rooms")
    name = ("via", "rooms", "lobby")
    pid = await Room.start("hello", name=name)
    assert pid is not None and otp.whereis(name) == pid
    assert otp.Registry.lookup("rooms", "lobby") == [(pid, None)]
    assert await GenServer.call(name, "topic") == "hello"
    GenServer.cast(name, "ignored")  # a cast reaches it too
    with pytest.raises(otp.AlreadyStartedError) as info:
        await Room.start("again", name=name)
    assert info.value.pid == pid
    await GenServer.stop(name)
    assert otp.whereis(name) is None
    with pytest.raises(otp.CallError) as gone:
        await GenServer.call(name, "topic")
    assert gone.value.reason == otp.NOPROC
    with pytest.raises(otp.NotRegisteredError):
        otp.send(name, "hello")
    await end(reg)


async def test_a_server_per_key_under_a_dynamic_supervisor(node: object) -> None:
    reg = await otp.Registry.start_link("users")
    pool: Any = await DynamicSupervisor.start_link()
    for user in ("ann", "bob"):
        await DynamicSupervisor.start_child(
            pool, Room.child_spec(f"hi {user}", name=("via", "users", user), restart="transient")
        )
    assert await GenServer.call(("via", "users", "bob"), "topic") == "hi bob"
    assert sorted(k for k, _, _ in otp.Registry.select("users", lambda k, p, v: True)) == [
        "ann",
        "bob",
    ]
    otp.unlink(pool)
    await GenServer.stop(pool)
    await end(reg)


async def test_entries_follow_a_model_through_random_registers_and_crashes(node: object) -> None:
    """The registry against a dict, over seeded random register / unregister / crash."""
    reg = await otp.Registry.start_link("model")
    rng = random.Random(7)
    keys = ["k0", "k1", "k2", "k3"]
    model: dict[str, otp.Pid] = {}
    alive: list[otp.Pid] = []
    for _ in range(200):
        step = rng.choice(["register", "unregister", "crash"])
        if step == "register" or not alive:
            key = rng.choice(keys)
            if key in model:
                continue
            model[key] = await started_holder("model", [key])
            alive.append(model[key])
        elif step == "unregister":
            key = rng.choice(keys)
            if key in model:  # (only its own process can unregister it: make it stop)
                await stopped(model.pop(key))
                alive = [p for p in alive if p in model.values()]
        else:
            victim = rng.choice(alive)
            ref = otp.monitor(victim)
            otp.exit(victim, otp.KILL)
            await assert_receive(lambda m, r=ref: type(m) is otp.Down and m.ref is r)
            model = {k: p for k, p in model.items() if p != victim}
            alive.remove(victim)
        for key in keys:
            expected = [(model[key], f"value of {key}")] if key in model else []
            assert otp.Registry.lookup("model", key) == expected
            assert otp.whereis(("via", "model", key)) == model.get(key)
    for pid in alive:
        await stopped(pid)
    await end(reg)


async def test_bad_registry_input_is_refused_by_name(node: object) -> None:
    with pytest.raises(otp.registry.RegistryError, match="no registry 'nope' is running"):
        otp.Registry.register("nope", "k")
    with pytest.raises(otp.registry.RegistryError, match="'unique' or 'duplicate'"):
        await otp.Registry.start_link("x", keys="many")  # type: ignore[arg-type]
    assert otp.whereis(("via", "nope", "k")) is None
    with pytest.raises(otp.StartError):
        await Room.start("t", name=("via", "nope", "k"))
