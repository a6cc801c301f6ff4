"""Restoring running jobs after a restart: feed JobRestored, compare the exact commands that
come out, then check state."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from browsergrid.core import (
    JobCancelled,
    JobOptions,
    JobRestored,
    RestoredTask,
    Scheduler,
    TaskState,
)
from tests.core.test_scheduler import (
    ARGS,
    RM,
    accepted,
    cancel,
    cancel_task,
    counts,
    done,
    error,
    failed,
    join,
    plain,
    result,
    send,
    submit,
    tick,
    welcome_send,
)


def restored(
    job_id: int,
    tasks: Sequence[RestoredTask],
    *,
    total: int,
    done: int = 0,
    failed: int = 0,
    cancelled: int = 0,
    options: JobOptions | None = None,
    now: float = 0.0,
    sid: str = "restore",
) -> JobRestored:
    return JobRestored(
        job_id=job_id,
        options=options or JobOptions(),
        total=total,
        done=done,
        failed=failed,
        cancelled=cancelled,
        tasks=tasks,
        now=now,
        stimulus_id=sid,
    )


def rtask(
    task_id: int, index: int, op: str = RM, attempts: int = 0, reasons: tuple[str, ...] = ()
) -> RestoredTask:
    return RestoredTask(
        task_id=task_id, index=index, op=op, args=ARGS, attempts=attempts, reasons=reasons
    )


def test_restored_task_defaults() -> None:
    task = RestoredTask(task_id=1, index=0, op=RM, args={})
    assert (task.attempts, task.reasons) == (0, ())


def test_a_restored_job_comes_back_with_its_counts_and_its_tasks_queued() -> None:
    s = plain()
    assert (
        s.handle(restored(2, [rtask(5, 1), rtask(7, 3)], total=4, done=1, failed=1, now=9.0)) == []
    )
    job = s.jobs[2]
    assert (job.total, job.live, job.created_at) == (4, {5, 7}, 9.0)
    assert (job.counts, job.finished, job.cancelled) == (
        counts(queued=2, done=1, failed=1),
        False,
        False,
    )
    assert [(t.task_id, t.job_id, t.index, t.op, t.args, t.state) for t in s.tasks.values()] == [
        (5, 2, 1, RM, ARGS, TaskState.QUEUED),
        (7, 2, 3, RM, ARGS, TaskState.QUEUED),
    ]
    assert (s.tasks[5].max_attempts, s.tasks[5].lease_timeout_s) == (3, 60.0)


def test_restored_tasks_go_out_oldest_first_and_keep_their_attempts() -> None:
    s = plain()
    s.handle(join(1))
    assert s.handle(
        restored(1, [rtask(7, 2, attempts=2, reasons=("lost",)), rtask(5, 1)], total=3, done=1)
    ) == [send(1, 5, "restore")]
    assert s.handle(result(1, 5)) == [done(1, 5, index=1), send(1, 7, "result")]
    assert s.handle(result(1, 7)) == [done(1, 7, index=2, attempts=3)]
    assert s.jobs[1].finished
    assert s.jobs[1].counts == counts(done=3)


def test_restored_reasons_count_towards_max_attempts() -> None:
    s = plain(max_attempts=3)
    s.handle(join(1))
    s.handle(restored(1, [rtask(4, 0, attempts=2, reasons=("one", "two"))], total=1))
    assert s.handle(error(1, 4, "three", sid="e")) == [
        failed(4, "one", "two", "worker 1 reported: three", sid="e")
    ]


@pytest.mark.parametrize(
    ("op_default", "options", "timeout", "attempts"),
    [
        (None, JobOptions(), 60.0, 3),
        (5.0, JobOptions(), 5.0, 3),
        (5.0, JobOptions(lease_timeout_s=2.0, max_attempts=1), 2.0, 1),
        (None, JobOptions(lease_timeout_s=90.0, max_attempts=5), 90.0, 5),
    ],
)
def test_restored_tasks_take_the_job_options_then_the_defaults(
    op_default: float | None, options: JobOptions, timeout: float, attempts: int
) -> None:
    s = plain(op_lease_timeouts={} if op_default is None else {RM: op_default})
    s.handle(restored(1, [rtask(1, 0)], total=1, options=options))
    task = s.tasks[1]
    assert (task.lease_timeout_s, task.max_attempts) == (timeout, attempts)
    assert s.jobs[1].options == options


def test_new_ids_continue_from_the_ones_given() -> None:
    s = plain(next_job_id=3, next_task_id=10)
    s.handle(restored(2, [rtask(5, 1)], total=2, done=1))
    assert s.handle(submit(sid="s")) == [accepted(3, 10, "s")]
    assert s.handle(submit(RM, RM, job_id=2, sid="more")) == [
        accepted(2, 11, "more", count=2, first_index=2)
    ]
    assert (s.jobs[2].total, s.jobs[2].counts) == (4, counts(queued=3, done=1))
    assert [t.index for t in s.tasks.values() if t.job_id == 2] == [1, 2, 3]


def test_welcome_tasks_take_the_next_task_id_too() -> None:
    s = Scheduler(next_task_id=10)
    assert s.handle(join(1)) == [welcome_send(1, 10, "join-1")]


def test_a_restored_job_can_be_cancelled() -> None:
    s = plain()
    s.handle(restored(1, [rtask(5, 1), rtask(6, 2)], total=3, done=1))
    assert s.handle(join(1)) == [send(1, 5, "join-1")]
    assert s.handle(cancel(1, sid="c")) == [
        cancel_task(1, 5, "job cancelled", "c"),
        JobCancelled(job_id=1, task_ids=(5, 6), stimulus_id="c"),
    ]
    job = s.jobs[1]
    assert (job.counts, job.finished, job.cancelled) == (counts(done=1, cancelled=2), True, True)


def test_a_restored_job_keeps_its_priority() -> None:
    s = plain(next_job_id=2, next_task_id=3)
    s.handle(submit(RM, sid="new"))  # job 2, task 3
    s.handle(restored(1, [rtask(1, 0), rtask(2, 1)], total=2, options=JobOptions(priority=1)))
    assert s.handle(join(1)) == [send(1, 1, "join-1")]
    assert s.handle(result(1, 1)) == [done(1, 1), send(1, 2, "result")]
    assert s.handle(result(1, 2)) == [done(1, 2, index=1), send(1, 3, "result")]


def test_a_restored_lease_deadline_starts_when_it_is_sent() -> None:
    s = plain(lease_timeout_s=10.0, max_attempts=1)
    s.handle(restored(1, [rtask(1, 0)], total=1, now=0.0))
    s.handle(join(1, now=5.0))
    assert s.handle(tick(14.9)) == []
    assert s.handle(tick(15.0)) == [
        cancel_task(1, 1, "worker 1 passed the 10 s deadline", "tick"),
        failed(1, "worker 1 passed the 10 s deadline", sid="tick"),
    ]


def test_restoring_a_job_twice_raises() -> None:
    s = plain()
    s.handle(submit())  # job 1
    with pytest.raises(ValueError, match="job 1 restored twice"):
        s.handle(restored(1, [], total=0))
    s.handle(restored(2, [], total=1, done=1))
    with pytest.raises(ValueError, match="job 2 restored twice"):
        s.handle(restored(2, [], total=1, done=1))


def test_restoring_a_task_twice_raises_and_changes_nothing() -> None:
    s = plain()
    s.handle(restored(1, [rtask(5, 0)], total=1))
    with pytest.raises(ValueError, match="a task was restored twice"):
        s.handle(restored(2, [rtask(6, 0), rtask(5, 1)], total=2))
    assert set(s.jobs) == {1}  # job 2 was refused: nothing of it stays
    assert set(s.tasks) == {5}
    with pytest.raises(ValueError, match="job 3: a task was restored twice"):
        s.handle(restored(3, [rtask(7, 0), rtask(7, 1)], total=2))
    assert set(s.jobs) == {1}
    assert set(s.tasks) == {5}
