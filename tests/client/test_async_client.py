"""``AsyncClient`` against a real coordinator and two real Python workers."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from browsergrid import AsyncClient, TaskError
from tests._support import Process
from tests._wheels import make_wheel
from tests.conftest import Served

RM = "repeat_multiply"


async def test_submit_and_await(served: Served) -> None:
    async with AsyncClient(served.url) as client:
        future = client.submit(RM, initial=2.0, factor=3.0, times=2)
        assert isinstance(future, asyncio.Future)
        assert await asyncio.wait_for(future, 10) == 18.0


async def test_map_in_order_unordered_and_gather(served: Served) -> None:
    args = [{"initial": float(i), "factor": 1.0, "times": 5} for i in range(300)]
    async with AsyncClient(served.url) as client:
        ordered = [r async for r in client.map(RM, args)]
        unordered = [r async for r in client.map_unordered(RM, args)]
        futures = [client.submit(RM, **a) for a in args[:10]]
        gathered = await client.gather(futures)
    assert ordered == [float(i) for i in range(300)]
    assert sorted(unordered) == ordered
    assert gathered == ordered[:10]


async def test_task_error_and_cancel(served: Served) -> None:
    async with AsyncClient(served.url) as client:
        with pytest.raises(TaskError, match="'times'"):
            await client.options(max_attempts=1).submit(RM, initial=1.0, factor=1.0, times=-1)
        job = client.submit_job("prime_count", [{"lo": 0, "hi": 3 * 10**6}] * 200)
        await asyncio.wait_for(next(iter(job.as_completed())), 30)
        await job.cancel()
        await asyncio.wait(job.futures, timeout=30)
    assert any(f.cancelled() for f in job.futures)
    assert all(f.done() for f in job.futures)


@pytest.mark.timeout(120)
async def test_a_function_takes_its_module_and_packages_along(
    served: Served,
    start_worker: Callable[..., Process],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``AsyncClient.options(packages=...)`` (a wheel file here: pip takes a path as a
    requirement, no registry needed) and a function that uses a constant of its module: a
    Python worker runs it in the environment, with the module imported from the bundle."""
    worker = start_worker(served.coordinator.ws_url, "--python-functions", "--quiet")
    worker.wait_for_line(lambda line: "runs the Python functions clients submit" in line)
    name, data = make_wheel("asyncpkg", "1.0", {"asyncpkg/__init__.py": "VALUE = 7\n"})
    wheel = tmp_path / name
    wheel.write_bytes(data)
    project = tmp_path / "project"
    project.mkdir()
    (project / "async_project.py").write_text(
        "FACTOR = 3\n\n\ndef scaled(n):\n"
        "    import asyncpkg\n\n    return asyncpkg.VALUE * n * FACTOR\n"
    )
    monkeypatch.syspath_prepend(str(project))
    module = importlib.import_module("async_project")
    try:
        async with AsyncClient(served.url) as client:
            grid = await asyncio.to_thread(client.options, packages=[str(wheel)])
            assert await asyncio.wait_for(grid.submit(module.scaled, 2), 60) == 42
            job = grid.submit_job(module.scaled, [1, 2, 3])
            assert [await asyncio.wait_for(f, 60) for f in job.futures] == [21, 42, 63]
    finally:
        sys.modules.pop("async_project", None)
