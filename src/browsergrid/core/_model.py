"""Tasks and workers as the scheduler sees them, with their explicit state machines."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from browsergrid.errors import IllegalTransition


class TaskState(StrEnum):
    """Where a task is in its life (docs/architecture.md draws the diagram)."""

    QUEUED = "queued"  # waiting for a worker with free credit that runs its op
    LEASED = "leased"  # sent to one worker, which must answer before the lease deadline
    DONE = "done"  # a result was accepted; final
    FAILED = "failed"  # every attempt failed or was lost; final
    CANCELLED = "cancelled"  # no longer wanted (a welcome task whose worker left); final


_TASK_MOVES: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.LEASED, TaskState.CANCELLED}),
    TaskState.LEASED: frozenset(
        {TaskState.QUEUED, TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.DONE: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class WorkerState(StrEnum):
    """Where a worker connection is in its life."""

    ANONYMOUS = "anonymous"  # connected, never said hello: an exercise-style worker
    INTRODUCED = "introduced"  # said hello: runs the ops it announced
    GONE = "gone"  # disconnected; final


_WORKER_MOVES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.ANONYMOUS: frozenset({WorkerState.INTRODUCED, WorkerState.GONE}),
    WorkerState.INTRODUCED: frozenset({WorkerState.GONE}),
    WorkerState.GONE: frozenset(),
}


@dataclass(slots=True, kw_only=True)
class Task:
    """One unit of work. Change ``state`` only through ``move_to``."""

    task_id: int  # the scheduler numbers tasks in submission order
    op: str
    args: dict[str, Any]
    lease_timeout_s: float
    max_attempts: int
    pinned_to: int | None = None  # a welcome task runs on its own worker only
    state: TaskState = TaskState.QUEUED
    worker_id: int | None = None  # holder of the current lease
    deadline: float = 0.0  # end of the current lease (monotonic seconds)
    attempts: int = 0  # leases granted so far
    reasons: list[str] = field(default_factory=list)  # why each failed attempt failed

    def move_to(self, new: TaskState) -> None:
        """Change state; raises IllegalTransition where the diagram has no such arrow."""
        if new not in _TASK_MOVES[self.state]:
            raise IllegalTransition(f"task {self.task_id}: {self.state.value} -> {new.value}")
        self.state = new


@dataclass(slots=True, kw_only=True)
class Worker:
    """One connected worker and the tasks it holds."""

    worker_id: int
    ops: frozenset[str]
    concurrency: int
    joined_at: float
    state: WorkerState = WorkerState.ANONYMOUS
    in_flight: set[int] = field(default_factory=set)
    tasks_done: int = 0
    failures: int = 0
    speed_ms: float | None = None  # duration of its welcome task: its first speed sample

    @property
    def credit(self) -> int:
        """How many more tasks it may be sent now."""
        return max(0, self.concurrency - len(self.in_flight))

    def move_to(self, new: WorkerState) -> None:
        """Change state; raises IllegalTransition where no such move exists."""
        if new not in _WORKER_MOVES[self.state]:
            raise IllegalTransition(f"worker {self.worker_id}: {self.state.value} -> {new.value}")
        self.state = new
