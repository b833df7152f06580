"""Child specifications: how a supervisor starts, restarts and stops one child.

A child in a supervisor's list may be a `ChildSpec`, a behaviour class (`cls.child_spec()`),
or `(cls, arg)` (`cls.child_spec(arg)`). `to_spec` turns any of them into a checked
`ChildSpec`, or raises `InvalidChildSpec` naming the field and echoing what was given.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

__all__ = ["ChildSpec", "ChildType", "InvalidChildSpec", "Restart", "Shutdown", "to_spec"]

Restart = Literal["permanent", "transient", "temporary"]
ChildType = Literal["worker", "supervisor"]
Shutdown = float | Literal["brutal_kill"]

RESTARTS: Final = ("permanent", "transient", "temporary")
TYPES: Final = ("worker", "supervisor")

FORMS: Final = """expected each child to be one of:
  * a GenServer or Supervisor subclass
  * (GenServer or Supervisor subclass, arg)
  * ChildSpec(id=..., start=...)"""


class InvalidChildSpec(ValueError):
    """A child spec that cannot be used; `.field` names what is wrong, `.value` is what was
    given.

    Args:
        message: What is expected.
        value: What was given (the message ends with `Got: <value>`).
        field: The spec field at fault (default None).
    """

    def __init__(self, message: str, value: Any, field: str | None = None) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{message}\nGot: {value!r}")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    `start` is a callable or a tuple `(fn, *args)`; `await fn(*args)` returns the child's Pid,
    or None when the child chose not to start (`otp.IGNORE`). `shutdown` is seconds to wait
    after `SHUTDOWN` before `KILL`, `"brutal_kill"`, or `math.inf`; left as None it is 5.0
    for a worker and `math.inf` for a supervisor, as in OTP. `modules` left empty is the
    start function's class (for `Cls.start_link`) or module, as OTP's `[M]`.

    Args:
        id: The child's id within its supervisor.
        start: A callable or `(fn, *args)`, awaited to start the child.
        restart: `"permanent"` (default), `"transient"` or `"temporary"`.
        shutdown: Seconds, `"brutal_kill"` or `math.inf` (default None: by `type`).
        type: `"worker"` (default) or `"supervisor"`.
        significant: Its exit may stop the supervisor, per `auto_shutdown` (default False).
        modules: The code the child runs, or `"dynamic"` (default: from `start`).
    """

    id: Any
    start: Callable[..., Any] | tuple[Any, ...]
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"
    significant: bool = False
    modules: tuple[Any, ...] | Literal["dynamic"] = ()

    def replace(self, **changes: Any) -> ChildSpec:
        """A copy with `changes` applied (Elixir's `Supervisor.child_spec/2` overrides).

        Args:
            **changes: New values of spec fields.

        Returns:
            The new `ChildSpec`.

        Raises:
            TypeError: A name that is not a spec field.
        """
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(
                f"unknown child spec field(s) {sorted(unknown)}; the fields are {sorted(names)}"
            )
        values = {name: getattr(self, name) for name in names}
        values.update(changes)
        return ChildSpec(**values)

    def start_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """`(fn, args)` of `start`.

        Returns:
            The start function and its arguments.
        """
        if isinstance(self.start, tuple):
            return self.start[0], self.start[1:]
        return self.start, ()


def to_spec(entry: Any) -> ChildSpec:
    """The checked `ChildSpec` for any accepted form of a child."""
    if type(entry) is ChildSpec:
        return check(entry)
    factory = getattr(entry, "child_spec", None) if isinstance(entry, type) else None
    if callable(factory):
        return check(factory())
    if type(entry) is tuple and len(entry) == 2 and isinstance(entry[0], type):
        factory = getattr(entry[0], "child_spec", None)
        if callable(factory):
            return check(factory(entry[1]))
    raise InvalidChildSpec(FORMS, entry)


def check(spec: ChildSpec) -> ChildSpec:
    """Validate every field of `spec`; fill in the shutdown its type implies."""
    try:
        hash(spec.id)
    except TypeError:
        raise _bad(spec, "id", "must be hashable (a str, a class, a tuple, ...)") from None
    fn = spec.start[0] if isinstance(spec.start, tuple) and spec.start else spec.start
    if not callable(fn):
        raise _bad(spec, "start", "must be a callable or a tuple (fn, *args) with fn callable")
    if spec.restart not in RESTARTS:
        raise _bad(spec, "restart", "must be 'permanent', 'transient' or 'temporary'")
    if spec.type not in TYPES:
        raise _bad(spec, "type", "must be 'worker' or 'supervisor'")
    shutdown = spec.shutdown
    if shutdown is None:
        shutdown = math.inf if spec.type == "supervisor" else 5.0
    elif shutdown != "brutal_kill" and (
        isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or not shutdown >= 0
    ):
        raise _bad(spec, "shutdown", "must be seconds >= 0, math.inf or 'brutal_kill'")
    if type(spec.significant) is not bool:
        raise _bad(spec, "significant", "must be True or False")
    if spec.significant and spec.restart == "permanent":
        raise _bad(
            spec,
            "significant",
            "cannot be True for a permanent child (it would never end by itself); "
            "use restart='transient' or 'temporary'",
        )
    modules = spec.modules
    if modules == ():  # as OTP: the start function's module (here its class, if it has one)
        modules = (_start_module(fn),)
    if modules != "dynamic":
        if not isinstance(modules, tuple | list) or not all(
            isinstance(m, type | types.ModuleType | str) for m in modules
        ):
            raise _bad(spec, "modules", "must be 'dynamic' or a tuple of classes or modules")
        modules = tuple(modules)
    if shutdown is spec.shutdown and modules is spec.modules:
        return spec
    return spec.replace(shutdown=shutdown, modules=modules)


def _start_module(fn: Any) -> type | types.ModuleType | str:
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, type):  # a classmethod such as Worker.start_link
        return owner
    name = getattr(fn, "__module__", None) or type(fn).__module__
    return sys.modules.get(name) or name


def _bad(spec: ChildSpec, field: str, rule: str) -> InvalidChildSpec:
    return InvalidChildSpec(
        f"invalid child spec {spec.id!r}: {field} {rule}", getattr(spec, field), field
    )
