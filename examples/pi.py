"""Estimate pi by Monte Carlo on the grid: 40 tasks of the built-in ``monte_carlo_pi`` op.

Each task draws 50,000 random points of the unit square (from its own seed) and counts those
inside the quarter disc; 4 * hits / samples over all tasks approximates pi.

Run it against a running coordinator with at least one worker connected (a browser tab on
http://127.0.0.1:8765/, or ``browsergrid worker ws://127.0.0.1:8765``):

    python examples/pi.py                          # the coordinator on http://127.0.0.1:8765
    python examples/pi.py http://HOST:PORT --token TOKEN

It prints, once every task is done:

    pi ~ 3.14132600 from 2,000,000 samples in 40 tasks (error 2.7e-04, 1.3 s)

The seeds are fixed, so the estimate is the same on every run, whichever workers compute it;
its error is about 0.001 (1.64 / sqrt(samples)).
"""

from __future__ import annotations

import argparse
import math
import time

from browsergrid import Client

TASKS = 40
SAMPLES_PER_TASK = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765", help="the coordinator")
    parser.add_argument("--token", help="its admin token (found by itself on the same machine)")
    options = parser.parse_args()

    with Client(options.url, token=options.token) as client:
        print(f"submitting {TASKS} tasks to {client.http_url}; waiting for workers...")
        started = time.monotonic()
        tasks = [{"samples": SAMPLES_PER_TASK, "seed": seed} for seed in range(TASKS)]
        results = list(client.map("monte_carlo_pi", tasks))  # [{"hits": H, "samples": N}, ...]
        seconds = time.monotonic() - started

    hits = sum(r["hits"] for r in results)
    samples = sum(r["samples"] for r in results)
    estimate = 4 * hits / samples
    print(
        f"pi ~ {estimate:.8f} from {samples:,} samples in {TASKS} tasks "
        f"(error {abs(estimate - math.pi):.1e}, {seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
