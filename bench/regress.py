"""The regression benchmark: the coordinator's hot paths in about a minute, against the
figures recorded in ``bench/regress-baseline.json``.

    python bench/regress.py                  # about 70 s; exit 1 if a figure regressed
    python bench/regress.py --save-baseline  # record the median of 3 runs as the baseline
    python bench/regress.py --runs 3         # compare the median of 3 runs (about 3.5 min)

It runs, one after the other:

- ``throughput.py --quick --tasks 3000 --latency 200``: trivial tasks/s and single-task
  p50 latency with 2 Python workers, SQLite and memory;
- ``idle.py --quick --connections 1000 --idle-seconds 5 --heartbeat-interval 5``:
  accept time, memory per idle connection and idle CPU with a ping every 5 s;
- ``browsers.py --quick --sizes 5 --python-sizes 20`` (about 25 s): the grid's efficiency,
  in % of the raw rate of the same workers, for 2 Chromium pages on tasks of 5 ms and for
  2 Python workers (against ``multiprocessing.Pool(2)``) on tasks of 20 ms.

A figure regressed when it is worse than the baseline by more than ``--tolerance``
(default 25%: this machine is shared and noisy; run again before believing one). Idle CPU
is compared in points of a core, not percent, since it is near zero.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASELINE = HERE / "regress-baseline.json"
IDLE_NAME, THROUGHPUT_NAME = "idle-regress", "throughput-regress"
BROWSERS_NAME = "browsers-regress"

# figure: (higher is better, how to read it from the runs)
FIGURES: dict[str, bool] = {
    "sqlite_tasks_per_s": True,
    "memory_tasks_per_s": True,
    "sqlite_p50_ms": False,
    "memory_p50_ms": False,
    "idle_kib_per_connection": False,
    "idle_cpu_ms_per_accept": False,
    "idle_cpu_percent": False,
    "tab_efficiency_5ms_percent": True,
    "python_efficiency_20ms_percent": True,
}
_CPU_POINTS = 1.0  # idle CPU: allowed rise in points of a core


def run(command: list[str]) -> None:
    print(f"--- {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def measure() -> dict[str, float]:
    python = sys.executable
    run(
        [
            *(python, str(HERE / "throughput.py"), "--quick", "--tasks", "3000"),
            *("--latency", "200", "--name", THROUGHPUT_NAME),
        ]
    )
    run(
        [
            python,
            str(HERE / "idle.py"),
            "--quick",
            "--connections",
            "1000",
            "--idle-seconds",
            "5",
            "--heartbeat-interval",
            "5",
            "--name",
            IDLE_NAME,
        ]
    )
    run(
        [
            *(python, str(HERE / "browsers.py"), "--quick", "--sizes", "5"),
            *("--python-sizes", "20", "--name", BROWSERS_NAME),
        ]
    )
    rows = json.loads((RESULTS / f"{THROUGHPUT_NAME}.json").read_text())["rows"]
    (idle,) = json.loads((RESULTS / f"{IDLE_NAME}.json").read_text())["rows"]
    sqlite, memory = rows["browsergrid, SQLite (default)"], rows["browsergrid, memory"]
    tabs, python_workers = json.loads((RESULTS / f"{BROWSERS_NAME}.json").read_text())["stages"]
    (tab_row,), (python_row,) = tabs["rows"], python_workers["rows"]
    return {
        "sqlite_tasks_per_s": sqlite["tasks_per_s"],
        "memory_tasks_per_s": memory["tasks_per_s"],
        "sqlite_p50_ms": sqlite["p50_ms"],
        "memory_p50_ms": memory["p50_ms"],
        "idle_kib_per_connection": idle["kb_per_connection"],
        "idle_cpu_ms_per_accept": idle["server_cpu_ms_per_accept"],
        "idle_cpu_percent": idle["idle"]["cpu_percent"],
        "tab_efficiency_5ms_percent": tab_row["efficiency"] * 100,
        "python_efficiency_20ms_percent": python_row["efficiency"] * 100,
    }


def regressed(name: str, now: float, before: float, tolerance: float) -> bool:
    if name == "idle_cpu_percent":
        return now > before + _CPU_POINTS
    if FIGURES[name]:
        return now < before * (1 - tolerance)
    return now > before * (1 + tolerance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tolerance", type=float, default=0.25)
    parser.add_argument("--save-baseline", action="store_true")
    parser.add_argument(
        "--runs", type=int, help="median of this many runs (default 1; 3 with --save-baseline)"
    )
    args = parser.parse_args()
    runs = args.runs or (3 if args.save_baseline else 1)
    started = time.monotonic()
    each = [measure() for _ in range(runs)]  # one noisy run makes a lax or a strict baseline
    figures = {name: statistics.median(run[name] for run in each) for name in FIGURES}
    baseline: dict[str, Any] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    known = baseline.get("figures", {})
    print(f"\n| figure | now | baseline ({baseline.get('when', 'none')}) | |")
    print("|---|---|---|---|")
    worse = []
    for name, value in figures.items():
        before = known.get(name)
        flag = ""
        if before is not None and regressed(name, value, before, args.tolerance):
            flag = "REGRESSED"
            worse.append(name)
        shown = f"{before:,.2f}" if before is not None else "-"
        print(f"| {name} | {value:,.2f} | {shown} | {flag} |")
    print(f"\n{time.monotonic() - started:.0f} s")
    if args.save_baseline:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        BASELINE.write_text(
            json.dumps(
                {
                    "when": time.strftime("%Y-%m-%d %H:%M"),
                    "commit": commit,
                    "runs": runs,
                    "figures": figures,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"baseline written to {BASELINE.relative_to(HERE.parent)}")
    elif worse:
        print(f"regressed beyond {args.tolerance:.0%}: {', '.join(worse)} (run it again)")
        sys.exit(1)


if __name__ == "__main__":
    main()
