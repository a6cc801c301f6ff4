"""Argument checks shared by the ops; each failure is a ValueError naming the op and argument.

The JavaScript twin (web/js/ops.js) applies the same checks, so a task a browser refuses is
one a Python worker refuses too. Messages are fit to send back as a task ``error``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

MAX_SAFE: Final = 2**53 - 1  # the largest integer JavaScript (the browser twin) holds exactly


def fail(op: str, name: str, must: str) -> ValueError:
    """The error for argument ``name`` of ``op``: ``raise fail(op, "x", "a number")``."""
    return ValueError(f"{op}: {name!r} must be {must}")


def integer(args: Mapping[str, Any], op: str, name: str, lo: int, hi: int, text: str) -> int:
    """``args[name]`` as an int in ``lo..hi``; a bool, a float (even 3.0) or a missing value
    is refused, as JavaScript's ``Number.isSafeInteger`` cannot tell 3.0 from 3 but JSON can."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise fail(op, name, f"an integer from {text}")
    return value


def number(args: Mapping[str, Any], op: str, name: str) -> float:
    """``args[name]`` as a finite float (an int is converted; a bool is refused)."""
    return finite(args.get(name), op, name, "a finite number")


def finite(value: Any, op: str, name: str, must: str) -> float:
    """``value`` as a finite float, or the error ``must`` for ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(op, name, must)
    try:
        converted = float(value)
    except OverflowError:  # an int beyond the doubles: JavaScript parses it as Infinity
        raise fail(op, name, must) from None
    if not math.isfinite(converted):
        raise fail(op, name, must)
    return converted


def boolean(args: Mapping[str, Any], op: str, name: str, default: bool) -> bool:
    """``args[name]`` if it is a bool, ``default`` if absent; anything else is refused."""
    if name not in args:
        return default
    value = args[name]
    if not isinstance(value, bool):
        raise fail(op, name, "a boolean")
    return value


def same(result: Any, expected: Any) -> bool:
    """Whether an untrusted ``result`` is the JSON value ``expected``: equal, and of the same
    JSON type at every level (``True`` is not ``1``, ``1.0`` is not ``1``); never raises."""
    if isinstance(expected, dict):
        return (
            isinstance(result, dict)
            and result.keys() == expected.keys()
            and all(same(result[key], value) for key, value in expected.items())
        )
    if isinstance(expected, list):
        if not isinstance(result, list) or len(result) != len(expected):
            return False
        if all(type(item) is int for item in expected):  # fast path: mandelbrot's counts
            return all(type(item) is int for item in result) and result == expected
        return all(map(same, result, expected))
    return type(result) is type(expected) and bool(result == expected)


def agree_exactly(args: Mapping[str, Any], a: Any, b: Any) -> bool:
    """Two results are the same JSON value, of the same type at every level (``same``)."""
    return same(a, b)
