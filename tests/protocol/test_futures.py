"""Futures as arguments: reading the ``{"$future": ID}`` markers of a submit's arguments
(``future_id``, ``futures_in``, ``task_futures``) and putting results in their place
(``resolve_futures``)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from browsergrid.protocol import (
    FUTURE,
    MAX_FUTURES,
    MAX_RESOLVED_BYTES,
    args_futures,
    future_id,
    futures_in,
    resolve_futures,
    task_futures,
)

NOT_AN_ID = r"^a future's '\$future' must be a task id: an integer >= 1$"
NOT_ALONE = r"^a future is an object with '\$future' as its only member$"


def fut(task_id: Any) -> dict[str, Any]:
    return {FUTURE: task_id}


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
    assert task_futures({"x": fut(1), "y": [2, {"z": fut(3)}], "n": 4}) == frozenset({1, 3})
    assert task_futures({}) == frozenset()
    assert task_futures({"n": 1, "s": "$future", "f": 1.5, "none": None}) == frozenset()
    assert task_futures({"xs": [1, 2], "d": {"k": "v"}}) == frozenset()


@pytest.mark.parametrize(
    "args",
    [
        {"x": fut(0)},
        {"x": [fut(1), fut("2")]},
        {"x": {FUTURE: 1, "y": 2}},
        {"xs": [fut(task_id) for task_id in range(1, MAX_FUTURES + 2)]},
    ],
)
def test_a_stored_task_with_malformed_futures_waits_for_nothing(args: dict[str, Any]) -> None:
    assert task_futures(args) == frozenset()


def test_arguments_that_are_themselves_a_future_are_refused_at_submit() -> None:
    args = fut(3)  # the whole arguments object is the marker
    with pytest.raises(
        ValueError, match=r'put a future under a name, as \{"x": \{"\$future": 3\}\}'
    ):
        args_futures(args)  # what server/_submit.py checks a submit with
    assert task_futures(args) == frozenset()  # so the scheduler never waits for one


def test_the_submit_check_and_the_scheduler_find_the_same_futures() -> None:
    args = {"a": fut(1), "b": [fut(2), {"c": fut(1)}], "d": 4}
    assert args_futures(args) == task_futures(args) == frozenset({1, 2})


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


def test_the_arguments_with_results_in_must_fit_in_a_task_frame() -> None:
    args = {"x": fut(1)}
    overhead = len(msgspec.json.encode({"x": ""}))  # {"x":""}: 8 bytes
    assert overhead == 8
    fits = "a" * (MAX_RESOLVED_BYTES - overhead)
    resolved = resolve_futures(args, {1: fits})
    assert resolved == {"x": fits} and len(msgspec.json.encode(resolved)) == MAX_RESOLVED_BYTES

    size = MAX_RESOLVED_BYTES + 1
    with pytest.raises(ValueError) as raised:
        resolve_futures(args, {1: fits + "a"})
    assert str(raised.value) == (
        f"its arguments with the results of the tasks it depends on are {size} bytes as "
        f"JSON, over the {MAX_RESOLVED_BYTES} a task frame allows: have those tasks return "
        "smaller results (a large result is kept as a blob by a worker that can), or make "
        "each task depend on fewer of them (reduce in a tree)"
    )


def test_many_small_results_add_up() -> None:
    count = 64
    per_result = MAX_RESOLVED_BYTES // count
    args = {"xs": [fut(task_id) for task_id in range(1, count + 1)]}
    results = {task_id: "a" * per_result for task_id in range(1, count + 1)}
    with pytest.raises(ValueError, match="a task frame allows"):
        resolve_futures(args, results)
