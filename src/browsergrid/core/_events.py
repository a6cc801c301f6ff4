"""Events: everything the scheduler learns about the world. Each carries ``now``
(monotonic seconds) and a ``stimulus_id`` that shows up in the logs of what it caused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TaskId = int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerJoined:
    """A connection opened; until ``WorkerIntroduced`` it is an exercise-style worker."""

    worker_id: int
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerIntroduced:
    """The worker sent ``hello``: it runs ``ops``, ``concurrency`` tasks at a time."""

    worker_id: int
    ops: frozenset[str]
    concurrency: int
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLeft:
    """The connection closed (any reason); its leases end now."""

    worker_id: int
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSubmitted:
    """A task to run on any worker that announced ``op``."""

    op: str
    args: dict[str, Any]
    now: float
    lease_timeout_s: float | None = None
    max_attempts: int | None = None
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultReported:
    """A worker sent ``result`` for ``task_id``."""

    worker_id: int
    task_id: TaskId
    result: Any
    duration_ms: float
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskErrorReported:
    """A worker sent ``error`` for ``task_id``."""

    worker_id: int
    task_id: TaskId
    message: str
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTicked:
    """Time passed; leases whose deadline is before ``now`` end."""

    now: float
    stimulus_id: str = ""


Event = (
    WorkerJoined
    | WorkerIntroduced
    | WorkerLeft
    | TaskSubmitted
    | ResultReported
    | TaskErrorReported
    | ClockTicked
)

__all__ = [
    "ClockTicked",
    "Event",
    "ResultReported",
    "TaskErrorReported",
    "TaskId",
    "TaskSubmitted",
    "WorkerIntroduced",
    "WorkerJoined",
    "WorkerLeft",
]
