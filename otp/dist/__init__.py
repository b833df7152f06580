"""otp.dist: the Erlang distribution — Python nodes that join Erlang/Elixir clusters.

The codec of the External Term Format is `otp.dist.etf` (`encode`, `decode`, `decode_from`
and the Python types of the Erlang terms that have none: `Atom`, `ImproperList`, ...).
"""

from __future__ import annotations

from ._api import allow_rpc as allow_rpc
from ._api import monitor_node as monitor_node
from ._api import nodes as nodes
from ._api import ping as ping
from ._distribution import read_cookie as read_cookie
from .etf import DEFAULT_MAX_DEPTH as DEFAULT_MAX_DEPTH
from .etf import DEFAULT_MAX_SIZE as DEFAULT_MAX_SIZE
from .etf import Atom as Atom
from .etf import BitBinary as BitBinary
from .etf import ETFError as ETFError
from .etf import Export as Export
from .etf import Fun as Fun
from .etf import ImproperList as ImproperList
from .etf import ListKey as ListKey
from .etf import MapKey as MapKey
from .etf import Port as Port
from .etf import decode as decode
from .etf import decode_from as decode_from
from .etf import encode as encode

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "Atom",
    "BitBinary",
    "ETFError",
    "Export",
    "Fun",
    "ImproperList",
    "ListKey",
    "MapKey",
    "Port",
    "allow_rpc",
    "decode",
    "decode_from",
    "encode",
    "monitor_node",
    "nodes",
    "ping",
    "read_cookie",
]
