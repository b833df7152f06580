"""Child specifications: how a supervisor starts, restarts and stops one child."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ChildSpec", "ChildType", "Restart", "Shutdown"]

Restart = Literal["permanent", "transient", "temporary"]
ChildType = Literal["worker", "supervisor"]
Shutdown = float | Literal["brutal_kill"]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    `start` is a callable or a tuple `(fn, *args)`; `await fn(*args)` returns the child's Pid,
    or None when the child chose not to start (`otp.IGNORE`). `shutdown` is seconds to wait
    after `SHUTDOWN` before `KILL`, `"brutal_kill"`, or `math.inf`.
    """

    id: Any
    start: Callable[..., Any] | tuple[Any, ...]
    restart: Restart = "permanent"
    shutdown: Shutdown = 5.0
    type: ChildType = "worker"
    significant: bool = False
    modules: tuple[Any, ...] | Literal["dynamic"] = field(default=())

    def replace(self, **changes: Any) -> ChildSpec:
        """A copy with `changes` applied (Elixir's `Supervisor.child_spec/2` overrides)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(
                f"unknown child spec field(s) {sorted(unknown)}; the fields are {sorted(fields)}"
            )
        fields.update(changes)
        return ChildSpec(**fields)
