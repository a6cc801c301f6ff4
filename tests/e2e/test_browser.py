"""Real headless Chromium: the worker page, the exercise's page, and both against each server."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._support import WELCOME_RESULT, Coordinator, close_to, exercise_page, wait_until

pytestmark = pytest.mark.browser


def saw_exercise_lines(console: list[str]) -> bool:
    """The console lines the exercise's page logs, in browsergrid's page too."""
    wanted = ("Connected", "Task received", "Result sent")
    return all(any(text in line for line in console) for text in wanted)


def test_worker_page_computes_the_welcome_task_in_a_web_worker(
    coordinator: Coordinator, page: Any, artifacts: Path
) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(coordinator.page_url)
    introduced = coordinator.event("worker_introduced")
    assert "Chrome" in introduced["agent"] and "repeat_multiply" in introduced["ops"]
    result = coordinator.event("result", worker_id=introduced["worker_id"])
    assert close_to(result["result"], WELCOME_RESULT)
    assert result["welcome"] is True and "Chrome" in result["agent"]

    page.wait_for_function("window.browsergrid && window.browsergrid.tasksDone === 1")
    page.wait_for_function("document.querySelector('#tasks-done').textContent === '1'")  # 250 ms
    assert page.text_content("#state") == "connected"
    assert page.text_content("#worker-id") == str(introduced["worker_id"])
    assert page.text_content("#tasks-done") == "1"
    assert close_to(float(page.text_content("#last-result")), WELCOME_RESULT)
    assert len(page.workers) >= 1  # the op ran in a Web Worker, not on the page's thread
    wait_until(page, lambda: saw_exercise_lines(console))
    page.screenshot(path=str(artifacts / "worker-page.png"), full_page=True)


def test_the_exercise_page_from_a_file_url_is_a_worker(
    coordinator: Coordinator, page: Any, tmp_path: Path
) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(exercise_page(tmp_path, coordinator.port))
    connected = coordinator.event("worker_connected")
    assert connected["path"] == "/"
    result = coordinator.event("result", worker_id=connected["worker_id"])
    assert close_to(result["result"], WELCOME_RESULT)
    assert "Chrome" in result["agent"]
    assert not [e for e in coordinator.events() if e["event"] == "worker_introduced"]
    wait_until(page, lambda: saw_exercise_lines(console))


def test_worker_page_reconnects_after_the_coordinator_restarts(
    start_coordinator: Callable[..., Coordinator], page: Any
) -> None:
    first = start_coordinator()
    page.goto(first.page_url)
    first.event("result")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    page.wait_for_function("window.browsergrid.state === 'disconnected'", timeout=10_000)
    second = start_coordinator(port=first.port)
    result = second.event("result", timeout=30)
    assert close_to(result["result"], WELCOME_RESULT)
    page.wait_for_function("window.browsergrid.connects === 2", timeout=10_000)
    page.wait_for_function("window.browsergrid.tasksDone === 2", timeout=10_000)


def test_worker_page_works_with_the_exercise_server(
    coordinator: Coordinator, exercise_server: tuple[Any, int], page: Any
) -> None:
    server, port = exercise_server
    page.goto(f"{coordinator.page_url}?server=ws://127.0.0.1:{port}")
    server.wait_for_line(lambda line: "Resultado task_id=1" in line)
    line = server.wait_for_line(lambda line: "result=" in line)
    assert close_to(float(line.split("result=")[1]), WELCOME_RESULT)
    page.wait_for_function("window.browsergrid.tasksDone === 1")
    assert page.text_content("#worker-id") == "—"  # that server never sends welcome


def test_a_tab_keeps_its_identity_across_reloads(coordinator: Coordinator, page: Any) -> None:
    page.goto(coordinator.page_url)
    first = coordinator.event("worker_new")
    coordinator.event("result", worker_id=first["worker_id"])
    page.reload()
    again = coordinator.event("worker_recognised")
    assert again["worker_key"] == first["worker_key"] and again["worker_key"].startswith("tab-")
    other = page.context.new_page()  # a second tab of the same browser: a slot of its own
    other.goto(coordinator.page_url)
    second = coordinator.events_named("worker_new", 2)[1]
    assert second["worker_key"] != first["worker_key"]
    other.close()
