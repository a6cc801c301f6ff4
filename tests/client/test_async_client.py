"""``AsyncClient`` against a real coordinator and two real Python workers."""

from __future__ import annotations

import asyncio

import pytest

from browsergrid import AsyncClient, TaskError
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
