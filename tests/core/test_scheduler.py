"""The scheduler core: feed events, compare the exact commands that come out, then check state."""

from __future__ import annotations

from typing import Any

import pytest

from browsergrid.core import (
    EXERCISE_OPS,
    ClockTicked,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    TaskState,
    TaskSubmitted,
    WelcomeTask,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
    WorkerState,
)
from browsergrid.errors import IllegalTransition

RM = "repeat_multiply"
WELCOME_ARGS = {"initial": 1.0000054, "factor": 1.00000043, "times": 1_000_000}
WELCOME_RESULT = 1.5372656826974733
ARGS = {"initial": 1.0, "factor": 2.0, "times": 3}


# --- helpers: events with short names, and the SendTask they are expected to cause ------


def join(worker_id: int, now: float = 0.0) -> WorkerJoined:
    return WorkerJoined(worker_id=worker_id, now=now, stimulus_id=f"join-{worker_id}")


def hello(worker_id: int, ops: set[str], concurrency: int, now: float = 0.0) -> WorkerIntroduced:
    return WorkerIntroduced(
        worker_id=worker_id,
        ops=frozenset(ops),
        concurrency=concurrency,
        now=now,
        stimulus_id=f"hello-{worker_id}",
    )


def leave(worker_id: int, now: float = 0.0) -> WorkerLeft:
    return WorkerLeft(worker_id=worker_id, now=now, stimulus_id=f"leave-{worker_id}")


def submit(op: str = RM, now: float = 0.0, sid: str = "submit", **kwargs: Any) -> TaskSubmitted:
    return TaskSubmitted(op=op, args=ARGS, now=now, stimulus_id=sid, **kwargs)


def result(
    worker_id: int, task_id: Any, value: Any = 8.0, now: float = 0.0, sid: str = "result"
) -> ResultReported:
    return ResultReported(
        worker_id=worker_id,
        task_id=task_id,
        result=value,
        duration_ms=2.5,
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


def send(worker_id: int, task_id: int, sid: str, op: str = RM) -> SendTask:
    return SendTask(
        worker_id=worker_id, task_id=task_id, op=op, args=ARGS, welcome=False, stimulus_id=sid
    )


def done(worker_id: int, task_id: int, sid: str = "result", value: Any = 8.0) -> TaskDone:
    return TaskDone(
        worker_id=worker_id,
        task_id=task_id,
        op=RM,
        result=value,
        duration_ms=2.5,
        welcome=False,
        stimulus_id=sid,
    )


def reject(worker_id: int, task_id: Any, sid: str) -> RejectReport:
    return RejectReport(
        worker_id=worker_id,
        task_id=task_id,
        reason=f"no task {task_id!r} is leased to this worker",
        stimulus_id=sid,
    )


def plain(**kwargs: Any) -> Scheduler:
    """A scheduler that sends no welcome task, so task ids start at 1 with submissions."""
    return Scheduler(welcome=None, **kwargs)


# --- construction ------------------------------------------------------------------------


def test_defaults() -> None:
    s = Scheduler()
    assert (s.welcome, s.lease_timeout_s, s.max_attempts) == (WelcomeTask(), 60.0, 3)
    assert (s.tasks, s.workers) == ({}, {})
    assert WelcomeTask().op == RM
    assert dict(WelcomeTask().args) == WELCOME_ARGS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lease_timeout_s": 0}, "lease_timeout_s must be positive"),
        ({"lease_timeout_s": -1.0}, "lease_timeout_s must be positive"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
    ],
)
def test_constructor_refuses_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(**kwargs)


# --- joining and the welcome task --------------------------------------------------------


def test_join_sends_the_welcome_task() -> None:
    s = Scheduler()
    assert s.handle(join(1, now=5.0)) == [
        SendTask(
            worker_id=1, task_id=1, op=RM, args=WELCOME_ARGS, welcome=True, stimulus_id="join-1"
        )
    ]
    worker = s.workers[1]
    assert worker.state is WorkerState.ANONYMOUS
    assert (worker.ops, worker.concurrency, worker.joined_at) == (EXERCISE_OPS, 1, 5.0)
    assert (worker.in_flight, worker.credit) == ({1}, 0)
    task = s.tasks[1]
    assert (task.state, task.worker_id, task.pinned_to) == (TaskState.LEASED, 1, 1)
    assert (task.attempts, task.max_attempts, task.deadline) == (1, 1, 65.0)


def test_each_worker_gets_its_own_welcome_task() -> None:
    s = Scheduler()
    assert [c.task_id for c in s.handle(join(1))] == [1]
    assert s.handle(join(2)) == [
        SendTask(
            worker_id=2, task_id=2, op=RM, args=WELCOME_ARGS, welcome=True, stimulus_id="join-2"
        )
    ]


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
        TaskDone(
            worker_id=1,
            task_id=1,
            op=RM,
            result=WELCOME_RESULT,
            duration_ms=2.5,
            welcome=True,
            stimulus_id="r",
        )
    ]
    worker = s.workers[1]
    assert (worker.speed_ms, worker.tasks_done, worker.in_flight) == (2.5, 1, set())
    assert s.tasks == {}


def test_submitted_task_waits_for_the_welcome_task() -> None:
    s = Scheduler()
    s.handle(join(1))
    assert s.handle(submit()) == []
    assert s.tasks[2].state is TaskState.QUEUED
    assert s.handle(result(1, 1, sid="r")) == [
        TaskDone(
            worker_id=1,
            task_id=1,
            op=RM,
            result=8.0,
            duration_ms=2.5,
            welcome=True,
            stimulus_id="r",
        ),
        send(1, 2, "r"),
    ]


def test_ordinary_result_does_not_set_the_speed() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(submit(sid="s")) == [send(1, 1, "s")]
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
    assert (s.tasks[1].state, s.tasks[1].worker_id) == (TaskState.LEASED, 1)
    assert s.workers[2].tasks_done == 0
    assert s.handle(result(1, 1)) == [done(1, 1)]


@pytest.mark.parametrize("task_id", [99, "x", "1"])
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


def test_late_result_after_the_lease_moved_is_rejected() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit(now=0.0))  # task 1 -> worker 1
    s.handle(submit(now=0.0))  # task 2 -> worker 2, deadline 10
    assert s.handle(result(1, 1, now=1.0)) == [done(1, 1)]
    assert s.handle(tick(10.0)) == [send(1, 2, "tick")]
    assert s.handle(result(2, 2, now=11.0, sid="late")) == [reject(2, 2, "late")]
    assert s.handle(result(1, 2, now=12.0)) == [done(1, 2)]


# --- error reports, retries, failure ----------------------------------------------------


def test_error_requeues_and_dispatches_to_another_worker() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    assert s.handle(submit(sid="a")) == [send(1, 1, "a")]
    assert s.handle(submit(sid="b")) == [send(2, 2, "b")]
    assert s.handle(result(1, 1)) == [done(1, 1)]
    assert s.handle(error(2, 2, "RangeError", sid="e")) == [send(1, 2, "e")]
    task = s.tasks[2]
    assert (task.state, task.worker_id, task.attempts) == (TaskState.LEASED, 1, 2)
    assert task.reasons == ["worker 2 reported: RangeError"]
    assert (s.workers[2].failures, s.workers[2].in_flight) == (1, set())


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


def test_task_fails_after_max_attempts_with_one_reason_per_attempt() -> None:
    s = plain(lease_timeout_s=60.0, max_attempts=3)
    s.handle(join(1))
    assert s.handle(submit(now=0.0, sid="s")) == [send(1, 1, "s")]
    assert s.handle(leave(1, now=1.0)) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.handle(join(2, now=2.0)) == [send(2, 1, "join-2")]
    assert s.handle(tick(62.0)) == [send(2, 1, "tick")]
    assert s.handle(error(2, 1, "out of memory", now=63.0, sid="e")) == [
        TaskFailed(
            task_id=1,
            op=RM,
            reasons=(
                "worker 1 disconnected",
                "worker 2 passed the 60 s deadline",
                "worker 2 reported: out of memory",
            ),
            stimulus_id="e",
        )
    ]
    assert s.tasks == {}
    assert (s.workers[2].in_flight, s.workers[2].failures) == (set(), 1)


def test_task_max_attempts_overrides_the_default() -> None:
    s = plain(max_attempts=3)
    s.handle(join(1))
    s.handle(submit(max_attempts=1))
    assert s.handle(error(1, 1, "no")) == [
        TaskFailed(task_id=1, op=RM, reasons=("worker 1 reported: no",), stimulus_id="error")
    ]
    assert s.tasks == {}


def test_failed_task_frees_credit_for_the_next() -> None:
    s = plain(max_attempts=1)
    s.handle(join(1))
    s.handle(submit())
    s.handle(submit())
    assert s.handle(error(1, 1, "x", sid="e")) == [
        TaskFailed(task_id=1, op=RM, reasons=("worker 1 reported: x",), stimulus_id="e"),
        send(1, 2, "e"),
    ]


def test_error_on_the_welcome_task_cancels_it() -> None:
    s = Scheduler()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(error(1, 1, "no wasm", sid="e")) == [send(1, 2, "e")]
    assert 1 not in s.tasks
    assert (s.workers[1].failures, s.workers[1].speed_ms) == (1, None)


# --- workers leaving ---------------------------------------------------------------------


def test_leaving_requeues_its_tasks_and_cancels_its_welcome_task() -> None:
    s = Scheduler()
    s.handle(join(1))  # welcome task 1
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(sid="s")) == [send(1, 2, "s")]
    s.handle(join(2))  # welcome task 3
    assert [type(c) for c in s.handle(result(2, 3))] == [TaskDone]
    assert s.handle(leave(1, now=4.0)) == [send(2, 2, "leave-1")]
    assert 1 not in s.workers
    assert 1 not in s.tasks  # the welcome task of worker 1 is cancelled, not re-run
    task = s.tasks[2]
    assert (task.worker_id, task.attempts, task.reasons) == (2, 2, ["worker 1 disconnected"])


def test_leaving_with_no_other_worker_keeps_tasks_queued() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(leave(1)) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert s.handle(join(2)) == [send(2, 1, "join-2")]


def test_tasks_requeued_by_a_leaving_worker_go_before_newer_tasks() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    s.handle(submit())  # task 1 -> worker 1
    s.handle(submit())  # task 2 -> worker 2
    s.handle(submit())  # task 3 waits
    assert s.handle(leave(1)) == []
    assert s.handle(result(2, 2)) == [done(2, 2), send(2, 1, "result")]


def test_two_tasks_requeued_by_a_leaving_worker_go_out_oldest_first() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(sid="s1")) == [send(1, 1, "s1")]
    assert s.handle(submit(sid="s2")) == [send(1, 2, "s2")]
    s.handle(join(2))
    assert s.handle(leave(1)) == [send(2, 1, "leave-1")]  # task 1 was submitted first
    assert s.handle(result(2, 1)) == [done(2, 1), send(2, 2, "result")]


def test_worker_introduced_twice_raises() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1))
    with pytest.raises(IllegalTransition, match="worker 1: introduced -> introduced"):
        s.handle(hello(1, {RM}, 2))


# --- lease deadlines ---------------------------------------------------------------------


def test_lease_deadline_requeues_and_redispatches() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit(now=0.0))  # task 1 -> worker 1, deadline 10
    s.handle(join(2))
    s.handle(submit(now=1.0, sid="s2"))  # task 2 -> worker 2, deadline 11
    s.handle(result(1, 1, now=2.0))
    assert s.handle(tick(9.999)) == []
    assert s.handle(tick(11.0)) == [send(1, 2, "tick")]
    task = s.tasks[2]
    assert (task.worker_id, task.attempts, task.deadline) == (1, 2, 21.0)
    assert task.reasons == ["worker 2 passed the 10 s deadline"]
    assert s.workers[2].in_flight == set()


def test_lease_deadline_is_inclusive() -> None:
    s = plain(lease_timeout_s=10.0, max_attempts=1)
    s.handle(join(1))
    s.handle(submit(now=0.0))
    assert s.handle(tick(10.0)) == [
        TaskFailed(
            task_id=1, op=RM, reasons=("worker 1 passed the 10 s deadline",), stimulus_id="tick"
        )
    ]


def test_task_lease_timeout_overrides_the_default() -> None:
    s = plain(lease_timeout_s=60.0, max_attempts=1)
    s.handle(join(1))
    s.handle(submit(now=0.0, lease_timeout_s=2.5))
    assert s.tasks[1].deadline == 2.5
    assert s.handle(tick(2.5)) == [
        TaskFailed(
            task_id=1, op=RM, reasons=("worker 1 passed the 2.5 s deadline",), stimulus_id="tick"
        )
    ]


def test_expired_welcome_task_is_cancelled() -> None:
    s = Scheduler(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit())
    assert s.handle(tick(10.0)) == [send(1, 2, "tick")]
    assert 1 not in s.tasks
    assert s.handle(result(1, 1, sid="late")) == [reject(1, 1, "late")]
    assert s.workers[1].speed_ms is None


def test_tasks_expiring_together_go_out_oldest_first() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    s.handle(submit(now=0.0))  # task 1, deadline 10
    s.handle(submit(now=1.0))  # task 2, deadline 11
    assert s.handle(tick(20.0)) == [send(1, 1, "tick"), send(1, 2, "tick")]


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


def test_deadline_of_an_earlier_lease_is_skipped() -> None:
    s = plain(lease_timeout_s=10.0)
    s.handle(join(1))
    s.handle(submit(now=0.0))  # attempt 1, deadline 10
    assert s.handle(error(1, 1, now=5.0)) == [send(1, 1, "error")]  # attempt 2, deadline 15
    assert s.handle(tick(12.0)) == []
    assert (s.tasks[1].state, s.tasks[1].attempts) == (TaskState.LEASED, 2)
    assert s.handle(tick(15.0)) == [send(1, 1, "tick")]
    assert s.tasks[1].attempts == 3


# --- op matching and queue order ---------------------------------------------------------


def test_anonymous_worker_runs_only_repeat_multiply() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(submit("a")) == []
    assert s.handle(submit(RM, sid="s2")) == [send(1, 2, "s2")]
    assert s.tasks[1].state is TaskState.QUEUED


def test_introduced_worker_runs_only_its_announced_ops() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(hello(1, {"b"}, 3)) == []
    assert s.workers[1].state is WorkerState.INTRODUCED
    assert (s.workers[1].ops, s.workers[1].concurrency) == (frozenset({"b"}), 3)
    assert s.handle(submit("a")) == []
    assert s.handle(submit(RM)) == []
    assert s.handle(submit("b", sid="s3")) == [send(1, 3, "s3", op="b")]


def test_hello_dispatches_tasks_waiting_for_its_ops() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(submit("a"))
    s.handle(submit("b"))
    s.handle(submit("a"))
    assert s.handle(hello(1, {"a"}, 3)) == [
        send(1, 1, "hello-1", op="a"),
        send(1, 3, "hello-1", op="a"),
    ]
    assert s.tasks[2].state is TaskState.QUEUED


def test_tasks_no_worker_runs_stay_queued_in_order() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {"a"}, 1))
    s.handle(submit("x"))  # 1
    assert s.handle(submit("a", sid="a2")) == [send(1, 2, "a2", op="a")]
    s.handle(submit("x"))  # 3
    s.handle(submit("a"))  # 4
    s.handle(submit("x"))  # 5
    assert s.handle(result(1, 2)) == [
        TaskDone(
            worker_id=1,
            task_id=2,
            op="a",
            result=8.0,
            duration_ms=2.5,
            welcome=False,
            stimulus_id="result",
        ),
        send(1, 4, "result", op="a"),
    ]
    s.handle(join(2))
    assert s.handle(hello(2, {"x"}, 2)) == [
        send(2, 1, "hello-2", op="x"),
        send(2, 3, "hello-2", op="x"),
    ]
    assert s.handle(result(2, 1)) == [
        TaskDone(
            worker_id=2,
            task_id=1,
            op="x",
            result=8.0,
            duration_ms=2.5,
            welcome=False,
            stimulus_id="result",
        ),
        send(2, 5, "result", op="x"),
    ]


# --- credit ------------------------------------------------------------------------------


def test_never_more_in_flight_than_concurrency() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, 2))
    assert s.handle(submit(sid="s1")) == [send(1, 1, "s1")]
    assert s.handle(submit(sid="s2")) == [send(1, 2, "s2")]
    assert s.handle(submit(sid="s3")) == []
    assert (s.workers[1].in_flight, s.workers[1].credit) == ({1, 2}, 0)
    assert s.handle(result(1, 2)) == [done(1, 2), send(1, 3, "result")]
    assert s.workers[1].in_flight == {1, 3}


def test_dispatch_fills_workers_in_join_order_and_skips_full_ones() -> None:
    s = plain()
    for worker_id in (1, 2, 3):
        s.handle(join(worker_id))
    s.handle(submit())  # task 1 -> worker 1
    s.handle(hello(2, {"a"}, 1))
    s.handle(hello(3, {RM}, 2))
    s.handle(submit("b"))  # 2: nobody runs it
    assert s.handle(submit(sid="s3")) == [send(3, 3, "s3")]
    assert s.handle(submit(sid="s4")) == [send(3, 4, "s4")]
    assert s.handle(submit(sid="s5")) == []
    assert s.handle(result(3, 3)) == [done(3, 3), send(3, 5, "result")]
    assert [t.state for t in s.tasks.values()] == [
        TaskState.LEASED,
        TaskState.QUEUED,
        TaskState.LEASED,
        TaskState.LEASED,
    ]


def test_handle_with_an_empty_queue_sends_nothing() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(tick(100.0)) == []
    assert s.handle(hello(1, {RM}, 4)) == []


def test_something_that_is_not_an_event_raises() -> None:
    with pytest.raises(TypeError, match="not a scheduler event"):
        plain().handle("tick")  # type: ignore[arg-type]
