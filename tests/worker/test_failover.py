"""Failover: a Python worker given several coordinators moves to the next when its own dies.

Real coordinators as processes (each with its own SQLite), ``browsergrid worker A B``, and
``kill -9``; plus the order of attempts of an in-process ``PythonWorker`` against ports where
nothing listens."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator

import httpx
import pytest

from browsergrid.errors import AuthError
from browsergrid.worker import Backoff, PythonWorker
from tests._support import (
    AUTH,
    Coordinator,
    Process,
    connected_workers,
    free_port,
    job_results,
    job_state,
    submit_job,
    wait_for,
)

JOIN = "failover-join-token"


def identities(coordinator: Coordinator) -> set[str]:
    """Public names of the worker identities connected to ``coordinator`` right now."""
    url = f"http://127.0.0.1:{coordinator.port}/api/workers/history"
    history = httpx.get(url, headers=AUTH).json()
    return {row["worker_key"] for row in history if row["connected"]}


@pytest.mark.timeout(90)
def test_worker_moves_to_the_next_coordinator_when_its_own_is_killed(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    a = start_coordinator("--worker-token", JOIN)
    b = start_coordinator("--worker-token", JOIN)
    assert JOIN in a.ws_url and JOIN in b.ws_url  # ws://127.0.0.1:PORT/ws?token=JOIN
    worker = start_worker(a.ws_url, b.ws_url, "--max-backoff", "1")

    a.event("worker_introduced")
    wait_for(lambda: len(connected_workers(a)) == 1)
    (on_a,) = connected_workers(a)
    assert on_a["kind"] == "python"
    assert connected_workers(b) == []
    wait_for(lambda: len(identities(a)) == 1, timeout=25)  # history is written every 10 s
    (key,) = identities(a)

    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    line = worker.wait_for_line(lambda line: f"reconnecting to ws://127.0.0.1:{b.port}/" in line)
    assert "in 0.0 s" in line  # A had been up: B is tried at once
    b.event("worker_introduced", timeout=20)
    wait_for(lambda: len(connected_workers(b)) == 1)
    wait_for(lambda: identities(b) == {key}, timeout=25)  # one identity on either coordinator

    job_id = submit_job(
        b.port, {"op": "prime_count", "args": [{"lo": 0, "hi": 100 * k} for k in range(1, 21)]}
    )
    wait_for(lambda: job_state(b.port, job_id)["state"] == "finished", timeout=30)
    results = job_results(b.port, job_id)
    assert sorted(r["index"] for r in results) == list(range(20))
    assert all(r["status"] == "done" for r in results)
    assert {r["index"]: r["result"] for r in results}[0] == 25  # primes below 100
    (on_b,) = connected_workers(b)
    assert on_b["tasks_done"] >= 20
    assert JOIN not in worker.output()  # URLs are logged with their token hidden


# --- the order of attempts, in process ------------------------------------------------------


class Attempts(logging.Handler):
    """Collects the worker's log records; stops ``worker`` after ``limit`` failed attempts."""

    def __init__(self, worker: PythonWorker, limit: int) -> None:
        super().__init__(logging.DEBUG)
        self.worker = worker
        self.limit = limit
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if len(self.failed()) >= self.limit:
            self.worker.stop()

    def failed(self) -> list[str]:
        """The URL of each attempt that failed, in order."""
        return [r.fields["url"] for r in self.records if r.event == "connect_failed"]  # type: ignore[attr-defined]

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def worker_log() -> Iterator[logging.Logger]:
    """The worker's logger, letting INFO through for the test."""
    logger = logging.getLogger("browsergrid.worker")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(level)


async def attempts(worker: PythonWorker, logger: logging.Logger, count: int) -> Attempts:
    """Run ``worker`` until ``count`` connection attempts have failed."""
    handler = Attempts(worker, count)
    logger.addHandler(handler)
    try:
        await asyncio.wait_for(worker.run(), 20)
    finally:
        logger.removeHandler(handler)
    return handler


def fast() -> Backoff:
    return Backoff(first_s=0.01, cap_s=0.02)


async def test_attempts_go_round_robin_with_tokens_hidden(worker_log: logging.Logger) -> None:
    urls = [f"ws://127.0.0.1:{free_port()}/ws?token=secret-{i}" for i in range(3)]
    worker = PythonWorker(urls, backoff=fast(), worker_key="failover-test-key")
    assert worker.url == urls[0]
    seen = await attempts(worker, worker_log, 7)
    shown = [url.replace(f"secret-{i}", "***") for i, url in enumerate(urls)]
    assert seen.failed() == [*shown, *shown, shown[0]]
    moves = [m for m in seen.messages() if m.startswith("reconnecting to ")]
    assert [m.split()[2] for m in moves[:4]] == [shown[1], shown[2], shown[0], shown[1]]
    assert not any("secret" in m for m in seen.messages())
    assert worker.urls == urls  # the list itself is kept as given
    assert worker.worker_key == "failover-test-key"


async def test_a_single_url_as_a_string_still_works(worker_log: logging.Logger) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    worker = PythonWorker(url, backoff=fast())
    assert worker.urls == [url] and worker.url == url and worker.shown_url == url
    seen = await attempts(worker, worker_log, 3)
    assert seen.failed() == [url] * 3
    assert any(m.startswith("reconnecting in ") for m in seen.messages())  # as before
    assert not any(m.startswith("reconnecting to ") for m in seen.messages())


async def test_a_tuple_of_urls_works_and_no_url_is_refused() -> None:
    urls = ("ws://a.test/ws", "ws://b.test/ws")
    assert PythonWorker(urls).urls == list(urls)
    with pytest.raises(ValueError, match="at least one"):
        PythonWorker([])


async def test_a_refused_token_stops_the_worker_rather_than_moving_on(
    start_coordinator: Callable[..., Coordinator], worker_log: logging.Logger
) -> None:
    guarded = start_coordinator("--memory", "--worker-token", JOIN)
    other = f"ws://127.0.0.1:{free_port()}/ws"
    worker = PythonWorker([f"ws://127.0.0.1:{guarded.port}/ws", other], backoff=fast())
    handler = Attempts(worker, 100)
    worker_log.addHandler(handler)
    try:
        with pytest.raises(AuthError, match="join token"):
            await asyncio.wait_for(worker.run(), 20)
    finally:
        worker_log.removeHandler(handler)
    assert handler.failed() == []  # the other coordinator was never tried
