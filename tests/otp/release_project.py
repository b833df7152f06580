"""A small project, in three versions, for the release tests: a key-value store under a
supervisor, and a client that calls and casts it all the time and counts what went wrong.

    1.0.0  the store's state is a dict of values
    2.0.0  the state becomes {"data": ..., "puts": n} through code_change; env changes
    3.0.0  the store crashes on every call (an install to roll back)
    4.0.0  2.0.0 with a new application that fails to start

`write(root, vsn)` writes the version's sources over the project at `root`.
"""

from __future__ import annotations

from pathlib import Path

_SERVER = {
    "1.0.0": """
from behaviours import GenServer, NoReply, Reply


class Store(GenServer):
    vsn = "1"

    def init(self, arg):
        return {"values": {}, "next": 0, "disorder": 0, "casts": 0}

    def handle_call(self, request, from_, state):
        if request == "version":
            return Reply("1", state)
        if request == "stats":
            return Reply(state, state)
        return Reply(state["values"].get(request[1]), state)

    def handle_cast(self, msg, state):
        _, seq, key, value = msg
        disorder = state["disorder"] + (seq != state["next"])
        values = {**state["values"], key: value}
        return NoReply({**state, "values": values, "next": seq + 1, "disorder": disorder,
                        "casts": state["casts"] + 1})
""",
    "2.0.0": """
from behaviours import GenServer, NoReply, Reply


class Store(GenServer):
    vsn = "2"

    def init(self, arg):
        return {"data": {}, "puts": 0, "next": 0, "disorder": 0, "casts": 0}

    def handle_call(self, request, from_, state):
        if request == "version":
            return Reply("2", state)
        if request == "stats":
            return Reply(state, state)
        return Reply(state["data"].get(request[1]), state)

    def handle_cast(self, msg, state):
        _, seq, key, value = msg
        disorder = state["disorder"] + (seq != state["next"])
        data = {**state["data"], key: value}
        return NoReply({**state, "data": data, "puts": state["puts"] + 1, "next": seq + 1,
                        "disorder": disorder, "casts": state["casts"] + 1})

    def code_change(self, old_vsn, state, extra):
        if isinstance(old_vsn, tuple):  # ("down", "1")
            rest = {k: v for k, v in state.items() if k not in ("data", "puts")}
            return {**rest, "values": state["data"]}
        rest = {k: v for k, v in state.items() if k != "values"}
        return {**rest, "data": state["values"], "puts": len(state["values"])}
""",
}
_SERVER["3.0.0"] = (
    _SERVER["2.0.0"][: _SERVER["2.0.0"].index("    def code_change")]
    .replace('vsn = "2"', 'vsn = "3"')
    .replace(
        '        if request == "version":\n            return Reply("2", state)',
        '        raise RuntimeError("version 3 cannot answer")',
    )
)

_CLIENT = '''
import logging

import otp
from behaviours import GenServer, NoReply

log = logging.getLogger("kv.client")


class Client(GenServer):
    """Calls and casts the store, one of each per tick; counts failures."""

    def init(self, arg):
        otp.process_flag("trap_exit", True)
        otp.send(otp.self(), "tick")
        return {"seq": 0, "calls": 0, "failed": 0, "wrong": 0, "version": None}

    async def handle_info(self, msg, state):
        if msg != "tick":
            return NoReply(state)
        seq = state["seq"]
        GenServer.cast("store", ("put", seq, seq % 50, seq))
        version = state["version"]
        try:
            got = await GenServer.call("store", ("get", seq % 50), timeout=10.0)
            wrong = state["wrong"] + (got != seq)
            failed = state["failed"]
            if seq % 20 == 0:
                now = await GenServer.call("store", "version", timeout=10.0)
                if now != version:
                    again = "again " if version == "failing" else ""
                    log.warning("kv store answers %sas version %s", again, now)
                    version = now
        except otp.CallError:
            wrong, failed, version = state["wrong"], state["failed"] + 1, "failing"
        otp.send_after(0.002, otp.self(), "tick")
        return NoReply({"seq": seq + 1, "calls": state["calls"] + 1, "failed": failed,
                        "wrong": wrong, "version": version})

    async def terminate(self, reason, state):
        try:
            stats = await GenServer.call("store", "stats", timeout=5.0)
        except otp.CallError as exc:
            stats = {"error": repr(exc)}
        log.warning("kv summary: calls=%d failed=%d wrong=%d sent=%d casts=%d disorder=%d",
                    state["calls"], state["failed"], state["wrong"], state["seq"],
                    stats.get("casts", -1), stats.get("disorder", -1))
'''

_APP = """
import logging

import otp
from behaviours import Supervisor

from .client import Client
from .server import Store

log = logging.getLogger("kv.app")


def config_change(changed, new, removed):
    log.warning("kv config_change changed=%r new=%r removed=%r", changed, new, removed)


class KvSup(Supervisor):
    def init(self, arg):
        return Supervisor.flags(strategy="one_for_one", intensity=50, period=5.0), [
            Store.child_spec(None, name="store", id="store"),
            Client.child_spec(None, id="client"),
        ]


app = otp.Application(
    name="kv", vsn="{vsn}", start=KvSup.start_link, env={env}, config_change=config_change
)
"""

_ENV = {"1.0.0": '{"greeting": "hello"}', "2.0.0": '{"greeting": "hi", "size": 3}'}
_ENV["3.0.0"] = _ENV["4.0.0"] = _ENV["2.0.0"]
_SERVER["4.0.0"] = _SERVER["2.0.0"].replace('vsn = "2"', 'vsn = "4"')

_BROKEN = """

async def fail(arg):
    raise RuntimeError("the new application cannot start")


broken = otp.Application(name="broken", vsn="1", start=fail)
"""

_REL = """
import otp

from kv.app import {apps}

release = otp.Release("kv", "{vsn}", applications=[{apps}])
"""


def write(root: Path, vsn: str) -> None:
    """Write version `vsn` of the project into `root`."""
    package = root / "kv"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(_SERVER[vsn].lstrip())
    (package / "client.py").write_text(_CLIENT.lstrip())
    broken = vsn == "4.0.0"  # with an application that fails to start
    app = _APP.lstrip().replace("{vsn}", vsn).replace("{env}", _ENV[vsn])
    (package / "app.py").write_text(app + (_BROKEN if broken else ""))
    apps = "app, broken" if broken else "app"
    (root / "rel.py").write_text(_REL.lstrip().replace("{vsn}", vsn).replace("{apps}", apps))
