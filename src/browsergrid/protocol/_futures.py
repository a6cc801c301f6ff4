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

from browsergrid.protocol._messages import MAX_DEPTH, MAX_FRAME_BYTES, nested_too_deep
from browsergrid.protocol._refs import BLOB

FUTURE: Final = "$future"
"""The member that makes a JSON object a future (reserved: a user's object must not use it)."""
MAX_FUTURES: Final = 4096
"""Distinct tasks one task may depend on."""
FUTURES_DEPTH: Final = MAX_DEPTH // 2 - 4
"""How deep arrays and objects may nest in a task's arguments that hold futures, and in a
result passed on: together, with the task frame around them, within ``MAX_DEPTH``."""
MAX_RESOLVED_BYTES: Final = MAX_FRAME_BYTES // 2
"""The results put into one task's arguments, as JSON, at most (with the arguments, at most
64 KiB more, they fit in a task frame). A dependent over it fails, saying so."""
_encode = msgspec.json.Encoder().encode
_FUTURE_MEMBER: Final = b'"' + FUTURE.encode() + b'"'


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
    return frozenset(_count_futures(value))


def _count_futures(value: Any) -> dict[int, int]:
    """Task id -> how many futures name it, in a JSON value; ValueError as ``futures_in``."""
    found: dict[int, int] = {}
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if FUTURE in item:
                task_id = future_id(item)
                found[task_id] = found.get(task_id, 0) + 1
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    if len(found) > MAX_FUTURES:
        raise ValueError(f"a task may depend on at most {MAX_FUTURES} tasks, not {len(found)}")
    return found


def args_futures(args: Mapping[str, Any], encoded: bytes | None = None) -> frozenset[int]:
    """The tasks a task's arguments (an object of named values) wait for: what a submit is
    checked with (``encoded``: the arguments as JSON, when at hand). ValueError for a
    malformed future, too many, arguments that are themselves a future rather than an
    object that holds one under a name, or that nest deeper than ``FUTURES_DEPTH``."""
    if FUTURE in args:
        raise ValueError(
            f"a task's arguments are named values: put a future under a name, as "
            f'{{"x": {{"{FUTURE}": {args[FUTURE]!r}}}}}'
        )
    found = futures_in(list(args.values()))
    if found and nested_too_deep(_encode(args) if encoded is None else encoded, FUTURES_DEPTH):
        raise ValueError(
            f"arguments that hold futures may nest arrays and objects {FUTURES_DEPTH} deep "
            "at most (the results go in where the futures are)"
        )
    return found


def task_futures(args: Mapping[str, Any]) -> dict[int, int]:
    """The tasks a stored task's arguments wait for, each with how many futures name it
    (its result goes in that many times). They were checked at submit with
    ``args_futures``; malformed ones wait for none. Plain values are not walked."""
    if not any(isinstance(value, dict | list) for value in args.values()):
        return {}
    try:
        if args_futures(args):
            return _count_futures(list(args.values()))
    except ValueError:
        pass
    return {}


def result_size(result: Any) -> int:
    """The size of a result as JSON, as it would stand in a dependent's arguments.
    ValueError for a result that holds a ``$blob`` or ``$future`` object anywhere but a
    ref at its top (a large result its worker uploaded, checked then): passed on, it would
    read as a ref or a future there."""
    encoded = _encode(result)
    if nested_too_deep(encoded, FUTURES_DEPTH):
        raise ValueError(f"it nests arrays and objects deeper than {FUTURES_DEPTH}")
    if (b'"' + BLOB.encode() + b'"' in encoded or _FUTURE_MEMBER in encoded) and _marked(
        result, top=True
    ):
        raise ValueError(
            f'it holds an object with a "{BLOB}" or "{FUTURE}" member, which another '
            "task's arguments would read as a ref or a future"
        )
    return len(encoded)


def _marked(value: Any, *, top: bool = False) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if FUTURE in item or (BLOB in item and not (top and item is value)):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def resolve_futures(args: dict[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    """``args`` with each future replaced by its task's result (``results``: task id ->
    result). Results are put in as they are (``result_size`` checks them first)."""
    resolved = _put_results(args, results)
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
