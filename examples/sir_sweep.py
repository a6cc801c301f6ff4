"""Sweep an SIR epidemic model over a grid of (beta, gamma): a plain Python function as tasks.

``peak_infected(beta, gamma)`` simulates an epidemic (susceptible, infected, recovered
fractions; infection rate ``beta``, recovery rate ``gamma``, per day) for a year and returns
the largest fraction infected at once. ``client.map(peak_infected, betas, gammas)`` sends its
source to the workers and runs it once per (beta, gamma): 11 x 11 = 121 tasks. Only plain
functions defined at module level, using the standard library only, can be sent this way.

Run it against a running coordinator with at least one worker that runs Python functions: a
browser tab on http://127.0.0.1:8765/ (in Pyodide, which the coordinator serves; it takes a
few seconds to load at the first task), or ``browsergrid worker ws://127.0.0.1:8765
--python-functions``:

    python examples/sir_sweep.py                       # the coordinator on http://127.0.0.1:8765
    python examples/sir_sweep.py http://HOST:PORT --token TOKEN

It prints a heat map of the peaks, the largest peak, and how far the simulation is from the
model's exact peak, s0 + i0 - (1 + ln(R0 * s0)) / R0 where R0 = beta / gamma:

    peak infected (% of the population), beta (infection rate) down, gamma across
                0.050 0.075 0.100 0.125 0.150 0.175 0.200 0.225 0.250 0.275 0.300
      beta 0.60  @@    @@    ##    **    **    ++    ++    ==    ==    --    --
      ...
      beta 0.10  --    ..
    legend (%): ' ' 0-1  '.' 1-5  ':' 5-10  '-' 10-20  '=' 20-30  '+' 30-40  ...  '@' 60+
    largest peak: 71.1% of the population at beta=0.60, gamma=0.050 (R0 = 12.0)
    121 simulations in 0.4 s; farthest from the exact peak: 0.18 percentage points
"""

from __future__ import annotations

import argparse
import math
import time

from browsergrid import Client

BETAS = [round(0.60 - 0.05 * k, 3) for k in range(11)]  # 0.60 down to 0.10
GAMMAS = [round(0.05 + 0.025 * k, 3) for k in range(11)]  # 0.050 up to 0.300
S0, I0 = 0.999, 0.001  # as in peak_infected
SHADES = [(1, " "), (5, "."), (10, ":"), (20, "-"), (30, "="), (40, "+"), (50, "*"), (60, "#")]


def peak_infected(beta: float, gamma: float, days: int = 365, dt: float = 0.05) -> float:
    """The largest fraction of the population infected at once, by Euler steps of
    ds/dt = -beta*s*i, di/dt = beta*s*i - gamma*i, from 0.1% infected. Runs on a worker:
    it uses nothing but its arguments (no global of this module, no third-party module)."""
    s, i = 0.999, 0.001
    peak = i
    for _ in range(round(days / dt)):
        infections = beta * s * i * dt
        recoveries = gamma * i * dt
        s -= infections
        i += infections - recoveries
        peak = max(peak, i)
    return peak


def exact_peak(beta: float, gamma: float) -> float:
    """The model's peak without time steps: s + i - ln(s) / R0 is constant, and i is largest
    when s = 1 / R0 (if s starts above it; else i only falls)."""
    r0 = beta / gamma
    if r0 * S0 <= 1:
        return I0
    return S0 + I0 - (1 + math.log(r0 * S0)) / r0


def shade(percent: float) -> str:
    return next((char for below, char in SHADES if percent < below), "@")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765", help="the coordinator")
    parser.add_argument("--token", help="its admin token (found by itself on the same machine)")
    options = parser.parse_args()

    pairs = [(beta, gamma) for beta in BETAS for gamma in GAMMAS]
    with Client(options.url, token=options.token) as client:
        print(f"submitting {len(pairs)} simulations to {client.http_url}; waiting for workers...")
        started = time.monotonic()
        betas, gammas = zip(*pairs, strict=True)
        peaks = list(client.map(peak_infected, betas, gammas))  # peak_infected(beta, gamma)
        seconds = time.monotonic() - started
    peak = dict(zip(pairs, peaks, strict=True))

    print("peak infected (% of the population), beta (infection rate) down, gamma across")
    print(" " * 12 + " ".join(f"{gamma:5.3f}" for gamma in GAMMAS))
    for beta in BETAS:
        cells = " ".join(f"{shade(100 * peak[beta, gamma]) * 2:^5}" for gamma in GAMMAS)
        print(f"  beta {beta:4.2f} {cells}".rstrip())
    lows = [0] + [below for below, _ in SHADES]
    ranges = "  ".join(f"{c!r} {lo}-{hi}" for lo, (hi, c) in zip(lows, SHADES, strict=False))
    print(f"legend (%): {ranges}  '@' {SHADES[-1][0]}+")

    (beta, gamma), top = max(peak.items(), key=lambda item: item[1])
    print(
        f"largest peak: {100 * top:.1f}% of the population at beta={beta:.2f}, "
        f"gamma={gamma:.3f} (R0 = {beta / gamma:.1f})"
    )
    error = max(abs(value - exact_peak(*pair)) for pair, value in peak.items())
    print(
        f"{len(pairs)} simulations in {seconds:.1f} s; "
        f"farthest from the exact peak: {100 * error:.2f} percentage points"
    )


if __name__ == "__main__":
    main()
