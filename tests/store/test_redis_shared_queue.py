"""``SharedQueue`` on a real Redis: coordinators divide the shared queue, each task goes to
one of them, a dead coordinator's tasks are claimed by another, and signals arrive."""

from __future__ import annotations

import asyncio

import msgspec

from browsergrid.store import RedisStore
from browsergrid.store._shared_queue import SharedQueue, Signal
from tests.store._support import job, result, tasks

OP = "prime_count"


async def alive(*grids: SharedQueue) -> None:
    for grid in grids:
        await grid.beat(b"{}")


async def test_each_task_is_taken_by_one_coordinator_only(store: RedisStore) -> None:
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await alive(a, b)
    await store.add_job(job(1), tasks(1, 1, 10))
    first = await a.take({OP}, 4)
    second = await b.take({OP}, 100)
    assert [t.task.task_id for t in first] == [1, 2, 3, 4]  # oldest first
    assert [t.task.task_id for t in second] == [5, 6, 7, 8, 9, 10]
    assert await a.take({OP}, 10) == []
    assert first[0].task == tasks(1, 1, 1)[0]  # the task as stored
    assert await a.pending([1]) == {1: 10}


async def test_only_the_ops_asked_for_are_taken(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 2))
    assert await grid.take({"monte_carlo_pi"}, 10) == []
    assert len(await grid.take({OP, "monte_carlo_pi"}, 10)) == 2


async def test_higher_priority_first_and_equal_priorities_share(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 10))
    await store.add_job(job(2), tasks(2, 11, 10))
    await store.add_job(job(3, priority=5), tasks(3, 21, 3))
    taken = await grid.take({OP}, 9)
    jobs = [t.task.job_id for t in taken]
    assert jobs[:3] == [3, 3, 3]
    assert sorted(jobs[3:]) == [1, 1, 1, 2, 2, 2]


async def test_a_task_already_final_is_skipped_and_acknowledged(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 3))
    await store.add_outcomes([result(tasks(1, 1, 1)[0])])
    assert [t.task.task_id for t in await grid.take({OP}, 10)] == [2, 3]


async def test_ack_ends_the_entries_and_a_finished_job_leaves_the_queue(
    store: RedisStore,
) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 2))
    taken = await grid.take({OP}, 10)
    await store.add_outcomes([result(t.task) for t in taken])
    await grid.ack(taken)
    client, prefix = store.client(), store.prefix
    assert await client.exists(f"{prefix}q:1:{OP}") == 0
    assert await client.zrange(f"{prefix}queue", 0, -1) == []


async def test_a_cancelled_job_leaves_the_queue_and_is_announced(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 3))
    signals = grid.signals()
    first = asyncio.ensure_future(anext(signals))
    await asyncio.sleep(0.2)  # subscribed
    await store.cancel_job(1, at=1.0)
    assert await asyncio.wait_for(first, 5) == Signal("cancel", 1)
    await signals.aclose()
    assert await grid.take({OP}, 10) == []
    assert await store.cancelled_tasks(1) == [1, 2, 3]


async def test_queued_work_is_announced(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    signals = grid.signals()
    first = asyncio.ensure_future(anext(signals))
    await asyncio.sleep(0.2)
    await store.add_job(job(1), tasks(1, 1, 1))
    assert await asyncio.wait_for(first, 5) == Signal("work")
    await signals.aclose()


async def test_a_dead_coordinators_tasks_are_claimed_once(store: RedisStore) -> None:
    a, b, c = SharedQueue(store, "a"), SharedQueue(store, "b"), SharedQueue(store, "c")
    await alive(a, b, c)
    await store.add_job(job(1), tasks(1, 1, 5))
    held = await a.take({OP}, 3)
    await store.add_outcomes([result(held[0].task)])  # a finished one before it died
    assert await b.claim() == []  # a is alive
    await a.leave()
    claimed = await b.claim()
    assert [t.task.task_id for t in claimed] == [2, 3]
    assert await c.claim() == []  # b has them now
    assert await a.pending([1]) == {1: 2}
    assert [t.task.task_id for t in await c.take({OP}, 10)] == [4, 5]


async def test_a_coordinator_that_stops_renewing_is_taken_for_dead(store: RedisStore) -> None:
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await store.add_job(job(1), tasks(1, 1, 2))
    client, prefix = store.client(), store.prefix
    await client.set(f"{prefix}coord:a", b"{}", px=200)
    await a.take({OP}, 10)
    assert await b.claim() == []
    await asyncio.sleep(0.3)
    assert [t.task.task_id for t in await b.claim()] == [1, 2]


async def test_handed_back_tasks_go_to_another_coordinator(store: RedisStore) -> None:
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await store.add_job(job(1), tasks(1, 1, 3))
    taken = await a.take({OP}, 3)
    await a.hand_back(taken[1:])
    assert [t.task.task_id for t in await b.take({OP}, 10)] == [2, 3]
    assert await a.pending([1]) == {1: 3}


async def test_members_are_the_live_coordinators_with_their_snapshots(
    store: RedisStore,
) -> None:
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await a.beat(msgspec.json.encode({"workers": 1}))
    await b.beat(b'{"workers": 2}')
    assert await a.members() == {"a": b'{"workers":1}', "b": b'{"workers": 2}'}
    await b.leave()
    assert list(await a.members()) == ["a"]


async def test_tasks_added_to_a_job_later_are_queued_too(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 1))
    await store.add_outcomes([result(tasks(1, 1, 1)[0])])  # finished: its queue is gone
    await store.add_tasks(tasks(1, 2, 2, start_index=1))
    assert [t.task.task_id for t in await grid.take({OP}, 10)] == [2, 3]


async def test_lost_attempts_travel_with_a_taken_task(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 1))
    await store.record_attempt(1, "worker 3 disconnected")
    (taken,) = await grid.take({OP}, 1)
    assert (taken.task.attempts, taken.task.reasons) == (1, ["worker 3 disconnected"])


async def test_a_replicated_job_is_left_to_coordinators_with_enough_identities(
    store: RedisStore,
) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1, redundancy=3), tasks(1, 1, 2))
    assert await grid.take({OP}, 10, identities=2) == []
    assert len(await grid.take({OP}, 10, identities=3)) == 2
