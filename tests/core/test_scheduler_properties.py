"""Random event sequences against the scheduler: credit, op matching, job counts, where each
task is, and every task ending exactly once."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from browsergrid.core import (
    EXERCISE_OPS,
    CancelTask,
    ClockTicked,
    Command,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    TasksAccepted,
    TaskSpec,
    TasksSubmitted,
    TaskState,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)

OPS = ("repeat_multiply", "a", "b")
TaskId = int | str
DEFAULT_ATTEMPTS = 2

task_specs = st.lists(
    st.builds(
        TaskSpec,
        op=st.sampled_from(OPS),
        args=st.just({"n": 1}),
        max_attempts=st.none() | st.integers(1, 3),
        lease_timeout_s=st.none() | st.sampled_from([2.0, 20.0]),
    ),
    min_size=1,
    max_size=4,
)


class SchedulerMachine(RuleBasedStateMachine):
    """Drives one Scheduler; checks each command as it comes out and the state after each step.

    The model keeps only what the events and commands say: which workers are connected, what
    they announced and hold, which tasks each job has, which were taken back from whom, and
    how each task ended.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sched = Scheduler(welcome=None)
        self.now = 0.0
        self.worker_ids = itertools.count(1)
        self.stimuli = itertools.count(1)
        self.ops: dict[int, frozenset[str]] = {}  # connected workers -> what they run
        self.cap: dict[int, int] = {}  # connected workers -> concurrency + prefetch asked
        self.asked: dict[int, int] = {}  # connected workers -> prefetch asked in hello
        self.introduced: set[int] = set()
        self.holds: defaultdict[int, set[int]] = defaultdict(set)  # leases, from commands
        self.sent: defaultdict[int, set[int]] = defaultdict(set)  # ever sent to a worker
        self.taken_back: defaultdict[int, set[int]] = defaultdict(set)  # a report is dropped
        self.job_tasks: dict[int, list[int]] = {}  # job -> its task ids, by index
        self.task_job: dict[int, int] = {}
        self.task_op: dict[int, str] = {}
        self.task_attempts: dict[int, int] = {}  # max_attempts each task should get
        self.cancelled_jobs: set[int] = set()
        self.welcome_ids: set[int] = set()
        self.ended: Counter[int] = Counter()  # TaskDone, TaskFailed and JobCancelled ids
        self.outcome: dict[int, TaskState] = {}
        self.reasons: defaultdict[int, list[str]] = defaultdict(list)  # one per lost lease
        self.most_open = 50  # submit no more while this many tasks are queued or leased

    # --- driving ---------------------------------------------------------------------

    def sid(self) -> str:
        return f"s{next(self.stimuli)}"

    def end(self, task_id: int, state: TaskState) -> None:
        self.ended[task_id] += 1
        assert self.ended[task_id] == 1, f"task {task_id} ended twice"
        assert not any(task_id in held for held in self.holds.values()), "ended while leased"
        if task_id in self.task_job:
            self.outcome[task_id] = state

    def accept(self, event: TasksSubmitted, command: TasksAccepted) -> None:
        assert command.count == len(event.tasks)
        if event.job_id is None:
            assert command.job_id not in self.job_tasks
            self.job_tasks[command.job_id] = []
            job_attempts = event.options.max_attempts
        else:
            assert command.job_id == event.job_id
            job_attempts = self.sched.jobs[command.job_id].options.max_attempts
        tasks = self.job_tasks[command.job_id]
        assert command.first_index == len(tasks)
        for offset, spec in enumerate(event.tasks):
            task_id = command.first_task_id + offset
            assert task_id not in self.task_job and task_id not in self.welcome_ids
            tasks.append(task_id)
            self.task_job[task_id] = command.job_id
            self.task_op[task_id] = spec.op
            self.task_attempts[task_id] = spec.max_attempts or job_attempts or DEFAULT_ATTEMPTS

    def apply(self, event: Event) -> list[Command]:
        commands = self.sched.handle(event)
        if isinstance(event, WorkerLeft):
            for task_id in sorted(self.holds.pop(event.worker_id, set())):
                self.reasons[task_id].append(f"worker {event.worker_id} disconnected")
        for command in commands:
            assert command.stimulus_id == event.stimulus_id
            match command:
                case TasksAccepted():
                    assert isinstance(event, TasksSubmitted)
                    self.accept(event, command)
                case SendTask():
                    worker_id, task_id = command.worker_id, command.task_id
                    assert worker_id in self.ops, "sent to a worker that left"
                    assert command.op in self.ops[worker_id], "op not announced"
                    assert task_id not in self.holds[worker_id], "sent twice to one worker"
                    if command.welcome:
                        assert isinstance(event, WorkerJoined)
                        assert worker_id == event.worker_id
                        self.welcome_ids.add(task_id)
                    else:
                        assert self.task_op[task_id] == command.op
                        assert task_id not in self.ended
                    if command.speculative:
                        assert isinstance(event, ClockTicked)
                        assert any(task_id in held for held in self.holds.values())
                    self.sent[worker_id].add(task_id)
                    self.holds[worker_id].add(task_id)
                case CancelTask():
                    assert command.task_id in self.holds[command.worker_id]
                    self.holds[command.worker_id].discard(command.task_id)
                    self.taken_back[command.worker_id].add(command.task_id)
                    if isinstance(event, ClockTicked):  # a deadline passed: the lease is lost
                        self.reasons[command.task_id].append(command.reason)
                case TaskDone():
                    if command.welcome:
                        assert command.task_id in self.welcome_ids and command.job_id is None
                    else:
                        assert command.job_id == self.task_job[command.task_id]
                        tasks = self.job_tasks[command.job_id]
                        assert tasks[command.index] == command.task_id
                    self.end(command.task_id, TaskState.DONE)
                case TaskFailed():
                    task_id = command.task_id
                    assert command.job_id == self.task_job[task_id]  # welcome tasks never fail
                    assert self.job_tasks[command.job_id][command.index] == task_id
                    # one reason per lost lease, copies included: at least max_attempts
                    assert command.reasons == tuple(self.reasons[task_id])
                    assert len(command.reasons) >= self.task_attempts[task_id]
                    self.end(task_id, TaskState.FAILED)
                case JobCancelled():
                    assert isinstance(event, JobCancelRequested)
                    assert command.job_id == event.job_id
                    unfinished = [t for t in self.job_tasks[command.job_id] if t not in self.ended]
                    assert list(command.task_ids) == unfinished
                    for task_id in command.task_ids:
                        self.end(task_id, TaskState.CANCELLED)
                case RejectReport():
                    assert isinstance(event, ResultReported | TaskErrorReported)
        return commands

    def join_worker(self) -> int:
        worker_id = next(self.worker_ids)
        self.ops[worker_id] = EXERCISE_OPS
        self.cap[worker_id] = 1
        self.asked[worker_id] = 0
        self.apply(WorkerJoined(worker_id=worker_id, now=self.now, stimulus_id=self.sid()))
        return worker_id

    def introduce(
        self, worker_id: int, ops: frozenset[str], concurrency: int, prefetch: int
    ) -> None:
        self.ops[worker_id] = ops
        self.cap[worker_id] = concurrency + prefetch
        self.asked[worker_id] = prefetch
        self.introduced.add(worker_id)
        self.apply(
            WorkerIntroduced(
                worker_id=worker_id,
                ops=ops,
                concurrency=concurrency,
                prefetch=prefetch,
                now=self.now,
                stimulus_id=self.sid(),
            )
        )

    def report(self, worker_id: int, task_id: TaskId, error: bool) -> list[Command]:
        held = task_id in self.holds[worker_id]
        if held:
            assert isinstance(task_id, int)
            self.holds[worker_id].discard(task_id)
            if error:
                self.reasons[task_id].append(f"worker {worker_id} reported: x")
        sid = self.sid()
        event: Event
        if error:
            event = TaskErrorReported(
                worker_id=worker_id, task_id=task_id, message="x", now=self.now, stimulus_id=sid
            )
        else:
            event = ResultReported(
                worker_id=worker_id,
                task_id=task_id,
                result=1.0,
                duration_ms=1.0,
                now=self.now,
                stimulus_id=sid,
            )
        commands = self.apply(event)
        if held:
            assert not any(isinstance(c, RejectReport) for c in commands)
            if not error:
                finished = [c for c in commands if isinstance(c, TaskDone)]
                assert [(c.worker_id, c.task_id) for c in finished] == [(worker_id, task_id)]
        elif task_id in self.taken_back[worker_id]:
            assert commands == [], "a late report on a task taken back is dropped silently"
            self.taken_back[worker_id].discard(task_id)
        else:
            assert commands == [
                RejectReport(
                    worker_id=worker_id,
                    task_id=task_id,
                    reason=f"no task {task_id!r} is leased to this worker",
                    stimulus_id=sid,
                )
            ]
        return commands

    def anonymous(self) -> list[int]:
        return sorted(w for w in self.ops if w not in self.introduced)

    def busy(self) -> list[int]:
        return sorted(w for w in self.ops if self.holds[w])

    def open_jobs(self) -> list[int]:
        return sorted(set(self.job_tasks) - self.cancelled_jobs)

    # --- rules -----------------------------------------------------------------------

    @initialize(
        welcome=st.booleans(),
        speculate_factor=st.sampled_from([2.0, 4.0]),
        speculate_min_s=st.sampled_from([0.5, 1.0]),
        workers=st.integers(0, 3),
        most_open=st.sampled_from([1, 2, 3, 50]),
        buffer_s=st.sampled_from([None, 0.0, 0.001, 0.01]),
    )
    def start(
        self,
        welcome: bool,
        speculate_factor: float,
        speculate_min_s: float,
        workers: int,
        most_open: int,
        buffer_s: float | None,
    ) -> None:
        self.most_open = most_open  # light load leaves workers idle: copies become likely
        kwargs: dict[str, Any] = {
            "lease_timeout_s": 10.0,
            "op_lease_timeouts": {"a": 5.0},
            "max_attempts": DEFAULT_ATTEMPTS,
            "speculate_factor": speculate_factor,
            "speculate_min_s": speculate_min_s,
            "buffer_s": buffer_s,  # results take 1 ms: 0.001 s holds 1 per slot, 0.01 s 10
        }
        self.sched = Scheduler(**kwargs) if welcome else Scheduler(welcome=None, **kwargs)
        for _ in range(workers):
            self.join_worker()

    @rule()
    def join(self) -> None:
        self.join_worker()

    @precondition(lambda self: self.anonymous())
    @rule(
        data=st.data(),
        ops=st.frozensets(st.sampled_from(OPS)),
        concurrency=st.integers(1, 3),
        prefetch=st.integers(0, 2),
    )
    def hello(
        self, data: st.DataObject, ops: frozenset[str], concurrency: int, prefetch: int
    ) -> None:
        worker_id = data.draw(st.sampled_from(self.anonymous()), label="worker")
        self.introduce(worker_id, ops, concurrency, prefetch)

    @precondition(lambda self: self.ops)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        worker_id = data.draw(st.sampled_from(sorted(self.ops)), label="worker")
        del self.ops[worker_id]
        self.apply(WorkerLeft(worker_id=worker_id, now=self.now, stimulus_id=self.sid()))

    @precondition(lambda self: len(self.sched.tasks) < self.most_open)
    @rule(
        tasks=task_specs,
        priority=st.integers(0, 2),
        max_attempts=st.none() | st.integers(1, 3),
        lease_timeout_s=st.none() | st.sampled_from([3.0, 15.0]),
    )
    def submit_job(
        self,
        tasks: list[TaskSpec],
        priority: int,
        max_attempts: int | None,
        lease_timeout_s: float | None,
    ) -> None:
        options = JobOptions(
            priority=priority, max_attempts=max_attempts, lease_timeout_s=lease_timeout_s
        )
        self.apply(
            TasksSubmitted(tasks=tasks, options=options, now=self.now, stimulus_id=self.sid())
        )

    @precondition(lambda self: self.open_jobs() and len(self.sched.tasks) < self.most_open)
    @rule(data=st.data(), tasks=task_specs)
    def add_to_job(self, data: st.DataObject, tasks: list[TaskSpec]) -> None:
        job_id = data.draw(st.sampled_from(self.open_jobs()), label="job")
        self.apply(TasksSubmitted(tasks=tasks, job_id=job_id, now=self.now, stimulus_id=self.sid()))

    @rule(data=st.data(), tasks=task_specs)
    def add_to_a_closed_job(self, data: st.DataObject, tasks: list[TaskSpec]) -> None:
        unknown = st.integers(len(self.job_tasks) + 1, len(self.job_tasks) + 3)
        closed = st.sampled_from(sorted(self.cancelled_jobs)) if self.cancelled_jobs else unknown
        job_id = data.draw(closed | unknown, label="job")
        event = TasksSubmitted(tasks=tasks, job_id=job_id, now=self.now, stimulus_id=self.sid())
        try:
            self.sched.handle(event)
        except ValueError as e:
            assert str(e) == f"job {job_id} does not exist or was cancelled"
        else:
            raise AssertionError("tasks were added to a closed job")

    @precondition(lambda self: self.job_tasks)
    @rule(data=st.data())
    def cancel_job(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.job_tasks)), label="job")
        self.cancelled_jobs.add(job_id)
        self.apply(JobCancelRequested(job_id=job_id, now=self.now, stimulus_id=self.sid()))

    @precondition(lambda self: self.busy())
    @rule(data=st.data(), error=st.booleans())
    def answer_held_task(self, data: st.DataObject, error: bool) -> None:
        worker_id = data.draw(st.sampled_from(self.busy()), label="worker")
        task_id = data.draw(st.sampled_from(sorted(self.holds[worker_id])), label="task")
        self.report(worker_id, task_id, error)

    @precondition(lambda self: self.busy())
    @rule(data=st.data(), errors=st.lists(st.booleans(), max_size=5))
    def answer_everything_held(self, data: st.DataObject, errors: list[bool]) -> None:
        """A worker reports on all it holds at once (errors first, where ``errors`` says)."""
        worker_id = data.draw(st.sampled_from(self.busy()), label="worker")
        for task_id, error in itertools.zip_longest(sorted(self.holds[worker_id]), errors):
            if task_id is not None and task_id in self.holds[worker_id]:
                self.report(worker_id, task_id, bool(error))

    @precondition(lambda self: self.ops)
    @rule(
        data=st.data(),
        task_id=st.integers(-1, 40) | st.text(max_size=2),
        stale=st.booleans(),
        error=st.booleans(),
    )
    def answer_any_task(
        self, data: st.DataObject, task_id: TaskId, stale: bool, error: bool
    ) -> None:
        """A report for a random id, or for any task this worker was ever sent."""
        worker_id = data.draw(st.sampled_from(sorted(self.ops)), label="worker")
        if stale and self.sent[worker_id]:
            task_id = data.draw(st.sampled_from(sorted(self.sent[worker_id])), label="sent task")
        self.report(worker_id, task_id, error)

    @rule(
        data=st.data(),
        dt=st.floats(0.0, 15.0) | st.sampled_from([0.0, 0.4, 0.8, 1.5, 2.5]),
        to_straggler=st.booleans(),
    )
    def tick(self, data: st.DataObject, dt: float, to_straggler: bool) -> None:
        """Time passes: by ``dt``, or (``to_straggler``) just past the moment a running task
        may be copied to an idle worker, which random steps seldom hit before the deadline."""
        waits = self.copy_waits()
        if to_straggler and waits:
            dt = data.draw(st.sampled_from(waits), label="to straggler")
        self.advance(dt)

    @precondition(lambda self: self.running())
    @rule(data=st.data())
    def a_helper_joins_a_straggler(self, data: st.DataObject) -> None:
        """A worker that runs the op of a running task joins, says hello and answers its
        welcome task; then time passes until the task may be copied to it (it gets queued
        work of that op instead, if there is any)."""
        task = self.sched.tasks[data.draw(st.sampled_from(self.running()), label="task")]
        helper = self.join_worker()
        self.introduce(helper, frozenset({task.op}), 1, 0)
        for welcome_id in sorted(self.holds[helper] & self.welcome_ids):
            self.report(helper, welcome_id, error=False)
        waits = self.copy_waits()
        self.advance(waits[0] if waits else 0.0)

    def advance(self, dt: float) -> None:
        self.now += dt
        self.apply(ClockTicked(now=self.now, stimulus_id=self.sid()))

    def running(self) -> list[int]:
        """Tasks running on one worker, of an op with a known mean: candidates for a copy."""
        return sorted(
            task.task_id
            for task in self.sched.tasks.values()
            if task.pinned_to is None and len(task.leases) == 1 and task.op in self.sched.op_mean_s
        )

    def copy_waits(self) -> list[float]:
        """For each task an idle worker could take a copy of, how long until it may."""
        sched, waits = self.sched, []
        assert sched.speculate_factor is not None
        idle = [w for w in sched.workers.values() if w.idle]
        for task in sched.tasks.values():
            mean = sched.op_mean_s.get(task.op)
            leases = list(task.leases.values())
            if mean is None or task.pinned_to is not None or len(leases) != 1:
                continue
            if leases[0].speculative or not any(
                task.op in w.ops and w.worker_id not in task.failed_on for w in idle
            ):
                continue
            limit = max(sched.speculate_min_s, sched.speculate_factor * mean)
            waits.append(max(0.0, leases[0].start + limit - self.now) + 0.01)
        return sorted(waits)

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def workers_hold_what_they_were_sent_within_their_credit(self) -> None:
        assert set(self.sched.workers) == set(self.ops)
        for worker in self.sched.workers.values():
            assert worker.ops == self.ops[worker.worker_id]
            assert worker.in_flight == self.holds[worker.worker_id]
            assert len(worker.in_flight) <= self.cap[worker.worker_id]
            assert worker.prefetch <= self.asked[worker.worker_id]  # a buffer may trim it
            if self.sched.buffer_s is None:
                assert worker.prefetch == self.asked[worker.worker_id]

    @invariant()
    def job_counts_match_the_tasks(self) -> None:
        assert set(self.sched.jobs) == set(self.job_tasks)
        for job_id, task_ids in self.job_tasks.items():
            job = self.sched.jobs[job_id]
            assert job.total == len(task_ids) == sum(job.counts.values())
            states = Counter(
                self.outcome[t] if t in self.outcome else self.sched.tasks[t].state
                for t in task_ids
            )
            assert job.counts == {state: states[state] for state in TaskState}
            assert job.live == {t for t in task_ids if t not in self.outcome}
            assert job.finished == (not job.live)
            assert job.cancelled == (job_id in self.cancelled_jobs)

    @invariant()
    def each_task_is_queued_leased_or_final(self) -> None:
        assert set(self.sched.tasks) <= set(self.task_job) | self.welcome_ids
        for task_id, job_id in self.task_job.items():
            job = self.sched.jobs[job_id]
            in_queues = sum(heap.count(task_id) for heap in job.queues.values())
            task = self.sched.tasks.get(task_id)
            leased = task is not None and task.state is TaskState.LEASED
            final = task_id in self.outcome
            assert in_queues + leased + final == 1, (task_id, in_queues, leased, final)
            if in_queues:
                assert task is not None and task.state is TaskState.QUEUED
                assert task_id in job.queues[task.op] and not task.leases
            elif leased:
                assert task is not None
                self.check_leases(task_id)
            else:
                assert task is None
        for task_id in self.welcome_ids & set(self.sched.tasks):
            task = self.sched.tasks[task_id]
            assert task.state is TaskState.LEASED and task.job_id is None
            assert list(task.leases) == [task.pinned_to]

    def check_leases(self, task_id: int) -> None:
        task = self.sched.tasks[task_id]
        holders = {w for w, held in self.holds.items() if task_id in held}
        assert set(task.leases) == holders
        assert 1 <= len(holders) <= 2
        assert sum(not lease.speculative for lease in task.leases.values()) <= 1
        assert task.attempts <= len(task.reasons) + len(task.leases)

    @invariant()
    def no_worker_with_credit_is_left_out(self) -> None:
        """Any queued task a worker with credit could run was kept for another worker, one
        that has not failed it yet; a task lost before, for a reliable one."""
        queued = [t for t in self.sched.tasks.values() if t.state is TaskState.QUEUED]
        for worker in self.sched.workers.values():
            if worker.credit == 0:
                continue
            for task in queued:
                if task.op not in worker.ops:
                    continue
                if task.reasons and not worker.standing.reliable:
                    reliable = [
                        other
                        for other in self.sched.workers.values()
                        if other is not worker
                        and other.standing.reliable
                        and other.concurrency > 0
                        and task.op in other.ops
                        and other.worker_id not in task.failed_on
                    ]
                    if reliable:
                        continue
                assert worker.worker_id in task.failed_on
                assert any(
                    task.op in other.ops and other.worker_id not in task.failed_on
                    for other in self.sched.workers.values()
                )

    def teardown(self) -> None:
        """A worker that runs every op joins; every lease is answered until nothing is left:
        then every submitted task has ended exactly once. Each task that can afford it first
        fails once more, so one the finisher alone can run must come back to it."""
        finisher = self.join_worker()
        self.introduce(finisher, frozenset(OPS), 3, 2)
        failed_once: set[int] = set()
        for _ in range(2 * (len(self.task_job) + len(self.welcome_ids)) + 5):
            held = [(w, t) for w in sorted(self.holds) for t in sorted(self.holds[w])]
            if not held:
                break
            for worker_id, task_id in held:
                if task_id not in self.holds[worker_id]:
                    continue  # answered by another copy
                error = task_id in self.task_job and task_id not in failed_once
                error = error and len(self.reasons[task_id]) + 1 < self.task_attempts[task_id]
                failed_once.add(task_id)
                self.report(worker_id, task_id, error)
        assert self.sched.tasks == {}
        assert set(self.outcome) == set(self.task_job)
        assert all(self.ended[t] == 1 for t in self.task_job)
        assert all(job.finished for job in self.sched.jobs.values())


TestScheduler = SchedulerMachine.TestCase
TestScheduler.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
