"""behaviours: GenServer, Supervisor, DynamicSupervisor and GenStatem, built on `otp`."""

from __future__ import annotations

from ._child_spec import ChildSpec as ChildSpec
from ._results import BadReturn as BadReturn
from ._results import Init as Init
from ._results import NoReply as NoReply
from ._results import Reply as Reply
from ._results import Stop as Stop
from .gen_server import GenServer as GenServer
from .gen_server import RequestId as RequestId
from .gen_server import ServerReport as ServerReport
from .gen_server import UnexpectedMessage as UnexpectedMessage

__all__ = [
    "BadReturn",
    "ChildSpec",
    "GenServer",
    "Init",
    "NoReply",
    "Reply",
    "RequestId",
    "ServerReport",
    "Stop",
    "UnexpectedMessage",
]
