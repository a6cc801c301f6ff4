"""``monte_carlo_pi`` and its mulberry32 generator (the same uint32 arithmetic as JavaScript)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from browsergrid.ops import run_op, verify_op
from browsergrid.ops._monte_carlo_pi import count_hits, mulberry32


def test_mulberry32_matches_the_javascript_reference() -> None:
    """Values printed by the reference ``mulberry32`` in Node (Math.imul, >>> 0)."""
    assert list(itertools.islice(mulberry32(0), 4)) == [1144304738, 1416247, 958946056, 627933444]
    assert list(itertools.islice(mulberry32(2**32 - 1), 2)) == [3850105811, 813802916]


def test_count_hits_draws_x_then_y_from_the_generator() -> None:
    draws = mulberry32(7)
    expected = 0
    for _ in range(2000):
        x, y = next(draws) / 2**32, next(draws) / 2**32
        expected += x * x + y * y <= 1.0
    assert count_hits(2000, 7) == expected


def test_result_shape_and_a_rough_pi() -> None:
    result = run_op("monte_carlo_pi", {"samples": 100_000, "seed": 1})
    assert sorted(result) == ["hits", "samples"] and result["samples"] == 100_000
    assert abs(4 * result["hits"] / 100_000 - 3.14159) < 0.02


def test_seeds_give_different_draws() -> None:
    hits = {run_op("monte_carlo_pi", {"samples": 1000, "seed": s})["hits"] for s in range(5)}
    assert len(hits) > 1


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ({"seed": 0}, "samples"),
        ({"samples": 0, "seed": 0}, "samples"),
        ({"samples": 10**9 + 1, "seed": 0}, "samples"),
        ({"samples": 10.0, "seed": 0}, "samples"),
        ({"samples": True, "seed": 0}, "samples"),
        ({"samples": "10", "seed": 0}, "samples"),
        ({"samples": 10}, "seed"),
        ({"samples": 10, "seed": -1}, "seed"),
        ({"samples": 10, "seed": 2**32}, "seed"),
        ({"samples": 10, "seed": False}, "seed"),
        ({"samples": 10, "seed": 1.5}, "seed"),
        ({"samples": 10, "seed": None}, "seed"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    args: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=f"^monte_carlo_pi: '{name}' must be an integer from"):
        run_op("monte_carlo_pi", args)


def test_verify() -> None:
    args = {"samples": 1000, "seed": 4294967295}
    assert verify_op("monte_carlo_pi", args, {"hits": 774, "samples": 1000})
    assert not verify_op("monte_carlo_pi", args, {"hits": 775, "samples": 1000})
    assert not verify_op("monte_carlo_pi", args, {"hits": True, "samples": 1000})
    assert not verify_op("monte_carlo_pi", args, {"hits": 774})
    assert not verify_op("monte_carlo_pi", args, 774)
