"""Tasks, jobs and workers as the scheduler sees them, with their explicit state machines."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from browsergrid.core._events import JobOptions
from browsergrid.core._reputation import Standing
from browsergrid.errors import IllegalTransition


class TaskState(StrEnum):
    """Where a task is in its life (docs/architecture.md draws the diagram)."""

    WAITING = "waiting"  # for the tasks it depends on (futures in its arguments)
    QUEUED = "queued"  # waiting for a worker with free credit that runs its op
    LEASED = "leased"  # sent to one worker (two, when a straggler is copied)
    DONE = "done"  # a result was accepted; final
    FAILED = "failed"  # attempts used up; final
    CANCELLED = "cancelled"  # no longer wanted (job cancelled, or a welcome task's worker left)


_TASK_MOVES: dict[TaskState, frozenset[TaskState]] = {
    TaskState.WAITING: frozenset({TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED}),
    TaskState.QUEUED: frozenset({TaskState.LEASED, TaskState.CANCELLED}),
    TaskState.LEASED: frozenset(
        {TaskState.QUEUED, TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}
    ),
    TaskState.DONE: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}
FINAL_STATES = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})


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


@dataclass(slots=True)
class Lease:
    """One worker's claim on a task, from ``start`` until ``deadline`` (monotonic seconds)."""

    start: float
    deadline: float
    speculative: bool = False  # a copy of a straggler, sent while the first lease runs on


@dataclass(frozen=True, slots=True)
class Replica:
    """One worker's result for a replicated task, waiting for the quorum to be settled."""

    worker_id: int
    key: str
    result: Any
    duration_ms: float
    address: str | None = None  # where its worker connected from
    vouched: bool = False  # its identity was vouched when it came (see _reputation.py)


@dataclass(frozen=True, slots=True)
class Environment:
    """The Python environment a task runs in: ``env_id`` names its set of wheels (64 hex
    digits), ``native`` says whether one holds compiled code (only workers that run native
    environments may take the task)."""

    env_id: str
    native: bool = False


@dataclass(slots=True, kw_only=True)
class Task:
    """One unit of work. Change ``state`` only through ``move_to``."""

    task_id: int  # handed out in submission order: lower is older
    job_id: int | None  # None for a welcome task
    index: int  # position within its job
    op: str
    args: dict[str, Any]
    lease_timeout_s: float
    max_attempts: int
    pinned_to: int | None = None  # a welcome task runs on its own worker only
    state: TaskState = TaskState.QUEUED
    leases: dict[int, Lease] = field(default_factory=dict)  # worker id -> lease
    attempts: int = 0  # leases granted so far
    reasons: list[str] = field(default_factory=list)  # why each failed lease failed
    charges: int = 0  # of those, the losses that point at the task (see _reputation.py)
    error_keys: list[str] = field(default_factory=list)  # identities whose error reports
    # wait for the task's end: proven theirs if it is done, forgiven if it fails
    failed_on: set[int] = field(default_factory=set)  # workers to avoid when re-issuing
    quorum: int = 1  # agreeing results from distinct worker identities it needs (redundancy)
    needed: int = 1  # agreeing results it needs now (1 for a trusted worker, adaptive jobs)
    max_replicas: int = 1  # results gathered at most before it fails for want of a quorum
    adaptive: bool = False
    replicas: list[Replica] = field(default_factory=list)  # results waiting for a quorum
    vouch: bool = False  # a vouched worker could replicate it: its quorum needs one
    queued: bool = False  # in its job's queue now (a replicated task may be leased too)
    inputs: frozenset[str] = frozenset()  # large blobs it reads: a worker holding them first
    environment: Environment | None = None  # its Python environment: which workers may take it
    # WAITING: the tasks it still waits for, and the results it has already (the shared
    # empty frozenset and None until it waits: a task that never does pays nothing for them)
    after: set[int] | frozenset[int] = frozenset()
    settled: dict[int, Any] | None = None
    resolved_bytes: int = 0  # WAITING: their size as JSON (see Scheduler.measure)
    repeats: dict[int, int] | None = None  # WAITING: tasks named by several of its futures

    @property
    def replicated(self) -> bool:
        """True when its result is checked by a quorum of workers (redundancy >= 2)."""
        return self.quorum > 1

    def move_to(self, new: TaskState) -> None:
        """Change state; raises IllegalTransition where the diagram has no such arrow."""
        if new not in _TASK_MOVES[self.state]:
            raise IllegalTransition(f"task {self.task_id}: {self.state.value} -> {new.value}")
        self.state = new


@dataclass(slots=True, kw_only=True)
class Job:
    """A group of tasks submitted together, with its counts by state."""

    job_id: int
    options: JobOptions
    created_at: float
    total: int = 0
    cancelled: bool = False
    live: set[int] = field(default_factory=set)  # ids of its tasks not yet final
    unreported: int = 0  # final tasks whose outcomes the shell has not reported yet
    counts: dict[TaskState, int] = field(default_factory=lambda: dict.fromkeys(TaskState, 0))
    queues: dict[str, list[int]] = field(default_factory=dict)  # op -> heap of queued task ids
    wanting: dict[int, None] = field(default_factory=dict)
    """Replicated tasks under way that want one more worker (not one that already has a
    replica of them), oldest first: kept apart so that fresh tasks are not stuck behind
    them."""

    @property
    def finished(self) -> bool:
        """True when every task submitted so far is done, failed or cancelled."""
        return sum(self.counts[state] for state in FINAL_STATES) == self.total

    def queued(self) -> bool:
        return bool(self.wanting) or any(self.queues.values())

    def push(self, task: Task) -> None:
        if task.replicated and (task.leases or task.replicas):
            self.wanting[task.task_id] = None
        else:
            heapq.heappush(self.queues.setdefault(task.op, []), task.task_id)


@dataclass(slots=True, kw_only=True)
class Worker:
    """One connected worker and the tasks it holds."""

    worker_id: int
    ops: frozenset[str]
    cold: set[str] = field(default_factory=set)  # ops it must start up before its first task
    concurrency: int
    prefetch: int  # tasks it may hold beyond ``concurrency`` now (at most ``prefetch_cap``)
    prefetch_cap: int = 0  # what it asked for in hello
    mean_ms: float | None = None  # running mean of the compute time it reports
    job_ms: dict[int, float] = field(default_factory=dict)  # the same per job, its last few
    job_held: dict[int, int] = field(default_factory=dict)  # job id -> its tasks in in_flight
    share: float = 1.0  # of a core each of its tasks gets (a volunteer's CPU share)
    joined_at: float
    state: WorkerState = WorkerState.ANONYMOUS
    in_flight: set[int] = field(default_factory=set)  # tasks it holds a lease on
    ignored: set[int] = field(default_factory=set)  # taken back: its late reports are dropped
    tasks_done: int = 0
    failures: int = 0
    speed_ms: float | None = None  # duration of its welcome task: its first speed sample
    key: str = ""  # lasting identity (its reputation's); "#<worker_id>" when it has none
    quarantined: bool = False  # its results kept disagreeing: it is sent nothing more
    voted: set[int] = field(default_factory=set)  # tasks with its replica awaiting a quorum
    standing: Standing = field(default_factory=Standing)  # its identity's (the scheduler's)
    address: str | None = None  # where it connected from
    holds: set[str] | frozenset[str] = frozenset()  # blobs it has at hand (hello, holds):
    # the shared empty frozenset until it holds one, so an idle worker pays nothing for it
    native: bool = False  # runs environments with compiled code (a tab's Pyodide does not)
    environments: frozenset[str] | None = None  # None: builds any environment it is given;
    # else it runs only those env ids (started with --no-new-environments)

    @property
    def credit(self) -> int:
        """How many more tasks it may be sent now (``concurrency + prefetch`` in all, fewer
        while its identity loses leases: ``Standing.slots``)."""
        if self.quarantined or self.concurrency == 0:  # paused: nothing, not even prefetch
            return 0
        held = self.standing.slots(self.concurrency + self.prefetch)  # fewer as it loses
        return max(0, held - len(self.in_flight))

    @property
    def idle(self) -> bool:
        return not self.in_flight

    def move_to(self, new: WorkerState) -> None:
        """Change state; raises IllegalTransition where no such move exists."""
        if new not in _WORKER_MOVES[self.state]:
            raise IllegalTransition(f"worker {self.worker_id}: {self.state.value} -> {new.value}")
        self.state = new
