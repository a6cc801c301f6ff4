"""``serve --ops-module``: a JavaScript module's exported functions become ops of every
worker page, run in its compute Web Workers; an export named like a built-in op is refused
with a console warning, and the built-in op stays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from browsergrid import Client
from tests._support import ROOT, Coordinator, wait_until

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "ops" / "my_ops.js"
MORE = """
export function prime_count() { return -1; } // a built-in op's name: skipped
export const scaled = { factor: 3, run({ x }) { return this.factor * x; } };
export async function later({ x }) { return [x, 'later']; }
export function broken() { return undefined; }
export const LIMIT = 10; // not a function: not an op
export default function unnamed() { return 0; }
"""


@pytest.mark.timeout(60)
def test_the_ops_of_an_ops_module_run_in_the_page(
    start_coordinator: Callable[..., Coordinator], page: Any, tmp_path: Path
) -> None:
    module = tmp_path / "ops.js"
    module.write_text(EXAMPLE.read_text(encoding="utf-8") + MORE, encoding="utf-8")
    coordinator = start_coordinator("--ops-module", str(module))
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.goto(f"{coordinator.page_url}?workers=1")
    ops = coordinator.event("worker_introduced")["ops"]
    assert ops[-4:] == ["broken", "collatz_steps", "later", "scaled"]
    assert ops.count("prime_count") == 1 and "default" not in ops and "LIMIT" not in ops
    wait_until(page, lambda: len(warnings) >= 2)
    assert sorted(warnings) == [
        "browsergrid: ops module export default skipped: a default export is not an op: "
        "export the function by its op name",
        "browsergrid: ops module export prime_count skipped: prime_count is a built-in op: "
        "give the export another name",
    ]
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        ranges = [{"start": 1, "end": 10_001}, {"start": 5, "end": 5}]
        assert list(client.map("collatz_steps", ranges, timeout=30)) == [
            {"start": 6171, "steps": 261},
            {"start": None, "steps": None},
        ]
        assert client.submit("scaled", x=14).result(timeout=30) == 42
        assert client.submit("later", x=1).result(timeout=30) == [1, "later"]
        assert client.submit("prime_count", lo=0, hi=100).result(timeout=30) == 25
        once = client.options(max_attempts=1)
        bad = once.submit("collatz_steps", start=0, end=3).exception(timeout=30)
        none = once.submit("broken").exception(timeout=30)
    assert "collatz_steps: start and end must be integers, 1 <= start <= end" in str(bad)
    assert "broken returned undefined: an op returns a JSON value" in str(none)
