"""Where benchmarks keep what they measured: ``bench/results/NAME.md`` and ``NAME.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, table: str, data: dict[str, Any]) -> Path:
    """Print the markdown ``table``, then write it and ``data`` (with the time of the run
    added) as JSON; returns the path both share, without its suffix."""
    print("\n" + table)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / name
    stem.with_suffix(".md").write_text(table)
    stamped = {"args": data.pop("args"), "when": time.strftime("%Y-%m-%d %H:%M"), **data}
    stem.with_suffix(".json").write_text(json.dumps(stamped, indent=2) + "\n")
    print(f"written to bench/results/{name}.json and .md")
    return stem
