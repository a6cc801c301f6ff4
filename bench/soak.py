"""A soak: does the coordinator's memory stay flat while work flows through it for long?

    python bench/soak.py [--jobs 100000] [--tasks 1000000] [--store sqlite|memory]
                         [--workers 2] [--in-flight 2000] [--sample-s 2] [--timeout 3600]
                         [--quick] [--name NAME]

Runs on this machine only (127.0.0.1). One coordinator, ``browsergrid serve --port 0 --quiet
--log-format json --no-welcome-task --retain 1s`` (SQLite in a fresh temporary --data-dir,
or ``--memory``), and ``--workers`` Python worker processes (``browsergrid worker --quiet``,
prefetch 64). This process is the client (``AsyncClient``, on uvloop when installed), in two
phases, one after the other:

- **jobs**: ``--jobs`` one-task jobs (``submit_job``), ``--in-flight`` of them at a time:
  each lane submits a job, waits for its result, submits the next;
- **tasks**: ``--tasks`` tasks into one long-lived job, as single ``submit`` calls do (the
  client's session job, one ``job_key``), ``--in-flight`` waiting at a time.

Every ``--sample-s`` seconds it reads the coordinator's resident memory (VmRSS in
``/proc/PID/status``) with how many jobs or tasks have finished. Per phase it reports the
RSS at its start, after its warm-up (the first 10% of its jobs or tasks: caches fill and the
heap takes its working size) and at its end, and the slope after the warm-up (least squares
of RSS over finished work) in KiB per 1,000 jobs or tasks: about 0 when what is finished
leaves memory. ``--retain 1s`` lets ``prune`` remove finished jobs from the store, but the
coordinator prunes at start and then hourly: with ``--store memory`` the results it holds
grow until then, so the default SQLite store is the one that shows the coordinator's own
memory.

The run is bounded: lanes stop submitting at ``--timeout`` seconds after start, and a phase
whose results do not come within 60 s more is abandoned (reported as such). Workers, then
the coordinator, are stopped by PID (SIGTERM, then SIGKILL after 10 s): only what this
script started. Prints a markdown table and writes bench/results/soak.json and .md
(soak-quick.* with --quick: 10,000 jobs and 100,000 tasks, about 2 min here; NAME.* with
--name NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._peer_systems import stop  # noqa: E402
from bench._report import write_results  # noqa: E402
from bench.idle import rss_kb  # noqa: E402

TOKEN = secrets.token_urlsafe(16)  # the admin token of the coordinator started here
OP = "repeat_multiply"
WARM_UP = 0.1  # of a phase's jobs or tasks, left out of its slope
GRACE_S = 60.0  # past --timeout, how long results still in flight may take


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the coordinator was ready
    phase: str
    done: int  # jobs or tasks of the phase finished so far
    rss_kb: int  # the coordinator's VmRSS


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def grid(store: str, workers: int, max_tasks: int) -> Iterator[tuple[str, int]]:
    """A coordinator and its workers; yields the coordinator's HTTP URL and PID."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSERGRID_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory(prefix="browsergrid-soak-") as data_dir:
        serve = subprocess.Popen(
            [
                *(sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--quiet"),
                *("--log-format", "json", "--no-welcome-task", "--retain", "1s"),
                *("--max-tasks-per-job", str(max_tasks), "--data-dir", data_dir),
                *(["--memory"] if store == "memory" else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs: list[subprocess.Popen[Any]] = [serve]
        ready: list[str] = []
        last: collections.deque[str] = collections.deque(maxlen=20)
        started = threading.Event()

        def drain() -> None:  # a full pipe would stop the coordinator: read all it writes
            assert serve.stdout is not None
            for line in serve.stdout:
                last.append(line)
                if not ready and '"ready"' in line:
                    ready.append(json.loads(line)["ws_url"])
                    started.set()
            started.set()

        threading.Thread(target=drain, daemon=True).start()
        try:
            if not started.wait(60) or not ready:
                raise RuntimeError(f"browsergrid serve did not start: {''.join(last)[-2000:]}")
            url = ready[0]
            procs += [
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "browsergrid", "worker", url, "--quiet"),
                        *("--prefetch", "64", "--data-dir", data_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
                for _ in range(workers)
            ]
            yield url.replace("ws://", "http://").removesuffix("/ws"), serve.pid
        finally:
            stop(procs[1:] + procs[:1])  # workers first, then the coordinator
            if serve.stdout is not None:
                serve.stdout.close()


class Sampler:
    """Reads the coordinator's RSS every ``every`` seconds, with the phase's progress."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid = pid
        self.every = every
        self.began = time.monotonic()
        self.phase = "idle"
        self.done = 0
        self.samples: list[Sample] = []

    def take(self) -> Sample:
        sample = Sample(
            round(time.monotonic() - self.began, 2), self.phase, self.done, rss_kb(self.pid)
        )
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            sample = self.take()
            if len(self.samples) % max(1, round(20 / self.every)) == 0:
                log(f"{sample.phase}: {sample.done:,} done, RSS {sample.rss_kb / 1024:.1f} MiB")


async def _workers(url: str, count: int) -> None:
    import httpx

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for _ in range(300):
            if len((await http.get(f"{url}/api/workers", timeout=5)).json()) >= count:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the {count} workers did not connect within 30 s")


async def phase(
    name: str, count: int, in_flight: int, deadline: float, sampler: Sampler, client: Any
) -> dict[str, Any]:
    """Run ``count`` jobs (``name`` "jobs") or session tasks ("tasks"), ``in_flight`` at a
    time, until done or ``deadline``; returns what was measured."""
    sampler.phase, sampler.done = name, 0
    first = sampler.take()
    began = time.monotonic()
    handed = 0

    async def lane() -> None:
        nonlocal handed
        while handed < count and time.monotonic() < deadline:
            i = handed
            handed += 1
            args = {"initial": float(i), "factor": 1.0, "times": 1}
            if name == "jobs":
                future = client.submit_job(OP, [args]).futures[0]
            else:
                future = client.submit(OP, **args)
            if await future != float(i):
                raise AssertionError(f"{name} {i}: wrong result")
            sampler.done += 1

    outcome = "complete"
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + GRACE_S):
            await asyncio.gather(*(lane() for _ in range(min(in_flight, count))))
    except TimeoutError:
        outcome = f"abandoned: results missing {GRACE_S:g} s after --timeout"
    if outcome == "complete" and sampler.done < count:
        outcome = "stopped at --timeout"
    elapsed = time.monotonic() - began
    last = sampler.take()
    samples = [s for s in sampler.samples if s.phase == name]
    warm = next((s for s in samples if s.done >= WARM_UP * count), last)
    after = [s for s in samples if s.done >= warm.done]
    return {
        "phase": name,
        "asked": count,
        "done": sampler.done,
        "outcome": outcome,
        "seconds": round(elapsed, 1),
        "per_s": round(sampler.done / elapsed, 1) if elapsed > 0 else 0.0,
        "rss_start_kb": first.rss_kb,
        "rss_warm_kb": warm.rss_kb,
        "warm_done": warm.done,
        "rss_end_kb": last.rss_kb,
        "slope_kb_per_1000": _slope(after),
        "growth_kb_per_1000": round((last.rss_kb - warm.rss_kb) / (last.done - warm.done) * 1000, 3)
        if last.done > warm.done
        else None,
    }


def _slope(samples: list[Sample]) -> float | None:
    """Least squares of RSS (KiB) over finished work, per 1,000 (None: too few points)."""
    xs = [s.done for s in samples]
    if len(set(xs)) < 3:
        return None
    mean_x = sum(xs) / len(xs)
    mean_y = sum(s.rss_kb for s in samples) / len(samples)
    num = sum((s.done - mean_x) * (s.rss_kb - mean_y) for s in samples)
    den = sum((x - mean_x) ** 2 for x in xs)
    return round(num / den * 1000, 3)


async def soak(args: argparse.Namespace, url: str, pid: int) -> dict[str, Any]:
    from browsergrid import AsyncClient

    deadline = time.monotonic() + args.timeout
    sampler = Sampler(pid, args.sample_s)
    sampling = asyncio.create_task(sampler.run())
    phases = []
    try:
        await _workers(url, args.workers)
        async with AsyncClient(url, token=TOKEN) as client:
            for name, count in (("jobs", args.jobs), ("tasks", args.tasks)):
                if count > 0:
                    log(f"{name}: {count:,}, {args.in_flight} at a time")
                    phases.append(
                        await phase(name, count, args.in_flight, deadline, sampler, client)
                    )
                    log(f"{name}: {phases[-1]}")
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    return {"phases": phases, "samples": [asdict(s) for s in sampler.samples]}


def table(result: dict[str, Any], store: str) -> str:
    def mib(kb: int) -> str:
        return f"{kb / 1024:.1f}"

    def per(value: float | None) -> str:
        return "-" if value is None else f"{value:+.3f}"

    rows = [
        f"Coordinator memory under a soak (`--store {store}`, `--retain 1s`), VmRSS in MiB; "
        "slopes in KiB per 1,000 jobs or tasks, after the warm-up (the first 10%).",
        "",
        "| phase | done | s | per s | RSS start | after warm-up | end | slope "
        "| (end - warm-up) / 1,000 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["phases"]:
        what = "one-task jobs" if p["phase"] == "jobs" else "tasks into one session job"
        done = f"{p['done']:,} of {p['asked']:,}" + (
            "" if p["outcome"] == "complete" else f" ({p['outcome']})"
        )
        rows.append(
            f"| {what} | {done} | {p['seconds']:g} | {p['per_s']:,.0f} | "
            f"{mib(p['rss_start_kb'])} | {mib(p['rss_warm_kb'])} | {mib(p['rss_end_kb'])} | "
            f"{per(p['slope_kb_per_1000'])} | {per(p['growth_kb_per_1000'])} |"
        )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="one-task jobs (0: none)")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks into one job")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="Python worker processes")
    parser.add_argument("--in-flight", type=int, default=2000, help="jobs or tasks waiting")
    parser.add_argument("--sample-s", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds at most")
    parser.add_argument("--quick", action="store_true", help="10,000 jobs, 100,000 tasks")
    parser.add_argument("--name", help="write bench/results/NAME.* (default: soak)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.tasks = min(args.jobs, 10_000), min(args.tasks, 100_000)
    name = args.name or ("soak-quick" if args.quick else "soak")
    runner: asyncio.Runner
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with grid(args.store, args.workers, max(args.tasks, 1) + 1000) as (url, pid), runner:
        result = runner.run(soak(args, url, pid))
    data = {
        "args": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        **result,
    }
    write_results(name, table(result, args.store), data)


if __name__ == "__main__":
    main()
