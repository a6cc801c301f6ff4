"""The scheduler core: feed events, compare the exact commands that come out, then check state."""

from __future__ import annotations

import random
from typing import Any

import pytest

from browsergrid.core import (
    EXERCISE_OPS,
    CancelTask,
    ClockTicked,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    Lease,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    TasksAccepted,
    TasksHandedBack,
    TaskSpec,
    TasksSubmitted,
    TaskState,
    WelcomeTask,
    WorkerCapacityChanged,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
    WorkerState,
)
from browsergrid.core._scheduler import _MAX_IGNORED
from browsergrid.errors import IllegalTransition

RM = "repeat_multiply"
WELCOME_ARGS = {"initial": 1.0000054, "factor": 1.00000043, "times": 1_000_000}
WELCOME_RESULT = 1.5372656826974733
ARGS = {"initial": 1.0, "factor": 2.0, "times": 3}


# --- helpers: events with short names, and the commands they are expected to cause ------


def join(worker_id: int, now: float = 0.0) -> WorkerJoined:
    return WorkerJoined(worker_id=worker_id, now=now, stimulus_id=f"join-{worker_id}")


def hello(
    worker_id: int, ops: set[str], concurrency: int, prefetch: int = 0, now: float = 0.0
) -> WorkerIntroduced:
    return WorkerIntroduced(
        worker_id=worker_id,
        ops=frozenset(ops),
        concurrency=concurrency,
        prefetch=prefetch,
        now=now,
        stimulus_id=f"hello-{worker_id}",
    )


def leave(worker_id: int, now: float = 0.0) -> WorkerLeft:
    return WorkerLeft(worker_id=worker_id, now=now, stimulus_id=f"leave-{worker_id}")


def spec(op: str = RM, **kwargs: Any) -> TaskSpec:
    return TaskSpec(op=op, args=ARGS, **kwargs)


def submit(
    *tasks: str | TaskSpec,
    job_id: int | None = None,
    options: JobOptions | None = None,
    now: float = 0.0,
    sid: str = "submit",
) -> TasksSubmitted:
    """Tasks given by op name or spec (none given: one repeat_multiply) for a new job, or
    added to ``job_id``."""
    specs = [t if isinstance(t, TaskSpec) else spec(t) for t in tasks or (RM,)]
    return TasksSubmitted(
        tasks=specs, job_id=job_id, options=options or JobOptions(), now=now, stimulus_id=sid
    )


def cancel(job_id: int, now: float = 0.0, sid: str = "cancel") -> JobCancelRequested:
    return JobCancelRequested(job_id=job_id, now=now, stimulus_id=sid)


def result(
    worker_id: int,
    task_id: Any,
    value: Any = 8.0,
    now: float = 0.0,
    sid: str = "result",
    duration_ms: float = 2.5,
) -> ResultReported:
    return ResultReported(
        worker_id=worker_id,
        task_id=task_id,
        result=value,
        duration_ms=duration_ms,
        now=now,
        stimulus_id=sid,
    )


def error(
    worker_id: int, task_id: Any, message: str = "boom", now: float = 0.0, sid: str = "error"
) -> TaskErrorReported:
    return TaskErrorReported(
        worker_id=worker_id, task_id=task_id, message=message, now=now, stimulus_id=sid
    )


def tick(now: float, sid: str = "tick") -> ClockTicked:
    return ClockTicked(now=now, stimulus_id=sid)


def send(
    worker_id: int, task_id: int, sid: str, op: str = RM, speculative: bool = False
) -> SendTask:
    return SendTask(
        worker_id=worker_id,
        task_id=task_id,
        op=op,
        args=ARGS,
        welcome=False,
        speculative=speculative,
        stimulus_id=sid,
    )


def welcome_send(worker_id: int, task_id: int, sid: str) -> SendTask:
    return SendTask(
        worker_id=worker_id,
        task_id=task_id,
        op=RM,
        args=WELCOME_ARGS,
        welcome=True,
        speculative=False,
        stimulus_id=sid,
    )


def accepted(
    job_id: int, first_task_id: int, sid: str = "submit", count: int = 1, first_index: int = 0
) -> TasksAccepted:
    return TasksAccepted(
        job_id=job_id,
        first_task_id=first_task_id,
        first_index=first_index,
        count=count,
        stimulus_id=sid,
    )


def done(
    worker_id: int,
    task_id: int,
    sid: str = "result",
    *,
    job: int | None = 1,
    index: int = 0,
    op: str = RM,
    value: Any = 8.0,
    attempts: int = 1,
    welcome: bool = False,
    duration_ms: float = 2.5,
) -> TaskDone:
    return TaskDone(
        worker_id=worker_id,
        task_id=task_id,
        job_id=job,
        index=index,
        op=op,
        result=value,
        duration_ms=duration_ms,
        attempts=attempts,
        welcome=welcome,
        stimulus_id=sid,
    )


def failed(
    task_id: int, *reasons: str, sid: str, job: int = 1, index: int = 0, op: str = RM
) -> TaskFailed:
    return TaskFailed(
        task_id=task_id, job_id=job, index=index, op=op, reasons=reasons, stimulus_id=sid
    )


def cancel_task(worker_id: int, task_id: int, reason: str, sid: str) -> CancelTask:
    return CancelTask(worker_id=worker_id, task_id=task_id, reason=reason, stimulus_id=sid)


def reject(worker_id: int, task_id: Any, sid: str) -> RejectReport:
    return RejectReport(
        worker_id=worker_id,
        task_id=task_id,
        reason=f"no task {task_id!r} is leased to this worker",
        stimulus_id=sid,
    )


def counts(**by_state: int) -> dict[TaskState, int]:
    """A job's counts: ``counts(queued=2, done=1)``; states not named are 0."""
    return {state: by_state.get(state.value, 0) for state in TaskState}


def plain(**kwargs: Any) -> Scheduler:
    """A scheduler that sends no welcome task, so task ids start at 1 with submissions."""
    return Scheduler(welcome=None, **kwargs)


# --- construction ------------------------------------------------------------------------


def test_defaults() -> None:
    s = Scheduler()
    assert (s.welcome, s.lease_timeout_s, s.max_attempts) == (WelcomeTask(), 60.0, 3)
    assert (s.speculate_factor, s.speculate_min_s, s.max_prefetch) == (4.0, 1.0, 1024)
    assert (s.op_lease_timeouts, s.op_mean_s) == ({}, {})
    assert (s.tasks, s.jobs, s.workers) == ({}, {}, {})
    assert WelcomeTask().op == RM
    assert dict(WelcomeTask().args) == WELCOME_ARGS


def test_op_lease_timeouts_are_copied() -> None:
    given = {"a": 5.0}
    s = Scheduler(op_lease_timeouts=given)
    given["a"] = 1.0
    assert s.op_lease_timeouts == {"a": 5.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lease_timeout_s": 0}, "lease_timeout_s must be positive"),
        ({"lease_timeout_s": -1.0}, "lease_timeout_s must be positive"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"speculate_factor": 1.0}, r"speculate_factor must be above 1 \(or None"),
        ({"speculate_factor": 0.5}, r"speculate_factor must be above 1 \(or None"),
        ({"speculate_factor": -2.0}, r"speculate_factor must be above 1 \(or None"),
        ({"spot_check": -0.01}, "spot_check must be a probability, from 0 to 1"),
        ({"spot_check": 1.01}, "spot_check must be a probability, from 0 to 1"),
    ],
)
def test_constructor_refuses_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(**kwargs)


def test_spot_check_may_be_never_or_always() -> None:
    assert Scheduler(spot_check=0).spot_check == 0
    assert Scheduler(spot_check=1).spot_check == 1


def test_speculation_can_be_turned_off() -> None:
    assert Scheduler(speculate_factor=None).speculate_factor is None
    assert Scheduler(speculate_factor=1.01).speculate_factor == 1.01


# --- joining and the welcome task --------------------------------------------------------


def test_join_sends_the_welcome_task() -> None:
    s = Scheduler()
    assert s.handle(join(1, now=5.0)) == [welcome_send(1, 1, "join-1")]
    worker = s.workers[1]
    assert worker.state is WorkerState.ANONYMOUS
    assert (worker.ops, worker.concurrency, worker.prefetch) == (EXERCISE_OPS, 1, 0)
    assert worker.joined_at == 5.0
    assert (worker.in_flight, worker.credit) == ({1}, 0)
    task = s.tasks[1]
    assert (task.state, task.job_id, task.index, task.pinned_to) == (TaskState.LEASED, None, 0, 1)
    assert (task.leases, task.attempts) == ({1: Lease(start=5.0, deadline=65.0)}, 1)
    assert s.jobs == {}


def test_welcome_task_takes_the_lease_timeout_of_its_op() -> None:
    s = Scheduler(op_lease_timeouts={RM: 5.0})
    s.handle(join(1, now=1.0))
    assert s.tasks[1].leases == {1: Lease(start=1.0, deadline=6.0)}


def test_each_worker_gets_its_own_welcome_task() -> None:
    s = Scheduler()
    assert [c.task_id for c in s.handle(join(1)) if isinstance(c, SendTask)] == [1]
    assert s.handle(join(2)) == [welcome_send(2, 2, "join-2")]


def test_join_without_welcome_sends_nothing() -> None:
    s = plain()
    assert s.handle(join(1)) == []
    assert (s.tasks, s.workers[1].credit) == ({}, 1)


def test_worker_joined_twice_raises() -> None:
    s = plain()
    s.handle(join(1))
    with pytest.raises(ValueError, match="worker 1 joined twice"):
        s.handle(join(1))


def test_welcome_result_finishes_the_task_and_sets_the_speed() -> None:
    s = Scheduler()
    s.handle(join(1))
    assert s.handle(result(1, 1, WELCOME_RESULT, now=1.0, sid="r")) == [
        done(1, 1, "r", job=None, value=WELCOME_RESULT, welcome=True)
    ]
    worker = s.workers[1]
    assert (worker.speed_ms, worker.tasks_done, worker.in_flight) == (2.5, 1, set())
    assert s.tasks == {}


def test_submitted_task_waits_for_the_welcome_task() -> None:
    s = Scheduler()
    s.handle(join(1))
    assert s.handle(submit()) == [accepted(1, 2)]
    assert s.tasks[2].state is TaskState.QUEUED
    assert s.handle(result(1, 1, sid="r")) == [
        done(1, 1, "r", job=None, welcome=True),
        send(1, 2, "r"),
    ]


def test_ordinary_result_does_not_set_the_speed() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(submit(sid="s")) == [accepted(1, 1, "s"), send(1, 1, "s")]
    assert s.handle(result(1, 1)) == [done(1, 1)]
    worker = s.workers[1]
    assert (worker.speed_ms, worker.tasks_done, worker.in_flight) == (None, 1, set())
    assert s.tasks == {}


def test_custom_welcome_task() -> None:
    s = Scheduler(welcome=WelcomeTask(args=(("initial", 2.0), ("factor", 3.0), ("times", 0))))
    assert s.handle(join(1)) == [
        SendTask(
            worker_id=1,
            task_id=1,
            op=RM,
            args={"initial": 2.0, "factor": 3.0, "times": 0},
            welcome=True,
            speculative=False,
            stimulus_id="join-1",
        )
    ]


# --- reports the scheduler refuses -------------------------------------------------------


def test_result_from_the_wrong_worker_is_rejected() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit())
    assert s.handle(result(2, 1, sid="r2")) == [reject(2, 1, "r2")]
    assert (s.tasks[1].state, set(s.tasks[1].leases)) == (TaskState.LEASED, {1})
    assert s.workers[2].tasks_done == 0
    assert s.handle(result(1, 1)) == [done(1, 1)]


@pytest.mark.parametrize("task_id", [99, 0, -1, "x", "1", 1.0])
def test_result_for_an_unknown_task_is_rejected(task_id: Any) -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(result(1, task_id, sid="r")) == [reject(1, task_id, "r")]
    assert s.workers[1].in_flight == {1}


def test_reject_reason_names_the_task() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(result(1, "t-9", sid="r")) == [
        RejectReport(
            worker_id=1,
            task_id="t-9",
            reason="no task 't-9' is leased to this worker",
            stimulus_id="r",
        )
    ]


def test_duplicate_result_is_rejected() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(result(1, 1)) == [done(1, 1)]
    assert s.handle(result(1, 1, sid="again")) == [reject(1, 1, "again")]
    assert s.workers[1].tasks_done == 1


def test_error_for_a_task_not_held_is_rejected() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit())
    assert s.handle(error(2, 1, sid="e")) == [reject(2, 1, "e")]
    assert s.handle(error(1, 7, sid="e7")) == [reject(1, 7, "e7")]
    assert (s.workers[1].failures, s.workers[2].failures) == (0, 0)
    assert (s.tasks[1].attempts, s.tasks[1].reasons) == (1, [])


def test_result_for_a_queued_task_is_rejected() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a"}, 1))
    s.handle(submit())
    assert s.handle(result(1, 1, sid="r")) == [reject(1, 1, "r")]
    assert s.tasks[1].state is TaskState.QUEUED


# --- jobs --------------------------------------------------------------------------------


def test_submission_creates_a_job_and_accepts_its_tasks_in_order() -> None:
    s = plain()
    options = JobOptions(name="n", priority=2)
    assert s.handle(submit(RM, "a", RM, options=options, now=3.0, sid="s")) == [
        accepted(1, 1, "s", count=3)
    ]
    job = s.jobs[1]
    assert (job.job_id, job.options, job.created_at, job.total) == (1, options, 3.0, 3)
    assert (job.counts, job.live, job.cancelled, job.finished) == (
        counts(queued=3),
        {1, 2, 3},
        False,
        False,
    )
    assert [(t.task_id, t.job_id, t.index, t.op, t.state) for t in s.tasks.values()] == [
        (1, 1, 0, RM, TaskState.QUEUED),
        (2, 1, 1, "a", TaskState.QUEUED),
        (3, 1, 2, RM, TaskState.QUEUED),
    ]
    assert s.tasks[1].args == ARGS


def test_jobs_and_tasks_are_numbered_in_submission_order() -> None:
    s = plain()
    assert s.handle(submit(RM, RM, sid="j1")) == [accepted(1, 1, "j1", count=2)]
    assert s.handle(submit(RM, sid="j2")) == [accepted(2, 3, "j2")]
    assert s.handle(submit(RM, RM, RM, job_id=1, sid="more1")) == [
        accepted(1, 4, "more1", count=3, first_index=2)
    ]
    assert s.handle(submit(RM, job_id=2, sid="more2")) == [accepted(2, 7, "more2", first_index=1)]
    assert [(t.task_id, t.job_id, t.index) for t in s.tasks.values()] == [
        (1, 1, 0),
        (2, 1, 1),
        (3, 2, 0),
        (4, 1, 2),
        (5, 1, 3),
        (6, 1, 4),
        (7, 2, 1),
    ]
    assert (s.jobs[1].total, s.jobs[2].total) == (5, 2)
    assert (s.jobs[1].counts, s.jobs[1].live) == (counts(queued=5), {1, 2, 4, 5, 6})


def test_adding_to_a_job_keeps_its_options() -> None:
    s = plain()
    s.handle(submit(options=JobOptions(name="first", priority=1)))
    s.handle(submit(job_id=1, options=JobOptions(name="ignored", priority=9)))
    assert s.jobs[1].options == JobOptions(name="first", priority=1)


def test_welcome_tasks_take_task_ids_too() -> None:
    s = Scheduler()
    s.handle(join(1))
    assert s.handle(submit(RM, RM, sid="s")) == [accepted(1, 2, "s", count=2)]


def test_adding_to_an_unknown_or_cancelled_job_raises() -> None:
    s = plain()
    s.handle(submit())  # job 1, task 1
    s.handle(cancel(1))
    with pytest.raises(ValueError, match="job 1 does not exist or was cancelled"):
        s.handle(submit(job_id=1))
    with pytest.raises(ValueError, match="job 2 does not exist or was cancelled"):
        s.handle(submit(job_id=2))
    assert s.jobs[1].total == 1
    assert s.handle(submit(sid="s")) == [accepted(2, 2, "s")]  # no id was used up


def test_job_counts_follow_its_tasks() -> None:
    s = plain(max_attempts=1)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(RM, RM, RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=4),
        send(1, 1, "s"),
        send(1, 2, "s"),
    ]
    job = s.jobs[1]
    assert (job.counts, job.live, job.finished) == (counts(queued=2, leased=2), {1, 2, 3, 4}, False)
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 3, "result")]
    assert (job.counts, job.live) == (counts(queued=1, leased=2, done=1), {2, 3, 4})
    assert s.handle(error(1, 2, "no", sid="e")) == [
        failed(2, "worker 1 reported: no", sid="e", index=1),
        send(1, 4, "e"),
    ]
    assert (job.counts, job.live) == (counts(leased=2, done=1, failed=1), {3, 4})
    assert s.handle(cancel(1, sid="c")) == [
        cancel_task(1, 3, "job cancelled", "c"),
        cancel_task(1, 4, "job cancelled", "c"),
        JobCancelled(job_id=1, task_ids=(3, 4), stimulus_id="c"),
    ]
    assert (job.counts, job.live) == (counts(done=1, failed=1, cancelled=2), set())
    assert (job.finished, job.cancelled, job.total) == (True, True, 4)
    assert s.tasks == {}


def test_adding_to_a_finished_job_reopens_it() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(result(1, 1)) == [done(1, 1)]
    assert s.jobs[1].finished
    assert s.handle(submit(job_id=1, sid="more")) == [
        accepted(1, 2, "more", first_index=1),
        send(1, 2, "more"),
    ]
    job = s.jobs[1]
    assert (job.finished, job.total, job.counts) == (False, 2, counts(leased=1, done=1))
    assert s.handle(result(1, 2)) == [done(1, 2, index=1)]
    assert job.finished


# --- credit and prefetch -----------------------------------------------------------------


def test_worker_gets_concurrency_plus_prefetch_tasks() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(hello(1, {RM}, 2, prefetch=1)) == []
    assert s.handle(submit(RM, RM, RM, RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=5),
        send(1, 1, "s"),
        send(1, 2, "s"),
        send(1, 3, "s"),
    ]
    worker = s.workers[1]
    assert (worker.in_flight, worker.credit, worker.prefetch) == ({1, 2, 3}, 0, 1)
    assert s.handle(result(1, 2)) == [done(1, 2, index=1), send(1, 4, "result")]
    assert (worker.in_flight, worker.credit) == ({1, 3, 4}, 0)
    assert s.jobs[1].counts == counts(queued=1, leased=3, done=1)


def test_hello_gives_more_credit_to_a_worker_running_its_welcome_task() -> None:
    s = Scheduler()
    s.handle(join(1))  # welcome task 1
    assert s.handle(submit(RM, RM, RM)) == [accepted(1, 2, count=3)]
    assert s.handle(hello(1, {RM}, 2, prefetch=1)) == [
        send(1, 2, "hello-1"),
        send(1, 3, "hello-1"),
    ]
    assert s.workers[1].in_flight == {1, 2, 3}


def test_prefetch_defaults_to_one_and_is_capped() -> None:
    s = plain(max_prefetch=2)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(WorkerIntroduced(worker_id=1, ops=frozenset({RM}), concurrency=1, now=0.0))
    s.handle(hello(2, {RM}, 1, prefetch=10))
    assert (s.workers[1].prefetch, s.workers[1].credit) == (1, 2)
    assert (s.workers[2].prefetch, s.workers[2].credit) == (2, 3)


def test_without_a_work_buffer_a_worker_keeps_the_prefetch_it_asked_for() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=3))
    s.handle(submit(RM, RM))
    s.handle(result(1, 1, duration_ms=10_000.0))
    worker = s.workers[1]
    assert (worker.prefetch_cap, worker.prefetch, worker.mean_ms) == (3, 3, 10_000.0)


def test_with_a_work_buffer_prefetch_starts_at_one_per_slot_then_follows_the_speed() -> None:
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    assert s.handle(hello(1, {RM}, 2, prefetch=10)) == []
    worker = s.workers[1]
    assert (worker.prefetch_cap, worker.prefetch, worker.credit) == (10, 2, 4)
    assert s.handle(submit(*[RM] * 20, sid="s")) == [
        accepted(1, 1, "s", count=20),
        *(send(1, task_id, "s") for task_id in (1, 2, 3, 4)),
    ]
    # 2.5 ms a task: a second is 400 per slot, but it never gets more than it asked for
    assert s.handle(result(1, 1, sid="r")) == [
        done(1, 1, "r"),
        *(send(1, task_id, "r") for task_id in range(5, 14)),
    ]
    assert (worker.mean_ms, worker.prefetch, len(worker.in_flight)) == (2.5, 10, 12)


def test_with_a_work_buffer_a_slow_worker_holds_one_task_per_slot() -> None:
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2, prefetch=10))
    s.handle(submit(*[RM] * 8))  # tasks 1-4 sent
    assert s.handle(result(1, 1, duration_ms=5000.0)) == [
        done(1, 1, duration_ms=5000.0),
        send(1, 5, "result"),
    ]
    assert s.handle(result(1, 2, duration_ms=100.0)) == [
        done(1, 2, index=1, duration_ms=100.0),
        send(1, 6, "result"),
    ]
    worker = s.workers[1]
    assert worker.mean_ms == pytest.approx(5000.0 + 0.2 * (100.0 - 5000.0))
    assert (worker.prefetch, worker.credit) == (2, 0)


def test_with_a_work_buffer_prefetch_shrinks_when_tasks_get_slow() -> None:
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=4))
    s.handle(submit(*[RM] * 8))  # tasks 1, 2 sent
    assert s.handle(result(1, 1, duration_ms=0.0, sid="fast")) == [
        done(1, 1, "fast", duration_ms=0.0),
        *(send(1, task_id, "fast") for task_id in (3, 4, 5, 6)),
    ]
    assert s.workers[1].prefetch == 4
    assert s.handle(result(1, 2, duration_ms=10_000.0, sid="slow")) == [
        done(1, 2, "slow", index=1, duration_ms=10_000.0)
    ]
    worker = s.workers[1]
    assert (worker.prefetch, worker.credit, len(worker.in_flight)) == (1, 0, 4)


def test_a_worker_fast_on_one_job_holds_one_task_per_slot_of_the_next_until_it_timed_one() -> None:
    """A tab that asked for 16 waiting tasks, measured on 1 ms tasks, met a job of 5 s tasks:
    it took 17 of them at once, 80 s of work that no other worker could then take."""
    s = plain(buffer_s=0.1)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=16))
    s.handle(submit(*[RM] * 2))  # job 1, tasks 1-2
    for task_id in (1, 2):
        s.handle(result(1, task_id, duration_ms=1.0))
    worker = s.workers[1]
    assert (worker.prefetch, worker.in_flight) == (16, set())  # 0.1 s is 100 such tasks
    s.handle(submit(*[RM] * 30))  # job 2, tasks 3-32: one runs, one waits
    assert worker.in_flight == {3, 4}
    s.handle(result(1, 3, duration_ms=5000.0))  # 5 s each: still one waiting, no more
    assert worker.in_flight == {4, 5}
    s.handle(join(2))
    s.handle(hello(2, {RM}, 1, prefetch=16))
    assert s.workers[2].in_flight == {6, 7}  # the rest is there for the others
    s.handle(submit(*[RM] * 40))  # job 3, tasks 33-72: a new job, one per slot again
    s.handle(result(1, 4, duration_ms=5000.0))
    s.handle(result(1, 5, duration_ms=5000.0))
    assert worker.in_flight == {8, 33}  # the jobs in turn


def test_a_job_the_worker_has_not_timed_gets_its_turn_then_waits_for_its_speed() -> None:
    s = plain(buffer_s=0.1)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=16))
    s.handle(submit(*[RM] * 200))  # job 1: tasks 1-200
    s.handle(result(1, 1, duration_ms=1.0))  # then 1 ms each: it holds 1 + 16
    worker = s.workers[1]
    assert (len(worker.in_flight), worker.credit) == (17, 0)
    urgent = JobOptions(priority=10)
    s.handle(submit(*[RM] * 5, options=urgent))  # job 2: tasks 201-205
    assert s.handle(result(1, 2, duration_ms=1.0, sid="next")) == [
        done(1, 2, "next", index=1, duration_ms=1.0),
        send(1, 201, "next"),  # first, whatever job 1 holds: a higher priority
    ]
    # a task of a job it has not timed may be long: nothing more until it reports one
    assert (worker.prefetch, worker.credit) == (1, 0)
    for task_id in range(3, 18):
        s.handle(result(1, task_id, duration_ms=1.0))
    assert worker.credit == 0 and 201 in worker.in_flight
    s.handle(result(1, 201, duration_ms=2.0))  # job 2 timed: fast too
    assert worker.prefetch == 16


def test_a_worker_keeps_its_speed_on_its_last_eight_jobs() -> None:
    s = plain(buffer_s=0.1)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=4))
    for job_id in range(1, 11):
        s.handle(submit(RM))  # job and task job_id
        s.handle(result(1, job_id, duration_ms=float(job_id)))
    assert s.workers[1].job_ms == {job_id: float(job_id) for job_id in range(3, 11)}
    s.handle(submit(RM, job_id=4))  # task 11, timed again: kept as the most recent
    s.handle(result(1, 11, duration_ms=9.0))
    assert list(s.workers[1].job_ms)[-1] == 4
    assert s.workers[1].job_ms[4] == pytest.approx(4.0 + 0.2 * (9.0 - 4.0))


def test_a_work_buffer_leaves_workers_without_prefetch_alone() -> None:
    s = Scheduler(buffer_s=1.0)
    s.handle(join(1))  # anonymous, welcome task 1
    s.handle(join(2))  # welcome task 2
    s.handle(hello(2, {RM}, 2, prefetch=0))
    s.handle(submit(RM, RM))  # task 3 -> worker 2
    s.handle(result(1, 1, duration_ms=7.0))
    s.handle(result(2, 3, duration_ms=1.0))
    one, two = s.workers[1], s.workers[2]
    assert (one.prefetch, one.mean_ms, one.speed_ms) == (0, None, 7.0)
    assert (two.prefetch, two.mean_ms) == (0, 1.0)


def test_the_welcome_task_does_not_count_towards_the_work_buffer() -> None:
    s = Scheduler(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=5))
    assert s.workers[1].prefetch == 1
    s.handle(result(1, 1, duration_ms=1.0))
    assert (s.workers[1].prefetch, s.workers[1].mean_ms) == (1, None)


def test_dispatch_spreads_a_short_queue_over_hungry_workers() -> None:
    s = plain()
    for worker_id in (1, 2, 3):
        s.handle(join(worker_id))
        s.handle(hello(worker_id, {RM}, 2, prefetch=1))
    assert s.handle(submit(RM, RM, RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=4),
        send(1, 1, "s"),
        send(2, 2, "s"),
        send(3, 3, "s"),
        send(1, 4, "s"),
    ]


def test_dispatch_fills_workers_in_join_order_and_skips_full_ones() -> None:
    s = plain()
    for worker_id in (1, 2, 3):
        s.handle(join(worker_id))
    s.handle(submit())  # job 1, task 1 -> worker 1
    s.handle(hello(2, {"a"}, 1))
    s.handle(hello(3, {RM}, 2))
    s.handle(submit("b"))  # job 2, task 2: nobody runs it
    assert s.handle(submit(sid="s3")) == [accepted(3, 3, "s3"), send(3, 3, "s3")]
    assert s.handle(submit(sid="s4")) == [accepted(4, 4, "s4"), send(3, 4, "s4")]
    assert s.handle(submit(sid="s5")) == [accepted(5, 5, "s5")]
    assert s.handle(result(3, 3)) == [done(3, 3, job=3), send(3, 5, "result")]
    assert [t.state for t in s.tasks.values()] == [
        TaskState.LEASED,
        TaskState.QUEUED,
        TaskState.LEASED,
        TaskState.LEASED,
    ]


def test_never_more_in_flight_than_concurrency_plus_prefetch() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(sid="s1")) == [accepted(1, 1, "s1"), send(1, 1, "s1")]
    assert s.handle(submit(job_id=1, sid="s2")) == [
        accepted(1, 2, "s2", first_index=1),
        send(1, 2, "s2"),
    ]
    assert s.handle(submit(job_id=1, sid="s3")) == [accepted(1, 3, "s3", first_index=2)]
    assert (s.workers[1].in_flight, s.workers[1].credit) == ({1, 2}, 0)
    assert s.handle(result(1, 2)) == [done(1, 2, index=1), send(1, 3, "result")]
    assert s.workers[1].in_flight == {1, 3}


def test_handle_with_an_empty_queue_sends_nothing() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(tick(100.0)) == []
    assert s.handle(hello(1, {RM}, 4)) == []


# --- fairness between jobs ---------------------------------------------------------------


def test_jobs_of_equal_priority_share_a_worker_in_turn() -> None:
    s = plain()
    s.handle(submit(RM, RM, RM))  # job 1: tasks 1-3
    s.handle(submit(RM, RM, RM))  # job 2: tasks 4-6
    assert s.handle(join(1)) == [send(1, 1, "join-1")]
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 4, "result")]
    assert s.handle(result(1, 4)) == [done(1, 4, job=2), send(1, 2, "result")]
    assert s.handle(result(1, 2)) == [done(1, 2, index=1), send(1, 5, "result")]
    assert s.handle(result(1, 5)) == [done(1, 5, job=2, index=1), send(1, 3, "result")]
    assert s.handle(result(1, 3)) == [done(1, 3, index=2), send(1, 6, "result")]
    assert s.handle(result(1, 6)) == [done(1, 6, job=2, index=2)]
    assert s.jobs[1].finished and s.jobs[2].finished


def test_jobs_of_equal_priority_share_several_workers_in_turn() -> None:
    s = plain()
    s.handle(submit(RM, RM))  # job 1: tasks 1, 2
    s.handle(submit(RM, RM))  # job 2: tasks 3, 4
    s.handle(join(1))
    s.handle(join(2))
    assert s.handle(hello(1, {RM}, 3)) == [
        send(1, 2, "hello-1"),  # worker 1 got task 1 of job 1 on join, worker 2 task 3 of job 2
        send(1, 4, "hello-1"),
    ]


def test_a_higher_priority_job_goes_first() -> None:
    s = plain()
    s.handle(submit(RM, RM))  # job 1: tasks 1, 2
    s.handle(submit(RM, RM, options=JobOptions(priority=5)))  # job 2: tasks 3, 4
    s.handle(submit(RM, options=JobOptions(priority=-1)))  # job 3: task 5
    assert s.handle(join(1)) == [send(1, 3, "join-1")]
    assert s.handle(join(2)) == [send(2, 4, "join-2")]
    assert s.handle(hello(1, {RM}, 4)) == [
        send(1, 1, "hello-1"),
        send(1, 2, "hello-1"),
        send(1, 5, "hello-1"),
    ]


def test_a_higher_priority_job_submitted_later_takes_the_next_free_slot() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit(RM, RM, sid="low"))  # job 1: task 1 -> worker 1, task 2 waits
    assert s.handle(submit(options=JobOptions(priority=1), sid="high")) == [accepted(2, 3, "high")]
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 3, "result")]
    assert s.handle(result(1, 3)) == [done(1, 3, job=2), send(1, 2, "result")]


def test_a_job_no_worker_can_run_does_not_block_others() -> None:
    s = plain()
    s.handle(submit("x", "x", options=JobOptions(priority=9)))  # job 1: tasks 1, 2
    s.handle(submit(RM, RM))  # job 2: tasks 3, 4
    assert s.handle(join(1)) == [send(1, 3, "join-1")]
    assert s.handle(result(1, 3)) == [done(1, 3, job=2), send(1, 4, "result")]
    assert s.handle(result(1, 4)) == [done(1, 4, job=2, index=1)]
    assert s.jobs[1].counts == counts(queued=2)
    s.handle(join(2))
    assert s.handle(hello(2, {"x"}, 2)) == [
        send(2, 1, "hello-2", op="x"),
        send(2, 2, "hello-2", op="x"),
    ]


# --- op matching and queue order ---------------------------------------------------------


def test_anonymous_worker_runs_only_repeat_multiply() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(submit("a")) == [accepted(1, 1)]
    assert s.handle(submit(RM, sid="s2")) == [accepted(2, 2, "s2"), send(1, 2, "s2")]
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.handle(result(1, 2)) == [done(1, 2, job=2)]
    assert s.tasks[1].state is TaskState.QUEUED


def test_introduced_worker_runs_only_its_announced_ops() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(hello(1, {"b"}, 3)) == []
    assert s.workers[1].state is WorkerState.INTRODUCED
    assert (s.workers[1].ops, s.workers[1].concurrency) == (frozenset({"b"}), 3)
    assert s.handle(submit("a")) == [accepted(1, 1)]
    assert s.handle(submit(RM)) == [accepted(2, 2)]
    assert s.handle(submit("b", sid="s3")) == [accepted(3, 3, "s3"), send(1, 3, "s3", op="b")]


def test_hello_dispatches_tasks_waiting_for_its_ops() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit("a", "b", "a"))
    assert s.handle(hello(1, {"a"}, 3)) == [
        send(1, 1, "hello-1", op="a"),
        send(1, 3, "hello-1", op="a"),
    ]
    assert s.tasks[2].state is TaskState.QUEUED


def test_a_worker_that_runs_several_ops_gets_tasks_of_each() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a", "b"}, 1))
    assert s.handle(submit("a", "b", sid="s")) == [
        accepted(1, 1, "s", count=2),
        send(1, 1, "s", op="a"),
    ]
    assert s.handle(result(1, 1)) == [done(1, 1, op="a"), send(1, 2, "result", op="b")]


def test_a_worker_that_runs_several_ops_gets_the_oldest_task_of_a_job_first() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a", "b"}, 1))
    assert s.handle(submit("a", "b", "a", sid="s")) == [
        accepted(1, 1, "s", count=3),
        send(1, 1, "s", op="a"),
    ]
    # task 2 (op b) is older than task 3 (op a): it goes next
    assert s.handle(result(1, 1)) == [done(1, 1, op="a"), send(1, 2, "result", op="b")]
    assert s.handle(result(1, 2)) == [
        done(1, 2, op="b", index=1),
        send(1, 3, "result", op="a"),
    ]


def test_tasks_no_worker_runs_stay_queued_in_order() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a"}, 1))
    assert s.handle(submit("x", "a", "x", "a", "x", sid="s")) == [
        accepted(1, 1, "s", count=5),
        send(1, 2, "s", op="a"),
    ]
    assert s.handle(result(1, 2)) == [
        done(1, 2, op="a", index=1),
        send(1, 4, "result", op="a"),
    ]
    s.handle(join(2))
    assert s.handle(hello(2, {"x"}, 2)) == [
        send(2, 1, "hello-2", op="x"),
        send(2, 3, "hello-2", op="x"),
    ]
    assert s.handle(result(2, 1)) == [done(2, 1, op="x"), send(2, 5, "result", op="x")]


# --- workers leaving ---------------------------------------------------------------------


def test_leaving_requeues_its_tasks_and_cancels_its_welcome_task() -> None:
    s = Scheduler()
    s.handle(join(1))  # welcome task 1
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(sid="s")) == [accepted(1, 2, "s"), send(1, 2, "s")]
    s.handle(join(2))  # welcome task 3
    assert [type(c) for c in s.handle(result(2, 3))] == [TaskDone]
    assert s.handle(leave(1, now=4.0)) == [send(2, 2, "leave-1")]
    assert 1 not in s.workers
    assert 1 not in s.tasks  # the welcome task of worker 1 is cancelled, not re-run
    task = s.tasks[2]
    assert (task.leases, task.attempts) == ({2: Lease(start=4.0, deadline=64.0)}, 2)
    assert (task.reasons, task.failed_on) == (["worker 1 disconnected"], {1})
    assert s.jobs[1].counts == counts(leased=1)


def test_leaving_with_no_other_worker_keeps_tasks_queued() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(leave(1)) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.jobs[1].counts == counts(queued=1)
    assert s.handle(join(2)) == [send(2, 1, "join-2")]


def test_tasks_requeued_by_a_leaving_worker_go_before_newer_tasks() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM, RM))  # task 1 -> worker 1, task 2 -> worker 2, task 3 waits
    assert s.handle(leave(1)) == []
    assert s.handle(result(2, 2)) == [done(2, 2, index=1), send(2, 1, "result")]


def test_two_tasks_requeued_by_a_leaving_worker_go_out_oldest_first() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=2),
        send(1, 1, "s"),
        send(1, 2, "s"),
    ]
    s.handle(join(2))
    assert s.handle(leave(1)) == [send(2, 1, "leave-1")]  # task 1 was submitted first
    assert s.handle(result(2, 1)) == [done(2, 1, attempts=2), send(2, 2, "result")]


def test_worker_introduced_twice_raises() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1))
    with pytest.raises(IllegalTransition, match="worker 1: introduced -> introduced"):
        s.handle(hello(1, {RM}, 2))


# --- error reports, retries, failure ----------------------------------------------------


def test_error_requeues_and_dispatches_to_another_worker() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    assert s.handle(submit(RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=2),
        send(1, 1, "s"),
        send(2, 2, "s"),
    ]
    assert s.handle(result(1, 1)) == [done(1, 1)]
    assert s.handle(error(2, 2, "RangeError", sid="e")) == [send(1, 2, "e")]
    task = s.tasks[2]
    assert (task.state, set(task.leases), task.attempts) == (TaskState.LEASED, {1}, 2)
    assert (task.reasons, task.failed_on) == (["worker 2 reported: RangeError"], {2})
    assert (s.workers[2].failures, s.workers[2].in_flight) == (1, set())


def test_a_requeued_task_waits_for_a_worker_it_has_not_failed_on() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=2),
        send(1, 1, "s"),
        send(2, 2, "s"),
    ]
    assert s.handle(error(1, 1, sid="e")) == []  # worker 1 has credit, but failed task 1
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.handle(result(2, 2)) == [done(2, 2, index=1), send(2, 1, "result")]


def test_an_avoided_task_goes_back_when_the_other_capable_worker_leaves() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(join(3))
    s.handle(hello(3, {"a"}, 1))  # runs another op: it does not count
    s.handle(submit(RM, RM))  # task 1 -> worker 1, task 2 -> worker 2
    assert s.handle(error(1, 1)) == []
    assert s.handle(leave(2)) == [send(1, 1, "leave-2")]
    assert s.handle(result(1, 1)) == [done(1, 1, attempts=2), send(1, 2, "result")]


def test_a_worker_that_left_does_not_count_as_failed() -> None:
    s = plain()
    for worker_id in (1, 2, 3):
        s.handle(join(worker_id))
    s.handle(submit(RM, RM, RM))  # tasks 1, 2, 3 -> workers 1, 2, 3
    assert s.handle(error(2, 2)) == []  # worker 2 skips task 2: workers 1 and 3 may run it
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 2, "result")]
    assert s.handle(error(1, 2)) == []
    assert s.handle(leave(2)) == []  # worker 1 still skips task 2: worker 3 has not failed it
    assert s.tasks[2].failed_on == {1, 2}
    assert s.handle(result(3, 3)) == [done(3, 3, index=2), send(3, 2, "result")]


def test_a_task_every_capable_worker_failed_still_runs_until_it_fails() -> None:
    s = plain(max_attempts=3)
    s.handle(join(1))
    s.handle(join(2))
    assert s.handle(submit(sid="s")) == [accepted(1, 1, "s"), send(1, 1, "s")]
    assert s.handle(error(1, 1, "one", sid="e1")) == [send(2, 1, "e1")]
    assert s.handle(error(2, 1, "two", sid="e2")) == [send(1, 1, "e2")]
    assert s.tasks[1].failed_on == {1, 2}
    assert s.tasks[1].charges == 1  # new workers: the first error had another to go to
    assert s.handle(error(1, 1, "three", sid="e3")) == [send(2, 1, "e3")]
    assert s.handle(error(2, 1, "four", sid="e4")) == [
        failed(
            1,
            "worker 1 reported: one",
            "worker 2 reported: two",
            "worker 1 reported: three",
            "worker 2 reported: four",
            sid="e4",
        )
    ]
    assert s.tasks == {}
    assert (s.workers[1].failures, s.workers[2].failures) == (2, 2)
    assert s.jobs[1].counts == counts(failed=1)


def test_error_goes_back_to_the_only_worker_that_runs_the_op() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a"}, 1))
    s.handle(submit("a"))
    s.handle(join(2))  # runs repeat_multiply only
    assert s.handle(error(1, 1)) == [send(1, 1, "error", op="a")]
    assert s.handle(leave(1)) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.workers[2].in_flight == set()


def test_task_fails_after_max_attempts_losses_that_point_at_it() -> None:
    """A new worker's dropped connection is no fault of the task: it is a reason, not an
    attempt. The sole worker's passed deadline and errors are: the third fails it."""
    s = plain(lease_timeout_s=60.0, max_attempts=3)
    s.handle(join(1))
    assert s.handle(submit(now=0.0, sid="s")) == [accepted(1, 1, "s"), send(1, 1, "s")]
    assert s.handle(leave(1, now=1.0)) == []
    assert s.tasks[1].state is TaskState.QUEUED and s.tasks[1].charges == 0
    assert s.handle(join(2, now=2.0)) == [send(2, 1, "join-2")]
    assert s.handle(tick(62.0)) == [
        cancel_task(2, 1, "worker 2 passed the 60 s deadline", "tick"),
        send(2, 1, "tick"),
    ]
    assert s.handle(error(2, 1, "out of memory", now=63.0, sid="e")) == [send(2, 1, "e")]
    assert s.tasks[1].charges == 2
    assert s.handle(error(2, 1, "out of memory", now=64.0, sid="f")) == [
        failed(
            1,
            "worker 1 disconnected",
            "worker 2 passed the 60 s deadline",
            "worker 2 reported: out of memory",
            "worker 2 reported: out of memory",
            sid="f",
        )
    ]
    assert s.tasks == {}
    assert (s.workers[2].in_flight, s.workers[2].failures) == (set(), 2)
    assert s.standing("#2").lost == 1  # the deadline: the task failed, its errors are forgiven


@pytest.mark.parametrize(
    ("default", "job_max", "task_max", "expected"),
    [
        (3, None, None, 3),
        (3, 2, None, 2),
        (3, None, 1, 1),
        (3, 2, 1, 1),
        (1, 1, 2, 2),
        (1, 3, None, 3),
    ],
)
def test_max_attempts_comes_from_the_task_then_the_job_then_the_scheduler(
    default: int, job_max: int | None, task_max: int | None, expected: int
) -> None:
    s = plain(max_attempts=default)
    s.handle(submit(spec(max_attempts=task_max), options=JobOptions(max_attempts=job_max)))
    assert s.tasks[1].max_attempts == expected
    s.handle(join(1))
    for attempt in range(1, expected):
        assert s.handle(error(1, 1, f"no {attempt}", sid=f"e{attempt}")) == [
            send(1, 1, f"e{attempt}")
        ]
    reasons = [f"worker 1 reported: no {attempt}" for attempt in range(1, expected + 1)]
    assert s.handle(error(1, 1, f"no {expected}", sid="last")) == [failed(1, *reasons, sid="last")]


def test_failed_task_frees_credit_for_the_next() -> None:
    s = plain(max_attempts=1)
    s.handle(join(1))
    s.handle(submit(RM, RM))
    assert s.handle(error(1, 1, "x", sid="e")) == [
        failed(1, "worker 1 reported: x", sid="e"),
        send(1, 2, "e"),
    ]


def test_error_on_the_welcome_task_cancels_it() -> None:
    s = Scheduler()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(error(1, 1, "no wasm", sid="e")) == [send(1, 2, "e")]
    assert 1 not in s.tasks
    assert (s.workers[1].failures, s.workers[1].speed_ms) == (1, None)


# --- lease deadlines ---------------------------------------------------------------------


def test_lease_deadline_takes_the_task_back_and_reissues_it() -> None:
    s = plain(lease_timeout_s=10.0, speculate_factor=None)  # worker 1 would copy task 2
    s.handle(join(1))
    s.handle(submit(now=0.0))  # job 1, task 1 -> worker 1, deadline 10
    s.handle(join(2))
    s.handle(submit(now=1.0))  # job 2, task 2 -> worker 2, deadline 11
    s.handle(result(1, 1, now=2.0))
    assert s.handle(tick(9.999)) == []
    assert s.handle(tick(11.0)) == [
        cancel_task(2, 2, "worker 2 passed the 10 s deadline", "tick"),
        send(1, 2, "tick"),
    ]
    task = s.tasks[2]
    assert (task.leases, task.attempts) == ({1: Lease(start=11.0, deadline=21.0)}, 2)
    assert (task.reasons, task.failed_on) == (["worker 2 passed the 10 s deadline"], {2})
    assert (s.workers[2].in_flight, s.workers[2].ignored) == (set(), {2})


def test_late_result_after_the_deadline_is_dropped_silently() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM, now=0.0))  # task 1 -> worker 1, task 2 -> worker 2, deadline 10
    assert s.handle(result(1, 1, now=1.0)) == [done(1, 1)]
    assert s.handle(tick(10.0)) == [
        cancel_task(2, 2, "worker 2 passed the 10 s deadline", "tick"),
        send(1, 2, "tick"),
    ]
    assert s.handle(result(2, 2, now=11.0, sid="late")) == []
    assert (s.workers[2].tasks_done, s.workers[2].ignored) == (0, set())
    assert s.handle(result(2, 2, now=11.5, sid="again")) == [reject(2, 2, "again")]
    assert s.handle(result(1, 2, now=12.0)) == [done(1, 2, index=1, attempts=2)]


def test_late_error_after_the_deadline_is_dropped_silently() -> None:
    s = plain(lease_timeout_s=10.0, max_attempts=1)
    s.handle(join(1))
    s.handle(submit(now=0.0))
    assert s.handle(tick(10.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        failed(1, "worker 1 passed the 10 s deadline", sid="tick"),
    ]
    assert s.handle(error(1, 1, "too late", sid="late")) == []
    assert s.workers[1].failures == 0


def test_lease_deadline_is_inclusive() -> None:
    s = plain(lease_timeout_s=10.0, max_attempts=1)
    s.handle(join(1))
    s.handle(submit(now=0.0))
    assert s.handle(tick(9.999)) == []
    assert s.handle(tick(10.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        failed(1, "worker 1 passed the 10 s deadline", sid="tick"),
    ]
    assert s.jobs[1].counts == counts(failed=1)


@pytest.mark.parametrize(
    ("op_default", "job_timeout", "task_timeout", "expected"),
    [
        (None, None, None, 60.0),
        (5.0, None, None, 5.0),
        (5.0, 3.0, None, 3.0),
        (5.0, 3.0, 2.5, 2.5),
        (5.0, None, 2.5, 2.5),
        (None, 3.0, None, 3.0),
        (None, 30.0, 90.0, 90.0),
    ],
)
def test_lease_timeout_comes_from_the_task_then_the_job_then_the_op_then_the_scheduler(
    op_default: float | None,
    job_timeout: float | None,
    task_timeout: float | None,
    expected: float,
) -> None:
    op_timeouts = {"other": 1.0} if op_default is None else {RM: op_default, "other": 1.0}
    s = plain(lease_timeout_s=60.0, max_attempts=1, op_lease_timeouts=op_timeouts)
    s.handle(join(1, now=1.0))
    s.handle(
        submit(
            spec(lease_timeout_s=task_timeout),
            options=JobOptions(lease_timeout_s=job_timeout),
            now=1.0,
        )
    )
    task = s.tasks[1]
    assert task.lease_timeout_s == expected
    assert task.leases == {1: Lease(start=1.0, deadline=1.0 + expected)}
    assert s.handle(tick(1.0 + expected - 0.01)) == []
    reason = f"worker 1 passed the {expected:g} s deadline"
    assert s.handle(tick(1.0 + expected, sid="t")) == [
        cancel_task(1, 1, reason, "t"),
        failed(1, reason, sid="t"),
    ]


def test_expired_welcome_task_is_cancelled_and_its_late_result_dropped() -> None:
    s = Scheduler(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(tick(10.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        send(1, 2, "tick"),
    ]
    assert 1 not in s.tasks
    assert s.handle(result(1, 1, sid="late")) == []
    assert (s.workers[1].speed_ms, s.workers[1].tasks_done) == (None, 0)


def test_tasks_expiring_together_go_out_oldest_first() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 4))  # two losses: it still holds two of its four
    s.handle(submit(now=0.0))  # task 1, deadline 10
    s.handle(submit(job_id=1, now=1.0))  # task 2, deadline 11
    assert s.handle(tick(20.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        cancel_task(1, 2, "worker 1 passed the 10 s deadline", "tick"),
        send(1, 1, "tick"),
        send(1, 2, "tick"),
    ]


def test_deadline_of_a_finished_task_is_skipped() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit(now=0.0))
    s.handle(result(1, 1, now=1.0))
    assert s.handle(tick(100.0)) == []
    assert s.workers[1].tasks_done == 1


def test_deadline_of_a_requeued_task_is_skipped() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit(now=0.0))
    s.handle(leave(1, now=1.0))
    assert s.handle(tick(100.0)) == []
    task = s.tasks[1]
    assert (task.state, task.attempts, task.reasons) == (
        TaskState.QUEUED,
        1,
        ["worker 1 disconnected"],
    )


def test_deadline_of_a_lease_that_moved_to_another_worker_is_skipped() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(now=0.0))  # task 1 -> worker 1, deadline 10
    assert s.handle(error(1, 1, now=1.0)) == [send(2, 1, "error")]  # deadline 11
    assert s.handle(tick(10.5)) == []
    assert s.handle(tick(11.0)) == [
        cancel_task(2, 1, "worker 2 passed the 10 s deadline", "tick"),
        send(1, 1, "tick"),
    ]


def test_deadline_of_an_earlier_lease_is_skipped() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit(now=0.0))  # attempt 1, deadline 10
    assert s.handle(error(1, 1, now=5.0)) == [send(1, 1, "error")]  # attempt 2, deadline 15
    assert s.handle(tick(12.0)) == []
    assert (s.tasks[1].state, s.tasks[1].attempts) == (TaskState.LEASED, 2)
    assert s.handle(tick(15.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        send(1, 1, "tick"),
    ]
    assert s.tasks[1].attempts == 3


# --- cancelling a job --------------------------------------------------------------------


def test_cancelling_a_job_with_queued_tasks() -> None:
    s = plain()
    s.handle(submit(RM, RM))
    assert s.handle(cancel(1, sid="c")) == [
        JobCancelled(job_id=1, task_ids=(1, 2), stimulus_id="c")
    ]
    job = s.jobs[1]
    assert (job.cancelled, job.finished, job.live) == (True, True, set())
    assert job.counts == counts(cancelled=2)
    assert s.tasks == {}
    assert s.handle(join(1)) == []  # nothing left to send


def test_cancelling_a_job_takes_back_its_leases_and_frees_the_workers() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    s.handle(join(2))
    assert s.handle(submit(RM, RM, RM, RM, sid="a")) == [
        accepted(1, 1, "a", count=4),
        send(1, 1, "a"),
        send(2, 2, "a"),
        send(1, 3, "a"),
    ]
    assert s.handle(submit(RM, RM, sid="b")) == [accepted(2, 5, "b", count=2)]
    assert s.handle(cancel(1, sid="c")) == [
        cancel_task(1, 1, "job cancelled", "c"),
        cancel_task(2, 2, "job cancelled", "c"),
        cancel_task(1, 3, "job cancelled", "c"),
        JobCancelled(job_id=1, task_ids=(1, 2, 3, 4), stimulus_id="c"),
        send(1, 5, "c"),
        send(2, 6, "c"),
    ]
    assert s.jobs[1].counts == counts(cancelled=4)
    assert s.jobs[2].counts == counts(leased=2)
    assert (s.workers[1].in_flight, s.workers[2].in_flight) == ({5}, {6})
    assert s.handle(result(1, 1, sid="late1")) == []
    assert s.handle(error(2, 2, sid="late2")) == []
    assert s.handle(result(1, 3, sid="late3")) == []
    assert (s.workers[1].tasks_done, s.workers[2].failures) == (0, 0)
    assert s.handle(result(1, 1, sid="again")) == [reject(1, 1, "again")]
    assert s.handle(tick(10.0)) == [
        cancel_task(1, 5, "worker 1 passed the 10 s deadline", "tick"),
        cancel_task(2, 6, "worker 2 passed the 10 s deadline", "tick"),
        send(1, 6, "tick"),  # each task avoids the worker it was taken back from
        send(2, 5, "tick"),
    ]


def test_cancelling_lists_only_the_unfinished_tasks() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit(RM, RM, RM))
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 2, "result")]
    assert s.handle(cancel(1, sid="c")) == [
        cancel_task(1, 2, "job cancelled", "c"),
        JobCancelled(job_id=1, task_ids=(2, 3), stimulus_id="c"),
    ]
    assert s.jobs[1].counts == counts(done=1, cancelled=2)
    assert s.handle(cancel(1, sid="c2")) == [JobCancelled(job_id=1, task_ids=(), stimulus_id="c2")]


def test_cancelling_one_job_leaves_the_others_alone() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit(RM, RM))  # job 1: task 1 -> worker 1
    s.handle(submit(RM, RM))  # job 2
    assert s.handle(cancel(2, sid="c")) == [
        JobCancelled(job_id=2, task_ids=(3, 4), stimulus_id="c")
    ]
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 2, "result")]
    assert s.jobs[1].counts == counts(leased=1, done=1)


# --- speculation: copying stragglers -----------------------------------------------------


def straggler(**kwargs: Any) -> Scheduler:
    """Workers 1 and 2 run one task at a time; two results after 0.5 s make the mean 0.5 s;
    task 3 starts on worker 1 at t=1 and worker 2 sits idle. Copies go out after
    max(1 s, 4 * 0.5 s) = 2 s, at t=3."""
    s = plain(**{"speculate_factor": 4.0, "speculate_min_s": 1.0, **kwargs})
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM))  # task 1 -> worker 1, task 2 -> worker 2
    s.handle(result(1, 1, now=0.5))
    s.handle(result(2, 2, now=0.5))
    assert s.op_mean_s == {RM: 0.5}
    assert s.handle(submit(job_id=1, now=1.0, sid="s3")) == [
        accepted(1, 3, "s3", first_index=2),
        send(1, 3, "s3"),
    ]
    return s


def test_the_op_mean_follows_the_durations_of_its_results() -> None:
    s = straggler()
    s.handle(submit(job_id=1, now=1.0))  # task 4 -> worker 2
    s.handle(result(2, 4, now=2.0))  # 1 s
    assert s.op_mean_s[RM] == pytest.approx(0.5 + 0.2 * (1.0 - 0.5))


def test_a_straggler_is_copied_to_an_idle_worker_on_a_tick() -> None:
    s = straggler()
    assert s.handle(tick(3.0)) == []  # running 2 s: not above max(1 s, 4 * 0.5 s)
    assert s.handle(tick(3.01, sid="t")) == [send(2, 3, "t", speculative=True)]
    task = s.tasks[3]
    assert task.leases == {
        1: Lease(start=1.0, deadline=61.0),
        2: Lease(start=3.01, deadline=3.01 + 60.0, speculative=True),
    }
    assert (task.state, task.attempts) == (TaskState.LEASED, 2)
    assert s.jobs[1].counts == counts(leased=1, done=2)
    assert s.workers[2].in_flight == {3}
    assert s.handle(tick(10.0)) == []  # copied once only


def test_speculation_happens_on_ticks_only() -> None:
    s = straggler()
    assert s.handle(join(3, now=5.0)) == []
    assert s.handle(tick(5.0, sid="t")) == [send(2, 3, "t", speculative=True)]


def test_the_copy_finishing_first_wins_and_the_first_lease_is_cancelled() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(result(2, 3, now=3.75, sid="r")) == [
        cancel_task(1, 3, "another copy finished first", "r"),
        done(2, 3, "r", index=2, attempts=2),
    ]
    assert s.tasks == {}
    assert (s.workers[1].in_flight, s.workers[1].ignored) == (set(), {3})
    assert s.op_mean_s[RM] == pytest.approx(0.5 + 0.2 * (0.25 - 0.5))
    assert s.handle(result(1, 3, now=4.0, sid="late")) == []
    assert (s.workers[1].tasks_done, s.workers[2].tasks_done) == (1, 2)
    assert s.jobs[1].counts == counts(done=3)


def test_the_first_lease_finishing_first_wins_and_the_copy_is_cancelled() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(result(1, 3, now=3.6, sid="r")) == [
        cancel_task(2, 3, "another copy finished first", "r"),
        done(1, 3, "r", index=2, attempts=2),
    ]
    assert s.handle(error(2, 3, sid="late")) == []
    assert s.workers[2].failures == 0


def test_a_copy_failing_while_the_other_runs_does_not_requeue() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(error(1, 3, "oom", now=4.0, sid="e")) == []
    task = s.tasks[3]
    assert (task.state, set(task.leases)) == (TaskState.LEASED, {2})
    assert (task.reasons, task.failed_on) == (["worker 1 reported: oom"], {1})
    assert s.jobs[1].counts == counts(leased=1, done=2)
    s.handle(join(3, now=4.0))
    assert s.handle(tick(20.0)) == []  # what runs is already a copy: it is not copied again
    assert s.handle(result(2, 3, now=21.0, sid="r")) == [done(2, 3, "r", index=2, attempts=2)]


def test_both_copies_failing_requeues_the_task() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(error(1, 3, "one", now=4.0)) == []
    assert s.handle(error(2, 3, "two", now=4.0, sid="e")) == [send(1, 3, "e")]
    task = s.tasks[3]
    assert (task.reasons, task.attempts) == (
        ["worker 1 reported: one", "worker 2 reported: two"],
        3,
    )


def test_a_copy_holder_leaving_does_not_requeue() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(leave(1, now=4.0)) == []
    assert set(s.tasks[3].leases) == {2}
    assert s.handle(result(2, 3, now=5.0)) == [done(2, 3, index=2, attempts=2)]


def test_the_first_lease_expiring_while_the_copy_runs_does_not_requeue() -> None:
    s = straggler(lease_timeout_s=10.0)
    assert s.handle(tick(3.5, sid="t")) == [send(2, 3, "t", speculative=True)]  # deadline 13.5
    assert s.handle(tick(11.0, sid="t2")) == [
        cancel_task(1, 3, "worker 1 passed the 10 s deadline", "t2")
    ]
    assert set(s.tasks[3].leases) == {2}
    assert s.handle(tick(13.5, sid="t3")) == [
        cancel_task(2, 3, "worker 2 passed the 10 s deadline", "t3"),
        send(1, 3, "t3"),
    ]


def test_cancelling_a_job_cancels_both_copies() -> None:
    s = straggler()
    s.handle(tick(3.5))
    assert s.handle(cancel(1, sid="c")) == [
        cancel_task(1, 3, "job cancelled", "c"),
        cancel_task(2, 3, "job cancelled", "c"),
        JobCancelled(job_id=1, task_ids=(3,), stimulus_id="c"),
    ]
    assert s.handle(result(1, 3, sid="late1")) == []
    assert s.handle(result(2, 3, sid="late2")) == []


def test_no_copy_when_speculation_is_off() -> None:
    s = straggler(speculate_factor=None)
    assert s.handle(tick(50.0)) == []
    assert set(s.tasks[3].leases) == {1}


def test_no_copy_before_the_op_has_a_mean() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit())  # task 1 -> worker 1
    assert s.handle(tick(50.0)) == []
    assert s.op_mean_s == {}


def test_the_minimum_holds_when_the_mean_is_short() -> None:
    s = plain(speculate_factor=4.0, speculate_min_s=1.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM))
    s.handle(result(1, 1, now=0.1))
    s.handle(result(2, 2, now=0.1))
    s.handle(submit(job_id=1, now=1.0))  # task 3 -> worker 1
    assert s.handle(tick(2.0)) == []  # running 1 s: 4 * 0.1 s is less than the 1 s minimum
    assert s.handle(tick(2.01, sid="t")) == [send(2, 3, "t", speculative=True)]


def test_no_copy_to_a_busy_worker_even_with_credit() -> None:
    s = straggler()
    s.handle(leave(2))
    s.handle(join(3))
    s.handle(hello(3, {RM}, 2))
    s.handle(submit(job_id=1, now=1.0))  # task 4 -> worker 3, which has credit left
    assert s.handle(tick(5.0)) == []
    assert s.workers[3].credit == 1


def test_no_copy_to_a_worker_that_does_not_run_the_op_or_failed_the_task() -> None:
    s = plain(speculate_factor=4.0, speculate_min_s=1.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM))  # task 1 -> worker 1, task 2 -> worker 2
    s.handle(result(1, 1, now=0.5))
    assert s.handle(error(2, 2, now=0.5, sid="e")) == [send(1, 2, "e")]
    s.handle(join(3))
    s.handle(hello(3, {"a"}, 1))
    assert s.handle(tick(10.0)) == []  # worker 2 failed task 2; worker 3 does not run it
    s.handle(join(4))
    assert s.handle(tick(10.5, sid="t")) == [send(4, 2, "t", speculative=True)]


def test_a_welcome_task_is_never_copied() -> None:
    s = Scheduler()
    s.handle(join(1))  # welcome task 1
    s.handle(join(2))  # welcome task 2
    s.handle(result(2, 2, now=0.1))
    assert s.op_mean_s == {}  # a welcome task measures its worker, not the op
    assert s.handle(tick(30.0)) == []


def test_the_oldest_straggler_is_copied_first_one_per_idle_worker() -> None:
    s = plain(speculate_factor=4.0, speculate_min_s=1.0)
    for worker_id in (1, 2):
        s.handle(join(worker_id))
    s.handle(submit(RM, RM))
    s.handle(result(1, 1, now=0.5))
    s.handle(result(2, 2, now=0.5))
    s.handle(submit(job_id=1, now=2.0))  # task 3 -> worker 1
    s.handle(submit(job_id=1, now=1.0))  # task 4 -> worker 2, started earlier
    s.handle(join(3))
    assert s.handle(tick(10.0, sid="t")) == [send(3, 4, "t", speculative=True)]
    s.handle(join(4))
    s.handle(join(5))
    assert s.handle(tick(10.5, sid="t2")) == [send(4, 3, "t2", speculative=True)]


def test_an_idle_worker_gets_queued_work_rather_than_a_copy() -> None:
    s = plain(speculate_factor=4.0, speculate_min_s=1.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(hello(2, {RM, "b"}, 1))
    s.handle(join(3))
    s.handle(hello(3, {"b"}, 1))
    s.handle(submit(RM, RM))  # task 1 -> worker 1, task 2 -> worker 2
    s.handle(result(1, 1, now=0.5))
    s.handle(result(2, 2, now=0.5))
    s.handle(submit(job_id=1, now=1.0))  # task 3 -> worker 1: the straggler
    s.handle(submit(spec("b", lease_timeout_s=2.0), now=1.0))  # task 4 -> worker 3
    assert s.workers[3].in_flight == {4}
    # the tick expires task 4; worker 2 could copy task 3 but takes task 4 instead
    assert s.handle(tick(3.5, sid="t")) == [
        cancel_task(3, 4, "worker 3 passed the 2 s deadline", "t"),
        send(2, 4, "t", op="b"),
    ]
    assert s.handle(result(2, 4, now=3.6)) == [done(2, 4, job=2, op="b", attempts=2)]
    assert s.handle(tick(3.7, sid="t2")) == [send(2, 3, "t2", speculative=True)]


# --- what is not an event ----------------------------------------------------------------


def test_something_that_is_not_an_event_raises() -> None:
    with pytest.raises(TypeError, match="not a scheduler event"):
        plain().handle("tick")  # type: ignore[arg-type]


# --- what readers of the scheduler's state are told (dashboard, metrics) -----------------


def test_changes_since_names_jobs_whose_counts_moved() -> None:
    s = plain()
    assert s.changes_since(0).jobs == set()
    s.handle(submit())  # job 1, queued
    s.handle(submit())  # job 2, queued
    changes = s.changes_since(0)
    assert changes.jobs == {1, 2}
    s.handle(join(1))  # job 1's task is leased
    changes = s.changes_since(changes.mark)
    assert changes.jobs == {1}
    s.handle(result(1, 1))  # job 1 done, job 2's task leased
    changes = s.changes_since(changes.mark)
    assert changes.jobs == {1, 2}
    s.handle(cancel(2))
    changes = s.changes_since(changes.mark)
    assert changes.jobs == {2}
    s.handle(tick(1.0))
    assert s.changes_since(changes.mark).jobs == set()


def test_welcome_tasks_change_no_job() -> None:
    s = Scheduler()
    s.handle(join(1))
    s.handle(result(1, 1, WELCOME_RESULT))
    assert s.changes_since(0).jobs == set()


def test_lost_leases_are_counted_by_kind() -> None:
    s = plain(lease_timeout_s=10, max_attempts=5)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(RM, RM))  # task 1 -> worker 1, task 2 -> worker 2
    s.handle(error(1, 1))  # task 1 waits: it avoids worker 1, worker 2 is full
    assert s.lost_leases == {"error": 1}
    assert s.handle(leave(2)) == [send(1, 1, "leave-2")]  # the only worker left runs it
    assert s.lost_leases == {"error": 1, "disconnected": 1}
    s.handle(tick(100.0))  # task 1 passes its deadline on worker 1
    assert s.lost_leases == {"error": 1, "disconnected": 1, "expired": 1}


# --- idle workers: what a tick or a join costs does not grow with them ---------------------


def test_ticks_over_many_idle_workers_copy_nothing_and_a_later_straggler_is_copied() -> None:
    s = plain(speculate_factor=4.0, speculate_min_s=1.0)
    for worker_id in range(1, 201):
        s.handle(join(worker_id))
        s.handle(hello(worker_id, {RM}, 1))
    assert [s.handle(tick(float(t))) for t in range(1, 4)] == [[], [], []]
    s.handle(submit(RM, RM, now=4.0))  # task 1 -> worker 1, task 2 -> worker 2
    s.handle(result(1, 1, now=4.5))
    s.handle(result(2, 2, now=4.5))  # the op's mean: 0.5 s
    assert s.handle(tick(5.0)) == []  # nothing leased: nothing straggles
    assert s.handle(submit(job_id=1, now=6.0, sid="s3")) == [
        accepted(1, 3, "s3", first_index=2),
        send(3, 3, "s3"),  # workers 1 and 2 are hungry again after the others
    ]
    assert s.handle(tick(8.0)) == []  # running 2 s: not above max(1 s, 4 * 0.5 s)
    assert s.handle(tick(8.01, sid="t")) == [send(1, 3, "t", speculative=True)]
    s.handle(result(1, 3, now=8.5))
    assert s.tasks == {}
    assert s.handle(tick(20.0)) == []


def test_a_welcome_task_running_long_is_never_copied() -> None:
    s = Scheduler(speculate_factor=4.0, speculate_min_s=1.0)
    s.handle(join(1))  # welcome task 1 -> worker 1
    s.handle(join(2))  # welcome task 2 -> worker 2
    s.handle(result(2, 2, WELCOME_RESULT, now=0.5))
    s.handle(hello(2, {RM}, 1))
    assert s.handle(tick(50.0)) == []
    assert set(s.tasks) == {1}


def test_joins_and_hellos_with_nothing_queued_send_nothing_then_a_submission_spreads() -> None:
    s = plain()
    for worker_id in range(1, 101):
        assert s.handle(join(worker_id)) == []
        assert s.handle(hello(worker_id, {RM}, 1)) == []
    assert s.handle(submit(RM, RM, RM, sid="s")) == [
        accepted(1, 1, "s", count=3),
        send(1, 1, "s"),
        send(2, 2, "s"),
        send(3, 3, "s"),
    ]
    assert s.handle(join(101)) == []  # all leased: nothing queued for it
    assert s.handle(leave(2, now=1.0)) == [send(4, 2, "leave-2")]  # requeued, then sent


def _figures(s: Scheduler) -> dict[int, tuple[Any, ...]]:
    """What the dashboard shows of each connected worker (its WorkerRow's live fields)."""
    return {
        worker_id: (
            w.state,
            len(w.in_flight),
            w.concurrency,
            w.tasks_done,
            w.failures,
            w.mean_ms,
            w.speed_ms,
            w.quarantined,
        )
        for worker_id, w in s.workers.items()
    }


@pytest.mark.parametrize("seed", range(12))
def test_leased_count_and_changed_workers_follow_random_events(seed: int) -> None:
    """The count of leased tasks that ``_speculate`` checks first, and the workers the
    dashboard builds rows for again (``changes_since``), stay exact whatever happens:
    joins, hellos, leaves, replicated jobs, disagreements and quarantines, errors, expiries,
    copies of stragglers and cancellations."""
    rng = random.Random(seed)
    s = Scheduler(
        lease_timeout_s=8.0,
        max_attempts=4,
        buffer_s=rng.choice([None, 0.5]),
        speculate_min_s=0.5,
        rng=rng.random,
    )
    now, next_id, jobs, mark = 0.0, 1, [], 0
    for step in range(600):
        before = _figures(s)
        workers = sorted(s.workers)
        holding = [w for w in workers if s.workers[w].in_flight]
        anonymous = [w for w in workers if s.workers[w].state is WorkerState.ANONYMOUS]
        choice = rng.random()
        if choice < 0.12 or not workers:
            event: Any = join(next_id, now)
            next_id += 1
        elif choice < 0.22 and anonymous:
            worker_id = rng.choice(anonymous)
            event = WorkerIntroduced(
                worker_id=worker_id,
                ops=frozenset({RM}),
                concurrency=rng.randint(1, 2),
                prefetch=rng.randint(0, 2),
                key=rng.choice([None, f"k{rng.randrange(4)}"]),
                now=now,
                stimulus_id=f"hello-{step}",
            )
        elif choice < 0.28:
            event = leave(rng.choice(workers), now)
        elif choice < 0.40:
            redundancy = rng.choice([1, 2, 2, 3])
            options = JobOptions(
                redundancy=redundancy, adaptive=redundancy > 1 and rng.random() < 0.5
            )
            event = submit(*[RM] * rng.randint(1, 4), options=options, now=now, sid=f"s{step}")
        elif choice < 0.70 and holding:
            worker_id = rng.choice(holding)
            task_id = rng.choice(sorted(s.workers[worker_id].in_flight))
            liar = s.workers[worker_id].key == "k0"  # quarantined after 3 disagreements
            value = 9.0 if liar else rng.choice([8.0, 8.0, 8.0, 8.0, 9.0])
            event = result(worker_id, task_id, value, now, f"r{step}", rng.uniform(1, 900))
        elif choice < 0.76 and holding:
            worker_id = rng.choice(holding)
            event = error(worker_id, rng.choice(sorted(s.workers[worker_id].in_flight)), now=now)
        elif choice < 0.78 and jobs:
            event = cancel(rng.choice(jobs), now)
        elif choice < 0.80:
            event = result(rng.choice(workers), 10_000 + step, now=now)  # not held: rejected
        else:
            now += rng.choice([0.1, 0.5, 2.0])
            event = tick(now, f"t{step}")
        commands = s.handle(event)
        jobs += [c.job_id for c in commands if isinstance(c, TasksAccepted)]
        jobs = [j for j in jobs if not s.jobs[j].cancelled]
        leased = [
            t for t in s.tasks.values() if t.state is TaskState.LEASED and t.pinned_to is None
        ]
        assert s._leased == len(leased), f"step {step}: {event}"
        after = _figures(s)
        moved = {w for w in before.keys() & after.keys() if before[w] != after[w]}
        changes = s.changes_since(mark)
        assert moved | (after.keys() - before.keys()) <= changes.workers, f"step {step}: {event}"
        assert changes.workers <= s.workers.keys()  # one that left is not named
        mark = changes.mark


# --- workers cold for an op (Pyodide's start-up) ------------------------------------------

PY = "python"


def cold_hello(worker_id: int, concurrency: int = 1, prefetch: int = 0) -> WorkerIntroduced:
    """A tab that runs Python only after seconds of start-up."""
    return WorkerIntroduced(
        worker_id=worker_id,
        ops=frozenset({RM, PY}),
        cold=frozenset({PY}),
        concurrency=concurrency,
        prefetch=prefetch,
        now=0.0,
        stimulus_id=f"hello-{worker_id}",
    )


def sent_to(commands: list[Any]) -> list[tuple[int, int]]:
    return [(c.worker_id, c.task_id) for c in commands if isinstance(c, SendTask)]


def test_a_cold_worker_is_not_given_a_task_a_free_warm_worker_can_take() -> None:
    s = plain()
    for ev in (join(1), cold_hello(1), join(2), hello(2, {RM, PY}, concurrency=1)):
        s.handle(ev)
    assert sent_to(s.handle(submit(PY))) == [(2, 1)]  # the cold tab (joined first) waits


def test_a_cold_worker_starts_up_when_warm_workers_have_no_room_for_the_queue() -> None:
    s = plain()
    for ev in (join(1), cold_hello(1), join(2), hello(2, {RM, PY}, concurrency=1)):
        s.handle(ev)
    assert sent_to(s.handle(submit(PY, PY, PY))) == [(1, 1), (2, 2)]


def test_a_cold_worker_with_no_warm_one_starts_up_at_once() -> None:
    s = plain()
    for ev in (join(1), cold_hello(1)):
        s.handle(ev)
    assert sent_to(s.handle(submit(PY))) == [(1, 1)]


def test_cold_concerns_only_the_cold_op() -> None:
    s = plain()
    for ev in (join(1), cold_hello(1), join(2), hello(2, {RM, PY}, concurrency=1)):
        s.handle(ev)
    assert sent_to(s.handle(submit(RM))) == [(1, 1)]


def test_a_worker_is_warm_after_its_first_task_of_the_op_ends_either_way() -> None:
    s = plain()
    for ev in (join(1), cold_hello(1, concurrency=2), join(2), hello(2, {RM, PY}, concurrency=1)):
        s.handle(ev)
    s.handle(submit(PY, PY, PY))  # more than worker 2 can take: worker 1 starts up
    assert s.workers[1].cold == {PY}
    s.handle(error(1, 1))
    assert s.workers[1].cold == set()
    s2 = plain()
    for ev in (join(1), cold_hello(1)):
        s2.handle(ev)
    s2.handle(submit(PY))
    s2.handle(result(1, 1))
    assert s2.workers[1].cold == set()


def test_cold_ops_a_worker_does_not_run_are_ignored() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(
        WorkerIntroduced(
            worker_id=1, ops=frozenset({RM}), cold=frozenset({PY}), concurrency=1, now=0.0
        )
    )
    assert s.workers[1].cold == set()


# --- a volunteer's controls: capacity changes and tasks handed back -----------------------


def capacity(
    worker_id: int, concurrency: int, prefetch: int | None = None, share: float = 1.0
) -> WorkerCapacityChanged:
    return WorkerCapacityChanged(
        worker_id=worker_id,
        concurrency=concurrency,
        prefetch=prefetch,
        share=share,
        now=0.0,
        stimulus_id=f"capacity-{worker_id}",
    )


def hand_back(worker_id: int, *task_ids: Any) -> TasksHandedBack:
    return TasksHandedBack(
        worker_id=worker_id, task_ids=task_ids, now=0.0, stimulus_id=f"back-{worker_id}"
    )


def test_a_paused_worker_is_sent_nothing_and_gets_work_again_when_it_resumes() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=2, prefetch=2))
    s.handle(capacity(1, 0))
    assert s.workers[1].credit == 0
    assert sent_to(s.handle(submit(RM, RM))) == []
    assert sent_to(s.handle(capacity(1, 1, prefetch=0))) == [(1, 1)]
    assert s.workers[1].credit == 0  # one at a time, none waiting


def test_handed_back_tasks_go_to_another_worker_at_once_and_count_no_attempt() -> None:
    s = plain()
    for ev in (join(1), hello(1, {RM}, concurrency=2), join(2), hello(2, {RM}, concurrency=1)):
        s.handle(ev)
    assert sent_to(s.handle(submit(RM, RM, RM))) == [(1, 1), (2, 2), (1, 3)]
    s.handle(capacity(1, 0))
    assert sent_to(s.handle(hand_back(1, 1, 3, 99, "junk"))) == []  # worker 2 is busy
    assert s.tasks[1].state is TaskState.QUEUED and s.tasks[1].attempts == 0
    assert s.workers[1].in_flight == set()
    assert sent_to(s.handle(result(2, 2))) == [(2, 1)]
    assert s.tasks[1].attempts == 1 and s.tasks[1].reasons == []
    assert 1 not in s.tasks[1].failed_on


def test_a_task_handed_back_while_another_copy_runs_stays_leased() -> None:
    s = plain(speculate_factor=None)
    for ev in (join(1), hello(1, {RM}, concurrency=1), join(2), hello(2, {RM}, concurrency=1)):
        s.handle(ev)
    r = JobOptions(redundancy=2)
    assert sorted(sent_to(s.handle(submit(RM, options=r)))) == [(1, 1), (2, 1)]
    s.handle(capacity(1, 0))
    assert sent_to(s.handle(hand_back(1, 1))) == []
    assert s.tasks[1].state is TaskState.LEASED and set(s.tasks[1].leases) == {2}
    assert sent_to(s.handle(join(3))) == [(3, 1)]  # the other copy it wants


def test_a_lower_share_slows_the_expected_speed_and_a_bad_one_is_refused() -> None:
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1, prefetch=100))
    s.handle(submit(RM))
    s.handle(result(1, 1, duration_ms=10.0))
    assert s.workers[1].mean_ms == 10.0
    s.handle(capacity(1, 1, share=0.25))
    assert s.workers[1].mean_ms == 40.0
    assert s.workers[1].job_ms == {1: 40.0}  # and on each job
    assert s.workers[1].prefetch == 25  # about 1 s of work at its new speed
    with pytest.raises(ValueError, match="share"):
        s.handle(capacity(1, 1, share=0.0))


def test_a_capacity_change_before_hello_raises() -> None:
    s = plain()
    s.handle(join(1))
    with pytest.raises(ValueError, match="worker 1 changed its capacity before hello"):
        s.handle(capacity(1, 4))
    assert s.workers[1].concurrency == 1


def test_a_handed_back_welcome_task_is_cancelled_and_its_slot_goes_to_queued_work() -> None:
    s = Scheduler()
    s.handle(join(1))  # welcome task 1
    s.handle(hello(1, {RM}, concurrency=1))
    assert s.handle(submit()) == [accepted(1, 2)]  # no room beside the welcome task
    assert s.handle(hand_back(1, 1)) == [send(1, 2, "back-1")]
    assert 1 not in s.tasks  # cancelled: no outcome, no speed sample
    assert (s.workers[1].in_flight, s.workers[1].speed_ms) == ({2}, None)


# --- taken-back tasks whose late reports are ignored ----------------------------------------


def test_a_worker_remembers_only_the_latest_taken_back_tasks_to_ignore() -> None:
    """Past ``_MAX_IGNORED`` the set starts again: a late report of a task taken back long
    ago is then rejected instead of dropped, which a worker that obeys cancels never sends."""
    count = _MAX_IGNORED + 1
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=count))
    s.handle(submit(*[RM] * count))
    commands = s.handle(cancel(1, sid="c"))
    assert [c for c in commands if isinstance(c, CancelTask)] == [
        cancel_task(1, task_id, "job cancelled", "c") for task_id in range(1, count + 1)
    ]
    assert s.workers[1].ignored == {count}
    assert s.handle(result(1, count, sid="late")) == []  # remembered: dropped quietly
    assert s.handle(result(1, 1, sid="late")) == [reject(1, 1, "late")]  # forgotten
