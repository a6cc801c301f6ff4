"""``repeat_multiply``: the exercise's ``initial * factor ** times``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_MAX_SAFE = 2**53 - 1  # the largest integer JavaScript (the browser twin) holds exactly


def run(args: Mapping[str, Any]) -> float:
    """``initial * factor ** times`` as a double, like JavaScript's ``Math.pow``."""
    initial = _number(args, "initial")
    factor = _number(args, "factor")
    times = args.get("times")
    if isinstance(times, bool) or not isinstance(times, int) or not 0 <= times <= _MAX_SAFE:
        raise ValueError("'times' must be an integer from 0 to 2**53 - 1")
    try:
        return initial * math.pow(factor, times)
    except OverflowError:
        return initial * math.copysign(math.inf, factor if times % 2 else 1.0)


def _number(args: Mapping[str, Any], name: str) -> float:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name!r} must be a number")
    return float(value)
