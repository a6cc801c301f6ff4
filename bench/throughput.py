"""Trivial-task throughput and single-task latency: browsergrid beside Dask, Ray and Celery.

    python bench/throughput.py [--tasks 20000] [--latency 1000] [--repeat 3] [--quick]
                               [--peers dask,ray,celery] [--no-dask]
                               [--redis redis://127.0.0.1:6379/0] [--redundancy 2]

Runs on this machine only (127.0.0.1): a coordinator and 2 Python worker processes, once with
the default SQLite store (in a fresh temporary --data-dir) and once with --memory (and once
with --redis URL when given, under a fresh key prefix each run, left behind); then the peers,
each with 2 worker processes doing the same trivial work (``inc(x) = x + 1``,
bench/_peer_systems.py):
Dask's LocalCluster (defaults, and worker-saturation: inf), Ray (num_cpus=2) and Celery with
its own redis-server as broker and result backend (2 solo workers). A peer that is not
installed is skipped with a note. Runs go round robin (every system once, then again), so a
change in the machine's load touches all alike, and each run starts once the CPUs are quiet
(at most 15% busy over half a second; at most 20 s of waiting), so none runs while the
previous system's processes are still winding down. Each run is a fresh Python process
(this script again, with ``--one NAME``): what one system leaves in a process (threads,
imported modules, a grown heap) never slows the next. Prints a markdown table and writes
bench/results/throughput.json and .md (throughput-quick.json and .md with --quick, so a
regression run keeps the recorded figures). Medians over --repeat runs; the machine is
shared, so compare ratios within one run. --quick is a regression run (5,000 tasks, 300
single tasks, 1 repeat, no peers unless --peers names them) of well under a minute.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._peer_systems import (  # noqa: E402
    Start,
    celery_redis,
    dask_cluster,
    ray_local,
    run_peer,
)
from bench._peer_systems import percentile as percentile  # noqa: E402 (also bench/grid.py's)
from bench._peer_systems import stop as stop  # noqa: E402 (also bench/grid.py's)
from bench._report import write_results  # noqa: E402

SQLITE = "browsergrid, SQLite (default)"
MEMORY = "browsergrid, memory"
REDIS = "browsergrid, Redis"
DASK = "Dask distributed, LocalCluster 2 procs, defaults"
DASK_INF = "Dask, worker-saturation: inf"
RAY = "Ray, num_cpus=2"
CELERY = "Celery + Redis broker and result backend, 2 solo workers"
# --peers NAME: the module it needs, and its rows with the peer that measures each.
PEERS: dict[str, tuple[str, list[tuple[str, Start]]]] = {
    "dask": ("distributed", [(DASK, dask_cluster(None)), (DASK_INF, dask_cluster("inf"))]),
    "ray": ("ray", [(RAY, ray_local)]),
    "celery": ("celery", [(CELERY, celery_redis)]),
}
TOKEN = secrets.token_urlsafe(16)  # the admin token of the coordinators started here
TARGET_TASKS_PER_S = 20_000
TARGET_PEER_RATIO = 10
TARGET_P50_MS = 1.0
TARGET_DURABLE = 0.5


@contextmanager
def browsergrid_grid(
    workers: int, prefetch: int, store: list[str], *, welcome: bool = False
) -> Iterator[str]:
    """A coordinator (``store``: its store options, e.g. ``["--memory"]``; ``welcome``:
    with its welcome task, as tabs meet it) and its workers; yields its HTTP URL."""
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
                *(() if welcome else ("--no-welcome-task",)),
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
    notes: list[str] | None = None,  # unused: the shape of a measure in measure_all
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


def in_own_process(name: str, notes: list[str]) -> dict[str, float]:
    """One run of system ``name`` in a fresh process (this script with ``--one``); raises
    RuntimeError with the end of its stderr when it fails."""
    command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--one", name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "it failed")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    notes += [note for note in out["notes"] if note not in notes]
    row: dict[str, float] = out["row"]
    return row


def client_workers(url: str) -> list[Any]:
    import httpx

    workers: list[Any] = httpx.get(f"{url}/api/workers", timeout=5).json()
    return workers


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (Linux)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(quiet: float = 0.15, window_s: float = 0.5, most_s: float = 20.0) -> bool:
    """Wait until the machine's CPUs are at most ``quiet`` busy over a ``window_s`` window
    (what the previous system left running, such as a peer's processes still exiting, has
    ended); False if that took more than ``most_s``. Every system waits the same way."""
    if not Path("/proc/stat").exists():
        return True
    deadline = time.monotonic() + most_s
    while True:
        busy0, total0 = _cpu_times()
        time.sleep(window_s)
        busy1, total1 = _cpu_times()
        if (busy1 - busy0) <= quiet * max(1, total1 - total0):
            return True
        if time.monotonic() > deadline:
            return False


def measure_all(
    plan: list[tuple[str, Callable[[list[str]], dict[str, float]]]], runs: int, notes: list[str]
) -> tuple[dict[str, dict[str, float] | None], dict[str, list[dict[str, float]]]]:
    """Every system in ``plan`` once, then again, ``runs`` times over; the median of each
    system's finished runs (None when none finished). A failed or timed-out run is noted and
    left out; every finished run is returned too, to show the spread."""
    every: dict[str, list[dict[str, float]]] = {name: [] for name, _ in plan}
    for n in range(runs):
        for name, measure in plan:
            if not settle():
                notes.append(f"{name}: run {n + 1} started on a machine still busy after 20 s")
            started = time.monotonic()
            try:
                every[name].append(measure(notes))
            except Exception as exc:  # any failure of one run is a skip, not a crash
                why = str(exc) or "no result within --timeout (a worker may have died)"
                notes.append(f"{name}: run {n + 1} of {runs} skipped: {type(exc).__name__}: {why}")
                print(notes[-1], file=sys.stderr)
            else:
                row = every[name][-1]
                print(
                    f"{time.strftime('%H:%M:%S')} run {n + 1}/{runs} {name}: "
                    f"{row['tasks_per_s']:,.0f} tasks/s, p50 {row['p50_ms']:.2f} ms "
                    f"({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    medians = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        if results
        else None
        for name, results in every.items()
    }
    return medians, every


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
    parser.add_argument(
        "--peers",
        help=f"comma-separated peers to measure, of {','.join(PEERS)} "
        "(default: all; --quick: none; '' for none)",
    )
    parser.add_argument("--no-dask", action="store_true", help="leave Dask out of --peers")
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
        help="regression run: 5,000 tasks, 300 single tasks, 1 repeat, no peers unless --peers",
    )
    parser.add_argument("--name", help="results name (default: throughput, or throughput-quick)")
    parser.add_argument("--one", metavar="SYSTEM", help=argparse.SUPPRESS)  # a run's own process
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    if args.tasks is None:
        args.tasks = 5_000 if args.quick else 20_000
    if args.latency is None:
        args.latency = 300 if args.quick else 1_000
    if args.peers is None:
        args.peers = "" if args.quick else ",".join(PEERS)
    peers = [p.strip().lower() for p in args.peers.split(",") if p.strip()]
    if args.no_dask:
        peers = [p for p in peers if p != "dask"]
    if unknown := [p for p in peers if p not in PEERS]:
        parser.error(f"unknown peer(s) {', '.join(unknown)}: choose from {', '.join(PEERS)}")

    notes: list[str] = []
    plan: list[tuple[str, Callable[[list[str]], dict[str, float]]]] = []
    stores: list[tuple[str, list[str], int]] = [(SQLITE, [], 1), (MEMORY, ["--memory"], 1)]
    if args.redis:
        stores.append((REDIS, ["--redis", args.redis], 1))
    if args.redundancy > 1:
        stores.append((f"{SQLITE}, redundancy {args.redundancy}", [], args.redundancy))
    for name, store, redundancy in stores:
        run = partial(
            bench_browsergrid,
            args.tasks,
            args.latency,
            args.prefetch,
            store,
            args.timeout,
            redundancy,
        )
        plan.append((name, run))
    skipped_peers: list[str] = []
    for peer in peers:
        module, named = PEERS[peer]
        if importlib.util.find_spec(module) is None:
            skipped_peers += [name for name, _ in named]
            notes.append(f"{peer} skipped: {module} is not installed (pip install -e '.[bench]')")
            print(notes[-1], file=sys.stderr)
            continue
        for name, start in named:
            plan.append(
                (name, partial(run_peer, start, args.tasks, args.latency, args.timeout, name=name))
            )
    if args.one is not None:  # one run of one system, asked for by the parent process
        measure = dict(plan)[args.one]
        row = measure(notes)
        print(json.dumps({"row": row, "notes": notes}))
        return
    plan = [(name, partial(in_own_process, name)) for name, _ in plan]
    measured, every = measure_all(plan, args.repeat, notes)
    for name in skipped_peers:
        measured[name] = None

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
    peer_rows = {name: rows[name] for name in rows if name in peer_names()}
    best = max(peer_rows, key=lambda name: peer_rows[name]["tasks_per_s"], default=None)
    for mine in (SQLITE, MEMORY):
        for name in peer_rows:
            if mine in rows:
                ratios[f"{mine}/{name}"] = rows[mine]["tasks_per_s"] / rows[name]["tasks_per_s"]
    lines.append("")
    for mine in (SQLITE, MEMORY):
        if mine in rows:
            row = rows[mine]
            verdicts = [
                f"{row['tasks_per_s']:,.0f} tasks/s "
                f"({verdict(row['tasks_per_s'] >= TARGET_TASKS_PER_S)}: at least "
                f"{TARGET_TASKS_PER_S:,})",
                f"p50 {row['p50_ms']:.2f} ms "
                f"({verdict(row['p50_ms'] <= TARGET_P50_MS)}: at most {TARGET_P50_MS:g} ms)",
            ]
            if best is not None:
                ratio = ratios[f"{mine}/{best}"]
                verdicts.append(
                    f"{ratio:.1f}x the best peer, {best} "
                    f"({verdict(ratio >= TARGET_PEER_RATIO)}: at least {TARGET_PEER_RATIO}x)"
                )
            lines.append(f"{mine}: " + "; ".join(verdicts))
    if "durable/memory" in ratios:
        lines.append(
            f"durable/memory throughput: {ratios['durable/memory']:.2f} "
            f"({verdict(ratios['durable/memory'] >= TARGET_DURABLE)}: at least {TARGET_DURABLE})"
        )
    if "Redis/SQLite" in ratios:
        lines.append(f"Redis/SQLite throughput: {ratios['Redis/SQLite']:.2f}")
    for name in peer_rows:
        if f"{SQLITE}/{name}" in ratios:
            lines.append(f"browsergrid SQLite / {name}: {ratios[f'{SQLITE}/{name}']:.1f}x tasks/s")
    lines += [f"note: {note}" for note in notes]
    text = "\n".join(lines).rstrip() + "\n"
    write_results(
        args.name or ("throughput-quick" if args.quick else "throughput"),
        text,
        {
            "args": vars(args),
            "rows": rows,
            "skipped": [name for name, row in measured.items() if row is None],
            "best_peer": best,
            "ratios": ratios,
            "notes": notes,
            "runs": every,
            "versions": versions(peers),
        },
    )


def peer_names() -> set[str]:
    return {name for _, rows in PEERS.values() for name, _ in rows}


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def versions(peers: list[str]) -> dict[str, str]:
    """The versions of the peers measured (those installed), and of redis-server for Celery."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for peer in peers:
        package = PEERS[peer][0]
        with suppress(PackageNotFoundError):
            found[package] = version(package)
    if "celery" in found:
        try:
            out = subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, check=True
            ).stdout
            found["redis-server"] = out.split("v=")[1].split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            pass
    return found


if __name__ == "__main__":
    main()
