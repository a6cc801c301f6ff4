"""``repeat_multiply``: the exercise's ``initial * factor ** times``, or the loop, exactly."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from browsergrid.ops._args import MAX_SAFE, boolean, integer, number

NAME: Final = "repeat_multiply"
REL_TOLERANCE: Final = 1e-12  # pow of another language may differ in the last bits
MAX_EXACT_TIMES: Final = 10**8  # the loop takes seconds in Python, not hours
QUICK_EXACT_TIMES: Final = 10_000  # multiplications a quick task may loop over (~0.3 ms)


def run(args: Mapping[str, Any]) -> float:
    """``initial * pow(factor, times)`` like JavaScript's ``Math.pow``; with ``exact`` true,
    ``times`` multiplications in a loop (the same doubles in every language)."""
    initial, factor, times, exact = _parse(args)
    if exact:
        result = initial
        for _ in range(times):
            result = result * factor
        return result
    try:
        return initial * math.pow(factor, times)
    except OverflowError:
        return initial * math.copysign(math.inf, factor if times % 2 else 1.0)


def quick(args: Mapping[str, Any]) -> bool:
    """One ``pow`` (not ``exact``), or a loop of at most ``QUICK_EXACT_TIMES``."""
    if args.get("exact") is not True:
        return True
    times = args.get("times")
    return not isinstance(times, int) or times <= QUICK_EXACT_TIMES


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """Within a relative error of 1e-12 of ``run`` (exactly equal with ``exact``); a result
    that is not finite travels as JSON ``null``."""
    expected = run(args)
    if not math.isfinite(expected):
        return result is None or (
            isinstance(result, float)
            and (result == expected or (math.isnan(result) and math.isnan(expected)))
        )
    if isinstance(result, bool) or not isinstance(result, int | float):
        return False
    try:
        value = float(result)
    except OverflowError:
        return False
    if value == expected:
        return True
    exact = args.get("exact", False)
    return not exact and abs(value - expected) <= REL_TOLERANCE * abs(expected)


def agree(args: Mapping[str, Any], a: Any, b: Any) -> bool:
    """Two workers' results are the same: equal (both ``null`` for a result that is not
    finite), or within a relative error of 1e-12 of each other unless ``exact``."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return False
    x, y = float(a), float(b)
    if x == y:
        return True
    if args.get("exact", False) is not False or not (math.isfinite(x) and math.isfinite(y)):
        return False
    return abs(x - y) <= REL_TOLERANCE * max(abs(x), abs(y))


def _parse(args: Mapping[str, Any]) -> tuple[float, float, int, bool]:
    initial = number(args, NAME, "initial")
    factor = number(args, NAME, "factor")
    times = integer(args, NAME, "times", 0, MAX_SAFE, "0 to 2**53 - 1")
    exact = boolean(args, NAME, "exact", False)
    if exact:
        integer(args, NAME, "times", 0, MAX_EXACT_TIMES, "0 to 10**8 in exact mode")
    return initial, factor, times, exact
