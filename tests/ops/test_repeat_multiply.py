"""``repeat_multiply``, the exercise's op, and the op table (web/js/ops.js is the twin)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from browsergrid.core import WelcomeTask
from browsergrid.ops import OPS, Op, run_op

WELCOME_RESULT = 1.5372656826974733


def rm(initial: Any = 1.0, factor: Any = 2.0, times: Any = 3) -> Any:
    return run_op("repeat_multiply", {"initial": initial, "factor": factor, "times": times})


def test_the_welcome_task_gives_the_documented_result() -> None:
    assert run_op("repeat_multiply", dict(WelcomeTask().args)) == pytest.approx(
        WELCOME_RESULT, rel=1e-12, abs=0
    )


@pytest.mark.parametrize(
    ("initial", "factor", "times", "expected"),
    [(1.0, 2.0, 3, 8.0), (3, 2, 10, 3072.0), (-1.5, 2.0, 1, -3.0), (2.0, 0.5, 2, 0.5)],
)
def test_initial_times_factor_to_the_power(
    initial: Any, factor: Any, times: int, expected: float
) -> None:
    value = rm(initial, factor, times)
    assert (value, type(value)) == (expected, float)


@pytest.mark.parametrize(("initial", "factor"), [(2.5, 7.0), (2.5, 0.0), (-1.0, -3.0)])
def test_times_zero_gives_initial(initial: float, factor: float) -> None:
    assert rm(initial, factor, 0) == initial


@pytest.mark.parametrize(
    ("initial", "factor", "times", "expected"),
    [
        (1.0, 10.0, 400, math.inf),
        (-2.0, 10.0, 400, -math.inf),
        (1.0, -10.0, 400, math.inf),
        (1.0, -10.0, 401, -math.inf),
        (-1.0, -10.0, 401, math.inf),
        (1.0, 2.0, 10**6, math.inf),
    ],
)
def test_overflow_gives_infinity_with_the_right_sign(
    initial: float, factor: float, times: int, expected: float
) -> None:
    assert rm(initial, factor, times) == expected


def test_underflow_gives_zero() -> None:
    assert rm(1.0, 0.5, 10_000) == 0.0


def test_times_beyond_javascripts_safe_integers_is_refused_like_in_the_browser() -> None:
    """A JSON integer of 400 digits decodes to a Python int; the JavaScript twin refuses it."""
    with pytest.raises(ValueError, match="'times'"):
        rm(1.0, 0.5, 10**400)
    with pytest.raises(ValueError, match="'times'"):
        rm(1.0, 0.5, 2**53)
    assert rm(1.0, 1.0, 2**53 - 1) == 1.0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ({"initial": True, "factor": 2.0, "times": 1}, "initial"),
        ({"initial": "1", "factor": 2.0, "times": 1}, "initial"),
        ({"initial": None, "factor": 2.0, "times": 1}, "initial"),
        ({"factor": 2.0, "times": 1}, "initial"),
        ({"initial": 1.0, "factor": False, "times": 1}, "factor"),
        ({"initial": 1.0, "factor": "2", "times": 1}, "factor"),
        ({"initial": 1.0, "factor": [2.0], "times": 1}, "factor"),
        ({"initial": 1.0, "factor": 2.0, "times": True}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": "3"}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": -1}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": 1.5}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": 3.0}, "times"),
        ({"initial": 1.0, "factor": 2.0}, "times"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    args: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        run_op("repeat_multiply", args)


def test_unknown_op_raises_value_error_naming_the_op() -> None:
    with pytest.raises(
        ValueError, match=r"unknown op 'nope'; this worker runs \['repeat_multiply'\]"
    ):
        run_op("nope", {})


def test_op_table() -> None:
    assert sorted(OPS) == ["repeat_multiply"]
    op = OPS["repeat_multiply"]
    assert isinstance(op, Op)
    assert op.name == "repeat_multiply"
    assert op.run({"initial": 1.0, "factor": 2.0, "times": 3}) == 8.0
