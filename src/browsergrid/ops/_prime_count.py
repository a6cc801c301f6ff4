"""``prime_count``: how many primes lie in ``[lo, hi)``, by a segmented sieve of odd numbers.

Memory stays bounded whatever the range: base primes up to ``isqrt(hi - 1)`` (at most 78,498
of them) and one segment of ``SEGMENT`` numbers at a time.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from typing import Any, Final

from browsergrid.ops._args import fail, integer, same

NAME: Final = "prime_count"
MAX_HI: Final = 10**12
MAX_SPAN: Final = 10**8
SEGMENT: Final = 2**18  # integers per segment (its odd half is sieved: 128 KiB)
_ZEROS: Final = memoryview(bytes(SEGMENT // 2))


def run(args: Mapping[str, Any]) -> int:
    """The number of primes p with ``lo <= p < hi``."""
    lo = integer(args, NAME, "lo", 0, MAX_HI, "0 to 10**12")
    hi = integer(args, NAME, "hi", 0, MAX_HI, "0 to 10**12")
    if hi < lo:
        raise fail(NAME, "hi", "at least lo")
    if hi - lo > MAX_SPAN:
        raise fail(NAME, "hi", "at most lo + 10**8")
    return count_primes(lo, hi)


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """Recompute; equal."""
    return same(result, run(args))


def odd_primes_upto(limit: int) -> list[int]:
    """The odd primes ``p <= limit`` (a plain sieve: ``limit`` is at most 10**6 here)."""
    if limit < 3:
        return []
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for p in range(2, math.isqrt(limit) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, limit + 1, p)))
    return list(itertools.compress(range(3, limit + 1, 2), sieve[3::2]))


def count_primes(lo: int, hi: int) -> int:
    """The number of primes in ``[lo, hi)``: 2 is counted apart and odd numbers are sieved.

    Odd number ``first + 2*g`` has index ``g``; segment ``k`` holds indexes ``k*size`` up to
    ``(k+1)*size``. A base prime below ``size`` strikes each segment with one slice
    assignment; a larger one strikes a segment at most once, so it waits in the bucket of
    the next segment it strikes (its work is then proportional to its hits, not to the
    number of segments).
    """
    count = 1 if lo <= 2 < hi else 0
    first = max(lo, 3) | 1
    if first >= hi:
        return count
    total = (hi - first + 1) // 2  # odd numbers first, first + 2, ... below hi
    size = SEGMENT // 2
    base = odd_primes_upto(math.isqrt(hi - 1))
    split = bisect.bisect_left(base, size)
    small = base[:split]
    buckets: list[list[tuple[int, int]]] = [[] for _ in range((total + size - 1) // size)]
    for p in base[split:]:
        multiple = max(p * p, first + (-first) % p)
        if not multiple & 1:
            multiple += p
        g = (multiple - first) >> 1
        if g < total:
            buckets[g // size].append((p, g))
    zeros = _ZEROS
    for k, bucket in enumerate(buckets):
        start = k * size
        n = min(size, total - start)
        seg_lo = first + 2 * start
        seg_hi = seg_lo + 2 * n
        segment = bytearray([1]) * n
        for p in small:
            multiple = p * p
            if multiple >= seg_hi:
                break
            if multiple < seg_lo:
                multiple = seg_lo + (-seg_lo) % p
                if not multiple & 1:
                    multiple += p
            index = (multiple - seg_lo) >> 1  # odd multiples of p are p indexes apart
            if index < n:
                segment[index::p] = zeros[: (n - 1 - index) // p + 1]
        for p, g in bucket:
            segment[g - start] = 0
            g += p
            if g < total:
                buckets[g // size].append((p, g))
        bucket.clear()
        count += segment.count(1)
    return count
