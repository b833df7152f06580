"""Values the runtime hands out: pids, refs, the runtime's messages and the standard reasons.

Pids and refs are immutable, hashable and printed the way Erlang prints them. A local pid
also carries a private pointer to its live process, so `send` needs no table lookup; the
pointer is cleared when the process ends, which is what makes a pid "dead".
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final, final

import msgspec

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "IGNORE",
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "TIMEOUT",
    "Down",
    "Exit",
    "Pid",
    "Ref",
    "is_abnormal",
]

NORMAL: Final = "normal"
SHUTDOWN: Final = "shutdown"
KILL: Final = "kill"
KILLED: Final = "killed"
NOPROC: Final = "noproc"
TIMEOUT: Final = "timeout"
NOCONNECTION: Final = "noconnection"


class _Ignore(enum.Enum):
    IGNORE = "ignore"

    def __repr__(self) -> str:
        return "otp.IGNORE"

    __str__ = __repr__


IGNORE: Final = _Ignore.IGNORE
"""What `init` returns to make its start return None (nothing started). A unique value, so
no state can be mistaken for it."""

LOCAL_NODE: Final = "nonode@nohost"


@final
class Pid:
    """A process identifier: `<0.42.0>` for a local process.

    Two pids are equal when they name the same process of the same node incarnation.
    The runtime makes them (`spawn`, `self`); a pid built by hand names no local process.

    Args:
        node: The node's name.
        id: The process number within the node.
        serial: Erlang's serial field (default 0).
        creation: The node incarnation (default 0).
    """

    __slots__ = ("_creation", "_id", "_node", "_proc", "_serial")

    _proc: Process | None

    def __init__(self, node: str, id: int, serial: int = 0, creation: int = 0) -> None:
        self._node = node
        self._id = id
        self._serial = serial
        self._creation = creation
        self._proc = None

    @property
    def node(self) -> str:
        """The name of the node the process runs on."""
        return self._node

    @property
    def id(self) -> int:
        """The process number within its node."""
        return self._id

    @property
    def serial(self) -> int:
        """Erlang's serial field of the pid (`<0.id.serial>`)."""
        return self._serial

    @property
    def creation(self) -> int:
        """The incarnation of the node that created this pid."""
        return self._creation

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Pid
            and self._id == other._id
            and self._serial == other._serial
            and self._creation == other._creation
            and self._node == other._node
        )

    def __hash__(self) -> int:
        return self._id

    def __repr__(self) -> str:
        """`<0.Id.Serial>` for a pid of this node, or of a node that was not distributed
        (also once it has stopped); `<node.Id.Serial>` for another node's."""
        from . import _node

        current = _node.current
        if self._node == LOCAL_NODE or (current is not None and self._node == current.name):
            return f"<0.{self._id}.{self._serial}>"
        return f"<{self._node}.{self._id}.{self._serial}>"

    def __copy__(self) -> Pid:
        return self  # a pid is a value, as in Erlang: its copy is the same pid

    def __deepcopy__(self, memo: dict[int, Any]) -> Pid:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt_pid, (self._node, self._id, self._serial, self._creation))


@final
class Ref:
    """A unique reference (`make_ref`, monitors, call tags), printed `#Ref<0.0.0.7>`.

    Args:
        node: The name of the node that made it.
        id: Its number (the tuple of its words for a ref of another node).
        creation: The node incarnation (default 0).
    """

    __slots__ = ("_creation", "_id", "_node")

    # `id` is an int for the refs this node makes; a ref of another node (otp.dist) keeps
    # the tuple of its words, so that it goes back out exactly as it came.
    def __init__(self, node: str, id: int | tuple[int, ...], creation: int = 0) -> None:
        self._node = node
        self._id = id
        self._creation = creation

    @property
    def node(self) -> str:
        """The name of the node that made the reference."""
        return self._node

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Ref
            and self._id == other._id
            and self._creation == other._creation
            and self._node == other._node
        )

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        if type(self._id) is tuple:  # another node's: its words, as Erlang prints them
            return f"#Ref<{self._node}.{'.'.join(map(str, reversed(self._id)))}>"
        return f"#Ref<0.0.{self._creation}.{self._id}>"

    def __copy__(self) -> Ref:
        return self  # a call's reply is recognised by its ref: a copy must stay it

    def __deepcopy__(self, memo: dict[int, Any]) -> Ref:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self._node, self._id, self._creation))


_node_module: Any = None


def _rebuilt_pid(node: str, id: int, serial: int, creation: int) -> Pid:
    """A pid rebuilt from its parts: the live pid of this node's process when it names
    one (so that messages reach it), else a pid of no local process."""
    global _node_module
    if _node_module is None:  # (imported here once: _node imports this module)
        from . import _node as _node_module

    here = _node_module.current
    if here is not None and node == here.name and creation == here.creation:
        proc = here.procs.get(id)
        if proc is not None and proc.pid._serial == serial:
            live: Pid = proc.pid
            return live
    return Pid(node, id, serial, creation)


class Exit(msgspec.Struct, frozen=True):
    """The message a process that traps exits receives for an exit signal.

    (Exit and Down are msgspec Structs, built in C: ~50 ns, against ~300-400 ns for a
    frozen dataclass; every end of a linked or monitored process makes one.)"""

    pid: Pid
    reason: Any


class Down(msgspec.Struct, frozen=True):
    """The message a monitor delivers when its target ends (or never existed).

    `pid` is the monitored process; for a monitor set on a name that was not registered it
    is the name (or `(name, node)`) as given, since there was no process.
    """

    ref: Ref
    pid: Pid | str | tuple[str, str]
    reason: Any


def is_abnormal(reason: object) -> bool:
    """True for reasons that are crashes: anything but `NORMAL`, `SHUTDOWN`, `("shutdown", x)`.

    The one predicate behind crash logging and transient restarts.

    Args:
        reason: An exit reason.

    Returns:
        True when `reason` is a crash.
    """
    if type(reason) is str:
        return reason != NORMAL and reason != SHUTDOWN
    if type(reason) is tuple and len(reason) == 2:
        head = reason[0]
        return not (type(head) is str and head == SHUTDOWN)
    return True
