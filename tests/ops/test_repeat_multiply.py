"""``repeat_multiply``, the exercise's op (web/js/ops.js is the twin)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from browsergrid.ops import run_op, verify_op

WELCOME_ARGS = {"initial": 1.0000054, "factor": 1.00000043, "times": 1000000}  # protocol.md
WELCOME_RESULT = 1.5372656826974733
WELCOME_EXACT_RESULT = 1.537265682697442


def rm(initial: Any = 1.0, factor: Any = 2.0, times: Any = 3, **exact: Any) -> Any:
    args = {"initial": initial, "factor": factor, "times": times, **exact}
    return run_op("repeat_multiply", args)


def verify(
    result: Any, initial: Any = 1.0, factor: Any = 2.0, times: Any = 3, **exact: Any
) -> bool:
    args = {"initial": initial, "factor": factor, "times": times, **exact}
    return verify_op("repeat_multiply", args, result)


def test_the_welcome_task_gives_the_documented_result() -> None:
    assert run_op("repeat_multiply", WELCOME_ARGS) == pytest.approx(
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
        ({"initial": math.inf, "factor": 2.0, "times": 1}, "initial"),
        ({"initial": math.nan, "factor": 2.0, "times": 1}, "initial"),
        ({"initial": 10**400, "factor": 2.0, "times": 1}, "initial"),
        ({"factor": 2.0, "times": 1}, "initial"),
        ({"initial": 1.0, "factor": False, "times": 1}, "factor"),
        ({"initial": 1.0, "factor": "2", "times": 1}, "factor"),
        ({"initial": 1.0, "factor": [2.0], "times": 1}, "factor"),
        ({"initial": 1.0, "factor": -math.inf, "times": 1}, "factor"),
        ({"initial": 1.0, "factor": 2.0, "times": True}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": "3"}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": -1}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": 1.5}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": 3.0}, "times"),
        ({"initial": 1.0, "factor": 2.0}, "times"),
        ({"initial": 1.0, "factor": 2.0, "times": 1, "exact": 1}, "exact"),
        ({"initial": 1.0, "factor": 2.0, "times": 1, "exact": "true"}, "exact"),
        ({"initial": 1.0, "factor": 2.0, "times": 1, "exact": None}, "exact"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_op_and_argument(
    args: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=f"^repeat_multiply: '{name}' must be"):
        run_op("repeat_multiply", args)
    with pytest.raises(ValueError, match=f"^repeat_multiply: '{name}' must be"):
        verify_op("repeat_multiply", args, 1.0)


# --- exact mode: the loop, multiplication by multiplication ---


def test_exact_mode_multiplies_in_a_loop() -> None:
    value = run_op("repeat_multiply", {**WELCOME_ARGS, "exact": True})
    assert value == WELCOME_EXACT_RESULT != WELCOME_RESULT
    expected = 1.0000054
    for _ in range(1000000):
        expected *= 1.00000043
    assert value == expected


@pytest.mark.parametrize(("initial", "factor"), [(2.5, 7.0), (-1.0, 0.0), (3, 2)])
def test_exact_mode_with_times_zero_gives_initial(initial: float, factor: float) -> None:
    assert rm(initial, factor, 0, exact=True) == initial


def test_exact_false_is_the_default() -> None:
    assert rm(1.5, 1.1, 50, exact=False) == rm(1.5, 1.1, 50)


def test_exact_mode_overflows_to_infinity_and_underflows_to_zero() -> None:
    assert rm(1.0, 10.0, 400, exact=True) == math.inf
    assert rm(-1.0, 10.0, 400, exact=True) == -math.inf
    assert rm(1.0, 0.5, 1100, exact=True) == 0.0


# --- verify ---


def test_verify_accepts_a_relative_error_up_to_1e_12() -> None:
    args = {"initial": 1.5, "factor": 1.1, "times": 50}
    assert verify(176.08627931954368, **args)
    assert verify(176.08627931954368 * (1 + 0.9e-12), **args)
    assert verify(176.08627931954368 * (1 - 0.9e-12), **args)
    assert not verify(176.08627931954368 * (1 + 1.1e-12), **args)
    assert not verify(176.08627931954368 * (1 - 1.1e-12), **args)


def test_verify_in_exact_mode_wants_the_same_double() -> None:
    args = {**WELCOME_ARGS, "exact": True}
    assert verify_op("repeat_multiply", args, WELCOME_EXACT_RESULT)
    assert not verify_op("repeat_multiply", args, math.nextafter(WELCOME_EXACT_RESULT, 2.0))
    assert not verify_op("repeat_multiply", args, WELCOME_RESULT)


def test_verify_accepts_an_integer_as_json_writes_whole_doubles() -> None:
    """JavaScript's JSON.stringify(3072) is ``3072``: Python decodes an int."""
    assert verify(3072, 3, 2, 10)
    assert verify(3072, 3, 2, 10, exact=True)
    assert verify(0, 0.0, 2.0, 3)
    assert verify(0, -0.0, 2.0, 3, exact=True)  # JSON.stringify(-0) is "0"
    assert not verify(3073, 3, 2, 10)
    assert not verify(10**400, 3, 2, 10)


@pytest.mark.parametrize("exact", [False, True])
def test_verify_wants_null_for_a_result_that_is_not_finite(exact: bool) -> None:
    """JSON has no Infinity: JavaScript's JSON.stringify and msgspec both write ``null``."""
    assert verify(None, 1.0, 10.0, 400, exact=exact)
    assert verify(math.inf, 1.0, 10.0, 400, exact=exact)
    assert not verify(-math.inf, 1.0, 10.0, 400, exact=exact)
    assert not verify(1.7976931348623157e308, 1.0, 10.0, 400, exact=exact)
    assert not verify("Infinity", 1.0, 10.0, 400, exact=exact)
    assert verify(None, 0.0, 10.0, 400)  # 0 * inf: NaN
    assert verify(math.nan, 0.0, 10.0, 400)
    assert not verify(None, 1.0, 2.0, 3, exact=exact)


@pytest.mark.parametrize("result", [True, False, "8.0", [8.0], {"result": 8.0}, math.nan])
def test_verify_refuses_a_malformed_result(result: Any) -> None:
    assert verify(result) is False


def test_exact_mode_caps_times_at_10_to_the_8() -> None:
    args = {"initial": 1.0, "factor": 1.0, "exact": True}
    with pytest.raises(ValueError, match="10\\*\\*8 in exact mode"):
        run_op("repeat_multiply", {**args, "times": 10**8 + 1})
    assert run_op("repeat_multiply", {**args, "times": 1000}) == 1.0
