"""Trivial-task throughput and single-task latency: browsergrid beside Dask distributed.

    python bench/throughput.py [--tasks 20000] [--latency 1000] [--repeat 3] [--no-dask]

Runs on this machine only (127.0.0.1): a coordinator and 2 Python worker processes, then
Dask's LocalCluster with 2 worker processes (defaults, and worker-saturation: inf), doing the
same trivial work. Prints a markdown table and writes bench/results/throughput.json.
Medians over --repeat runs; the machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def browsergrid_grid(workers: int, prefetch: int) -> Iterator[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--quiet",
         "--log-format", "json", "--no-welcome-task"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert serve.stdout is not None
    url = ""
    for line in serve.stdout:
        entry = json.loads(line)
        if entry.get("event") == "ready":
            url = entry["ws_url"]
            break
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "browsergrid", "worker", url, "--quiet",
             "--prefetch", str(prefetch)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        for _ in range(workers)
    ]
    try:
        yield url.replace("ws://", "http://").removesuffix("/ws")
    finally:
        for proc in [*procs, serve]:
            proc.send_signal(signal.SIGTERM)
        for proc in [*procs, serve]:
            proc.wait(10)
        serve.stdout.close()


def bench_browsergrid(tasks: int, latency_n: int, prefetch: int) -> dict[str, float]:
    from browsergrid import Client

    with browsergrid_grid(2, prefetch) as url, Client(url) as client:
        while len(client_workers(url)) < 2:
            time.sleep(0.1)
        args = [{"initial": float(i), "factor": 1.0, "times": 1} for i in range(tasks)]
        list(client.map("repeat_multiply", args[:2000]))  # warm up
        started = time.perf_counter()
        results = list(client.map("repeat_multiply", args))
        elapsed = time.perf_counter() - started
        assert results == [float(i) for i in range(tasks)]
        samples = []
        for i in range(latency_n):
            t0 = time.perf_counter()
            client.submit("repeat_multiply", initial=float(i), factor=1.0, times=1).result(10)
            samples.append((time.perf_counter() - t0) * 1000)
    return {"tasks_per_s": tasks / elapsed, "p50_ms": percentile(samples, 0.5),
            "p99_ms": percentile(samples, 0.99)}


def client_workers(url: str) -> list[Any]:
    import httpx

    workers: list[Any] = httpx.get(f"{url}/api/workers", timeout=5).json()
    return workers


def inc(x: int) -> int:
    return x + 1


def bench_dask(tasks: int, latency_n: int, saturation: str | None) -> dict[str, float]:
    import dask
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    config = {"distributed.scheduler.worker-saturation": saturation} if saturation else {}
    config["distributed.worker.daemon"] = True
    with dask.config.set(config), LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, DaskClient(cluster) as client:
        client.gather(client.map(inc, range(2000), pure=False))  # warm up
        started = time.perf_counter()
        results = client.gather(client.map(inc, range(tasks), pure=False))
        elapsed = time.perf_counter() - started
        assert results == [i + 1 for i in range(tasks)]
        samples = []
        for i in range(latency_n):
            t0 = time.perf_counter()
            client.submit(inc, i, pure=False).result()
            samples.append((time.perf_counter() - t0) * 1000)
    return {"tasks_per_s": tasks / elapsed, "p50_ms": percentile(samples, 0.5),
            "p99_ms": percentile(samples, 0.99)}


def median_of(runs: int, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    results = [measure() for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=1000, help="sequential single tasks")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=64, help="browsergrid worker --prefetch")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    rows: dict[str, dict[str, float]] = {}
    rows[f"browsergrid, 2 Python workers (prefetch {args.prefetch})"] = median_of(
        args.repeat, lambda: bench_browsergrid(args.tasks, args.latency, args.prefetch)
    )
    if not args.no_dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("Dask distributed is not installed: pip install -e '.[bench]'", file=sys.stderr)
        else:
            rows["Dask distributed, LocalCluster 2 procs, defaults"] = median_of(
                args.repeat, lambda: bench_dask(args.tasks, args.latency, None)
            )
            rows["Dask, worker-saturation: inf"] = median_of(
                args.repeat, lambda: bench_dask(args.tasks, args.latency, "inf")
            )
    print(f"\n{args.tasks:,} trivial tasks, {args.latency:,} sequential single tasks, "
          f"median of {args.repeat} runs, {platform.python_version()}, {os.cpu_count()} CPUs\n")
    print("| system | tasks/s | submit-to-result p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['tasks_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    out = HERE / "results" / "throughput.json"
    out.write_text(json.dumps({"args": vars(args), "when": time.strftime("%Y-%m-%d %H:%M"),
                               "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
