"""Futures as arguments: reading the ``{"$future": ID}`` markers of a submit's arguments
(``future_id``, ``futures_in``, ``args_futures``, ``task_futures``), measuring the results
that go in their place (``result_size``) and putting them in (``resolve_futures``)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from browsergrid.protocol import (
    BLOB,
    FUTURE,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_FUTURES,
    MAX_RESOLVED_BYTES,
    args_futures,
    future_id,
    futures_in,
    resolve_futures,
    result_size,
    task_futures,
)
from browsergrid.protocol._futures import FUTURES_DEPTH

NOT_AN_ID = r"^a future's '\$future' must be a task id: an integer >= 1$"
NOT_ALONE = r"^a future is an object with '\$future' as its only member$"


def fut(task_id: Any) -> dict[str, Any]:
    return {FUTURE: task_id}


def nest(depth: int, inner: Any = 0) -> Any:
    """``inner`` in ``depth`` arrays: ``nest(2, 0) == [[0]]``."""
    for _ in range(depth):
        inner = [inner]
    return inner


# --- one marker --------------------------------------------------------------------------


def test_a_future_is_an_object_naming_a_task_id() -> None:
    assert FUTURE == "$future"
    assert future_id(fut(7)) == 7
    assert future_id(fut(2**53)) == 2**53


@pytest.mark.parametrize("task_id", [True, False, 0, -3, "7", 7.0, None, [7], {"id": 7}])
def test_a_future_must_name_an_integer_task_id_of_at_least_1(task_id: Any) -> None:
    with pytest.raises(ValueError, match=NOT_AN_ID):
        future_id(fut(task_id))


def test_a_future_has_no_other_member() -> None:
    with pytest.raises(ValueError, match=NOT_ALONE):
        future_id({FUTURE: 7, "size": 1})
    with pytest.raises(ValueError, match=NOT_AN_ID):  # the id is checked first
        future_id({FUTURE: 0, "size": 1})


# --- the markers of arguments ------------------------------------------------------------


def test_futures_are_found_at_any_depth_once_per_task() -> None:
    args = {
        "a": fut(1),
        "b": [1, {"c": [fut(2), {"d": fut(1)}]}, [[fut(3)]]],
        "e": "text with $future in it",
        "f": {"g": None, "h": {"$futures": 4}},
    }
    assert futures_in(args) == frozenset({1, 2, 3})
    assert futures_in({"plain": [1, 2, {"x": None}], "n": 5}) == frozenset()
    assert futures_in([fut(5), fut(6)]) == frozenset({5, 6})
    assert futures_in(fut(8)) == frozenset({8})
    assert futures_in("text") == frozenset() and futures_in(None) == frozenset()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"x": fut(True)}, NOT_AN_ID),
        ({"x": fut(0)}, NOT_AN_ID),
        ({"x": fut(-1)}, NOT_AN_ID),
        ({"x": fut("1")}, NOT_AN_ID),
        ({"x": [1, {"y": {"z": fut(1.5)}}]}, NOT_AN_ID),
        ({"x": {FUTURE: 1, "also": 2}}, NOT_ALONE),
        ({"x": [fut(1), {FUTURE: 2, "size": 3}]}, NOT_ALONE),
    ],
)
def test_a_malformed_future_anywhere_is_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        futures_in(args)


def test_a_task_depends_on_at_most_max_futures_distinct_tasks() -> None:
    most = {"xs": [fut(task_id) for task_id in range(1, MAX_FUTURES + 1)]}
    assert futures_in(most) == frozenset(range(1, MAX_FUTURES + 1))
    assert futures_in({"xs": [fut(1)] * (MAX_FUTURES + 10)}) == frozenset({1})  # one task
    too_many = {"xs": [*most["xs"], {"y": fut(MAX_FUTURES + 1)}]}
    message = f"^a task may depend on at most {MAX_FUTURES} tasks, not {MAX_FUTURES + 1}$"
    with pytest.raises(ValueError, match=message):
        futures_in(too_many)


def test_the_futures_of_a_stored_task() -> None:
    assert task_futures({"x": fut(1), "y": [2, {"z": fut(3)}], "n": 4}) == {1: 1, 3: 1}
    assert task_futures({"xs": [fut(1), fut(1), {"y": fut(1)}], "z": fut(2)}) == {1: 3, 2: 1}
    assert task_futures({}) == {}
    assert task_futures({"n": 1, "s": "$future", "f": 1.5, "none": None}) == {}
    assert task_futures({"xs": [1, 2], "d": {"k": "v"}}) == {}


@pytest.mark.parametrize(
    "args",
    [
        {"x": fut(0)},
        {"x": [fut(1), fut("2")]},
        {"x": {FUTURE: 1, "y": 2}},
        {"xs": [fut(task_id) for task_id in range(1, MAX_FUTURES + 2)]},
        {"x": nest(FUTURES_DEPTH - 1, fut(1))},  # too deep
    ],
)
def test_a_stored_task_with_malformed_futures_waits_for_nothing(args: dict[str, Any]) -> None:
    assert task_futures(args) == {}


def test_arguments_that_are_themselves_a_future_are_refused_at_submit() -> None:
    args = fut(3)  # the whole arguments object is the marker
    with pytest.raises(
        ValueError, match=r'put a future under a name, as \{"x": \{"\$future": 3\}\}'
    ):
        args_futures(args)  # what server/_submit.py checks a submit with
    assert task_futures(args) == {}  # so the scheduler never waits for one


def test_the_submit_check_and_the_scheduler_find_the_same_futures() -> None:
    args = {"a": fut(1), "b": [fut(2), {"c": fut(1)}], "d": 4}
    assert args_futures(args) == frozenset(task_futures(args)) == frozenset({1, 2})


# --- putting results in --------------------------------------------------------------------


def test_results_go_in_place_of_their_futures_at_any_depth() -> None:
    args = {"a": fut(1), "b": [fut(2), {"c": fut(1), "d": 4}], "e": "text"}
    results = {1: {"x": [1, 2]}, 2: None, 3: "unused"}
    assert resolve_futures(args, results) == {
        "a": {"x": [1, 2]},
        "b": [None, {"c": {"x": [1, 2]}, "d": 4}],
        "e": "text",
    }
    assert args == {"a": fut(1), "b": [fut(2), {"c": fut(1), "d": 4}], "e": "text"}
    assert resolve_futures({"n": 1}, {}) == {"n": 1}


def test_results_are_not_walked() -> None:
    args = {"x": fut(1), "y": [fut(2)]}
    results = {1: fut(2), 2: [fut(1)]}  # results that look like futures stay as they are
    assert resolve_futures(args, results) == {"x": fut(2), "y": [[fut(1)]]}


def test_results_are_put_in_as_they_are_whatever_their_size() -> None:
    big = "a" * MAX_FRAME_BYTES  # resolve_futures does not measure (result_size does)
    args = {"x": fut(1), "y": [fut(1)]}
    assert resolve_futures(args, {1: big}) == {"x": big, "y": [big]}


# --- how deep arguments with futures may nest -------------------------------------------------

TOO_DEEP_ARGS = (
    f"^arguments that hold futures may nest arrays and objects {FUTURES_DEPTH} deep at most "
    r"\(the results go in where the futures are\)$"
)


def test_futures_depth_leaves_room_for_a_result_and_the_task_frame() -> None:
    assert FUTURES_DEPTH == MAX_DEPTH // 2 - 4 == 28


def test_arguments_with_futures_nest_at_most_futures_depth() -> None:
    # the arguments object, FUTURES_DEPTH - 2 arrays, the future object: FUTURES_DEPTH deep
    at_limit = {"x": nest(FUTURES_DEPTH - 2, fut(1))}
    assert args_futures(at_limit) == frozenset(task_futures(at_limit)) == frozenset({1})
    with pytest.raises(ValueError, match=TOO_DEEP_ARGS):
        args_futures({"x": nest(FUTURES_DEPTH - 1, fut(1))})
    # anywhere in them, not only around the future
    with pytest.raises(ValueError, match=TOO_DEEP_ARGS):
        args_futures({"x": fut(1), "deep": nest(FUTURES_DEPTH)})
    assert args_futures({"x": fut(1), "deep": nest(FUTURES_DEPTH - 1)}) == frozenset({1})


def test_arguments_without_futures_are_not_depth_checked_here() -> None:
    deep = {"deep": nest(MAX_DEPTH)}
    assert args_futures(deep) == frozenset(task_futures(deep)) == frozenset()
    assert args_futures(deep, msgspec.json.encode(deep)) == frozenset()


def test_the_depth_is_read_from_the_encoded_arguments_when_given() -> None:
    shallow = {"x": fut(1)}
    deep = {"x": nest(FUTURES_DEPTH - 1, fut(1))}
    with pytest.raises(ValueError, match=TOO_DEEP_ARGS):
        args_futures(shallow, msgspec.json.encode(deep))
    assert args_futures(deep, msgspec.json.encode(shallow)) == frozenset({1})


# --- measuring a result -----------------------------------------------------------------------

MARKED = (
    r'^it holds an object with a "\$blob" or "\$future" member, which another task\'s '
    r"arguments would read as a ref or a future$"
)
TOO_DEEP_RESULT = f"^it nests arrays and objects deeper than {FUTURES_DEPTH}$"
DIGEST = "0" * 64


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        5,
        -1.5,
        "text",
        "",
        [],
        {},
        [1, "two", None, {"three": [3.0]}],
        {"a": {"b": [1, 2]}, "c": "d"},
        "$blob",  # strings: not members
        "$future",
        ["$blob", {"note": "$future"}, '"$blob"'],
        {"$blobs": 1, "future": 2, "blob": {"$futures": 3}},  # other members
        {"x": "[[[[{{{{" * 20},  # brackets in strings do not nest
        {BLOB: DIGEST, "size": 3},  # a ref at the top: a large result its worker uploaded
        {BLOB: DIGEST, "size": 3, "format": "json"},
        nest(FUTURES_DEPTH),
        {"a": nest(FUTURES_DEPTH - 1)},
    ],
)
def test_a_result_measures_its_size_as_json(value: Any) -> None:
    assert result_size(value) == len(msgspec.json.encode(value))


def test_result_size_is_the_size_of_the_result_as_json() -> None:
    assert [result_size(v) for v in (5, "abc", None, {"a": [1, 2]})] == [1, 5, 4, 11]
    assert result_size("a" * MAX_RESOLVED_BYTES) == MAX_RESOLVED_BYTES + 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (nest(FUTURES_DEPTH + 1), TOO_DEEP_RESULT),
        ({"a": nest(FUTURES_DEPTH)}, TOO_DEEP_RESULT),
        ({"x": {BLOB: DIGEST, "size": 3}}, MARKED),  # a ref, not at the top
        ([{BLOB: DIGEST, "size": 3}], MARKED),
        ({BLOB: DIGEST, "size": 3, "more": {BLOB: DIGEST}}, MARKED),  # a ref in the ref
        (fut(1), MARKED),  # a future, at the top
        ({"x": [1, fut(2)]}, MARKED),
        ([[{FUTURE: "not even an id"}]], MARKED),
        ({BLOB: DIGEST, FUTURE: 1}, MARKED),  # a ref at the top that is a future too
        ({BLOB: DIGEST, "x": fut(1)}, MARKED),
        (nest(FUTURES_DEPTH + 1, fut(1)), TOO_DEEP_RESULT),  # depth is checked first
    ],
)
def test_a_result_that_cannot_be_passed_on_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        result_size(value)
