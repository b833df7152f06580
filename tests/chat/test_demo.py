"""`make demo`, shortened: a real node on release 1.0.0, 100 clients, a room killed while
lines wait in its mailbox, `otp release upgrade 2.0.0` under load; nothing dropped,
nothing lost, WHO answers after the upgrade, and nothing is left running."""

from __future__ import annotations

from apps.chat import demo


def test_the_demo_loses_nothing_through_a_room_kill_and_an_upgrade() -> None:
    settings = demo.Settings(
        clients=100,
        rooms=10,
        max_seconds=1.0,
        steady_seconds=0.5,
        heavy_seconds=0.0,
        chaos_seconds=3.0,
        kills=2,
        baseline=False,
        progress=False,
    )
    result = demo.run(settings)
    load, chaos = result["load"], result["chaos"]
    assert chaos["errors"] == [] and chaos["done"]
    assert chaos["upgrade"]["returncode"] == 0, chaos["upgrade"]["output"]
    assert "1.0.0 -> 2.0.0" in chaos["upgrade"]["output"]
    assert chaos["who_before"] == "ERR unknown command"  # 1.0.0 has no WHO
    assert chaos["who_after"] == "WHO room0 " + ",".join(sorted(f"u{i}" for i in range(0, 100, 10)))
    # the kills took work away from the rooms: lines that were waiting in their mailboxes
    assert len(chaos["kills"]) == 2 and sum(kill[1] for kill in chaos["kills"]) > 0
    assert load["rejoined"] == 2 * 10  # each kill: its room's 10 members told
    assert all(r < float("inf") for r in demo.recoveries(result))
    assert load["dropped"] == 0
    assert load["lost"] == 0 and load["said"] > 0
    assert load["duplicates"] == 0 and load["reordered"] == 0
    assert load["errors"] == 0, load["first_errors"]
    assert result["node_exit"] == 0 and result["stopped"] == 0
    assert result["left_running"] == []
    assert demo.verdict(result) == []
