"""Count the primes below 100,000,000 on the grid: 20 tasks of the built-in ``prime_count`` op.

The range is split into 20 slices of 5,000,000 numbers; each task counts the primes of one
slice, and the counts are added up. First, as a check, the primes below 1,000,000 are
counted both on the grid and by a plain sieve here.

Run it against a running coordinator with at least one worker connected (a browser tab on
http://127.0.0.1:8765/, or ``browsergrid worker ws://127.0.0.1:8765``):

    python examples/primes.py                          # the coordinator on http://127.0.0.1:8765
    python examples/primes.py http://HOST:PORT --token TOKEN

It prints:

    check: 78,498 primes below 1,000,000, on the grid and by a local sieve
    5,761,455 primes below 100,000,000 (20 tasks, 1.1 s)
"""

from __future__ import annotations

import argparse
import time

from browsergrid import Client

LIMIT = 100_000_000
TASKS = 20
CHECK_LIMIT = 1_000_000


def local_count(limit: int) -> int:
    """The primes below ``limit``, by the sieve of Eratosthenes (fine up to ~10**7)."""
    is_prime = bytearray([1]) * limit
    is_prime[:2] = b"\x00\x00"
    for p in range(2, int(limit**0.5) + 1):
        if is_prime[p]:
            is_prime[p * p :: p] = bytes(len(range(p * p, limit, p)))
    return sum(is_prime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765", help="the coordinator")
    parser.add_argument("--token", help="its admin token (found by itself on the same machine)")
    options = parser.parse_args()

    with Client(options.url, token=options.token) as client:
        print(f"submitting to {client.http_url}; waiting for workers...")
        on_grid = client.submit("prime_count", lo=0, hi=CHECK_LIMIT).result()
        here = local_count(CHECK_LIMIT)
        if on_grid != here:
            raise SystemExit(f"check failed: the grid counts {on_grid:,}, a local sieve {here:,}")
        print(f"check: {here:,} primes below {CHECK_LIMIT:,}, on the grid and by a local sieve")

        started = time.monotonic()
        step = LIMIT // TASKS
        slices = [{"lo": lo, "hi": min(lo + step, LIMIT)} for lo in range(0, LIMIT, step)]
        total = sum(client.map("prime_count", slices))  # each slice [lo, hi) counted apart
        seconds = time.monotonic() - started

    print(f"{total:,} primes below {LIMIT:,} ({len(slices)} tasks, {seconds:.1f} s)")


if __name__ == "__main__":
    main()
