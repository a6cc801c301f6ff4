"""The dashboard of a coordinator in a grid (``serve --redis``), in real headless Chromium:
the Coordinators panel and the other coordinators' workers; none of it without --redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._support import TEST_TOKEN, Coordinator, Process

pytestmark = pytest.mark.browser


def open_dashboard(browser: Any, coordinator: Coordinator) -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{coordinator.port}/dashboard?token={TEST_TOKEN}")
    page.wait_for_function("document.querySelector('#conn-state').dataset.state === 'live'")
    return page


def test_the_coordinators_panel_and_the_grid_workers_render(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    browser: Any,
    artifacts: Path,
) -> None:
    a = start_coordinator("--redis", redis_url, "--quiet")
    b = start_coordinator("--redis", redis_url, "--quiet")
    a_id = a.event("grid_joined")["coordinator_id"]
    b_id = b.event("grid_joined")["coordinator_id"]
    start_worker(a.ws_url, "--data-dir", str(tmp_path / "wa")).wait_for_line(
        lambda line: "welcomed" in line
    )
    start_worker(b.ws_url, "--data-dir", str(tmp_path / "wb")).wait_for_line(
        lambda line: "welcomed" in line
    )
    page = open_dashboard(browser, a)
    try:
        rows = page.locator("#coordinators-table tbody tr")
        page.wait_for_function(
            "document.querySelectorAll('#coordinators-table tbody tr').length === 2"
        )
        assert page.locator("#coordinators-panel").is_visible()
        this = page.locator("#coordinators-table tr[data-this='true']")
        assert this.get_attribute("data-coordinator") == a_id
        assert "(this one)" in this.inner_text()
        other = page.locator(f"#coordinators-table tr[data-coordinator='{b_id}']")
        link = other.locator("a")
        assert link.get_attribute("href") == f"http://127.0.0.1:{b.port}/dashboard"
        assert rows.count() == 2

        remote = page.locator(f"#workers-table tbody tr[data-coordinator='{b_id}']")
        remote.wait_for()
        # the row may first show what b shared before the worker's hello reached the grid
        row = f"#workers-table tbody tr[data-coordinator='{b_id}']"
        page.wait_for_function(f'document.querySelector("{row}").innerText.includes("Python 3.")')
        assert "Python 3." in remote.inner_text()
        assert b_id[:8] in remote.inner_text()
        headers = page.locator("#workers-table thead th").all_inner_texts()
        assert headers[:3] == ["Id", "Coordinator", "Browser / OS"]
        page.wait_for_function("document.querySelector('#total-workers').textContent === '2'")
        assert page.locator("#workers-table tbody tr").count() == 2
        page.screenshot(path=str(artifacts / "dashboard-grid.png"), full_page=True)
    finally:
        page.context.close()

    plain = open_dashboard(browser, start_coordinator("--quiet"))
    try:
        assert not plain.locator("#coordinators-panel").is_visible()
        headers = plain.locator("#workers-table thead th").all_inner_texts()
        assert "Coordinator" not in headers and len(headers) == 10
        assert plain.locator("main").get_attribute("data-grid") == "false"
    finally:
        plain.context.close()
