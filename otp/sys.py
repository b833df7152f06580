"""System messages: look into and steer any behaviour process from outside.

    await otp.sys.get_state(server)              -> the state
    await otp.sys.replace_state(server, fn)      -> fn(state), installed
    await otp.sys.suspend(server) / resume(server)
    await otp.sys.change_code(server, old_vsn, extra)
    await otp.sys.get_status(server)             -> Status
    await otp.sys.terminate(server, reason)      (what GenServer.stop uses)

A request travels as `("system", (caller, tag), request)`, the shape of Erlang's
`{system, From, Request}`. The kernel defines the protocol; each behaviour implements
`SystemHandler` and hands every system message to `handle`. A suspended process takes only
system messages (and its parent's exit) until it is resumed; the rest waits in its mailbox.

A code change switches the process to the class `otp.code.target_class` finds (the newly
loaded one, during an upgrade) and keeps a snapshot of the old class and state until the
process is resumed. The code server's `upgrade_code` request suspends the process and
changes its code in one step; its `revert_code` puts the snapshot back when another
process's change failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from . import _call
from ._mailbox import receive
from ._process import current
from ._values import NOPROC, TIMEOUT, Down, Pid
from .errors import ExitError, OTPError

__all__ = [
    "SYSTEM",
    "Status",
    "SysError",
    "SystemHandler",
    "change_code",
    "get_children",
    "get_state",
    "get_status",
    "handle",
    "is_system_message",
    "replace_state",
    "resume",
    "suspend",
    "terminate",
]

SYSTEM: Final = "system"

Child = tuple[Any, Any, str, int]  # (id, pid | None | "restarting", type, restarts)
DEFAULT_TIMEOUT: Final = 5.0


class SysError(OTPError):
    """A system request the process refused or failed; `.reason` says why.

    Args:
        reason: Why, kept as `.reason`.
        server: The process asked, kept as `.server`.
    """

    def __init__(self, reason: Any, server: Any) -> None:
        self.reason = reason
        self.server = server
        super().__init__(f"system request to {server!r} failed: {reason!r}")


@dataclass(frozen=True, slots=True)
class Status:
    """What `get_status` reports: the process, its behaviour and its (formatted) state."""

    pid: Pid
    behaviour: type
    status: Literal["running", "suspended"]
    parent: Pid | None
    name: str | None
    state: Any


class SystemHandler(Protocol):
    """What a behaviour process implements to answer system messages."""

    suspended: bool
    code_snapshot: Any  # what revert_code puts back; None once resumed

    def system_revert_code(self) -> None:
        """Put back the class and state of `code_snapshot` (an upgrade was undone)."""

    def system_get_state(self) -> Any:
        """The process's state.

        Returns:
            The state, as `get_state` returns it.
        """

    def system_replace_state(self, fn: Callable[[Any], Any]) -> Any:
        """Make `fn(state)` the state.

        Args:
            fn: A function of the state.

        Returns:
            The new state (an exception from `fn` leaves the state as it was).
        """

    async def system_code_change(self, old_vsn: Any, extra: Any, upgrade: bool = False) -> None:
        """Switch to the newest class and convert the state with its `code_change`.

        Args:
            old_vsn: The previous class's `vsn`.
            extra: Passed to `code_change`.
            upgrade: An upgrade of the code server: keep `code_snapshot` to revert to.
        """

    async def system_get_status(self) -> Status:
        """The process's status, its state through `format_status`.

        Returns:
            The `Status`.
        """

    async def system_terminate(self, reason: Any) -> Any:
        """Run the behaviour's `terminate` and end the process with `reason`; never returns.

        Args:
            reason: The exit reason.
        """


def is_system_message(msg: Any) -> bool:
    """True for a `("system", from_, request)` message.

    Args:
        msg: A message the process received.

    Returns:
        True when `sys.handle` should answer it.
    """
    return type(msg) is tuple and len(msg) == 3 and msg[0] == SYSTEM


async def handle(handler: SystemHandler, from_: _call.From, request: Any) -> None:
    """Answer one system request on behalf of `handler` (the process it runs in).

    A failing callback is reported to the caller as an error; the process keeps its state.
    `terminate` does not return: the handler ends the process.

    Args:
        handler: The process's `SystemHandler`.
        from_: The requester, from the message.
        request: The request, from the message.
    """
    try:
        match request:
            case "get_state":
                result: Any = handler.system_get_state()
            case ("replace_state", fn):
                try:
                    result = handler.system_replace_state(fn)
                except Exception as exc:
                    raise _Refused(("callback_failed", exc)) from exc
            case "suspend":
                handler.suspended = True
                result = None
            case "resume":
                handler.suspended = False
                handler.code_snapshot = None  # the change is final
                result = None
            case ("change_code", old_vsn, extra):
                if not handler.suspended:
                    raise _Refused("not_suspended")
                try:
                    await handler.system_code_change(old_vsn, extra)
                except Exception as exc:
                    raise _Refused(("code_change_failed", exc)) from exc
                result = None
            case ("upgrade_code", old_vsn, extra):  # the code server's: suspend and change
                handler.suspended = True  # (until the upgrade commits or is undone)
                try:
                    await handler.system_code_change(old_vsn, extra, upgrade=True)
                except Exception as exc:
                    handler.suspended = False  # back on its old code: nothing to wait for
                    raise _Refused(("code_change_failed", exc)) from exc
                result = None
            case "revert_code":  # the code server's, when an upgrade is undone
                if handler.code_snapshot is not None:
                    handler.system_revert_code()
                    handler.code_snapshot = None
                result = None
            case "get_status":
                result = await handler.system_get_status()
            case "apply_child_specs":  # the release handler's, after an install
                apply = getattr(handler, "system_apply_child_specs", None)
                if apply is not None:
                    await apply()
                result = None
            case "get_children":
                children = getattr(handler, "system_children", None)
                result = None if children is None else children()
            case ("terminate", reason):
                await handler.system_terminate(reason)
                return
            case _:
                raise _Refused(("unknown_system_request", request))
    except _Refused as refused:
        _call.reply(from_, ("error", refused.reason))
        return
    _call.reply(from_, ("ok", result))


class _Refused(Exception):
    def __init__(self, reason: Any) -> None:
        self.reason = reason


async def _request(server: Any, request: Any, timeout: float) -> Any:
    status, value = await _call.call(server, request, timeout, _kind=SYSTEM)
    if status == "error":
        raise SysError(value, server)
    return value


async def get_state(server: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The state of a behaviour process (also while it is suspended).

    Args:
        server: A Pid, a registered name or `(name, node)`.
        timeout: Seconds to wait (default 5.0).

    Returns:
        The state (`(state, data)` for a GenStatem).

    Raises:
        otp.CallError: No such process, or no answer within `timeout` (`CallTimeout`).
    """
    return await _request(server, "get_state", timeout)


async def replace_state(
    server: Any, fn: Callable[[Any], Any], timeout: float = DEFAULT_TIMEOUT
) -> Any:
    """Install `fn(state)` as the new state and return it; if `fn` raises, nothing changes
    and `SysError(("callback_failed", exc))` is raised.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        fn: A function of the state, run in the process.
        timeout: Seconds to wait (default 5.0).

    Returns:
        The new state.

    Raises:
        SysError: `fn` raised (`.reason == ("callback_failed", exc)`).
        otp.CallError: No such process, or no answer within `timeout`.
    """
    return await _request(server, ("replace_state", fn), timeout)


async def suspend(server: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Stop the process from handling anything but system messages until `resume`.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        timeout: Seconds to wait (default 5.0).

    Raises:
        otp.CallError: No such process, or no answer within `timeout`.
    """
    await _request(server, "suspend", timeout)


async def resume(server: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Let a suspended process handle its queued messages again.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        timeout: Seconds to wait (default 5.0).

    Raises:
        otp.CallError: No such process, or no answer within `timeout`.
    """
    await _request(server, "resume", timeout)


async def change_code(
    server: Any, old_vsn: Any, extra: Any = None, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Have a suspended process call `code_change(old_vsn, state, extra)` and keep the
    result; if it fails, the process keeps its old state and `SysError` is raised.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        old_vsn: Passed to `code_change`.
        extra: Passed to `code_change` (default None).
        timeout: Seconds to wait (default 5.0).

    Raises:
        SysError: The process is not suspended (`"not_suspended"`), or `code_change` failed
            (`("code_change_failed", exc)`).
        otp.CallError: No such process, or no answer within `timeout`.
    """
    await _request(server, ("change_code", old_vsn, extra), timeout)


async def get_status(server: Any, timeout: float = DEFAULT_TIMEOUT) -> Status:
    """The process's status, with its state as its `format_status` shows it.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        timeout: Seconds to wait (default 5.0).

    Returns:
        A `Status`.

    Raises:
        otp.CallError: No such process, or no answer within `timeout`.
    """
    status: Status = await _request(server, "get_status", timeout)
    return status


async def get_children(server: Any, timeout: float = DEFAULT_TIMEOUT) -> list[Child] | None:
    """A supervisor's children, each `(id, pid, type, restarts)`, with `pid` a Pid, None or
    "restarting"; None for a process that supervises nothing (what `otp tree` walks).

    Args:
        server: A Pid, a registered name or `(name, node)`.
        timeout: Seconds to wait (default 5.0).

    Returns:
        The children, or None.

    Raises:
        otp.CallError: No such process, or no answer within `timeout`.
    """
    children: list[Child] | None = await _request(server, "get_children", timeout)
    return children


async def terminate(server: Any, reason: Any, timeout: float = math.inf) -> None:
    """Have the process run its `terminate` and exit with `reason`; wait until it has.

    Args:
        server: A Pid, a registered name or `(name, node)`.
        reason: The exit reason.
        timeout: Seconds to wait (default `math.inf`).

    Raises:
        otp.ExitError: `.reason` is `NOPROC` for no such process, `TIMEOUT` if it takes
            longer than `timeout` (the process is then left to finish), `("nodedown",
            node)` for a lost node, or the other reason `r` it ended with (its terminate
            crashed).
        ValueError: A bad `timeout`.
    """
    wait = _call.check_timeout(timeout, "terminate")
    me = current()
    req = _call.send_request(server, SYSTEM, ("terminate", reason), me)
    ref = req.ref
    try:
        down = await receive(lambda m: type(m) is Down and m.ref is ref, wait)
    except BaseException as exc:  # a timeout, or the caller cancelled: leave nothing behind
        _call.abandon(req)
        if isinstance(exc, TimeoutError):
            raise ExitError(TIMEOUT, f"{server!r} did not terminate within {timeout} s") from None
        raise
    if down.reason == NOPROC:
        raise ExitError(NOPROC, f"cannot terminate {server!r}: no such process")
    if down.reason == reason or down.reason is reason:  # it ended as asked
        return
    lost = _call.failed_reason(down.reason, server)
    if lost is not down.reason:
        raise ExitError(lost, f"cannot terminate {server!r}: its node is not connected")
    raise ExitError(down.reason, f"{server!r} terminated with {down.reason!r}")
