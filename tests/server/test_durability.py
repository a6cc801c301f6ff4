"""Nothing lost: a real coordinator on a real SQLite file, killed with SIGKILL mid-job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from browsergrid import Client
from browsergrid.ops import run_op
from tests._support import (
    AUTH,
    Coordinator,
    Process,
    assert_each_task_done_once,
    free_port,
    job_results,
    job_state,
    kill_9_during,
    slow_tasks,
    steady_workers,
    submit_job,
    wait_for,
)

CHUNK = 20_000  # prime_count over 20,000 numbers: a millisecond or two in Python


@pytest.mark.timeout(240)
def test_kill_9_ten_times_during_a_5000_task_job_loses_and_repeats_nothing(
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    data = ("--data-dir", str(tmp_path / "grid"), "--quiet")
    port = free_port()
    coordinator = start_coordinator(*data, port=port)
    steady_workers(start_worker, coordinator.ws_url, tmp_path / "workers")
    job_id = submit_job(port, {"op": "repeat_multiply", "args": slow_tasks(5000)})
    kill_9_during(start_coordinator, coordinator, data, job_id, kills=10, seed=20261125)
    assert_each_task_done_once(port, job_id, 5000)


def test_client_futures_resolve_across_a_coordinator_crash(
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    data = ["--data-dir", str(tmp_path / "grid"), "--quiet"]
    port = free_port()
    coordinator = start_coordinator(*data, port=port)
    start_worker(coordinator.ws_url, "--quiet", "--max-backoff", "1")
    args = [{"lo": k * CHUNK, "hi": (k + 1) * CHUNK} for k in range(1500)]
    with Client(f"http://127.0.0.1:{port}") as client:
        job = client.submit_job("prime_count", args)
        single = client.submit("prime_count", lo=0, hi=100)
        next(iter(client.as_completed(job.futures, timeout=30)))
        coordinator.signal(signal.SIGKILL)
        coordinator.wait()
        start_coordinator(*data, port=port)
        results = client.gather(job.futures, timeout=120)
        assert single.result(timeout=60) == 25
        late = client.submit("prime_count", lo=0, hi=1000)  # the same session job, after it
        assert late.result(timeout=60) == 168
    assert results == [run_op("prime_count", a) for a in args]


def test_history_survives_a_restart(
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    data = ["--data-dir", str(tmp_path / "grid")]
    port = free_port()
    first = start_coordinator(*data, port=port)
    worker = start_worker(first.ws_url, "--data-dir", str(tmp_path / "w"))
    job = httpx.post(
        f"http://127.0.0.1:{port}/api/jobs",
        json={
            "op": "repeat_multiply",
            "name": "before the restart",
            "args": [{"initial": float(i), "factor": 2.0, "times": 1} for i in range(50)],
        },
        headers=AUTH,
        timeout=30,
    ).json()
    first.events_named("job_finished", 1)
    worker.end()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = start_coordinator(*data, port=port)
    base = f"http://127.0.0.1:{second.port}"
    (listed,) = [j for j in httpx.get(f"{base}/api/jobs").json() if j["job_id"] == job["job_id"]]
    assert listed["name"] == "before the restart" and listed["state"] == "finished"
    assert listed["done"] == 50 and listed["finished_at"] is not None
    results = job_results(second.port, job["job_id"])
    assert sorted(r["result"] for r in results) == [2.0 * i for i in range(50)]
    assert all(r["worker_key"] and r["lease_ms"] is not None for r in results)  # provenance
    (history,) = httpx.get(f"{base}/api/workers/history").json()
    assert history["tasks_done"] >= 51 and history["connected"] is False  # 50 + welcome
    with Client(base) as client:  # the same history through the Python client...
        assert client.job(job["job_id"])["state"] == "finished"
        assert job["job_id"] in [j["job_id"] for j in client.jobs()]
        assert client.workers(history=True)[0]["worker_key"] == history["worker_key"]
    shown = subprocess.run(  # ... and the CLI
        [sys.executable, "-m", "browsergrid", "status", "--history", "--server", base],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0 and history["worker_key"] in shown.stdout
    # the same worker, restarted, is recognised
    start_worker(second.ws_url, "--data-dir", str(tmp_path / "w"))
    recognised = second.event("worker_recognised")
    assert recognised["worker_key"] == history["worker_key"]
    # connected, it is seen now (its stored last_seen moves only when its history does)
    before = time.time()
    wait_for(lambda: httpx.get(f"{base}/api/workers/history").json()[0]["connected"])
    (again,) = httpx.get(f"{base}/api/workers/history").json()
    assert again["last_seen"] >= before


@pytest.mark.processes
def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "browsergrid.db").write_text("this is not SQLite")
    done = subprocess.run(
        [sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "browsergrid.db" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0


def test_finished_jobs_past_retention_are_removed(
    tmp_path: Path, start_coordinator: Callable[..., Coordinator]
) -> None:
    data = ["--data-dir", str(tmp_path / "grid"), "--retain", "1s"]
    port = free_port()
    first = start_coordinator(*data, port=port)
    with Client(f"http://127.0.0.1:{port}") as client:
        job = client.submit_job("repeat_multiply", [{"initial": 1.0, "factor": 1.0, "times": 1}])
        job_id = job.job_id
        client.cancel(job)  # no worker: cancelling ends it
        assert client.job(job_id)["state"] == "cancelled"
    first.signal(signal.SIGTERM)
    first.wait()
    time.sleep(1.5)
    second = start_coordinator(*data, port=port)  # prunes at start
    second.event("pruned")
    assert httpx.get(f"http://127.0.0.1:{port}/api/jobs/{job_id}").status_code == 404


def test_a_replicated_job_still_needs_its_quorum_after_a_restart(
    tmp_path: Path, start_coordinator: Callable[..., Coordinator]
) -> None:
    """After a SIGKILL, a job of redundancy 2 is taken up with its redundancy: one worker
    alone cannot finish it."""
    data = ["--data-dir", str(tmp_path / "grid"), "--no-welcome-task"]
    port = free_port()
    first = start_coordinator(*data, port=port)
    accepted = httpx.post(
        f"http://127.0.0.1:{port}/api/jobs",
        json={"op": "prime_count", "args": [{"lo": 0, "hi": 100}], "redundancy": 2},
        headers=AUTH,
    ).json()
    first.signal(signal.SIGKILL)
    first.wait()
    second = start_coordinator(*data, port=port)
    assert job_state(port, accepted["job_id"])["redundancy"] == 2
    workers = tmp_path / "workers"
    lone = Process(
        [sys.executable, "-m", "browsergrid", "worker", second.ws_url, "--data-dir", str(workers)]
    )
    try:
        second.event("replica")
        time.sleep(0.5)
        assert job_state(port, accepted["job_id"])["state"] == "running"  # one vote is not two
        other = Process(
            [
                sys.executable,
                "-m",
                "browsergrid",
                "worker",
                second.ws_url,
                "--data-dir",
                str(workers),
            ]
        )
        try:
            url = f"http://127.0.0.1:{port}/api/jobs/{accepted['job_id']}/results?follow=true"
            [record] = [json.loads(line) for line in httpx.get(url, timeout=60).text.splitlines()]
        finally:
            other.end()
    finally:
        lone.end()
    assert record["verdict"] == "quorum" and record["result"] == 25
