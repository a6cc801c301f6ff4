"""Every benchmark of the "fast at scale" issue in one command, then one summary table with
the targets and their verdicts.

    python bench/all.py            # the full runs, one after the other: about 15 min here
    python bench/all.py --quick    # each one's --quick: about 2 min (regression check)
    python bench/all.py --only throughput,browsers

It runs, each as its own process and one at a time (they would disturb each other):

- ``throughput.py``: trivial tasks/s and single-task latency with 2 Python workers, SQLite
  and memory, beside Dask, Ray and Celery (peers not installed are skipped with a note);
- ``idle.py``: idle worker connections held by one coordinator (10,000; 1,000 with --quick):
  accept time, memory per connection, CPU while idle with heartbeats;
- ``dashboard.py``: 1,000 fake workers doing tasks: throughput and the spread of tasks over
  workers (Jain's fairness index), memory and SQLite;
- ``browsers.py``: the grid's rate against the raw rate of the same workers on
  ``monte_carlo_pi`` (efficiency), by task length: 2 and 4 headless Chromium pages, and 2
  Python workers against ``multiprocessing.Pool(2)``; the task length at 50% efficiency;
- ``churn.py``: one trivial job through 2 Python workers, alone and beside simulated tabs
  that come and go (200; 40 with --quick): tasks/s, re-issued and failed tasks.

Each writes its own ``results/NAME.md`` and ``.json``; this one reads them and writes
``results/all.md`` and ``.json`` (``all-quick.*`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._report import RESULTS, write_results  # noqa: E402

PARTS = ("throughput", "idle", "dashboard", "browsers", "churn")
TARGET_TASKS_PER_S = 20_000
TARGET_PEER_RATIO = 10
TARGET_P50_MS = 1.0
TARGET_KB_PER_CONNECTION = 20
TARGET_IDLE_CPU_PCT = 5
TARGET_DURABLE = 0.5
TARGET_TAB_EFFICIENCY = 0.90  # of the same pages' raw rate, for tasks of TARGET_TAB_FROM_MS and up
TARGET_TAB_FROM_MS = 5
TARGET_PYTHON_EFFICIENCY = 0.95  # of multiprocessing.Pool's rate, tasks of 40 ms and up
TARGET_PYTHON_FROM_MS = 40
TARGET_TAB_HALF_MS = 1.0  # the task length at which tabs reach 50% efficiency
TARGET_PYODIDE_MS = 2000.0  # a tab's first python task, from the submit to the result


def run_part(name: str, quick: bool) -> float:
    """Run ``bench/NAME.py`` (with --quick); its wall time in seconds."""
    started = time.monotonic()
    command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"--- {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        print(f"note: {name}.py exited {done.returncode}", flush=True)
    return time.monotonic() - started


def load(name: str, quick: bool) -> dict[str, Any] | None:
    path = RESULTS / f"{name}{'-quick' if quick else ''}.json"
    if not path.exists():
        return None
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def half_text(stage: dict[str, Any]) -> str:
    relation, ms = stage["half"]["relation"], stage["half"]["ms"]
    if relation == "<":
        return f"under {ms:.2f} ms (the smallest measured)"
    if relation == ">":
        return f"over {ms:.1f} ms (the largest measured)"
    return f"{ms:.2f} ms"


def browser_verdicts(stage: dict[str, Any]) -> list[str]:
    """Issue 22's targets for one kind of worker of ``browsers.py``, on the sizes it measured."""
    tabs = stage["kind"] == "tabs"
    least, target = (
        (TARGET_TAB_FROM_MS, TARGET_TAB_EFFICIENCY)
        if tabs
        else (TARGET_PYTHON_FROM_MS, TARGET_PYTHON_EFFICIENCY)
    )
    found = []
    large = [row for row in stage["rows"] if row["size_ms"] >= least]
    if large:
        shown = ", ".join(f"{r['size_ms']} ms {r['efficiency']:.1%}" for r in large)
        met = all(row["efficiency"] >= target for row in large)
        found.append(
            f"{stage['label']}, tasks of {least} ms and more: {shown} of the raw rate, at least "
            f"{target:.0%}: {verdict(met)}"
        )
    if tabs:
        relation, ms = stage["half"]["relation"], stage["half"]["ms"]
        smallest = min(row["size_ms"] for row in stage["rows"])
        met = (relation == "=" and ms <= TARGET_TAB_HALF_MS) or (
            relation == "<" and smallest <= TARGET_TAB_HALF_MS
        )
        found.append(
            f"{stage['label']}: 50% efficiency at {half_text(stage)}, at most "
            f"{TARGET_TAB_HALF_MS:g} ms: {verdict(met)}"
        )
    return found


def summarize(results: dict[str, dict[str, Any] | None]) -> tuple[list[str], list[str]]:
    """The summary table's rows and the verdicts, from what each part wrote."""
    rows: list[str] = []
    verdicts: list[str] = []
    if (tp := results.get("throughput")) is not None:
        for system, row in tp["rows"].items():
            rows.append(
                f"| throughput | {system} | {row['tasks_per_s']:,.0f} tasks/s, "
                f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms |"
            )
        durable = tp["rows"].get("browsergrid, SQLite (default)")
        memory = tp["rows"].get("browsergrid, memory")
        peers = [r["tasks_per_s"] for s, r in tp["rows"].items() if not s.startswith("browsergrid")]
        for name, row in (("SQLite", durable), ("memory", memory)):
            if row is None:
                continue
            verdicts.append(
                f"{name}: {row['tasks_per_s']:,.0f} tasks/s, at least {TARGET_TASKS_PER_S:,}: "
                f"{verdict(row['tasks_per_s'] >= TARGET_TASKS_PER_S)}; p50 "
                f"{row['p50_ms']:.2f} ms, at most {TARGET_P50_MS:g} ms: "
                f"{verdict(row['p50_ms'] <= TARGET_P50_MS)}"
            )
            if peers:
                ratio = row["tasks_per_s"] / max(peers)
                verdicts.append(
                    f"{name}: {ratio:.1f}x the best peer, at least {TARGET_PEER_RATIO}x: "
                    f"{verdict(ratio >= TARGET_PEER_RATIO)}"
                )
        if durable and memory:
            ratio = durable["tasks_per_s"] / memory["tasks_per_s"]
            verdicts.append(
                f"durable/memory throughput {ratio:.2f}, at least {TARGET_DURABLE}: "
                f"{verdict(ratio >= TARGET_DURABLE)}"
            )
    if (idle := results.get("idle")) is not None:
        for row in idle["rows"]:
            if row.get("server") != "coordinator":
                continue
            kb = row["kb_per_connection"] * 1.024  # KiB -> kB
            cpu = row["idle"]["cpu_percent"]
            rows.append(
                f"| idle connections | {row['connections']:,} | accepted in "
                f"{row['accept_seconds']:.1f} s, {row['kb_per_connection']:.1f} KiB each, "
                f"{cpu:.2f}% of a core while idle |"
            )
            verdicts.append(
                f"{row['connections']:,} idle workers: {kb:.1f} kB each, at most "
                f"{TARGET_KB_PER_CONNECTION} kB: {verdict(kb <= TARGET_KB_PER_CONNECTION)}; "
                f"{cpu:.2f}% of a core, under {TARGET_IDLE_CPU_PCT}%: "
                f"{verdict(cpu < TARGET_IDLE_CPU_PCT)}"
            )
    if (fleet := results.get("dashboard")) is not None:
        workers = fleet["args"]["workers"]
        for store, by_viewers in fleet["rows"].items():
            row = by_viewers.get("0")
            if row is None:
                continue
            rows.append(
                f"| {workers:,} workers doing tasks | {store} | {row['tasks_per_s']:,.0f} "
                f"tasks/s; tasks per worker {row['tasks_min']} to {row['tasks_max']} (median "
                f"{row['tasks_median']:g}), Jain's index {row['jain']:.3f} |"
            )
    if (browsers := results.get("browsers")) is not None:
        for stage in browsers.get("stages", []):  # none in results of before issue 22
            rows.append(
                f"| browsers, monte_carlo_pi, grid / raw | {stage['label']} | efficiency "
                + ", ".join(f"{r['size_ms']} ms {r['efficiency']:.0%}" for r in stage["rows"])
                + f"; 50% at {half_text(stage)} |"
            )
            verdicts += browser_verdicts(stage)
        if visits := browsers.get("pyodide"):  # none in results of before
            shown = ", ".join(f"{v['ms']:,.0f} ms" for v in visits)
            rows.append(
                f"| browsers, a tab's first python task | visits 1 to {len(visits)} | {shown} |"
            )
            first, later = visits[0]["ms"], [v["ms"] for v in visits[1:]]
            verdicts.append(
                f"a tab's first python task under {TARGET_PYODIDE_MS:,.0f} ms, first visit of a "
                f"browser: {first:,.0f} ms: {verdict(first < TARGET_PYODIDE_MS)}"
            )
            if later:
                verdicts.append(
                    f"a tab's first python task under {TARGET_PYODIDE_MS:,.0f} ms, later visits: "
                    f"{', '.join(f'{ms:,.0f}' for ms in later)} ms: "
                    f"{verdict(all(ms < TARGET_PYODIDE_MS for ms in later))}"
                )
    if (churn := results.get("churn")) is not None:
        tabs = churn["args"]["tabs"]
        for row in churn["runs"]:
            rows.append(
                f"| churn | {f'beside {tabs} tabs that come and go' if row['churn'] else 'alone'}"
                f" | {row['tasks_per_s']:,.0f} tasks/s; {row['reissued']:,} re-issued, "
                f"{row['failed']:,} failed; every result right: "
                f"{'yes' if row['all_right'] else 'NO'} |"
            )
    return rows, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"which to run (default: {','.join(PARTS)})"
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="run nothing: summarize the last results"
    )
    args = parser.parse_args()
    chosen = [part for part in args.only.split(",") if part]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    seconds = {} if args.summary_only else {part: run_part(part, args.quick) for part in chosen}
    results = {part: load(part, args.quick) for part in chosen}
    rows, verdicts = summarize(results)
    table = "\n".join(
        [
            f"Summary of bench/{{{','.join(chosen)}}}.py"
            f"{' --quick' if args.quick else ''}, {time.strftime('%Y-%m-%d %H:%M')}",
            "",
            "| benchmark | what | figures |",
            "|---|---|---|",
            *rows,
            "",
            "Targets:",
            "",
            *(f"- {line}" for line in verdicts),
        ]
    )
    missing = [part for part, found in results.items() if found is None]
    write_results(
        "all-quick" if args.quick else "all",
        table,
        {"args": vars(args), "seconds": seconds, "verdicts": verdicts, "missing": missing},
    )


if __name__ == "__main__":
    main()
