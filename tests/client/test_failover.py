"""Clients given several coordinators: the first that answers, then the next when it is lost.

The coordinators here are independent (each its own database), so a job stays where it was
submitted; what moves is the client's connection, and new submits go to the new coordinator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from browsergrid import AsyncClient, Client, ConfigError, ConnectionLost
from browsergrid.client import coordinator_urls, server_urls
from browsergrid.client._engine import Endpoint, Engine, endpoints, http_get_any
from browsergrid.errors import BrowsergridError, TaskError
from browsergrid.protocol import (
    Accepted,
    Cancelled,
    Done,
    FailureRecord,
    ResultRecord,
    SubmitOptions,
    encode_client_message,
)
from tests._support import AUTH, TEST_TOKEN, Coordinator, Process, free_port

RM = "repeat_multiply"
pytestmark = pytest.mark.timeout(120)


def rm(initial: float) -> dict[str, float | int]:
    return {"initial": initial, "factor": 2.0, "times": 3}


@dataclass
class Node:
    """A coordinator (its own data directory) with one Python worker."""

    coordinator: Coordinator
    worker: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator.port}"

    def jobs(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = httpx.get(
            f"{self.url}/api/jobs", headers=AUTH, timeout=10
        ).json()
        return listed

    def end(self) -> None:
        self.worker.end()
        self.coordinator.end()


def start_node() -> Node:
    coordinator = Coordinator(0, ("--quiet",))
    worker = Process([sys.executable, "-m", "browsergrid", "worker", coordinator.ws_url, "--quiet"])
    try:
        worker.wait_for_line(lambda line: "connected to" in line)
    except BaseException:
        worker.end()
        coordinator.end()
        raise
    return Node(coordinator, worker)


@pytest.fixture
def start() -> Iterator[Callable[[], Node]]:
    """Start nodes; each is stopped by PID after the test."""
    started: list[Node] = []

    def make() -> Node:
        node = start_node()
        started.append(node)
        return node

    yield make
    for node in started:
        node.end()


@pytest.fixture(scope="module")
def live() -> Iterator[Node]:
    node = start_node()
    yield node
    node.end()


@pytest.fixture
def dead_url() -> str:
    """A coordinator URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# --- the first coordinator that answers ----------------------------------------------------


@pytest.mark.processes
def test_a_client_skips_a_dead_coordinator(live: Node, dead_url: str) -> None:
    with Client([dead_url, live.url], timeout=20) as client:
        assert client.http_url == live.url
        assert client.ws_url == f"ws://127.0.0.1:{live.coordinator.port}/client"
        assert client.submit(RM, **rm(1.5)).result(timeout=20) == 12.0
        assert list(client.map(RM, [rm(i) for i in range(50)], timeout=20)) == [
            8.0 * i for i in range(50)
        ]
        assert client.jobs()  # HTTP goes to the live one too
    with Client(f"{dead_url}, {live.url}", timeout=20) as client:  # a comma-separated string
        assert client.submit(RM, **rm(2)).result(timeout=20) == 16.0


@pytest.mark.processes
def test_the_list_may_come_from_the_environment(
    live: Node, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSERGRID_SERVER", f"{dead_url},{live.url}")
    with Client(timeout=20) as client:
        assert client.http_url == live.url
        assert client.submit(RM, **rm(3)).result(timeout=20) == 24.0


@pytest.mark.processes
async def test_an_async_client_skips_a_dead_coordinator(live: Node, dead_url: str) -> None:
    async with AsyncClient([dead_url, live.url]) as client:
        assert client.http_url == live.url
        assert await asyncio.wait_for(client.submit(RM, **rm(1.5)), 20) == 12.0
        results = [r async for r in client.map(RM, [rm(i) for i in range(20)])]
        assert results == [8.0 * i for i in range(20)]
        assert RM in {job["op"] for job in await client.jobs()}


def test_no_coordinator_answering_is_one_clear_error(dead_url: str) -> None:
    other = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionLost, match="cannot reach any coordinator") as caught:
        Client([dead_url, other], timeout=20)
    assert dead_url.replace("http", "ws") in str(caught.value)
    assert other.replace("http", "ws") in str(caught.value)


# --- moving when the coordinator dies ------------------------------------------------------


@pytest.mark.processes
def test_a_client_moves_to_the_next_coordinator_when_its_own_is_killed(
    start: Callable[[], Node], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = start(), start()
    caplog.set_level(logging.WARNING, logger="browsergrid.client")
    with Client([a.url, b.url], reconnect_timeout=30, timeout=20) as client:
        first = client.submit_job(RM, [rm(1)])
        assert list(first.results(timeout=20)) == [8.0]
        assert client.http_url == a.url
        assert [job["job_id"] for job in a.jobs()] == [first.job_id]

        os.kill(a.coordinator.proc.pid, signal.SIGKILL)
        a.coordinator.proc.wait(10)

        after = client.submit_job(RM, [rm(i) for i in range(10)])
        assert list(after.results(timeout=30)) == [8.0 * i for i in range(10)]
        single = client.submit(RM, **rm(5))  # the session job: on B now
        assert single.result(timeout=30) == 40.0
        assert client.http_url == b.url
        on_b = {job["job_id"]: job for job in b.jobs()}
        assert on_b[after.job_id]["done"] == 10
        assert sum(job["done"] for job in on_b.values()) == 11
        assert {job["job_id"] for job in client.jobs()} == set(on_b)  # HTTP follows
    moved = [r.getMessage() for r in caplog.records if "moved from" in r.getMessage()]
    assert moved == [
        f"moved from ws://127.0.0.1:{a.coordinator.port}/client to the coordinator at "
        f"ws://127.0.0.1:{b.coordinator.port}/client"
    ]


@pytest.mark.processes
async def test_an_async_client_moves_too(start: Callable[[], Node]) -> None:
    a, b = await asyncio.gather(asyncio.to_thread(start), asyncio.to_thread(start))
    async with AsyncClient(f"{a.url},{b.url}", reconnect_timeout=30) as client:
        assert await asyncio.wait_for(client.submit(RM, **rm(1)), 20) == 8.0
        os.kill(a.coordinator.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(a.coordinator.proc.wait, 10)
        assert await asyncio.wait_for(client.submit(RM, **rm(2)), 30) == 16.0
        assert client.http_url == b.url


@pytest.mark.processes
def test_a_client_with_every_coordinator_gone_gives_up(start: Callable[[], Node]) -> None:
    a = start()
    dead = f"http://127.0.0.1:{free_port()}"
    with Client([a.url, dead], reconnect_timeout=1, timeout=20) as client:
        assert client.submit(RM, **rm(1)).result(timeout=20) == 8.0
        os.kill(a.coordinator.proc.pid, signal.SIGKILL)
        a.coordinator.proc.wait(10)
        future = client.submit(RM, **rm(2))
        with pytest.raises(ConnectionLost, match="gave up after 1 s") as caught:
            future.result(timeout=20)
        assert "lost the coordinators at" in str(caught.value)


# --- HTTP: the next coordinator on a connection error, never on an HTTP error -------------


@pytest.mark.processes
def test_http_calls_try_the_next_coordinator_only_when_one_cannot_be_reached(
    live: Node, dead_url: str
) -> None:
    dead = Endpoint(dead_url, "", TEST_TOKEN)
    alive = Endpoint(live.url, "", TEST_TOKEN)
    assert isinstance(http_get_any([dead, alive], "/api/workers"), list)
    assert isinstance(http_get_any([alive, dead], "/api/workers", None, 1), list)
    with pytest.raises(BrowsergridError, match="HTTP 404") as caught:
        http_get_any([alive, dead], "/api/jobs/99999")
    assert not isinstance(caught.value, ConnectionLost)
    with pytest.raises(ConnectionLost, match="cannot reach any coordinator"):
        http_get_any([dead, Endpoint(f"http://127.0.0.1:{free_port()}", "", None)], "/api/jobs")


# --- the CLI -------------------------------------------------------------------------------


def cli(*args: str, server: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BROWSERGRID_SERVER"}
    if server is not None:
        env["BROWSERGRID_SERVER"] = server
    return subprocess.run(
        [sys.executable, "-m", "browsergrid", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.processes
def test_cli_commands_use_the_coordinator_that_answers(live: Node, dead_url: str) -> None:
    servers = f"{dead_url},{live.url}"
    status = cli("status", "--format", "json", "--server", servers)
    assert status.returncode == 0, status.stderr
    assert len(json.loads(status.stdout)["workers"]) == 1
    assert "cannot reach the coordinator at " + dead_url in status.stderr  # said, not fatal
    table = cli("status", "--server", servers)
    assert table.returncode == 0 and "workers (1)" in table.stdout
    submitted = cli("submit", RM, "initial=1", "factor=2", "times=3", "--wait", server=servers)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    results = cli("results", job_id, "--server", servers)
    assert results.returncode == 0, results.stderr
    assert json.loads(results.stdout)["result"] == 8.0
    cancelled = cli("cancel", job_id, "--server", servers)
    assert cancelled.returncode == 0 and "cancelled 0 task(s)" in cancelled.stdout
    missing = cli("cancel", "99999", "--server", servers)  # an HTTP error: no failover
    assert missing.returncode == 1 and "there is no job 99999" in missing.stderr


@pytest.mark.processes
def test_cli_with_no_coordinator_answering_names_them_all(dead_url: str) -> None:
    other = f"http://127.0.0.1:{free_port()}"
    done = cli("status", "--server", f"{dead_url},{other}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot reach the coordinator at any of" in last
    assert dead_url in last and other in last


# --- URL lists -----------------------------------------------------------------------------


def test_url_lists_from_strings_sequences_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = ("http://a:1", "ws://a:1/client"), ("https://b:2", "wss://b:2/client")
    assert coordinator_urls("http://a:1") == [a]
    assert coordinator_urls("http://a:1,https://b:2") == [a, b]
    assert coordinator_urls(" a:1 , wss://b:2/x ,") == [a, b]  # spaces, a trailing comma
    assert coordinator_urls(["http://a:1", "https://b:2"]) == [a, b]
    assert coordinator_urls(("ws://a:1", "https://b:2,http://a:1")) == [a, b]  # no repeats
    monkeypatch.setenv("BROWSERGRID_SERVER", "https://b:2,a:1")
    assert coordinator_urls() == [b, a]
    assert coordinator_urls("") == [b, a]
    assert server_urls() == b  # the first
    monkeypatch.delenv("BROWSERGRID_SERVER")
    assert coordinator_urls() == [("http://127.0.0.1:8765", "ws://127.0.0.1:8765/client")]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("ftp://h", "not a coordinator URL: 'ftp://h'; use http://HOST:PORT"),
        (
            "http://a:1,ftp://h",
            "not a coordinator URL: 'ftp://h' in 'http://a:1,ftp://h'; use http://HOST:PORT, "
            "several separated by commas",
        ),
        (["http://a:1", "h:port"], "not a coordinator URL: 'http://h:port' in"),
        ("http://[::1", "not a coordinator URL: 'http://[::1'"),
        (",", "no coordinator URL in ','"),
        ([], "no coordinator URL in ''"),
    ],
)
def test_a_bad_url_list_says_which_url(given: str | list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        coordinator_urls(given)
    assert message in str(caught.value)
    with pytest.raises(ConfigError):
        Client(given)


def test_each_coordinator_gets_the_token_its_rules_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = "http://127.0.0.1:1,http://grid.example:2,http://localhost:3,http://[::1]:4"
    assert [e.token for e in endpoints(servers, "given")] == ["given"] * 4
    assert [e.token for e in endpoints(servers, None)] == [TEST_TOKEN] * 4  # the env's
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    monkeypatch.setenv("BROWSERGRID_DATA_DIR", str(tmp_path))
    (tmp_path / "token").write_text("the-file-token\n")
    tokens = [e.token for e in endpoints(servers, None)]
    # the local token file goes to loopback coordinators only, never to another host
    assert tokens == ["the-file-token", None, "the-file-token", "the-file-token"]


# --- repeated outcomes after a move are ignored --------------------------------------------


@pytest.fixture
def engine() -> Iterator[Engine]:
    loop = asyncio.new_event_loop()
    yield Engine([Endpoint("http://127.0.0.1:1", "ws://127.0.0.1:1/client", None)], loop)
    loop.close()


def _submitted(engine: Engine, count: int) -> tuple[int, list[concurrent.futures.Future[Any]]]:
    job_id: concurrent.futures.Future[int] = concurrent.futures.Future()
    made = engine.request(
        "job-1",
        RM,
        [rm(i) for i in range(count)],
        SubmitOptions(),
        concurrent.futures.Future,
        job_id,
    )
    engine._flush()
    futures = [f for f in made if isinstance(f, concurrent.futures.Future)]
    (ref,) = engine._pending
    return ref, futures


def _frame(message: Accepted | Done | Cancelled) -> str:
    return encode_client_message(message).decode()


def _result(task_id: int, result: float, job_id: int = 7) -> ResultRecord:
    return ResultRecord(task_id, job_id, 0, result, worker_id=1, attempts=1, duration_ms=1.0)


def test_repeated_accepted_done_and_cancelled_frames_are_ignored(engine: Engine) -> None:
    ref, futures = _submitted(engine, 3)
    accepted = _frame(Accepted(ref=ref, job_id=7, first_task_id=10, count=3))
    engine._on_frame(accepted)
    engine._on_frame(accepted)  # accepted again (the submit was sent again after a move)
    assert engine.jobs == {"job-1": 7} and sorted(engine._tasks) == [10, 11, 12]

    done = _frame(Done(results=[_result(10, 1.0)]))
    engine._on_frame(done)
    engine._on_frame(done)  # pushed again after the move: the first one counts
    engine._on_frame(_frame(Done(results=[_result(10, 99.0)])))
    assert futures[0].result(0) == 1.0

    failed = Done(failures=[FailureRecord(11, 7, 1, ["worker 1 reported: no"])])
    engine._on_frame(_frame(failed))
    engine._on_frame(_frame(failed))
    engine._on_frame(_frame(Done(results=[_result(11, 2.0)])))  # a result after the failure
    assert isinstance(futures[1].exception(0), TaskError)

    cancelled = _frame(Cancelled(job_id=7, task_ids=[10, 11, 12]))
    engine._on_frame(cancelled)
    engine._on_frame(cancelled)
    engine._on_frame(_frame(Done(results=[_result(12, 3.0)])))
    assert futures[2].cancelled()
    assert futures[0].result(0) == 1.0 and isinstance(futures[1].exception(0), TaskError)
    assert engine._tasks == {} and engine._pending == {}


def test_an_outcome_of_another_job_with_the_same_task_id_is_not_taken(engine: Engine) -> None:
    """Coordinators that do not share a store may number tasks alike: a task id counts only
    with its job id."""
    ref, futures = _submitted(engine, 1)
    engine._on_frame(_frame(Accepted(ref=ref, job_id=7, first_task_id=10, count=1)))
    engine._on_frame(_frame(Done(results=[_result(10, 5.0, job_id=8)])))
    engine._on_frame(_frame(Cancelled(job_id=8, task_ids=[10])))
    assert not futures[0].done()
    engine._on_frame(_frame(Done(results=[_result(10, 6.0, job_id=7)])))
    assert futures[0].result(0) == 6.0


def test_a_progress_bar_counts_each_task_once(engine: Engine) -> None:
    """The CLI's progress counts futures as they complete: repeats complete nothing twice."""
    ref, futures = _submitted(engine, 4)
    engine._on_frame(_frame(Accepted(ref=ref, job_id=7, first_task_id=1, count=4)))
    for _ in range(3):
        engine._on_frame(_frame(Done(results=[_result(t, float(t)) for t in (1, 2, 3, 4)])))
    completed = list(concurrent.futures.as_completed(futures, timeout=1))
    assert len(completed) == 4
    assert [f.result() for f in futures] == [1.0, 2.0, 3.0, 4.0]
