"""The scheduler: the one place where tasks are queued, leased, finished, re-issued or failed."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from browsergrid.core._commands import (
    CancelTask,
    Command,
    DependenciesWanted,
    JobCancelled,
    JobsForgotten,
    RejectReport,
    ReplicaReported,
    ReplicaVerdict,
    SendTask,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TasksReleased,
    Verdict,
    WorkerQuarantined,
)
from browsergrid.core._events import (
    ClockTicked,
    DependenciesSettled,
    Event,
    JobCancelRequested,
    JobRestored,
    OutcomesReported,
    RestoredTask,
    ResultReported,
    Settled,
    StrandedReleased,
    TaskErrorReported,
    TaskId,
    TasksHandedBack,
    TasksSubmitted,
    TasksTaken,
    WorkerCapacityChanged,
    WorkerHoldsChanged,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.core._model import (
    FINAL_STATES,
    Environment,
    Job,
    Lease,
    Replica,
    Task,
    TaskState,
    Worker,
    WorkerState,
)
from browsergrid.core._reputation import Standing

LossKind = Literal["disconnected", "error", "expired"]
"""Why a lease ended without a result: its worker left, reported an error, or ran late."""

EXERCISE_OPS: Final = frozenset({"repeat_multiply"})
"""What a worker that never says hello can run (the exercise's page), one task at a time."""

_JOB_MEANS_KEPT: Final = 8  # per worker: a job left out of its last 8 starts at one per slot
_EWMA: Final = 0.2  # weight of the newest duration in an op's running mean
_MAX_IGNORED: Final = 4096  # late reports remembered per worker, to drop them quietly
_MAX_SKIPS: Final = 64  # queued tasks a worker failed, looked past per dispatch
_MAX_OTHERS_LOOKED: Final = 256  # workers looked at to tell whether another can take a task
_MAX_HOLDERS_LOOKED: Final = 16  # holders of a blob looked at for one task
_MAX_WANTING_LOOKS: Final = 8  # replicated tasks under way a worker looks at before fresh ones
_STALE_DEADLINES: Final = 1024  # deadlines of ended leases kept past twice those running
MAX_DURATION_MS: Final = 86_400_000.0
"""A reported compute time counts as at most a day (a lease never runs longer)."""

Resolve = Callable[[dict[str, Any], Mapping[int, Any]], dict[str, Any]]
"""``resolve(args, results)``: a waiting task's arguments with the results of the tasks it
depends on put in (task id -> result); ValueError, saying why, when it cannot run so."""

Agree = Callable[[str, Mapping[str, Any], Any, Any], bool]
"""``agree(op, args, a, b)``: whether two workers' results for a task are the same (exactly,
or within the op's tolerance); must never raise."""


def _equal(op: str, args: Mapping[str, Any], a: Any, b: Any) -> bool:
    return bool(a == b)


class Changes(NamedTuple):
    """What ``Scheduler.changes_since`` returns: the jobs and workers that changed after
    the mark it was given, and the mark to give it next time."""

    jobs: frozenset[int]
    workers: frozenset[int]
    mark: int


@dataclass(frozen=True, slots=True)
class WelcomeTask:
    """The task every worker gets on connect; its duration is the worker's first speed sample."""

    op: str = "repeat_multiply"
    args: tuple[tuple[str, Any], ...] = (
        ("initial", 1.0000054),
        ("factor", 1.00000043),
        ("times", 1_000_000),
    )


class Scheduler:
    """Feed it events with ``handle``; carry out the commands it returns, in order.

    - Workers get at most ``concurrency + prefetch`` tasks at once, only of ops they run.
      With ``buffer_s``, a worker's prefetch is trimmed to about that many seconds of work
      at its measured speed (many tiny tasks in flight, few long ones), never above what it
      asked for. That speed is the one it showed on the slowest job it holds tasks of (one
      task per slot while it holds one it has not timed yet), so a worker fast on one job
      never takes a long row of another job's slow tasks at once.
    - Jobs with queued tasks share workers round robin; a higher ``priority`` goes first.
    - A lease ends with a result, or is lost (disconnect, deadline, error report); a lost
      task is queued again, avoiding the worker it failed on, and goes next to a reliable
      worker when one can take it. It fails once ``max_attempts`` of its losses point at
      the task rather than at the worker (``core/_reputation.py``, ``_charges``: an error
      or a passed deadline from an established worker, from a reliable one when no
      established one could take the task, or from the only worker that could; a dropped
      connection from an established one), or after ``max_losses`` losses of any kind,
      with one reason per loss. The worker pays for every loss: its loss rate rises, it
      holds fewer tasks at once, and one that keeps losing is quarantined.
    - When a worker sits idle with nothing queued for it, a task running longer than
      ``speculate_factor`` times its op's mean (and at least ``speculate_min_s``) is copied
      to it; the first result wins and the other copy is cancelled.
    - A job with ``redundancy`` k >= 2 sends each task to workers of distinct identities
      until k results ``agree`` (``verdict`` "quorum"); disagreement brings more replicas,
      up to the job's ``replica_limit``, then the task fails. Each settled quorum judges
      the workers (``core/_reputation.py``): those that keep disagreeing are quarantined
      and sent nothing more. With ``adaptive``, a task leased first to an established
      worker needs only its result ("trusted"), unless a spot check (probability
      ``spot_check``, drawn from ``rng``) asks for the full quorum.
    - What ends leaves memory. A final task leaves ``tasks`` at once; its job keeps its
      counts until the shell says the task's outcome is stored and told
      (``OutcomesReported``). A job whose tasks are all final and reported leaves ``jobs``
      (``JobsForgotten``): the store has it from then on, and ``JobRestored`` takes it up
      again. A worker leaves ``workers`` when it leaves; the reputation of an identity
      leaves ``standings`` once no connected worker has it and nothing pending was cast
      or judged under it (the store keeps it); an op's mean duration goes with the last
      worker that runs it.
    - A task whose arguments hold futures (``depends``: the ids of the tasks they name,
      each with how many futures name it)
      waits (``WAITING``) until each of those tasks is done and its outcome reported
      (``OutcomesReported``), then is queued with their results in (``resolve``). A task
      it depends on that fails, is cancelled or is unknown fails it, with a reason that
      names that task and says why, and so on down a chain. Tasks the scheduler does not
      hold (ended earlier) are asked of the shell (``DependenciesWanted``), which answers
      from the store (``DependenciesSettled``).
    - Readers (dashboard, metrics) read, never write: ``changes_since`` tells each reader
      what changed since its own last look.
    """

    def __init__(
        self,
        *,
        welcome: WelcomeTask | None = WelcomeTask(),
        lease_timeout_s: float = 60.0,
        op_lease_timeouts: Mapping[str, float] | None = None,
        max_attempts: int = 3,
        speculate_factor: float | None = 4.0,
        speculate_min_s: float = 1.0,
        max_prefetch: int = 1024,
        buffer_s: float | None = None,
        next_job_id: int = 1,
        next_task_id: int = 1,
        agree: Agree = _equal,
        spot_check: float = 0.1,
        rng: Callable[[], float] | None = None,
        max_losses: int | None = None,
        inputs: Callable[[Mapping[str, Any]], frozenset[str]] = lambda args: frozenset(),
        max_holds: int = 10_000,
        depends: Callable[[Mapping[str, Any]], Mapping[int, int]] = lambda args: {},
        resolve: Resolve | None = None,
        measure: Callable[[Any], int] = lambda result: 0,
        max_resolved_bytes: int = 2**62,
        environment: Callable[[Mapping[str, Any]], Environment | None] = lambda args: None,
    ) -> None:
        if lease_timeout_s <= 0:
            raise ValueError("lease_timeout_s must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if speculate_factor is not None and speculate_factor <= 1:
            raise ValueError("speculate_factor must be above 1 (or None to turn it off)")
        if not 0 <= spot_check <= 1:
            raise ValueError("spot_check must be a probability, from 0 to 1")
        self.agree = agree
        self.inputs = inputs
        """The large blobs a task's arguments refer to (the shell reads its refs): a task
        goes to a worker holding them before one that would fetch them."""
        self.max_holds = max_holds  # blobs a worker may say it holds: more are not counted
        self.environment = environment
        """The environment a task's arguments name (the shell reads them): a task with one
        goes only to a worker that runs it (``_suits``)."""
        self.depends = depends
        self.resolve = resolve or _no_futures
        self.measure = measure
        """The size of a result as it would stand in a dependent's arguments; ValueError,
        saying why, for one that cannot be passed on. Called once per result."""
        self.max_resolved_bytes = max_resolved_bytes  # of results put into one task's args
        self._dependents: dict[int, dict[int, None]] = {}  # task -> waiting tasks on it
        self._settlements: dict[int, Settled] = {}  # ended, with dependents, not yet reported
        self._woken = False  # a dependent was queued while handling this event
        self._holders: dict[str, set[int]] = {}  # blob -> introduced workers holding it
        self._left_for_holder = False  # per _next_for in a dispatch pass: see _dispatch
        self.spot_check = spot_check
        self._random = rng or random.Random().random
        self.standings: dict[str, Standing] = {}  # worker identity -> reputation
        self._holds: Counter[str] = Counter()
        """Lasting identity -> connected workers with it, its replicas waiting for a
        quorum and its judged outcomes not yet reported: its standing goes at 0."""
        self.welcome = welcome
        self.lease_timeout_s = lease_timeout_s
        self.op_lease_timeouts = dict(op_lease_timeouts or {})
        self.max_attempts = max_attempts
        self.max_losses = max_losses
        """Losses of any kind after which a task fails (None: ``4 * max_attempts``, at
        least 12): the bound for a task every worker dies on."""
        self.speculate_factor = speculate_factor
        self.speculate_min_s = speculate_min_s
        self.max_prefetch = max_prefetch
        self.buffer_s = buffer_s
        self.tasks: dict[int, Task] = {}  # queued and leased only: final ones are forgotten
        self.jobs: dict[int, Job] = {}
        self.workers: dict[int, Worker] = {}
        self.op_mean_s: dict[str, float] = {}  # running mean of lease-to-result time per op
        self._op_workers: Counter[str] = Counter()  # how many connected workers run each op
        self._native_workers: Counter[str] = Counter()  # of those, how many run native
        # environments (the tasks of a native environment go to no other)
        self._hungry: dict[int, None] = {}  # workers with credit, in join order
        self._cold_may_start: dict[str, bool] = {}  # per dispatch pass: see _may_start
        self._reliable: dict[str, list[Worker]] = {}  # per event: see _reliable_of
        self._vouched: dict[str, list[Worker]] = {}  # per event: see _vouched_of
        self._proven: list[str] = []  # identities whose error reports proved wrong
        self._key_workers: dict[str, int | set[int]] = {}
        """Lasting identity -> its connected worker (an id; a set of ids for several: rare,
        and a set costs an idle worker 200 bytes)."""
        self._rings: dict[int, deque[int]] = {}  # priority -> jobs with queued tasks
        self._ringed: set[int] = set()
        self._deadlines: list[tuple[float, int, int]] = []  # (deadline, task id, worker id)
        self._leases = 0  # leases running now: the deadlines worth keeping
        self._leased = 0  # tasks leased now, welcome tasks aside: those that may straggle
        self._unreported: dict[int, int] = {}  # final job task -> its job, until reported
        self._unreported_keys: dict[int, tuple[str, ...]] = {}  # -> lasting identities judged
        self._mark = 0  # changes so far (see changes_since)
        self._job_marks: dict[int, int] = {}  # job id -> mark of its last change, in order
        self._worker_marks: dict[int, int] = {}
        """Worker id -> mark of its last change (state, tasks in flight, concurrency,
        counts or speed), oldest first; a worker leaves it when it leaves."""
        self.lost_leases: Counter[LossKind] = Counter()  # leases that ended without a result
        self._task_ids = itertools.count(next_task_id)
        self._next_task_id = next_task_id
        self._job_ids = itertools.count(next_job_id)

    # --- the one entry point ---------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; returns the commands to carry out, in order."""
        self._reliable.clear()
        self._vouched.clear()
        match event:
            case JobRestored():
                commands = list(self._restored(event))
            case TasksTaken():
                commands = list(self._taken(event))
            case StrandedReleased():
                commands = list(self._release_stranded(event))
            case WorkerJoined():
                commands = list(self._joined(event))
            case WorkerIntroduced():
                commands = list(self._introduced(event))
            case WorkerLeft():
                commands = list(self._left(event))
            case WorkerCapacityChanged():
                commands = list(self._capacity(event))
            case WorkerHoldsChanged():
                commands = list(self._holds_changed(event))
            case TasksHandedBack():
                commands = list(self._handed_back(event))
            case TasksSubmitted():
                commands = list(self._submitted(event))
            case JobCancelRequested():
                commands = list(self._cancel(event))
            case ResultReported():
                commands = list(self._result(event))
            case TaskErrorReported():
                commands = list(self._error(event))
            case ClockTicked():
                commands = list(self._tick(event))
            case OutcomesReported():
                self._woken = False
                commands = list(self._reported(event))
                if not self._woken:  # it freed nothing a worker could take
                    self._keep_settlements(commands)
                    return commands
            case DependenciesSettled():
                commands = list(self._dependencies_settled(event))
            case _:
                raise TypeError(f"not a scheduler event: {event!r}")
        if self._proven:
            commands.extend(self._judge_proven(event))
        commands.extend(self._dispatch(event.now, event.stimulus_id))
        if isinstance(event, ClockTicked) and self.speculate_factor is not None:
            commands.extend(self._speculate(event.now, event.stimulus_id))
        self._keep_settlements(commands)
        return commands

    # --- event handlers --------------------------------------------------------------

    def _restored(self, ev: JobRestored) -> Iterator[Command]:
        if ev.job_id in self.jobs:
            raise ValueError(f"job {ev.job_id} restored twice")
        self._check_new_ids(ev.job_id, ev.tasks)
        job = Job(job_id=ev.job_id, options=ev.options, created_at=ev.now, total=ev.total)
        job.counts[TaskState.DONE] = ev.done
        job.counts[TaskState.FAILED] = ev.failed
        job.counts[TaskState.CANCELLED] = ev.cancelled
        self.jobs[job.job_id] = job
        self._changed_job(job.job_id)
        wanted: set[int] = set()
        for restored in ev.tasks:
            self._queue_restored(restored, job, wanted)
        yield from self._want(wanted, ev)

    def _taken(self, ev: TasksTaken) -> Iterator[Command]:
        self._check_new_ids(ev.job_id, ev.tasks)
        job = self.jobs.get(ev.job_id)
        if job is None:
            job = self.jobs[ev.job_id] = Job(
                job_id=ev.job_id, options=ev.options, created_at=ev.now
            )
        if job.cancelled:
            raise ValueError(f"job {ev.job_id} was cancelled")
        self._changed_job(job.job_id)
        wanted: set[int] = set()
        for restored in ev.tasks:
            job.total += 1
            self._queue_restored(restored, job, wanted)
        yield from self._want(wanted, ev)

    def _check_new_ids(self, job_id: int, tasks: Sequence[RestoredTask]) -> None:
        ids = [restored.task_id for restored in tasks]
        if len(set(ids)) != len(ids) or any(task_id in self.tasks for task_id in ids):
            raise ValueError(f"job {job_id}: a task was restored twice")

    def _queue_restored(self, restored: RestoredTask, job: Job, wanted: set[int]) -> None:
        job_max = job.options.max_attempts or self.max_attempts
        task = Task(
            task_id=restored.task_id,
            job_id=job.job_id,
            index=restored.index,
            op=restored.op,
            args=restored.args,
            lease_timeout_s=self._lease_timeout(restored.op, None, job),
            max_attempts=job_max,
            attempts=restored.attempts,
            reasons=list(restored.reasons),
            # which losses pointed at the task is not stored: count them all, but one more
            # attempt is always left
            charges=min(len(restored.reasons), max(0, job_max - 1)),
            inputs=self.inputs(restored.args),
            environment=self.environment(restored.args),
        )
        self._replicate_as(task, job)
        self.tasks[task.task_id] = task
        self._add_to_job(task, job, wanted)

    def _add_to_job(self, task: Task, job: Job, wanted: set[int]) -> None:
        """A new task of ``job`` (it is in ``tasks``): queued, or waiting for the tasks its
        arguments depend on (those the scheduler does not hold are added to ``wanted``)."""
        job.live.add(task.task_id)
        depends = self.depends(task.args)
        if not depends:
            job.counts[TaskState.QUEUED] += 1
            self._enqueue(task, job)
            return
        task.state = TaskState.WAITING
        job.counts[TaskState.WAITING] += 1
        task.after = set(depends)
        repeats = {dep: n for dep, n in depends.items() if n > 1}
        if repeats:  # a result named by several futures goes in that many times
            task.repeats = repeats
        for dep in depends:
            self._dependents.setdefault(dep, {})[task.task_id] = None
            if not self.live(dep):
                wanted.add(dep)

    def live(self, task_id: int) -> bool:
        """Whether ``task_id`` is a job task held here: not final, or final with its outcome
        not yet reported. Its dependents need nothing from the store: they go on when it is
        reported."""
        task = self.tasks.get(task_id)
        return task.job_id is not None if task is not None else task_id in self._unreported

    def issued(self, task_id: int) -> bool:
        """Whether ``task_id`` was handed out already (a future may name only such a task:
        so no task can depend on itself, or on a task that depends on it)."""
        return 0 < task_id < self._next_task_id

    def _want(self, wanted: set[int], ev: Event) -> Iterator[DependenciesWanted]:
        if wanted:
            yield DependenciesWanted(task_ids=tuple(sorted(wanted)), stimulus_id=ev.stimulus_id)

    def _release_stranded(self, ev: StrandedReleased) -> Iterator[Command]:
        """Drop queued job tasks whose op no connected worker runs, or whose native
        environment none does (untouched ones only: a task with a lease or a replica stays,
        its quorum is under way here)."""
        stranded = sorted(
            task.task_id
            for task in self.tasks.values()
            if task.state is TaskState.QUEUED
            and task.job_id is not None
            and not task.leases
            and not task.replicas
            and (
                self._op_workers[task.op] <= 0
                or (
                    task.environment is not None
                    and task.environment.native
                    and self._native_workers[task.op] <= 0
                )
            )
        )
        reasons = []
        forgotten: list[Job] = []
        for task_id in stranded:
            task = self.tasks.pop(task_id)
            reasons.append(tuple(task.reasons))
            for key in task.error_keys:  # it goes on elsewhere: no verdict here
                self._unhold(key)
            task.queued = False  # its id stays in its job's heap: _take skips it
            assert task.job_id is not None
            job = self.jobs[task.job_id]
            job.live.discard(task_id)
            job.wanting.pop(task_id, None)
            job.counts[TaskState.QUEUED] -= 1
            job.total -= 1
            self._changed_job(job.job_id)
            if not job.queued() or not job.live:
                self._unring(job)
            if job.finished and not job.unreported:  # nothing left here to report
                self._forget(job)
                forgotten.append(job)
        if stranded:
            yield TasksReleased(
                task_ids=tuple(stranded), reasons=tuple(reasons), stimulus_id=ev.stimulus_id
            )
        if forgotten:
            yield JobsForgotten(jobs=tuple(forgotten), stimulus_id=ev.stimulus_id)

    def appetite(self) -> tuple[int, frozenset[str]]:
        """What the workers here could take now that nothing queued here suits them (call it
        after ``handle``): how many tasks, and of which ops (for a shared queue).

        Only workers holding half their capacity or less count, and with all their credit:
        a worker with plenty still to do waits, then takes in a batch. Counting every free
        slot at once would fetch one task per result, a round trip to the shared queue and a
        frame to the worker each."""
        count = 0
        ops: set[str] = set()
        for worker_id in self._hungry:
            worker = self.workers[worker_id]
            if 2 * len(worker.in_flight) <= worker.concurrency + worker.prefetch:
                count += worker.credit
                ops.update(worker.ops)
        return count, frozenset(ops)

    def identities(self, ops: Iterable[str]) -> dict[str, int]:
        """For each of ``ops``, how many distinct worker identities here run it and may get
        tasks (not quarantined): a task of redundancy k can settle here only if k <= that."""
        keys: dict[str, set[str]] = {op: set() for op in ops}
        for worker in self.workers.values():
            if not worker.quarantined:
                for op in worker.ops:
                    if op in keys:
                        keys[op].add(worker.key)
        return {op: len(found) for op, found in keys.items()}

    def _lease_timeout(self, op: str, spec_timeout: float | None, job: Job) -> float:
        """The task's own, else its job's, else its op's, else the default lease timeout."""
        return (
            spec_timeout
            or job.options.lease_timeout_s
            or self.op_lease_timeouts.get(op)
            or self.lease_timeout_s
        )

    def _joined(self, ev: WorkerJoined) -> Iterator[Command]:
        if ev.worker_id in self.workers:
            raise ValueError(f"worker {ev.worker_id} joined twice")
        worker = Worker(
            worker_id=ev.worker_id,
            ops=EXERCISE_OPS,
            concurrency=1,
            prefetch=0,
            joined_at=ev.now,
            key=f"#{ev.worker_id}",
            address=ev.address,
        )
        worker.standing = self._standing_of(worker.key)
        self.workers[ev.worker_id] = worker
        self._op_workers.update(worker.ops)
        self._credit_changed(worker)
        if self.welcome is not None:
            task = self._new_task(
                self.welcome.op, dict(self.welcome.args), None, 0, pinned_to=ev.worker_id
            )
            yield self._lease(task, worker, ev.now, ev.stimulus_id)

    def _introduced(self, ev: WorkerIntroduced) -> Iterator[Command]:
        worker = self.workers[ev.worker_id]
        worker.move_to(WorkerState.INTRODUCED)
        self._op_workers.update(ev.ops)  # first: an op it keeps keeps its mean
        self._ops_dropped(worker.ops)
        worker.ops = ev.ops
        worker.cold = set(ev.cold & ev.ops)
        worker.concurrency = ev.concurrency
        worker.prefetch_cap = min(ev.prefetch, self.max_prefetch)
        worker.prefetch = worker.prefetch_cap
        self._fit_prefetch(worker)
        self._hold_blobs(worker, ev.holds, frozenset())
        worker.native = ev.native
        worker.environments = ev.environments
        if ev.native:
            self._native_workers.update(ev.ops)
        if ev.key is not None and ev.key != worker.key:
            yield from self._forget_votes(worker, ev)  # cast under its connection's name
            self.standings.pop(worker.key, None)  # its connection's name: nothing lasting
            worker.key = ev.key
            if ev.key not in self.standings and ev.standing is not None:
                self.standings[ev.key] = ev.standing
            self._hold(ev.key)
            self._add_worker_of(ev.key, worker.worker_id)
            worker.standing = self._standing_of(ev.key)
        if self._standing_of(worker.key).quarantined:
            worker.quarantined = True
            for task_id in sorted(worker.in_flight):
                task = self.tasks[task_id]
                if task.pinned_to is None:
                    yield self._take_back(task, worker, "its identity is quarantined", ev)
                    yield from self._reconsider(task, ev)
        self._credit_changed(worker)

    def _forget_votes(self, worker: Worker, ev: Event) -> Iterator[Command]:
        """A worker changes identity (a hello after it ran tasks): its replicas so far, and
        its leases of replicated tasks, were under the old name; drop them, so that one
        identity never counts twice in a quorum."""
        for task_id in sorted(worker.voted):  # live tasks only: _finish takes ended ones out
            task = self.tasks[task_id]
            self._drop_replicas(task, lambda r: r.worker_id == worker.worker_id)
            yield from self._reconsider(task, ev)
        worker.voted.clear()
        for task_id in sorted(worker.in_flight):
            task = self.tasks[task_id]
            if task.replicated:
                yield self._take_back(task, worker, "its worker changed identity", ev)
                yield from self._reconsider(task, ev)

    def standing(self, key: str) -> Standing:
        """The reputation of worker identity ``key``: the one the scheduler keeps (and
        updates) for an identity it knows, else a fresh one it does not keep. Reading it
        changes nothing; after ``WorkerIntroduced`` with ``key`` it is the one kept."""
        found = self.standings.get(key)
        return Standing() if found is None else found

    def _standing_of(self, key: str) -> Standing:
        """The standing kept for ``key``, made on first use: for a connected worker's
        identity, or one held (``_holds``) by a replica or a judged outcome."""
        found = self.standings.get(key)
        if found is None:
            found = self.standings[key] = Standing()
        return found

    def _hold(self, key: str) -> None:
        """Something needs lasting identity ``key``'s standing (a connection, a replica)."""
        if not key.startswith("#"):
            self._holds[key] += 1

    def _unhold(self, key: str) -> None:
        """What ``_hold`` took is over: the last one lets the standing go (the store has it)."""
        if key.startswith("#"):
            return  # a connection's own name: it goes with the connection
        self._holds[key] -= 1
        if self._holds[key] <= 0:
            del self._holds[key]
            self.standings.pop(key, None)

    def _ops_dropped(self, ops: Iterable[str]) -> None:
        """A worker no longer runs ``ops``: an op nobody runs leaves, with its mean."""
        for op in ops:
            self._op_workers[op] -= 1
            if self._op_workers[op] <= 0:
                del self._op_workers[op]
                self.op_mean_s.pop(op, None)

    def changes_since(self, mark: int) -> Changes:
        """The jobs and workers that changed after ``mark`` (0: all of them), with the mark
        to pass next time. It changes nothing, so any number of readers each keep their own
        mark; it costs what changed, not what exists. A job or worker that left is not
        named (its entry leaves with it): a reader holding one finds it gone from ``jobs``
        or ``workers``. Marks are this scheduler's: with a new one, start again from 0."""
        return Changes(
            jobs=_since(self._job_marks, mark),
            workers=_since(self._worker_marks, mark),
            mark=self._mark,
        )

    def _changed_job(self, job_id: int) -> None:
        self._mark += 1
        self._job_marks.pop(job_id, None)  # to the end: the newest changes come last
        self._job_marks[job_id] = self._mark

    def _changed_worker(self, worker_id: int) -> None:
        self._mark += 1
        self._worker_marks.pop(worker_id, None)
        self._worker_marks[worker_id] = self._mark

    def _capacity(self, ev: WorkerCapacityChanged) -> Iterator[Command]:
        worker = self.workers[ev.worker_id]
        if worker.state is not WorkerState.INTRODUCED:
            raise ValueError(f"worker {ev.worker_id} changed its capacity before hello")
        if not 0 < ev.share <= 1:
            raise ValueError(f"share must be in (0, 1], not {ev.share}")
        if worker.mean_ms is not None:  # its tasks take longer (or shorter) from now on
            worker.mean_ms = min(worker.mean_ms * worker.share / ev.share, MAX_DURATION_MS)
        for job_id, on_job in worker.job_ms.items():
            worker.job_ms[job_id] = min(on_job * worker.share / ev.share, MAX_DURATION_MS)
        worker.share = ev.share
        worker.concurrency = ev.concurrency
        if ev.prefetch is not None:
            worker.prefetch_cap = min(ev.prefetch, self.max_prefetch)
        worker.prefetch = worker.prefetch_cap
        self._fit_prefetch(worker)
        self._credit_changed(worker)
        return iter(())

    def _holds_changed(self, ev: WorkerHoldsChanged) -> Iterator[Command]:
        worker = self.workers[ev.worker_id]
        if worker.state is not WorkerState.INTRODUCED:
            raise ValueError(f"worker {ev.worker_id} said what it holds before hello")
        self._hold_blobs(worker, ev.added, ev.dropped)
        return iter(())

    def _hold_blobs(self, worker: Worker, added: Iterable[str], dropped: Iterable[str]) -> None:
        """``worker`` no longer holds ``dropped``, and holds ``added`` now (at most
        ``max_holds`` blobs are counted, the first in SHA-256 order: a worker cannot grow
        the index at will). Each blob costs its own step, however many the worker holds."""
        if not isinstance(worker.holds, set):  # the shared empty one: its own set now
            worker.holds = set()
        holds = worker.holds
        for digest in dropped:  # first: a blob in both lists was dropped, then kept again
            if digest in holds:
                holds.discard(digest)
                holders = self._holders[digest]
                holders.discard(worker.worker_id)
                if not holders:
                    del self._holders[digest]
        room = self.max_holds - len(holds)
        new = heapq.nsmallest(room, set(added) - holds) if room > 0 else ()  # no sort at cap
        for digest in new:
            holds.add(digest)
            self._holders.setdefault(digest, set()).add(worker.worker_id)

    def _handed_back(self, ev: TasksHandedBack) -> Iterator[Command]:
        worker = self.workers[ev.worker_id]
        for task_id in ev.task_ids:
            task = self._held(ev.worker_id, task_id)
            if task is None:
                continue  # not its own (any more): nothing to hand back
            self._release(task, worker)
            task.attempts -= 1  # it never ran there
            env = task.environment
            if env is not None and worker.environments is not None:
                # it runs only the environments it has, and gave this one back: it has not
                # got it (whatever its hello said), so it is not sent it again
                worker.environments = worker.environments - {env.env_id}
            if task.pinned_to is not None:
                self._finish(task, TaskState.CANCELLED)  # a welcome task is its worker's only
            else:
                yield from self._reconsider(task, ev)

    def _left(self, ev: WorkerLeft) -> Iterator[Command]:
        worker = self.workers.pop(ev.worker_id)
        worker.move_to(WorkerState.GONE)
        self._hold_blobs(worker, (), list(worker.holds))
        self._worker_marks.pop(worker.worker_id, None)
        self._ops_dropped(worker.ops)
        if worker.native:
            self._native_workers.subtract(worker.ops)
            for op in worker.ops:
                if self._native_workers[op] <= 0:
                    del self._native_workers[op]
        self._hungry.pop(worker.worker_id, None)
        for n, task_id in enumerate(sorted(worker.in_flight)):
            task = self.tasks[task_id]
            reason = f"worker {worker.worker_id} disconnected"  # one loss for its reputation:
            yield from self._lose(task, worker, reason, "disconnected", ev, counted=n == 0)
        if worker.key.startswith("#"):  # no lasting identity: its reputation ends with it
            self.standings.pop(worker.key, None)
        else:
            self._unhold(worker.key)
            self._forget_worker_of(worker.key, worker.worker_id)

    def _submitted(self, ev: TasksSubmitted) -> Iterator[Command]:
        if ev.job_id is None:
            job = Job(job_id=next(self._job_ids), options=ev.options, created_at=ev.now)
            self.jobs[job.job_id] = job
        else:
            found = self.jobs.get(ev.job_id)
            if found is None or found.cancelled:
                raise ValueError(f"job {ev.job_id} does not exist or was cancelled")
            job = found
        first_index = job.total
        first_task_id = 0
        wanted: set[int] = set()
        for spec in ev.tasks:
            task = self._new_task(
                spec.op,
                spec.args,
                job.job_id,
                job.total,
                lease_timeout_s=spec.lease_timeout_s or job.options.lease_timeout_s,
                max_attempts=spec.max_attempts or job.options.max_attempts,
            )
            self._replicate_as(task, job)
            first_task_id = first_task_id or task.task_id
            job.total += 1
            self._add_to_job(task, job, wanted)
        self._changed_job(job.job_id)
        yield TasksAccepted(
            job_id=job.job_id,
            first_task_id=first_task_id,
            first_index=first_index,
            count=len(ev.tasks),
            stimulus_id=ev.stimulus_id,
        )
        yield from self._want(wanted, ev)

    def _cancel(self, ev: JobCancelRequested) -> Iterator[Command]:
        job = self.jobs[ev.job_id]
        job.cancelled = True
        self._changed_job(job.job_id)
        cancelled = sorted(job.live)
        for task_id in cancelled:
            task = self.tasks[task_id]
            for worker_id in list(task.leases):
                yield self._take_back(task, self.workers[worker_id], "job cancelled", ev)
            self._finish(task, TaskState.CANCELLED)
        job.queues.clear()
        job.wanting.clear()
        self._unring(job)
        yield JobCancelled(job_id=job.job_id, task_ids=tuple(cancelled), stimulus_id=ev.stimulus_id)

    def _result(self, ev: ResultReported) -> Iterator[Command]:
        if not 0.0 <= ev.duration_ms <= MAX_DURATION_MS:  # NaN too: a worker says anything
            ev = dataclasses.replace(ev, duration_ms=_bounded_ms(ev.duration_ms))
        task = self._held(ev.worker_id, ev.task_id)
        worker = self.workers[ev.worker_id]
        if task is None:
            yield from self._unheld(worker, ev.task_id, ev.stimulus_id)
            return
        lease = self._release(task, worker)
        worker.cold.discard(task.op)  # started up: warm from now on
        if task.pinned_to is None and worker.standing.finished():
            self._refresh_credit(worker.key)  # its loss rate fell: its workers may hold more
        if task.pinned_to is None and self._op_workers[task.op] > 0:  # a welcome task says
            self._learn_duration(task.op, ev.now - lease.start)  # how fast a worker is
        if task.replicated:
            yield from self._replica(task, worker, ev)
            return
        for other_id in list(task.leases):
            yield self._take_back(task, self.workers[other_id], "another copy finished first", ev)
        self._finish(task, TaskState.DONE)
        self._count_work(worker, task.job_id, ev.duration_ms)
        yield _done(task, ev.worker_id, ev.result, ev.duration_ms, ev.stimulus_id)

    def _count_work(self, worker: Worker, job_id: int | None, duration_ms: float) -> None:
        """A result of ``job_id``'s task (None: its welcome task) took ``duration_ms``."""
        self._changed_worker(worker.worker_id)
        worker.tasks_done += 1
        if job_id is None:  # its welcome task: its first speed sample
            worker.speed_ms = duration_ms
        else:
            mean = worker.mean_ms
            worker.mean_ms = duration_ms if mean is None else mean + _EWMA * (duration_ms - mean)
            on_job = worker.job_ms.pop(job_id, None)  # put back last: the most recent kept
            on_job = duration_ms if on_job is None else on_job + _EWMA * (duration_ms - on_job)
            worker.job_ms[job_id] = on_job
            if len(worker.job_ms) > _JOB_MEANS_KEPT:
                del worker.job_ms[next(iter(worker.job_ms))]
            self._fit_prefetch(worker)

    # --- replicated tasks ----------------------------------------------------------------

    def _replicate_as(self, task: Task, job: Job) -> None:
        """Give a new task its job's validation options."""
        task.quorum = task.needed = job.options.redundancy
        task.max_replicas = job.options.replica_limit
        task.adaptive = job.options.adaptive

    def _replica(self, task: Task, worker: Worker, ev: ResultReported) -> Iterator[Command]:
        """A replicated task's result came in: accept it with its quorum, ask for more
        replicas, or fail the task when the replicas it may have are used up."""
        self._count_work(worker, task.job_id, ev.duration_ms)
        if task.needed < task.quorum and not self.standing(worker.key).trusted:
            task.needed = task.quorum  # trusted when leased, caught lying since: check it
        task.replicas.append(
            Replica(
                worker.worker_id,
                worker.key,
                ev.result,
                ev.duration_ms,
                worker.address,
                worker.standing.vouched,
            )
        )
        self._hold(worker.key)  # judged under it, even if its worker leaves meanwhile
        yield ReplicaReported(
            worker_id=worker.worker_id,
            task_id=task.task_id,
            job_id=task.job_id,
            duration_ms=ev.duration_ms,
            stimulus_id=ev.stimulus_id,
        )
        best = self._best_group(task)
        if len(best) < task.needed:
            worker.voted.add(task.task_id)
            yield from self._reconsider(task, ev)
            return
        for other_id in list(task.leases):
            yield self._take_back(task, self.workers[other_id], "a quorum agreed without it", ev)
        self._finish(task, TaskState.DONE)
        agreeing = {id(replica) for replica in best}
        verdicts = tuple(
            ReplicaVerdict(
                worker_id=replica.worker_id,
                worker_key=None if replica.key.startswith("#") else replica.key,
                agreed=id(replica) in agreeing,
                duration_ms=replica.duration_ms,
                result=replica.result,
            )
            for replica in task.replicas
        )
        first = best[0]
        verdict: Verdict = "quorum" if task.needed > 1 else "trusted"
        yield _done(
            task,
            first.worker_id,
            first.result,
            first.duration_ms,
            ev.stimulus_id,
            verdict,
            verdicts,
        )
        if len(task.replicas) > 1:  # a quorum of one (a trusted worker) judges nobody
            for replica in task.replicas:
                if replica.key.startswith("#") and replica.worker_id not in self.workers:
                    continue  # no lasting identity, and gone: nobody is left to judge
                standing = self._standing_of(replica.key)
                if standing.judge(id(replica) in agreeing):
                    yield from self._quarantine(replica.key, standing, ev)

    def _best_group(self, task: Task) -> list[Replica]:
        """The largest set of the task's replicas that agree (the earliest such set); once
        a vouched worker held a lease of it or could have (``task.vouch``, set at lease
        time and never undone, so a quorum never appears by itself when a vouched worker
        leaves), the largest with a vouched member."""
        groups = self._groups_of(task)
        if groups and task.vouch:
            groups = [g for g in groups if any(r.vouched for r in g)]
        return groups[0] if groups else []

    def _vouched_can_take(self, task: Task) -> bool:
        """True if a connected vouched worker, not paused, could take ``task`` now."""
        return any(self._eligible(task, w) and w.concurrency > 0 for w in self._vouched_of(task.op))

    def _vouched_of(self, op: str) -> list[Worker]:
        """Vouched workers that run ``op`` among the first connected, once per event (see
        ``_reliable_of``)."""
        found = self._vouched.get(op)
        if found is None:
            looked = itertools.islice(self.workers.values(), _MAX_OTHERS_LOOKED)
            found = self._vouched[op] = [w for w in looked if op in w.ops and w.standing.vouched]
        return found

    def _wants_more(self, task: Task) -> bool:
        """True if a replicated task needs another worker on it now: the leases running
        cannot make a quorum even if they all agree, and it may have more replicas."""
        running = len(task.leases)
        if running + len(task.replicas) >= task.max_replicas:
            return False
        if not task.vouch:
            return running + len(self._best_group(task)) < task.needed
        # a group may settle with a vouched member: one it has, or a vouched lease running
        vouched_running = any(self.workers[w].standing.vouched for w in task.leases)
        potential = max(
            (len(g) for g in self._groups_of(task) if vouched_running or any(r.vouched for r in g)),
            default=0,
        )
        return running + potential < task.needed

    def _reconsider(self, task: Task, ev: Event) -> Iterator[Command]:
        """After a replica came, went or was thrown away: queue the task for another worker,
        wait for the leases running, or fail it when no quorum can be reached."""
        assert task.job_id is not None  # welcome tasks are never replicated nor re-queued
        if task.replicated and not task.leases and not self._wants_more(task):
            counts = ", ".join(str(len(group)) for group in self._groups_of(task))
            task.reasons.append(
                f"no {task.needed} of its {len(task.replicas)} results agreed "
                f"(groups of agreeing results: {counts}; max_replicas {task.max_replicas})"
            )
            self._finish(task, TaskState.FAILED)
            yield _failed(task, ev.stimulus_id)
            return
        if not task.leases and task.state is TaskState.LEASED:  # with a lease it is LEASED
            self._set_state(task, TaskState.QUEUED)
        if (task.replicated and self._wants_more(task)) or not task.leases:
            self._enqueue(task, self.jobs[task.job_id])

    def _groups_of(self, task: Task) -> list[list[Replica]]:
        """The task's replicas in sets that agree with their first member, largest first."""
        groups: list[list[Replica]] = []
        for replica in task.replicas:
            for group in groups:
                if self.agree(task.op, task.args, group[0].result, replica.result):
                    group.append(replica)
                    break
            else:
                groups.append([replica])
        return sorted(groups, key=len, reverse=True)

    def _quarantine(self, key: str, standing: Standing, ev: Event) -> Iterator[Command]:
        """Identity ``key`` kept disagreeing: its workers get nothing more, their leases go
        to others, and its replicas still waiting for a quorum no longer count."""
        quarantined: list[int] = []
        for worker in self.workers.values():
            if worker.key != key:
                continue
            worker.quarantined = True
            worker.voted.clear()  # its replicas are thrown away below
            self._credit_changed(worker)
            quarantined.append(worker.worker_id)
            for task_id in sorted(worker.in_flight):
                task = self.tasks[task_id]
                if task.pinned_to is None:
                    yield self._take_back(task, worker, "its worker was quarantined", ev)
                    yield from self._reconsider(task, ev)
        tainted = [t for t in self.tasks.values() if any(r.key == key for r in t.replicas)]
        for task in tainted:
            self._drop_replicas(task, lambda replica: replica.key == key)
            yield from self._reconsider(task, ev)
        yield WorkerQuarantined(
            worker_key=None if key.startswith("#") else key,
            worker_ids=tuple(quarantined),
            valid=standing.valid,
            invalid=standing.invalid,
            error_rate=standing.error_rate,
            stimulus_id=ev.stimulus_id,
        )

    def _drop_replicas(self, task: Task, dropped: Callable[[Replica], bool]) -> None:
        """Throw away the replicas of ``task`` that ``dropped`` picks (they count no more)."""
        kept = []
        for replica in task.replicas:
            if dropped(replica):
                self._unhold(replica.key)
            else:
                kept.append(replica)
        task.replicas = kept

    def _error(self, ev: TaskErrorReported) -> Iterator[Command]:
        task = self._held(ev.worker_id, ev.task_id)
        worker = self.workers[ev.worker_id]
        if task is None:
            yield from self._unheld(worker, ev.task_id, ev.stimulus_id)
            return
        worker.failures += 1
        worker.cold.discard(task.op)
        self._changed_worker(worker.worker_id)
        reason = f"worker {ev.worker_id} reported: {ev.message}"
        yield from self._lose(task, worker, reason, "error", ev)

    def _tick(self, ev: ClockTicked) -> Iterator[Command]:
        late: set[int] = set()  # workers that passed a deadline: one loss each per tick
        while self._deadlines and self._deadlines[0][0] <= ev.now:
            deadline, task_id, worker_id = heapq.heappop(self._deadlines)
            task = self.tasks.get(task_id)
            lease = task.leases.get(worker_id) if task else None
            if task is None or lease is None or lease.deadline != deadline:
                continue  # that lease already ended
            worker = self.workers[worker_id]
            reason = f"worker {worker_id} passed the {task.lease_timeout_s:g} s deadline"
            yield self._take_back(task, worker, reason, ev)
            counted = worker_id not in late
            late.add(worker_id)
            yield from self._lose(
                task, worker, reason, "expired", ev, released=True, counted=counted
            )

    def _reported(self, ev: OutcomesReported) -> Iterator[Command]:
        forgotten: list[Job] = []
        wanted: set[int] = set()
        for task_id in ev.task_ids:
            settled = self._settlements.pop(task_id, None) if self._settlements else None
            if task_id in self._dependents and task_id not in self.tasks:
                if settled is None:  # it ended before anything depended on it: ask the store
                    wanted.add(task_id)
                else:
                    yield from self._settle(settled, ev)
            job_id = self._unreported.pop(task_id, None)
            if job_id is None:
                continue  # not a final job task, or reported already
            for key in self._unreported_keys.pop(task_id, ()):
                self._unhold(key)
            job = self.jobs[job_id]
            job.unreported -= 1
            if not job.unreported and job.finished:
                self._forget(job)
                forgotten.append(job)
        yield from self._want(wanted, ev)
        if forgotten:
            yield JobsForgotten(jobs=tuple(forgotten), stimulus_id=ev.stimulus_id)

    # --- tasks that depend on tasks ----------------------------------------------------

    def _keep_settlements(self, commands: list[Command]) -> None:
        """Keep how each task others depend on ended, until its outcome is reported."""
        if not self._dependents:
            return
        for command in commands:
            match command:
                case TaskDone(task_id=task_id, welcome=False) if task_id in self._dependents:
                    self._settlements[task_id] = Settled(task_id=task_id, result=command.result)
                case TaskFailed(task_id=task_id) if task_id in self._dependents:
                    self._settlements[task_id] = Settled.failed(task_id, command.reasons)
                case JobCancelled():
                    for task_id in command.task_ids:
                        if task_id in self._dependents:
                            self._settlements[task_id] = Settled(
                                task_id=task_id, failure="was cancelled"
                            )
                case _:
                    pass

    def _dependencies_settled(self, ev: DependenciesSettled) -> Iterator[Command]:
        for settled in ev.settled:
            if not self.live(settled.task_id):  # a live one settles when it is reported
                yield from self._settle(settled, ev)

    def _settle(self, settled: Settled, ev: Event) -> Iterator[Command]:
        """``settled`` ended: each task waiting for it fails with it, or takes its result
        (and is queued once it has them all)."""
        dep = settled.task_id
        waiting = self._dependents.pop(dep, None)
        if waiting is None:
            return
        failure, size = settled.failure, 0
        if failure is None:
            try:
                size = self.measure(settled.result)
            except Exception as exc:  # a worker's result, whatever it holds: never raised on
                failure = f"returned a result that cannot be passed on: {exc}"
        for task_id in waiting:
            task = self.tasks.get(task_id)
            if task is None or task.state is not TaskState.WAITING or dep not in task.after:
                continue  # pragma: no cover - an ended task leaves the lists it is in
            if failure is not None:
                yield from self._fail_waiting(
                    task, f"task {dep}, which it depends on, {failure}", ev
                )
                continue
            assert isinstance(task.after, set)  # a waiting task's own
            task.after.discard(dep)
            if task.settled is None:
                task.settled = {}
            task.settled[dep] = settled.result
            task.resolved_bytes += size * (task.repeats.get(dep, 1) if task.repeats else 1)
            if task.resolved_bytes > self.max_resolved_bytes:
                yield from self._fail_waiting(task, self._too_large(task), ev)
                continue
            if task.after:
                continue
            try:
                args = self.resolve(task.args, task.settled)
                inputs = self.inputs(args)
            except Exception as exc:  # never half done: this task fails, the rest go on
                yield from self._fail_waiting(task, f"it cannot run: {exc}", ev)
                continue
            task.args, task.settled, task.inputs = args, None, inputs
            assert task.job_id is not None
            self._set_state(task, TaskState.QUEUED)
            self._enqueue(task, self.jobs[task.job_id])
            self._woken = True

    def _too_large(self, task: Task) -> str:
        return (
            f"it cannot run: the results of the tasks it depends on come to at least "
            f"{task.resolved_bytes} bytes as JSON, more than the {self.max_resolved_bytes} "
            "one task's arguments may hold: have those tasks return smaller results (a large "
            "result is kept as a blob by a worker that can), or make each task depend on "
            "fewer of them (reduce in a tree)"
        )

    def _fail_waiting(self, task: Task, reason: str, ev: Event) -> Iterator[Command]:
        task.reasons.append(reason)
        self._finish(task, TaskState.FAILED)
        yield _failed(task, ev.stimulus_id)

    def _forget(self, job: Job) -> None:
        """The job is over and told: it leaves memory (the store has it)."""
        self._unring(job)  # a task released from it may have stayed in its queue
        del self.jobs[job.job_id]
        self._job_marks.pop(job.job_id, None)

    # --- task life -------------------------------------------------------------------

    def _new_task(
        self,
        op: str,
        args: dict[str, Any],
        job_id: int | None,
        index: int,
        *,
        lease_timeout_s: float | None = None,
        max_attempts: int | None = None,
        pinned_to: int | None = None,
    ) -> Task:
        self._next_task_id += 1
        task = Task(
            task_id=next(self._task_ids),
            job_id=job_id,
            index=index,
            op=op,
            args=args,
            lease_timeout_s=lease_timeout_s
            or self.op_lease_timeouts.get(op)
            or self.lease_timeout_s,
            max_attempts=max_attempts or self.max_attempts,
            pinned_to=pinned_to,
            inputs=self.inputs(args) if job_id is not None else frozenset(),
            environment=self.environment(args) if job_id is not None else None,
        )
        self.tasks[task.task_id] = task
        return task

    def _enqueue(self, task: Task, job: Job) -> None:
        if task.queued:
            return
        task.queued = True
        job.push(task)
        if job.job_id not in self._ringed:
            self._ringed.add(job.job_id)
            self._rings.setdefault(job.options.priority, deque()).append(job.job_id)

    def _lease(
        self, task: Task, worker: Worker, now: float, stimulus_id: str, speculative: bool = False
    ) -> SendTask:
        if task.state is TaskState.QUEUED:
            self._set_state(task, TaskState.LEASED)
        task.attempts += 1
        lease = Lease(start=now, deadline=now + task.lease_timeout_s, speculative=speculative)
        task.leases[worker.worker_id] = lease
        self._leases += 1
        heapq.heappush(self._deadlines, (lease.deadline, task.task_id, worker.worker_id))
        if len(self._deadlines) > 2 * self._leases + _STALE_DEADLINES:
            self._drop_stale_deadlines()
        worker.in_flight.add(task.task_id)
        if task.job_id is not None:
            worker.job_held[task.job_id] = worker.job_held.get(task.job_id, 0) + 1
        self._fit_prefetch(worker)
        if task.replicated and not task.vouch:
            task.vouch = worker.standing.vouched or self._vouched_can_take(task)
        if task.replicated and not speculative:
            if not task.replicas and len(task.leases) == 1:  # a first replica: how many?
                trusted = task.adaptive and self.standing(worker.key).trusted
                spared = trusted and self._random() >= self.spot_check
                task.needed = 1 if spared else task.quorum
            if self._wants_more(task):
                assert task.job_id is not None
                self._enqueue(task, self.jobs[task.job_id])
        return SendTask(
            worker_id=worker.worker_id,
            task_id=task.task_id,
            op=task.op,
            args=task.args,
            welcome=task.pinned_to is not None,
            speculative=speculative,
            stimulus_id=stimulus_id,
        )

    def _release(self, task: Task, worker: Worker) -> Lease:
        """End ``worker``'s lease on ``task`` and give the worker its credit back."""
        lease = task.leases.pop(worker.worker_id)
        self._leases -= 1
        worker.in_flight.discard(task.task_id)
        if task.job_id is not None:
            left = worker.job_held.pop(task.job_id) - 1
            if left:
                worker.job_held[task.job_id] = left
        self._fit_prefetch(worker)
        return lease

    def _drop_stale_deadlines(self) -> None:
        """Deadlines of ended leases wait in the heap until their time (a minute, by
        default): past twice as many as the leases running, keep only the running ones."""
        running = []
        for entry in self._deadlines:
            deadline, task_id, worker_id = entry
            task = self.tasks.get(task_id)
            lease = task.leases.get(worker_id) if task else None
            if lease is not None and lease.deadline == deadline:
                running.append(entry)
        heapq.heapify(running)
        self._deadlines = running

    def _take_back(self, task: Task, worker: Worker, reason: str, ev: Event) -> CancelTask:
        """End a lease the worker may still be working on: tell it, ignore its late report."""
        self._release(task, worker)
        if len(worker.ignored) >= _MAX_IGNORED:
            worker.ignored.clear()  # a worker that obeys cancels never reports these
        worker.ignored.add(task.task_id)
        return CancelTask(
            worker_id=worker.worker_id,
            task_id=task.task_id,
            reason=reason,
            stimulus_id=ev.stimulus_id,
        )

    def _lose(
        self,
        task: Task,
        worker: Worker,
        reason: str,
        kind: LossKind,
        ev: Event,
        *,
        released: bool = False,
        counted: bool = True,
    ) -> Iterator[Command]:
        """``worker``'s lease ended without a result: queue again, cancel or fail the task.
        The loss counts against the worker (once for the leases one incident ends:
        ``counted``), against the task only when it points at the task (see the class
        docstring)."""
        if not released:
            self._release(task, worker)
        self.lost_leases[kind] += 1
        task.reasons.append(reason)
        task.failed_on.add(worker.worker_id)
        standing = worker.standing
        task.charges += self._charges(task, worker, kind)
        if counted:
            standing.lose()
            self._refresh_credit(worker.key)  # its workers hold fewer tasks at once now
        if kind == "error" and task.pinned_to is None:
            task.error_keys.append(worker.key)  # judged when the task ends
            self._hold(worker.key)
        yield from self._after_loss(task, ev)
        if kind != "error" and counted and standing.judge_losses():
            yield from self._quarantine(worker.key, standing, ev)

    def _charges(self, task: Task, worker: Worker, kind: LossKind) -> bool:
        """Whether ``worker`` losing ``task`` points at the task: a dropped connection
        when the worker is established; an error or a passed deadline when it is
        established, when it is reliable and no established worker could take the task
        instead, or when no other worker at all could. Strangers with no record, however
        many, charge nothing while a worker with one could run the task."""
        standing = worker.standing
        if kind == "disconnected" or standing.established:
            return standing.established
        if standing.reliable:
            return not self._reliable_other(task, worker, established=True)
        return not self._others_can_run(task, worker)

    def _after_loss(self, task: Task, ev: Event) -> Iterator[Command]:
        if task.leases:
            if task.replicated and self._wants_more(task):
                self._enqueue(task, self.jobs[task.job_id])  # type: ignore[index]
            return  # another copy is still running
        if task.pinned_to is not None:
            self._finish(task, TaskState.CANCELLED)  # a welcome task measures one worker only
        elif task.charges < task.max_attempts and len(task.reasons) < self._loss_limit(task):
            yield from self._reconsider(task, ev)
        else:
            self._finish(task, TaskState.FAILED)
            yield _failed(task, ev.stimulus_id)

    def _loss_limit(self, task: Task) -> int:
        return self.max_losses or max(12, 4 * task.max_attempts)

    def _judge_proven(self, ev: Event) -> Iterator[Command]:
        """Error reports on tasks that were done elsewhere since: the reporters' losses
        are proven theirs; quarantine those that keep losing."""
        proven, self._proven = self._proven, []
        for key in proven:
            standing = self.standings.get(key)
            if standing is not None and standing.judge_losses():
                yield from self._quarantine(key, standing, ev)
            self._unhold(key)

    def _set_state(self, task: Task, new: TaskState) -> None:
        old = task.state
        task.move_to(new)
        if task.pinned_to is None:
            self._leased += (new is TaskState.LEASED) - (old is TaskState.LEASED)
        if task.job_id is not None:
            counts = self.jobs[task.job_id].counts
            counts[old] -= 1
            counts[new] += 1
            self._changed_job(task.job_id)

    def _finish(self, task: Task, final: TaskState) -> None:
        self._set_state(task, final)
        task.queued = False
        del self.tasks[task.task_id]
        for dep in task.after:  # a waiting task: it waits no more
            waiting = self._dependents.get(dep)
            if waiting is not None:
                waiting.pop(task.task_id, None)
                if not waiting:
                    del self._dependents[dep]
        if task.after:
            task.after = frozenset()
            task.settled = None
        if task.error_keys:  # its error reports: wrong if it was done, right if it failed
            if final is TaskState.DONE:
                self._proven.extend(task.error_keys)  # judged, then let go, by handle()
            else:
                for key in task.error_keys:
                    if final is TaskState.FAILED and key in self.standings:
                        self.standings[key].forgive()
                        self._refresh_credit(key)
                    self._unhold(key)
            task.error_keys = []
        for replica in task.replicas:  # replicas no longer wait for this task's quorum
            voter = self.workers.get(replica.worker_id)
            if voter is not None:
                voter.voted.discard(task.task_id)
        if task.job_id is not None:
            job = self.jobs[task.job_id]
            job.live.discard(task.task_id)
            job.wanting.pop(task.task_id, None)
            self._unreported_outcome(task, job)

    def _add_worker_of(self, key: str, worker_id: int) -> None:
        known = self._key_workers.get(key)
        if known is None:
            self._key_workers[key] = worker_id
        elif isinstance(known, int):
            self._key_workers[key] = {known, worker_id}
        else:
            known.add(worker_id)

    def _forget_worker_of(self, key: str, worker_id: int) -> None:
        known = self._key_workers[key]
        if isinstance(known, int):
            del self._key_workers[key]
            return
        known.discard(worker_id)
        if len(known) == 1:
            self._key_workers[key] = known.pop()

    def _refresh_credit(self, key: str) -> None:
        """Identity ``key``'s loss rate changed: each of its connected workers may hold
        more, or fewer, tasks now."""
        if key.startswith("#"):  # a connection's own name
            ids: Iterable[int] = (int(key[1:]),)
        else:
            known = self._key_workers.get(key, ())
            ids = (known,) if isinstance(known, int) else known
        for worker_id in ids:
            worker = self.workers.get(worker_id)
            if worker is not None:
                self._credit_changed(worker)

    def _unreported_outcome(self, task: Task, job: Job) -> None:
        """Keep the job until the shell reports the final task's outcome (and the standings
        its replicas judged, for the shell to store): see ``OutcomesReported``."""
        if task.task_id not in self._unreported:  # (in a grid, a task may be taken again)
            self._unreported[task.task_id] = job.job_id
            job.unreported += 1
        keys = tuple(r.key for r in task.replicas if not r.key.startswith("#"))
        if keys:  # held since they came: now until the outcome is reported
            self._unreported_keys[task.task_id] = self._unreported_keys.get(task.task_id, ()) + keys

    def _held(self, worker_id: int, task_id: TaskId) -> Task | None:
        """The task if ``worker_id`` holds a lease on it now, else None."""
        task = self.tasks.get(task_id) if isinstance(task_id, int) else None
        if task is None or worker_id not in task.leases:
            return None
        return task

    def _unheld(self, worker: Worker, task_id: TaskId, stimulus_id: str) -> Iterator[Command]:
        """A report on a task the worker does not hold: quietly dropped if it was taken back."""
        if isinstance(task_id, int) and task_id in worker.ignored:
            worker.ignored.discard(task_id)
            return
        yield RejectReport(
            worker_id=worker.worker_id,
            task_id=task_id,
            reason=f"no task {task_id!r} is leased to this worker",
            stimulus_id=stimulus_id,
        )

    def _learn_duration(self, op: str, seconds: float) -> None:
        mean = self.op_mean_s.get(op)
        self.op_mean_s[op] = seconds if mean is None else mean + _EWMA * (seconds - mean)

    # --- choosing work -----------------------------------------------------------------

    def _fit_prefetch(self, worker: Worker) -> None:
        """With ``buffer_s``: hold about that much work beyond what runs, at the speed of
        ``_expected_ms`` (1 per slot until there is one); then its credit changed."""
        if self.buffer_s is not None and worker.prefetch_cap > 0:
            expected = self._expected_ms(worker)
            if expected is None:
                wanted = 1
            else:
                wanted = max(1, int(self.buffer_s * 1000 / max(expected, 0.001)))
            worker.prefetch = min(worker.prefetch_cap, wanted * worker.concurrency)
        self._credit_changed(worker)

    @staticmethod
    def _expected_ms(worker: Worker) -> float | None:
        """What a task ``worker`` holds is expected to take: what it took on the slowest job
        it holds tasks of, None while it holds one it has not timed; holding none, its mean
        over all its tasks (None before its first)."""
        if not worker.job_held:
            return worker.mean_ms
        slowest = 0.0
        for job_id in worker.job_held:
            on_job = worker.job_ms.get(job_id)
            if on_job is None:
                return None
            slowest = max(slowest, on_job)
        return slowest

    def _credit_changed(self, worker: Worker) -> None:
        """After a change of its state, tasks in flight, concurrency, prefetch or quarantine."""
        if worker.state is WorkerState.GONE:
            return  # _left took it out of _hungry and of the changes
        self._changed_worker(worker.worker_id)
        if worker.credit > 0:
            self._hungry.setdefault(worker.worker_id)
        else:
            self._hungry.pop(worker.worker_id, None)

    def _dispatch(self, now: float, stimulus_id: str) -> Iterator[SendTask]:
        """Lease queued tasks to workers with credit, one at a time round robin, so that a
        short queue spreads over many workers instead of filling the first."""
        if not self._ringed:  # nothing queued: spare the copy of every hungry worker
            return
        self._cold_may_start.clear()
        hungry = list(self._hungry)
        waiting: dict[int, None] = {}  # left a task for a holder of its inputs: once the
        retried = False  # holders are done taking, they are tried once more in this pass
        while hungry and self._ringed:
            still_hungry: list[int] = []
            for worker_id in hungry:
                worker = self.workers[worker_id]
                self._left_for_holder = False
                task = self._next_for(worker)
                if task is None:
                    if self._left_for_holder and not retried:
                        waiting[worker_id] = None
                    continue
                yield self._lease(task, worker, now, stimulus_id)
                if worker.credit > 0:
                    still_hungry.append(worker_id)
            hungry = still_hungry
            if not hungry and waiting and not retried:
                hungry, retried = list(waiting), True

    def _next_for(self, worker: Worker) -> Task | None:
        """The next task for ``worker``: highest priority first, jobs in turn within one."""
        for priority in sorted(self._rings, reverse=True):
            ring = self._rings[priority]
            for _ in range(len(ring)):
                job = self.jobs[ring[0]]
                ring.rotate(-1)
                task = self._take(job, worker)
                if task is not None:
                    if not job.queued():
                        self._unring(job)
                    return task
        return None

    def _unring(self, job: Job) -> None:
        """Take a job with nothing queued out of the round robin."""
        if job.job_id not in self._ringed:
            return
        self._ringed.discard(job.job_id)
        ring = self._rings[job.options.priority]
        ring.remove(job.job_id)
        if not ring:
            del self._rings[job.options.priority]

    def _take(self, job: Job, worker: Worker) -> Task | None:
        """Pop ``job``'s oldest queued task that ``worker`` runs and has not failed: first a
        replicated task under way that wants another worker (among the oldest few), else
        a fresh one."""
        if job.wanting:
            for task_id in itertools.islice(job.wanting, _MAX_WANTING_LOOKS):
                wanting = self.tasks[task_id]
                if wanting.op in worker.ops and self._may_take(wanting, worker):
                    del job.wanting[task_id]
                    wanting.queued = False
                    return wanting
        heads: list[tuple[int, list[int]]] = []
        for op, heap in job.queues.items():
            if op in worker.ops and heap and (op not in worker.cold or self._may_start(op)):
                heads.append((heap[0], heap))
        heads.sort()
        skipped: list[tuple[int, list[int]]] = []
        found = None
        while heads and found is None and len(skipped) < _MAX_SKIPS:
            task_id, heap = heads.pop(0)
            heapq.heappop(heap)
            task = self.tasks.get(task_id)
            if task is not None and task.queued:
                if self._may_take(task, worker):
                    found = task
                    task.queued = False
                else:
                    skipped.append((task_id, heap))  # leave it for another worker
            # else: a replicated task that ended while it waited here: drop it
            if found is None and heap:
                heads.append((heap[0], heap))
                heads.sort()
        for task_id, heap in skipped:
            heapq.heappush(heap, task_id)
        return found

    def _may_start(self, op: str) -> bool:
        """Whether a worker still cold for ``op`` should start it up (seconds, for Pyodide)
        now: only when more tasks of ``op`` are queued than its warm workers have room for,
        so a cold tab never gets a short task that a warm worker could take at once.
        The room of a worker that runs only some environments is not counted: it may be
        unable to take any task queued, and a cold tab would then wait for ever.
        Decided once per dispatch pass."""
        decided = self._cold_may_start.get(op)
        if decided is None:
            queued = sum(len(self.jobs[job_id].queues.get(op, ())) for job_id in self._ringed)
            room = sum(
                w.credit
                for w in self.workers.values()
                if op in w.ops and op not in w.cold and w.environments is None
            )
            decided = self._cold_may_start[op] = queued > room
        return decided

    def _may_take(self, task: Task, worker: Worker, *, locality: bool = True) -> bool:
        """Whether ``worker`` may have ``task``: never a second replica for one worker
        identity, not one it failed while another worker could take it, and not a task
        lost before when it is unreliable and a reliable worker could take it; with
        ``locality``, not one whose large inputs a worker that could take it holds
        (``_holder_free``)."""
        if not self._eligible(task, worker):
            return False
        if task.reasons and not worker.standing.reliable and self._reliable_other(task, worker):
            return False
        if task.replicated and not worker.standing.vouched and self._wants_voucher(task):
            return False
        if task.replicated and self._address_taken(task, worker):
            return False
        if (
            locality
            and task.inputs
            and not task.inputs <= worker.holds
            and self._holder_free(task, worker)
        ):
            self._left_for_holder = True
            return False
        return worker.worker_id not in task.failed_on or not self._others_can_run(task, worker)

    def _holder_free(self, task: Task, worker: Worker) -> bool:
        """True if a worker other than ``worker`` that holds all of ``task``'s inputs would
        be given it (``_may_take`` but for locality; not cold for its op, or it may start):
        ``task`` waits for it rather than move its inputs once more (BOINC's locality
        scheduling). A holder with room now is waited for; a busy one only by a worker
        with no free slot (which would queue the task up, not run it): others run such
        tasks at once, and fetch the inputs. A few holders are looked at, in a fixed
        order (the core is deterministic)."""
        first, *rest = sorted(task.inputs)
        queue_up = len(worker.in_flight) >= worker.concurrency
        holders = self._holders.get(first, ())  # worker ids: a set's order of ints is its
        for worker_id in itertools.islice(holders, _MAX_HOLDERS_LOOKED):  # history's
            holder = self.workers[worker_id]
            if (
                holder is not worker
                and (holder.credit > 0 or (queue_up and holder.concurrency > 0))
                and all(digest in holder.holds for digest in rest)
                and (task.op not in holder.cold or self._may_start(task.op))
                and self._may_take(task, holder, locality=False)
            ):
                return True
        return False

    def _address_taken(self, task: Task, worker: Worker) -> bool:
        """True if ``worker`` connects from an address that already has a replica or a
        lease of ``task`` while a worker from another address could take it (among the
        first few hundred connected)."""
        if worker.address is None:
            return False
        taken = {r.address for r in task.replicas}
        taken.update(self.workers[w].address for w in task.leases)
        if worker.address not in taken:
            return False
        return any(
            other.address not in taken and other.concurrency > 0 and self._eligible(task, other)
            for other in itertools.islice(self.workers.values(), _MAX_OTHERS_LOOKED)
        )

    def _wants_voucher(self, task: Task) -> bool:
        """True if the next lease of ``task`` is for a vouched worker (one could take it):
        when it could complete a quorum without a vouched identity, or its results
        disagree."""
        if not self._vouched_can_take(task):
            return False
        groups = self._groups_of(task)
        vouched = any(r.vouched for r in task.replicas) or any(
            self.workers[w].standing.vouched for w in task.leases
        )
        if vouched:
            return len(groups) > 1
        largest = len(groups[0]) if groups else 0
        return largest + len(task.leases) >= task.needed - 1

    def _reliable_other(self, task: Task, worker: Worker, *, established: bool = False) -> bool:
        """True if a reliable (or ``established``) worker other than ``worker``, that has
        not failed ``task`` and is not paused, could take it (among the first reliable ones
        of its op)."""
        return any(
            other is not worker
            and (not established or other.standing.established)
            and other.worker_id not in task.failed_on
            and other.concurrency > 0
            and self._eligible(task, other)
            for other in self._reliable_of(task.op)
        )

    def _reliable_of(self, op: str) -> list[Worker]:
        """Reliable workers that run ``op`` among the first connected (the longest-lived: a
        few hundred at most, so an event costs no scan of a large grid), once per event."""
        found = self._reliable.get(op)
        if found is None:
            looked = itertools.islice(self.workers.values(), _MAX_OTHERS_LOOKED)
            found = self._reliable[op] = [
                w
                for w in looked
                if op in w.ops and w.standing.reliable and w.state is not WorkerState.GONE
            ]
        return found

    def _eligible(self, task: Task, worker: Worker) -> bool:
        """Whether ``worker`` could hold ``task`` besides the leases it has: it runs the op
        and the task's environment (``_suits``), is not quarantined, holds no lease on it,
        and (replicated) its identity has no replica or lease of it yet."""
        if task.op not in worker.ops or worker.quarantined or worker.worker_id in task.leases:
            return False
        if task.environment is not None and not self._suits(task, worker):
            return False
        if not task.replicated:
            return True
        if any(replica.key == worker.key for replica in task.replicas):
            return False
        return all(self.workers[held].key != worker.key for held in task.leases)

    @staticmethod
    def _suits(task: Task, worker: Worker) -> bool:
        """Whether ``worker`` runs ``task``'s environment: any worker a task without one; a
        native one only a worker that runs native environments; and one the worker does
        not have only a worker that builds new environments."""
        env = task.environment
        if env is None:
            return True
        return (not env.native or worker.native) and (
            worker.environments is None or env.env_id in worker.environments
        )

    def _others_can_run(self, task: Task, worker: Worker) -> bool:
        """True if a connected worker other than ``worker`` that has not failed this task
        could take it (looking at a few hundred at most: in a large grid one can, unless
        every worker that runs its op, or its native environment, failed it)."""
        failed = sum(
            1
            for worker_id in task.failed_on
            if worker_id in self.workers
            and task.op in self.workers[worker_id].ops
            and self._suits(task, self.workers[worker_id])
        )
        native = task.environment is not None and task.environment.native
        runners = self._native_workers if native else self._op_workers
        if runners[task.op] <= failed:
            return False
        candidates = (
            other
            for other in self.workers.values()
            if other is not worker and other.worker_id not in task.failed_on
        )
        looked = itertools.islice(candidates, _MAX_OTHERS_LOOKED)
        if any(self._eligible(task, other) for other in looked):
            return True
        return len(self.workers) > _MAX_OTHERS_LOOKED

    def _speculate(self, now: float, stimulus_id: str) -> Iterator[SendTask]:
        """Copy stragglers to workers still idle after dispatch: nothing queued suits them."""
        assert self.speculate_factor is not None
        if not self._leased:  # no lease, so no straggler: spare the scan of every worker
            return
        idle = [w for w in self.workers.values() if w.idle and w.credit > 0]
        if not idle:
            return
        stragglers = sorted(
            (lease.start, task.task_id)
            for task in self.tasks.values()
            if task.state is TaskState.LEASED
            and len(task.leases) == 1
            and task.pinned_to is None
            and not task.replicated
            for lease in task.leases.values()
            if not lease.speculative
            and now - lease.start
            > max(self.speculate_min_s, self.speculate_factor * self.op_mean_s.get(task.op, 0))
        )
        for _, task_id in stragglers:
            task = self.tasks[task_id]
            for worker in idle:
                if (
                    task.op in worker.ops
                    and self._suits(task, worker)
                    and worker.worker_id not in task.leases
                    and worker.worker_id not in task.failed_on
                    and worker.idle
                    and task.op in self.op_mean_s
                ):
                    yield self._lease(task, worker, now, stimulus_id, speculative=True)
                    break


def _bounded_ms(duration_ms: float) -> float:
    """A reported duration as the scheduler counts it: from 0 to ``MAX_DURATION_MS``."""
    if duration_ms != duration_ms:  # NaN
        return MAX_DURATION_MS
    return min(max(duration_ms, 0.0), MAX_DURATION_MS)


def _since(marks: dict[int, int], mark: int) -> frozenset[int]:
    """The ids in ``marks`` (oldest change first) that changed after ``mark``: read from
    the newest back, so the cost is what changed."""
    changed = []
    for key, changed_at in reversed(marks.items()):
        if changed_at <= mark:
            break
        changed.append(key)
    return frozenset(changed)


def _no_futures(args: dict[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    raise ValueError("this scheduler was given no way to put results into arguments")


def _failed(task: Task, stimulus_id: str) -> TaskFailed:
    """The command reporting ``task`` failed, with why each of its attempts failed."""
    return TaskFailed(
        task_id=task.task_id,
        job_id=task.job_id,
        index=task.index,
        op=task.op,
        reasons=tuple(task.reasons),
        stimulus_id=stimulus_id,
    )


def _done(
    task: Task,
    worker_id: int,
    result: Any,
    duration_ms: float,
    stimulus_id: str,
    verdict: Verdict = "unchecked",
    replicas: tuple[ReplicaVerdict, ...] = (),
) -> TaskDone:
    """The command reporting ``task`` done with ``worker_id``'s ``result``."""
    return TaskDone(
        worker_id=worker_id,
        task_id=task.task_id,
        job_id=task.job_id,
        index=task.index,
        op=task.op,
        result=result,
        duration_ms=duration_ms,
        attempts=task.attempts,
        welcome=task.pinned_to is not None,
        stimulus_id=stimulus_id,
        verdict=verdict,
        replicas=replicas,
    )


__all__ = ["EXERCISE_OPS", "FINAL_STATES", "Changes", "Scheduler", "WelcomeTask"]
