"""What only ``RedisStore`` promises: a clear error when Redis is away, key prefixes that
keep stores apart, one round trip for many writes, ids from Redis counters, and coming back
after Redis restarts. The shared promises are in ``test_contract.py``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from browsergrid.store import JobState, RedisStore, StoreError, ThroughputSample, _redis
from tests._support import RedisServer, free_port
from tests.store._support import job, result, tasks, worker


@pytest.fixture
async def raw(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the session's Redis, to look at keys and to misbehave."""
    client = aioredis.Redis.from_url(redis_server)
    yield client
    await client.aclose()


async def test_unreachable_redis_is_a_store_error_naming_it() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert (
        str(caught.value) == f"cannot reach Redis at redis://127.0.0.1:{port}/0: Connection refused"
    )
    with pytest.raises(StoreError, match="not open"):
        await store.job(1)


async def test_the_password_is_never_shown() -> None:
    port = free_port()
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{port}/2?prefix=grid-a:")
    assert store.url == f"redis://:***@127.0.0.1:{port}/2?prefix=grid-a:"
    assert store.prefix == "grid-a:"
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "127.0.0.1:6379",
        "redis://127.0.0.1:port/0",
        "redis://h/0?prefix=",
    ],
)
def test_what_is_not_a_redis_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        RedisStore(url)


def test_the_default_prefix() -> None:
    assert RedisStore("redis://127.0.0.1:6379/0").prefix == "browsergrid:"


async def test_a_store_opened_again_on_the_same_redis_sees_the_data(redis_url: str) -> None:
    first = RedisStore(redis_url)
    await first.open()
    all_tasks = tasks(1, 1, 3)
    await first.add_job(job(1, client_key="c/1"), all_tasks)
    await first.add_outcomes([result(all_tasks[0])])
    await first.record_attempt(2, "worker 4 disconnected")
    await first.record_workers([worker("w", 10.0)])
    await first.close()
    second = RedisStore(redis_url)
    await second.open()
    try:
        summary = await second.job(1)
        assert summary is not None and (summary.total, summary.done) == (3, 1)
        assert await second.job_for("c/1") == 1
        _, unfinished = await second.unfinished()
        assert [(t.task_id, t.attempts, t.reasons) for t in unfinished] == [
            (2, 1, ["worker 4 disconnected"]),
            (3, 0, []),
        ]
        assert [o async for o in second.outcomes(1)] == [result(all_tasks[0])]
        assert await second.worker("w") == worker("w", 10.0)
        assert await second.next_ids() == (2, 4)
    finally:
        await second.close()


async def test_two_prefixes_do_not_see_each_other(redis_server: str) -> None:
    a = RedisStore(f"{redis_server}?prefix=apart-{time.time_ns()}-a:")
    b = RedisStore(f"{redis_server}?prefix=apart-{time.time_ns()}-b:")
    await a.open()
    await b.open()
    try:
        await a.add_job(job(1, client_key="c/1"), tasks(1, 1, 2))
        await a.record_workers([worker("w", 1.0)])
        await a.record_throughput([])
        await b.add_job(job(1, client_key="c/1"), tasks(1, 1, 1))  # the same ids: no clash
        assert [s.total for s in await a.jobs()] == [2]
        assert [s.total for s in await b.jobs()] == [1]
        assert await b.workers() == []
        await b.cancel_job(1, at=5.0)
        summary = await a.job(1)
        assert summary is not None and summary.state is JobState.RUNNING
    finally:
        await a.close()
        await b.close()


async def test_every_key_is_under_the_prefix_and_prune_leaves_no_job_behind(
    redis_server: str,
) -> None:
    db = redis_server.rsplit("/", 1)[0] + "/7"  # a database of this test's own
    raw = aioredis.Redis.from_url(db)
    await raw.flushdb()
    store = RedisStore(f"{db}?prefix=grid:")
    await store.open()
    try:
        await store.add_job(job(1, client_key="c/1"), tasks(1, 1, 3))
        await store.add_job(job(2), tasks(2, 4, 2))
        await store.record_attempt(1, "lost")
        await store.add_outcomes([result(t, at=10.0) for t in tasks(1, 1, 2)])
        await store.cancel_job(1, at=20.0)
        await store.add_outcomes([result(t, at=30.0) for t in tasks(2, 4, 2)])
        await store.record_workers([worker("w", 1.0)])
        await store.record_throughput([])
        keys = {key.decode() for key in await raw.keys("*")}
        assert keys and all(key.startswith("grid:") for key in keys)
        assert await store.prune(time.time()) == 2
        left = {key.decode() for key in await raw.keys("*")}
        assert left == {
            "grid:schema",
            "grid:ids:job",
            "grid:ids:task",
            "grid:workers",
            "grid:workers:seen",
        }  # every job's keys, tasks, outcomes and client key are gone
    finally:
        await store.close()
        await raw.flushdb()
        await raw.aclose()


async def test_a_thousand_outcomes_are_one_round_trip(store: RedisStore) -> None:
    all_tasks = tasks(1, 1, 1000)
    await store.add_job(job(1), all_tasks)
    before = store.pipelines
    assert await store.add_outcomes([result(t) for t in all_tasks]) == [True] * 1000
    assert store.pipelines == before + 1
    summary = await store.job(1)
    assert summary is not None and summary.state is JobState.FINISHED


async def test_concurrent_writes_share_pipelines_and_keep_their_order(
    store: RedisStore,
) -> None:
    all_tasks = tasks(1, 1, 100)
    before = store.pipelines
    writes = [asyncio.create_task(store.add_job(job(1), all_tasks))]
    writes += [asyncio.create_task(store.add_outcomes([result(t)])) for t in all_tasks]
    done = await asyncio.gather(*writes)
    assert done[1:] == [[True]] * 100  # the job was stored first: every outcome found its task
    assert store.pipelines - before <= 3  # not 101 round trips
    assert [o.task_id async for o in store.outcomes(1)] == list(range(1, 101))


async def test_ids_reserved_from_the_counters_are_never_handed_out_twice(
    redis_url: str,
) -> None:
    a, b = RedisStore(redis_url), RedisStore(redis_url)  # two coordinators, one grid
    await a.open()
    await b.open()
    try:
        await a.add_job(job(5), tasks(5, 10, 3))  # stored ids raise the counters
        assert await b.next_ids() == (6, 13)
        ranges = await asyncio.gather(*(store.reserve_ids(2, 100) for store in (a, b, a, b, a, b)))
        job_ids = [j for first, _ in ranges for j in range(first, first + 2)]
        task_ids = [t for _, first in ranges for t in range(first, first + 100)]
        assert sorted(job_ids) == list(range(6, 18))
        assert sorted(task_ids) == list(range(13, 613))
        assert await a.next_ids() == (18, 613)
        assert await a.reserve_ids(0, 0) == (18, 613)  # empty ranges
        with pytest.raises(ValueError):
            await a.reserve_ids(-1, 0)
    finally:
        await a.close()
        await b.close()


async def test_scripts_redis_forgot_are_loaded_again(
    store: RedisStore, raw: aioredis.Redis
) -> None:
    await store.add_job(job(1), tasks(1, 1, 2))
    await raw.script_flush()
    assert await store.add_outcomes([result(t) for t in tasks(1, 1, 1)]) == [True]  # a write
    await raw.script_flush()
    assert len(await store.jobs()) == 1  # a read


async def test_a_newer_key_layout_is_refused(redis_url: str, raw: aioredis.Redis) -> None:
    prefix = redis_url.split("prefix=")[1]
    await raw.set(prefix + "schema", 3)
    store = RedisStore(redis_url)
    with pytest.raises(StoreError, match="layout version 3"):
        await store.open()
    await raw.set(prefix + "schema", "not a number")
    with pytest.raises(StoreError, match="give another"):
        await store.open()


async def test_a_worker_stored_before_its_loss_record_reads_back_with_none_lost(
    store: RedisStore, redis_url: str, raw: aioredis.Redis
) -> None:
    """The worker hash holds each WorkerRecord as JSON: fields an older browsergrid did not
    write read back with their defaults, and the next write stores them."""
    prefix = redis_url.split("prefix=")[1]
    seen = worker("w", 10.0, valid=4, error_rate=0.2)
    stored = json.loads(_redis._encode(seen))
    del stored["lost"], stored["loss_rate"]
    await raw.hset(prefix + "workers", "w", json.dumps(stored))
    back = await store.worker("w")
    assert back == seen and back is not None and (back.lost, back.loss_rate) == (0, 0.0)
    assert await store.workers() == [seen]
    losing = worker("w", 20.0, valid=4, error_rate=0.2, lost=2, loss_rate=0.4375)
    await store.record_workers([losing])
    written = json.loads(await raw.hget(prefix + "workers", "w"))
    assert (written["lost"], written["loss_rate"]) == (2, 0.4375)
    assert await store.worker("w") == losing


async def test_layout_1_is_moved_to_2_with_its_queued_tasks_in_the_shared_queue(
    redis_url: str, raw: aioredis.Redis
) -> None:
    prefix = redis_url.split("prefix=")[1]
    store = RedisStore(redis_url)
    await store.open()
    await store.add_job(job(1), tasks(1, 1, 3))
    await store.add_outcomes([result(t) for t in tasks(1, 1, 1)])
    await store.close()
    # what layout 1 had: no queue streams, no priority field
    await raw.delete(prefix + "q:1:prime_count", prefix + "queue", prefix + "job:1:ops")
    await raw.hdel(prefix + "job:1", "priority")
    await raw.set(prefix + "schema", 1)
    await store.open()
    try:
        assert await raw.get(prefix + "schema") == b"2"
        entries = await raw.xrange(prefix + "q:1:prime_count")
        assert [fields[b"t"] for _, fields in entries] == [b"2", b"3"]
        assert await raw.zrange(prefix + "queue", 0, -1) == [b"1:prime_count"]
    finally:
        await store.close()


async def test_a_follower_sees_what_another_store_writes(redis_url: str) -> None:
    """The follow wait is on Redis, not in this process: a second coordinator's outcomes
    wake the first one's followers."""
    reader, writer = RedisStore(redis_url), RedisStore(redis_url)
    await reader.open()
    await writer.open()
    try:
        all_tasks = tasks(1, 1, 3)
        await writer.add_job(job(1), all_tasks)
        follower = asyncio.create_task(_collect(reader, 1))
        for task in all_tasks:
            await asyncio.sleep(0.05)
            assert not follower.done()
            await writer.add_outcomes([result(task)])
        assert await asyncio.wait_for(follower, 5) == [result(t) for t in all_tasks]
    finally:
        await reader.close()
        await writer.close()


@pytest.mark.redis
@pytest.mark.processes
async def test_store_errors_while_redis_is_down_and_back_when_it_returns(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    store = RedisStore(server.url)
    try:
        await store.open()
        all_tasks = tasks(1, 1, 3)
        await store.add_job(job(1), all_tasks)
        await store.add_outcomes([result(all_tasks[0])])
        follower = asyncio.create_task(_collect(store, 1))
        await asyncio.sleep(0.05)
        server.stop()
        with pytest.raises(StoreError) as caught:
            await store.add_outcomes([result(all_tasks[1])])
        assert str(caught.value).startswith(f"cannot reach Redis at {server.url}: ")
        with pytest.raises(StoreError, match="cannot reach Redis"):
            await store.job(1)
        with pytest.raises(StoreError, match="cannot reach Redis"):
            await asyncio.wait_for(follower, 5)
        server.start()  # the same port and append-only file: nothing written is lost
        assert await store.add_outcomes([result(all_tasks[1])]) == [True]
        summary = await store.job(1)
        assert summary is not None and summary.done == 2
        assert [o.task_id async for o in store.outcomes(1)] == [1, 2]
    finally:
        await store.close()
        server.stop()


async def test_keys_another_program_broke_are_a_store_error(
    store: RedisStore, redis_url: str, raw: aioredis.Redis
) -> None:
    prefix = redis_url.split("prefix=")[1]
    await raw.set(prefix + "clients", "not a hash")
    with pytest.raises(StoreError, match=r"Redis at .* failed: WRONGTYPE"):
        await store.job_for("c/1")  # a read
    with pytest.raises(StoreError, match=r"Redis at .* failed: .*WRONGTYPE"):
        await store.add_job(job(1, client_key="c/1"), [])  # a write script
    await store.add_job(job(2), tasks(2, 1, 1))  # the store goes on
    assert [s.info.job_id for s in await store.jobs()] == [2]


async def test_prune_works_through_a_big_job_in_several_scripts(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_redis, "_PRUNE_BATCH", 10)
    all_tasks = tasks(1, 1, 35)
    await store.add_job(job(1), all_tasks)
    await store.add_outcomes([result(t, at=5.0) for t in all_tasks[:20]])
    await store.cancel_job(1, at=6.0)  # 15 cancelled
    await store.record_throughput([ThroughputSample(at, 1, 0) for at in range(25)])
    before = store.pipelines
    assert await store.prune(100.0) == 1
    assert store.pipelines - before >= 4 + 3  # tasks: 20 outcomes + 15 cancelled; samples
    assert await store.job(1) is None
    assert await store.outcomes_of(range(1, 36)) == []
    assert await store.throughput(0.0) == []
    await store.add_job(job(2), tasks(2, 1, 1))  # task id 1 is free again


async def test_a_follower_cancelled_while_waiting_leaves_nothing_behind(
    store: RedisStore,
) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    follower = asyncio.create_task(_collect(store, 1))
    await asyncio.sleep(0.05)
    assert len(store._waits) == 1
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert store._waits == set()
    assert await store.add_outcomes([result(tasks(1, 1, 1)[0])]) == [True]


async def test_a_write_whose_caller_gave_up_is_still_applied(store: RedisStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    write = asyncio.create_task(store.add_outcomes([result(tasks(1, 1, 1)[0])]))
    await asyncio.sleep(0)  # queued
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    await store.record_attempt(99, "a write after it: applied after it")
    summary = await store.job(1)
    assert summary is not None and summary.done == 1


async def _collect(store: RedisStore, job_id: int) -> list[object]:
    return [outcome async for outcome in store.outcomes(job_id, follow=True)]


async def test_unfinished_reads_a_big_job_in_pages(store: RedisStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 2500))
    await store.record_attempt(7, "worker 2 disconnected")
    jobs, unfinished = await store.unfinished()
    assert [j.job_id for j in jobs] == [1]
    assert [t.task_id for t in unfinished] == list(range(1, 2501))
    assert unfinished[6].reasons == ["worker 2 disconnected"]
