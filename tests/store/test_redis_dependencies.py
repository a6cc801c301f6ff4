"""Tasks that depend on tasks, in a grid's Redis: a task whose arguments hold futures enters
the shared queue only once every task it names is final there (a result, a failure, a
cancel), so no coordinator takes a task that would only wait."""

from __future__ import annotations

from typing import Any

from browsergrid.store import RedisStore, TaskRecord
from browsergrid.store._shared_queue import SharedQueue
from tests.store._support import failure, job, result, tasks

OP = "prime_count"


def dependent(job_id: int, task_id: int, index: int, *deps: int) -> TaskRecord:
    args: dict[str, Any] = {"lo": 0, "hi": [{"$future": d} for d in deps]}
    return TaskRecord(task_id=task_id, job_id=job_id, index=index, op=OP, args=args)


async def taken_ids(grid: SharedQueue) -> list[int]:
    return [t.task.task_id for t in await grid.take({OP}, 100)]


async def test_a_dependent_is_queued_once_its_last_dependency_ends(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    waiting = dependent(2, 3, 0, 1, 2)
    await store.add_job(job(2), [waiting, *tasks(2, 4, 1, start_index=1)])
    assert sorted(await taken_ids(grid)) == [1, 2, 4]  # not 3: it waits
    await store.add_outcomes([result(first[0])])
    assert await taken_ids(grid) == []  # one of two
    await store.add_outcomes([failure(first[1])])  # a failure ends it too
    [again] = await grid.take({OP}, 10)
    assert again.task == waiting  # as stored: the futures are resolved where it runs
    client, prefix = store.client(), store.prefix
    assert await client.keys(f"{prefix}after:*") == []
    assert await client.keys(f"{prefix}before:*") == []


async def test_a_dependency_final_already_holds_nothing_back(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    first = tasks(1, 1, 1)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    # ended, unknown (never stored), or not below the task's own id: nothing to wait for
    await store.add_tasks([dependent(1, 2, 1, 1), dependent(1, 3, 2, 999), dependent(1, 4, 3, 4)])
    assert sorted(await taken_ids(grid)) == [2, 3, 4]


async def test_a_cancel_releases_what_waits_on_it_and_forgets_its_own_waits(
    store: RedisStore,
) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 1))
    await store.add_job(job(2), [dependent(2, 2, 0, 1)])
    await store.add_job(job(3), [dependent(3, 3, 0, 1)])
    assert await taken_ids(grid) == [1]
    await store.cancel_job(3, at=1.0)  # a waiting task cancelled: it never enters a queue
    await store.cancel_job(1, at=2.0)  # its dependency cancelled: 2 goes on (to fail)
    assert await taken_ids(grid) == [2]
    client, prefix = store.client(), store.prefix
    assert await client.keys(f"{prefix}after:*") == []
    assert await client.keys(f"{prefix}before:*") == []
