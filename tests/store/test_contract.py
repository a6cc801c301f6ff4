"""The storage contract: every backend of ``Store`` passes these same tests.

A new backend joins by adding itself to the ``store`` fixture's parameters (and to
``fresh_store``, which ``reopen`` calls to bring back what a restart of the coordinator
would find).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import browsergrid.store
from browsergrid.protocol import FailureRecord, Replica, ResultRecord
from browsergrid.store import (
    JobState,
    MemoryStore,
    Outcome,
    RedisStore,
    SqliteStore,
    Store,
    StoreError,
    TaskRecord,
    ThroughputSample,
)
from tests.store._support import failure, job, result, tasks, worker

Reopen = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = fresh_store(request.param, request, tmp_path)
    await opened.open()
    yield opened
    await opened.close()


def fresh_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store of this kind; called again in the same test, one on the same data (a Redis
    test gets a key prefix of its own, the same each time)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "grid.db")
    return RedisStore(request.getfixturevalue("redis_url"))


@pytest.fixture
async def reopen(
    store: Store, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Reopen]:
    """Close the store and open it again as a restarted coordinator would: the same
    MemoryStore instance, or a new SqliteStore on the same file, or a new RedisStore on the
    same Redis and prefix."""
    again: list[Store] = []

    async def reopen() -> Store:
        await store.close()
        kind = "sqlite" if isinstance(store, SqliteStore) else "redis"
        fresh = store if isinstance(store, MemoryStore) else fresh_store(kind, request, tmp_path)
        again.append(fresh)
        await fresh.open()
        return fresh

    yield reopen
    for opened in again:
        await opened.close()


async def collect(store: Store, job_id: int, *, follow: bool = False) -> list[Outcome]:
    return [outcome async for outcome in store.outcomes(job_id, follow=follow)]


def same(got: Any, want: Any) -> None:
    """Equal, and of the same types too: ``True == 1`` and ``0.0 == 0``, but their JSON differs."""
    assert got == want
    assert msgspec.json.encode(got) == msgspec.json.encode(want)


def test_all_is_sorted_and_complete() -> None:
    names = browsergrid.store.__all__
    assert list(names) == sorted(names)
    public = {name for name in vars(browsergrid.store) if not name.startswith("_")}
    assert public == set(names)


# --- jobs and tasks ----------------------------------------------------------------------


async def test_new_job_is_running_with_its_tasks(store: Store) -> None:
    info = job(1, name="primes", priority=5, lease_timeout=30.0, max_attempts=2)
    await store.add_job(info, tasks(1, 1, 3))
    summary = await store.job(1)
    assert summary is not None
    assert summary.info == info
    assert summary.state is JobState.RUNNING
    assert (summary.total, summary.done, summary.failed, summary.cancelled) == (3, 0, 0, 0)
    assert summary.finished_at is None


async def test_unknown_job_is_none(store: Store) -> None:
    assert await store.job(42) is None


async def test_add_tasks_to_a_job(store: Store) -> None:
    await store.add_job(job(1), tasks(1, 1, 2))
    await store.add_tasks(tasks(1, 3, 4, start_index=2))
    await store.add_tasks([])
    summary = await store.job(1)
    assert summary is not None and summary.total == 6
    _, unfinished = await store.unfinished()
    assert [t.task_id for t in unfinished] == [1, 2, 3, 4, 5, 6]
    assert [t.index for t in unfinished] == [0, 1, 2, 3, 4, 5]


async def test_job_without_tasks_keeps_running(store: Store) -> None:
    await store.add_job(job(1), [])
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.total) == (JobState.RUNNING, 0)
    await store.add_tasks(tasks(1, 1, 1))
    assert (await store.unfinished())[1] == tasks(1, 1, 1)


async def test_tasks_round_trip(store: Store) -> None:
    submitted = [
        TaskRecord(
            task_id=1,
            job_id=1,
            index=0,
            op="hash_search",
            args={"prefix": "ab", "nested": {"xs": [1, 2.5, None, True]}, "text": "é"},
        ),
        TaskRecord(task_id=2, job_id=1, index=1, op="x", args={}, attempts=2, reasons=["a", "b"]),
    ]
    await store.add_job(job(1), submitted)
    assert (await store.unfinished())[1] == submitted


async def test_rules_broken_raise_value_error_and_store_nothing(store: Store) -> None:
    await store.add_job(job(1, client_key="c/1"), tasks(1, 1, 2))
    with pytest.raises(ValueError):
        await store.add_job(job(1), [])  # job id used twice
    with pytest.raises(ValueError):
        await store.add_job(job(2, client_key="c/1"), [])  # client key used twice
    with pytest.raises(ValueError):
        await store.add_job(job(3), tasks(4, 10, 1))  # a task of another job
    with pytest.raises(ValueError):
        await store.add_job(job(5), tasks(5, 2, 1))  # task id 2 exists
    with pytest.raises(ValueError):
        await store.add_tasks(tasks(1, 3, 2) + tasks(1, 3, 1))  # task id twice in one call
    with pytest.raises(ValueError):
        await store.add_tasks(tasks(9, 20, 1))  # unknown job
    assert [s.info.job_id for s in await store.jobs()] == [1]
    summary = await store.job(1)
    assert summary is not None and summary.total == 2
    assert [t.task_id for t in (await store.unfinished())[1]] == [1, 2]
    assert await store.job_for("c/1") == 1


async def test_tasks_of_a_cancelled_job_are_refused(store: Store) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    await store.cancel_job(1, at=5.0)
    with pytest.raises(ValueError):
        await store.add_tasks(tasks(1, 2, 1))
    summary = await store.job(1)
    assert summary is not None and summary.total == 1


async def test_job_for_client_key(store: Store) -> None:
    await store.add_job(job(1, client_key="client-a/main"), [])
    await store.add_job(job(2), [])
    assert await store.job_for("client-a/main") == 1
    assert await store.job_for("client-b/main") is None


# --- outcomes ----------------------------------------------------------------------------


async def test_each_task_ends_once(store: Store) -> None:
    first = tasks(1, 1, 3)
    await store.add_job(job(1), first)
    a, b, c = first
    recorded = await store.add_outcomes([result(a), result(a, "again"), failure(b)])
    assert recorded == [True, False, True]
    assert await store.add_outcomes([result(a, "late"), failure(b)]) == [False, False]
    assert await store.outcomes_of([1, 2, 3]) == [result(a), failure(b)]
    summary = await store.job(1)
    assert summary is not None
    assert (summary.done, summary.failed, summary.state) == (1, 1, JobState.RUNNING)
    assert await store.add_outcomes([]) == []
    assert [t.task_id for t in (await store.unfinished())[1]] == [c.task_id]


async def test_outcome_for_unknown_task_or_wrong_job_is_ignored(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    await store.add_job(job(2), [])
    stray = ResultRecord(
        task_id=99, job_id=1, index=0, result=1, worker_id=1, attempts=1, duration_ms=1.0
    )
    elsewhere = result(TaskRecord(task_id=1, job_id=2, index=0, op="x", args={}))
    assert await store.add_outcomes([stray, elsewhere]) == [False, False]
    assert await store.outcomes_of([1, 99]) == []
    assert await collect(store, 2) == []


async def test_outcome_keeps_the_index_of_its_task(store: Store) -> None:
    [task] = tasks(1, 1, 1, start_index=4)
    await store.add_job(job(1), [task])
    wrong = result(TaskRecord(task_id=1, job_id=1, index=99, op="x", args={}))
    assert await store.add_outcomes([wrong]) == [True]
    assert await collect(store, 1) == [result(task)]


async def test_outcome_of_a_cancelled_task_is_ignored(store: Store) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    assert await store.add_outcomes([result(first[0])]) == [True]
    assert await store.cancel_job(1, at=50.0) == [2]
    assert await store.add_outcomes([result(first[1]), failure(first[1])]) == [False, False]
    assert await store.outcomes_of([1, 2]) == [result(first[0])]


async def test_job_finishes_when_its_last_task_ends(store: Store) -> None:
    first = tasks(1, 1, 3)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0], at=100.0)])
    summary = await store.job(1)
    assert summary is not None and summary.state is JobState.RUNNING
    await store.add_outcomes([failure(first[2], at=103.0), result(first[1], at=102.0)])
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.finished_at) == (JobState.FINISHED, 103.0)
    assert (summary.total, summary.done, summary.failed, summary.cancelled) == (3, 2, 1, 0)
    assert await store.unfinished() == ([], [])


async def test_finished_at_defaults_to_now(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    before = time.time()
    await store.add_outcomes([result(task, at=None)])
    summary = await store.job(1)
    assert summary is not None and summary.finished_at is not None
    assert before <= summary.finished_at <= time.time()


async def test_finished_job_given_more_tasks_runs_again(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    await store.add_outcomes([result(task)])
    await store.add_tasks(tasks(1, 2, 1, start_index=1))
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.finished_at, summary.total) == (JobState.RUNNING, None, 2)
    jobs, unfinished = await store.unfinished()
    assert [j.job_id for j in jobs] == [1]
    assert [t.task_id for t in unfinished] == [2]


async def test_outcome_values_round_trip(store: Store) -> None:
    first = tasks(1, 1, 4)
    await store.add_job(job(1), first)
    sent: list[Outcome] = [
        result(first[0], {"nested": [1, 2.5, None, "é", {"k": True}]}),
        result(first[1], None),
        ResultRecord(
            task_id=3, job_id=1, index=2, result=3.25, worker_id=2, attempts=3, duration_ms=0.5
        ),
        FailureRecord(task_id=4, job_id=1, index=3, reasons=[]),
    ]
    await store.add_outcomes(sent)
    assert await collect(store, 1) == sent
    assert await store.outcomes_of([4, 3, 2, 1]) == sent[::-1]


async def test_verdicts_and_replicas_round_trip(store: Store, reopen: Reopen) -> None:
    first = tasks(1, 1, 4)
    await store.add_job(job(1, redundancy=2), first)
    quorum = msgspec.structs.replace(
        result(first[0]),
        verdict="quorum",
        replicas=[
            Replica(worker_id=7, worker_key="wk-1", agreed=True, duration_ms=12.5),
            Replica(worker_id=9, worker_key=None, agreed=False, duration_ms=40.0, result=[-1, "x"]),
            Replica(worker_id=8, worker_key="wk-3", agreed=True, duration_ms=3.0),
        ],
    )
    sent: list[Outcome] = [
        quorum,
        msgspec.structs.replace(result(first[1]), verdict="trusted"),
        msgspec.structs.replace(result(first[2]), verdict="unchecked"),
        result(first[3]),  # no verdict: as stored before validation existed
    ]
    assert await store.add_outcomes(sent) == [True] * 4
    same(await collect(store, 1), sent)
    same(await store.outcomes_of([4, 3, 2, 1]), sent[::-1])
    again = await reopen()
    same(await collect(again, 1), sent)
    same(await again.outcomes_of([1]), [quorum])
    got = await again.outcomes_of([1, 4])
    assert isinstance(got[0], ResultRecord) and isinstance(got[1], ResultRecord)
    assert (got[0].verdict, got[0].replicas[1].result) == ("quorum", [-1, "x"])
    assert (got[1].verdict, got[1].replicas) == (None, [])


async def test_job_options_round_trip(store: Store, reopen: Reopen) -> None:
    checked = job(1, redundancy=3, max_replicas=5, adaptive=True, client_key="c/1")
    plain = job(2)
    await store.add_job(checked, tasks(1, 1, 2))
    await store.add_job(plain, tasks(2, 3, 1))
    summary = await store.job(1)
    assert summary is not None
    same(summary.info, checked)
    same([s.info for s in await store.jobs()], [plain, checked])
    again = await reopen()
    jobs, unfinished = await again.unfinished()
    same(jobs, [checked, plain])
    assert (jobs[0].redundancy, jobs[0].max_replicas, jobs[0].adaptive) == (3, 5, True)
    assert (jobs[1].redundancy, jobs[1].max_replicas, jobs[1].adaptive) == (1, None, False)
    assert [t.task_id for t in unfinished] == [1, 2, 3]
    summary = await again.job(1)
    assert summary is not None
    same(summary.info, checked)


async def test_outcomes_in_recorded_order_across_pages(store: Store) -> None:
    count = 2_600
    all_tasks = tasks(1, 1, count)
    await store.add_job(job(1), all_tasks)
    order = list(range(count))
    random.Random(5).shuffle(order)
    sent: list[Outcome] = []
    for start in range(0, count, 100):
        batch = [
            failure(all_tasks[i]) if i % 7 == 0 else result(all_tasks[i])
            for i in order[start : start + 100]
        ]
        assert all(await store.add_outcomes(batch))
        sent += batch
    received = await collect(store, 1)
    assert received == sent
    assert [o.task_id for o in await store.outcomes_of(range(1, count + 1))] == list(
        range(1, count + 1)
    )


async def test_outcomes_of_an_unknown_job_are_empty(store: Store) -> None:
    assert await collect(store, 7) == []
    assert await asyncio.wait_for(collect(store, 7, follow=True), 5) == []


async def test_outcomes_of_keeps_the_order_asked(store: Store) -> None:
    first = tasks(1, 1, 4)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[2]), failure(first[0]), result(first[3])])
    assert await store.outcomes_of([]) == []
    got = await store.outcomes_of([4, 2, 1, 99, 3, 4])
    assert got == [result(first[3]), failure(first[0]), result(first[2]), result(first[3])]


async def test_follow_receives_later_outcomes_and_ends_when_the_job_finishes(
    store: Store,
) -> None:
    first = tasks(1, 1, 3)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    follower = asyncio.create_task(collect(store, 1, follow=True))
    await asyncio.sleep(0.05)
    assert not follower.done()
    await store.add_outcomes([failure(first[1])])
    await asyncio.sleep(0.05)
    assert not follower.done()
    await store.add_outcomes([result(first[2])])
    received = await asyncio.wait_for(follower, 5)
    assert received == [result(first[0]), failure(first[1]), result(first[2])]


async def test_follow_ends_when_the_job_is_cancelled(store: Store) -> None:
    first = tasks(1, 1, 3)
    await store.add_job(job(1), first)
    follower = asyncio.create_task(collect(store, 1, follow=True))
    await asyncio.sleep(0.05)
    await store.add_outcomes([result(first[1])])
    await store.cancel_job(1, at=10.0)
    assert await asyncio.wait_for(follower, 5) == [result(first[1])]


async def test_follow_of_an_ended_job_returns_what_is_stored(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    await store.add_outcomes([result(task)])
    assert await asyncio.wait_for(collect(store, 1, follow=True), 5) == [result(task)]


async def test_many_followers_each_get_everything(store: Store) -> None:
    first = tasks(1, 1, 50)
    await store.add_job(job(1), first)
    followers = [asyncio.create_task(collect(store, 1, follow=True)) for _ in range(5)]
    sent = [result(t) for t in first]
    for outcome in sent:
        await store.add_outcomes([outcome])
    for follower in followers:
        assert await asyncio.wait_for(follower, 5) == sent


async def test_follow_stopped_early_can_be_closed(store: Store) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    stream = store.outcomes(1, follow=True)
    assert await anext(stream) == result(first[0])
    await stream.aclose()  # type: ignore[attr-defined]
    await store.add_outcomes([result(first[1])])  # wakes no one
    summary = await store.job(1)
    assert summary is not None and summary.state is JobState.FINISHED


async def test_non_following_read_ends_at_the_last_outcome(store: Store) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    assert await asyncio.wait_for(collect(store, 1), 5) == [result(first[0])]


# --- attempts, cancel, restart -----------------------------------------------------------


async def test_record_attempt_keeps_reasons_for_unfinished(store: Store) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    await store.record_attempt(1, "worker 3 disconnected")
    await store.record_attempt(1, "lease of 60 s expired")
    await store.record_attempt(2, "worker 9 disconnected")
    await store.record_attempt(99, "unknown task: ignored")
    _, unfinished = await store.unfinished()
    assert [(t.task_id, t.attempts, t.reasons) for t in unfinished] == [
        (1, 2, ["worker 3 disconnected", "lease of 60 s expired"]),
        (2, 1, ["worker 9 disconnected"]),
    ]


async def test_record_attempt_of_a_final_task_is_ignored(store: Store) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    await store.record_attempt(1, "too late")
    assert await store.outcomes_of([1]) == [result(first[0])]


async def test_cancel_job(store: Store) -> None:
    first = tasks(1, 1, 5)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[1]), failure(first[3])])
    assert await store.cancel_job(1, at=1234.5) == [1, 3, 5]
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.finished_at) == (JobState.CANCELLED, 1234.5)
    assert (summary.total, summary.done, summary.failed, summary.cancelled) == (5, 1, 1, 3)
    assert await store.cancel_job(1, at=9999.0) == []  # again: nothing more
    summary = await store.job(1)
    assert summary is not None and summary.finished_at == 1234.5
    assert await store.unfinished() == ([], [])
    assert await store.cancel_job(77, at=1.0) == []  # unknown job


async def test_cancelling_a_finished_job_changes_nothing(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    await store.add_outcomes([result(task, at=100.0)])
    assert await store.cancel_job(1, at=200.0) == []
    summary = await store.job(1)
    assert summary is not None
    assert (summary.state, summary.finished_at, summary.cancelled) == (JobState.FINISHED, 100.0, 0)


async def test_unfinished_after_reopening(store: Store, reopen: Reopen) -> None:
    await store.add_job(job(1, client_key="c/1"), tasks(1, 1, 3))
    await store.add_job(job(2), tasks(2, 4, 2))
    await store.add_job(job(3), tasks(3, 6, 1))
    await store.add_tasks(tasks(1, 7, 1, start_index=3))
    await store.add_outcomes([result(TaskRecord(2, 1, 1, "prime_count", {}))])
    await store.record_attempt(3, "worker 1 disconnected")
    await store.cancel_job(2, at=50.0)
    await store.add_outcomes([failure(TaskRecord(6, 3, 0, "prime_count", {}))])
    again = await reopen()
    jobs, unfinished = await again.unfinished()
    assert jobs == [job(1, client_key="c/1")]
    assert [(t.task_id, t.index, t.attempts, t.reasons) for t in unfinished] == [
        (1, 0, 0, []),
        (3, 2, 1, ["worker 1 disconnected"]),
        (7, 3, 0, []),
    ]
    assert unfinished[0] == tasks(1, 1, 1)[0]
    summary = await again.job(1)
    assert summary is not None
    assert (summary.total, summary.done, summary.state) == (4, 1, JobState.RUNNING)
    assert await again.job_for("c/1") == 1
    assert await again.next_ids() == (4, 8)
    cancelled = await again.job(2)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED


async def test_next_ids(store: Store, reopen: Reopen) -> None:
    assert await store.next_ids() == (1, 1)
    await store.add_job(job(5), tasks(5, 10, 3))
    assert await store.next_ids() == (6, 13)
    await store.add_job(job(3), tasks(3, 2, 1))  # lower ids do not lower the next ones
    assert await store.next_ids() == (6, 13)
    await store.add_outcomes([result(t) for t in tasks(5, 10, 3)])
    await store.cancel_job(3, at=1.0)
    assert await store.prune(time.time() + 1e9) == 2
    assert await store.next_ids() == (6, 13)  # removed ids are never handed out again
    again = await reopen()
    assert await again.next_ids() == (6, 13)


# --- listing -----------------------------------------------------------------------------


async def test_jobs_newest_first_with_pages(store: Store) -> None:
    for job_id in range(1, 8):
        await store.add_job(job(job_id), tasks(job_id, job_id * 10, 2))
    await store.add_outcomes([result(TaskRecord(30, 3, 0, "prime_count", {}))])
    await store.cancel_job(5, at=3.0)
    listed = await store.jobs()
    assert [s.info.job_id for s in listed] == [7, 6, 5, 4, 3, 2, 1]
    assert listed == [await store.job(job_id) for job_id in range(7, 0, -1)]
    by_id = {s.info.job_id: s for s in listed}
    assert (by_id[3].done, by_id[5].state, by_id[5].cancelled) == (1, JobState.CANCELLED, 2)
    pages: list[list[int]] = []
    before: int | None = None
    while page := await store.jobs(limit=3, before=before):
        pages.append([s.info.job_id for s in page])
        before = page[-1].info.job_id
    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    assert [s.info.job_id for s in await store.jobs(before=3)] == [2, 1]
    assert await store.jobs(limit=0) == []
    assert await store.jobs(before=1) == []


async def test_workers(store: Store) -> None:
    assert await store.workers() == []
    await store.record_workers([worker("a", 10.0), worker("b", 30.0), worker("c", 20.0)])
    await store.record_workers([])
    assert [w.worker_key for w in await store.workers()] == ["b", "c", "a"]
    updated = worker("a", 40.0, agent=None, tasks_done=9, failures=0, compute_ms=91.5)
    await store.record_workers([updated])
    assert await store.workers() == [updated, worker("b", 30.0), worker("c", 20.0)]
    assert await store.worker("a") == updated
    assert await store.worker("zz") is None
    await store.record_workers([worker("d", 30.0)])  # same last_seen as b: by key
    assert [w.worker_key for w in await store.workers()] == ["a", "b", "d", "c"]


async def test_worker_standing_round_trips(store: Store, reopen: Reopen) -> None:
    trusted = worker("a", 10.0, valid=40, invalid=1, consecutive_valid=25, error_rate=0.0125)
    shunned = worker("b", 20.0, valid=2, invalid=9, error_rate=0.8, quarantined=True)
    await store.record_workers([trusted, shunned, worker("c", 5.0)])
    same(await store.workers(), [shunned, trusted, worker("c", 5.0)])
    same(await store.worker("b"), shunned)
    fresh = await store.worker("c")
    assert fresh is not None
    same(
        (fresh.valid, fresh.invalid, fresh.consecutive_valid, fresh.error_rate, fresh.quarantined),
        (0, 0, 0, 0.1, False),
    )
    forgiven = worker("b", 30.0, valid=3, invalid=9, error_rate=0.75)  # replaces every field
    await store.record_workers([forgiven])
    same(await store.worker("b"), forgiven)
    again = await reopen()
    same(await again.workers(), [forgiven, trusted, worker("c", 5.0)])
    same(await again.worker("a"), trusted)


async def test_worker_loss_record_round_trips(store: Store, reopen: Reopen) -> None:
    losing = worker("a", 10.0, tasks_done=12, lost=5, loss_rate=0.578125, job_tasks_done=11)
    gone_bad = worker("b", 20.0, lost=9, loss_rate=0.92, quarantined=True)
    await store.record_workers([losing, gone_bad, worker("c", 5.0)])
    same(await store.workers(), [gone_bad, losing, worker("c", 5.0)])
    same(await store.worker("a"), losing)
    fresh = await store.worker("c")
    assert fresh is not None
    same((fresh.lost, fresh.loss_rate, fresh.job_tasks_done), (0, 0.0, 0))  # a float rate
    better = worker("a", 30.0, tasks_done=20, lost=5, loss_rate=0.25)  # replaces every field
    await store.record_workers([better])
    same(await store.worker("a"), better)
    again = await reopen()
    same(await again.workers(), [better, gone_bad, worker("c", 5.0)])
    same(await again.worker("b"), gone_bad)


async def test_workers_with_a_limit(store: Store) -> None:
    assert await store.workers(limit=2) == []
    await store.record_workers([worker("a", 10.0), worker("b", 30.0), worker("c", 20.0)])
    assert await store.workers(limit=2) == [worker("b", 30.0), worker("c", 20.0)]
    assert [w.worker_key for w in await store.workers(limit=1)] == ["b"]
    assert [w.worker_key for w in await store.workers(limit=10)] == ["b", "c", "a"]
    assert await store.workers(limit=0) == []
    assert await store.workers(limit=-1) == []


# --- throughput --------------------------------------------------------------------------


def sample(at: int, done: int, failed: int = 0) -> ThroughputSample:
    return ThroughputSample(at=at, done=done, failed=failed)


async def test_throughput_reads_back_oldest_first(store: Store) -> None:
    assert await store.throughput(0.0) == []
    await store.record_throughput([sample(102, 4, 1), sample(100, 7), sample(101, 0, 2)])
    await store.record_throughput([])
    assert await store.throughput(0.0) == [sample(100, 7), sample(101, 0, 2), sample(102, 4, 1)]


async def test_throughput_of_one_second_adds_up(store: Store) -> None:
    await store.record_throughput([sample(100, 3, 1)])
    await store.record_throughput([sample(100, 2, 0), sample(101, 1, 1)])
    await store.record_throughput([sample(101, 5, 0), sample(101, 1, 2)])  # twice in one call
    assert await store.throughput(0.0) == [sample(100, 5, 1), sample(101, 7, 3)]


async def test_throughput_since(store: Store) -> None:
    await store.record_throughput([sample(at, at - 99) for at in range(100, 105)])
    assert [s.at for s in await store.throughput(102.0)] == [102, 103, 104]  # at or after
    assert [s.at for s in await store.throughput(102.5)] == [103, 104]
    assert [s.at for s in await store.throughput(99.0)] == [100, 101, 102, 103, 104]
    assert await store.throughput(105.0) == []


async def test_prune_removes_old_throughput(store: Store) -> None:
    await store.record_throughput([sample(at, 1) for at in range(100, 105)])
    await store.add_job(job(1), tasks(1, 1, 1))  # running: stays
    assert await store.prune(102.0) == 0
    assert [s.at for s in await store.throughput(0.0)] == [102, 103, 104]  # at < 102 gone
    assert await store.prune(102.0) == 0
    assert [s.at for s in await store.throughput(0.0)] == [102, 103, 104]
    assert await store.prune(1e12) == 0
    assert await store.throughput(0.0) == []
    assert await store.job(1) is not None


async def test_throughput_after_reopening(store: Store, reopen: Reopen) -> None:
    await store.record_throughput([sample(100, 3, 1), sample(101, 2)])
    again = await reopen()
    assert await again.throughput(0.0) == [sample(100, 3, 1), sample(101, 2)]
    await again.record_throughput([sample(101, 1, 1)])
    assert await again.throughput(101.0) == [sample(101, 3, 1)]


# --- prune -------------------------------------------------------------------------------


async def test_prune_removes_ended_jobs_before_the_time(store: Store) -> None:
    await store.add_job(job(1, client_key="c/1"), tasks(1, 1, 2))  # finished at 100
    await store.add_job(job(2), tasks(2, 3, 2))  # cancelled at 150
    await store.add_job(job(3), tasks(3, 5, 2))  # finished at 300
    await store.add_job(job(4), tasks(4, 7, 2))  # running
    await store.add_outcomes([result(t, at=100.0) for t in tasks(1, 1, 2)])
    await store.cancel_job(2, at=150.0)
    await store.add_outcomes([failure(t, at=300.0) for t in tasks(3, 5, 2)])
    await store.add_outcomes([result(tasks(4, 7, 1)[0], at=10.0)])
    assert await store.prune(100.0) == 0  # strictly before
    assert await store.prune(200.0) == 2
    assert [s.info.job_id for s in await store.jobs()] == [4, 3]
    assert await store.job(1) is None and await store.job(2) is None
    assert await store.job_for("c/1") is None
    assert await store.outcomes_of([1, 2, 3, 4]) == []
    assert await collect(store, 1) == []
    assert await store.prune(200.0) == 0
    assert await store.prune(time.time() + 1e9) == 1  # the running job stays
    assert [s.info.job_id for s in await store.jobs()] == [4]
    assert [t.task_id for t in (await store.unfinished())[1]] == [8]
    await store.add_job(job(1, client_key="c/1"), [])  # its client key is free again


async def test_prune_ends_followers_of_removed_jobs(store: Store) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    await store.add_outcomes([result(task, at=5.0)])
    assert await store.prune(10.0) == 1
    assert await asyncio.wait_for(collect(store, 1, follow=True), 5) == []


async def test_prune_workers_removes_history_not_seen_since(store: Store, reopen: Reopen) -> None:
    await store.record_workers([worker("a", 10.0), worker("b", 20.0), worker("c", 30.0)])
    assert await store.prune_workers(10.0) == 0  # strictly before
    assert await store.prune_workers(25.0) == 2
    assert [w.worker_key for w in await store.workers()] == ["c"]
    assert await store.worker("a") is None
    assert await store.prune_workers(25.0) == 0
    await store.record_workers([worker("a", 40.0)])  # back: a record of its own again
    again = await reopen()
    assert [w.worker_key for w in await again.workers()] == ["a", "c"]


async def test_prune_workers_keeps_the_quarantined_and_those_asked(store: Store) -> None:
    """A liar's record outlives retention (else it could wait to be trusted afresh), and
    the caller keeps its connected workers (their last write may be long ago)."""
    await store.record_workers(
        [
            worker("liar", 1.0, invalid=5, error_rate=0.6, quarantined=True),
            worker("connected", 2.0),
            worker("gone", 3.0),
            worker("recent", 50.0),
        ]
    )
    assert await store.prune_workers(1e12, keep=["connected", "unknown"]) == 2
    assert [w.worker_key for w in await store.workers()] == ["connected", "liar"]
    assert await store.prune_workers(1e12) == 1
    liar = await store.worker("liar")
    assert liar is not None and liar.quarantined


async def test_prune_workers_goes_on_past_a_batch(store: Store) -> None:
    """More workers than one step removes (10,000), kept ones among the oldest."""
    await store.record_workers([worker(f"w{n:05}", float(n)) for n in range(10_050)])
    keep = [f"w{n:05}" for n in range(0, 10_050, 2)]  # every other one, oldest first
    assert await store.prune_workers(10_020.0, keep=keep) == 5_010
    assert len(await store.workers()) == 10_050 - 5_010
    assert await store.prune_workers(10_020.0) == 5_010


async def test_prune_leaves_workers_to_prune_workers(store: Store) -> None:
    await store.record_workers([worker("a", 10.0)])
    assert await store.prune(1e12) == 0
    assert await store.worker("a") is not None


# --- open and close ----------------------------------------------------------------------


async def test_closed_store_refuses_calls(store: Store) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(StoreError):
        await store.add_job(job(2), [])
    with pytest.raises(StoreError):
        await store.job(1)
    with pytest.raises(StoreError):
        await collect(store, 1)
    with pytest.raises(StoreError):
        await store.record_throughput([ThroughputSample(1, 1, 0)])
    with pytest.raises(StoreError):
        await store.throughput(0.0)
    with pytest.raises(StoreError):
        await store.prune_workers(0.0)
    await store.open()
    await store.open()  # twice is fine
    summary = await store.job(1)
    assert summary is not None and summary.total == 1


async def test_close_ends_followers_with_store_error(store: Store) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    follower = asyncio.create_task(collect(store, 1, follow=True))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StoreError):
        await asyncio.wait_for(follower, 5)
