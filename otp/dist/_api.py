"""The distribution's functions for processes: `nodes`, `monitor_node`, `ping`.

They do not import the codec: a node that is not distributed pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from .. import _node
from .._mailbox import deliver
from .._process import current

__all__ = ["allow_rpc", "monitor_node", "nodes", "ping"]


def allow_rpc(module: str, function: str, fn: Callable[..., Any]) -> None:
    """Let other nodes call `fn(*args)` as `erpc:call(Node, module, function, Args)` (or
    `rpc:call`); an async `fn` is awaited. It runs in a process of its own; what it returns
    is the call's result, what it raises the caller's error. Nothing else is callable.

    Args:
        module: The module name callers use (an atom on their side).
        function: The function name callers use.
        fn: The function to run (plain or async).

    Raises:
        RuntimeError: The node is not distributed.
        TypeError: `fn` is not callable.
        NoProcessError: No node is running.
    """
    node = _node.get()
    if node.dist is None:
        raise RuntimeError("allow_rpc() needs a distributed node (a name@host name)")
    if not callable(fn):
        raise TypeError(f"allow_rpc() takes a callable, got {fn!r}")
    node.dist.rpc[(module, function)] = fn


def nodes() -> list[str]:
    """The nodes this node is connected to (empty for a node that is not distributed).

    Returns:
        Their names (`name@host`).

    Raises:
        NoProcessError: No node is running.
    """
    node = _node.get()
    return [] if node.dist is None else list(node.dist.conns)


def monitor_node(node: str, flag: bool = True) -> None:
    """Get `("nodedown", node)` when the connection to `node` is lost, or at once if it
    cannot be made (Erlang's monitor_node/2); `flag=False` stops one such monitor.

    Args:
        node: A node name, `name@host` (this node's own is ignored).
        flag: True (default) to set a monitor, False to remove one.

    Raises:
        TypeError: `node` is not a `name@host` str.
        NoProcessError: Not called from a process.
    """
    me = current()
    here = _node.get()
    if type(node) is not str or "@" not in node:
        raise TypeError(f"monitor_node() takes a node name 'name@host', got {node!r}")
    if here.dist is None:
        if flag:
            deliver(me, ("nodedown", node))
        return
    here.dist.monitor_node(me, node, flag)


async def ping(node: str) -> Literal["pong", "pang"]:
    """`"pong"` once connected to `node` (connecting if needed), else `"pang"`.

    Args:
        node: A node name, `name@host`.

    Returns:
        `"pong"` (this node, or connected) or `"pang"` (not distributed, a bad name, or
        the connection failed).

    Raises:
        NoProcessError: No node is running.
    """
    here = _node.get()
    if node == here.name:
        return "pong"
    if here.dist is None or type(node) is not str or "@" not in node:
        return "pang"
    return "pong" if await here.dist.connect(node) is not None else "pang"
