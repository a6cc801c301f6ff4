"""The dashboard in real headless Chromium, fed live by a real coordinator."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._support import AUTH, TEST_TOKEN, Coordinator, Process, free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def data_dir_path() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="browsergrid-dashboard-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def open_dashboard(browser: Any, coordinator: Coordinator) -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{coordinator.port}/dashboard?token={TEST_TOKEN}")  # Run demo
    page.wait_for_function("document.querySelector('#conn-state').dataset.state === 'live'")
    return page


def distinct_colours(page: Any) -> int:
    """How many different colours the demo canvas holds (a blank canvas has one)."""
    count: int = page.evaluate(
        """() => {
          const canvas = document.querySelector('#demo-canvas');
          const { width, height } = canvas;
          const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
          const seen = new Set();
          for (let i = 0; i < data.length; i += 4 * 7) {
            seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
          }
          return seen.size;
        }"""
    )
    return count


def test_workers_jobs_and_the_demo_appear_live(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    browser: Any,
    artifacts: Path,
    data_dir_path: str,
) -> None:
    port = free_port()
    coordinator = start_coordinator("--data-dir", data_dir_path, port=port)
    dashboard = open_dashboard(browser, coordinator)
    assert dashboard.locator("#total-workers").inner_text() == "0"

    # a browser tab that becomes a worker appears, named by browser and OS
    tab = browser.new_context().new_page()
    tab.goto(f"{coordinator.page_url}?workers=2")
    row = dashboard.locator("#workers-table tbody tr[data-worker-id]")
    row.first.wait_for()  # first as a page that has not said hello yet, then by its agent
    dashboard.wait_for_function(
        "document.querySelector('#workers-table tbody tr[data-worker-id]')"
        "?.textContent.includes('Chrome')"
    )
    assert "Linux" in row.first.inner_text()
    dashboard.wait_for_function("document.querySelector('#total-workers').textContent === '1'")

    # a job's progress bar advances to done
    args = [{"samples": 3_000_000, "seed": seed} for seed in range(150)]
    with httpx.Client(headers=AUTH, base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        job_id = http.post("/api/jobs", json={"op": "monte_carlo_pi", "args": args}).json()[
            "job_id"
        ]
    job_row = dashboard.locator(f"#jobs-table tr[data-job-id='{job_id}']")
    job_row.wait_for()
    progress: list[int] = []
    deadline = time.monotonic() + 60
    while not progress or progress[-1] < len(args):
        assert time.monotonic() < deadline, f"the job did not finish: {progress[-5:]}"
        progress.append(int(job_row.get_attribute("data-done") or 0))
        dashboard.wait_for_timeout(100)
    assert job_row.get_attribute("data-total") == str(len(args))
    assert len(set(progress)) >= 2, progress  # it moved while we watched
    dashboard.wait_for_function(
        f"document.querySelector(\"#jobs-table tr[data-job-id='{job_id}']\")"
        ".textContent.includes('finished')"
    )

    # the demo paints its 80 tiles, tinted by worker; a Python worker joins in
    python = start_worker(coordinator.ws_url, "--quiet")
    python.wait_for_line(lambda line: "connected to" in line)
    dashboard.wait_for_function("document.querySelector('#total-workers').textContent === '2'")
    dashboard.locator("#demo-button").click()
    dashboard.wait_for_function(
        "document.querySelector('#demo-canvas').dataset.tiles === '80'", timeout=60_000
    )
    demo_job = dashboard.locator("#demo-canvas").get_attribute("data-job-id")
    assert demo_job and int(demo_job) > job_id
    assert distinct_colours(dashboard) > 50
    assert dashboard.locator("#results-list li").count() > 0
    assert dashboard.locator("#events-list li").count() >= 2
    dashboard.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    dashboard.screenshot(path=str(artifacts / "dashboard-top.png"))  # the README's picture

    # after a restart the dashboard reconnects and still shows the past jobs and the image
    tab.close()
    coordinator.signal(signal.SIGTERM)
    assert coordinator.wait() == 0
    dashboard.wait_for_function("document.querySelector('#conn-state').dataset.state !== 'live'")
    start_coordinator("--data-dir", data_dir_path, port=port)
    dashboard.wait_for_function(
        "document.querySelector('#conn-state').dataset.state === 'live'", timeout=30_000
    )
    dashboard.locator(f"#jobs-table tr[data-job-id='{job_id}']").wait_for()
    dashboard.wait_for_function(
        "document.querySelector('#demo-canvas').dataset.tiles === '80'", timeout=30_000
    )
    assert dashboard.locator("#history-table tbody tr").count() >= 1
    dashboard.screenshot(path=str(artifacts / "dashboard-after-restart.png"), full_page=True)
