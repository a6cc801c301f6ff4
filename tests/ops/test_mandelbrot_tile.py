"""``mandelbrot_tile``: escape-time counts in a fixed order of double operations."""

from __future__ import annotations

import math
from typing import Any

import pytest

from browsergrid.ops import run_op, verify_op

ARGS: dict[str, Any] = {"region": [-2.0, 1.0, -1.0, 1.0], "width": 6, "height": 4, "max_iter": 30}


def reference(
    re_min: float, re_max: float, im_min: float, im_max: float, w: int, h: int, m: int
) -> list[int]:
    """The definition in docs/protocol.md, with complex numbers for the plane (the escape
    test and the step are written out: ``abs`` and complex products round differently)."""
    counts = []
    for py in range(h):
        for px in range(w):
            c = complex(re_min + (re_max - re_min) * px / w, im_min + (im_max - im_min) * py / h)
            zr = zi = 0.0
            n = 0
            while n < m and zr * zr + zi * zi <= 4.0:
                zr, zi = zr * zr - zi * zi + c.real, 2.0 * zr * zi + c.imag
                n += 1
            counts.append(n)
    return counts


def test_counts_are_row_major_from_the_lower_left_corner() -> None:
    result = run_op("mandelbrot_tile", ARGS)
    assert (result["width"], result["height"]) == (6, 4)
    assert result["counts"] == reference(-2.0, 1.0, -1.0, 1.0, 6, 4, 30)
    # pixel (px=2, py=2) is c = 0 + 0i: in the set, so it runs to max_iter
    assert result["counts"][2 * 6 + 2] == 30
    # pixel (0, 0) is c = -2 - 1i: |c|^2 = 5 escapes after one step
    assert result["counts"][0] == 1


def test_every_count_is_from_1_to_max_iter() -> None:
    counts = run_op("mandelbrot_tile", {**ARGS, "width": 40, "height": 30})["counts"]
    assert len(counts) == 1200 and min(counts) >= 1 and max(counts) == 30
    assert all(type(n) is int for n in counts)


def test_the_largest_tile_is_65536_pixels() -> None:
    args = {"region": [2.0, 3.0, 2.0, 3.0], "width": 65536, "height": 1, "max_iter": 1}
    assert run_op("mandelbrot_tile", args)["counts"] == [1] * 65536


REGION_MUST = r"\[re_min, re_max, im_min, im_max\]"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"region": None}, "region"),
        ({"region": [0, 1, 0]}, "region"),
        ({"region": [0, 1, 0, 1, 2]}, "region"),
        ({"region": [1, 0, 0, 1]}, "region"),
        ({"region": [0, 1, 1, 1]}, "region"),
        ({"region": [0, 1, 0, math.inf]}, "region"),
        ({"region": [math.nan, 1, 0, 1]}, "region"),
        ({"region": [0, True, 0, 1]}, "region"),
        ({"region": [0, "1", 0, 1]}, "region"),
        ({"region": [0, 10**400, 0, 1]}, "region"),
        ({"region": "0,1,0,1"}, "region"),
        ({"region": {"re_min": 0}}, "region"),
        ({"width": 0}, "width"),
        ({"width": 65537}, "width"),
        ({"width": 2.0}, "width"),
        ({"width": True}, "width"),
        ({"width": None}, "width"),
        ({"height": 0}, "height"),
        ({"height": "4"}, "height"),
        ({"width": 257, "height": 256}, "height"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 100_001}, "max_iter"),
        ({"max_iter": 10.5}, "max_iter"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    change: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=f"^mandelbrot_tile: '{name}' must be"):
        run_op("mandelbrot_tile", {**ARGS, **change})


def test_missing_arguments() -> None:
    for name in ARGS:
        args = {k: v for k, v in ARGS.items() if k != name}
        with pytest.raises(ValueError, match=f"'{name}' must be"):
            run_op("mandelbrot_tile", args)


def test_region_message_says_what_a_region_is() -> None:
    with pytest.raises(ValueError, match=REGION_MUST):
        run_op("mandelbrot_tile", {**ARGS, "region": [1, 0, 0, 1]})


def test_verify() -> None:
    result = run_op("mandelbrot_tile", ARGS)
    assert verify_op("mandelbrot_tile", ARGS, result)
    assert verify_op("mandelbrot_tile", {**ARGS, "region": [-2, 1, -1, 1]}, result)
    assert not verify_op("mandelbrot_tile", ARGS, {**result, "counts": [*result["counts"][:-1], 2]})
    assert not verify_op(
        "mandelbrot_tile", ARGS, {**result, "counts": [float(n) for n in result["counts"]]}
    )
    assert not verify_op("mandelbrot_tile", ARGS, {**result, "counts": [True] * 24})
    assert not verify_op("mandelbrot_tile", ARGS, {**result, "counts": tuple(result["counts"])})
    assert not verify_op("mandelbrot_tile", ARGS, {**result, "counts": None})
    assert not verify_op("mandelbrot_tile", ARGS, result["counts"])
