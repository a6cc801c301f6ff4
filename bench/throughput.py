"""Trivial-task throughput and single-task latency: browsergrid beside Dask distributed.

    python bench/throughput.py [--tasks 20000] [--latency 1000] [--repeat 3] [--no-dask] [--quick]
                               [--redis redis://127.0.0.1:6379/0]

Runs on this machine only (127.0.0.1): a coordinator and 2 Python worker processes, once with
the default SQLite store (in a fresh temporary --data-dir) and once with --memory (and once
with --redis URL when given, under a fresh key prefix each run, left behind); then Dask's
LocalCluster with 2 worker processes (defaults, and worker-saturation: inf), doing the same
trivial work. Prints a markdown table and writes bench/results/throughput.json and .md
(throughput-quick.json and .md with --quick, so a regression run keeps the recorded figures).
Medians over --repeat runs; the machine is shared, so compare ratios within one run.
--quick is a regression run (5,000 tasks, 300 single tasks, 1 repeat, no Dask) of well
under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._report import write_results  # noqa: E402

SQLITE = "browsergrid, SQLite (default)"
MEMORY = "browsergrid, memory"
REDIS = "browsergrid, Redis"
DASK = "Dask distributed, LocalCluster 2 procs, defaults"
DASK_INF = "Dask, worker-saturation: inf"
TOKEN = secrets.token_urlsafe(16)  # the admin token of the coordinators started here
ALL_RUNS: dict[str, list[dict[str, float]]] = {}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stop(procs: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM the processes this script started, then SIGKILL any still alive after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def browsergrid_grid(workers: int, prefetch: int, store: list[str]) -> Iterator[str]:
    """A coordinator (``store``: its store options, e.g. ``["--memory"]``) and its workers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSERGRID_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory(prefix="browsergrid-bench-") as data_dir:
        if store[:1] == ["--redis"]:  # a fresh key prefix: no jobs of an earlier run
            joiner = "&" if "?" in store[1] else "?"
            store = ["--redis", f"{store[1]}{joiner}prefix=bench-{secrets.token_hex(4)}:"]
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "browsergrid",
                "serve",
                "--port",
                "0",
                "--quiet",
                "--log-format",
                "json",
                "--no-welcome-task",
                "--data-dir",
                data_dir,
                *store,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs: list[subprocess.Popen[Any]] = [serve]
        try:
            assert serve.stdout is not None
            url = ""
            for line in serve.stdout:
                entry = json.loads(line)
                if entry.get("event") == "ready":
                    url = entry["ws_url"]
                    break
            if not url:
                raise RuntimeError(f"browsergrid serve exited ({serve.wait()}) before ready")
            procs += [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "browsergrid",
                        "worker",
                        url,
                        "--quiet",
                        "--prefetch",
                        str(prefetch),
                        "--data-dir",
                        data_dir,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
                for _ in range(workers)
            ]
            yield url.replace("ws://", "http://").removesuffix("/ws")
        finally:
            stop(procs[1:] + procs[:1])  # workers first, then the coordinator
            if serve.stdout is not None:
                serve.stdout.close()


def bench_browsergrid(
    tasks: int,
    latency_n: int,
    prefetch: int,
    store: list[str],
    timeout: float,
    redundancy: int = 1,
) -> dict[str, float]:
    from browsergrid import Client

    with browsergrid_grid(2, prefetch, store) as url, Client(url, token=TOKEN) as connected:
        client = connected.options(redundancy=redundancy)  # 2: both workers compute each task
        deadline = time.monotonic() + 30
        while len(client_workers(url)) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the 2 browsergrid workers did not connect within 30 s")
            time.sleep(0.1)
        args = [{"initial": float(i), "factor": 1.0, "times": 1} for i in range(tasks)]
        list(client.map("repeat_multiply", args[:2000], timeout=timeout))  # warm up
        started = time.perf_counter()
        results = list(client.map("repeat_multiply", args, timeout=timeout))
        elapsed = time.perf_counter() - started
        assert results == [float(i) for i in range(tasks)]
        samples = []
        for i in range(latency_n):
            t0 = time.perf_counter()
            client.submit("repeat_multiply", initial=float(i), factor=1.0, times=1).result(10)
            samples.append((time.perf_counter() - t0) * 1000)
    return {
        "tasks_per_s": tasks / elapsed,
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
    }


def client_workers(url: str) -> list[Any]:
    import httpx

    workers: list[Any] = httpx.get(f"{url}/api/workers", timeout=5).json()
    return workers


def inc(x: int) -> int:
    return x + 1


def bench_dask(
    tasks: int, latency_n: int, saturation: str | None, timeout: float
) -> dict[str, float]:
    import dask
    from distributed import Client as DaskClient
    from distributed import LocalCluster, wait

    config: dict[str, Any] = {}
    if saturation:
        config["distributed.scheduler.worker-saturation"] = saturation
    config["distributed.worker.daemon"] = True
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            timeout=60,
        ) as cluster,
        DaskClient(cluster, timeout=60) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        warm = client.map(inc, range(2000), pure=False)
        wait(warm, timeout=timeout)  # raises TimeoutError instead of hanging on a dead worker
        started = time.perf_counter()
        futures = client.map(inc, range(tasks), pure=False)
        wait(futures, timeout=timeout)
        results = client.gather(futures)
        elapsed = time.perf_counter() - started
        assert results == [i + 1 for i in range(tasks)]
        samples = []
        for i in range(latency_n):
            t0 = time.perf_counter()
            client.submit(inc, i, pure=False).result(timeout=10)
            samples.append((time.perf_counter() - t0) * 1000)
    return {
        "tasks_per_s": tasks / elapsed,
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
    }


def median_of(
    name: str, runs: int, measure: Callable[[], dict[str, float]], notes: list[str]
) -> dict[str, float] | None:
    """Median of the runs that finished; a failed or timed-out run is noted and left out.
    Every finished run is kept in ALL_RUNS (written to the JSON) to show the spread."""
    results = ALL_RUNS.setdefault(name, [])
    for n in range(runs):
        try:
            results.append(measure())
        except Exception as exc:  # any failure of one run is a skip, not a crash
            why = str(exc) or "no result within --timeout (a worker may have died)"
            notes.append(f"{name}: run {n + 1} of {runs} skipped: {type(exc).__name__}: {why}")
            print(notes[-1], file=sys.stderr)
    if not results:
        return None
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", type=int, help="trivial tasks per run (default 20,000; --quick 5,000)"
    )
    parser.add_argument(
        "--latency", type=int, help="sequential single tasks (default 1,000; --quick 300)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=64, help="browsergrid worker --prefetch")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--redundancy",
        type=int,
        default=1,
        help="also measure SQLite mode with jobs of this redundancy (2: each result checked)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180,
        help="seconds to wait for one batch of tasks before skipping the run",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="also measure a coordinator keeping its store in this Redis (serve --redis)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="regression run: 5,000 tasks, 300 single tasks, 1 repeat, no Dask",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.no_dask = 1, True
    if args.tasks is None:
        args.tasks = 5_000 if args.quick else 20_000
    if args.latency is None:
        args.latency = 300 if args.quick else 1_000

    notes: list[str] = []
    measured: dict[str, dict[str, float] | None] = {}
    runs: list[tuple[str, list[str], int]] = [(SQLITE, [], 1), (MEMORY, ["--memory"], 1)]
    if args.redis:
        runs.append((REDIS, ["--redis", args.redis], 1))
    if args.redundancy > 1:
        runs.append((f"{SQLITE}, redundancy {args.redundancy}", [], args.redundancy))
    for name, store, redundancy in runs:
        measured[name] = median_of(
            name,
            args.repeat,
            partial(
                bench_browsergrid,
                args.tasks,
                args.latency,
                args.prefetch,
                store,
                args.timeout,
                redundancy,
            ),
            notes,
        )
    if not args.no_dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            notes.append("Dask skipped: distributed is not installed (pip install -e '.[bench]')")
            print(notes[-1], file=sys.stderr)
        else:
            for name, saturation in ((DASK, None), (DASK_INF, "inf")):
                measured[name] = median_of(
                    name,
                    args.repeat,
                    partial(bench_dask, args.tasks, args.latency, saturation, args.timeout),
                    notes,
                )

    rows = {name: row for name, row in measured.items() if row is not None}
    lines = [
        f"{args.tasks:,} trivial tasks, {args.latency:,} sequential single tasks, "
        f"median of {args.repeat} runs, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| system | tasks/s | submit-to-result p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for name, row in measured.items():
        if row is None:
            lines.append(f"| {name} | skipped | | |")
        else:
            lines.append(
                f"| {name} | {row['tasks_per_s']:,.0f} | {row['p50_ms']:.2f} "
                f"| {row['p99_ms']:.2f} |"
            )
    ratios: dict[str, float] = {}
    if SQLITE in rows and MEMORY in rows:
        ratios["durable/memory"] = rows[SQLITE]["tasks_per_s"] / rows[MEMORY]["tasks_per_s"]
    if SQLITE in rows and REDIS in rows:
        ratios["Redis/SQLite"] = rows[REDIS]["tasks_per_s"] / rows[SQLITE]["tasks_per_s"]
    for name in (DASK, DASK_INF):
        if SQLITE in rows and name in rows:
            ratios[f"SQLite/{name}"] = rows[SQLITE]["tasks_per_s"] / rows[name]["tasks_per_s"]
    lines.append("")
    if "durable/memory" in ratios:
        lines.append(
            f"durable/memory throughput: {ratios['durable/memory']:.2f} (target: at least 0.5)"
        )
    if "Redis/SQLite" in ratios:
        lines.append(f"Redis/SQLite throughput: {ratios['Redis/SQLite']:.2f}")
    for name in (DASK, DASK_INF):
        if f"SQLite/{name}" in ratios:
            lines.append(
                f"browsergrid SQLite / {name}: {ratios[f'SQLite/{name}']:.1f}x "
                "tasks/s (target: at least 10x)"
            )
    lines += [f"note: {note}" for note in notes]
    text = "\n".join(lines).rstrip() + "\n"
    write_results(
        "throughput-quick" if args.quick else "throughput",
        text,
        {
            "args": vars(args),
            "rows": rows,
            "skipped": [name for name, row in measured.items() if row is None],
            "ratios": ratios,
            "notes": notes,
            "runs": ALL_RUNS,
        },
    )


if __name__ == "__main__":
    main()
