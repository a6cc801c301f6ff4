"""Real headless Chromium and the tokens: the worker page joins with ``/?token=``, the
dashboard watches with ``/dashboard?token=`` and says what is missing when it is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests._support import TEST_TOKEN, WELCOME_RESULT, Coordinator, close_to

pytestmark = pytest.mark.browser

JOIN, DASH = "join-token", "dash-token"


def test_the_worker_page_joins_with_the_token_in_its_address(
    start_coordinator: Callable[..., Coordinator], page: Any
) -> None:
    coordinator = start_coordinator("--memory", "--worker-token", JOIN)
    assert coordinator.page_url.endswith(f"/?token={JOIN}")
    page.goto(coordinator.page_url)
    introduced = coordinator.event("worker_introduced")
    result = coordinator.event("result", worker_id=introduced["worker_id"])
    assert close_to(result["result"], WELCOME_RESULT)
    page.wait_for_function("window.browsergrid.tasksDone === 1")
    assert page.text_content("#server-url") == f"ws://127.0.0.1:{coordinator.port}/ws?token=***"


def test_the_worker_page_without_the_token_is_refused_and_says_why(
    start_coordinator: Callable[..., Coordinator], page: Any
) -> None:
    coordinator = start_coordinator("--memory", "--worker-token", JOIN)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"http://127.0.0.1:{coordinator.port}/")
    refused = coordinator.event("unauthorized", path="/ws")
    assert "join token" in refused["detail"]
    page.locator("#log li", has_text="open this page as /?token=TOKEN").first.wait_for()
    assert page.text_content("#state") == "disconnected"
    assert not [e for e in coordinator.events() if e["event"] == "worker_connected"]


def test_the_dashboard_with_a_dashboard_token_watches_but_cannot_run_the_demo(
    start_coordinator: Callable[..., Coordinator], browser: Any
) -> None:
    coordinator = start_coordinator("--memory", "--dashboard-token", DASH)
    base = f"http://127.0.0.1:{coordinator.port}/dashboard"
    context = browser.new_context()
    try:
        refused = context.new_page()
        refused.goto(base)
        banner = refused.locator("#store-banner")
        banner.filter(has_text="open this page as /dashboard?token=TOKEN").wait_for()
        assert refused.evaluate("window.dashboard.connection") != "live"

        watcher = context.new_page()
        watcher.goto(f"{base}?token={DASH}")
        watcher.wait_for_function("window.dashboard.connection === 'live'")
        assert watcher.locator("#store-banner").is_hidden()
        watcher.locator("#demo-button").click()
        message = watcher.locator("#demo-message")
        message.filter(has_text="Running the demo needs the admin token").wait_for()
        assert "browsergrid token prints the link" in message.inner_text()
        assert message.get_attribute("data-state") == "error"

        admin = context.new_page()
        admin.goto(f"{base}?token={TEST_TOKEN}")  # the admin token reads and runs the demo
        admin.wait_for_function("window.dashboard.connection === 'live'")
        admin.locator("#demo-button").click()
        admin.locator("#demo-message").filter(has_text="submitted: 80 tiles").wait_for()
        admin.wait_for_function("document.querySelector('#demo-canvas').dataset.jobId !== ''")
    finally:
        context.close()


def test_the_dashboard_without_the_admin_token_says_how_to_run_the_demo(
    coordinator: Coordinator, page: Any
) -> None:
    page.goto(f"http://127.0.0.1:{coordinator.port}/dashboard")  # reads are open
    page.wait_for_function("window.dashboard.connection === 'live'")
    page.locator("#demo-button").click()
    message = page.locator("#demo-message")
    message.filter(has_text="open this page as /dashboard?token=ADMIN_TOKEN").wait_for()
    assert "is not it" not in message.inner_text()
