"""The dashboard's live feed with 1,000 workers: what viewers cost the coordinator, and get.

    python bench/dashboard.py [--workers 1000] [--tasks 40000] [--viewers 5] [--repeat 3] [--quick]

Runs on this machine only (127.0.0.1): a coordinator (``browsergrid serve --memory``, then
the default SQLite store in a fresh temporary --data-dir) and a swarm of fake browser workers
in this process (bench/_swarm.py: 1,000 WebSocket connections, concurrency 1, prefetch 1).
For each store it submits jobs of trivial tasks (``repeat_multiply``, times=1) over
``POST /api/jobs``, alternately with 0 viewers and with ``--viewers`` raw WebSocket viewers
of ``/dashboard/live``, and measures tasks/s, the coordinator's CPU (from /proc/PID/stat),
frames and bytes per viewer, frame sizes, the spread of tasks over the workers, and how fast
``/healthz`` answers meanwhile; and the same costs with the grid idle. Prints a markdown
table and writes bench/results/dashboard.json and .md (dashboard-quick.* with --quick).
--quick (memory only, 20,000 tasks, 1 repeat, shorter idle windows) takes about 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._report import write_results  # noqa: E402
from bench._swarm import Swarm  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
LOG = ("--log-format", "json")
TOKEN = secrets.token_urlsafe(16)  # the admin token of the coordinators started here


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


class CpuMeter:
    """CPU of a process over a stretch of wall time, in percent of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wall = time.monotonic()
        self.cpu = cpu_seconds(pid)

    def percent(self) -> float:
        return 100 * (cpu_seconds(self.pid) - self.cpu) / (time.monotonic() - self.wall)


class HealthProbe(threading.Thread):
    """GET /healthz every 0.1 s from its own thread (the swarm keeps the event loop busy)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.samples: list[tuple[float, float]] = []  # (when sent, ms)
        self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30, trust_env=False) as http:
            while not self.halt.is_set():
                sent, started = time.monotonic(), time.perf_counter()
                if http.get("/healthz").status_code != 200:
                    self.failed += 1
                self.samples.append((sent, (time.perf_counter() - started) * 1000))
                self.halt.wait(0.1)

    def stop(self, submitted: float) -> dict[str, float]:
        """Stop; the slowest answers while the job was being submitted, and after."""
        self.halt.set()
        self.join(30)
        ms = [m for _, m in self.samples]
        after = [m for sent, m in self.samples if sent >= submitted]
        return {
            "healthz_p50_ms": statistics.median(ms),
            "healthz_max_ms": max(ms),
            "healthz_max_after_submit_ms": max(after, default=0.0),
            "healthz_failed": self.failed,
        }


@dataclass
class Viewer:
    """A raw dashboard connection that records (time, bytes, type) of each frame."""

    ws: ClientConnection
    frames: list[tuple[float, int, str]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        async for message in self.ws:
            kind = json.loads(message)["type"]
            self.frames.append((time.monotonic(), len(message), kind))

    def between(self, start: float, end: float) -> list[tuple[float, int, str]]:
        return [f for f in self.frames if start <= f[0] < end]


@asynccontextmanager
async def viewers(port: int, n: int) -> AsyncIterator[list[Viewer]]:
    opened: list[Viewer] = []
    try:
        for _ in range(n):
            ws = await connect(
                f"ws://127.0.0.1:{port}/dashboard/live",
                max_size=None,
                compression=None,
                proxy=None,
            )
            viewer = Viewer(ws)
            viewer.reader = asyncio.create_task(viewer.read())
            opened.append(viewer)
        yield opened
    finally:
        for viewer in opened:
            await viewer.ws.close()
            if viewer.reader is not None:
                await viewer.reader  # ends with the connection


def feed_figures(shown: list[Viewer], start: float, end: float) -> dict[str, float]:
    """Frames and bytes per viewer and second, frame sizes, and gaps between frames."""
    seconds = end - start
    per_viewer = [v.between(start, end) for v in shown]
    updates = [size for frames in per_viewer for _, size, kind in frames if kind == "update"]
    gaps = [b[0] - a[0] for a, b in zip(per_viewer[0], per_viewer[0][1:], strict=False)]
    return {
        "frames_per_s": statistics.mean(len(f) for f in per_viewer) / seconds,
        "bytes_per_s": statistics.mean(sum(s for _, s, _ in f) for f in per_viewer) / seconds,
        "largest_update_bytes": max(updates, default=0),
        "median_update_bytes": statistics.median(updates) if updates else 0,
        "resync_snapshots": sum(k == "snapshot" for f in per_viewer for _, _, k in f),
        "frame_gap_median_s": statistics.median(gaps) if gaps else 0.0,
        "frame_gap_max_s": max(gaps, default=0.0),
    }


def spread(done: list[int]) -> dict[str, float]:
    """How the tasks of a run fell over the workers; Jain's index is 1 when all did the
    same, 1/n when one did everything."""
    squares = sum(n * n for n in done)
    return {
        "tasks_min": min(done),
        "tasks_median": statistics.median(done),
        "tasks_max": max(done),
        "workers_used": sum(1 for n in done if n > 0),
        "jain": sum(done) ** 2 / (len(done) * squares) if squares else 0.0,
    }


@contextmanager
def coordinator(memory: bool) -> Iterator[tuple[int, int]]:
    """``browsergrid serve`` on 127.0.0.1, any free port; yields (port, pid), then stops it."""
    with tempfile.TemporaryDirectory(prefix="browsergrid-bench-") as data_dir:
        store = ["--memory"] if memory else ["--data-dir", data_dir]
        store += ["--max-connections-per-address", "0"]  # the swarm is one address
        serve = subprocess.Popen(
            [sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--quiet", *LOG, *store],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "BROWSERGRID_TOKEN": TOKEN},
        )
        try:
            assert serve.stdout is not None
            port = 0
            for line in serve.stdout:
                entry = json.loads(line)
                if entry.get("event") == "ready":
                    port = entry["port"]
                    break
            if not port:
                raise RuntimeError(f"browsergrid serve exited ({serve.wait()}) before ready")
            yield port, serve.pid
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
                try:
                    serve.wait(15)
                except subprocess.TimeoutExpired:
                    serve.kill()
                    serve.wait()
            if serve.stdout is not None:
                serve.stdout.close()


async def run_job(
    http: httpx.AsyncClient, swarm: Swarm, pid: int, tasks: int, limit_s: float
) -> dict[str, float]:
    """Submit ``tasks`` trivial tasks and wait until the swarm answered them all."""
    before = swarm.counts()
    probe = HealthProbe(str(http.base_url))
    args = [{"initial": float(i), "factor": 1.0, "times": 1} for i in range(tasks)]
    body = json.dumps({"op": "repeat_multiply", "name": "bench", "args": args})
    meter, bench_cpu = CpuMeter(pid), CpuMeter(os.getpid())
    probe.start()
    started = time.monotonic()
    response = await http.post(
        "/api/jobs", content=body, headers={"content-type": "application/json"}
    )
    response.raise_for_status()
    submitted = time.monotonic()
    job_url = f"/api/jobs/{response.json()['job_id']}"
    async with asyncio.timeout(limit_s):
        await swarm.wait_total(sum(before) + tasks)
        # the last results may still be on their way in: the job ends when the coordinator
        # has them all
        while (job := (await http.get(job_url)).json())["done"] < tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # (no event to wait on: polled over HTTP)
    ended = time.monotonic()
    figures = {
        "tasks": tasks,
        "seconds": ended - started,
        "tasks_per_s": tasks / (ended - started),
        "submit_s": submitted - started,
        "coordinator_cpu_pct": meter.percent(),
        "bench_cpu_pct": bench_cpu.percent(),
        "start": started,
        "end": ended,
    }
    figures |= probe.stop(submitted)
    assert job["state"] == "finished", job
    log(f"{tasks:,} tasks in {ended - started:.2f} s")
    figures |= spread([a - b for a, b in zip(swarm.counts(), before, strict=True)])
    return figures


async def idle_cpu(pid: int, seconds: float) -> float:
    meter = CpuMeter(pid)
    await asyncio.sleep(seconds)
    return meter.percent()


async def bench_store(memory: bool, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": []}
    with coordinator(memory) as (port, pid):
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        async with (
            Swarm(f"ws://127.0.0.1:{port}/ws", args.workers) as swarm,
            httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=args.timeout,
                trust_env=False,
                # a fresh connection per request: uvicorn closes idle ones after 5 s, and a
                # request sent on one just then fails (httpx.ReadError)
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as http,
        ):
            out["connect_s"] = time.monotonic() - started
            log(f"{args.workers:,} workers connected in {out['connect_s']:.1f} s")
            await run_job(http, swarm, pid, 5_000, args.timeout)  # warm up
            out["idle_cpu_pct_0_viewers"] = await idle_cpu(pid, args.idle)
            for n in range(args.repeat):
                # 0 viewers first, then with viewers, then the other way round: a drift
                # (the store grows) weighs on both alike
                for count in (0, args.viewers) if n % 2 == 0 else (args.viewers, 0):
                    if count == 0:
                        run = await run_job(http, swarm, pid, args.tasks, args.timeout)
                        out["runs"].append({"viewers": 0, **run})
                        continue
                    async with viewers(port, count) as shown:
                        await asyncio.sleep(1.5)  # the snapshot and the first update pass
                        if n == 0:
                            first = shown[0].frames
                            out["snapshot_bytes"] = first[0][1]
                            out["first_update_bytes"] = first[1][1] if len(first) > 1 else None
                            idle_start = time.monotonic()
                            out["idle_cpu_pct_viewers"] = await idle_cpu(pid, args.idle)
                            out["idle_feed"] = feed_figures(shown, idle_start, time.monotonic())
                        run = await run_job(http, swarm, pid, args.tasks, args.timeout)
                        run |= feed_figures(shown, run["start"], run["end"])
                        out["runs"].append({"viewers": count, **run})
                    await asyncio.sleep(0.6)  # a tick with no viewers
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over runs of every figure."""
    return {
        key: statistics.median(r[key] for r in runs)
        for key in runs[0]
        if key not in ("start", "end")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--tasks", type=int, help="tasks per job (default 40,000; --quick 20,000)")
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--repeat", type=int, help="jobs per store and viewer count (default 3)")
    parser.add_argument("--idle", type=float, help="seconds of idle measured (default 3)")
    parser.add_argument("--no-sqlite", action="store_true", help="only --memory")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per job at most")
    parser.add_argument("--quick", action="store_true", help="memory only, 20,000 tasks, 1 run")
    args = parser.parse_args()
    if args.viewers < 1:
        parser.error("--viewers must be at least 1")
    if args.quick:
        args.no_sqlite = True
    args.tasks = args.tasks or (20_000 if args.quick else 40_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.idle = args.idle or (2.0 if args.quick else 3.0)

    stores = {"memory": True} if args.no_sqlite else {"memory": True, "SQLite": False}
    measured: dict[str, dict[str, Any]] = {}
    for name, memory in stores.items():
        measured[name] = asyncio.run(bench_store(memory, args))

    lines = [
        f"{args.workers:,} fake browser workers (concurrency 1, prefetch 1), jobs of "
        f"{args.tasks:,} trivial tasks, median of {args.repeat} jobs per row, "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| store | viewers | tasks/s | coordinator CPU % | bench process CPU % "
        "| frames/s per viewer | KB/s per viewer | largest update KB "
        "| tasks per worker min/median/max | Jain "
        "| /healthz max ms: all / after submit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table: dict[str, dict[int, dict[str, float]]] = {}
    for name, out in measured.items():
        for count in (0, args.viewers):
            row = summarize([r for r in out["runs"] if r["viewers"] == count])
            table.setdefault(name, {})[count] = row
            feed = (
                f"{row['frames_per_s']:.2f} | {row['bytes_per_s'] / 1000:,.0f} "
                f"| {row['largest_update_bytes'] / 1000:,.0f}"
                if count
                else "— | — | —"
            )
            lines.append(
                f"| {name} | {count} | {row['tasks_per_s']:,.0f} "
                f"| {row['coordinator_cpu_pct']:.0f} | {row['bench_cpu_pct']:.0f} | {feed} "
                f"| {row['tasks_min']:.0f} / {row['tasks_median']:.0f} / {row['tasks_max']:.0f} "
                f"| {row['jain']:.3f} | {row['healthz_max_ms']:,.0f} "
                f"/ {row['healthz_max_after_submit_ms']:,.0f} |"
            )
    lines += [
        "",
        "| store | connect 1,000 s | snapshot KB | first update after connect KB "
        "| idle CPU % 0 viewers | idle CPU % with viewers | idle frames/s | idle largest "
        "update bytes | submit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, out in measured.items():
        first = out["first_update_bytes"]
        lines.append(
            f"| {name} | {out['connect_s']:.1f} | {out['snapshot_bytes'] / 1000:,.0f} "
            f"| {'—' if first is None else f'{first / 1000:,.0f}'} "
            f"| {out['idle_cpu_pct_0_viewers']:.1f} | {out['idle_cpu_pct_viewers']:.1f} "
            f"| {out['idle_feed']['frames_per_s']:.2f} "
            f"| {out['idle_feed']['largest_update_bytes']:,} "
            f"| {table[name][0]['submit_s']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    write_results(
        "dashboard-quick" if args.quick else "dashboard",
        text,
        {
            "args": vars(args),
            "rows": table,
            "stores": measured,
        },
    )


if __name__ == "__main__":
    main()
