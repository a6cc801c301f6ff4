"""Commands: what the scheduler asks its I/O shell to do. Each carries the
``stimulus_id`` of the event that caused it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from browsergrid.core._events import TaskId
from browsergrid.core._model import Job


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTask:
    """Send a ``task`` to ``worker_id`` (the shell may batch several for one worker)."""

    worker_id: int
    task_id: int
    op: str
    args: dict[str, Any]
    welcome: bool
    speculative: bool
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTask:
    """Tell ``worker_id`` to drop ``task_id``; whatever it still reports for it is ignored."""

    worker_id: int
    task_id: int
    reason: str
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksReleased:
    """These queued tasks were dropped here, untouched (no lease running, no replica): hand
    them back to the shared queue for another coordinator's workers. ``reasons``: per task,
    in order, why each of its leases was lost (as taken, plus those lost here)."""

    task_ids: tuple[int, ...]
    reasons: tuple[tuple[str, ...], ...]
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksAccepted:
    """Tasks were queued in job ``job_id`` with ids ``first_task_id`` .. + ``count`` - 1,
    in submission order; ``first_index`` is the position of the first within its job."""

    job_id: int
    first_task_id: int
    first_index: int
    count: int
    stimulus_id: str


Verdict = Literal["unchecked", "quorum", "trusted"]
"""How a result was accepted (see ``browsergrid.protocol.Verdict``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaVerdict:
    """One worker's result for a replicated task, and whether it agreed with the quorum."""

    worker_id: int
    worker_key: str | None  # None for a worker with no lasting identity
    agreed: bool
    duration_ms: float
    result: Any  # what it reported


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaReported:
    """``worker_id`` sent a result for a replicated task: count its work (the task itself
    is reported by ``TaskDone`` or ``TaskFailed`` once the replicas are settled)."""

    worker_id: int
    task_id: int
    job_id: int | None
    duration_ms: float
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerQuarantined:
    """The results of identity ``worker_key`` kept disagreeing with the quorum: its
    connected workers ``worker_ids`` get no more tasks (their leases were taken back)."""

    worker_key: str | None
    worker_ids: tuple[int, ...]
    valid: int
    invalid: int
    error_rate: float
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone:
    """``task_id`` finished with ``result``; record and report it. For a replicated task
    ``worker_id`` is the first worker of the quorum, and ``replicas`` lists every result
    gathered (their work was counted by ``ReplicaReported``)."""

    worker_id: int
    task_id: int
    job_id: int | None  # None for a welcome task
    index: int  # position within its job
    op: str
    result: Any
    duration_ms: float
    attempts: int
    welcome: bool
    stimulus_id: str
    verdict: Verdict = "unchecked"
    replicas: tuple[ReplicaVerdict, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """``task_id`` will not be tried again; ``reasons`` has one line per failed attempt."""

    task_id: int
    job_id: int | None
    index: int
    op: str
    reasons: tuple[str, ...]
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled:
    """Job ``job_id`` was cancelled; ``task_ids`` are the tasks that will not run."""

    job_id: int
    task_ids: tuple[int, ...]
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsForgotten:
    """These jobs left the scheduler's memory (all their tasks final and reported, see
    ``OutcomesReported``): drop what the shell keeps for them alone, and from now on read
    them from the store (``jobs[job_id]`` raises KeyError). ``jobs`` are the jobs as they
    ended, final counts and all, handed over for a last look (a dashboard's final row):
    the scheduler holds them no more."""

    jobs: tuple[Job, ...]
    stimulus_id: str

    @property
    def job_ids(self) -> tuple[int, ...]:
        return tuple(job.job_id for job in self.jobs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectReport:
    """A worker reported on a task it does not hold: tell it (``unknown_task``), keep going."""

    worker_id: int
    task_id: TaskId
    reason: str
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DependenciesWanted:
    """Tasks depend on these tasks, which the scheduler does not hold (they ended before,
    or were never known here): read their outcomes from the store and answer with
    ``DependenciesSettled``. Until then the dependents wait."""

    task_ids: tuple[int, ...]
    stimulus_id: str


Command = (
    SendTask
    | CancelTask
    | TasksAccepted
    | TasksReleased
    | TaskDone
    | TaskFailed
    | JobCancelled
    | JobsForgotten
    | RejectReport
    | ReplicaReported
    | WorkerQuarantined
    | DependenciesWanted
)
