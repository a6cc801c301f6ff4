"""Plain Python functions as tasks, end to end: a real coordinator, real ``browsergrid worker
--python-functions`` processes, ``Client.submit(fn, ...)`` and ``AsyncClient``; and custom
ops from a Python file (``--ops-python``) on both the coordinator and the workers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import httpx
import pytest

from browsergrid import AsyncClient, Client, SubmitError, TaskError
from browsergrid._tokens import auth_headers, client_token
from tests._support import FIXTURES, Coordinator, Process
from tests.client._functions import counts, divide, fails, returns_a_set, sieve, uses_helper

MY_OPS = str(FIXTURES / "ops_python" / "my_ops.py")


def url(coordinator: Coordinator) -> str:
    return f"http://127.0.0.1:{coordinator.port}"


@pytest.fixture
def python_grid(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> Coordinator:
    """A coordinator and one worker that runs Python functions."""
    coordinator = start_coordinator("--no-welcome-task")
    worker = start_worker(coordinator.ws_url, "--python-functions")
    introduced = coordinator.event("worker_introduced")
    assert "python" in introduced["ops"]
    worker.wait_for_line(lambda line: "runs the Python functions clients submit" in line)
    return coordinator


def test_submit_runs_the_function_on_the_worker(python_grid: Coordinator) -> None:
    with Client(url(python_grid)) as client:
        assert client.submit(sieve, 1000).result(timeout=30) == sieve(1000)
        assert client.submit(divide, 7, b=2).result(timeout=30) == 3.5
        assert client.submit(counts, ["a", "b", "a"], top=1).result(timeout=30) == [["a", 2]]


def test_map_keeps_input_order_and_zips_the_iterables(python_grid: Coordinator) -> None:
    with Client(url(python_grid)) as client:
        limits = [10, 100, 1000, 50, 3]
        assert list(client.map(sieve, limits, timeout=30)) == [sieve(n) for n in limits]
        assert list(client.map(divide, [1, 2, 3], [4, 5], timeout=30)) == [0.25, 0.4]
        assert sorted(client.map_unordered(divide, [8, 6], timeout=30)) == [3.0, 4.0]
        job = client.submit_job(sieve, [30, 40])
        assert list(job.results(timeout=30)) == [sieve(30), sieve(40)]
        assert isinstance(job.job_id, int)


def test_a_function_that_raises_gives_its_remote_traceback(python_grid: Coordinator) -> None:
    with Client(url(python_grid)) as client:
        future = client.options(max_attempts=1).submit(fails, 1)
        with pytest.raises(TaskError) as caught:
            future.result(timeout=30)
        error = caught.value
        assert error.op == "python" and error.attempts == 1
        assert str(error).startswith(f"task {error.task_id} (python fails(1)) failed:")
        remote = error.remote_traceback
        assert remote is not None and remote.startswith("Traceback (most recent call last):")
        assert 'File "<browsergrid:fails>", line 3, in fails\n    return y / 0' in remote
        assert remote.endswith("ZeroDivisionError: division by zero")
        assert remote in str(error)

        with pytest.raises(TaskError, match=r"returned a value JSON cannot carry \(set\)") as c:
            client.options(max_attempts=1).submit(returns_a_set, 3).result(timeout=30)
        assert c.value.remote_traceback is None
        assert client.submit(sieve, 10).result(timeout=30) == [2, 3, 5, 7]  # it goes on


def test_what_cannot_be_sent_is_refused_before_anything_is_queued(
    python_grid: Coordinator,
) -> None:
    with Client(url(python_grid)) as client:
        before = client.jobs()
        with pytest.raises(TypeError, match=r"^argument 1 of sieve \(a set\) cannot be sent"):
            client.submit(sieve, {1000})
        with pytest.raises(TypeError, match=r"^item 2: argument 1 of sieve \(a set\)"):
            client.map(sieve, [10, 20, {30}])
        # a helper takes its module along (issue 24); this one's module imports msgspec
        with pytest.raises(ValueError, match=r"_functions.py, line 13: imports msgspec, which a"):
            client.submit(uses_helper, 1)
        with pytest.raises(TypeError, match="a lambda cannot be sent"):
            client.submit(lambda n: n, 1)
        with pytest.raises(TypeError, match="takes the op's arguments by keyword"):
            client.submit("prime_count", 1)  # type: ignore[call-overload]
        assert client.jobs() == before  # no job was made, nothing queued


async def test_the_async_client_runs_functions_too(python_grid: Coordinator) -> None:
    async with AsyncClient(url(python_grid)) as client:
        future = client.submit(sieve, 100)
        assert isinstance(future, asyncio.Future)
        assert await asyncio.wait_for(future, 30) == sieve(100)
        assert [r async for r in client.map(sieve, [10, 20])] == [sieve(10), sieve(20)]
        unordered = [r async for r in client.map_unordered(divide, [2, 4], [1, 1])]
        assert sorted(unordered) == [2.0, 4.0]
        job = client.submit_job(divide, [9])
        assert [r async for r in job.results()] == [4.5]
        with pytest.raises(TaskError) as caught:
            await asyncio.wait_for(client.options(max_attempts=1).submit(fails, 2), 30)
        assert "return y / 0" in (caught.value.remote_traceback or "")
        with pytest.raises(TypeError, match=r"keyword argument 'b' of divide \(a set\)"):
            client.submit(divide, 1, b={2})


def test_a_worker_without_the_flag_never_receives_python_tasks(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    plain = start_worker(coordinator.ws_url, "--concurrency", "2")
    first = coordinator.event("worker_introduced")
    assert "python" not in first["ops"] and "prime_count" in first["ops"]
    start_worker(coordinator.ws_url, "--python-functions")
    coordinator.events_named("worker_introduced", 2)
    with Client(url(coordinator)) as client:
        limits = list(range(2, 200))
        assert list(client.map(sieve, limits, timeout=60)) == [sieve(n) for n in limits]
        assert client.submit("prime_count", lo=0, hi=100).result(timeout=30) == 25
    sent = [e for e in coordinator.events() if e.get("event") == "task_sent"]
    python_sent = {e["worker_id"] for e in sent if e.get("op") == "python"}
    assert python_sent and first["worker_id"] not in python_sent
    assert "op=python" not in plain.output()


def test_custom_ops_from_a_python_file(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--no-welcome-task", "--ops-python", MY_OPS)
    assert coordinator.event("custom_ops")["ops"] == ["add", "common", "fails", "noisy", "root"]
    for _ in range(2):
        start_worker(coordinator.ws_url, "--ops-python", MY_OPS)
    introduced = coordinator.events_named("worker_introduced", 2)
    assert all({"add", "noisy", "root"} <= set(e["ops"]) for e in introduced)
    with Client(url(coordinator)) as client:
        assert client.submit("add", a=1, b=2).result(timeout=30) == 3
        assert list(client.map("common", [{"a": 12, "b": 18}], timeout=30)) == [6]
        with pytest.raises(TaskError, match="RuntimeError: no luck"):
            client.options(max_attempts=1).submit("fails", what="luck").result(timeout=30)
        # two workers' results differ by ~1e-12; the coordinator compares them with the
        # file's agree_noisy, so they make a quorum
        checked = client.options(redundancy=2, max_replicas=2)
        job = checked.submit_job("noisy", [{"x": 1.0}, {"x": 2.0}])
        assert [round(r, 6) for r in job.results(timeout=60)] == [1.0, 2.0]
        job_id = job.job_id
    base = url(coordinator)
    headers = auth_headers(client_token(None, base))
    lines = httpx.get(f"{base}/api/jobs/{job_id}/results", headers=headers).text
    records = [json.loads(line) for line in lines.splitlines()]
    assert [r["verdict"] for r in records] == ["quorum", "quorum"]
    for record in records:  # both agreed, from two identities (their results differ)
        assert [r["agreed"] for r in record["replicas"]] == [True, True]
        assert len({r["worker_key"] for r in record["replicas"]}) == 2


@pytest.mark.processes
def test_a_coordinator_refuses_an_ops_file_that_clashes(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "clash.py"
    bad.write_text("def prime_count(args):\n    return 0\n", encoding="utf-8")
    for command in ("serve", "worker"):
        extra = ["--port", "0"] if command == "serve" else ["ws://127.0.0.1:1"]
        process = Process(
            [sys.executable, "-m", "browsergrid", command, *extra, "--ops-python", str(bad)]
        )
        assert process.wait() == 2
        assert "defines prime_count, the name of a built-in op; rename it" in process.output()


def test_an_unknown_op_is_still_refused_without_the_file(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    with Client(url(coordinator)) as client, pytest.raises(SubmitError, match="'add'"):
        client.submit("add", a=1, b=2).result(timeout=10)
