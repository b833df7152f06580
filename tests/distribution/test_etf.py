"""otp.dist.etf: the External Term Format against golden vectors of a real term_to_binary,
round trips (in Python, and through erl), and malformed input.

The golden vectors come from `tests/distribution/make_golden.escript` (OTP 25), committed as
`golden_etf.json` so that these tests run without erl.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otp
import otp.dist
from otp import Pid, Ref
from otp.dist import (
    Atom,
    BitBinary,
    ETFError,
    Export,
    Fun,
    ImproperList,
    ListKey,
    MapKey,
    Port,
    decode,
    decode_from,
    encode,
)

HERE = Path(__file__).resolve().parent
GOLDEN: list[dict[str, Any]] = json.loads((HERE / "golden_etf.json").read_text())
BY_NAME = {v["name"]: v for v in GOLDEN}


class FunLike:
    """What a golden local fun must decode to: a Fun of that module and arity."""

    def __init__(self, module: str, arity: int) -> None:
        self.module = module
        self.arity = arity

    def __repr__(self) -> str:
        return f"FunLike({self.module!r}, {self.arity})"


NAMESPACE = {
    "Atom": Atom,
    "Pid": Pid,
    "Ref": Ref,
    "Port": Port,
    "ImproperList": ImproperList,
    "BitBinary": BitBinary,
    "ListKey": ListKey,
    "MapKey": MapKey,
    "Export": Export,
    "FunLike": FunLike,
}


def expected(vector: dict[str, Any]) -> Any:
    return eval(vector["python"], dict(NAMESPACE))


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not True, Atom is not str)."""
    if type(b) is FunLike:
        return type(a) is Fun and a.module == b.module and a.arity == b.arity
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is ImproperList:
        return same(a.items, b.items) and same(a.tail, b.tail)
    if type(a) is Ref:
        return a == b and type(a._id) is type(b._id)
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    return bool(a == b)


def vector_bytes(name: str) -> bytes:
    return bytes.fromhex(BY_NAME[name]["hex"])


# -- golden vectors -------------------------------------------------------------------------


def test_the_golden_vectors_cover_every_tag() -> None:
    def tags(data: bytes) -> set[int]:
        return {data[1]} | ({data[6]} if data[1] == 80 else set())

    seen: set[int] = set()
    for vector in GOLDEN:
        data = bytes.fromhex(vector["hex"])
        seen |= tags(data)
        seen.update(data[2:])  # rough: inner tags show up among the bytes
    wanted = {97, 98, 70, 99, 100, 115, 118, 119, 104, 105, 106, 107, 108, 109, 77, 110, 111}
    wanted |= {88, 103, 90, 101, 114, 89, 102, 120, 112, 113, 116, 80}
    assert wanted <= seen
    firsts = {bytes.fromhex(v["hex"])[1] for v in GOLDEN}
    for top in (70, 99, 100, 115, 118, 119, 105, 107, 77, 110, 111, 88, 103, 90, 101, 114):
        assert top in firsts, top
    for top in (89, 102, 120, 112, 113, 116, 80):
        assert top in firsts, top


@pytest.mark.parametrize("vector", GOLDEN, ids=[v["name"] for v in GOLDEN])
def test_golden_vector_decodes_to_its_value(vector: dict[str, Any]) -> None:
    value = decode(bytes.fromhex(vector["hex"]))
    assert same(value, expected(vector)), (value, vector["python"])


@pytest.mark.parametrize("vector", GOLDEN, ids=[v["name"] for v in GOLDEN])
def test_golden_vector_encodes_back(vector: dict[str, Any]) -> None:
    """Canonical vectors come back byte for byte. The others (lists of bytes, which Erlang
    writes as STRING_EXT; NEW_PORT, which we write as V4_PORT; the legacy tags) come back as
    another encoding of the same term."""
    data = bytes.fromhex(vector["hex"])
    value = decode(data)
    again = encode(value, compressed=vector["compressed"])
    if vector["canonical"]:
        assert again.hex() == vector["hex"]
    else:
        assert again != data
        assert same(decode(again), value)


def test_the_non_canonical_vectors_are_the_expected_ones() -> None:
    odd = {v["name"] for v in GOLDEN if not v["canonical"]}
    assert odd == {
        "list_nested",  # [1, [2, [3]]] holds lists of bytes: STRING_EXT in Erlang
        "map_atoms",
        "map_list_key",
        "map_tuple_with_list_key",
        "string_ints",
        "string_hello",
        "string_latin1",
        "port",  # NEW_PORT_EXT
        "float_ext_99",
        "atom_ext_100",
        "atom_ext_100_latin1",
        "small_atom_ext_115",
        "atom_utf8_ext_118_short",  # a short atom is SMALL_ATOM_UTF8_EXT
        "pid_ext_103",
        "port_ext_102",
        "reference_ext_101",
        "new_reference_ext_114",
        "bit_binary_8_bits",  # a whole binary
        "list_with_list_tail",  # [1 | [2]] is [1, 2]
    }


def test_decoded_atoms_are_atoms_and_special_atoms_are_python_constants() -> None:
    assert decode(vector_bytes("atom_ok")) == "ok"
    assert type(decode(vector_bytes("atom_ok"))) is Atom
    assert repr(decode(vector_bytes("atom_ok"))) == "Atom('ok')"
    assert decode(vector_bytes("atom_true")) is True
    assert decode(vector_bytes("atom_undefined")) is None
    assert decode(vector_bytes("atom_nil")) == Atom("nil")


def test_elixir_nil_is_none_with_nil_atom() -> None:
    assert decode(vector_bytes("atom_nil"), nil_atom="nil") is None
    assert decode(vector_bytes("atom_undefined"), nil_atom="nil") == Atom("undefined")
    assert encode(None, nil_atom="nil") == vector_bytes("atom_nil")
    assert encode(None) == vector_bytes("atom_undefined")


def test_binaries_decode_as_bytes_or_as_text() -> None:
    data = encode(("héllo", b"\xff\xfe"))
    assert decode(data) == ("héllo".encode(), b"\xff\xfe")
    text, raw = decode(data, binaries="str")
    assert (text, raw) == ("héllo", b"\xff\xfe")  # not UTF-8: stays bytes
    with pytest.raises(ValueError, match="binaries"):
        decode(data, binaries="text")  # type: ignore[arg-type]


def test_remote_pids_refs_and_ports_round_trip_exactly() -> None:
    pid = decode(vector_bytes("pid_serial"))
    assert (pid.node, pid.id, pid.serial) == ("golden_etf@vm", 1000, 5)
    ref = decode(vector_bytes("ref_make_ref"))
    assert type(ref._id) is tuple and len(ref._id) == 3
    assert hash(ref) == hash(decode(vector_bytes("ref_make_ref")))
    assert repr(ref).startswith("#Ref<golden_etf@vm.")
    for words in ((1,), (1, 2, 3, 4), (1, 2, 3, 4, 5)):
        remote = Ref("a@b", words, 7)
        assert same(decode(encode(remote)), remote)
    port = Port("a@b", 1 << 40, 9)
    assert decode(encode(port)) == port


def test_a_local_pid_decodes_as_the_live_pid_and_a_local_ref_as_itself() -> None:
    async def main() -> None:
        async def idle() -> None:
            await otp.receive()

        pid = otp.spawn(idle)
        again = decode(encode(pid))
        assert again is pid
        otp.send(again, "stop")
        ref = otp.make_ref()
        back = decode(encode((ref, [ref])))
        assert back == (ref, [ref]) and type(back[0]._id) is int
        big = Ref(ref.node, (1 << 81) + 12345, ref._creation)
        assert decode(encode(big)) == big
        foreign = decode(vector_bytes("ref_make_ref"))
        assert type(foreign._id) is tuple  # another node's ref keeps its words
        gone = Pid(pid.node, 10**6, 0, pid.creation)
        assert decode(encode(gone)) == gone  # no such process: a plain pid

    otp.run(main, loop="asyncio")


def test_improper_lists_and_call_tags() -> None:
    tag = decode(vector_bytes("improper_alias_tag"))
    assert type(tag) is ImproperList and tag.items == [Atom("alias")] and type(tag.tail) is Ref
    assert hash(tag) == hash(decode(vector_bytes("improper_alias_tag")))
    nested = decode(vector_bytes("improper_alias_tag_nested"))
    assert nested.items == [tag] and nested.tail == Atom("foo")
    with pytest.raises(ETFError, match="at least one item"):
        encode(ImproperList([], Atom("x")))


def test_list_and_map_keys_are_hashable_stand_ins_that_encode_back() -> None:
    value = decode(vector_bytes("map_list_key"))
    assert value == {ListKey((1, 2)): Atom("x"), ListKey(()): Atom("empty")}
    assert encode(value) == encode({ListKey([]): Atom("empty"), ListKey([1, 2]): Atom("x")})
    keyed = decode(vector_bytes("map_map_key"))
    assert keyed == {MapKey([(Atom("a"), 1)]): Atom("y")}
    assert MapKey([(1, 2), (3, 4)]) == MapKey([(3, 4), (1, 2)])
    assert hash(MapKey([(1, 2), (3, 4)])) == hash(MapKey([(3, 4), (1, 2)]))
    assert ListKey([1]) != (1,) and ListKey([1]) != [1]


def test_funs_are_opaque_and_encode_back_byte_for_byte() -> None:
    fun = decode(vector_bytes("fun_with_free_var"))
    assert type(fun) is Fun and fun.arity == 1 and "escript" in fun.module
    assert "arity=1" in repr(fun)
    assert encode(fun) == vector_bytes("fun_with_free_var")
    assert decode(vector_bytes("export_fun")) == Export(Atom("erlang"), Atom("abs"), 1)


def test_values_of_python_types_that_have_an_erlang_term() -> None:
    assert decode(encode(bytearray(b"ab"))) == b"ab"
    assert decode(encode(memoryview(b"abc")[1:])) == b"bc"
    assert decode(encode(BitBinary(b"\xa0", 3))) == BitBinary(b"\xa0", 3)
    assert BitBinary(b"\xff\x80", 1).bit_size == 9
    with pytest.raises(ETFError, match="1 to 8 bits"):
        BitBinary(b"", 3)
    assert decode(encode([])) == [] and encode([]) == b"\x83j"
    assert decode(encode((1,) * 300)) == (1,) * 300
    assert decode(encode(list(range(1000)))) == list(range(1000))
    for n in (0, 1, -1, 255, 256, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**2040, -(2**2040)):
        assert decode(encode(n)) == n
    import enum

    class Color(enum.IntEnum):
        RED = 1

    assert decode(encode(Color.RED)) == 1
    point = collections.namedtuple("point", "x y")
    assert decode(encode(point(1, [2]))) == (1, [2])

    class Name(str):
        pass

    assert decode(encode(Name("x"))) == b"x"
    assert decode(encode({Atom("k"): 1.5})) == {Atom("k"): 1.5}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "cannot encode a value of type set"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (Atom("x" * 256), "atom longer than 255 characters"),
        ("\ud800", "not valid Unicode"),
        (Pid("a@b", 2**32, 0, 1), "out of range"),
        (Ref("a@b", (1,) * 6, 1), "1 to 5 words"),
        (Export(Atom("m"), Atom("f"), 300), "arity"),
    ],
)
def test_values_without_an_erlang_term_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ETFError, match=message):
        encode(value)


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ETFError, match="recursion"):
        encode(loop)


def test_atoms_of_255_characters_and_more_bytes_use_atom_utf8() -> None:
    atom = Atom("ö" * 255)
    assert encode(atom) == vector_bytes("atom_255_chars_utf8")


def test_compressed_encoding_only_when_smaller() -> None:
    assert encode(Atom("ok"), compressed=6) == encode(Atom("ok"))
    big = encode([Atom("hello")] * 100, compressed=6)
    assert big[1] == 80 and decode(big) == [Atom("hello")] * 100


# -- decode_from and pass-through frames ---------------------------------------------------


def test_decode_from_reads_the_terms_of_a_pass_through_frame() -> None:
    control = (22, Pid("a@vm", 1, 0, 5), Pid("py@vm", 2, 0, 6))
    message = (Atom("$gen_call"), (control[1], Ref("a@vm", (1, 2, 3), 5)), (Atom("get"), 1))
    frame = b"p" + encode(control) + encode(message)
    view = memoryview(frame)
    got, at = decode_from(view, 1)
    assert got == control
    msg, end = decode_from(view, at)
    assert msg == message and end == len(frame)
    assert decode_from(view[1:], 0)[0] == control  # a view of part of the frame
    assert decode_from(bytearray(frame), 1)[0] == control
    compressed = b"p" + encode([Atom("x")] * 50, compressed=9) + encode(1)
    value, at = decode_from(compressed, 1)
    assert value == [Atom("x")] * 50 and decode_from(compressed, at) == (1, len(compressed))


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x83", "truncated"),
        (b"\x84a\x01", "version byte 131 at offset 0, got 132"),
        (b"\x83\xc8", "unknown tag 200 at offset 1"),
        (b"\x83h\x02a\x01\xc8", "unknown tag 200 at offset 5"),
        (b"\x83R\x01", "atom cache reference"),
        (b"\x83h\x01R\x01", "atom cache reference"),
        (b"\x83a\x01a\x02", "2 bytes after the term, from offset 3"),
        (b"\x83l\xff\xff\xff\xff", "truncated"),
        (b"\x83m\xff\xff\xff\xffab", "truncated"),
        (b"\x83t\xff\xff\xff\xff", "truncated"),
        (b"\x83i\xff\xff\xff\xff", "truncated"),
        (b"\x83o\xff\xff\xff\xff\x00", "truncated"),
        (b"\x83n\x01\x02\x05", "sign byte 2"),
        (b"\x83w\x02\xff\xfe", "not valid UTF-8"),
        (b"\x83v\x01\x00" + b"a" * 256, "atom at offset 1 longer than 255 characters"),
        (b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00", "not finite"),
        (b"\x83c" + b"abc".ljust(31, b"\0"), "not a number"),
        (b"\x83Z\x00\x06w\x01a" + b"\0" * 28, "6 words"),
        (b"\x83r\x00\x00w\x01a\x00", "0 words"),
        (b"\x83M\x00\x00\x00\x01\x09\xff", "9 bits"),
        (b"\x83q\x77\x01m\x77\x01fb\x00\x00\x00\x01", "arity that is not a small integer"),
        (b"\x83p\x00\x00\x00\x05\x01\x00\x00\x00", "too few"),
        (b"\x83l\x00\x00\x00\x00a\x01", "no items but an improper tail"),
        (b"\x83h\x01P\x00\x00\x00\x01x", r"compressed term \(tag 80\) inside a term at offset 3"),
        (b"\x83t\x00\x00\x00\x02a\x01a\x02F?\xf0\x00\x00\x00\x00\x00\x00a\x03", "equal in Python"),
        (b"\x83P\x00\x00\x00\x05garbage", "not valid zlib data"),
        (b"\x83P\x00\x00\x00\x00" + zlib.compress(b"j"), "declares 0 bytes"),
        (b"\x83P\x00\x00\x00\x03" + zlib.compress(b"a\x01"), "expands to 2 bytes, not the 3"),
        (b"\x83P\x00\x00\x00\x01" + zlib.compress(b"a\x01"), "beyond the 1 bytes"),
        (b"\x83P\x00\x00\x00\x02" + zlib.compress(b"j\x01"), "takes 1 of its 2 bytes"),
        (b"\x83P\x00\x00\x00\x02" + zlib.compress(b"a\x01")[:-3], "ends early"),
        (b"\x83P\x00\x00\x00\x02" + zlib.compress(b"h\x01"), "ends early"),
    ],
)
def test_malformed_input_is_refused_with_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ETFError, match=message):
        decode(data)


def test_decode_from_refuses_bad_offsets() -> None:
    with pytest.raises(ETFError, match="negative"):
        decode_from(b"\x83a\x01", -1)
    with pytest.raises(ETFError, match="truncated"):
        decode_from(b"\x83a\x01", 3)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep = b"\x83" + b"h\x01" * 100_000 + b"j"
    with pytest.raises(ETFError, match="nesting deeper than 500"):
        decode(deep)
    lists = b"\x83" + b"l\x00\x00\x00\x01" * 600 + b"j" * 601
    with pytest.raises(ETFError, match="nesting deeper than 500"):
        decode(lists)
    maps = b"\x83" + b"t\x00\x00\x00\x01a\x01" * 10 + b"j"
    with pytest.raises(ETFError, match="nesting deeper than 5 "):
        decode(maps, max_depth=5)
    ok = b"\x83" + b"h\x01" * 400 + b"j"
    assert decode(ok) is not None
    with pytest.raises(ETFError, match="nesting deeper than 10 "):
        decode(ok, max_depth=10)


def test_a_zip_bomb_is_refused_before_it_expands() -> None:
    inner = b"m" + struct.pack(">I", 2_000_000) + bytes(2_000_000)
    bomb = b"\x83P" + struct.pack(">I", len(inner)) + zlib.compress(inner, 9)
    assert len(bomb) < 10_000
    with pytest.raises(ETFError, match="term larger than the limit"):
        decode(bomb, max_size=1_000_000)
    assert decode(bomb) == bytes(2_000_000)
    liar = b"\x83P" + struct.pack(">I", 100) + zlib.compress(inner, 9)  # expands beyond
    with pytest.raises(ETFError, match="beyond the 100 bytes"):
        decode(liar)
    huge = b"\x83P\xff\xff\xff\xff" + zlib.compress(b"j")
    with pytest.raises(ETFError, match="term larger than the limit"):
        decode(huge)


def test_every_truncation_of_every_golden_vector_is_refused() -> None:
    for vector in GOLDEN:
        data = bytes.fromhex(vector["hex"])
        for n in range(len(data)):
            with pytest.raises(ETFError):
                decode(data[:n])


def check_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ETFError):
        decode(data)


def test_flipped_bytes_give_a_term_or_an_etf_error() -> None:
    rng = random.Random(131)
    for vector in GOLDEN:
        data = bytearray.fromhex(vector["hex"])
        for _ in range(60):
            mutant = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                mutant[rng.randrange(len(mutant))] = rng.randrange(256)
            check_never_crashes(bytes(mutant))


def test_random_bytes_give_a_term_or_an_etf_error() -> None:
    rng = random.Random(80)
    tags = [70, 77, 88, 90, 97, 98, 100, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113]
    tags += [114, 115, 116, 118, 119, 120, 80, 82, 99, 101, 102, 103, 89]
    for _ in range(4000):
        body = bytes(
            rng.choice(tags) if rng.random() < 0.4 else rng.randrange(256)
            for _ in range(rng.randint(0, 30))
        )
        check_never_crashes(b"\x83" + body)


# -- property tests -------------------------------------------------------------------------

atoms = st.text(st.characters(codec="utf-8"), max_size=12).map(Atom)
pids = st.builds(
    Pid,
    st.sampled_from(["a@vm", "erl@127.0.0.1", "ñode@h"]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
refs = st.builds(
    Ref,
    st.sampled_from(["a@vm", "b@h"]),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=5).map(tuple),
    st.integers(0, 2**32 - 1),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
key_scalars = st.one_of(st.integers(), st.binary(max_size=8), atoms, pids, refs)
keys = st.recursive(key_scalars, lambda kids: st.tuples(kids, kids), max_leaves=4)
scalars = st.one_of(
    st.integers(),
    finite,
    st.binary(max_size=16),
    st.text(max_size=16),
    atoms,
    st.booleans(),
    st.none(),
    pids,
    refs,
    st.builds(BitBinary, st.binary(min_size=1, max_size=4), st.integers(1, 7)),
)
terms = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.lists(kids, max_size=5).map(tuple),
        st.dictionaries(keys, kids, max_size=4),
        st.builds(ImproperList, st.lists(kids, min_size=1, max_size=3), scalars),
    ),
    max_leaves=25,
)


def normalized(value: Any) -> Any:
    """What a Python value decodes back as: text as bytes, atoms true/false/undefined as
    True/False/None."""
    kind = type(value)
    if kind is str:
        return value.encode()
    if kind is Atom:
        return {"true": True, "false": False, "undefined": None}.get(value, value)
    if kind is list:
        return [normalized(v) for v in value]
    if kind is tuple:
        return tuple(normalized(v) for v in value)
    if kind is dict:
        return {normalized(k): normalized(v) for k, v in value.items()}
    if kind is ImproperList:
        return ImproperList([normalized(v) for v in value.items], normalized(value.tail))
    return value


@given(terms)
def test_terms_round_trip(term: Any) -> None:
    data = encode(term)
    assert same(decode(data), normalized(term))
    assert encode(decode(data)) == encode(normalized(term))
    assert same(decode_from(b"xyz" + data + b"tail", 3)[0], normalized(term))


@given(st.lists(st.text(max_size=8), max_size=4))
def test_text_round_trips_with_binaries_as_str(texts: list[str]) -> None:
    assert decode(encode(texts), binaries="str") == texts


# -- through a real erl ---------------------------------------------------------------------

ERL_ROUND_TRIP = """
[In, Out] = init:get_plain_arguments(),
{ok, Data} = file:read_file(In),
Lines = [L || L <- binary:split(Data, <<"\\n">>, [global]), L =/= <<>>],
Back = [[binary:encode_hex(term_to_binary(binary_to_term(binary:decode_hex(L)),
                                          [{minor_version, 2}])), "\\n"] || L <- Lines],
ok = file:write_file(Out, Back),
halt().
"""


def erl_batch() -> list[Any]:
    batch: list[Any] = [
        0,
        -(2**80),
        2**2048,
        1.5,
        -2.5e-300,
        Atom("ok"),
        Atom("héllo"),
        Atom("ö" * 255),
        True,
        None,
        "text ü",
        b"\x00\xff",
        BitBinary(b"\xa0", 3),
        (),
        tuple(range(300)),
        [],
        [1, 2, 3],
        [Atom("a"), [Atom("b")], -1],
        ImproperList([Atom("alias")], Ref("a@vm", (147064, 3543662594, 3103485137), 7)),
        {Atom("k"): [1, {2: 3}], ListKey([1, 2]): {Atom("a"): 1}},
        Pid("py@vm", 42, 3, 9),
        Ref("py@vm", (1, 2, 3), 9),
        Port("py@vm", 5, 9),
        Export(Atom("erlang"), Atom("abs"), 1),
        decode(vector_bytes("fun_with_free_var")),
        decode(vector_bytes("gen_call_alias_tag")),
    ]
    rng = random.Random(7)
    batch += [_random_term(rng, 4) for _ in range(150)]
    return batch


def _random_term(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(12 if depth else 7)
    if choice == 0:
        return rng.choice([0, 255, 256, -1, 2**31, -(2**31) - 1, 2**70, -(2**100)])
    if choice == 1:
        return rng.uniform(-1e10, 1e10)
    if choice == 2:
        return Atom(rng.choice(["a", "b", "é", "$gen_call", "x" * 200]))
    if choice == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(10)))
    if choice == 4:
        return rng.choice([True, False, None])
    if choice == 5:
        return Pid("n@h", rng.randrange(2**15), rng.randrange(2**13), rng.randrange(1, 2**32))
    if choice == 6:
        return Ref("n@h", (rng.randrange(2**18), rng.randrange(2**32), rng.randrange(2**32)), 3)
    kids = [_random_term(rng, depth - 1) for _ in range(rng.randrange(5))]
    if choice in (7, 8):
        return kids
    if choice == 9:
        return tuple(kids)
    if choice == 10:
        return {rng.randrange(1000): kid for kid in kids}
    return ImproperList([*kids, 1], Atom("tail"))


def test_terms_round_trip_through_erl(tmp_path: Path) -> None:
    erl = shutil.which("erl")
    if erl is None:
        if os.environ.get("OTP_REQUIRE_ERL") == "1":
            pytest.fail("OTP_REQUIRE_ERL=1 but erl is not installed")
        pytest.skip("erl is not installed: apt-get install -y erlang-base")
    batch = erl_batch()
    ours = [encode(term) for term in batch]
    (tmp_path / "in").write_text("".join(data.hex() + "\n" for data in ours))
    subprocess.run(
        [
            erl,
            "-noshell",
            "-eval",
            ERL_ROUND_TRIP,
            "-extra",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
        ],
        check=True,
        timeout=30,
    )
    back = [bytes.fromhex(line) for line in (tmp_path / "out").read_text().split()]
    assert len(back) == len(batch)
    for term, data, theirs in zip(batch, ours, back, strict=True):
        assert same(decode(theirs), decode(data)), term
        assert same(decode(theirs), normalized(term)), term
    assert back[5] == ours[5] and back[18] == ours[18] and back[25] == ours[25]


def test_the_package_exports_the_codec() -> None:
    assert otp.dist.__all__ == sorted(otp.dist.__all__, key=lambda n: (not n.isupper(), n))
    for name in ("Atom", "ETFError", "ImproperList", "encode", "decode", "decode_from"):
        assert name in otp.dist.__all__
        assert hasattr(otp.dist, name)
    assert Atom.__module__ == "otp.dist"
