"""The errors the runtime raises.

    OTPError
     +-- ExitError               .reason: a process ended, or a call to one failed
     |    +-- CallError          .reason: NOPROC, TIMEOUT, ("nodedown", node) or the server's reason
     |         +-- CallTimeout   (also a TimeoutError)
     +-- StartError              .reason: why a process failed to start
     +-- AlreadyStartedError     .pid: the process already holding the name
     +-- NoProcessError          no such process (outside any process, or a dead pid)
     +-- NotRegisteredError      .name: no process is registered under the name
     +-- AlreadyRegisteredError  .name, .pid: the name (or the process) is taken

Every message names the process, the name or the value it is about.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyRegisteredError",
    "AlreadyStartedError",
    "CallError",
    "CallTimeout",
    "ExitError",
    "NoProcessError",
    "NotRegisteredError",
    "OTPError",
    "StartError",
]


class OTPError(Exception):
    """Base class of every error the runtime raises."""


class ExitError(OTPError):
    """Ends the calling process with `reason` (`otp.exit(reason)`), or reports that one ended.

    Args:
        reason: The exit reason, kept as `.reason`.
        message: The text (default: `exit: <reason>`).
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message if message is not None else f"exit: {reason!r}")


class CallError(ExitError):
    """A call to another process failed; `.reason` says why, `.server` and `.request` what.

    `.reason` is `NOPROC` (no such process), `TIMEOUT`, `"calling_self"`,
    `("nodedown", node)` (the server's node cannot be reached), `("mailbox_full", N)` (the
    server's bounded mailbox was full: the request was dropped at once), or the exit reason
    of the server that died during the call. `.label` is the request's label when it was waited
    for in a request collection (else None).

    Args:
        reason: Why the call failed, kept as `.reason`.
        server: The server called, kept as `.server`.
        request: The request, kept as `.request`.
        message: The text (default: names the server, the reason and the request).
    """

    def __init__(
        self, reason: Any, server: Any = None, request: Any = None, message: str | None = None
    ) -> None:
        self.server = server
        self.request = request
        self.label: Any = None
        if message is None:
            message = f"call to {server!r} failed: {_explain(reason, server)}; request={request!r}"
        super().__init__(reason, message)


def _explain(reason: Any, server: Any) -> str:
    if reason == "noproc":
        if isinstance(server, str | tuple):
            return "noproc (no process is registered under that name)"
        return "noproc (the process is not alive)"
    if reason == "timeout":
        return "timeout (no reply in time)"
    if reason == "calling_self":
        return "calling_self (a process cannot call itself: it would wait for its own reply)"
    if type(reason) is tuple and len(reason) == 2 and reason[0] == "nodedown":
        return f"nodedown (node {reason[1]!r} is not connected)"
    if type(reason) is tuple and len(reason) == 2 and reason[0] == "mailbox_full":
        return (
            f"{reason!r} (the server's mailbox was full, at its max_mailbox of {reason[1]}: "
            "the request was dropped, or the server exited by its 'exit' policy)"
        )
    return f"the server exited with {reason!r}"


class CallTimeout(CallError, TimeoutError):
    """A call got no reply within its timeout."""


class StartError(OTPError):
    """A process failed to start; `.reason` is the exception or the stop reason.

    Args:
        reason: Why it failed, kept as `.reason`.
        message: The text (default: `start failed: <reason>`).
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message if message is not None else f"start failed: {reason!r}")


class AlreadyStartedError(OTPError):
    """A process could not start under a name that another process holds (`.pid`).

    Args:
        pid: The process holding the name, kept as `.pid`.
        message: The text (default: `already started as <pid>`).
    """

    def __init__(self, pid: Any, message: str | None = None) -> None:
        self.pid = pid
        super().__init__(message if message is not None else f"already started as {pid!r}")


class NoProcessError(OTPError):
    """There is no process to act on or for: called outside any process, or on a dead pid."""


class NotRegisteredError(OTPError):
    """No process is registered under `.name`.

    Args:
        name: The name, kept as `.name`.
    """

    def __init__(self, name: Any) -> None:
        self.name = name
        super().__init__(f"no process is registered as {name!r}")


class AlreadyRegisteredError(OTPError):
    """The name is held by `.pid`, or the process already has another name.

    Args:
        name: The name, kept as `.name`.
        pid: Its holder (or the process that has a name), kept as `.pid`.
        message: The text (default: `<name> is already registered to <pid>`).
    """

    def __init__(self, name: Any, pid: Any, message: str | None = None) -> None:
        self.name = name
        self.pid = pid
        super().__init__(
            message if message is not None else f"{name!r} is already registered to {pid!r}"
        )
