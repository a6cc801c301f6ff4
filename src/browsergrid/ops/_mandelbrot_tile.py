"""``mandelbrot_tile``: escape-time counts of one rectangle of the complex plane.

Every step is a plain IEEE double operation in a fixed order (no fused multiply-add, no
complex type, no shortcut for points known to be inside), so every language gets the same
counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from browsergrid.ops._args import fail, finite, integer, same

NAME: Final = "mandelbrot_tile"
MAX_PIXELS: Final = 65536
MAX_ITER: Final = 100_000


def run(args: Mapping[str, Any]) -> dict[str, Any]:
    """``{"width": W, "height": H, "counts": [...]}``: W*H counts, row by row from ``im_min``."""
    re_min, re_max, im_min, im_max = _region(args.get("region"))
    width = integer(args, NAME, "width", 1, MAX_PIXELS, "1 to 65536")
    height = integer(args, NAME, "height", 1, MAX_PIXELS, "1 to 65536")
    if width * height > MAX_PIXELS:
        raise fail(NAME, "height", "such that width * height <= 65536")
    max_iter = integer(args, NAME, "max_iter", 1, MAX_ITER, "1 to 100000")
    counts: list[int] = []
    append = counts.append
    for py in range(height):
        ci = im_min + (im_max - im_min) * py / height
        for px in range(width):
            cr = re_min + (re_max - re_min) * px / width
            zr = zi = 0.0
            n = 0
            while n < max_iter and zr * zr + zi * zi <= 4.0:
                t = zr * zr - zi * zi + cr
                zi = 2.0 * zr * zi + ci
                zr = t
                n += 1
            append(n)
    return {"width": width, "height": height, "counts": counts}


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """Recompute; equal."""
    return same(result, run(args))


def _region(region: Any) -> tuple[float, float, float, float]:
    must = "[re_min, re_max, im_min, im_max]: 4 finite numbers, re_min < re_max, im_min < im_max"
    if not isinstance(region, list | tuple) or len(region) != 4:
        raise fail(NAME, "region", must)
    re_min, re_max, im_min, im_max = (finite(value, NAME, "region", must) for value in region)
    if not (re_min < re_max and im_min < im_max):
        raise fail(NAME, "region", must)
    return re_min, re_max, im_min, im_max
