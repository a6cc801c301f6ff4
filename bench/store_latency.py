"""How long one lone write takes in each store: a single task's insert, then its outcome.

    python bench/store_latency.py [--writes 2000] [--name store-latency]

A single task's submit-to-result latency holds two store writes: its insert (before its
``accepted``) and its outcome (before its result is pushed). This measures each, alone, as
the coordinator makes them: from the event loop (uvloop), one at a time, each in its own
pass of the loop, in a fresh SQLite file (the default ``synchronous=normal``) and in
memory. Prints the p50 and p99 of each and writes bench/results/store-latency.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._peer_systems import percentile  # noqa: E402
from bench._report import write_results  # noqa: E402
from browsergrid.protocol import ResultRecord  # noqa: E402
from browsergrid.store import JobInfo, MemoryStore, SqliteStore, Store, TaskRecord  # noqa: E402


async def lone_writes(store: Store, writes: int) -> dict[str, float]:
    """``writes`` tasks, each inserted then finished, one write per pass of the loop."""
    await store.open()
    await store.add_job(JobInfo(1, "bench", "repeat_multiply", 0, time.time(), "bench"), [])
    inserts: list[float] = []
    outcomes: list[float] = []
    for task_id in range(1, writes + 1):
        await asyncio.sleep(0)
        started = time.perf_counter()
        await store.add_tasks([TaskRecord(task_id, 1, task_id - 1, "repeat_multiply", {})])
        inserts.append((time.perf_counter() - started) * 1e6)
        await asyncio.sleep(0)
        started = time.perf_counter()
        outcome = ResultRecord(
            task_id=task_id,
            job_id=1,
            index=task_id - 1,
            result=1.0,
            worker_id=1,
            attempts=1,
            duration_ms=0.1,
            finished_at=time.time(),
        )
        await store.add_outcomes([outcome])
        outcomes.append((time.perf_counter() - started) * 1e6)
    await store.close()
    return {
        "insert_p50_us": statistics.median(inserts),
        "insert_p99_us": percentile(inserts, 0.99),
        "outcome_p50_us": statistics.median(outcomes),
        "outcome_p99_us": percentile(outcomes, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--name", default="store-latency")
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        sqlite = SqliteStore(Path(scratch) / "bench.db")
        rows["SQLite (synchronous=normal)"] = uvloop.run(lone_writes(sqlite, args.writes))
    rows["memory"] = uvloop.run(lone_writes(MemoryStore(), args.writes))
    lines = [
        f"{args.writes:,} lone writes of each kind, µs, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| store | insert p50 | insert p99 | outcome p50 | outcome p99 |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['insert_p50_us']:.0f} | {row['insert_p99_us']:.0f} "
            f"| {row['outcome_p50_us']:.0f} | {row['outcome_p99_us']:.0f} |"
        )
    write_results(args.name, "\n".join(lines) + "\n", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
