"""Browsers as workers: headless Chromium with 4 worker pages on ``monte_carlo_pi``, beside
Python workers doing the same tasks, against one coordinator on this machine.

    python bench/browsers.py            # 4 pages, then 1 and 2 Python workers; about 1 min
    python bench/browsers.py --quick    # fewer, smaller tasks; about 20 s

Each row runs one job of ``--tasks`` tasks of ``--samples`` points each (seeds 0, 1, ...),
timed from the submit to the last result, after a warm-up job that also waits until every
worker has joined. It reports tasks/s and millions of points a second. Chromium is Debian's
(``$BROWSERGRID_CHROMIUM`` or ``chromium`` on the PATH), driven by Playwright with
``executable_path``; it is never downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._report import write_results
from bench.throughput import TOKEN, browsergrid_grid
from browsergrid import Client

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OP = "monte_carlo_pi"


def tasks(count: int, samples: int) -> list[dict[str, Any]]:
    return [{"samples": samples, "seed": seed} for seed in range(count)]


def wait_for_workers(url: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` workers that run ``monte_carlo_pi`` are connected."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while True:
        workers = httpx.get(f"{url}/api/workers", headers=headers, timeout=10).json()
        if sum(1 for w in workers if OP in (w.get("ops") or [])) >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(workers)} of {count} workers joined in {timeout:g} s")
        time.sleep(0.2)


def timed_job(url: str, count: int, samples: int) -> float:
    """Seconds from the submit of one job to its last result (all results checked)."""
    with Client(url, token=TOKEN) as client:
        started = time.perf_counter()
        results = list(client.map(OP, tasks(count, samples)))
        elapsed = time.perf_counter() - started
    assert all(r["samples"] == samples and 0 < r["hits"] <= samples for r in results)
    return elapsed


def row(name: str, workers: str, count: int, samples: int, seconds: float) -> dict[str, Any]:
    return {
        "system": name,
        "workers": workers,
        "tasks": count,
        "samples_per_task": samples,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(count / seconds, 1),
        "msamples_per_s": round(count * samples / seconds / 1e6, 1),
    }


def bench_chromium(pages: int, count: int, samples: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("BROWSERGRID_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium not found: install Debian's 'chromium' package")
    with (
        browsergrid_grid(0, 64, ["--memory"]) as url,
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="browsergrid-chromium-") as profile,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for _ in range(pages):
                context.new_page().goto(f"{url}/?workers=1")
            wait_for_workers(url, pages)
            timed_job(url, pages * 2, samples)  # warm-up: the pages' JIT
            seconds = timed_job(url, count, samples)
        finally:
            context.close()
    return row(f"Chromium, {pages} pages", f"{pages} Web Workers", count, samples, seconds)


def bench_python(workers: int, count: int, samples: int) -> dict[str, Any]:
    with browsergrid_grid(workers, 1, ["--memory"]) as url:
        wait_for_workers(url, workers)
        timed_job(url, workers, samples)
        seconds = timed_job(url, count, samples)
    return row("Python worker", f"{workers} process(es)", count, samples, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=4, help="Chromium worker pages")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per timed job")
    parser.add_argument("--samples", type=int, default=None, help="points per task")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    args = parser.parse_args()
    browser_tasks = args.tasks or (40 if args.quick else 200)
    samples = args.samples or (200_000 if args.quick else 1_000_000)
    # CPython draws far fewer points a second than a JIT: fewer tasks keep its rows short
    python_tasks = max(2, browser_tasks // 10)
    rows = [bench_chromium(args.pages, browser_tasks, samples)]
    for workers in (1, 2):
        rows.append(bench_python(workers, python_tasks, samples))
    table = "\n".join(
        [
            f"`monte_carlo_pi`, {samples:,} points per task, one coordinator (`--memory`), "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs",
            "",
            "| workers | tasks | seconds | tasks/s | million points/s |",
            "|---|---|---|---|---|",
            *(
                f"| {r['system']} ({r['workers']}) | {r['tasks']} | {r['seconds']:.2f} | "
                f"{r['tasks_per_s']:.1f} | {r['msamples_per_s']:.1f} |"
                for r in rows
            ),
        ]
    )
    write_results(
        "browsers-quick" if args.quick else "browsers", table, {"args": vars(args), "rows": rows}
    )


if __name__ == "__main__":
    main()
