"""What one crash prints: one report with the user's frames, then one supervisor line.

Run as a user would see it: a script with `logging.basicConfig`, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import logging
    import otp
    from behaviours import GenServer, Reply, Supervisor

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


    class KV(GenServer):
        def init(self, arg):
            return {"a": 1}

        def handle_call(self, request, from_, state):
            return Reply(state[request], state)


    async def lonely():
        raise ValueError("a plain process fails")


    async def main():
        sup = await Supervisor.start_link([KV.child_spec(None, name="kv")])
        ref = otp.monitor("kv")
        try:
            await GenServer.call("kv", "b")
        except otp.CallError:
            pass
        await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref)
        await Supervisor.which_children(sup)  # (it has handled the exit)
        pid, ref = otp.spawn_monitor(lonely)
        await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref)


    otp.run(main)
    """
)


def run(*, debug: bool = False) -> list[str]:
    env = {**os.environ, "OTP_DEBUG": "1" if debug else ""}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_a_crash_under_a_supervisor_is_one_report_and_one_line() -> None:
    lines = run()
    server = lines[: lines.index("KeyError: 'b'") + 1]
    assert (
        server
        == [
            "ERROR otp.gen_server: GenServer KV 'kv' terminating",
            server[1],  # ** Last message in: ('$gen_call', (<0.1.0>, ...), 'b')
            "** When state == {'a': 1}",
            "** Reason: KeyError('b')",
            "** Client: <0.1.0>",
            "Traceback (most recent call last):",
            '  File "<string>", line 14, in handle_call',
            *server[7:-1],  # the source line and its markers
            "KeyError: 'b'",
        ]
    )
    assert server[1].startswith("** Last message in: ('$gen_call'") and server[1].endswith("'b')")
    assert lines[len(server)] == (
        "ERROR otp.supervisor: SUPERVISOR REPORT supervisor=<0.2.0> context=child_terminated "
        "reason=KeyError('b') offender=KV"
    )
    assert len(server) <= 11 and not any("CRASH REPORT process <0.3.0>" in x for x in lines)


def test_a_plain_process_crash_shows_only_its_own_frames() -> None:
    lines = run()
    start = next(i for i, x in enumerate(lines) if "CRASH REPORT" in x)
    report = lines[start:]
    assert report[0] == (
        "ERROR otp.process: CRASH REPORT process <0.5.0> (__main__.lonely) exited with reason "
        "ValueError('a plain process fails')"
    )
    assert report[1:3] == [
        "Traceback (most recent call last):",
        '  File "<string>", line 18, in lonely',
    ]
    assert report[-1] == "ValueError: a plain process fails"
    assert not any("otp/" in x or "behaviours/" in x for x in report)


def test_otp_debug_shows_the_runtimes_frames_too() -> None:
    lines = run(debug=True)
    assert any("behaviours/gen_server.py" in x for x in lines)
    assert any("otp/_spawn.py" in x for x in lines)
