"""Configuration: TOML files and --set options override application env at load."""

from __future__ import annotations

from pathlib import Path

import pytest

import otp
from otp import _config, _node


def test_a_toml_file_gives_settings_per_application(tmp_path: Path) -> None:
    path = tmp_path / "sys.toml"
    path.write_text('[chat]\nport = 6000\nmotd = "hello"\n[store]\nsize = 3\n')
    settings: _config.Settings = {}
    _config.load_file(path, settings)
    assert settings == {
        "chat": {"port": (6000, str(path)), "motd": ("hello", str(path))},
        "store": {"size": (3, str(path))},
    }


def test_a_top_level_value_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "sys.toml"
    path.write_text("port = 6000\n")
    with pytest.raises(_config.ConfigError, match=r"port: expected a table \[port\]"):
        _config.load_file(path, {})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(_config.ConfigError, match=r"nope\.toml: cannot read"):
        _config.load_file(tmp_path / "nope.toml", {})


def test_set_values_are_read_as_toml_or_text() -> None:
    settings: _config.Settings = {}
    for option in ("chat.port=6000", "chat.motd=hello there", "chat.ratio=0.5", "chat.on=true"):
        _config.parse_set(option, settings)
    assert {k: v for k, (v, _) in settings["chat"].items()} == {
        "port": 6000,
        "motd": "hello there",
        "ratio": 0.5,
        "on": True,
    }


def test_a_value_of_the_wrong_type_names_source_key_and_type() -> None:
    with pytest.raises(_config.ConfigError) as info:
        _config.check("chat", {"port": 5555}, {"port": ("abc", "sys.toml")})
    assert str(info.value) == (
        "sys.toml: [chat] port: expected int (like the default 5555), got str 'abc'"
    )
    assert _config.check("chat", {"ratio": 1.0}, {"ratio": (2, "x")}) == {"ratio": 2}
    with pytest.raises(_config.ConfigError, match="expected bool"):
        _config.check("chat", {"on": True}, {"on": (1, "x")})


async def test_settings_override_env_when_the_application_is_loaded(node: object) -> None:
    _node.get().config.update({"cfgapp": {"port": (6000, "sys.toml"), "extra": (1, "sys.toml")}})
    otp.application.load(otp.Application(name="cfgapp", env={"port": 5555, "host": "h"}))
    assert otp.application.get_all_env("cfgapp") == {"port": 6000, "host": "h", "extra": 1}
    _node.get().config.update({"badapp": {"port": ("x", "--set badapp.port=x")}})
    with pytest.raises(_config.ConfigError, match=r"--set badapp\.port=x"):
        otp.application.load(otp.Application(name="badapp", env={"port": 1}))


async def test_new_configuration_takes_effect_when_the_application_is_loaded_again(
    node: object,
) -> None:
    """Case 143."""
    spec = otp.Application(name="reload", env={"port": 1})
    otp.application.load(spec)
    _node.get().config["reload"] = {"port": (2, "sys.toml")}
    assert otp.application.get_env("reload", "port") == 1
    otp.application.unload("reload")
    otp.application.load(spec)
    assert otp.application.get_env("reload", "port") == 2


def test_values_are_checked_against_the_default_all_the_way_down() -> None:
    defaults = {"hosts": ["a", "b"], "limits": {"rate": 1.5, "names": ["x"]}}
    with pytest.raises(_config.ConfigError) as info:
        _config.check("web", defaults, {"hosts": ([1, 2], "sys.toml")})
    assert str(info.value) == (
        "sys.toml: [web] hosts[0]: expected str (like the default 'a'), got int 1"
    )
    with pytest.raises(_config.ConfigError) as info:
        _config.check("web", defaults, {"limits": ({"rate": 2, "names": ["y", 3]}, "--set")})
    assert str(info.value) == (
        "--set: [web] limits.names[1]: expected str (like the default 'x'), got int 3"
    )
    ok = _config.check("web", defaults, {"limits": ({"rate": 2, "names": []}, "sys.toml")})
    assert ok == {"limits": {"rate": 2, "names": []}}


def test_a_key_the_application_does_not_declare_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="otp.application"):
        values = _config.check("chat", {"port": 1, "motd": ""}, {"prot": (6000, "sys.toml")})
    assert values == {"prot": 6000}
    assert caplog.messages == [
        "sys.toml: [chat] prot: application 'chat' declares no such key (did you mean 'port'?)"
    ]
