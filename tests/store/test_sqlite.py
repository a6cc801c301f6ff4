"""What only ``SqliteStore`` promises: durability, group commit, errors of the disk, schema
versions. The shared promises are in ``test_contract.py``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest

from browsergrid.protocol import Replica, ResultRecord
from browsergrid.store import (
    JobInfo,
    JobState,
    SqliteStore,
    StoreError,
    TaskRecord,
    ThroughputSample,
    WorkerRecord,
    _sqlite,
)
from tests.store._support import job, result, tasks, worker


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "grid.db")
    await opened.open()
    yield opened
    await opened.close()


async def pragma(store: SqliteStore, name: str) -> Any:
    """A PRAGMA's value on the writer connection (through the test hook)."""
    return await store._write(lambda c, _: c.execute(f"PRAGMA {name}").fetchone()[0])


async def reopened(path: Path) -> SqliteStore:
    again = SqliteStore(path)
    await again.open()
    return again


class Gate:
    """Holds the writer thread until released, so that the writes queued meanwhile run in
    the next batch, together (``gate = await Gate.shut(store)``)."""

    def __init__(self, store: SqliteStore) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.blocker = asyncio.ensure_future(store._write(self._hold))

    def _hold(self, connection: sqlite3.Connection, touched: set[int]) -> None:
        self.entered.set()
        self.released.wait(10)

    @classmethod
    async def shut(cls, store: SqliteStore) -> Gate:
        gate = cls(store)
        assert await asyncio.to_thread(gate.entered.wait, 5)
        return gate

    async def release(self) -> None:
        await asyncio.sleep(0.01)  # the writes queued before are all in the queue
        self.released.set()
        await self.blocker


LATEST = _sqlite.SCHEMA_VERSION
"""The schema version this code creates and migrates to."""


def read_schema_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        version = int(row.fetchone()[0])
    connection.close()
    return version


# --- durability --------------------------------------------------------------------------


async def test_everything_survives_close_and_reopen(store: SqliteStore) -> None:
    first = tasks(1, 1, 3)
    await store.add_job(job(1, client_key="c/1", lease_timeout=9.5, max_attempts=4), first)
    await store.add_outcomes([result(first[0])])
    await store.record_attempt(2, "lost")
    await store.record_workers([worker("w", 5.0)])
    await store.record_throughput([ThroughputSample(100, 1, 0), ThroughputSample(101, 0, 1)])
    before = (
        await store.job(1),
        await store.unfinished(),
        await store.workers(),
        await store.throughput(0.0),
    )
    await store.close()
    again = await reopened(store.path)
    try:
        after = (
            await again.job(1),
            await again.unfinished(),
            await again.workers(),
            await again.throughput(0.0),
        )
        assert after == before
        assert [o async for o in again.outcomes(1)] == [result(first[0])]
        assert await again.add_outcomes([result(first[1])]) == [True]
    finally:
        await again.close()


async def test_pragmas(tmp_path: Path, store: SqliteStore) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 1  # NORMAL
    assert await pragma(store, "foreign_keys") == 1
    full = SqliteStore(tmp_path / "full.db", synchronous="full")
    await full.open()
    try:
        assert await pragma(full, "synchronous") == 2  # FULL
    finally:
        await full.close()
    assert read_schema_version(store.path) == len(_sqlite.MIGRATIONS) == LATEST == 5


def test_synchronous_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="off")  # type: ignore[arg-type]


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from browsergrid.protocol import ResultRecord
    from browsergrid.store import JobInfo, SqliteStore, TaskRecord

    async def main():
        store = SqliteStore(Path(sys.argv[1]))
        await store.open()
        tasks = [TaskRecord(i, 1, i - 1, "op", {"i": i}) for i in range(1, 501)]
        await store.add_job(JobInfo(1, "killed", "op", 0, 1.0, "test"), tasks)
        await asyncio.gather(*(
            store.add_outcomes([ResultRecord(i, 1, i - 1, i * i, 1, 1, 1.0)])
            for i in range(1, 251)
        ))
        print("stored", flush=True)
        time.sleep(600)

    asyncio.run(main())
    """
)


@pytest.mark.processes
def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    command = [sys.executable, "-c", _KILLED_WRITER, str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "stored"
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert (tmp_path / "grid.db-wal").stat().st_size > 0  # the commits are in the WAL

    async def check() -> None:
        store = await reopened(path)
        try:
            summary = await store.job(1)
            assert summary is not None
            assert (summary.total, summary.done, summary.state) == (500, 250, JobState.RUNNING)
            outcomes = [o async for o in store.outcomes(1)]
            assert sorted(o.task_id for o in outcomes) == list(range(1, 251))
        finally:
            await store.close()

    asyncio.run(check())


async def test_close_drains_queued_writes(store: SqliteStore) -> None:
    all_tasks = tasks(1, 1, 300)
    await store.add_job(job(1), all_tasks)
    writes = [asyncio.ensure_future(store.add_outcomes([result(t)])) for t in all_tasks]
    await asyncio.sleep(0)  # every write is queued
    await store.close()
    assert [await w for w in writes] == [[True]] * 300
    again = await reopened(store.path)
    try:
        summary = await again.job(1)
        assert summary is not None and summary.state is JobState.FINISHED
    finally:
        await again.close()


# --- group commit ------------------------------------------------------------------------


async def test_concurrent_writes_share_commits(store: SqliteStore) -> None:
    all_tasks = tasks(1, 1, 1000)
    await store.add_job(job(1), all_tasks)
    before = store.commits
    recorded = await asyncio.gather(*(store.add_outcomes([result(t)]) for t in all_tasks))
    assert recorded == [[True]] * 1000
    commits = store.commits - before
    assert 1 <= commits <= 50, commits
    summary = await store.job(1)
    assert summary is not None and summary.done == 1000


async def test_a_failing_write_leaves_its_batch_alone(store: SqliteStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 2))
    before = store.commits
    gate = await Gate.shut(store)
    ok = asyncio.ensure_future(store.add_job(job(2), tasks(2, 3, 1)))
    duplicate = asyncio.ensure_future(store.add_job(job(1), []))
    unknown = asyncio.ensure_future(store.add_tasks(tasks(9, 10, 1)))
    recorded = asyncio.ensure_future(store.add_outcomes([result(tasks(1, 1, 1)[0])]))
    await gate.release()
    await ok
    with pytest.raises(ValueError, match="UNIQUE"):
        await duplicate
    with pytest.raises(ValueError, match="job 9 does not exist"):
        await unknown
    assert await recorded == [True]
    assert store.commits - before == 2  # the gate's batch, then all four together
    assert [s.info.job_id for s in await store.jobs()] == [2, 1]


async def test_cancelled_caller_does_not_break_the_writer(store: SqliteStore) -> None:
    gate = await Gate.shut(store)
    write = asyncio.ensure_future(store.add_job(job(1), []))
    await asyncio.sleep(0)
    write.cancel()
    await gate.release()
    await store.add_job(job(2), [])
    assert [s.info.job_id for s in await store.jobs()] == [2, 1]  # a cancelled call may land


# --- errors of the disk ------------------------------------------------------------------


async def test_disk_full_refuses_the_write_then_recovers(store: SqliteStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 1))
    pages = await pragma(store, "page_count")
    await pragma(store, f"max_page_count = {pages}")
    big = tasks(2, 100, 2000)
    gate = await Gate.shut(store)
    refused = asyncio.ensure_future(store.add_job(job(2, name="x" * 5000), big))
    small = asyncio.ensure_future(store.record_attempt(1, "lost"))
    await gate.release()
    with pytest.raises(StoreError) as caught:
        await refused
    assert str(store.path) in str(caught.value)
    assert "full" in str(caught.value)
    await small
    assert await store.job(2) is None
    assert (await store.unfinished())[1][0].reasons == ["lost"]
    await pragma(store, "max_page_count = 1000000")
    await store.add_job(job(2, name="x" * 5000), big)
    summary = await store.job(2)
    assert summary is not None and summary.total == 2000


async def test_read_only_refuses_writes_then_recovers(store: SqliteStore) -> None:
    await store._write(lambda c, _: c.execute("PRAGMA query_only = ON"))
    with pytest.raises(StoreError, match="readonly"):
        await store.add_job(job(1), [])
    assert store._connection is not None
    store._connection.execute("PRAGMA query_only = OFF")  # the writer thread is idle
    await store.add_job(job(1), [])
    assert await store.job(1) is not None


async def test_locked_by_another_process_then_recovers(store: SqliteStore) -> None:
    await pragma(store, "busy_timeout = 0")
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await store.add_job(job(1), [])
        other.execute("ROLLBACK")
    finally:
        other.close()
    await store.add_job(job(1), [])
    assert await store.job(1) is not None


async def test_transaction_lost_midway_redoes_the_others(store: SqliteStore) -> None:
    def lose_the_transaction(connection: sqlite3.Connection, _: set[int]) -> None:
        connection.execute("ROLLBACK")  # as SQLite does on some errors
        raise sqlite3.OperationalError("disk I/O error")

    gate = await Gate.shut(store)
    first = asyncio.ensure_future(store.add_job(job(1), tasks(1, 1, 1)))
    lost = asyncio.ensure_future(store._write(lose_the_transaction))
    last = asyncio.ensure_future(store.add_job(job(2), []))
    await gate.release()
    await first
    with pytest.raises(StoreError, match="disk I/O error"):
        await lost
    await last
    assert [s.info.job_id for s in await store.jobs()] == [2, 1]


async def test_savepoint_that_cannot_be_undone_redoes_the_others(store: SqliteStore) -> None:
    def break_the_savepoint(connection: sqlite3.Connection, _: set[int]) -> None:
        connection.execute(
            "INSERT INTO workers (worker_key, agent, first_seen, last_seen, tasks_done, "
            "failures, compute_ms) VALUES ('half', NULL, 1, 1, 0, 0, 0)"
        )
        connection.execute("RELEASE item")
        raise sqlite3.OperationalError("something went wrong")

    gate = await Gate.shut(store)
    first = asyncio.ensure_future(store.add_job(job(1), []))
    broken = asyncio.ensure_future(store._write(break_the_savepoint))
    await gate.release()
    await first
    with pytest.raises(StoreError, match="something went wrong"):
        await broken
    assert await store.job(1) is not None
    assert await store.worker("half") is None  # the broken write left nothing


async def test_failed_commit_fails_the_whole_batch(store: SqliteStore) -> None:
    def orphan(connection: sqlite3.Connection, _: set[int]) -> None:
        connection.execute("PRAGMA defer_foreign_keys = ON")
        connection.execute(
            "INSERT INTO tasks (task_id, job_id, idx, op, args) VALUES (99, 12345, 0, 'x', '{}')"
        )  # the foreign key is checked at COMMIT, which fails

    gate = await Gate.shut(store)
    bad = asyncio.ensure_future(store._write(orphan))
    innocent = asyncio.ensure_future(store.add_job(job(1), []))
    await gate.release()
    for write in (bad, innocent):
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            await write
    assert await store.job(1) is None
    await store.add_job(job(1), [])
    assert await store.job(1) is not None


async def test_a_result_that_is_not_json_fails_in_the_caller(store: SqliteStore) -> None:
    [task] = tasks(1, 1, 1)
    await store.add_job(job(1), [task])
    with pytest.raises(TypeError):
        await store.add_outcomes([result(task, object())])
    assert await store.add_outcomes([result(task)]) == [True]


async def test_a_bug_in_a_write_made_on_the_event_loop_is_loud_and_final(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await store.add_job(job(1), [])

    def bug(connection: sqlite3.Connection, batch: list[Any]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "_commit_batch", bug)
    await asyncio.sleep(0)  # a new pass of the loop: the next write is a lone one
    with pytest.raises(StoreError, match="restart the coordinator"):
        await store.add_job(job(2), [])
    with pytest.raises(StoreError, match="restart the coordinator"):
        await store.add_job(job(3), [])
    assert [s.info.job_id for s in await store.jobs()] == [1]
    assert "a write to" in caplog.text


async def test_a_lone_write_is_committed_on_the_event_loop_and_a_burst_by_the_writer(
    store: SqliteStore,
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def where(connection: sqlite3.Connection, touched: set[int]) -> None:
        threads.append(threading.get_ident())

    await store._write(where, small=True)
    await asyncio.sleep(0)
    await asyncio.gather(*(store._write(where, small=True) for _ in range(5)))
    assert threads[0] == threads[1] == loop_thread  # the lone write, and the burst's first
    assert all(t != loop_thread for t in threads[2:])
    await asyncio.sleep(0)
    await store._write(where)  # not small: always the writer thread's
    assert threads[-1] != loop_thread


async def test_writes_keep_their_order_when_some_are_made_on_the_event_loop(
    store: SqliteStore,
) -> None:
    await store.add_job(job(1), [])
    order: list[int] = []

    def note(n: int) -> Any:
        return lambda connection, touched: order.append(n)

    gate = await Gate.shut(store)
    queued = [asyncio.ensure_future(store._write(note(n), small=True)) for n in range(3)]
    await asyncio.sleep(0.01)
    # the writer is busy: this one queues too
    late = asyncio.ensure_future(store._write(note(3), small=True))
    await asyncio.sleep(0)
    await gate.release()
    await asyncio.gather(*queued, late)
    await asyncio.sleep(0)
    await store._write(note(4), small=True)  # nothing waits: on the event loop, after the others
    assert order == [0, 1, 2, 3, 4]


async def test_the_wal_is_checkpointed_by_the_writer_thread(store: SqliteStore) -> None:
    await store.add_job(job(1), tasks(1, 1, 1000))
    for t in tasks(1, 1, 1000):
        await store.add_outcomes([result(t)])
        await asyncio.sleep(0)  # each a lone write, made on the event loop
    with sqlite3.connect(store.path) as other:
        _, frames, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    other.close()
    assert 0 < frames < 3000  # reused after each checkpoint (about 6 frames a write here)


async def test_writer_thread_failure_is_loud_and_final(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await store.add_job(job(1), [])
    entered, go = threading.Event(), threading.Event()

    def bug(connection: sqlite3.Connection, batch: list[Any]) -> None:
        entered.set()
        go.wait(5)
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "_commit_batch", bug)
    monkeypatch.setattr(store, "_inline_writes", False)  # every write to the writer thread
    running = asyncio.ensure_future(store.add_job(job(2), []))
    assert await asyncio.to_thread(entered.wait, 5)
    queued = asyncio.ensure_future(store.add_job(job(3), []))
    await asyncio.sleep(0.01)  # in the queue behind the batch that hits the bug
    go.set()
    for write in (running, queued):
        with pytest.raises(StoreError, match="writer thread stopped"):
            await write
    with pytest.raises(StoreError, match="restart the coordinator"):
        await store.add_job(job(4), [])
    assert [s.info.job_id for s in await store.jobs()] == [1]  # reads go on
    assert "writer thread" in caplog.text


async def test_read_errors_are_store_errors(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="cannot read"):
        await store._read(lambda c: c.execute("SELECT * FROM nope"))
    assert await store.jobs() == []  # the reading connection goes on


async def test_delivery_to_a_closed_loop_is_dropped(store: SqliteStore) -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    future = asyncio.get_running_loop().create_future()
    loop, store._loop = store._loop, closed
    try:
        store._deliver([_sqlite._Write(lambda c, t: None, future)])
    finally:
        store._loop = loop
    assert not future.done()


# --- opening -----------------------------------------------------------------------------


async def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    with pytest.raises(StoreError, match="not a database") as caught:
        await SqliteStore(path).open()
    assert str(path) in str(caught.value)
    assert path.read_bytes().startswith(b"these are not")


async def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    connection.close()
    with pytest.raises(StoreError, match=r"not browsergrid's.*invoices"):
        await SqliteStore(path).open()


async def test_meta_without_a_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)")
    connection.close()
    with pytest.raises(StoreError, match="no schema_version"):
        await SqliteStore(path).open()


async def test_newer_schema_is_refused(store: SqliteStore) -> None:
    await store._write(
        lambda c, _: c.execute("UPDATE meta SET value = 7 WHERE key = 'schema_version'")
    )
    await store.close()
    with pytest.raises(StoreError) as caught:
        await SqliteStore(store.path).open()
    message = str(caught.value)
    assert "schema version 7" in message and f"version {LATEST} at most" in message
    assert str(store.path) in message


async def test_empty_file_is_version_0_and_gets_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    path.touch()
    store = await reopened(path)
    await store.close()
    assert read_schema_version(path) == LATEST


class OldData(NamedTuple):
    """What ``old_database`` stored."""

    job: JobInfo
    tasks: list[TaskRecord]
    result: ResultRecord
    worker: WorkerRecord


def old_database(path: Path, version: int) -> OldData:
    """A database at schema ``version`` as that browsergrid left it (the code of today cannot
    write one: its statements name the columns of today): job 1 with client key "c/1" and
    tasks 1 and 2, a result for task 1, and worker "w"."""
    data = OldData(
        job(1, client_key="c/1", lease_timeout=9.5, max_attempts=4),
        tasks(1, 1, 2),
        result(tasks(1, 1, 1)[0]),
        worker("w", 3.0),
    )
    info, (first, second), done, seen = data
    scripts = "\n;".join(_sqlite.MIGRATIONS[:version])
    with sqlite3.connect(path) as connection:
        connection.executescript(
            f"{scripts}\n;INSERT INTO meta (key, value) VALUES ('schema_version', {version});"
        )
        connection.execute(
            "INSERT INTO jobs (job_id, name, op, priority, created_at, submitted_by, "
            "lease_timeout, max_attempts, client_key, total, done) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 2, 1)",
            (
                info.job_id,
                info.name,
                info.op,
                info.priority,
                info.created_at,
                info.submitted_by,
                info.lease_timeout,
                info.max_attempts,
                info.client_key,
            ),
        )
        connection.executemany(
            "INSERT INTO tasks (task_id, job_id, idx, op, args) VALUES (?, ?, ?, ?, ?)",
            [(t.task_id, t.job_id, t.index, t.op, msgspec.json.encode(t.args)) for t in data.tasks],
        )
        connection.execute(
            "UPDATE tasks SET state = 'done', outcome_seq = 1, result = ?, worker_id = ?, "
            "worker_key = ?, attempts = ?, duration_ms = ?, lease_ms = ?, finished_at = ? "
            "WHERE task_id = ?",
            (
                msgspec.json.encode(done.result).decode(),
                done.worker_id,
                done.worker_key,
                done.attempts,
                done.duration_ms,
                done.lease_ms,
                done.finished_at,
                first.task_id,
            ),
        )
        connection.execute(
            "UPDATE meta SET value = CASE key WHEN 'last_task_id' THEN ? ELSE 1 END "
            "WHERE key IN ('last_job_id', 'last_task_id', 'last_outcome_seq')",
            (second.task_id,),
        )
        connection.execute(
            "INSERT INTO workers (worker_key, agent, first_seen, last_seen, tasks_done, "
            "failures, compute_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                seen.worker_key,
                seen.agent,
                seen.first_seen,
                seen.last_seen,
                seen.tasks_done,
                seen.failures,
                seen.compute_ms,
            ),
        )
    connection.close()
    assert read_schema_version(path) == version
    return data


async def test_version_1_database_gets_the_throughput_table(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    old = old_database(path, 1)
    again = await reopened(path)
    try:
        assert read_schema_version(path) == LATEST
        assert await again.throughput(0.0) == []
        await again.record_throughput([ThroughputSample(100, 2, 1)])
        assert await again.throughput(0.0) == [ThroughputSample(100, 2, 1)]
        assert await again.job_for("c/1") == 1
        assert await again.worker("w") == old.worker
        assert [o async for o in again.outcomes(1)] == [old.result]
        assert [t.task_id for t in (await again.unfinished())[1]] == [2]
    finally:
        await again.close()


async def test_version_2_database_gets_the_validation_columns(tmp_path: Path) -> None:
    path = tmp_path / "grid.db"
    old = old_database(path, 2)
    again = await reopened(path)
    try:
        assert read_schema_version(path) == LATEST
        summary = await again.job(1)
        assert summary is not None
        info = summary.info
        assert info == old.job and (await again.jobs())[0] == summary
        assert (info.redundancy, info.max_replicas, info.adaptive) == (1, None, False)
        assert info.adaptive is False
        jobs, unfinished = await again.unfinished()
        assert (jobs, unfinished) == ([old.job], old.tasks[1:])
        assert (summary.total, summary.done, summary.state) == (2, 1, JobState.RUNNING)
        outcomes = [o async for o in again.outcomes(1)]
        assert outcomes == await again.outcomes_of([1]) == [old.result]
        assert isinstance(outcomes[0], ResultRecord)
        assert (outcomes[0].verdict, outcomes[0].replicas) == (None, [])
        seen = await again.worker("w")
        assert seen == old.worker and await again.workers() == [old.worker]
        assert seen is not None
        standing = (seen.valid, seen.invalid, seen.consecutive_valid, seen.error_rate)
        assert standing == (0, 0, 0, 0.1) and seen.quarantined is False
        assert await again.next_ids() == (2, 3)

        # the new columns take new values next to the old rows
        checked = msgspec.structs.replace(
            result(old.tasks[1], at=1_700_000_200.0),
            verdict="quorum",
            replicas=[
                Replica(worker_id=7, worker_key="wk-1", agreed=True, duration_ms=12.5),
                Replica(worker_id=9, worker_key=None, agreed=False, duration_ms=9.0, result=0),
            ],
        )
        assert await again.add_outcomes([checked]) == [True]
        assert [o async for o in again.outcomes(1)] == [old.result, checked]
        judged = msgspec.structs.replace(old.worker, valid=1, error_rate=0.09, quarantined=True)
        await again.record_workers([judged])
        assert await again.worker("w") == judged
        await again.add_job(job(2, redundancy=3, max_replicas=5, adaptive=True), [])
        assert [s.info for s in await again.jobs()] == [
            job(2, redundancy=3, max_replicas=5, adaptive=True),
            old.job,
        ]
    finally:
        await again.close()


async def test_version_3_database_gets_the_loss_record(tmp_path: Path) -> None:
    """A worker stored before losses were kept reads back with its standing and a clean
    loss record; its finished tasks were always ``tasks_done``."""
    path = tmp_path / "grid.db"
    old = old_database(path, 3)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "UPDATE workers SET valid = 4, invalid = 1, consecutive_valid = 2, "
            "error_rate = 0.2, quarantined = 1 WHERE worker_key = 'w'"
        )
    judged = msgspec.structs.replace(
        old.worker, valid=4, invalid=1, consecutive_valid=2, error_rate=0.2, quarantined=True
    )
    again = await reopened(path)
    try:
        assert read_schema_version(path) == LATEST
        seen = await again.worker("w")
        assert seen == judged and await again.workers() == [judged]
        assert seen is not None
        assert (seen.lost, seen.loss_rate, seen.tasks_done) == (0, 0.0, old.worker.tasks_done)
        assert type(seen.loss_rate) is float
        losing = msgspec.structs.replace(judged, lost=3, loss_rate=0.578125)
        await again.record_workers([losing])
        assert await again.worker("w") == losing
    finally:
        await again.close()
    last = await reopened(path)
    try:
        assert await last.worker("w") == losing
    finally:
        await last.close()


async def test_version_4_database_gets_the_job_tasks_done(tmp_path: Path) -> None:
    """A worker stored before job tasks were counted apart from welcome tasks reads back
    with none: its next finished job task makes it reliable again."""
    path = tmp_path / "grid.db"
    old = old_database(path, 4)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE workers SET lost = 2, loss_rate = 0.4375 WHERE worker_key = 'w'")
    losing = msgspec.structs.replace(old.worker, lost=2, loss_rate=0.4375)
    again = await reopened(path)
    try:
        assert read_schema_version(path) == LATEST
        seen = await again.worker("w")
        assert seen == losing and seen is not None and seen.job_tasks_done == 0
        worked = msgspec.structs.replace(losing, tasks_done=9, job_tasks_done=7)
        await again.record_workers([worked])
        assert await again.worker("w") == worked
    finally:
        await again.close()


_NEXT = """
ALTER TABLE workers ADD COLUMN region TEXT;
UPDATE workers SET region = 'eu';
CREATE INDEX jobs_by_name ON jobs (name);
"""


async def test_older_schema_is_migrated_with_its_data(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tasks(1, 1, 2)
    await store.add_job(job(1), first)
    await store.add_outcomes([result(first[0])])
    await store.record_workers([worker("w", 3.0)])
    await store.close()
    monkeypatch.setattr(_sqlite, "MIGRATIONS", [*_sqlite.MIGRATIONS, _NEXT])
    again = await reopened(store.path)
    try:
        region = await again._read(lambda c: c.execute("SELECT region FROM workers").fetchone())
        assert region == ("eu",)
        assert await again.worker("w") == worker("w", 3.0)
        assert [o async for o in again.outcomes(1)] == [result(first[0])]
        assert [t.task_id for t in (await again.unfinished())[1]] == [2]
    finally:
        await again.close()
    assert read_schema_version(store.path) == LATEST + 1


async def test_failed_migration_leaves_the_version(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.add_job(job(1), [])
    await store.close()
    monkeypatch.setattr(_sqlite, "MIGRATIONS", [*_sqlite.MIGRATIONS, "CREATE TABLE jobs (x);"])
    stays = rf"cannot migrate .* to schema version {LATEST + 1} .*stays at {LATEST}"
    with pytest.raises(StoreError, match=stays):
        await SqliteStore(store.path).open()
    assert read_schema_version(store.path) == LATEST
    monkeypatch.undo()
    again = await reopened(store.path)
    try:
        assert await again.job(1) is not None
    finally:
        await again.close()


def migrated_from_0(path: Path, version: int) -> None:
    """A file taken from empty to ``version`` the long way: ``MIGRATIONS`` one by one, each
    in its own transaction with its schema_version, as the store migrates an old file."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        for target, script in enumerate(_sqlite.MIGRATIONS[:version], 1):
            connection.executescript(
                f"BEGIN;\n{script}\n;INSERT OR REPLACE INTO meta (key, value) "
                f"VALUES ('schema_version', {target});\nCOMMIT;"
            )


def normalised(sql: str | None) -> str | None:
    """``sql`` without comments and layout: ALTER TABLE appends ", column" to a table's text
    after the last line (and its comment) of the CREATE TABLE it began with."""
    if sql is None:  # an index SQLite made for a UNIQUE or PRIMARY KEY constraint
        return None
    sql = re.sub(r"--[^\n]*", "", sql)
    sql = re.sub(r"\s+", " ", sql)
    return re.sub(r" ?([(),]) ?", r"\1", sql).strip()


def schema_of(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What a file's schema is, to compare: its ``sqlite_master`` (type, name, table, sql),
    and its ``meta`` rows."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        master = sorted(
            (kind, name, table, normalised(sql))
            for kind, name, table, sql in connection.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
            )
        )
        meta = connection.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    return master, meta


def store_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The store's messages at INFO and above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "browsergrid.store" and r.levelno >= logging.INFO
    ]


async def test_new_file_is_created_at_the_current_version_in_one_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="browsergrid.store")
    path = tmp_path / "grid.db"
    store = await reopened(path)
    await store.close()
    assert read_schema_version(path) == len(_sqlite.MIGRATIONS) == LATEST
    assert store_log(caplog) == [f"{path}: created at schema version {LATEST}"]
    assert "migrated" not in caplog.text
    caplog.clear()
    again = await reopened(path)  # an up-to-date file: nothing to say
    await again.close()
    assert store_log(caplog) == []


async def test_new_schema_is_the_one_the_migrations_reach(tmp_path: Path) -> None:
    """If this fails, ``SCHEMA`` and ``MIGRATIONS`` disagree: a migration was appended without
    updating ``SCHEMA`` and ``SCHEMA_VERSION``, or the other way round (see ``SCHEMA``)."""
    assert len(_sqlite.MIGRATIONS) == _sqlite.SCHEMA_VERSION, (
        "append a migration AND update SCHEMA and SCHEMA_VERSION"
    )
    created = await reopened(tmp_path / "created.db")
    await created.close()
    migrated_from_0(tmp_path / "migrated.db", len(_sqlite.MIGRATIONS))
    master, meta = schema_of(created.path)
    reached_master, reached_meta = schema_of(tmp_path / "migrated.db")
    assert master == reached_master  # a difference shows the table or index that differs
    assert meta == reached_meta


@pytest.mark.parametrize("version", range(1, LATEST))
async def test_old_database_is_migrated_a_step_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    path = tmp_path / "grid.db"
    old = old_database(path, version)
    caplog.set_level(logging.INFO, logger="browsergrid.store")
    again = await reopened(path)
    try:
        summary = await again.job(1)
        assert summary is not None and summary.info == old.job
        assert await again.worker("w") == old.worker
        assert [o async for o in again.outcomes(1)] == [old.result]
        assert [t.task_id for t in (await again.unfinished())[1]] == [2]
    finally:
        await again.close()
    assert store_log(caplog) == [
        f"{path}: schema migrated to version {target}" for target in range(version + 1, LATEST + 1)
    ]
    migrated_from_0(tmp_path / "reference.db", LATEST)
    assert schema_of(path)[0] == schema_of(tmp_path / "reference.db")[0]  # meta: ids differ


async def test_new_file_behind_the_migrations_gets_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SCHEMA left behind a newer migration (the test above fails then): a new file still
    # ends at the newest version.
    monkeypatch.setattr(_sqlite, "MIGRATIONS", [*_sqlite.MIGRATIONS, _NEXT])
    caplog.set_level(logging.INFO, logger="browsergrid.store")
    path = tmp_path / "grid.db"
    store = await reopened(path)
    await store.close()
    assert read_schema_version(path) == LATEST + 1
    assert store_log(caplog) == [
        f"{path}: created at schema version {LATEST}",
        f"{path}: schema migrated to version {LATEST + 1}",
    ]


async def test_failed_creation_leaves_the_file_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grid.db"
    monkeypatch.setattr(_sqlite, "SCHEMA", _sqlite.SCHEMA + "\n;CREATE TABLE jobs (x);")
    with pytest.raises(StoreError) as caught:
        await SqliteStore(path).open()
    message = str(caught.value)
    assert message.startswith(
        f"cannot create {path} at schema version {LATEST} (nothing was written"
    )
    assert "table jobs already exists" in message
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    monkeypatch.undo()
    again = await reopened(path)
    await again.close()
    assert read_schema_version(path) == LATEST


async def test_missing_directories_are_created(tmp_path: Path) -> None:
    store = await reopened(tmp_path / "a" / "b" / "grid.db")
    await store.close()
    assert store.path.exists()


async def test_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open .*unable to open"):
        await SqliteStore(tmp_path).open()


async def test_unusable_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the directory"):
        await SqliteStore(tmp_path / "file" / "grid.db").open()


# --- paging and pruning ------------------------------------------------------------------


async def test_outcomes_are_read_a_page_at_a_time(store: SqliteStore) -> None:
    store._page_size = 10
    all_tasks = tasks(1, 1, 40)
    await store.add_job(job(1), all_tasks)
    await store.add_outcomes([result(t) for t in all_tasks[:25]])
    seen = []
    async for outcome in store.outcomes(1):
        if not seen:  # recorded after the first page was read: later pages have them
            await store.add_outcomes([result(t) for t in all_tasks[25:30]])
        seen.append(outcome.task_id)
    assert seen == list(range(1, 31))


async def test_prune_works_in_batches(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite, "_PRUNE_BATCH", 4)
    monkeypatch.setattr(_sqlite, "_PRUNE_JOBS", 2)
    for job_id in range(1, 6):
        job_tasks = tasks(job_id, job_id * 100, 4 if job_id == 1 else job_id)
        await store.add_job(job(job_id), job_tasks)
        await store.add_outcomes([result(t, at=10.0) for t in job_tasks])
    await store.add_job(job(6), tasks(6, 600, 1))
    await store.record_throughput([ThroughputSample(at, 1, 0) for at in [*range(1, 10), 20]])
    before = store.commits
    assert await store.prune(11.0) == 5
    assert store.commits - before >= 5 + 3  # 9 old samples, 4 at a time
    assert [s.info.job_id for s in await store.jobs()] == [6]
    remaining = await store._read(lambda c: c.execute("SELECT count(*) FROM tasks").fetchone())
    assert remaining == (1,)
    assert await store.throughput(0.0) == [ThroughputSample(20, 1, 0)]


@pytest.mark.parametrize(
    ("sql", "parameters", "index"),
    [
        (_sqlite._UNFINISHED_TASKS, (), "tasks_job_state"),
        (_sqlite._OUTCOME_PAGE, (1, 0, 10), "tasks_outcomes"),
        (_sqlite._PRUNE_CANDIDATES, (5.0, 10), "jobs_ended"),
        (_sqlite._THROUGHPUT_SINCE, (5.0,), "INTEGER PRIMARY KEY"),
        (_sqlite._PRUNE_THROUGHPUT, (5.0, 10), "INTEGER PRIMARY KEY"),
    ],
)
async def test_queries_use_indexes(
    store: SqliteStore, sql: str, parameters: tuple[Any, ...], index: str
) -> None:
    rows = await store._read(
        lambda c: c.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    )
    details = " / ".join(row[3] for row in rows)
    assert "SCAN" not in details.replace("SCAN j USING INDEX jobs_running", "")
    assert index in details
