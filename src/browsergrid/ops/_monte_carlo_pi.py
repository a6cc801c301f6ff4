"""``monte_carlo_pi``: points of the unit square that fall in the quarter disc, from mulberry32.

The generator works on unsigned 32-bit integers; each JavaScript ``Math.imul`` and ``>>> 0``
is a product or sum masked to 32 bits here, so both languages draw the same points.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from browsergrid.ops._args import integer, same

NAME: Final = "monte_carlo_pi"
MAX_SAMPLES: Final = 10**9
QUICK_SAMPLES: Final = 200  # points a quick task may draw (~0.2 ms in CPython)
_MASK: Final = 0xFFFFFFFF
_GOLDEN: Final = 0x6D2B79F5  # mulberry32's increment
_UNIT: Final = 2.0**-32  # x = next() / 2**32 (a power of two: multiplying is the same, exactly)


def run(args: Mapping[str, Any]) -> dict[str, int]:
    """``{"hits": H, "samples": N}``: of N points (x, y), H have ``x*x + y*y <= 1.0``."""
    samples = integer(args, NAME, "samples", 1, MAX_SAMPLES, "1 to 10**9")
    seed = integer(args, NAME, "seed", 0, _MASK, "0 to 2**32 - 1")
    return {"hits": count_hits(samples, seed), "samples": samples}


def quick(args: Mapping[str, Any]) -> bool:
    """At most ``QUICK_SAMPLES`` points."""
    samples = args.get("samples")
    return not isinstance(samples, int) or samples <= QUICK_SAMPLES


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """Recompute; equal."""
    return same(result, run(args))


def mulberry32(seed: int) -> Iterator[int]:
    """The generator as an iterator of uint32 values (for tests; ``count_hits`` inlines it)."""
    state = seed & _MASK
    while True:
        state = (state + _GOLDEN) & _MASK
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & _MASK
        t ^= (t + ((t ^ (t >> 7)) * (t | 61))) & _MASK
        yield t ^ (t >> 14)


def count_hits(samples: int, seed: int) -> int:
    """How many of ``samples`` points drawn from ``mulberry32(seed)`` hit the quarter disc."""
    mask, golden, unit = _MASK, _GOLDEN, _UNIT
    state = seed
    hits = 0
    for _ in range(samples):
        state = (state + golden) & mask
        t = ((state ^ (state >> 15)) * (state | 1)) & mask
        t ^= (t + ((t ^ (t >> 7)) * (t | 61))) & mask
        x = (t ^ (t >> 14)) * unit
        state = (state + golden) & mask
        t = ((state ^ (state >> 15)) * (state | 1)) & mask
        t ^= (t + ((t ^ (t >> 7)) * (t | 61))) & mask
        y = (t ^ (t >> 14)) * unit
        if x * x + y * y <= 1.0:
            hits += 1
    return hits
