"""``prime_count``: the segmented sieve against trial division and known values of pi(x)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from browsergrid.ops import run_op, verify_op
from browsergrid.ops._prime_count import SEGMENT, count_primes, odd_primes_upto


def is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def brute(lo: int, hi: int) -> int:
    return sum(map(is_prime, range(lo, hi)))


def pc(lo: Any, hi: Any) -> Any:
    return run_op("prime_count", {"lo": lo, "hi": hi})


def test_every_small_range() -> None:
    for lo in range(12):
        for hi in range(lo, 40):
            assert pc(lo, hi) == brute(lo, hi), (lo, hi)


def test_random_ranges_and_segment_boundaries() -> None:
    rng = random.Random(5)
    ranges = [(rng.randrange(0, 3 * SEGMENT), 0) for _ in range(30)]
    ranges = [(lo, lo + rng.randrange(0, 3000)) for lo, _ in ranges]
    edges = [SEGMENT * k + d for k in (1, 2) for d in (-3, -2, -1, 0, 1, 2, 3)]
    ranges += [(edge - 50, edge + 50) for edge in edges] + [(3, edge) for edge in edges[:3]]
    for lo, hi in ranges:
        assert pc(lo, hi) == brute(lo, hi), (lo, hi)


def test_squares_of_primes_are_struck_out() -> None:
    for p in odd_primes_upto(300):
        assert pc(p * p, p * p + 1) == 0
        assert pc(p, p + 1) == 1


def test_known_values_of_pi_x() -> None:
    assert pc(0, 10**6) == 78498
    assert pc(0, 10**7 + 1) == 664579
    assert pc(10**6, 10**7 + 1) == 664579 - 78498


def test_near_the_top_of_the_range() -> None:
    """Primes below 10**12: 999999999989 is the largest; 10**12 - 11 is its square-free
    neighbour checked by trial division."""
    top = 10**12
    assert pc(top - 11, top) == 1
    assert pc(top - 10, top) == 0
    assert pc(top - 200, top) == brute(top - 200, top)


def miller_rabin(n: int) -> bool:
    """Deterministic for n < 3.3 * 10**24 with these bases."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    if n in bases:
        return True
    if any(n % p == 0 for p in bases):
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize("lo", [10**11 + 1, 10**12 - SEGMENT - 1000])
def test_large_base_primes_in_buckets(lo: int) -> None:
    """Base primes above half a segment strike each segment at most once (the bucket path):
    checked across segment boundaries against Miller-Rabin."""
    hi = min(lo + SEGMENT + 2000, 10**12)
    assert count_primes(lo, hi) == sum(map(miller_rabin, range(lo, hi)))


def test_odd_primes_upto() -> None:
    assert odd_primes_upto(2) == []
    assert odd_primes_upto(3) == [3]
    assert odd_primes_upto(30) == [3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert len(odd_primes_upto(10**6)) == 78498 - 1


@pytest.mark.parametrize(
    ("lo", "hi", "name", "must"),
    [
        (-1, 10, "lo", "an integer from 0 to 10\\*\\*12"),
        (10**12 + 1, 10**12 + 1, "lo", "an integer from 0 to 10\\*\\*12"),
        (1.0, 10, "lo", "an integer"),
        (True, 10, "lo", "an integer"),
        (None, 10, "lo", "an integer"),
        (0, 10**12 + 1, "hi", "an integer from 0 to 10\\*\\*12"),
        (0, "10", "hi", "an integer"),
        (0, False, "hi", "an integer"),
        (10, 9, "hi", "at least lo"),
        (0, 10**8 + 1, "hi", "at most lo \\+ 10\\*\\*8"),
        (10**12 - 10**8 - 1, 10**12, "hi", "at most lo \\+ 10\\*\\*8"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    lo: Any, hi: Any, name: str, must: str
) -> None:
    with pytest.raises(ValueError, match=f"^prime_count: '{name}' must be {must}"):
        pc(lo, hi)


def test_the_widest_range_is_accepted() -> None:
    assert pc(10**8, 2 * 10**8) == 11078937 - 5761455


def test_verify() -> None:
    args = {"lo": 0, "hi": 100}
    assert verify_op("prime_count", args, 25)
    for wrong in (24, 26, 25.0, "25", None, True, [25], {"count": 25}):
        assert not verify_op("prime_count", args, wrong)
    assert verify_op("prime_count", {"lo": 0, "hi": 2}, 0)
    assert not verify_op("prime_count", {"lo": 0, "hi": 2}, False)
