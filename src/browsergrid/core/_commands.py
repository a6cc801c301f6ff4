"""Commands: what the scheduler asks its I/O shell to do. Each carries the
``stimulus_id`` of the event that caused it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from browsergrid.core._events import TaskId


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
class TasksAccepted:
    """Tasks were queued in job ``job_id`` with ids ``first_task_id`` .. + ``count`` - 1,
    in submission order; ``first_index`` is the position of the first within its job."""

    job_id: int
    first_task_id: int
    first_index: int
    count: int
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone:
    """``task_id`` finished with ``result``; record and report it."""

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
class RejectReport:
    """A worker reported on a task it does not hold: tell it (``unknown_task``), keep going."""

    worker_id: int
    task_id: TaskId
    reason: str
    stimulus_id: str


Command = (
    SendTask | CancelTask | TasksAccepted | TaskDone | TaskFailed | JobCancelled | RejectReport
)
