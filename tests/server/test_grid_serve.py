"""Several coordinators sharing one grid through Redis (``serve --redis``): a job submitted
to one runs on the workers of all, any coordinator answers for it, a cancel reaches every
one, and when one is killed with SIGKILL mid-job its workers and clients move to another
and every task still completes exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from browsergrid import Client
from tests._support import (
    AUTH,
    Coordinator,
    Process,
    assert_each_task_done_once,
    job_results,
    job_state,
    slow_tasks,
    submit_job,
    wait_for,
)


def grid_of(
    start_coordinator: Callable[..., Coordinator], redis_url: str, count: int
) -> list[Coordinator]:
    return [start_coordinator("--redis", redis_url) for _ in range(count)]


def workers_for(
    start_worker: Callable[..., Process],
    coordinators: list[Coordinator],
    data_dir: Path,
    per_coordinator: int = 1,
) -> None:
    """Python workers, ``per_coordinator`` starting on each coordinator, each with the
    others' URLs to move to; every worker an identity of its own."""
    urls = [c.ws_url for c in coordinators]
    for n, _ in enumerate(coordinators):
        mine = urls[n:] + urls[:n]
        for k in range(per_coordinator):
            start_worker(
                *mine, "--quiet", "--max-backoff", "1", "--data-dir", str(data_dir / f"{n}-{k}")
            )


@pytest.fixture
def pair(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> tuple[Coordinator, Coordinator]:
    """Two coordinators on one Redis, each with a Python worker that knows both."""
    a, b = grid_of(start_coordinator, redis_url, 2)
    workers_for(start_worker, [a, b], tmp_path)
    return a, b


@pytest.mark.timeout(120)
def test_a_job_submitted_to_one_runs_on_the_workers_of_both(
    pair: tuple[Coordinator, Coordinator],
) -> None:
    a, b = pair
    job_id = submit_job(a.port, {"op": "repeat_multiply", "args": slow_tasks(300)})
    wait_for(lambda: job_state(b.port, job_id)["state"] == "finished", 60)
    assert_each_task_done_once(b.port, job_id, 300)
    keys = {r["worker_key"] for r in job_results(a.port, job_id)}
    assert len(keys) == 2  # both coordinators' workers took part
    ran_on_a = [e for e in a.events() if e.get("event") == "result" and e.get("job_id")]
    ran_on_b = [e for e in b.events() if e.get("event") == "result" and e.get("job_id")]
    assert ran_on_a and ran_on_b and len(ran_on_a) + len(ran_on_b) == 300
    finished = a.events_named("job_finished", 0) + b.events_named("job_finished", 0)
    assert [e["job_id"] for e in finished] == [job_id]  # told once, by the one that ended it


@pytest.mark.timeout(120)
def test_a_cancel_on_one_coordinator_stops_the_job_on_every_one(
    pair: tuple[Coordinator, Coordinator],
) -> None:
    a, b = pair
    job_id = submit_job(a.port, {"op": "repeat_multiply", "args": slow_tasks(3000)})
    wait_for(lambda: job_state(a.port, job_id)["done"] >= 20)
    response = httpx.post(f"http://127.0.0.1:{b.port}/api/jobs/{job_id}/cancel", headers=AUTH)
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    a.event("job_cancelled", job_id=job_id)  # A took back what its workers held
    time.sleep(1.0)
    status = job_state(a.port, job_id)
    assert status["state"] == "cancelled" and status["done"] + status["cancelled"] == 3000
    sent_after = [
        e
        for c in (a, b)
        for e in c.events()
        if e.get("event") == "task_sent" and e["ts"] > time.time() - 0.5
    ]
    assert sent_after == []  # nothing of it is sent any more


@pytest.mark.timeout(180)
def test_killing_one_of_two_coordinators_mid_job_loses_and_repeats_nothing(
    pair: tuple[Coordinator, Coordinator],
) -> None:
    a, b = pair
    count = 600
    with Client(f"http://127.0.0.1:{a.port},http://127.0.0.1:{b.port}") as client:
        job = client.submit_job("repeat_multiply", slow_tasks(count))
        futures = job.futures
        wait_for(lambda: sum(f.done() for f in futures) >= 100)
        a.signal(signal.SIGKILL)  # its client, workers and held tasks move to B
        assert a.wait() == -signal.SIGKILL
        results = [f.result(timeout=120) for f in futures]
    assert results == [float(k) for k in range(count)]
    status = job_state(b.port, job.job_id)
    assert status["state"] == "finished" and status["done"] == count
    assert_each_task_done_once(b.port, job.job_id, count)
    b.event("tasks_claimed")  # B took over what A held when it died


@pytest.mark.timeout(120)
def test_replicated_tasks_settle_on_coordinators_with_enough_identities(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    """A has two worker identities, B one: tasks of redundancy 2 all go to A (B cannot
    gather a quorum of its own), and each is checked by two distinct identities."""
    a, b = grid_of(start_coordinator, redis_url, 2)
    workers_for(start_worker, [a], tmp_path / "a", per_coordinator=2)
    workers_for(start_worker, [b], tmp_path / "b")
    job_id = submit_job(b.port, {"op": "repeat_multiply", "args": slow_tasks(60), "redundancy": 2})
    wait_for(lambda: job_state(b.port, job_id)["state"] == "finished", 60)
    results = job_results(b.port, job_id)
    assert len(results) == 60
    assert all(r["verdict"] == "quorum" and len(r["replicas"]) == 2 for r in results)
    assert not [e for e in b.events() if e.get("event") == "result" and e.get("job_id")]


@pytest.mark.timeout(120)
def test_one_task_at_a_time_into_one_session_job(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    """Client.submit adds each task to the session's job, which finishes between two
    submits: its results keep coming, each once."""
    a, b = grid_of(start_coordinator, redis_url, 2)
    workers_for(start_worker, [b], tmp_path)
    with Client(f"http://127.0.0.1:{a.port}") as client:
        for k in range(30):
            assert client.submit("repeat_multiply", **slow_tasks(k + 1)[k]).result(30) == k
