"""Futures as arguments (docs/protocol.md, "Futures as arguments"): ``{"$future": ID}``.

A submit may put ``{"$future": TASK_ID}`` anywhere in a task's arguments: the task waits
until that task is done, and its worker gets the result in the marker's place (a JSON
value, or the ref of a result kept as a blob). ``args_futures`` reads the markers of a
submit's arguments; ``resolve_futures`` puts the results in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from browsergrid.protocol._messages import MAX_FRAME_BYTES

FUTURE: Final = "$future"
"""The member that makes a JSON object a future (reserved: a user's object must not use it)."""
MAX_FUTURES: Final = 4096
"""Distinct tasks one task may depend on."""
MAX_RESOLVED_BYTES: Final = MAX_FRAME_BYTES // 2
"""A task's arguments with its dependencies' results put in, as JSON, at most: it must fit
in a task frame. A dependent over it fails, saying so."""
_encode = msgspec.json.Encoder().encode


def future_id(value: Mapping[str, Any]) -> int:
    """The task id an object with a ``$future`` member names; ValueError saying what is
    wrong with a malformed one."""
    task_id = value.get(FUTURE)
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
        raise ValueError(f"a future's {FUTURE!r} must be a task id: an integer >= 1")
    if len(value) != 1:
        raise ValueError(f"a future is an object with {FUTURE!r} as its only member")
    return task_id


def futures_in(value: Any) -> frozenset[int]:
    """The task ids of every future in a JSON value (objects and arrays at any depth);
    ValueError for a malformed one, or for more than ``MAX_FUTURES`` distinct tasks."""
    found: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if FUTURE in item:
                found.add(future_id(item))
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    if len(found) > MAX_FUTURES:
        raise ValueError(f"a task may depend on at most {MAX_FUTURES} tasks, not {len(found)}")
    return frozenset(found)


def args_futures(args: Mapping[str, Any]) -> frozenset[int]:
    """The tasks a task's arguments (an object of named values) wait for: what a submit is
    checked with. ValueError for a malformed future, too many, or arguments that are
    themselves a future rather than an object that holds one under a name."""
    if FUTURE in args:
        raise ValueError(
            f"a task's arguments are named values: put a future under a name, as "
            f'{{"x": {{"{FUTURE}": {args[FUTURE]!r}}}}}'
        )
    return futures_in(list(args.values()))


def task_futures(args: Mapping[str, Any]) -> frozenset[int]:
    """The tasks a stored task's arguments wait for (they were checked at submit with
    ``args_futures``; malformed ones wait for none). Plain values are not walked."""
    if not any(isinstance(value, dict | list) for value in args.values()):
        return frozenset()
    try:
        return args_futures(args)
    except ValueError:
        return frozenset()


def resolve_futures(args: dict[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    """``args`` with each future replaced by its task's result (``results``: task id ->
    result; results are not walked: a result that looks like a future stays as it is).
    ValueError when the outcome is over ``MAX_RESOLVED_BYTES`` as JSON."""
    resolved = _put_results(args, results)
    size = len(_encode(resolved))
    if size > MAX_RESOLVED_BYTES:
        raise ValueError(
            f"its arguments with the results of the tasks it depends on are {size} bytes "
            f"as JSON, over the {MAX_RESOLVED_BYTES} a task frame allows: have those tasks "
            "return smaller results (a large result is kept as a blob by a worker that "
            "can), or make each task depend on fewer of them (reduce in a tree)"
        )
    assert isinstance(resolved, dict)
    return resolved


def _put_results(value: Any, results: Mapping[int, Any]) -> Any:
    if isinstance(value, dict):
        if FUTURE in value:
            return results[value[FUTURE]]
        return {key: _put_results(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_put_results(item, results) for item in value]
    return value
