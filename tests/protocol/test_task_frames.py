"""Frames for a worker that must stay within limits: ``nested_too_deep`` with a depth limit
of its own, and ``encode_task_frames`` splitting a batch of tasks into frames of at most
``limit`` bytes (what the coordinator sends a browsergrid worker)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from browsergrid.protocol import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    Task,
    Tasks,
    decode_server_message,
    encode_task,
    encode_task_frames,
    encode_tasks,
    nested_too_deep,
)

Batch = list[tuple[int | str, str, dict[str, Any]]]


# --- nested_too_deep with a limit -------------------------------------------------------------


def brackets(depth: int) -> str:
    """Arrays ``depth`` deep: ``brackets(2) == "[[]]"``."""
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_nested_too_deep_counts_against_the_limit_given(as_bytes: bool) -> None:
    def deep(frame: str, limit: int) -> bool:
        return nested_too_deep(frame.encode() if as_bytes else frame, limit)

    assert not deep(brackets(3), 3) and deep(brackets(4), 3)
    assert not deep('{"a":[{"b":1}]}', 3) and deep('{"a":[{"b":[]}]}', 3)
    assert not deep("[[],[],{},[]]", 2)  # more brackets than the limit, siblings
    assert deep("[[],[[[]]]]", 3)  # the deepest branch counts
    assert not deep('["[[[[{{{{", {"k": "]]]][[[["}]', 2)  # brackets in strings do not nest
    assert not deep("1", 0) and deep("[]", 0)


def test_nested_too_deep_defaults_to_max_depth() -> None:
    assert not nested_too_deep(brackets(MAX_DEPTH))
    assert nested_too_deep(brackets(MAX_DEPTH + 1))
    assert nested_too_deep(brackets(MAX_DEPTH), MAX_DEPTH - 1)
    assert not nested_too_deep(brackets(MAX_DEPTH + 1), MAX_DEPTH + 1)


# --- encode_task_frames -----------------------------------------------------------------------


def batch(count: int, size: int = 10) -> Batch:
    """``count`` tasks whose argument ``s`` is ``size`` characters long."""
    return [(task_id, "op", {"s": "a" * size}) for task_id in range(1, count + 1)]


def decoded(frames: list[str]) -> list[Task]:
    """The tasks the frames carry, as a worker reads them."""
    tasks: list[Task] = []
    for frame in frames:
        message = decode_server_message(frame)
        if isinstance(message, Tasks):
            assert len(message.tasks) > 1  # a lone task goes in a task frame
            tasks.extend(message.tasks)
        else:
            assert isinstance(message, Task)
            tasks.append(message)
    return tasks


def as_tasks(tasks: Batch) -> list[Task]:
    return [Task(task_id=task_id, op=op, args=args) for task_id, op, args in tasks]


def test_tasks_that_fit_go_in_one_tasks_frame() -> None:
    tasks: Batch = [(1, "op", {"x": [1, None]}), ("t-2", "other", {"y": {"z": "w"}})]
    assert encode_task_frames(tasks) == [encode_tasks(tasks)]
    assert decoded(encode_task_frames(tasks)) == as_tasks(tasks)


def test_a_single_task_gets_a_flat_task_frame() -> None:
    tasks: Batch = [(7, "op", {"x": 1, "nested": {"op": [1]}})]
    frames = encode_task_frames(tasks)
    assert frames == [encode_task(7, "op", {"x": 1, "nested": {"op": [1]}})]
    assert json.loads(frames[0])["type"] == "task"
    assert decode_server_message(frames[0]) == Task(
        task_id=7, op="op", args={"x": 1, "nested": {"op": [1]}}
    )


def test_no_tasks_no_frames() -> None:
    assert encode_task_frames([]) == []


def test_the_limit_is_a_frame_size_that_may_be_reached_but_not_passed() -> None:
    tasks = batch(5)
    whole = encode_tasks(tasks)
    assert encode_task_frames(tasks, limit=len(whole)) == [whole]  # exactly at the limit

    frames = encode_task_frames(tasks, limit=len(whole) - 1)  # one byte short: split
    assert frames == [encode_tasks(tasks[:4]), encode_task(*tasks[4])]
    assert decoded(frames) == as_tasks(tasks)


def test_tasks_are_split_into_as_few_frames_as_the_limit_allows_in_order() -> None:
    tasks = batch(7)
    two = len(encode_tasks(tasks[:2]))  # every task encodes to the same size but its id
    frames = encode_task_frames(tasks, limit=two)
    assert frames == [
        encode_tasks(tasks[0:2]),
        encode_tasks(tasks[2:4]),
        encode_tasks(tasks[4:6]),
        encode_task(*tasks[6]),  # the one left: a task frame
    ]
    assert all(len(frame.encode()) <= two for frame in frames)
    assert decoded(frames) == as_tasks(tasks)

    three = len(encode_tasks(tasks[:3]))
    assert encode_task_frames(tasks, limit=three - 1) == frames  # not quite three: two
    assert encode_task_frames(tasks, limit=three) == [
        encode_tasks(tasks[0:3]),
        encode_tasks(tasks[3:6]),
        encode_task(*tasks[6]),
    ]


def test_a_task_larger_than_the_limit_goes_alone_in_a_task_frame() -> None:
    small, big = batch(1)[0], (2, "op", {"s": "b" * 500})
    tasks: Batch = [small, big, (3, "op", {"s": "c"}), (4, "op", {"s": "d"})]
    limit = len(encode_tasks([tasks[2], tasks[3]]))
    assert limit < len(encode_task(*big))
    frames = encode_task_frames(tasks, limit=limit)
    assert frames == [encode_task(*small), encode_task(*big), encode_tasks(tasks[2:])]
    assert decoded(frames) == as_tasks(tasks)
    assert encode_task_frames([big], limit=10) == [encode_task(*big)]  # alone, first


def test_frame_sizes_are_counted_in_bytes_not_characters() -> None:
    tasks: Batch = [(1, "op", {"s": "é" * 10}), (2, "op", {"s": "é" * 10})]
    whole = encode_tasks(tasks)
    assert len(whole.encode()) > len(whole)
    assert encode_task_frames(tasks, limit=len(whole.encode())) == [whole]
    assert encode_task_frames(tasks, limit=len(whole.encode()) - 1) == [
        encode_task(*tasks[0]),
        encode_task(*tasks[1]),
    ]


def test_the_default_limit_is_max_frame_bytes() -> None:
    half = MAX_FRAME_BYTES // 2
    tasks: Batch = [(1, "op", {"s": "a" * half}), (2, "op", {"s": "b" * half})]
    frames = encode_task_frames(tasks)  # together just over MAX_FRAME_BYTES
    assert frames == [encode_task(*tasks[0]), encode_task(*tasks[1])]
    fits: Batch = [(1, "op", {"s": "a" * (half - 100)}), (2, "op", {"s": "b" * (half - 100)})]
    assert encode_task_frames(fits) == [encode_tasks(fits)]


@pytest.mark.parametrize("name", ["type", "task_id", "op"])
def test_encode_task_frames_refuses_reserved_argument_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"argument names \['{name}'\] are reserved"):
        encode_task_frames([(1, "x", {"a": 1}), (2, "x", {name: 2})])
