"""otp.pg: process groups, after Erlang's pg_SUITE."""

from __future__ import annotations

from typing import Any

import pytest

import otp
from otp.testing import assert_receive, refute_receive


async def idle() -> None:
    await otp.receive(lambda m: m == "stop")


async def stopped(pid: otp.Pid) -> None:
    ref = otp.monitor(pid)
    otp.send(pid, "stop")
    await assert_receive(lambda m: type(m) is otp.Down and m.ref is ref)


async def test_join_leave_and_members_read_without_waiting(node: object) -> None:
    a, b = otp.spawn(idle), otp.spawn(idle)
    otp.pg.join("g", a)
    otp.pg.join("g", [a, b])  # a joins twice: it is a member twice
    assert sorted(map(repr, otp.pg.get_members("g"))) == sorted(map(repr, [a, a, b]))
    assert otp.pg.get_local_members("g") == otp.pg.get_members("g")
    assert otp.pg.which_groups() == ["g"]
    assert otp.pg.leave("g", a) is True
    assert otp.pg.get_members("g").count(a) == 1
    assert otp.pg.leave("g", [a, b]) is True and otp.pg.get_members("g") == []
    assert otp.pg.leave("g", a) is False and otp.pg.which_groups() == []
    assert otp.pg.get_members("nobody") == []
    for pid in (a, b):
        await stopped(pid)


async def test_a_member_that_ends_leaves_every_group_and_watchers_are_told(node: object) -> None:
    member = otp.spawn(idle)
    otp.pg.join("x", member)
    otp.pg.join("y", [member, member])
    ref, members = otp.pg.monitor("y")
    assert members == [member, member]
    scope_ref, groups = otp.pg.monitor_scope()
    assert groups == {"x": [member], "y": [member, member]}
    await stopped(member)
    assert await assert_receive((ref, "leave", "y", [member, member])) == (
        ref,
        "leave",
        "y",
        [member, member],
    )
    events = {(await assert_receive(lambda m, r=scope_ref: m[0] == r))[2] for _ in range(2)}
    assert events == {"x", "y"}
    assert otp.pg.which_groups() == []
    newcomer = otp.spawn(idle)
    otp.pg.join("y", newcomer)
    await assert_receive((ref, "join", "y", [newcomer]))
    assert otp.pg.demonitor(ref) and otp.pg.demonitor(scope_ref)
    otp.pg.leave("y", newcomer)
    await refute_receive(lambda m: type(m) is tuple and m[:1] == (ref,), 0.01)  # demonitored
    await stopped(newcomer)


async def test_scopes_are_apart_and_bad_input_is_refused_by_name(node: object) -> None:
    chat: Any = await otp.pg.start_link("chat")
    member = otp.spawn(idle)
    otp.pg.join("room", member, scope="chat")
    assert otp.pg.get_members("room") == [] and otp.pg.get_members("room", "chat") == [member]
    with pytest.raises(otp.pg.PgError, match="no pg scope 'other' is running"):
        otp.pg.join("room", member, scope="other")
    with pytest.raises(otp.pg.PgError, match="already started"):
        await otp.pg.start_link("chat")
    with pytest.raises(otp.pg.PgError, match="takes pids"):
        otp.pg.join("room", "not a pid", scope="chat")  # type: ignore[arg-type]
    await stopped(member)
    with pytest.raises(otp.pg.PgError, match="not a live process"):
        otp.pg.join("room", member, scope="chat")
    otp.unlink(chat)
    otp.exit(chat, otp.SHUTDOWN)
