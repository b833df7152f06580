"""The chat protocol's parser: every line is a command or an `ERR` reason, never an
exception."""

from __future__ import annotations

import pytest

from apps.chat.protocol import MAX_LINE, Error, Join, Leave, Nick, Quit, Say, Who, err, parse


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"NICK ann", Nick("ann")),
        (b"nick ann", Nick("ann")),
        (b"JOIN lobby", Join("lobby")),
        (b"JOIN #rust-lang.fr", Join("#rust-lang.fr")),
        (b"LEAVE lobby", Leave("lobby")),
        (b"WHO lobby", Who("lobby")),
        (b"SAY lobby hello there", Say("lobby", "hello there")),
        (b"SAY lobby  leading space kept", Say("lobby", " leading space kept")),
        ("SAY lobby héllo wörld ✓".encode(), Say("lobby", "héllo wörld ✓")),
        (b"SAY lobby hi\r", Say("lobby", "hi")),
        (b"QUIT", Quit()),
    ],
)
def test_a_valid_line_is_its_command(line: bytes, command: object) -> None:
    assert parse(line) == command


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty line"),
        (b"   ", "empty line"),
        (b"HELLO", "unknown command"),
        (b"NICK", "bad nick"),
        (b"NICK two words", "bad nick"),
        (b"NICK " + b"a" * 33, "bad nick"),
        (b"NICK a,b", "bad nick"),
        (b"JOIN", "bad room"),
        (b"JOIN a b", "bad room"),
        (b"WHO ", "bad room"),
        (b"SAY lobby", "bad text"),
        (b"SAY lobby ", "bad text"),
        (b"SAY lobby bell\x07", "bad text"),
        (b"SAY bad,room hi", "bad room"),
        (b"QUIT now", "QUIT takes nothing"),
        (b"SAY lobby \xff\xfe", "invalid utf-8"),
        (b"\xc3", "invalid utf-8"),
        (b"SAY lobby " + b"x" * MAX_LINE, "line too long"),
    ],
)
def test_a_bad_line_is_an_error_with_its_reason(line: bytes, reason: str) -> None:
    assert parse(line) == Error(reason)


def test_the_longest_line_is_accepted_and_one_more_byte_is_not() -> None:
    head = b"SAY lobby "
    longest = head + b"x" * (MAX_LINE - len(head))
    assert parse(longest) == Say("lobby", "x" * (MAX_LINE - len(head)))
    assert parse(longest + b"\r") == Say("lobby", "x" * (MAX_LINE - len(head)))
    assert parse(longest + b"x") == Error("line too long")


def test_an_error_is_one_line() -> None:
    assert err("bad nick") == b"ERR bad nick\n"
