"""otp: the kernel of otp-framework — Erlang/OTP processes, signals, names and timers on uvloop.

import otp

async def main():
    pid = otp.spawn(echo)
    otp.send(pid, (otp.self(), "hello"))
    return await otp.receive(timeout=1.0)

async def echo():
    sender, text = await otp.receive()
    otp.send(sender, text)

assert otp.run(main) == "hello"
"""

from __future__ import annotations

from . import application as application
from . import bridge as bridge
from . import code as code
from . import gen as gen
from . import pg as pg
from . import release as release
from . import reports as reports
from . import sys as sys
from ._app import Application as Application
from ._info import ProcessInfo as ProcessInfo
from ._info import is_alive as is_alive
from ._info import process_info as process_info
from ._info import processes as processes
from ._mailbox import receive as receive
from ._mailbox import send as send
from ._node import make_ref as make_ref
from ._overload import Overload as Overload
from ._process import self as self
from ._registry import register as register
from ._registry import registered as registered
from ._registry import unregister as unregister
from ._registry import whereis as whereis
from ._runner import run as run
from ._signals import demonitor as demonitor
from ._signals import exit as exit
from ._signals import link as link
from ._signals import monitor as monitor
from ._signals import process_flag as process_flag
from ._signals import unlink as unlink
from ._spawn import spawn as spawn
from ._spawn import spawn_link as spawn_link
from ._spawn import spawn_monitor as spawn_monitor
from ._spawn import spawn_opt as spawn_opt
from ._timers import TimerRef as TimerRef
from ._timers import cancel_timer as cancel_timer
from ._timers import send_after as send_after
from ._values import IGNORE as IGNORE
from ._values import KILL as KILL
from ._values import KILLED as KILLED
from ._values import NOCONNECTION as NOCONNECTION
from ._values import NOPROC as NOPROC
from ._values import NORMAL as NORMAL
from ._values import SHUTDOWN as SHUTDOWN
from ._values import TIMEOUT as TIMEOUT
from ._values import Down as Down
from ._values import Exit as Exit
from ._values import Pid as Pid
from ._values import Ref as Ref
from ._values import is_abnormal as is_abnormal
from .dist import Atom as Atom
from .dist import monitor_node as monitor_node
from .dist import nodes as nodes
from .errors import AlreadyRegisteredError as AlreadyRegisteredError
from .errors import AlreadyStartedError as AlreadyStartedError
from .errors import CallError as CallError
from .errors import CallTimeout as CallTimeout
from .errors import ExitError as ExitError
from .errors import NoProcessError as NoProcessError
from .errors import NotRegisteredError as NotRegisteredError
from .errors import OTPError as OTPError
from .errors import StartError as StartError
from .registry import Registry as Registry
from .release import Release as Release

__all__ = [
    "IGNORE",
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "TIMEOUT",
    "AlreadyRegisteredError",
    "AlreadyStartedError",
    "Application",
    "Atom",
    "CallError",
    "CallTimeout",
    "Down",
    "Exit",
    "ExitError",
    "NoProcessError",
    "NotRegisteredError",
    "OTPError",
    "Overload",
    "Pid",
    "ProcessInfo",
    "Ref",
    "Registry",
    "Release",
    "StartError",
    "TimerRef",
    "application",
    "bridge",
    "cancel_timer",
    "code",
    "demonitor",
    "exit",
    "gen",
    "is_abnormal",
    "is_alive",
    "link",
    "make_ref",
    "monitor",
    "monitor_node",
    "nodes",
    "pg",
    "process_flag",
    "process_info",
    "processes",
    "receive",
    "register",
    "registered",
    "release",
    "reports",
    "run",
    "self",
    "send",
    "send_after",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "spawn_opt",
    "sys",
    "unlink",
    "unregister",
    "whereis",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type | type(run)) and _obj.__module__.startswith("otp._"):
        _obj.__module__ = "otp"
del _name, _obj
