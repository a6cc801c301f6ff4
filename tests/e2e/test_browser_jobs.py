"""Jobs over real headless Chromium tabs and a real Python worker, submitted with Client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from browsergrid import Client
from browsergrid.ops import run_op
from tests._support import Coordinator, Process, close_to

pytestmark = pytest.mark.browser

JOBS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "repeat_multiply",
        [{"initial": 1.5, "factor": 1.1, "times": n, "exact": True} for n in range(0, 40, 7)],
    ),
    ("monte_carlo_pi", [{"samples": 20_000, "seed": seed} for seed in range(4)]),
    (
        "mandelbrot_tile",
        [{"region": [-2.0, 0.5, -1.25, 1.25], "width": 16, "height": 12, "max_iter": 64}],
    ),
    ("prime_count", [{"lo": 10**6 * k, "hi": 10**6 * (k + 1)} for k in range(3)]),
    ("hash_search", [{"prefix": "grid", "difficulty": 8, "start": 0, "count": 5000}]),
]


def test_a_browser_tab_runs_every_built_in_op_like_python(
    coordinator: Coordinator, page: Any
) -> None:
    page.goto(f"{coordinator.page_url}?workers=2")
    introduced = coordinator.event("worker_introduced")
    assert set(introduced["ops"]) == {op for op, _ in JOBS} | {"python"}  # python: Pyodide
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        for op, args in JOBS:
            assert list(client.map(op, args, timeout=60)) == [run_op(op, a) for a in args], op


def test_tabs_and_a_python_worker_share_one_job(
    coordinator: Coordinator, page: Any, start_worker: Callable[..., Process], browser: Any
) -> None:
    second = browser.new_context().new_page()
    page.goto(f"{coordinator.page_url}?workers=1")
    second.goto(f"{coordinator.page_url}?workers=1")
    start_worker(coordinator.ws_url, "--quiet")
    coordinator.events_named("worker_introduced", 3)
    args = [{"lo": 0, "hi": 200_000 + k} for k in range(60)]
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        results = list(client.map("prime_count", args, timeout=120))
    assert results == [run_op("prime_count", a) for a in args]
    by_worker = Counter(
        e["worker_id"] for e in coordinator.events() if e["event"] == "result" and e["job_id"]
    )
    assert len(by_worker) == 3, by_worker  # every tab and the Python worker took a share
    second.context.close()


def test_a_browser_and_a_python_worker_agree_on_every_op(
    coordinator: Coordinator, page: Any, start_worker: Callable[..., Process]
) -> None:
    """At redundancy 2 with one tab and one Python worker, each task is computed in both
    languages: the op's comparison must find them the same (repeat_multiply without
    ``exact`` within its 1e-12, every other op exactly)."""
    page.goto(f"{coordinator.page_url}?workers=2")
    start_worker(coordinator.ws_url, "--quiet")
    coordinator.events_named("worker_introduced", 2)
    jobs = [
        *JOBS,
        ("repeat_multiply", [{"initial": 1.0000054, "factor": 1.00000043, "times": 10**6}]),
    ]
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        checked = client.options(redundancy=2, max_replicas=2)  # a dissent fails the task
        for op, args in jobs:
            results = list(checked.map(op, args, timeout=120))
            expected = [run_op(op, a) for a in args]
            if op == "repeat_multiply":  # either language's value may be the one accepted
                assert all(map(close_to, results, expected)), results
            else:
                assert results == expected, op
    replicas = [e for e in coordinator.events() if e["event"] == "replica"]
    assert len({e["worker_id"] for e in replicas}) == 2  # both languages voted
    assert sum(len(args) for _, args in jobs) * 2 == len(replicas)
