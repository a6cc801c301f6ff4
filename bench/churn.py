"""Throughput under churn: one trivial job through 2 Python workers, alone and beside browser
tabs that come and go.

    python bench/churn.py [--tasks 20000] [--tabs 200] [--life 1,30] [--delay-ms 1,10]
                          [--settle 5] [--prefetch 64] [--timeout 180] [--quick] [--name NAME]

Runs on this machine only (127.0.0.1). Each run starts a coordinator, ``browsergrid serve
--port 0 --quiet --log-format json --memory`` (welcome task on, as tabs meet it), and 2 Python
workers, ``browsergrid worker URL --quiet --prefetch 64``, in a fresh temporary --data-dir
(deleted afterwards); all are stopped by their PIDs. After a warm-up job of 2,000 tasks it
times one job of ``--tasks`` trivial tasks (``repeat_multiply``, ``times=1``: task i answers
``float(i)``), from submission to the last result, twice:

- **without churn**: the 2 Python workers alone;
- **with churn**: beside ``--tabs`` simulated tabs, asyncio ``websockets`` clients in this
  process (a thread of their own). Each sends ``hello`` with a fresh ``worker_key`` (a new
  identity: no history), ops ``repeat_multiply``, concurrency 1, prefetch 1 (what the worker
  page asks), answers its welcome task and every task correctly (``browsergrid.ops``), one
  at a time, each after a delay drawn from ``--delay-ms``; it lives a time drawn from
  ``--life`` seconds, then drops its connection without a word (no close frame, tasks in
  hand) and a new tab takes its place at once. The tabs churn for ``--settle`` seconds
  before the job is submitted, so that the job meets tabs of every age.

For each run it reports tasks/s; the leases lost during the job (the coordinator's
``browsergrid_errors_total`` of ``/metrics``, by kind: ``worker_lost`` is a disconnect with
the task in hand, welcome tasks included); the job's tasks that were re-issued (``attempts``
above 1 in ``/api/jobs/ID/results``) and those that failed; how many of its tasks the tabs
did; the tabs that dropped during the job, and with how many of the job's tasks in hand;
and whether every result is right. Prints a markdown table and writes
bench/results/churn.json and .md (churn-quick.* with --quick: 2,000 tasks, 40 tabs living
1 to 20 s, 3 s of settling; about 20 s; NAME.* with --name NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._report import write_results  # noqa: E402
from bench.throughput import TOKEN, browsergrid_grid, settle  # noqa: E402

WARM_UP: Final = 2_000
WELCOME_TIMES: Final = 1_000_000  # the welcome task's ``times``; the job's tasks use 1


# --- the tabs ---------------------------------------------------------------------------------


@dataclass
class TabCounts:
    """What the tabs did; the ``during_*`` ones only while ``measuring`` was set."""

    connected: int = 0  # tabs that said hello
    answered: int = 0  # job tasks answered (welcome tasks not counted)
    during_drops: int = 0  # tabs that dropped while the job ran
    during_abandoned: int = 0  # job tasks those tabs held when they dropped


class Tabs:
    """``n`` simulated browser tabs in a thread of their own, each replaced when it drops,
    until ``stop()``; ``worker_ids`` are the coordinator's ids of every tab so far."""

    def __init__(
        self,
        url: str,
        n: int,
        life: tuple[float, float],
        delay_ms: tuple[float, float],
        seed: int,
    ) -> None:
        self.url, self.n, self.life, self.delay_ms = url, n, life, delay_ms
        self.rng = random.Random(seed)
        self.counts = TabCounts()
        self.worker_ids: set[int] = set()
        self.measuring = False
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tabs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close every tab (without a word, as they drop) and end the thread."""
        while self._stop is None and self._thread.is_alive():  # not made yet
            time.sleep(0.01)
        if self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        slots = [asyncio.create_task(self._slot()) for _ in range(self.n)]
        await self._stop.wait()
        for slot in slots:
            slot.cancel()
        await asyncio.gather(*slots, return_exceptions=True)

    async def _slot(self) -> None:
        """One place for a tab: a tab, then the next when it drops, and so on."""
        while True:
            try:
                await self._tab()
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)  # refused or slow to open: try again soon

    async def _tab(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        ws = await connect(
            self.url, compression=None, proxy=None, open_timeout=30, ping_interval=None
        )
        held: list[dict[str, Any]] = []  # tasks received, not yet answered, in order
        arrived = asyncio.Event()
        hello = {
            "type": "hello",
            "protocol": 1,
            "agent": "churn-tab/1.0",
            "ops": ["repeat_multiply"],
            "concurrency": 1,
            "prefetch": 1,
            "worker_key": f"tab-{secrets.token_hex(16)}",
        }

        async def read() -> None:
            async for message in ws:
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "task":
                    held.append(frame)
                elif kind == "tasks":
                    held.extend(frame["tasks"])
                elif kind == "cancel":
                    held[:] = [t for t in held if t["task_id"] != frame["task_id"]]
                elif kind == "welcome":
                    self.worker_ids.add(frame["worker_id"])
                    self.counts.connected += 1
                arrived.set()

        async def work() -> None:
            from browsergrid.ops import run_op

            while True:
                while not held:
                    arrived.clear()
                    await arrived.wait()
                await asyncio.sleep(self.rng.uniform(*self.delay_ms) / 1000)
                if not held:
                    continue  # cancelled meanwhile
                task = held.pop(0)
                answer = {
                    "type": "result",
                    "task_id": task["task_id"],
                    "result": run_op(task["op"], task),
                    "duration_ms": 0.01,
                }
                await ws.send(json.dumps(answer))
                self.counts.answered += task.get("times") != WELCOME_TIMES

        life = self.rng.uniform(*self.life)
        running = [asyncio.create_task(read()), asyncio.create_task(work())]
        try:
            await ws.send(json.dumps(hello))
            await asyncio.wait(running, timeout=life, return_when=asyncio.FIRST_COMPLETED)
        except ConnectionClosed:
            pass
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            if self.measuring:
                self.counts.during_drops += 1
                self.counts.during_abandoned += sum(t.get("times") != WELCOME_TIMES for t in held)
            ws.transport.abort()  # the tab is gone: no close frame


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    churn: bool
    tasks: int
    seconds: float
    tasks_per_s: float
    all_right: bool
    failed: int
    reissued: int  # tasks of the job with more than one lease
    lost: dict[str, float]  # leases lost during the job, by kind (/metrics)
    by_tabs: int  # tasks of the job whose accepted result came from a tab
    tabs: dict[str, int] | None


def errors_by_kind(http_url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(
        f"{http_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('browsergrid_errors_total{kind="'):
            found[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
    return found


def job_outcomes(http_url: str, job_id: int) -> list[dict[str, Any]]:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{http_url}/api/jobs/{job_id}/results"
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        return [json.loads(line) for line in response.iter_lines() if line]


def wait_for_workers(http_url: str, count: int) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while True:
        workers = httpx.get(
            f"{http_url}/api/workers", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        ).json()
        if len(workers) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {count} Python workers did not connect within 30 s")
        time.sleep(0.1)


def one_run(args: argparse.Namespace, churn: bool) -> Run:
    from browsergrid import Client

    job_args = [{"initial": float(i), "factor": 1.0, "times": 1} for i in range(args.tasks)]
    with (
        browsergrid_grid(2, args.prefetch, ["--memory"], welcome=True) as http_url,
        Client(http_url, token=TOKEN) as client,
    ):
        ws_url = http_url.replace("http://", "ws://", 1) + "/ws"
        wait_for_workers(http_url, 2)
        warm_up = list(client.map("repeat_multiply", job_args[:WARM_UP], timeout=args.timeout))
        assert warm_up == [float(i) for i in range(min(WARM_UP, args.tasks))]
        tabs = None
        if churn:
            tabs = Tabs(ws_url, args.tabs, args.life, args.delay_ms, seed=args.seed)
            tabs.start()
            time.sleep(args.settle)
        try:
            before = errors_by_kind(http_url)
            if tabs is not None:
                tabs.measuring = True
            started = time.perf_counter()
            job = client.submit_job("repeat_multiply", job_args)
            pending = unfinished(job.futures, args.timeout)
            elapsed = time.perf_counter() - started
            if tabs is not None:
                tabs.measuring = False
            after = errors_by_kind(http_url)
        finally:
            if tabs is not None:
                tabs.stop()
        if pending:
            raise TimeoutError(f"{pending} tasks unfinished after --timeout {args.timeout} s")
        results = [f.result() if f.exception() is None else None for f in job.futures]
        outcomes = job_outcomes(http_url, job.job_id)
    tab_ids = tabs.worker_ids if tabs is not None else set()
    return Run(
        churn=churn,
        tasks=args.tasks,
        seconds=elapsed,
        tasks_per_s=args.tasks / elapsed,
        all_right=results == [float(i) for i in range(args.tasks)],
        failed=sum(o["status"] != "done" for o in outcomes),
        reissued=sum(o.get("attempts", 1) > 1 for o in outcomes if o["status"] == "done"),
        lost={
            k: after[k] - before.get(k, 0.0) for k in ("worker_lost", "lease_expired", "task_error")
        },
        by_tabs=sum(o.get("worker_id") in tab_ids for o in outcomes),
        tabs=asdict(tabs.counts) if tabs is not None else None,
    )


def unfinished(futures: list[Future[Any]], timeout: float) -> int:
    """Wait up to ``timeout`` s for every future; how many are still pending."""
    from concurrent.futures import wait

    return len(wait(futures, timeout).not_done)


def pair(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    low, high = float(lo), float(hi or lo)
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"want LOW,HIGH with 0 <= LOW <= HIGH, not {text!r}")
    return low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, help="tasks of the timed job (default 20,000)")
    parser.add_argument("--tabs", type=int, help="simulated tabs at any moment (default 200)")
    parser.add_argument(
        "--life", type=pair, help="a tab lives LOW,HIGH seconds, uniformly (default 1,30)"
    )
    parser.add_argument(
        "--delay-ms",
        type=pair,
        default=(1.0, 10.0),
        help="a tab answers each task after LOW,HIGH ms, uniformly (default 1,10)",
    )
    parser.add_argument(
        "--settle", type=float, help="seconds the tabs churn before the job (default 5)"
    )
    parser.add_argument("--prefetch", type=int, default=64, help="Python worker --prefetch")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for a job")
    parser.add_argument("--seed", type=int, default=21, help="seed of the tabs' random draws")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2,000 tasks, 40 tabs living 1 to 20 s, 3 s of settling (about 20 s)",
    )
    parser.add_argument("--name", help="results name (default: churn, or churn-quick)")
    args = parser.parse_args()
    defaults = (2_000, 40, (1.0, 20.0), 3.0) if args.quick else (20_000, 200, (1.0, 30.0), 5.0)
    for name, value in zip(("tasks", "tabs", "life", "settle"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)

    runs: list[Run] = []
    notes: list[str] = []
    for churn in (False, True):
        if not settle():
            notes.append(
                f"the run {'with' if churn else 'without'} churn started on a machine "
                "still busy after 20 s"
            )
        runs.append(one_run(args, churn))
        row = runs[-1]
        print(
            f"{time.strftime('%H:%M:%S')} {'with' if churn else 'without'} churn: "
            f"{row.tasks_per_s:,.0f} tasks/s, {row.reissued} re-issued, {row.failed} failed, "
            f"all right: {row.all_right}",
            file=sys.stderr,
            flush=True,
        )
    lines = [
        f"{args.tasks:,} trivial tasks (repeat_multiply) through `serve --memory` with 2 Python "
        f"workers (--prefetch {args.prefetch}); churn: {args.tabs} tabs living "
        f"{args.life[0]:g} to {args.life[1]:g} s, answering after {args.delay_ms[0]:g} to "
        f"{args.delay_ms[1]:g} ms, {args.settle:g} s of churn before the job; "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| run | tasks/s | seconds | leases lost (disconnect / deadline / error) "
        "| tasks re-issued | failed | done by tabs | tabs dropped during the job "
        "(job tasks in hand) | every result right |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in runs:
        tabs = row.tabs or {}
        dropped = f"{tabs['during_drops']:,} ({tabs['during_abandoned']:,})" if row.tabs else "—"
        lines.append(
            f"| {'with churn' if row.churn else 'without churn'} | {row.tasks_per_s:,.0f} "
            f"| {row.seconds:.2f} | {row.lost['worker_lost']:,.0f} / "
            f"{row.lost['lease_expired']:,.0f} / {row.lost['task_error']:,.0f} "
            f"| {row.reissued:,} | {row.failed:,} | {row.by_tabs:,} | {dropped} "
            f"| {'yes' if row.all_right else 'NO'} |"
        )
    plain, churned = runs
    lines += [
        "",
        f"with churn / without: {churned.tasks_per_s / plain.tasks_per_s:.2f} of the tasks/s; "
        f"{(churned.tabs or {}).get('connected', 0):,} tab connections in all, "
        f"{(churned.tabs or {}).get('answered', 0):,} job tasks answered by tabs (warm-up "
        "excluded, re-issued ones included)",
        *(f"note: {note}" for note in notes),
    ]
    text = "\n".join(lines) + "\n"
    write_results(
        args.name or ("churn-quick" if args.quick else "churn"),
        text,
        {"args": vars(args), "runs": [asdict(r) for r in runs], "notes": notes},
    )


if __name__ == "__main__":
    main()
