"""Functions with PyPI packages: what a new environment costs a worker, and what a worker
that has it pays for the next job (issue 24's "cold and warm").

    python bench/environments.py          # about a minute; needs PyPI, Chromium, npm ci

A coordinator on its own store, then, in turn, one Python worker (``--python-functions``,
a fresh data directory) and one headless Chromium tab (a fresh profile). For each, the
time from ``submit`` to the result of:

- a task with no package (the reference; in a tab, after Pyodide has started);
- the first task of a job with ``packages=`` (cold: the worker fetches the wheels and
  makes the environment: a virtual environment by uv, or the wheels unpacked in
  Pyodide; then imports the package);
- the first task of a second job with the same packages (warm: the environment is
  there, the package imported already in the child or the tab).

``--packages`` sets what is resolved (sympy by default; numpy is measured on the Python
worker only, as tabs are never sent compiled wheels). Resolving and uploading the wheels
(``client.options(packages=...)``, on the submitting machine, once per client) is
timed apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_results
from bench.browsers import grid_and_chromium, wait_for_workers
from browsergrid import Client


def plain(n: int) -> int:
    return n * n


def uses_sympy(n: int) -> str:
    import sympy

    return str(sympy.factorint(n))


def uses_numpy(n: int) -> float:
    import numpy

    return float(numpy.arange(n).sum())


def timed(submit: Callable[[], Any]) -> float:
    started = time.perf_counter()
    submit().result(timeout=300)
    return (time.perf_counter() - started) * 1000


def measure(client: Client, packages: list[str], fn: Callable[[int], Any]) -> dict[str, float]:
    started = time.perf_counter()
    grid = client.options(packages=packages)
    resolve_ms = (time.perf_counter() - started) * 1000
    plain_ms = timed(lambda: client.submit(plain, 7))
    cold_ms = timed(lambda: grid.submit_job(fn, [360]).futures[0])
    warm_ms = timed(lambda: grid.submit_job(fn, [720]).futures[0])
    return {"resolve_ms": resolve_ms, "plain_ms": plain_ms, "cold_ms": cold_ms, "warm_ms": warm_ms}


def on_python_worker(
    url: str, client: Client, cases: list[tuple[str, list[str], Any]]
) -> dict[str, Any]:
    rows = {}
    for name, packages, fn in cases:
        with ExitStack() as stack:  # a fresh worker, a fresh data directory: cold for real
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            command = [sys.executable, "-m", "browsergrid", "worker", url.replace("http", "ws")]
            command += ["--quiet", "--python-functions", "--data-dir", folder]
            proc = subprocess.Popen(command)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
            wait_for_workers(url, 1)
            rows[name] = measure(client, packages, fn)
            print(f"  Python worker, {name}: {rows[name]}", flush=True)
        deadline = time.monotonic() + 30
        while client.workers() and time.monotonic() < deadline:
            time.sleep(0.2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="sympy==1.13.3")
    parser.add_argument("--native", default="numpy", help="a package with compiled code")
    parser.add_argument("--name", default="environments")
    args = parser.parse_args()
    pure = [args.packages]
    with grid_and_chromium() as (url, client, context):
        python = on_python_worker(
            url, client, [("pure", pure, uses_sympy), ("native", [args.native], uses_numpy)]
        )
        page = context.new_page()
        page.goto(f"{url}/?workers=1")
        wait_for_workers(url, 1)
        timed(lambda: client.submit(plain, 3))  # Pyodide started: not what is measured here
        tab = measure(client, pure, uses_sympy)
        print(f"  tab, pure: {tab}", flush=True)
    lines = [
        "| worker | packages | resolve + upload (client) | no package | cold: first job | "
        "warm: second job |",
        "|---|---|---|---|---|---|",
    ]
    for worker, packages, row in (
        ("Python worker", args.packages, python["pure"]),
        ("Python worker", args.native, python["native"]),
        ("Chromium tab (Pyodide)", args.packages, tab),
    ):
        lines.append(
            f"| {worker} | {packages} | {row['resolve_ms']:,.0f} ms | {row['plain_ms']:,.0f} ms "
            f"| {row['cold_ms']:,.0f} ms | {row['warm_ms']:,.0f} ms |"
        )
    write_results(
        args.name,
        "\n".join(lines),
        {"args": vars(args), "python_worker": python, "tab": tab},
    )


if __name__ == "__main__":
    main()
