"""Result validation (redundancy >= 2, adaptive) as properties: a hypothesis state machine
drives the scheduler with replicated jobs, shared identities, saboteurs, late hellos,
errors, expiry, cancels and quarantine, and checks the scheduler's invariants after every
event; plus the minimal event sequences of the bugs it found, kept as regression tests."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from browsergrid.core import (
    CancelTask,
    ClockTicked,
    Command,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    Standing,
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
    WorkerQuarantined,
)
from browsergrid.ops import agree_op

OP = "repeat_multiply"  # what anonymous (exercise-style) workers run too
KEYS = (None, "good0", "good1", "good2", "bad0", "bad1")
GOOD = "ok"


def _identity(key: str | None, worker_id: int) -> str:
    return key if key is not None else f"#{worker_id}"


class ReplicationMachine(RuleBasedStateMachine):
    """Random grids with replicated jobs; invariants checked after every event."""

    op = OP  # the op of every job; "p" in the subclass, which anonymous workers do not run

    @initialize(
        seed=st.integers(0, 2**16),
        spot=st.sampled_from([0.0, 0.5, 1.0]),
        start=st.sampled_from([(), ("good0", "good1", "bad0"), ("good0", None, "bad1", "bad0")]),
        redundancy=st.integers(2, 3),
    )
    def setup(self, seed: int, spot: float, start: tuple[str | None, ...], redundancy: int) -> None:
        self.s = Scheduler(
            welcome=None,
            speculate_factor=None,
            lease_timeout_s=10.0,
            max_attempts=3,
            spot_check=spot,
            rng=random.Random(seed).random,
        )
        self.now = 0.0
        self.worker_ids = itertools.count(1)
        self.saboteurs: set[int] = set()  # worker ids that may answer wrongly
        self.anonymous: set[int] = set()
        self.held: set[tuple[int, int]] = set()  # (worker, task) the model thinks is leased
        self.stale: set[tuple[int, int]] = set()  # taken back: a late report may come
        self.ended: dict[int, str] = {}  # task id -> how it ended
        self.job_options: dict[int, JobOptions] = {}
        self.job_of: dict[int, int] = {}  # task id -> job id
        self.cancelled_jobs: set[int] = set()
        for key in start:  # a head start: a few workers (one saboteur) and a checked job
            self.join(key, False, 1, 1, True, False)
        if start:
            self.submit(None, 4, redundancy, None, False, None, None, False)  # type: ignore[arg-type]

    # --- driving ------------------------------------------------------------------------

    def handle(self, event: Any) -> list[Command]:
        commands = self.s.handle(event)
        self.check_commands(commands)
        return commands

    def check_commands(self, commands: Iterable[Command]) -> None:
        for command in commands:
            match command:
                case SendTask(worker_id=w, task_id=t):
                    worker = self.s.workers[w]
                    assert not worker.quarantined, f"task {t} sent to quarantined worker {w}"
                    assert (w, t) not in self.held, f"worker {w} got task {t} twice"
                    self.held.add((w, t))
                    self.stale.discard((w, t))
                case CancelTask(worker_id=w, task_id=t):
                    assert (w, t) in self.held, f"cancel of ({w}, {t}) not held"
                    self.held.discard((w, t))
                    self.stale.add((w, t))
                case TaskDone():
                    self.end(command.task_id, "done")
                    self.check_done(command)
                case TaskFailed():
                    self.end(command.task_id, "failed")
                case JobCancelled():
                    for task_id in command.task_ids:
                        self.end(task_id, "cancelled")
                case TasksAccepted():
                    for offset in range(command.count):
                        self.job_of[command.first_task_id + offset] = command.job_id
                case WorkerQuarantined():
                    pass
        for worker, task in list(self.held):
            if task in self.ended:
                self.held.discard((worker, task))

    def end(self, task_id: int, how: str) -> None:
        assert task_id not in self.ended, (
            f"task {task_id} ended twice ({self.ended[task_id]}, {how})"
        )
        assert task_id not in self.s.tasks, f"task {task_id} ended but still in scheduler.tasks"
        self.ended[task_id] = how

    def check_done(self, done: TaskDone) -> None:
        options = self.job_options[self.job_of[done.task_id]]
        if options.redundancy == 1:
            assert done.verdict == "unchecked" and not done.replicas
            return
        assert done.verdict in ("quorum", "trusted")
        if done.verdict == "trusted":
            assert options.adaptive, "a trusted verdict in a job that is not adaptive"
        needed = options.redundancy if done.verdict == "quorum" else 1
        agreeing = [r for r in done.replicas if r.agreed]
        assert len(agreeing) >= needed, f"task {done.task_id}: {len(agreeing)} < {needed}"
        identities = [_identity(r.worker_key, r.worker_id) for r in done.replicas]
        assert len(set(identities)) == len(identities), (
            f"task {done.task_id}: one identity gave two replicas: {identities}"
        )
        assert len(done.replicas) <= options.replica_limit
        if done.verdict == "quorum":
            # saboteurs answer "bad-<identity>": only one identity could agree on it
            assert done.result == GOOD, f"task {done.task_id} accepted a wrong result"

    # --- rules --------------------------------------------------------------------------

    @rule(
        key=st.sampled_from(KEYS),
        anonymous=st.booleans(),
        concurrency=st.integers(1, 2),
        prefetch=st.integers(0, 1),
        trusted=st.booleans(),
        saboteur=st.booleans(),
    )
    def join(
        self,
        key: str | None,
        anonymous: bool,
        concurrency: int,
        prefetch: int,
        trusted: bool,
        saboteur: bool,
    ) -> None:
        if len(self.s.workers) >= 6:
            return
        worker_id = next(self.worker_ids)
        self.handle(WorkerJoined(worker_id=worker_id, now=self.now))
        if (key is not None and key.startswith("bad")) or (key is None and saboteur):
            self.saboteurs.add(worker_id)
        if anonymous:
            self.anonymous.add(worker_id)
            return
        self.introduce(worker_id, key, concurrency, prefetch, trusted)

    def introduce(
        self, worker_id: int, key: str | None, concurrency: int, prefetch: int, trusted: bool
    ) -> None:
        standing = None  # what "the store" remembers: established, or nearly quarantined
        if trusted and key is not None and key.startswith("good"):
            standing = Standing(consecutive_valid=10, valid=10, error_rate=0.05)
        elif key is not None and key.startswith("bad"):
            standing = Standing(invalid=2, error_rate=0.35)
        self.handle(
            WorkerIntroduced(
                worker_id=worker_id,
                ops=frozenset({self.op}),
                concurrency=concurrency,
                prefetch=prefetch,
                key=key,
                standing=standing,
                now=self.now,
            )
        )

    @rule(data=st.data(), key=st.sampled_from(KEYS))
    def introduce_anonymous(self, data: st.DataObject, key: str | None) -> None:
        """An exercise-style worker that says hello late (it may hold tasks already)."""
        waiting = sorted(w for w in self.anonymous if w in self.s.workers)
        if not waiting:
            return
        worker_id = data.draw(st.sampled_from(waiting))
        self.anonymous.discard(worker_id)
        if key is not None and key.startswith("bad"):
            self.saboteurs.add(worker_id)
        elif key is not None:
            self.saboteurs.discard(worker_id)
        self.introduce(worker_id, key, 1, 1, False)

    @rule(data=st.data(), go=st.integers(0, 1))
    def leave(self, data: st.DataObject, go: int) -> None:
        if not self.s.workers or go:
            return
        worker_id = data.draw(st.sampled_from(sorted(self.s.workers)))
        self.handle(WorkerLeft(worker_id=worker_id, now=self.now))
        self.held = {(w, t) for w, t in self.held if w != worker_id}
        self.stale = {(w, t) for w, t in self.stale if w != worker_id}

    @rule(
        data=st.data(),
        count=st.integers(1, 3),
        redundancy=st.integers(1, 3),
        extra=st.none() | st.integers(0, 2),
        adaptive=st.booleans(),
        lease=st.sampled_from([None, 5.0, 20.0]),
        attempts=st.sampled_from([None, 1, 2, 5]),
        existing=st.booleans(),
    )
    def submit(
        self,
        data: st.DataObject,
        count: int,
        redundancy: int,
        extra: int | None,
        adaptive: bool,
        lease: float | None,
        attempts: int | None,
        existing: bool,
    ) -> None:
        open_jobs = sorted(
            j for j, job in self.s.jobs.items() if not job.cancelled and job.total + count <= 8
        )
        if existing and open_jobs:
            job_id = data.draw(st.sampled_from(open_jobs))
            self.handle(
                TasksSubmitted(
                    job_id=job_id,
                    tasks=[TaskSpec(op=self.op, args={"i": i}) for i in range(count)],
                    now=self.now,
                )
            )
            return
        if len(self.s.jobs) >= 5:
            return
        options = JobOptions(
            redundancy=redundancy,
            max_replicas=None if extra is None else redundancy + extra,
            adaptive=adaptive and redundancy >= 2,
            lease_timeout_s=lease,
            max_attempts=attempts,
        )
        commands = self.handle(
            TasksSubmitted(
                tasks=[TaskSpec(op=self.op, args={"i": i}) for i in range(count)],
                options=options,
                now=self.now,
            )
        )
        [accepted] = [c for c in commands if isinstance(c, TasksAccepted)]
        self.job_options[accepted.job_id] = options

    @rule(data=st.data(), wrong=st.booleans(), many=st.integers(1, 3))
    def result(self, data: st.DataObject, wrong: bool, many: int) -> None:
        for _ in range(many):
            if not self.held:
                return
            worker_id, task_id = data.draw(st.sampled_from(sorted(self.held)))
            self.held.discard((worker_id, task_id))
            self.report(worker_id, task_id, wrong)

    def report(self, worker_id: int, task_id: int, wrong: bool) -> list[Command]:
        if worker_id in self.saboteurs and wrong:  # (a saboteur is sometimes right)
            value: Any = f"bad-{self.s.workers[worker_id].key}"
        else:
            value = GOOD
        self.now += 0.01
        return self.handle(
            ResultReported(
                worker_id=worker_id, task_id=task_id, result=value, duration_ms=1.0, now=self.now
            )
        )

    @rule(data=st.data(), wrong=st.booleans())
    def late_result(self, data: st.DataObject, wrong: bool) -> None:
        """A report for a task taken back from the worker: dropped quietly."""
        stale = sorted((w, t) for w, t in self.stale if w in self.s.workers)
        if not stale:
            return
        worker_id, task_id = data.draw(st.sampled_from(stale))
        self.stale.discard((worker_id, task_id))
        commands = self.report(worker_id, task_id, wrong)
        assert not [c for c in commands if isinstance(c, RejectReport)]
        assert not [c for c in commands if isinstance(c, TaskDone) and c.task_id == task_id]

    @rule(data=st.data())
    def error(self, data: st.DataObject) -> None:
        if not self.held:
            return
        worker_id, task_id = data.draw(st.sampled_from(sorted(self.held)))
        self.held.discard((worker_id, task_id))
        self.now += 0.01
        self.handle(
            TaskErrorReported(worker_id=worker_id, task_id=task_id, message="boom", now=self.now)
        )

    @rule(data=st.data(), wrong=st.booleans(), many=st.integers(1, 3))
    def more_results(self, data: st.DataObject, wrong: bool, many: int) -> None:
        """Results are the commonest event (a second rule doubles their weight)."""
        self.result(data, wrong, many)

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.0, 6.0, 12.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.handle(ClockTicked(now=self.now))

    @rule(data=st.data(), go=st.integers(0, 3))
    def cancel(self, data: st.DataObject, go: int) -> None:
        jobs = sorted(j for j, job in self.s.jobs.items() if not job.cancelled)
        if not jobs or go:  # now and then only
            return
        self.handle(JobCancelRequested(job_id=data.draw(st.sampled_from(jobs)), now=self.now))

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def leases_match_the_model(self) -> None:
        if not hasattr(self, "s"):
            return
        actual = {(w.worker_id, t) for w in self.s.workers.values() for t in w.in_flight}
        assert actual == self.held
        for task in self.s.tasks.values():
            for worker_id in task.leases:
                assert task.task_id in self.s.workers[worker_id].in_flight

    @invariant()
    def identities_are_distinct_per_task(self) -> None:
        if not hasattr(self, "s"):
            return
        for task in self.s.tasks.values():
            if not task.replicated:
                continue
            holders = [self.s.workers[w].key for w in task.leases]
            voters = [r.key for r in task.replicas]
            every = holders + voters
            assert len(set(every)) == len(every), (
                f"task {task.task_id}: identities {holders} (leases) + {voters} (replicas)"
            )

    @invariant()
    def no_replica_beyond_need(self) -> None:
        """Running replicas plus the best agreeing group never exceed what the task needs
        (else a worker computes a replica nobody can use), nor max_replicas."""
        if not hasattr(self, "s"):
            return
        for task in self.s.tasks.values():
            if not task.replicated:
                continue
            assert task.needed in (1, task.quorum) and (task.needed == task.quorum or task.adaptive)
            best = len(self.s._best_group(task))
            assert best < task.needed, f"task {task.task_id} has its quorum but is not done"
            assert len(task.leases) + best <= task.needed, (
                f"task {task.task_id}: {len(task.leases)} leases + {best} agreeing > {task.needed}"
            )
            assert len(task.leases) + len(task.replicas) <= task.max_replicas

    @invariant()
    def quarantine_is_total(self) -> None:
        if not hasattr(self, "s"):
            return
        bad = {key for key, standing in self.s.standings.items() if standing.quarantined}
        for worker in self.s.workers.values():
            if worker.key in bad:
                assert worker.quarantined
            if worker.quarantined:
                assert not worker.in_flight, f"quarantined worker {worker.worker_id} holds tasks"
                assert worker.worker_id not in self.s._hungry
        for task in self.s.tasks.values():
            assert not [r for r in task.replicas if r.key in bad]

    @invariant()
    def votes_are_live_replicas(self) -> None:
        """A worker's ``voted`` names only live tasks that hold a replica of its own."""
        if not hasattr(self, "s"):
            return
        for worker in self.s.workers.values():
            for task_id in worker.voted:
                task = self.s.tasks.get(task_id)
                assert task is not None, f"worker {worker.worker_id} voted on ended {task_id}"
                assert any(r.worker_id == worker.worker_id for r in task.replicas)

    @invariant()
    def counts_and_states_agree(self) -> None:
        if not hasattr(self, "s"):
            return
        for job in self.s.jobs.values():
            counts = job.counts
            assert sum(counts.values()) == job.total, (job.job_id, dict(counts), job.total)
            assert all(value >= 0 for value in counts.values()), dict(counts)
            live = [self.s.tasks[t] for t in job.live]
            assert counts[TaskState.QUEUED] == sum(t.state is TaskState.QUEUED for t in live)
            assert counts[TaskState.LEASED] == sum(t.state is TaskState.LEASED for t in live)
            ended = [how for t, how in self.ended.items() if self.job_of.get(t) == job.job_id]
            assert counts[TaskState.DONE] == ended.count("done")
            assert counts[TaskState.FAILED] == ended.count("failed")
            assert counts[TaskState.CANCELLED] == ended.count("cancelled")
        for task in self.s.tasks.values():
            assert (task.state is TaskState.LEASED) == bool(task.leases), (
                task.task_id,
                task.state,
                task.leases,
            )

    @invariant()
    def queued_flag_matches_the_queues(self) -> None:
        if not hasattr(self, "s"):
            return
        for job in self.s.jobs.values():
            in_heaps = {t for heap in job.queues.values() for t in heap}
            for task_id in job.wanting:
                assert self.s.tasks[task_id].queued
            for task_id in job.live:
                task = self.s.tasks[task_id]
                if task.queued:
                    assert task_id in job.wanting or task_id in in_heaps
                    assert job.job_id in self.s._ringed
                if task.state is TaskState.QUEUED:
                    assert task.queued, f"task {task_id} is QUEUED but in no queue"

    @invariant()
    def nothing_is_stranded(self) -> None:
        """After a tick (the coordinator ticks twice a second) no task that wants a worker
        is left queued while a worker that may take it (by op, credit, identity,
        quarantine) has credit and nobody else could take it. (Within one event a worker
        that passed on a task another could take may not look again when that one took
        something else.)"""
        if not hasattr(self, "s"):
            return
        if self.stranded():
            self.handle(ClockTicked(now=self.now))
        stranded = self.stranded()
        assert not stranded, stranded[0]

    def stranded(self) -> list[str]:
        found = []
        for task in self.s.tasks.values():
            if task.state is TaskState.LEASED and not (task.replicated and task.queued):
                continue
            if task.replicated and task.leases and not self.s._wants_more(task):
                continue
            taken = {r.key for r in task.replicas} | {self.s.workers[w].key for w in task.leases}
            candidates = [
                w
                for w in self.s.workers.values()
                if task.op in w.ops
                and not w.quarantined
                and w.worker_id not in task.leases
                and (not task.replicated or w.key not in taken)
            ]
            fresh = [w for w in candidates if w.worker_id not in task.failed_on]
            idle = [w for w in candidates if w.credit > 0]
            ready = [w for w in idle if w.worker_id not in task.failed_on or not fresh]
            if task.replicated and self.s._wants_voucher(task):  # for a vouched worker
                ready = [w for w in ready if w.standing.vouched]
            if task.reasons:  # lost before: it waits for a reliable worker, if one could run it
                reliable = {w.worker_id for w in fresh if w.standing.reliable and w.concurrency > 0}
                ready = [w for w in ready if w.standing.reliable or not reliable - {w.worker_id}]
            if ready:
                found.append(
                    f"task {task.task_id} (state {task.state.value}, leases "
                    f"{sorted(task.leases)}, replicas {[r.key for r in task.replicas]}, "
                    f"failed_on {sorted(task.failed_on)}) waits while worker(s) "
                    f"{[w.worker_id for w in ready]} could run it"
                )
        return found


TestReplicationMachine = ReplicationMachine.TestCase
TestReplicationMachine.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    report_multiple_bugs=False,
)


class ReplicationMachineWithoutExerciseWorkers(ReplicationMachine):
    op = "p"  # anonymous workers run no job task: more of the steps reach quorums


TestReplicationMachineWithoutExerciseWorkers = ReplicationMachineWithoutExerciseWorkers.TestCase
TestReplicationMachineWithoutExerciseWorkers.settings = TestReplicationMachine.settings


# --- minimal sequences of the bugs the machine found -------------------------------------


def _stack_depth() -> int:
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _deepest_decodable() -> Any:
    """The most deeply nested JSON array msgspec decodes from here (the worker endpoint's
    decoder sits about as deep in the stack as this test)."""
    depth = 1000 - _stack_depth()
    while True:
        try:
            return msgspec.json.decode("[" * depth + "1.5" + "]" * depth)
        except RecursionError:
            depth -= 5


def _grid(**kwargs: Any) -> Scheduler:
    return Scheduler(welcome=None, speculate_factor=None, **kwargs)


def _worker(
    s: Scheduler, worker_id: int, key: str | None, op: str = OP, **kwargs: Any
) -> list[Command]:
    s.handle(WorkerJoined(worker_id=worker_id, now=0.0))
    return s.handle(
        WorkerIntroduced(
            worker_id=worker_id,
            ops=frozenset({op}),
            concurrency=1,
            prefetch=0,
            key=key,
            now=0.0,
            **kwargs,
        )
    )


def _sent(commands: Iterable[Command]) -> list[tuple[int, int]]:
    return [(c.worker_id, c.task_id) for c in commands if isinstance(c, SendTask)]


def _result(
    s: Scheduler, worker_id: int, task_id: int, value: Any, now: float = 1.0
) -> list[Command]:
    return s.handle(
        ResultReported(worker_id=worker_id, task_id=task_id, result=value, duration_ms=1, now=now)
    )


def test_a_worker_that_errored_on_a_replica_gets_it_again_when_nobody_else_can() -> None:
    """The worker that holds the other replica does not count as "another worker that can
    run it" (else the task waits forever)."""
    s = _grid()
    _worker(s, 1, "k1")
    _worker(s, 2, "k2")
    commands = s.handle(
        TasksSubmitted(tasks=[TaskSpec(op=OP, args={})], options=JobOptions(redundancy=2), now=0)
    )
    assert _sent(commands) == [(1, 1), (2, 1)]
    s.handle(TaskErrorReported(worker_id=2, task_id=1, message="flaky", now=0.5))
    _result(s, 1, 1, GOOD)
    commands = s.handle(ClockTicked(now=100.0))
    assert _sent(commands) == [(2, 1)]


def test_a_quarantined_worker_does_not_count_as_one_that_could_run_a_task() -> None:
    """Else the only usable worker refuses the task it failed once (at redundancy 1)."""
    s = _grid()
    _worker(s, 1, "k1")
    _worker(s, 2, "bad", standing=Standing(quarantined=True, error_rate=0.5))
    commands = s.handle(TasksSubmitted(tasks=[TaskSpec(op=OP, args={})], now=0))
    assert _sent(commands) == [(1, 1)]
    s.handle(TaskErrorReported(worker_id=1, task_id=1, message="flaky", now=0.5))
    commands = s.handle(ClockTicked(now=100.0))
    assert _sent(commands) == [(1, 1)]


def test_a_late_hello_does_not_give_one_identity_two_votes() -> None:
    """An anonymous worker holding a replica says hello with the key of the worker that
    computed the other replica: its lease is taken back, so one identity cannot make the
    quorum alone."""
    s = _grid()
    _worker(s, 1, "mallory")
    s.handle(WorkerJoined(worker_id=2, now=0.0))  # exercise-style: runs repeat_multiply
    commands = s.handle(
        TasksSubmitted(tasks=[TaskSpec(op=OP, args={})], options=JobOptions(redundancy=2), now=0)
    )
    assert _sent(commands) == [(1, 1), (2, 1)]
    _result(s, 1, 1, "wrong")
    s.handle(
        WorkerIntroduced(worker_id=2, ops=frozenset({OP}), concurrency=1, key="mallory", now=0.5)
    )
    done = [c for c in _result(s, 2, 1, "wrong", now=2.0) if isinstance(c, TaskDone)]
    keys = [r.worker_key for r in done[0].replicas] if done else []
    assert len(set(keys)) == len(keys), f"quorum of one identity: {keys}, result {done[0].result}"


def test_a_worker_caught_lying_loses_the_trust_its_leases_were_granted_with() -> None:
    """Trust is checked again when the result comes: a worker caught lying since its
    adaptive tasks were leased does not have them accepted unchecked."""
    s = _grid(spot_check=0.0)
    _worker(s, 1, "t", standing=Standing(consecutive_valid=10, valid=10, error_rate=0.05))
    s.workers[1].concurrency = 2
    s._credit_changed(s.workers[1])
    _worker(s, 2, "h2", standing=Standing(valid=3))  # vouched: they may outvote T
    _worker(s, 3, "h3", standing=Standing(valid=3))
    s.handle(  # task 1: checked job, to T and h2
        TasksSubmitted(tasks=[TaskSpec(op=OP, args={})], options=JobOptions(redundancy=2), now=0)
    )
    commands = s.handle(  # task 2: adaptive job; T takes it alone (trusted)
        TasksSubmitted(
            tasks=[TaskSpec(op=OP, args={})],
            options=JobOptions(redundancy=2, adaptive=True),
            now=0,
        )
    )
    assert (1, 2) in _sent(commands)
    _result(s, 1, 1, "wrong")
    _result(s, 2, 1, GOOD)  # disagreement: h3 decides
    _result(s, 3, 1, GOOD)
    assert not s.standing("t").trusted  # T was caught
    done = [c for c in _result(s, 1, 2, "wrong", now=3.0) if isinstance(c, TaskDone)]
    assert not done or done[0].verdict != "trusted", "a caught liar's result accepted alone"


def test_a_deeply_nested_result_does_not_make_agree_raise_inside_the_scheduler() -> None:
    """``same`` recurses per nesting level: two results nested as deep as msgspec decodes
    at the endpoint must not raise RecursionError out of Scheduler.handle (the task would
    be left leased with no lease and in no queue)."""
    deep = _deepest_decodable()  # what a worker's frame may carry
    s = _grid(agree=agree_op)
    _worker(s, 1, "k1", op="prime_count")
    _worker(s, 2, "k2", op="prime_count")
    s.handle(
        TasksSubmitted(
            tasks=[TaskSpec(op="prime_count", args={})], options=JobOptions(redundancy=2), now=0
        )
    )
    _result(s, 1, 1, deep)
    try:
        _result(s, 2, 1, deep)
    except RecursionError:
        pytest.fail("RecursionError escaped Scheduler.handle (agree_op raised)")
