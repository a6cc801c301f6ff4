"""``SharedQueue`` on a real Redis, in the corners: many queues, small takes, claims racing,
a coordinator that stalls and comes back, queues that end while entries are pending."""

from __future__ import annotations

import asyncio

from browsergrid.store import JobState, RedisStore, TaskRecord
from browsergrid.store._shared_queue import SharedQueue
from tests.store._support import job, result, tasks

OP = "prime_count"


def ids(taken: list[object]) -> list[int]:
    return [t.task.task_id for t in taken]  # type: ignore[attr-defined]


# --- bugs ---------------------------------------------------------------------------------


async def test_a_take_sees_work_behind_a_thousand_queues_it_cannot_serve(
    store: RedisStore,
) -> None:
    others = [  # high-priority jobs of an op only other coordinators' workers run
        store.add_job(
            job(j, op="custom_elsewhere", priority=1),
            [TaskRecord(task_id=j, job_id=j, index=0, op="custom_elsewhere", args={})],
        )
        for j in range(1, 1001)
    ]
    await asyncio.gather(*others)  # one pipeline
    await store.add_job(job(1001), tasks(1001, 1001, 2))
    grid = SharedQueue(store, "a")
    assert ids(await grid.take({OP}, 10)) == [1001, 1002]


async def test_jobs_of_one_priority_share_takes_of_one_task(store: RedisStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 10))
    await store.add_job(job(2), tasks(2, 11, 10))
    grid = SharedQueue(store, "a")
    jobs = []
    for _ in range(4):
        (taken,) = await grid.take({OP}, 1)
        jobs.append(taken.task.job_id)
    assert sorted(jobs) == [1, 1, 2, 2]


# --- checked and found sound --------------------------------------------------------------


async def test_two_coordinators_claiming_at_once_split_a_dead_ones_tasks(
    store: RedisStore,
) -> None:
    dead, b, c = SharedQueue(store, "dead"), SharedQueue(store, "b"), SharedQueue(store, "c")
    for grid in (dead, b, c):
        await grid.beat(b"{}")
    await store.add_job(job(1), tasks(1, 1, 6))
    await store.add_job(job(2), tasks(2, 7, 4))
    held = await dead.take({OP}, 10)
    assert len(held) == 10
    await dead.leave()
    first, second = await asyncio.gather(b.claim(), c.claim())
    assert sorted(ids(first) + ids(second)) == list(range(1, 11))  # each once
    assert await b.pending([1, 2]) == {1: 6, 2: 4}


async def test_a_stalled_coordinator_back_after_a_claim_cannot_end_a_task_twice(
    store: RedisStore,
) -> None:
    """A's key expired while it was alive; B claimed its task and stored an outcome. A's
    late outcome is refused, its ack of the same entry is harmless, and the job's counts
    stay right."""
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await a.beat(b"{}")
    await b.beat(b"{}")
    await store.add_job(job(1), tasks(1, 1, 2))
    held = await a.take({OP}, 2)
    await store.client().delete(f"{store.prefix}coord:a")
    claimed = await b.claim()
    assert [t.entry for t in claimed] == [t.entry for t in held]
    await a.beat(b"{}")  # back
    assert await store.add_outcomes([result(held[0].task, "b")]) == [True]
    await b.ack(claimed[:1])
    assert await store.add_outcomes([result(held[0].task, "a")]) == [False]
    await a.ack(held[:1])
    assert await a.pending([1]) == {1: 1}
    assert await store.add_outcomes([result(held[1].task)]) == [True]
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.done, summary.total) == (JobState.FINISHED, 2, 2)
    outcomes = [o async for o in store.outcomes(1)]
    assert sorted(o.task_id for o in outcomes) == [1, 2]
    assert outcomes[0].result == "b"
    await a.ack(held[1:])  # late, after the queue was deleted: no error
    await b.ack(claimed[1:])


async def test_a_hand_back_after_its_job_ended_queues_nothing(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 2))
    taken = await grid.take({OP}, 2)
    await store.cancel_job(1, at=1.0)
    await grid.hand_back(taken)
    client, prefix = store.client(), store.prefix
    assert await client.exists(f"{prefix}q:1:{OP}") == 0
    assert await client.zrange(f"{prefix}queue", 0, -1) == []
    assert await grid.take({OP}, 10) == []


async def test_a_session_job_that_finished_and_grows_is_queued_afresh(
    store: RedisStore,
) -> None:
    """A job finished while a coordinator still held a stale entry of it; it gets more
    tasks (a new stream): the stale ack and hand back touch nothing of the new queue."""
    a, b = SharedQueue(store, "a"), SharedQueue(store, "b")
    await store.add_job(job(1), tasks(1, 1, 1))
    (old,) = await a.take({OP}, 1)
    await store.add_outcomes([result(old.task)])  # finished: the queue is gone
    await store.add_tasks(tasks(1, 2, 2, start_index=1))
    await a.hand_back([old])
    await a.ack([old])
    assert ids(await b.take({OP}, 10)) == [2, 3]


async def test_a_stale_ack_or_hand_back_spares_a_new_entry_with_the_same_id(
    store: RedisStore,
) -> None:
    """A queue made again within the same millisecond may give a new task the stale
    entry's id: ending the stale entry must not delete the new task's."""
    a = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 1))
    (old,) = await a.take({OP}, 1)
    client, key = store.client(), f"{store.prefix}q:{old.queue}"
    await client.delete(key)  # as when its job finished
    await client.xgroup_create(key, "grid", id="0", mkstream=True)
    await client.xadd(key, {"t": "1"}, id=old.entry)  # the same id, not yet taken
    await a.ack([old])
    await a.hand_back([old])
    assert [e[0] for e in await client.xrange(key)][:1] == [old.entry.encode()]


async def test_prune_with_entries_still_pending_leaves_no_queue(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 3))
    held = await grid.take({OP}, 3)
    await store.cancel_job(1, at=1.0)
    assert await store.prune(finished_before=2.0) == 1
    client, prefix = store.client(), store.prefix
    assert await client.keys(f"{prefix}q:*") == []
    assert await client.zrange(f"{prefix}queue", 0, -1) == []
    await grid.ack(held)
    await grid.hand_back(held)
    assert await grid.claim() == []
    assert await grid.take({OP}, 10) == []


async def test_a_redundant_job_left_by_one_coordinator_is_still_taken_by_another(
    store: RedisStore,
) -> None:
    small, big = SharedQueue(store, "small"), SharedQueue(store, "big")
    await store.add_job(job(1, redundancy=2), tasks(1, 1, 2))
    await store.add_job(job(2), tasks(2, 3, 2))
    assert ids(await small.take({OP}, 10, identities=1)) == [3, 4]  # only what it can settle
    assert ids(await big.take({OP}, 10, identities=2)) == [1, 2]


async def test_pending_counts_only_what_is_held(store: RedisStore) -> None:
    grid = SharedQueue(store, "a")
    await store.add_job(job(1), tasks(1, 1, 4))
    taken = await grid.take({OP}, 3)
    assert await grid.pending([1]) == {1: 3}
    await store.add_outcomes([result(taken[0].task)])
    await grid.ack(taken[:1])
    await grid.hand_back(taken[1:2])
    assert await grid.pending([1]) == {1: 1}
