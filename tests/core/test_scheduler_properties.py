"""Random event sequences against the scheduler: credit, op matching, and every task ending
exactly once."""

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
    ClockTicked,
    Command,
    Event,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    TaskState,
    TaskSubmitted,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)

OPS = ("repeat_multiply", "a", "b")
TaskId = int | str


class SchedulerMachine(RuleBasedStateMachine):
    """Drives one Scheduler; checks each command as it comes out and the state after each step.

    The model keeps only what the events and commands say: which workers are connected and
    what they announced, which task ids were submitted, which tasks were sent where, and
    which tasks ended.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sched = Scheduler(welcome=None)
        self.now = 0.0
        self.worker_ids = itertools.count(1)
        self.stimuli = itertools.count(1)
        self.ops: dict[int, frozenset[str]] = {}  # connected workers -> what they run
        self.introduced: set[int] = set()
        self.sent: defaultdict[int, set[TaskId]] = defaultdict(set)  # ever sent to a worker
        self.submitted: set[TaskId] = set()
        self.welcome_ids: set[TaskId] = set()
        self.ended: Counter[TaskId] = Counter()

    # --- driving ---------------------------------------------------------------------

    def sid(self) -> str:
        return f"s{next(self.stimuli)}"

    def apply(self, event: Event) -> list[Command]:
        before = set(self.sched.tasks)
        commands = self.sched.handle(event)
        if isinstance(event, TaskSubmitted):
            new = set(self.sched.tasks) - before
            assert len(new) == 1
            self.submitted |= new
        for command in commands:
            assert command.stimulus_id == event.stimulus_id
            match command:
                case SendTask():
                    assert command.worker_id in self.ops, "sent to a worker that left"
                    assert command.op in self.ops[command.worker_id], "op not announced"
                    if command.welcome:
                        assert isinstance(event, WorkerJoined)
                        assert command.worker_id == event.worker_id
                        self.welcome_ids.add(command.task_id)
                    else:
                        assert command.task_id in self.submitted
                    self.sent[command.worker_id].add(command.task_id)
                case TaskDone():
                    assert command.welcome == (command.task_id in self.welcome_ids)
                    self.ended[command.task_id] += 1
                case TaskFailed():
                    assert command.task_id in self.submitted  # welcome tasks are cancelled
                    assert 1 <= len(command.reasons) <= 3
                    self.ended[command.task_id] += 1
                case RejectReport():
                    assert isinstance(event, ResultReported | TaskErrorReported)
        assert all(count == 1 for count in self.ended.values()), "a task ended twice"
        return commands

    def join_worker(self) -> int:
        worker_id = next(self.worker_ids)
        self.ops[worker_id] = EXERCISE_OPS
        self.apply(WorkerJoined(worker_id=worker_id, now=self.now, stimulus_id=self.sid()))
        return worker_id

    def introduce(self, worker_id: int, ops: frozenset[str], concurrency: int) -> None:
        self.ops[worker_id] = ops
        self.introduced.add(worker_id)
        self.apply(
            WorkerIntroduced(
                worker_id=worker_id,
                ops=ops,
                concurrency=concurrency,
                now=self.now,
                stimulus_id=self.sid(),
            )
        )

    def leave_worker(self, worker_id: int) -> None:
        del self.ops[worker_id]
        self.apply(WorkerLeft(worker_id=worker_id, now=self.now, stimulus_id=self.sid()))

    def report(self, worker_id: int, task_id: TaskId, error: bool) -> list[Command]:
        held = task_id in self.sched.workers[worker_id].in_flight
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
        if not held:
            assert commands == [
                RejectReport(
                    worker_id=worker_id,
                    task_id=task_id,
                    reason=f"no task {task_id!r} is leased to this worker",
                    stimulus_id=sid,
                )
            ]
        else:
            assert not any(isinstance(c, RejectReport) for c in commands)
            if not error:
                assert isinstance(commands[0], TaskDone)
                assert (commands[0].worker_id, commands[0].task_id) == (worker_id, task_id)
        return commands

    def anonymous(self) -> list[int]:
        return sorted(w for w in self.ops if w not in self.introduced)

    def busy(self) -> list[int]:
        return sorted(w for w in self.ops if self.sched.workers[w].in_flight)

    # --- rules -----------------------------------------------------------------------

    @initialize(welcome=st.booleans(), max_attempts=st.integers(1, 3))
    def start(self, welcome: bool, max_attempts: int) -> None:
        kwargs: dict[str, Any] = {"lease_timeout_s": 10.0, "max_attempts": max_attempts}
        self.sched = Scheduler(**kwargs) if welcome else Scheduler(welcome=None, **kwargs)

    @rule()
    def join(self) -> None:
        self.join_worker()

    @precondition(lambda self: self.anonymous())
    @rule(
        data=st.data(),
        ops=st.frozensets(st.sampled_from(OPS), min_size=1),
        concurrency=st.integers(1, 3),
    )
    def hello(self, data: st.DataObject, ops: frozenset[str], concurrency: int) -> None:
        worker_id = data.draw(st.sampled_from(self.anonymous()), label="worker")
        self.introduce(worker_id, ops, concurrency)

    @precondition(lambda self: self.ops)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        self.leave_worker(data.draw(st.sampled_from(sorted(self.ops)), label="worker"))

    @rule(
        op=st.sampled_from(OPS),
        max_attempts=st.none() | st.integers(1, 3),
        lease_timeout_s=st.none() | st.floats(1.0, 20.0),
    )
    def submit(self, op: str, max_attempts: int | None, lease_timeout_s: float | None) -> None:
        self.apply(
            TaskSubmitted(
                op=op,
                args={"n": 1},
                now=self.now,
                lease_timeout_s=lease_timeout_s,
                max_attempts=max_attempts,
                stimulus_id=self.sid(),
            )
        )

    @precondition(lambda self: self.busy())
    @rule(data=st.data(), error=st.booleans())
    def answer_held_task(self, data: st.DataObject, error: bool) -> None:
        worker_id = data.draw(st.sampled_from(self.busy()), label="worker")
        held = sorted(self.sched.workers[worker_id].in_flight, key=str)
        task_id = data.draw(st.sampled_from(held), label="task")
        commands = self.report(worker_id, task_id, error)
        resent = any(
            isinstance(c, SendTask) and (c.worker_id, c.task_id) == (worker_id, task_id)
            for c in commands
        )
        assert (task_id in self.sched.workers[worker_id].in_flight) == resent

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
            ever_sent = sorted(self.sent[worker_id], key=str)
            task_id = data.draw(st.sampled_from(ever_sent), label="sent task")
        self.report(worker_id, task_id, error)

    @rule(dt=st.floats(0.0, 30.0))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.apply(ClockTicked(now=self.now, stimulus_id=self.sid()))

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def workers_match_the_model(self) -> None:
        assert set(self.sched.workers) == set(self.ops)
        for worker in self.sched.workers.values():
            assert worker.ops == self.ops[worker.worker_id]
            assert len(worker.in_flight) <= worker.concurrency
            assert worker.in_flight <= self.sent[worker.worker_id]

    @invariant()
    def open_tasks_are_known_and_not_ended(self) -> None:
        for task_id, task in self.sched.tasks.items():
            assert task_id in self.submitted or task_id in self.welcome_ids
            assert task_id not in self.ended
            assert task.state in (TaskState.QUEUED, TaskState.LEASED)
            if task.state is TaskState.LEASED:
                assert task.worker_id is not None
                assert task_id in self.sched.workers[task.worker_id].in_flight
            else:
                assert task.worker_id is None
            assert task.attempts <= task.max_attempts

    def teardown(self) -> None:
        """Everyone leaves; one worker that runs every op joins and answers until nothing is
        left: then every submitted task has ended exactly once."""
        for worker_id in sorted(self.ops):
            self.leave_worker(worker_id)
        finisher = self.join_worker()
        self.introduce(finisher, frozenset(OPS), 3)
        for _ in range(len(self.submitted) + 2):
            held = sorted(self.sched.workers[finisher].in_flight, key=str)
            if not held:
                break
            for task_id in held:
                self.report(finisher, task_id, error=False)
        assert self.sched.tasks == {}
        assert {t for t in self.ended if t in self.submitted} == self.submitted
        assert all(self.ended[t] == 1 for t in self.submitted)


TestScheduler = SchedulerMachine.TestCase
TestScheduler.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
