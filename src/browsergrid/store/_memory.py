"""``MemoryStore``: the store interface in memory, for tests and ``serve --memory``.

It keeps the same promises as ``SqliteStore`` (the contract suite runs against both) except
one: nothing survives the process. ``close()`` then ``open()`` on the same instance keeps
everything, which is how the contract suite checks what a restart must bring back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from browsergrid.protocol import FailureRecord, ResultRecord
from browsergrid.store._base import (
    JobInfo,
    JobState,
    JobSummary,
    Outcome,
    StoreError,
    TaskRecord,
    ThroughputSample,
    WorkerRecord,
)

_QUEUED = "queued"
_encode = msgspec.json.Encoder().encode
_decode_args = msgspec.json.Decoder(dict[str, Any]).decode
_decode_result = msgspec.json.Decoder(ResultRecord).decode
_decode_failure = msgspec.json.Decoder(FailureRecord).decode


@dataclass(slots=True)
class _Job:
    info: JobInfo
    state: JobState = JobState.RUNNING
    finished_at: float | None = None
    task_ids: list[int] = field(default_factory=list)
    outcomes: list[_Task] = field(default_factory=list)  # its ended tasks, in the order recorded
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    def summary(self) -> JobSummary:
        return JobSummary(
            info=self.info,
            state=self.state,
            total=len(self.task_ids),
            done=self.done,
            failed=self.failed,
            cancelled=self.cancelled,
            finished_at=self.finished_at,
        )


class _Task(msgspec.Struct, gc=False):
    """A stored task. Its arguments and its outcome are JSON copies, as SqliteStore keeps
    them: no caller can change them afterwards. Nothing in it can reach back to it, so the
    garbage collector need not track it: a store of a million tasks adds nothing to the
    collector's full passes (an object per task, and two more per outcome, would)."""

    job_id: int
    index: int
    op: str
    args: bytes  # JSON
    attempts: int = 0
    reasons: tuple[str, ...] = ()
    state: str = _QUEUED  # queued, done, failed or cancelled (as SqliteStore stores it)
    outcome: bytes | None = None  # JSON: a ResultRecord (done) or a FailureRecord (failed)

    def ended(self) -> Outcome:
        assert self.outcome is not None
        if self.state == "done":
            return _decode_result(self.outcome)
        return _decode_failure(self.outcome)

    def record(self, task_id: int) -> TaskRecord:
        return TaskRecord(
            task_id=task_id,
            job_id=self.job_id,
            index=self.index,
            op=self.op,
            args=_decode_args(self.args),
            attempts=self.attempts,
            reasons=list(self.reasons),
        )


class MemoryStore:
    """``Store`` in memory; nothing survives the process.

    Writes take effect when the call is made (before its first ``await``), so calls made
    one after the other are applied in that order, as in ``SqliteStore``.
    """

    def __init__(self) -> None:
        self._open = False
        self._jobs: dict[int, _Job] = {}
        self._tasks: dict[int, _Task] = {}
        self._client_keys: dict[str, int] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._throughput: dict[int, tuple[int, int]] = {}  # second -> (done, failed)
        self._last_job_id = 0
        self._last_task_id = 0
        self._followers: dict[int, set[asyncio.Event]] = {}

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        for events in self._followers.values():
            for event in events:
                event.set()

    def _check(self) -> None:
        if not self._open:
            raise StoreError("the memory store is not open")

    async def add_job(self, job: JobInfo, tasks: Sequence[TaskRecord]) -> None:
        self._check()
        if job.job_id in self._jobs:
            raise ValueError(f"job {job.job_id} exists already")
        if job.client_key is not None and job.client_key in self._client_keys:
            raise ValueError(f"a job with client key {job.client_key!r} exists already")
        for task in tasks:
            if task.job_id != job.job_id:
                raise ValueError(f"task {task.task_id} belongs to job {task.job_id}, not this one")
        new = self._new_tasks(tasks)
        self._jobs[job.job_id] = _Job(job)
        if job.client_key is not None:
            self._client_keys[job.client_key] = job.job_id
        self._last_job_id = max(self._last_job_id, job.job_id)
        self._insert(new)

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        self._check()
        for job_id in {task.job_id for task in tasks}:
            job = self._jobs.get(job_id)
            if job is None:
                raise ValueError(f"job {job_id} does not exist")
            if job.state is JobState.CANCELLED:
                raise ValueError(f"job {job_id} is cancelled")
        new = self._new_tasks(tasks)
        for job_id in {task.job_id for task in tasks}:
            job = self._jobs[job_id]
            job.state, job.finished_at = JobState.RUNNING, None  # more work: running again
        self._insert(new)

    def _new_tasks(self, tasks: Sequence[TaskRecord]) -> dict[int, _Task]:
        """The tasks as stored, by id (nothing is stored yet: a task id used twice, or
        arguments that are not JSON, raise here)."""
        new = {
            task.task_id: _Task(
                task.job_id,
                task.index,
                task.op,
                _encode(task.args),
                task.attempts,
                tuple(task.reasons),
            )
            for task in tasks
        }
        if len(new) != len(tasks) or not self._tasks.keys().isdisjoint(new):
            raise ValueError("a task id is used twice")
        return new

    def _insert(self, new: dict[int, _Task]) -> None:
        if not new:
            return
        self._tasks.update(new)
        job_id = next(iter(new.values())).job_id
        ids = self._jobs[job_id].task_ids
        for task_id, task in new.items():
            if task.job_id != job_id:  # tasks of several jobs (add_tasks)
                job_id = task.job_id
                ids = self._jobs[job_id].task_ids
            ids.append(task_id)
        self._last_task_id = max(self._last_task_id, max(new))

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        self._check()
        encoded = []  # first, so that one that is not JSON fails with nothing recorded
        for outcome in outcomes:
            task = self._tasks.get(outcome.task_id)
            if task is not None and outcome.index != task.index:
                outcome = msgspec.structs.replace(outcome, index=task.index)
            encoded.append(_encode(outcome))
        recorded: list[bool] = []
        latest: dict[int, float | None] = {}  # job -> latest finished_at among its outcomes
        for outcome, data in zip(outcomes, encoded, strict=True):
            task = self._tasks.get(outcome.task_id)
            if task is None or task.state != _QUEUED or task.job_id != outcome.job_id:
                recorded.append(False)
                continue
            job = self._jobs[outcome.job_id]
            if isinstance(outcome, ResultRecord):
                task.state = "done"
                job.done += 1
            else:
                task.state = "failed"
                job.failed += 1
            task.outcome = data
            job.outcomes.append(task)
            recorded.append(True)
            when = latest.get(outcome.job_id)
            if outcome.finished_at is not None and (when is None or outcome.finished_at > when):
                when = outcome.finished_at
            latest[outcome.job_id] = when
        for job_id, when in latest.items():
            job = self._jobs[job_id]
            if job.done + job.failed + job.cancelled >= len(job.task_ids):
                job.state = JobState.FINISHED
                job.finished_at = time.time() if when is None else when
            self._wake(job_id)
        return recorded

    async def record_attempt(self, task_id: int, reason: str) -> None:
        self._check()
        task = self._tasks.get(task_id)
        if task is None or task.state != _QUEUED:
            return
        task.attempts += 1
        task.reasons = (*task.reasons, reason)

    async def cancel_job(self, job_id: int, at: float) -> list[int]:
        self._check()
        job = self._jobs.get(job_id)
        if job is None or job.state is not JobState.RUNNING:
            return []
        cancelled = sorted(i for i in job.task_ids if self._tasks[i].state == _QUEUED)
        for task_id in cancelled:
            self._tasks[task_id].state = "cancelled"
        job.cancelled += len(cancelled)
        job.state, job.finished_at = JobState.CANCELLED, at
        self._wake(job_id)
        return cancelled

    async def job_for(self, client_key: str) -> int | None:
        self._check()
        return self._client_keys.get(client_key)

    async def job(self, job_id: int) -> JobSummary | None:
        self._check()
        job = self._jobs.get(job_id)
        return None if job is None else job.summary()

    async def jobs(self, *, limit: int = 100, before: int | None = None) -> list[JobSummary]:
        self._check()
        ids = sorted((i for i in self._jobs if before is None or i < before), reverse=True)
        return [self._jobs[i].summary() for i in ids[: max(limit, 0)]]

    async def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        self._check()
        arrived = asyncio.Event()
        if follow:
            self._followers.setdefault(job_id, set()).add(arrived)
        try:
            sent = 0
            while True:
                arrived.clear()
                job = self._jobs.get(job_id)
                if job is None:
                    return  # unknown, or removed by prune
                final = job.state is not JobState.RUNNING
                while sent < len(job.outcomes):
                    yield job.outcomes[sent].ended()
                    sent += 1
                if final or not follow:
                    return
                await arrived.wait()
                self._check()
        finally:
            followers = self._followers.get(job_id, set())
            followers.discard(arrived)
            if not followers:
                self._followers.pop(job_id, None)

    async def outcomes_of(self, task_ids: Sequence[int]) -> list[Outcome]:
        self._check()
        tasks = (self._tasks.get(task_id) for task_id in task_ids)
        return [task.ended() for task in tasks if task is not None and task.outcome is not None]

    async def unfinished(self) -> tuple[list[JobInfo], list[TaskRecord]]:
        self._check()
        running = [self._jobs[i] for i in sorted(self._jobs)]
        running = [job for job in running if job.state is JobState.RUNNING]
        tasks = [
            self._tasks[task_id].record(task_id)
            for job in running
            for task_id in job.task_ids
            if self._tasks[task_id].state == _QUEUED
        ]
        tasks.sort(key=lambda task: task.task_id)
        return [job.info for job in running], tasks

    async def next_ids(self) -> tuple[int, int]:
        self._check()
        return self._last_job_id + 1, self._last_task_id + 1

    async def record_workers(self, workers: Sequence[WorkerRecord]) -> None:
        self._check()
        for worker in workers:
            self._workers[worker.worker_key] = worker

    async def workers(self, *, limit: int | None = None) -> list[WorkerRecord]:
        self._check()
        ordered = sorted(self._workers.values(), key=lambda w: (-w.last_seen, w.worker_key))
        return ordered if limit is None else ordered[: max(limit, 0)]

    async def worker(self, worker_key: str) -> WorkerRecord | None:
        self._check()
        return self._workers.get(worker_key)

    async def record_throughput(self, samples: Sequence[ThroughputSample]) -> None:
        self._check()
        for sample in samples:
            done, failed = self._throughput.get(sample.at, (0, 0))
            self._throughput[sample.at] = (done + sample.done, failed + sample.failed)

    async def throughput(self, since: float) -> list[ThroughputSample]:
        self._check()
        seconds = sorted(at for at in self._throughput if at >= since)
        return [ThroughputSample(at, *self._throughput[at]) for at in seconds]

    async def prune_workers(self, seen_before: float, *, keep: Collection[str] = ()) -> int:
        self._check()
        kept = set(keep)
        old = [
            key
            for key, worker in self._workers.items()
            if worker.last_seen < seen_before and not worker.quarantined and key not in kept
        ]
        for key in old:
            del self._workers[key]
        return len(old)

    async def prune(self, finished_before: float) -> int:
        self._check()
        for at in [at for at in self._throughput if at < finished_before]:
            del self._throughput[at]
        old = [
            job
            for job in self._jobs.values()
            if job.finished_at is not None and job.finished_at < finished_before
        ]
        for job in old:
            del self._jobs[job.info.job_id]
            for task_id in job.task_ids:
                del self._tasks[task_id]
            if job.info.client_key is not None:
                del self._client_keys[job.info.client_key]
            self._wake(job.info.job_id)
        return len(old)

    def _wake(self, job_id: int) -> None:
        for event in self._followers.get(job_id, ()):
            event.set()


if TYPE_CHECKING:
    from browsergrid.store._base import Store

    def _implements(store: MemoryStore) -> Store:
        return store
