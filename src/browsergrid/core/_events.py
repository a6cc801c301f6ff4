"""Events: everything the scheduler learns about the world. Each carries ``now``
(monotonic seconds) and a ``stimulus_id`` that shows up in the logs of what it caused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from browsergrid.core._reputation import Standing

TaskId = int | str
"""Task ids are integers the scheduler hands out; workers may echo anything back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """One task to run: ``op`` with ``args``; None options take the job's, then the defaults."""

    op: str
    args: dict[str, Any]
    lease_timeout_s: float | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """Options of a job, fixed when it is created."""

    name: str = ""
    priority: int = 0  # higher runs first; equal priorities share workers round robin
    lease_timeout_s: float | None = None  # default for its tasks (else the op's, else global)
    max_attempts: int | None = None  # default for its tasks (else global)
    redundancy: int = 1  # agreeing results from distinct workers each task needs
    max_replicas: int | None = None  # results gathered at most per task (2 * redundancy + 1)
    adaptive: bool = False  # a trusted worker's result is enough, but for spot checks

    def __post_init__(self) -> None:
        if self.redundancy < 1:
            raise ValueError("redundancy must be at least 1")
        if self.max_replicas is not None and self.max_replicas < self.redundancy:
            raise ValueError("max_replicas must be at least redundancy")
        if self.adaptive and self.redundancy < 2:
            raise ValueError("adaptive replication needs redundancy of at least 2")

    @property
    def replica_limit(self) -> int:
        """Results gathered at most for one task before it fails for want of a quorum."""
        return self.max_replicas or 2 * self.redundancy + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredTask:
    """A task read back from the store after a restart, with the attempts it already had."""

    task_id: int
    index: int
    op: str
    args: dict[str, Any]
    attempts: int = 0
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRestored:
    """After a restart: a running job read back from the store, with its tasks that are not
    final (they are queued again: a lease does not survive a restart)."""

    job_id: int
    options: JobOptions
    total: int  # tasks it has in all, final ones included
    done: int
    failed: int
    cancelled: int
    tasks: Sequence[RestoredTask]
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerJoined:
    """A connection opened; until ``WorkerIntroduced`` it is an exercise-style worker.
    ``address`` is where it connects from (the replicas of one task go to workers at
    different addresses when there are some)."""

    worker_id: int
    now: float
    address: str | None = None
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerIntroduced:
    """The worker sent ``hello``: it runs ``ops``, ``concurrency`` at a time, and buffers
    ``prefetch`` more; those of ``cold`` cost it a start-up (Pyodide's seconds) until its
    first task of them ends. ``key`` is its lasting identity (reputation follows it
    across reconnections), with the ``standing`` the store remembers for it, if any.
    A task with an environment goes to it only if it runs that environment: a native one
    only if ``native``, and one of another env id than ``environments`` never (None: it
    builds any environment it is given)."""

    worker_id: int
    ops: frozenset[str]
    concurrency: int
    now: float
    prefetch: int = 1
    cold: frozenset[str] = frozenset()
    key: str | None = None
    standing: Standing | None = None
    holds: frozenset[str] = frozenset()  # blobs it has at hand (their SHA-256s)
    native: bool = False  # runs environments with compiled code (tasks of native ones)
    environments: frozenset[str] | None = None  # None: builds any environment; else runs
    # only the environments of these env ids (it builds no new one)
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLeft:
    """The connection closed (any reason); its leases end now."""

    worker_id: int
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerCapacityChanged:
    """An introduced worker changed what it gives (a volunteer's controls): ``concurrency``
    tasks at once (0: paused, it is sent nothing), ``prefetch`` more waiting (None: as
    before), each at ``share`` of a core (0 < share <= 1: its tasks take 1/share as long)."""

    worker_id: int
    concurrency: int
    now: float
    prefetch: int | None = None
    share: float = 1.0
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerHoldsChanged:
    """An introduced worker now has the blobs ``added`` at hand, and no longer ``dropped``:
    a task whose large inputs it holds goes to it before a worker that would fetch them."""

    worker_id: int
    added: frozenset[str]
    dropped: frozenset[str]
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksHandedBack:
    """A worker hands back tasks it holds and will not run (it paused, or is closing):
    they are queued again at once, and the lease counts as no attempt."""

    worker_id: int
    task_ids: Sequence[TaskId]
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksSubmitted:
    """Tasks for a new job (``job_id`` None, with ``options``) or added to job ``job_id``."""

    tasks: Sequence[TaskSpec]
    now: float
    job_id: int | None = None
    options: JobOptions = field(default_factory=JobOptions)
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelRequested:
    """Nobody wants the rest of job ``job_id``: its unfinished tasks are cancelled."""

    job_id: int
    now: float
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
    """Time passed: leases whose deadline is before ``now`` end; stragglers may be copied."""

    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksTaken:
    """Tasks this coordinator took from the queue it shares with others (``serve --redis``):
    queue them in job ``job_id``, which is created from ``options`` if it is new here.
    ``total`` of a job created this way counts only the tasks taken here."""

    job_id: int
    options: JobOptions
    tasks: Sequence[RestoredTask]
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StrandedReleased:
    """Give up the queued tasks no connected worker can run (their workers left), so that
    the coordinator can hand them back to the shared queue (answered by ``TasksReleased``)."""

    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomesReported:
    """The shell is done with these finished tasks: their outcomes are stored and whoever
    follows their jobs was told. Until then the scheduler keeps each finished job task's
    job (counts, ``finished``) for the shell to read; after it, what only they kept ends.

    When to send it: after each round of outcomes is written to the store, acknowledged
    and pushed to clients (and whatever reads ``jobs`` for that round, such as whether
    the job finished and its counts, has read it), with the ``task_id`` of every job task
    a ``TaskDone`` or ``TaskFailed`` named in it; and, once a ``JobCancelled`` is stored
    and pushed, with its ``task_ids``.
    Outcomes that could not be stored are not reported (their job stays, as the store has
    it running), unless they were handed to someone else (another coordinator).

    What it does: a job whose tasks are all final (``Job.finished``) and all reported
    leaves ``jobs`` at once, answered by ``JobsForgotten``; afterwards ``jobs[job_id]``
    raises KeyError: read the job from the store, and take it up again with
    ``JobRestored`` (exact counts and the next index) to add tasks to it. A job still
    running stays, with exact counts, and takes more tasks as before; only the bookkeeping
    of its reported tasks ends. The reputation of an identity with no connected worker,
    no replica waiting and no judged outcome unreported leaves ``standings``.

    Ids that are not of a finished job task here (a task still queued or leased, a
    welcome task, an unknown or already reported id) are ignored: sending one late,
    twice or by mistake changes nothing. Never dispatches: ``handle`` returns at most a
    ``JobsForgotten``, so the shell may send it from anywhere, with no ``await``; except
    where a reported task is one others depend on (futures as arguments): its dependents
    are queued (or fail with it) now that its outcome is stored, and the commands that
    follow (``SendTask``, ``TaskFailed``, ``DependenciesWanted``) must be carried out."""

    task_ids: Sequence[int]
    now: float
    stimulus_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """How a task that others depend on ended, as the store has it: its ``result``, or
    ``failure``, the end of a sentence about it ("failed: ...", "was cancelled",
    "is unknown ...")."""

    task_id: int
    result: Any = None
    failure: str | None = None

    @classmethod
    def failed(cls, task_id: int, reasons: Sequence[str]) -> Settled:
        """A task that failed, with one reason per attempt: its dependents name the last."""
        why = reasons[-1] if reasons else "no reason given"
        return cls(task_id=task_id, failure=f"failed: {why}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DependenciesSettled:
    """The shell's answer to ``DependenciesWanted``: the outcomes the store has for those
    tasks. Give every wanted task that is final in the store; one that is neither final
    there nor live here (``Scheduler.live``) is unknown: give it as a failure too. A task
    still live here needs no answer: its dependents go on when its outcome is reported.
    Settlements for tasks nobody waits for (any more) are ignored."""

    settled: Sequence[Settled]
    now: float
    stimulus_id: str = ""


Event = (
    JobRestored
    | TasksTaken
    | StrandedReleased
    | WorkerJoined
    | WorkerIntroduced
    | WorkerLeft
    | WorkerCapacityChanged
    | WorkerHoldsChanged
    | TasksHandedBack
    | TasksSubmitted
    | JobCancelRequested
    | ResultReported
    | TaskErrorReported
    | ClockTicked
    | OutcomesReported
    | DependenciesSettled
)
