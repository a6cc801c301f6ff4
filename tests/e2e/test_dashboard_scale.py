"""The dashboard in real headless Chromium with 1,000 connected workers at work."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench._swarm import Swarm
from tests._support import AUTH, Coordinator

pytestmark = pytest.mark.browser

WORKERS = 1_000

# Long tasks (over 50 ms of main-thread work) as Chromium reports them.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({ type: 'longtask', buffered: true });
"""


class SwarmThread(threading.Thread):
    """1,000 fake browser workers on an event loop of their own (Playwright's sync API
    owns this thread's)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._quit: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test
            self.failed = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._quit = asyncio.Event()
        async with Swarm(self.url, WORKERS):
            self.ready.set()
            await self._quit.wait()

    def stop(self) -> None:
        if self._loop is not None and self._quit is not None:
            self._loop.call_soon_threadsafe(self._quit.set)
        self.join(30)


@pytest.fixture
def swarm_grid(start_coordinator: Callable[..., Coordinator]) -> Iterator[Coordinator]:
    coordinator = start_coordinator(  # the swarm connects from one address
        "--memory", "--quiet", "--max-connections-per-address", "0"
    )
    swarm = SwarmThread(coordinator.ws_url)
    swarm.start()
    try:
        assert swarm.ready.wait(60), "the swarm did not connect"
        assert swarm.failed is None, swarm.failed
        yield coordinator
    finally:
        swarm.stop()


def test_a_thousand_workers_at_work_keep_the_page_responsive(
    swarm_grid: Coordinator, browser: Any, artifacts: Path
) -> None:
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.add_init_script(LONG_TASKS)
    page.goto(f"http://127.0.0.1:{swarm_grid.port}/dashboard")
    page.wait_for_function(f"window.dashboard.state.workers.length === {WORKERS}")

    # only one page of rows is drawn, and the grid is summarised by browser and OS
    assert page.locator("#workers-table tbody tr").count() == 25
    assert page.locator("#workers-range").inner_text().replace(",", "") == "1\u201325 of 1000"
    assert "\u00d7 Chrome 131 on Windows 10" in page.locator("#workers-summary").inner_text()

    with httpx.Client(
        headers=AUTH, base_url=f"http://127.0.0.1:{swarm_grid.port}", timeout=60
    ) as http:
        args = [{"initial": 1, "factor": 1, "times": 1}] * 40_000
        job_id = http.post("/api/jobs", json={"op": "repeat_multiply", "args": args}).json()[
            "job_id"
        ]
    page.evaluate("window.__longTasks = []")
    frames_before = page.evaluate("window.dashboard.frames")
    round_trips = []
    started = time.monotonic()
    while time.monotonic() - started < 3:
        begin = time.monotonic()
        page.evaluate("document.querySelector('#total-done').textContent")
        round_trips.append(time.monotonic() - begin)
        page.wait_for_timeout(100)
    frames = page.evaluate("window.dashboard.frames") - frames_before
    long_tasks: list[float] = page.evaluate("window.__longTasks")

    assert 2 <= frames <= 8  # coalesced: about two frames a second whatever the load
    # measured here: round trips of about 10 ms and no long task at all; the bounds leave
    # room for a loaded CI machine, where the coordinator and the swarm use both cores
    assert max(round_trips) < 1.0, round_trips  # the page answers while the grid works
    assert sum(long_tasks) < 1500, long_tasks  # the main thread is mostly free
    assert page.locator("#workers-table tbody tr").count() == 25

    # filtering narrows the table to the matching workers
    page.fill("#workers-filter", "Firefox")
    page.wait_for_function(
        "[...document.querySelectorAll('#workers-table tbody tr')]"
        ".every((row) => row.textContent.includes('Firefox'))"
    )
    page.fill("#workers-filter", "")
    page.wait_for_function(
        f"document.querySelector(\"#jobs-table tr[data-job-id='{job_id}']\")"
        "?.dataset.state === 'finished'",
        timeout=60_000,
    )
    page.screenshot(path=str(artifacts / "dashboard-1000-workers.png"))
