"""Futures as arguments on a real coordinator: tasks that depend on tasks wait, get the
results they name, fail with a failed dependency, survive ``kill -9`` of the coordinator
(SQLite), and bad futures are refused before anything is queued."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from tests._support import (
    AUTH,
    Coordinator,
    Process,
    free_port,
    job_results,
    job_state,
    steady_workers,
    wait_for,
)


def multiply(initial: Any, factor: float = 2.0) -> dict[str, Any]:
    """A repeat_multiply task: ``initial * factor`` (``initial`` may be a future)."""
    return {"initial": initial, "factor": factor, "times": 1}


def post(port: int, args: list[dict[str, Any]], **options: Any) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/jobs",
        json={"op": "repeat_multiply", "args": args, **options},
        headers=AUTH,
        timeout=30,
    )


def submit(port: int, args: list[dict[str, Any]], **options: Any) -> tuple[int, int]:
    """(job id, first task id) of a new job."""
    response = post(port, args, **options)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["job_id"], body["first_task_id"]


def future(task_id: int) -> dict[str, int]:
    return {"$future": task_id}


def finished(port: int, job_id: int) -> bool:
    return job_state(port, job_id)["state"] == "finished"


def test_chains_wait_run_in_order_and_survive_kill_9(
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    data = ("--data-dir", str(tmp_path / "coordinator"), "--no-welcome-task")
    port = free_port()
    first = start_coordinator(*data, port=port)
    a_job, a = submit(port, [multiply(3.0)])  # 6
    b_job, b = submit(port, [multiply(future(a), 10.0)])  # 60, in a job of its own
    c_job, c = submit(port, [{"initial": future(b), "factor": future(a), "times": 2}])  # 2160
    both_job, _ = submit(port, [multiply(future(a)), {"x": [future(b), {"y": future(c)}]}])
    # a failing chain of three: the op refuses "x" on the worker
    f_job, f = submit(port, [multiply("x")], max_attempts=1)
    g_job, g = submit(port, [multiply(future(f))])
    h_job, _ = submit(port, [multiply(future(g))])
    assert job_state(port, c_job)["waiting"] == 1
    assert job_state(port, both_job)["waiting"] == 2

    first.signal(signal.SIGKILL)  # nothing has run: every dependent is waiting
    assert first.wait() == -signal.SIGKILL
    second = start_coordinator(*data, port=port)
    assert job_state(port, c_job)["waiting"] == 1  # restored as waiting
    steady_workers(start_worker, second.ws_url, tmp_path / "workers", count=1)
    wait_for(lambda: finished(port, a_job))
    second.signal(signal.SIGKILL)  # again, with the chain under way
    assert second.wait() == -signal.SIGKILL
    third = start_coordinator(*data, port=port)
    for job_id in (b_job, c_job, both_job, h_job):
        wait_for(lambda job_id=job_id: finished(port, job_id), timeout=60)  # type: ignore[misc]

    [result_c] = job_results(port, c_job)
    assert (result_c["status"], result_c["result"]) == ("done", 60.0 * 6.0**2)
    assert [r["result"] for r in job_results(port, b_job)] == [60.0]
    both = {r["index"]: r for r in job_results(port, both_job)}
    assert both[0]["result"] == 12.0
    # the op of task 1 gets {"x": [60.0, {"y": 2160.0}]}: no "initial", so it fails there,
    # which shows what its worker was given
    assert both[1]["status"] == "failed"
    [h_result] = job_results(port, h_job)
    assert h_result["status"] == "failed"
    [reason] = h_result["reasons"]
    assert reason.startswith(f"task {g}, which it depends on, failed: task {f}, which it ")
    assert "initial" in reason  # the end of the chain names what failed at its start
    assert job_state(port, f_job)["failed"] == 1 and job_state(port, g_job)["failed"] == 1
    third.end()


def test_a_dependency_already_done_is_read_from_the_store(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    port = coordinator.port
    start_worker(coordinator.ws_url, "--quiet")
    a_job, a = submit(port, [multiply(5.0)])
    wait_for(lambda: finished(port, a_job))
    b_job, _ = submit(port, [multiply(future(a))])
    wait_for(lambda: finished(port, b_job))
    assert [r["result"] for r in job_results(port, b_job)] == [20.0]  # 5 * 2 * 2


def test_cancelling_a_job_fails_what_depends_on_it_in_other_jobs(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--no-welcome-task")  # no worker: nothing runs
    port = coordinator.port
    a_job, a = submit(port, [multiply(1.0)])
    b_job, _ = submit(port, [multiply(future(a)), multiply(4.0)])
    cancelled = httpx.post(
        f"http://127.0.0.1:{port}/api/jobs/{a_job}/cancel", headers=AUTH, timeout=10
    )
    assert cancelled.status_code == 200, cancelled.text
    wait_for(lambda: job_state(port, b_job)["failed"] == 1)
    state = job_state(port, b_job)
    assert (state["state"], state["waiting"], state["queued"]) == ("running", 0, 1)
    [failure] = [r for r in job_results_now(port, b_job) if r["status"] == "failed"]
    assert failure["reasons"] == [f"task {a}, which it depends on, was cancelled"]
    # a dependent submitted after the cancel fails too: its dependency never finished
    c_job, _ = submit(port, [multiply(future(a))])
    wait_for(lambda: finished(port, c_job))
    [late] = job_results(port, c_job)
    assert late["reasons"][0].startswith(f"task {a}, which it depends on, did not finish")


def job_results_now(port: int, job_id: int) -> list[dict[str, Any]]:
    """The outcomes stored so far (the job may still run)."""
    url = f"http://127.0.0.1:{port}/api/jobs/{job_id}/results"
    response = httpx.get(url, params={"follow": "false"}, timeout=10)
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_bad_futures_are_refused_and_nothing_is_queued(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    port = coordinator.port
    _, a = submit(port, [multiply(1.0)])
    jobs_before = httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=10).json()
    for bad, says in [
        ({"$future": a, "extra": 1}, "only member"),
        ({"$future": "1"}, "integer >= 1"),
        ({"$future": True}, "integer >= 1"),
        ({"$future": 0}, "integer >= 1"),
        ({"$future": a + 1000}, "does not exist yet"),
    ]:
        response = post(port, [multiply(1.0), multiply(bad)])
        assert response.status_code == 400, response.text
        assert says in response.json()["detail"], response.text
    whole = post(port, [future(a)])  # the arguments themselves: a future goes under a name
    assert whole.status_code == 400 and "under a name" in whole.json()["detail"], whole.text
    assert httpx.get(f"http://127.0.0.1:{port}/api/jobs", timeout=10).json() == jobs_before


def test_chains_run_across_a_grid_and_survive_kill_9_of_the_coordinator_they_came_to(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Two coordinators on one Redis: the chains are submitted to one, which is killed with
    SIGKILL at once; the other, the only one with a worker, runs them all (a task enters
    the shared queue only once the tasks it names are final in Redis)."""
    first = start_coordinator("--redis", redis_url, "--no-welcome-task")
    second = start_coordinator("--redis", redis_url, "--no-welcome-task")
    port = first.port
    a_job, a = submit(port, [multiply(3.0)])
    b_job, b = submit(port, [multiply(future(a), 10.0)])
    c_job, _ = submit(port, [{"initial": future(b), "factor": future(a), "times": 2}])
    f_job, f = submit(port, [multiply("x")], max_attempts=1)
    g_job, g = submit(port, [multiply(future(f))])
    h_job, _ = submit(port, [multiply(future(g))])
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    start_worker(second.ws_url, "--quiet", "--data-dir", str(tmp_path / "worker"))
    for job_id in (a_job, b_job, c_job, f_job, g_job, h_job):
        wait_for(lambda job_id=job_id: finished(second.port, job_id), timeout=60)  # type: ignore[misc]
    [result_c] = job_results(second.port, c_job)
    assert (result_c["status"], result_c["result"]) == ("done", 60.0 * 6.0**2)
    [h_result] = job_results(second.port, h_job)
    [reason] = h_result["reasons"]
    assert reason.startswith(f"task {g}, which it depends on, failed: task {f}, which it ")
    assert "initial" in reason


def test_a_workers_tasks_go_out_in_frames_it_takes(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    """Tasks with large arguments (results put in, or a raised --max-args-bytes) for one
    worker are split across frames of at most 1 MiB, the most a worker takes."""
    coordinator = start_coordinator("--no-welcome-task", "--max-args-bytes", "400000")
    big = "x" * 300_000
    url = f"ws://127.0.0.1:{coordinator.port}/ws"
    with connect(url, max_size=None, additional_headers=AUTH) as ws:
        hello = {"type": "hello", "protocol": 1, "agent": "t", "ops": ["big"], "concurrency": 8}
        ws.send(json.dumps(hello))
        assert json.loads(ws.recv(10))["type"] == "welcome"
        response = httpx.post(
            f"http://127.0.0.1:{coordinator.port}/api/jobs",
            json={"op": "big", "args": [{"n": k, "s": big} for k in range(8)]},
            headers=AUTH,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        got: list[int] = []
        while len(got) < 8:
            frame = ws.recv(10)
            assert len(frame.encode()) <= 1024 * 1024
            message = json.loads(frame)
            tasks = message["tasks"] if message["type"] == "tasks" else [message]
            got += [task["n"] for task in tasks if task["type"] == "task"]
    assert sorted(got) == list(range(8))


def test_arguments_nested_too_deep_are_refused_over_http(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    response = post(coordinator.port, [{"initial": deep, "factor": 2.0, "times": 1}])
    assert response.status_code == 400 and "deeper than 61" in response.json()["detail"]
