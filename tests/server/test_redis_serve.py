"""``browsergrid serve --redis URL``: a real coordinator keeping its jobs in a real Redis,
restarted gracefully and killed with SIGKILL mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError
from browsergrid.server._run import open_store
from browsergrid.store import RedisStore
from tests._support import (
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
)


def test_jobs_results_and_history_survive_a_restart(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    port = free_port()
    first = start_coordinator("--redis", redis_url, port=port)
    worker = start_worker(first.ws_url, "--data-dir", str(tmp_path / "w"))
    job_id = submit_job(
        port,
        {
            "op": "repeat_multiply",
            "name": "before the restart",
            "args": [{"initial": float(i), "factor": 2.0, "times": 1} for i in range(50)],
        },
    )
    first.events_named("job_finished", 1)
    worker.end()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = start_coordinator("--redis", redis_url, port=port)
    status = job_state(port, job_id)
    assert status["name"] == "before the restart" and status["state"] == "finished"
    assert status["done"] == 50 and status["finished_at"] is not None
    results = job_results(port, job_id)
    assert sorted(r["result"] for r in results) == [2.0 * i for i in range(50)]
    assert all(r["worker_key"] and r["lease_ms"] is not None for r in results)
    (history,) = httpx.get(f"http://127.0.0.1:{port}/api/workers/history").json()
    assert history["tasks_done"] >= 51 and history["connected"] is False  # 50 + welcome
    next_job = submit_job(port, {"op": "prime_count", "args": [{"lo": 0, "hi": 100}]})
    assert next_job > job_id  # ids go on from the stored ones
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


@pytest.mark.timeout(180)
def test_kill_9_during_a_job_loses_and_repeats_nothing(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    options = ["--redis", redis_url, "--quiet"]
    port = free_port()
    coordinator = start_coordinator(*options, port=port)
    steady_workers(start_worker, coordinator.ws_url, tmp_path / "workers")
    job_id = submit_job(port, {"op": "repeat_multiply", "args": slow_tasks(1000)})
    kill_9_during(
        start_coordinator,
        coordinator,
        tuple(options),
        job_id,
        kills=3,
        seed=20270107,
        ready="grid_joined",
    )
    assert_each_task_done_once(port, job_id, 1000)


@pytest.mark.processes
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "cannot reach Redis at redis://127.0.0.1:{port}/0: Connection refused"),
        (("--memory",), "--memory and --redis do not go together"),
    ],
)
def test_a_redis_that_cannot_be_used_is_a_one_line_error(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    port = free_port()  # nothing listens there
    serve = [sys.executable, "-m", "browsergrid", "serve", "--port", "0"]
    done = subprocess.run(
        [*serve, "--data-dir", str(tmp_path), "--redis", f"redis://127.0.0.1:{port}/0", *extra],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"browsergrid serve: error: {message.format(port=port)}")
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0


@pytest.mark.processes
def test_browsergrid_redis_in_the_environment_is_the_default(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "BROWSERGRID_REDIS": f"redis://127.0.0.1:{port}/0"},
    )
    assert done.returncode == 2
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in done.stderr


def test_open_store_picks_redis_and_refuses_what_is_no_redis_url() -> None:
    store = open_store(ServeConfig(redis_url="redis://127.0.0.1:6379/3?prefix=grid-a:"))
    assert isinstance(store, RedisStore) and store.prefix == "grid-a:"
    with pytest.raises(ConfigError, match="--memory and --redis"):
        ServeConfig(memory=True, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="like redis://HOST:PORT/DB"):
        ServeConfig(redis_url="127.0.0.1:6379")
    with pytest.raises(ConfigError, match="--redis: not a Redis URL"):
        open_store(ServeConfig(redis_url="redis://127.0.0.1:port/0"))
