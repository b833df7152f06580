"""Mistakes a newcomer makes get an error or a warning that says what to do."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from behaviours import CallbackNameWarning, GenServer, InvalidChildSpec, Supervisor


def test_a_misspelled_callback_is_warned_about_when_the_class_is_defined() -> None:
    with pytest.warns(CallbackNameWarning) as caught:

        class Counter(GenServer[int]):
            def handle_cal(self, request: Any, from_: Any, state: int) -> Any: ...

    assert [str(w.message) for w in caught] == [
        "Counter.handle_cal is not a callback: did you mean handle_call?"
    ]


def test_a_supervisor_whose_init_is_misspelled_is_warned_about() -> None:
    with pytest.warns(
        CallbackNameWarning, match=r"^Tree\.inti is not a callback: did you mean init\?$"
    ):

        class Tree(Supervisor):
            def inti(self, arg: Any) -> Any: ...


def test_helpers_named_like_callbacks_are_left_alone() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Server(GenServer[int]):
            def handle_client(self, client: Any) -> None: ...

            def initial(self) -> int:
                return 0

        class Tree(Supervisor):
            def init(self, arg: Any) -> Any: ...

            def init_children(self) -> list[Any]:
                return []

    assert (Server.__name__, Tree.__name__) == ("Server", "Tree")


class Counter(GenServer[int]):
    def init(self, arg: int) -> int:
        return arg


async def test_two_children_of_one_class_are_told_to_take_an_id(node: object) -> None:
    children = [Counter.child_spec(0, name="a"), Counter.child_spec(1, name="b")]
    with pytest.raises(InvalidChildSpec) as info:
        await Supervisor.start_link(children)
    assert str(info.value).splitlines()[0] == (
        f"duplicate child id {Counter!r}; each child of Counter needs an id of its own: "
        "Counter.child_spec(arg, id=..., name=...)"
    )
