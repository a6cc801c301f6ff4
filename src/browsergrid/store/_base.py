"""The store interface every backend implements, and the records it keeps.

A backend passes ``tests/store/test_contract.py`` (run against every backend). Every
method may wait for the disk: the coordinator acknowledges nothing (a submission to a
client, a result to a worker) before the write that records it has returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from browsergrid.errors import BrowsergridError
from browsergrid.protocol import FailureRecord, ResultRecord

Outcome = ResultRecord | FailureRecord
"""How a task ended: a result, or a failure with one reason per attempt."""


class StoreError(BrowsergridError):
    """The store cannot read or write (disk full, file unreadable, newer schema). The
    message says what and where; the coordinator refuses new work until it is fixed."""


class JobState(StrEnum):
    """Where a job is in its life, as stored."""

    RUNNING = "running"  # some tasks are not final
    FINISHED = "finished"  # every task is done or failed
    CANCELLED = "cancelled"  # cancelled; its unfinished tasks will not run


class JobInfo(msgspec.Struct, frozen=True):
    """What a job was when it was created."""

    job_id: int
    name: str
    op: str
    priority: int
    created_at: float  # Unix time
    submitted_by: str  # the client's address, or "http"
    lease_timeout: float | None = None
    max_attempts: int | None = None
    client_key: str | None = None  # "<client id>/<job key>": a resent submit finds its job
    redundancy: int = 1  # agreeing results each task needs
    max_replicas: int | None = None  # results gathered at most per task (None: the default)
    adaptive: bool = False  # established workers' results accepted alone, with spot checks


class JobSummary(msgspec.Struct, frozen=True):
    """A job with how far it got, as ``jobs()`` and ``job()`` return it."""

    info: JobInfo
    state: JobState
    total: int  # tasks stored
    done: int
    failed: int
    cancelled: int
    finished_at: float | None  # Unix time, when it became finished or cancelled


class TaskRecord(msgspec.Struct, frozen=True):
    """A task as submitted. ``attempts`` and ``reasons`` grow as leases are lost."""

    task_id: int
    job_id: int
    index: int  # position within its job
    op: str
    args: dict[str, Any]
    attempts: int = 0
    reasons: list[str] = []


class WorkerRecord(msgspec.Struct, frozen=True):
    """A worker's history. ``worker_key`` is the identity it keeps across reconnections
    (a browser keeps it in localStorage, a Python worker in its data directory)."""

    worker_key: str
    agent: str | None
    first_seen: float  # Unix time
    last_seen: float
    tasks_done: int
    failures: int
    compute_ms: float  # sum of the durations it reported: mean = compute_ms / tasks_done
    valid: int = 0  # its results a quorum agreed with
    invalid: int = 0  # its results a quorum disagreed with
    consecutive_valid: int = 0  # valid results since its last invalid one
    error_rate: float = 0.1  # estimate, as BOINC keeps it (core/_reputation.py)
    quarantined: bool = False  # it kept disagreeing: it gets no more work
    lost: int = 0  # leases it lost: error reports, passed deadlines, dropped connections
    loss_rate: float = 0.0  # moves toward 1 with each loss, decays with each finished task
    job_tasks_done: int = 0  # of tasks_done, job tasks: its standing's record (welcomes aside)


class ThroughputSample(msgspec.Struct, frozen=True):
    """Tasks that finished in one second (as counted by the coordinator)."""

    at: int  # Unix second
    done: int
    failed: int


class Store(Protocol):
    """Where jobs, tasks, outcomes, worker history and throughput are kept.

    Writes are applied in the order they were started: a write method queues its work
    before its first ``await``, so of two writes started by tasks created one after the
    other, the first is applied first (the coordinator relies on this to store a task
    before any result for it).

    Breaking a rule of the data (a job, task or client key stored twice, tasks for an
    unknown or cancelled job) raises ValueError; StoreError means the store itself failed.
    Smaller rules every backend keeps: an outcome whose job does not match its task is
    ignored; a job's ``finished_at`` is the latest ``finished_at`` of the outcomes that
    completed it (else the time it completed); ``add_tasks`` to a finished job makes it
    running again; ``cancel_job`` of an unknown, finished or cancelled job returns ``[]``;
    ``record_attempt`` of an unknown or final task is ignored; ``close()`` ends ``follow``
    iterators with StoreError; ``prune`` removes a job of more than 10,000 tasks over
    several transactions, and also removes the throughput samples of seconds before
    ``finished_before`` (``at < finished_before``).
    """

    async def open(self) -> None:
        """Open (creating or migrating as needed); raises StoreError if it cannot."""

    async def close(self) -> None:
        """Flush and close; nothing is lost that a returned call wrote."""

    async def add_job(self, job: JobInfo, tasks: Sequence[TaskRecord]) -> None:
        """A new job and its first tasks, in one write."""

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        """More tasks of jobs that exist."""

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Record how tasks ended. Each task ends at most once: an outcome for a task
        already final (done, failed or cancelled) is ignored. Returns, per outcome, whether
        it was recorded. A job whose every task is final becomes FINISHED."""

    async def record_attempt(self, task_id: int, reason: str) -> None:
        """A lease of the task was lost; ``reason`` says why (kept for its failure report)."""

    async def cancel_job(self, job_id: int, at: float) -> list[int]:
        """Cancel the job's tasks that are not final; returns their ids, in order."""

    async def job_for(self, client_key: str) -> int | None:
        """The job created with this ``client_key``, if any."""

    async def job(self, job_id: int) -> JobSummary | None:
        """The job, or None if it is unknown (or was removed by ``prune``)."""

    async def jobs(self, *, limit: int = 100, before: int | None = None) -> list[JobSummary]:
        """Jobs newest first: at most ``limit``, with ids below ``before`` when given."""

    def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        """The job's outcomes in the order they were recorded, read in pages (never all
        at once); with ``follow``, keep waiting for more until the job is finished or
        cancelled."""

    async def outcomes_of(self, task_ids: Sequence[int]) -> list[Outcome]:
        """The outcomes recorded for these tasks (those not final are left out)."""

    async def unfinished(self) -> tuple[list[JobInfo], list[TaskRecord]]:
        """After a restart: the running jobs, and their tasks that are not final."""

    async def next_ids(self) -> tuple[int, int]:
        """(next job id, next task id): one more than the largest ever stored."""

    async def record_workers(self, workers: Sequence[WorkerRecord]) -> None:
        """Insert or replace these workers' history."""

    async def workers(self, *, limit: int | None = None) -> list[WorkerRecord]:
        """Workers most recently seen first (ties by ``worker_key``): every worker ever
        seen, or at most ``limit`` when given."""

    async def worker(self, worker_key: str) -> WorkerRecord | None:
        """One worker's history, or None."""

    async def record_throughput(self, samples: Sequence[ThroughputSample]) -> None:
        """Add these counts to their seconds (a second already stored gets the sum, and so
        does a second given twice). Record each second's counts once, e.g. when it is over:
        recording them again counts them twice."""

    async def throughput(self, since: float) -> list[ThroughputSample]:
        """The stored seconds at or after ``since`` (Unix time), oldest first. Seconds with
        nothing recorded are absent: a caller that plots them counts them as zero."""

    async def prune(self, finished_before: float) -> int:
        """Remove jobs (with their tasks and outcomes) that ended before this Unix time,
        and throughput samples of seconds before it; returns how many jobs were removed.
        Running jobs are never removed. Worker history is ``prune_workers``'s."""

    async def prune_workers(self, seen_before: float, *, keep: Collection[str] = ()) -> int:
        """Remove the history of workers last seen before this Unix time; returns how many
        were removed. Kept whatever their age: the workers in ``keep`` (pass the connected
        ones: their ``last_seen`` is that of their last write, which may be old), and
        quarantined identities: a liar must not get a clean record back by staying away
        until its own is removed. Removes in batches, like ``prune``."""
