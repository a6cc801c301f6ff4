"""``browsergrid worker`` as a real process against a real coordinator and the exercise's server."""

from __future__ import annotations

import signal
from collections.abc import Callable

from tests._support import WELCOME_RESULT, Coordinator, Process, close_to


def test_worker_introduces_itself_and_returns_the_welcome_result(
    coordinator: Coordinator, start_worker: Callable[..., Process]
) -> None:
    start_worker(coordinator.ws_url, "--concurrency", "2")
    introduced = coordinator.event("worker_introduced")
    assert introduced["concurrency"] == 2 and "repeat_multiply" in introduced["ops"]
    result = coordinator.event("result", worker_id=introduced["worker_id"])
    assert close_to(result["result"], WELCOME_RESULT)
    assert result["agent"].startswith("browsergrid-python/")


def test_worker_reconnects_after_the_coordinator_restarts(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    first = start_coordinator()
    worker = start_worker(first.ws_url)
    first.event("result")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    worker.wait_for_line(lambda line: "code=1001" in line)
    second = start_coordinator(port=first.port)
    result = second.event("result", timeout=20)
    assert close_to(result["result"], WELCOME_RESULT)
    assert sum("connected to" in line for line in worker.lines) == 2


def test_worker_runs_the_exercise_servers_task(
    exercise_server: tuple[Process, int], start_worker: Callable[..., Process]
) -> None:
    server, port = exercise_server
    start_worker(f"ws://127.0.0.1:{port}")
    server.wait_for_line(lambda line: "Resultado task_id=1" in line)
    line = server.wait_for_line(lambda line: "result=" in line)
    assert close_to(float(line.split("result=")[1]), WELCOME_RESULT)


def test_ctrl_c_stops_the_worker_cleanly(
    coordinator: Coordinator, start_worker: Callable[..., Process]
) -> None:
    worker = start_worker(coordinator.ws_url)
    coordinator.event("result")
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0
    assert "Traceback" not in worker.output()
    assert coordinator.event("worker_disconnected")["code"] == 1000
