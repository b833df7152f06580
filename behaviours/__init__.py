"""behaviours: GenServer, Supervisor, DynamicSupervisor and GenStatem, built on `otp`."""

from __future__ import annotations

import os as _os

from otp.reports import hide_frames as _hide_frames

from ._child_spec import ChildSpec as ChildSpec
from ._child_spec import InvalidChildSpec as InvalidChildSpec
from ._results import BadReturn as BadReturn
from ._results import Init as Init
from ._results import NoReply as NoReply
from ._results import Reply as Reply
from ._results import Stop as Stop
from ._results import Timeout as Timeout
from ._supervision import ChildCounts as ChildCounts
from ._supervision import ChildInfo as ChildInfo
from ._supervision import SupervisorError as SupervisorError
from ._supervision import SupervisorReport as SupervisorReport
from .agent import Agent as Agent
from .dynamic_supervisor import DynamicSupervisor as DynamicSupervisor
from .gen_server import CallbackNameWarning as CallbackNameWarning
from .gen_server import GenServer as GenServer
from .gen_server import RequestId as RequestId
from .gen_server import RequestIdCollection as RequestIdCollection
from .gen_server import ServerReport as ServerReport
from .gen_server import UnexpectedMessage as UnexpectedMessage
from .gen_statem import GenStatem as GenStatem
from .supervisor import Strategy as Strategy
from .supervisor import Supervisor as Supervisor
from .supervisor import SupFlags as SupFlags
from .task import Task as Task
from .task import TaskSupervisor as TaskSupervisor

__all__ = [
    "Agent",
    "BadReturn",
    "CallbackNameWarning",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "DynamicSupervisor",
    "GenServer",
    "GenStatem",
    "Init",
    "InvalidChildSpec",
    "NoReply",
    "Reply",
    "RequestId",
    "RequestIdCollection",
    "ServerReport",
    "Stop",
    "Strategy",
    "SupFlags",
    "Supervisor",
    "SupervisorError",
    "SupervisorReport",
    "Task",
    "TaskSupervisor",
    "Timeout",
    "UnexpectedMessage",
]

for _name in __all__:  # tracebacks and reprs show the public module, not the private one
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("behaviours._"):
        _obj.__module__ = "behaviours"
del _name, _obj

_hide_frames(_os.path.dirname(__file__))  # reports show the user's frames, not ours
