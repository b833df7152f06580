"""The External Term Format: Erlang terms as bytes, for the distribution and `term_to_binary`.

API: `encode(term) -> bytes` (with the leading version byte 131), `decode(data) -> term` (one
whole term), `decode_from(data, offset) -> (term, next_offset)` (one term with its own 131
byte, as in the distribution's pass-through frames `112, 131+Control, 131+Message`). Every
malformed input raises `ETFError` (a `ValueError`), with the offset where it went wrong.

```python
from otp.dist import Atom, decode, encode

data = encode((Atom("ok"), [1, 2], {"key": b"value"}))
assert decode(data) == (Atom("ok"), [1, 2], {b"key": b"value"})
```

Python <-> Erlang (encoded as -> decoded back as):

* `Atom("ok")` (a `str` subclass) -> atom `ok` -> `Atom("ok")`
* `True`, `False`, `None` -> atoms `true`, `false`, `undefined` -> `True`, `False`, `None`
* `int` of any size, finite `float` -> integer, float -> `int`, `float`
* `str` -> UTF-8 binary -> `bytes` (or `str` with `binaries="str"`)
* `bytes`, `bytearray`, `memoryview` -> binary -> `bytes`
* `BitBinary(data, bits)` -> bitstring -> `BitBinary`
* `tuple`, `list`, `dict` -> tuple, proper list, map -> `tuple`, `list`, `dict`
* `ImproperList(items, tail)` -> `[a, b | Tail]` -> `ImproperList`
* `ListKey(items)`, `MapKey(pairs)` -> a list, a map (used as map keys) -> the same
* `otp.Pid`, `otp.Ref` -> pid, reference -> `otp.Pid`, `otp.Ref`
* `Port(node, id, creation)` -> port -> `Port`
* `Fun(data)`, `Export(module, function, arity)` -> `fun (...) -> ... end`, `fun M:F/A` ->
  the same (opaque)

Decisions, and why:

* **Atoms are `Atom`, strings are binaries.** Erlang has no string type: Elixir strings and
  modern Erlang text are UTF-8 binaries, so a Python `str` goes out as one. A binary comes back
  as `bytes` by default, because the receiver cannot know whether a binary was text (a binary
  decoded as `str` would turn every UTF-8-looking payload into text and lose its type).
  `decode(..., binaries="str")` gives `str` for binaries that are valid UTF-8 (and `bytes` for
  the others): what Python-to-Python traffic of text or an Elixir peer usually wants.
  Charlists (Erlang `"abc"`, sent as STRING_EXT) decode to lists of ints, as they are.
* **`true`, `false` and `undefined`** are `True`, `False` and `None`. Elixir's `nil` is the
  one to use with an Elixir peer: pass `nil_atom="nil"` to `encode` and `decode` (the other
  atom is then a plain `Atom`).
* **Map keys** that Python cannot hash (lists, maps) are decoded as `ListKey` and `MapKey`,
  values that compare and encode as the list or map they stand for. A map with keys that are
  distinct in Erlang but equal in Python (`1` and `1.0`, or `true` and `1`) is refused with
  `ETFError` rather than losing an entry.
* **Pids** decode through the kernel: a pid of the running node (its name and creation) is the
  live pid, so `otp.send` reaches the process. A live local pid encodes with the node's name and
  creation.
* **Refs**: a ref made by this node (an int id) encodes as Erlang's three words (the first one
  with 18 significant bits) and decodes back equal to itself. A ref of another node keeps the
  tuple of its 1 to 5 words as its id, so it goes back out exactly as it came.
* **Funs** are opaque: `Fun` keeps the bytes of a NEW_FUN_EXT, `Export` is `fun M:F/A`; both
  encode back byte for byte.
* **Encoding** uses only the modern tags: NEW_FLOAT, SMALL/LARGE_BIG, SMALL_ATOM_UTF8 /
  ATOM_UTF8, NEW_PID, NEWER_REF, V4_PORT, SMALL/LARGE_TUPLE, NIL, LIST, MAP, BINARY,
  BIT_BINARY, NEW_FUN, EXPORT. Python lists are always LIST_EXT (Erlang itself writes lists of
  bytes as STRING_EXT; both decode the same).
* **Decoding** also reads the legacy tags (FLOAT 99, ATOM 100, SMALL_ATOM 115, REFERENCE 101,
  NEW_REFERENCE 114, PORT 102, NEW_PORT 89, PID 103, STRING 107) and compressed terms (80).
  ATOM_CACHE_REF (82) is refused: it only appears when the atom cache was negotiated.

Limits: a compressed term may expand to at most `max_size` bytes (default `DEFAULT_MAX_SIZE`,
64 MiB) and terms may nest at most `max_depth` containers deep (default `DEFAULT_MAX_DEPTH`,
500: the decoder recurses once per level and must stay under Python's default recursion limit
of 1000). Declared lengths are checked against the bytes that are there before anything is
allocated, so a small input never makes a large allocation.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, final

from .. import _node
from .._values import Pid, Ref, _rebuilt_pid

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
    "decode",
    "decode_from",
    "encode",
]

DEFAULT_MAX_SIZE: Final = 64 * 1024 * 1024
"""The default limit, in bytes, of what a compressed term (tag 80) may expand to."""

DEFAULT_MAX_DEPTH: Final = 500
"""The default limit of nested containers (tuples, lists, maps) in a decoded term."""

VERSION: Final = 131

# -- the values -------------------------------------------------------------------------------


class ETFError(ValueError):
    """Bytes that are not a valid term (with the offset where it went wrong), or a Python
    value that has no Erlang term."""


@final
class Atom(str):
    """An Erlang atom: a `str` that encodes as an atom (`Atom("ok")` is `ok`).

    It compares and hashes as the same text, so `Atom("ok") == "ok"`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


@final
class ImproperList:
    """An improper list: `ImproperList([a, b], t)` is Erlang's `[a, b | t]`.

    OTP 24+ `gen:call` tags are `[alias | Ref]`, i.e. `ImproperList([Atom("alias")], ref)`.
    It hashes when its items and tail do (don't change one that is used as a dict key).

    Args:
        items: The proper part.
        tail: The tail that is not a list.
    """

    __slots__ = ("items", "tail")

    def __init__(self, items: Iterable[Any], tail: Any) -> None:
        self.items: list[Any] = list(items)
        self.tail = tail

    def __eq__(self, other: object) -> bool:
        return type(other) is ImproperList and self.items == other.items and self.tail == other.tail

    def __hash__(self) -> int:
        return hash((ImproperList, tuple(self.items), self.tail))

    def __repr__(self) -> str:
        return f"ImproperList({self.items!r}, {self.tail!r})"


@final
class ListKey:
    """A list used as a map key (Python cannot hash a list): `ListKey((1, 2))` is `[1, 2]`.

    Args:
        items: The list's items.
    """

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items: tuple[Any, ...] = tuple(items)

    def __eq__(self, other: object) -> bool:
        return type(other) is ListKey and self.items == other.items

    def __hash__(self) -> int:
        return hash((ListKey, self.items))

    def __repr__(self) -> str:
        return f"ListKey({self.items!r})"


@final
class MapKey:
    """A map used as a map key: `MapKey([(k, v), ...])` is `#{k => v, ...}`.

    It keeps the pairs in their order (so it encodes back the same) and compares as a map.

    Args:
        pairs: The `(key, value)` pairs.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.pairs: tuple[tuple[Any, Any], ...] = tuple(pairs)

    def __eq__(self, other: object) -> bool:
        return type(other) is MapKey and frozenset(self.pairs) == frozenset(other.pairs)

    def __hash__(self) -> int:
        return hash((MapKey, frozenset(self.pairs)))

    def __repr__(self) -> str:
        return f"MapKey({list(self.pairs)!r})"


@final
@dataclass(frozen=True, slots=True)
class BitBinary:
    """A bitstring whose length is not a whole number of bytes: `bits` (1 to 8) of the last
    byte of `data` are used, counting from its most significant bit."""

    data: bytes
    bits: int

    def __post_init__(self) -> None:
        if not self.data or not 1 <= self.bits <= 8:
            raise ETFError(
                f"a BitBinary needs data and 1 to 8 bits in its last byte; "
                f"got {len(self.data)} bytes and bits={self.bits}"
            )

    @property
    def bit_size(self) -> int:
        """The length in bits."""
        return (len(self.data) - 1) * 8 + self.bits


@final
@dataclass(frozen=True, slots=True)
class Port:
    """A port identifier of a node (ports are not usable across nodes: only passed around)."""

    node: str
    id: int
    creation: int


@final
@dataclass(frozen=True, slots=True)
class Export:
    """An external fun, Erlang's `fun module:function/arity`."""

    module: str
    function: str
    arity: int


@final
class Fun:
    """A local Erlang fun (NEW_FUN_EXT), kept as its bytes: it cannot run here, only be sent
    back. `module` and `arity` say what it is.

    Args:
        data: Its bytes, from the tag byte 112 to the end of its free variables.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data  # from the tag byte 112 to the end of its free variables

    @property
    def arity(self) -> int:
        """The number of arguments the fun takes."""
        return self.data[5]

    @property
    def module(self) -> Any:
        """The module the fun was defined in (an `Atom`)."""
        return _atom_value(self.data, 30)

    def __eq__(self, other: object) -> bool:
        return type(other) is Fun and self.data == other.data

    def __hash__(self) -> int:
        return hash((Fun, self.data))

    def __repr__(self) -> str:
        try:
            return f"Fun(module={self.module!r}, arity={self.arity}, {len(self.data)} bytes)"
        except (ETFError, IndexError):
            return f"Fun({self.data!r})"


for _cls in (Atom, ImproperList, ListKey, MapKey, BitBinary, Port, Export, Fun, ETFError):
    _cls.__module__ = "otp.dist"

# -- shared pieces ----------------------------------------------------------------------------

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_I32: Final = struct.Struct(">i")
_U64: Final = struct.Struct(">Q")
_F64: Final = struct.Struct(">d")
_U32X2: Final = struct.Struct(">II")
_U32X3: Final = struct.Struct(">III")
_U32X4: Final = struct.Struct(">IIII")
_U32_U8: Final = struct.Struct(">IB")
_U32X2_U8: Final = struct.Struct(">IIB")
_Q_U32: Final = struct.Struct(">QI")
_TAG_U32: Final = struct.Struct(">BI")
_TAG_I32: Final = struct.Struct(">Bi")
_TAG_F64: Final = struct.Struct(">Bd")
_TAG_U32_U8: Final = struct.Struct(">BIB")

_CACHE_LIMIT: Final = 65536  # atoms a peer can make us remember (the rest are not cached)
_PID_CACHE_LIMIT: Final = 4096  # decoded pids of other nodes kept for reuse
_MISS: Final = object()

_SMALL_INTS: Final = [bytes((97, i)) for i in range(256)]
_SMALL_TUPLES: Final = [bytes((104, i)) for i in range(256)]

Decoded: TypeAlias = tuple[Any, int]


class _TooDeep(Exception):
    def __init__(self, offset: int) -> None:
        self.offset = offset


def _truncated(offset: int) -> ETFError:
    return ETFError(f"truncated: the term at offset {offset} needs more bytes than given")


def _atom_text(raw: bytes, offset: int, latin1: bool = False) -> str:
    """The text of an atom's bytes, checked (UTF-8, at most 255 characters)."""
    if latin1:
        text = raw.decode("latin-1")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ETFError(f"atom at offset {offset} is not valid UTF-8: {raw[:40]!r}") from None
    if len(text) > 255:
        raise ETFError(f"atom at offset {offset} longer than 255 characters ({len(text)})")
    return text


def _atom_span(data: bytes, pos: int) -> tuple[str, int]:
    """The text of the atom whose tag is at `pos`, and the offset after it."""
    tag = data[pos]
    if tag == 119 or tag == 115:
        start = pos + 2
        end = start + data[pos + 1]
    elif tag == 118 or tag == 100:
        start = pos + 3
        end = start + _U16.unpack_from(data, pos + 1)[0]
    elif tag == 82:
        raise ETFError(
            f"atom cache reference (tag 82) at offset {pos}: no atom cache was negotiated"
        )
    else:
        raise ETFError(f"expected an atom at offset {pos}, got tag {tag}")
    if end > len(data):
        raise _truncated(pos)
    return _atom_text(data[start:end], pos, tag == 100 or tag == 115), end


def _atom_value(data: bytes, pos: int) -> Atom:
    return Atom(_atom_span(data, pos)[0])


_node_names: dict[bytes, str] = {}


def _node_at(data: bytes, pos: int) -> tuple[str, int]:
    """The node name (an atom) at `pos`, as a plain `str`."""
    if data[pos] == 119:
        end = pos + 2 + data[pos + 1]
        name = _node_names.get(data[pos:end])
        if name is not None:
            return name, end
    text, end = _atom_span(data, pos)
    if len(_node_names) < _CACHE_LIMIT:
        _node_names[data[pos:end]] = text
    return text, end


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a map key that Python cannot hash (lists and maps in it)."""
    kind = type(value)
    if kind is list:
        return ListKey([_freeze(v) for v in value])
    if kind is dict:
        return MapKey([(k, _freeze(v)) for k, v in value.items()])
    if kind is tuple:
        return tuple([_freeze(v) for v in value])
    if kind is ImproperList:
        return ImproperList([_freeze(v) for v in value.items], _freeze(value.tail))
    return value


# -- decoding ---------------------------------------------------------------------------------

_DecodeFn: TypeAlias = Callable[[bytes, int, int], Decoded]


def _make_decoder(nil_atom: str, binaries: str) -> _DecodeFn:
    """The decoding function for one set of options (each has its own atom cache)."""
    atoms: dict[bytes, Any] = {}
    as_str = binaries == "str"
    specials = {"true": True, "false": False, nil_atom: None}

    def new_atom(data: bytes, pos: int) -> Decoded:
        text, end = _atom_span(data, pos)
        value = specials.get(text, _MISS)
        if value is _MISS:
            value = Atom(text)
        if data[pos] == 119 and len(atoms) < _CACHE_LIMIT:
            atoms[data[pos + 2 : end]] = value
        return value, end

    node_names = _node_names
    unpack_u32 = _U32.unpack_from
    unpack_pid = _U32X3.unpack_from
    unpack_ref3 = _U32X4.unpack_from

    pids: dict[bytes, Pid] = {}  # other nodes' pids, by their encoding

    def pid_at(data: bytes, pos: int) -> tuple[Pid, int]:
        """The NEW_PID_EXT at `pos`: the live pid when it is one of this node's."""
        node, p = _node_at(data, pos + 1)
        pid_id, serial, creation = unpack_pid(data, p)
        here = _node.current
        if here is not None and node == here.name:
            return _rebuilt_pid(node, pid_id, serial, creation), p + 12
        pid = Pid(node, pid_id, serial, creation)  # not ours: there is no live pid to find
        if data[pos + 1] == 119:
            if len(pids) >= _PID_CACHE_LIMIT:
                pids.clear()
            pids[data[pos + 1 : p + 12]] = pid
        return pid, p + 12

    def term(data: bytes, pos: int, depth: int) -> Decoded:
        tag = data[pos]
        if tag == 104 or tag == 105:  # SMALL_TUPLE_EXT, LARGE_TUPLE_EXT
            if tag == 104:
                n = data[pos + 1]
                pos += 2
            else:
                n = unpack_u32(data, pos + 1)[0]
                pos += 5
                if n > len(data) - pos:
                    raise _truncated(pos - 5)
            if not depth:
                raise _TooDeep(pos)
            depth -= 1
            items: list[Any] = []
            append = items.append
            # The common elements are decoded here, without a call: atoms, small ints,
            # pids, refs and binaries (what control messages and calls are made of).
            for _ in range(n):
                t = data[pos]
                if t == 119:
                    end = pos + 2 + data[pos + 1]
                    value = atoms.get(data[pos + 2 : end], _MISS)
                    if value is _MISS:
                        value, end = new_atom(data, pos)
                    append(value)
                    pos = end
                elif t == 97:
                    append(data[pos + 1])
                    pos += 2
                elif t == 88:  # NEW_PID_EXT
                    end = pos + 15 + data[pos + 2]
                    pid = pids.get(data[pos + 1 : end])
                    if pid is None or (
                        (here := _node.current) is not None and pid._node == here.name
                    ):
                        pid, end = pid_at(data, pos)
                    append(pid)
                    pos = end
                elif t == 90 and data[pos + 2] == 3 and data[pos + 1] == 0:  # NEWER_REF, 3 words
                    p = pos + 3
                    node = None
                    if data[p] == 119:
                        end = p + 2 + data[p + 1]
                        node = node_names.get(data[p:end])
                    if node is None:
                        node, end = _node_at(data, p)
                    creation, w0, w1, w2 = unpack_ref3(data, end)
                    here = _node.current
                    if (
                        here is not None
                        and w0 < 0x40000
                        and node == here.name
                        and creation == here.creation
                    ):
                        append(Ref(node, w0 | w1 << 18 | w2 << 50, creation))
                    else:
                        append(Ref(node, (w0, w1, w2), creation))
                    pos = end + 16
                elif t == 109 and not as_str:  # BINARY_EXT
                    end = pos + 5 + unpack_u32(data, pos + 1)[0]
                    if end > len(data):
                        raise _truncated(pos)
                    append(data[pos + 5 : end])
                    pos = end
                else:
                    value, pos = term(data, pos, depth)
                    append(value)
            return tuple(items), pos
        if tag == 119:  # SMALL_ATOM_UTF8_EXT
            end = pos + 2 + data[pos + 1]
            value = atoms.get(data[pos + 2 : end], _MISS)
            if value is _MISS:
                return new_atom(data, pos)
            return value, end
        if tag == 97:  # SMALL_INTEGER_EXT
            return data[pos + 1], pos + 2
        if tag == 88:  # NEW_PID_EXT
            return pid_at(data, pos)
        if tag == 90:  # NEWER_REFERENCE_EXT
            n = _U16.unpack_from(data, pos + 1)[0]
            node, p = _node_at(data, pos + 3)
            if n == 3:
                creation, w0, w1, w2 = _U32X4.unpack_from(data, p)
                return _ref(node, creation, (w0, w1, w2)), p + 16
            if not 1 <= n <= 5:
                raise ETFError(f"reference at offset {pos} has {n} words (1 to 5 allowed)")
            creation = _U32.unpack_from(data, p)[0]
            words = struct.unpack_from(f">{n}I", data, p + 4)
            return _ref(node, creation, words), p + 4 + 4 * n
        if tag == 108:  # LIST_EXT
            n = _U32.unpack_from(data, pos + 1)[0]
            start = pos
            pos += 5
            if n >= len(data) - pos:  # each item takes a byte at least, and then the tail
                raise _truncated(start)
            if not depth:
                raise _TooDeep(start)
            depth -= 1
            items = []
            append = items.append
            for _ in range(n):
                t = data[pos]
                if t == 97:
                    append(data[pos + 1])
                    pos += 2
                elif t == 119:
                    end = pos + 2 + data[pos + 1]
                    value = atoms.get(data[pos + 2 : end], _MISS)
                    if value is _MISS:
                        value, end = new_atom(data, pos)
                    append(value)
                    pos = end
                else:
                    value, pos = term(data, pos, depth)
                    append(value)
            if data[pos] == 106:
                return items, pos + 1
            tail, pos = term(data, pos, depth)
            if type(tail) is list:  # [a | [b]] is [a, b]: Erlang never writes it so
                return items + tail, pos
            if type(tail) is ImproperList:
                return ImproperList(items + tail.items, tail.tail), pos
            if not items:
                raise ETFError(f"list at offset {start} has no items but an improper tail")
            return ImproperList(items, tail), pos
        if tag == 109:  # BINARY_EXT
            end = pos + 5 + _U32.unpack_from(data, pos + 1)[0]
            if end > len(data):
                raise _truncated(pos)
            raw = data[pos + 5 : end]
            if as_str:
                try:
                    return raw.decode("utf-8"), end
                except UnicodeDecodeError:
                    pass
            return raw, end
        if tag == 98:  # INTEGER_EXT
            return _I32.unpack_from(data, pos + 1)[0], pos + 5
        if tag == 106:  # NIL_EXT
            return [], pos + 1
        if tag == 116:  # MAP_EXT
            n = _U32.unpack_from(data, pos + 1)[0]
            start = pos
            pos += 5
            if 2 * n > len(data) - pos:
                raise _truncated(start)
            if not depth:
                raise _TooDeep(start)
            depth -= 1
            result: dict[Any, Any] = {}
            for _ in range(n):
                key, pos = term(data, pos, depth)
                value, pos = term(data, pos, depth)
                try:
                    result[key] = value
                except TypeError:  # a list or a map as a key
                    result[_freeze(key)] = value
            if len(result) != n:
                raise ETFError(
                    f"map at offset {start} has keys that are distinct in Erlang but equal "
                    f"in Python (such as 1 and 1.0, or true and 1): {list(result)!r}"
                )
            return result, pos
        if tag == 70:  # NEW_FLOAT_EXT
            f = _F64.unpack_from(data, pos + 1)[0]
            if f - f != 0.0:
                raise ETFError(f"float at offset {pos} is not finite ({f})")
            return f, pos + 9
        if tag == 107:  # STRING_EXT: a list of bytes
            end = pos + 3 + _U16.unpack_from(data, pos + 1)[0]
            if end > len(data):
                raise _truncated(pos)
            return list(data[pos + 3 : end]), end
        if tag == 110 or tag == 111:  # SMALL_BIG_EXT, LARGE_BIG_EXT
            if tag == 110:
                n = data[pos + 1]
                start = pos + 3
            else:
                n = _U32.unpack_from(data, pos + 1)[0]
                start = pos + 6
            end = start + n
            if end > len(data):
                raise _truncated(pos)
            sign = data[start - 1]
            if sign > 1:
                raise ETFError(f"integer at offset {pos} has sign byte {sign} (0 or 1 allowed)")
            big = int.from_bytes(data[start:end], "little")
            return (-big if sign else big), end
        if tag == 118 or tag == 100 or tag == 115:  # ATOM_UTF8, ATOM (Latin-1), SMALL_ATOM
            text, end = _atom_span(data, pos)
            value = specials.get(text, _MISS)
            return (Atom(text) if value is _MISS else value), end
        if tag == 77:  # BIT_BINARY_EXT
            n, bits = _U32_U8.unpack_from(data, pos + 1)
            end = pos + 6 + n
            if end > len(data):
                raise _truncated(pos)
            if n == 0:
                if bits:
                    raise ETFError(f"empty bitstring at offset {pos} with {bits} bits")
                return b"", end
            if not 1 <= bits <= 8:
                raise ETFError(f"bitstring at offset {pos} uses {bits} bits of its last byte")
            raw = data[pos + 6 : end]
            return (raw if bits == 8 else BitBinary(raw, bits)), end
        if tag == 120:  # V4_PORT_EXT
            node, p = _node_at(data, pos + 1)
            port_id, creation = _Q_U32.unpack_from(data, p)
            return Port(node, port_id, creation), p + 12
        if tag == 89:  # NEW_PORT_EXT
            node, p = _node_at(data, pos + 1)
            port_id, creation = _U32X2.unpack_from(data, p)
            return Port(node, port_id, creation), p + 8
        if tag == 102:  # PORT_EXT
            node, p = _node_at(data, pos + 1)
            port_id, creation = _U32_U8.unpack_from(data, p)
            return Port(node, port_id, creation), p + 5
        if tag == 103:  # PID_EXT
            node, p = _node_at(data, pos + 1)
            pid_id, serial, creation = _U32X2_U8.unpack_from(data, p)
            return _rebuilt_pid(node, pid_id, serial, creation), p + 9
        if tag == 114:  # NEW_REFERENCE_EXT
            n = _U16.unpack_from(data, pos + 1)[0]
            if not 1 <= n <= 5:
                raise ETFError(f"reference at offset {pos} has {n} words (1 to 5 allowed)")
            node, p = _node_at(data, pos + 3)
            creation = data[p]
            words = struct.unpack_from(f">{n}I", data, p + 1)
            return _ref(node, creation, words), p + 1 + 4 * n
        if tag == 101:  # REFERENCE_EXT
            node, p = _node_at(data, pos + 1)
            word, creation = _U32_U8.unpack_from(data, p)
            return _ref(node, creation, (word,)), p + 5
        if tag == 99:  # FLOAT_EXT: "%.20e" in 31 bytes
            end = pos + 32
            if end > len(data):
                raise _truncated(pos)
            digits = data[pos + 1 : end].split(b"\0", 1)[0]
            try:
                f = float(digits)
            except ValueError:
                raise ETFError(f"float at offset {pos} is not a number: {digits!r}") from None
            if f - f != 0.0:
                raise ETFError(f"float at offset {pos} is not finite ({f})")
            return f, end
        if tag == 112:  # NEW_FUN_EXT: kept whole
            size = _U32.unpack_from(data, pos + 1)[0]
            end = pos + 1 + size
            if end > len(data):
                raise _truncated(pos)
            if size < 31 or _atom_span(data, pos + 30)[1] > end:  # up to its module
                raise ETFError(f"fun at offset {pos} declares {size} bytes, too few")
            return Fun(data[pos:end]), end
        if tag == 113:  # EXPORT_EXT
            module, p = _atom_span(data, pos + 1)
            function, p = _atom_span(data, p)
            if data[p] != 97:
                raise ETFError(f"fun at offset {pos} has an arity that is not a small integer")
            return Export(Atom(module), Atom(function), data[p + 1]), p + 2
        if tag == 82:
            raise ETFError(
                f"atom cache reference (tag 82) at offset {pos}: no atom cache was negotiated"
            )
        if tag == 80:
            raise ETFError(f"compressed term (tag 80) inside a term at offset {pos}")
        raise ETFError(f"unknown tag {tag} at offset {pos}")

    return term


def _ref(node: str, creation: int, words: tuple[int, ...]) -> Ref:
    """A decoded ref: the very ref of this node when it is one of ours (three words, the first
    of 18 bits, this node's name and creation), else a ref keeping its words."""
    here = _node.current
    if (
        here is not None
        and len(words) == 3
        and words[0] < 0x40000
        and node == here.name
        and creation == here.creation
    ):
        return Ref(node, words[0] | words[1] << 18 | words[2] << 50, creation)
    return Ref(node, words, creation)


_decoders: dict[tuple[str, str], _DecodeFn] = {}


def _decoder(nil_atom: str, binaries: str) -> _DecodeFn:
    found = _decoders.get((nil_atom, binaries))
    if found is None:
        if binaries != "bytes" and binaries != "str":
            raise ValueError(f'binaries must be "bytes" or "str"; got {binaries!r}')
        found = _decoders[(nil_atom, binaries)] = _make_decoder(str(nil_atom), binaries)
    return found


_default_decoder: Final = _decoder("undefined", "bytes")


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if type(data) is bytes:
        return data
    if type(data) is memoryview:
        whole = data.obj
        if type(whole) is bytes and data.nbytes == len(whole) and data.c_contiguous:
            return whole  # a view of a whole bytes object: no copy
        return data.tobytes()
    return bytes(data)


def decode_from(
    data: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    nil_atom: str = "undefined",
    binaries: Literal["bytes", "str"] = "bytes",
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[Any, int]:
    """Decode the term that starts at `offset` with its version byte 131.

    Args:
        data: The bytes.
        offset: Where the term's version byte is (default 0).
        nil_atom: the atom that decodes as None (`"undefined"`; `"nil"` for Elixir).
        binaries: `"bytes"` (binaries are `bytes`) or `"str"` (binaries that are valid UTF-8
            are `str`, the others `bytes`).
        max_size: how many bytes a compressed term may expand to (default `DEFAULT_MAX_SIZE`).
        max_depth: how deeply containers may nest (default `DEFAULT_MAX_DEPTH`).

    Returns:
        `(term, end)`: the term and the offset just after it (more bytes may follow).

    Raises:
        ETFError: the bytes are not a valid term, or break a limit.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    term = (
        _default_decoder
        if nil_atom == "undefined" and binaries == "bytes"
        else _decoder(nil_atom, binaries)
    )
    if offset < 0:
        raise ETFError(f"offset {offset} is negative")
    try:
        if data[offset] != VERSION:
            raise ETFError(f"expected the version byte 131 at offset {offset}, got {data[offset]}")
        if data[offset + 1] == 80:
            return _decompressed(data, offset, term, max_size, max_depth)
        value, pos = term(data, offset + 1, max_depth)
    except (IndexError, struct.error):
        raise ETFError(
            f"truncated: the term at offset {offset} needs more than the {len(data)} bytes given"
        ) from None
    except _TooDeep as exc:
        raise ETFError(
            f"nesting deeper than {max_depth} containers (at offset {exc.offset})"
        ) from None
    except RecursionError:
        raise ETFError("nesting deeper than Python's recursion limit allows") from None
    if pos > len(data):
        raise ETFError(
            f"truncated: the term at offset {offset} needs {pos - offset} bytes, "
            f"{len(data) - offset} given"
        )
    return value, pos


def _decompressed(
    data: bytes, offset: int, term: _DecodeFn, max_size: int, max_depth: int
) -> Decoded:
    size = _U32.unpack_from(data, offset + 2)[0]
    if size > max_size:
        raise ETFError(
            f"term larger than the limit: the compressed term at offset {offset} expands to "
            f"{size} bytes (max_size={max_size})"
        )
    if size == 0:
        raise ETFError(f"compressed term at offset {offset} declares 0 bytes")
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(memoryview(data)[offset + 6 :], size)
        if len(inner) == size and not inflater.eof:
            more = inflater.decompress(inflater.unconsumed_tail, 1)
            if more:
                raise ETFError(
                    f"compressed term at offset {offset} expands beyond the {size} bytes "
                    "it declares"
                )
    except zlib.error as exc:
        raise ETFError(
            f"compressed term at offset {offset} is not valid zlib data: {exc}"
        ) from None
    if not inflater.eof:
        raise ETFError(f"truncated: the compressed term at offset {offset} ends early")
    if len(inner) != size:
        raise ETFError(
            f"compressed term at offset {offset} expands to {len(inner)} bytes, not the "
            f"{size} it declares"
        )
    try:
        value, pos = term(inner, 0, max_depth)
    except (IndexError, struct.error):
        raise ETFError(f"truncated: the compressed term at offset {offset} ends early") from None
    if pos != size:
        raise ETFError(
            f"compressed term at offset {offset}: its term takes {pos} of its {size} bytes"
        )
    return value, len(data) - len(inflater.unused_data)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    nil_atom: str = "undefined",
    binaries: Literal["bytes", "str"] = "bytes",
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Decode one whole term (with its version byte 131): Erlang's `binary_to_term`.

    Bytes after the term are an error.

    Args:
        data: The bytes of one term.
        nil_atom: the atom that decodes as None (`"undefined"`; `"nil"` for Elixir).
        binaries: `"bytes"` or `"str"`, as for `decode_from`.
        max_size: how many bytes a compressed term may expand to (default `DEFAULT_MAX_SIZE`).
        max_depth: how deeply containers may nest (default `DEFAULT_MAX_DEPTH`).

    Returns:
        The term.

    Raises:
        ETFError: the bytes are not one valid term, or break a limit.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    value, pos = decode_from(
        data, 0, nil_atom=nil_atom, binaries=binaries, max_size=max_size, max_depth=max_depth
    )
    if pos != len(data):
        raise ETFError(f"{len(data) - pos} bytes after the term, from offset {pos}")
    return value


# -- encoding ---------------------------------------------------------------------------------

_atom_bytes: dict[str, bytes] = {}


def _encoded_atom(text: str) -> bytes:
    """The encoding of an atom (cached)."""
    found = _atom_bytes.get(text)
    if found is not None:
        return found
    raw = text.encode("utf-8")
    n = len(raw)
    if n > 255 and len(text) > 255:
        raise ETFError(f"atom longer than 255 characters ({len(text)}): {text[:40]!r}...")
    encoded = bytes((119, n)) + raw if n < 256 else b"v" + _U16.pack(n) + raw
    if len(_atom_bytes) < _CACHE_LIMIT:
        _atom_bytes[str(text)] = encoded
    return encoded


_EncodeFn: TypeAlias = Callable[[Any, bytearray], None]


def _make_encoder(nil_atom: str) -> _EncodeFn:
    """The encoding function for one `nil_atom`."""
    nil = _encoded_atom(nil_atom)
    true = _encoded_atom("true")
    false = _encoded_atom("false")
    atom_bytes = _atom_bytes
    small_ints = _SMALL_INTS
    small_tuples = _SMALL_TUPLES

    def put_int(value: int, out: bytearray) -> None:
        if 0 <= value < 256:
            out += small_ints[value]
        elif -0x80000000 <= value < 0x80000000:
            out += _TAG_I32.pack(98, value)
        else:
            magnitude = -value if value < 0 else value
            raw = magnitude.to_bytes((magnitude.bit_length() + 7) >> 3, "little")
            if len(raw) < 256:
                out += bytes((110, len(raw), value < 0))
            else:
                out += _TAG_U32_U8.pack(111, len(raw), value < 0)
            out += raw

    def put_binary(value: bytes, out: bytearray) -> None:
        out += _TAG_U32.pack(109, len(value))
        out += value

    def put_list(items: Any, out: bytearray) -> None:
        out += _TAG_U32.pack(108, len(items))
        for item in items:
            kind = type(item)
            if kind is int and 0 <= item < 256:
                out += small_ints[item]
            elif kind is Atom:
                out += atom_bytes.get(item) or _encoded_atom(item)
            else:
                put(item, out)

    def put_map(pairs: Iterable[tuple[Any, Any]], n: int, out: bytearray) -> None:
        out += _TAG_U32.pack(116, n)
        for key, value in pairs:
            if type(key) is Atom:
                out += atom_bytes.get(key) or _encoded_atom(key)
            else:
                put(key, out)
            put(value, out)

    def put_pid(pid: Pid, out: bytearray) -> None:
        here = _node.current
        if pid._proc is not None and here is not None:  # live: of this node, as it is now
            node, creation = here.name, here.creation
        else:
            node, creation = pid._node, pid._creation
        out += b"X"
        out += atom_bytes.get(node) or _encoded_atom(node)
        out += _U32X3.pack(pid._id, pid._serial, creation)

    def put_ref(ref: Ref, out: bytearray) -> None:
        ident = ref._id
        node = ref._node
        if not isinstance(ident, tuple):  # ours: Erlang's three words
            out += b"Z\x00\x03"
            out += atom_bytes.get(node) or _encoded_atom(node)
            out += _U32X4.pack(
                ref._creation, ident & 0x3FFFF, (ident >> 18) & 0xFFFFFFFF, ident >> 50
            )
        else:
            words = ident
            if not 1 <= len(words) <= 5:
                raise ETFError(f"a reference has 1 to 5 words; {ref!r} has {len(words)}")
            out += b"Z"
            out += _U16.pack(len(words))
            out += atom_bytes.get(node) or _encoded_atom(node)
            out += struct.pack(f">{len(words) + 1}I", ref._creation, *words)

    def put(value: Any, out: bytearray) -> None:
        kind = type(value)
        if kind is Atom:
            out += atom_bytes.get(value) or _encoded_atom(value)
        elif kind is tuple:
            n = len(value)
            out += small_tuples[n] if n < 256 else _TAG_U32.pack(105, n)
            for item in value:
                kind = type(item)
                if kind is Atom:
                    out += atom_bytes.get(item) or _encoded_atom(item)
                elif kind is int and 0 <= item < 256:
                    out += small_ints[item]
                else:
                    put(item, out)
        elif kind is int:
            put_int(value, out)
        elif kind is Pid:
            put_pid(value, out)
        elif kind is Ref:
            put_ref(value, out)
        elif kind is bytes:
            put_binary(value, out)
        elif kind is str:
            put_binary(value.encode("utf-8"), out)
        elif kind is list:
            if value:
                put_list(value, out)
            out += b"j"
        elif kind is dict:
            put_map(value.items(), len(value), out)
        elif value is None:
            out += nil
        elif value is True:
            out += true
        elif value is False:
            out += false
        elif kind is float:
            if value - value != 0.0:
                raise ETFError(f"Erlang floats are finite; cannot encode {value}")
            out += _TAG_F64.pack(70, value)
        elif kind is ImproperList:
            if not value.items:
                raise ETFError("an ImproperList needs at least one item")
            put_list(value.items, out)
            put(value.tail, out)
        elif kind is ListKey:
            if value.items:
                put_list(value.items, out)
            out += b"j"
        elif kind is MapKey:
            put_map(value.pairs, len(value.pairs), out)
        elif kind is bytearray or kind is memoryview:
            put_binary(bytes(value), out)
        elif kind is BitBinary:
            out += _TAG_U32_U8.pack(77, len(value.data), value.bits)
            out += value.data
        elif kind is Port:
            out += b"x"
            out += _encoded_atom(value.node)
            out += _Q_U32.pack(value.id, value.creation)
        elif kind is Export:
            if not 0 <= value.arity < 256:
                raise ETFError(f"a fun's arity is 0 to 255; got {value.arity}")
            out += b"q"
            out += _encoded_atom(value.module)
            out += _encoded_atom(value.function)
            out += small_ints[value.arity]
        elif kind is Fun:
            out += value.data
        elif isinstance(value, int):  # IntEnum, IntFlag...
            put_int(int(value), out)
        elif isinstance(value, str):
            put_binary(str.encode(value, "utf-8"), out)
        elif isinstance(value, (tuple, list, dict, float, bytes)):
            put(_plain(value), out)
        else:
            raise ETFError(
                f"cannot encode a value of type {kind.__name__} as an Erlang term: {value!r}"
            )

    return put


def _plain(value: Any) -> Any:
    """A subclass instance as its base type (a namedtuple as a tuple...)."""
    if isinstance(value, tuple):
        return tuple(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, float):
        return float(value)
    return bytes(value)


_encoders: dict[str, _EncodeFn] = {}


def _encoder(nil_atom: str) -> _EncodeFn:
    found = _encoders.get(nil_atom)
    if found is None:
        found = _encoders[nil_atom] = _make_encoder(str(nil_atom))
    return found


_default_encoder: Final = _encoder("undefined")


def encode(term: Any, *, nil_atom: str = "undefined", compressed: int = 0) -> bytes:
    """Encode `term` with the version byte 131: Erlang's `term_to_binary`.

    Args:
        term: The value to encode.
        nil_atom: the atom None encodes as (`"undefined"`; `"nil"` for Elixir).
        compressed: a zlib level (1 to 9) to compress with, as `term_to_binary(T,
            [{compressed, Level}])`: the result is compressed only when that makes it smaller
            (default 0: not compressed).

    Returns:
        The encoded bytes.

    Raises:
        ETFError: `term` holds a value with no Erlang term (a set, a non-finite float,
            a str with lone surrogates, an atom of more than 255 characters...).
    """
    put = _default_encoder if nil_atom == "undefined" else _encoder(nil_atom)
    out = bytearray(b"\x83")
    try:
        put(term, out)
    except RecursionError:
        raise ETFError(
            "nesting deeper than Python's recursion limit allows (or a value contains itself)"
        ) from None
    except struct.error as exc:
        raise ETFError(f"a number out of range for its field in {term!r:.200}: {exc}") from None
    except UnicodeEncodeError as exc:
        raise ETFError(f"text that is not valid Unicode: {exc}") from None
    if compressed:
        packed = zlib.compress(memoryview(out)[1:], compressed)
        if len(packed) + 6 < len(out):
            return b"\x83P" + _U32.pack(len(out) - 1) + packed
    return bytes(out)
