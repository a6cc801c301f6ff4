"""Commands: what the scheduler asks its I/O shell to do. Each carries the
``stimulus_id`` of the event that caused it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from browsergrid.core._events import TaskId


@dataclass(frozen=True, slots=True, kw_only=True)
class SendTask:
    """Send a ``task`` frame to ``worker_id``."""

    worker_id: int
    task_id: TaskId
    op: str
    args: dict[str, Any]
    welcome: bool
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone:
    """``task_id`` finished with ``result``; record and report it."""

    worker_id: int
    task_id: TaskId
    op: str
    result: Any
    duration_ms: float
    welcome: bool
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """``task_id`` will not be tried again; ``reasons`` has one line per attempt."""

    task_id: TaskId
    op: str
    reasons: tuple[str, ...]
    stimulus_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectReport:
    """A worker reported on a task it does not hold: tell it (``unknown_task``), keep going."""

    worker_id: int
    task_id: TaskId
    reason: str
    stimulus_id: str


Command = SendTask | TaskDone | TaskFailed | RejectReport
