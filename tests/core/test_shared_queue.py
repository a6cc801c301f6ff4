"""The events a coordinator sharing its queue with others feeds (``serve --redis``): tasks
taken from the shared queue, queued tasks given up when their workers left, and how much
work the workers here could take."""

from __future__ import annotations

import pytest

from browsergrid.core import (
    JobOptions,
    JobsForgotten,
    RestoredTask,
    Scheduler,
    Standing,
    StrandedReleased,
    TasksReleased,
    TasksTaken,
    TaskState,
    WorkerIntroduced,
)
from tests.core.test_scheduler import (
    ARGS,
    RM,
    cancel,
    counts,
    done,
    hello,
    join,
    leave,
    plain,
    result,
    send,
)

MC = "monte_carlo_pi"


def taken(
    job_id: int, *task_ids: int, op: str = RM, options: JobOptions | None = None, sid: str = "take"
) -> TasksTaken:
    return TasksTaken(
        job_id=job_id,
        options=options or JobOptions(),
        tasks=[RestoredTask(task_id=t, index=t - 100, op=op, args=ARGS) for t in task_ids],
        now=0.0,
        stimulus_id=sid,
    )


def release(sid: str = "release") -> StrandedReleased:
    return StrandedReleased(now=0.0, stimulus_id=sid)


def test_taken_tasks_create_the_job_and_go_to_a_hungry_worker() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    assert s.handle(taken(7, 101, 102)) == [send(1, 101, "take")]
    job = s.jobs[7]
    assert job.total == 2
    assert job.counts == counts(queued=1, leased=1)
    assert s.handle(result(1, 101, 8.0, sid="r")) == [
        done(1, 101, "r", job=7, index=1),
        send(1, 102, "r"),
    ]


def test_more_tasks_taken_for_a_known_job_add_to_it() -> None:
    s = plain()
    s.handle(taken(7, 101))
    s.handle(taken(7, 102, 103))
    assert s.jobs[7].total == 3
    assert s.jobs[7].counts == counts(queued=3)


def test_a_task_taken_twice_is_refused() -> None:
    s = plain()
    s.handle(taken(7, 101))
    try:
        s.handle(taken(7, 101))
    except ValueError as exc:
        assert "twice" in str(exc)
    else:
        raise AssertionError("a task taken twice was accepted")


def test_tasks_taken_for_a_job_cancelled_here_are_refused() -> None:
    s = plain()
    s.handle(taken(7, 101))
    s.handle(cancel(7))
    with pytest.raises(ValueError, match="job 7 was cancelled"):
        s.handle(taken(7, 102))
    assert 102 not in s.tasks and s.jobs[7].total == 1


def test_appetite_is_the_credit_and_ops_of_workers_nothing_here_suits() -> None:
    s = plain()
    assert s.appetite() == (0, frozenset())
    s.handle(join(1))
    s.handle(hello(1, {RM, MC}, concurrency=2, prefetch=1))
    assert s.appetite() == (3, frozenset({RM, MC}))
    s.handle(taken(7, 101))
    assert s.appetite() == (2, frozenset({RM, MC}))  # 1 of 3 held: half empty, still hungry
    s.handle(taken(7, 102))
    assert s.appetite() == (0, frozenset())  # 2 of 3 held: it waits, then takes in a batch
    s.handle(taken(7, 103, 104))  # one goes out, one waits: nobody is hungry
    assert s.appetite() == (0, frozenset())


def test_stranded_tasks_are_released_when_their_workers_leave() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, 101, 102, 103))
    assert s.handle(release()) == []  # a worker here runs them
    assert s.handle(leave(1, now=1.0)) == []  # its lease is queued again here
    job = s.jobs[7]
    assert s.handle(release()) == [
        TasksReleased(
            task_ids=(101, 102, 103),
            reasons=(("worker 1 disconnected",), (), ()),
            stimulus_id="release",
        ),
        JobsForgotten(jobs=(job,), stimulus_id="release"),  # nothing of it is left here
    ]
    assert (job.total, job.live, job.counts) == (0, set(), counts())
    assert not s.jobs and not s.tasks
    # taken again later (from the shared queue), they run as new
    s.handle(join(2))
    s.handle(hello(2, {RM}, concurrency=1))
    assert s.handle(taken(7, 101, sid="again")) == [send(2, 101, "again")]


def test_release_keeps_tasks_of_ops_a_worker_here_runs() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, 101, 102))
    s.handle(taken(8, 201, op=MC))
    job = s.jobs[8]
    assert s.handle(release()) == [
        TasksReleased(task_ids=(201,), reasons=((),), stimulus_id="release"),
        JobsForgotten(jobs=(job,), stimulus_id="release"),
    ]
    assert s.jobs[7].counts == counts(queued=1, leased=1)
    assert 8 not in s.jobs


def test_release_keeps_a_replicated_task_with_its_quorum_under_way() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(join(2))
    for w in (1, 2):
        s.handle(hello(w, {RM}, concurrency=1))
    s.handle(taken(7, 101, options=JobOptions(redundancy=2)))
    s.handle(result(1, 101, 8.0, sid="r1"))  # one replica in, the other still leased
    s.handle(leave(2))
    s.handle(leave(1))
    assert s.handle(release()) == []
    assert s.jobs[7].counts[TaskState.QUEUED] == 1


def test_released_ids_left_in_the_heap_are_skipped() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, 101, 102, op=MC))
    s.handle(taken(7, 103))  # leased to worker 1: the job stays
    s.handle(release())
    s.handle(taken(7, 104, op=MC))
    s.handle(join(2))
    assert s.handle(hello(2, {MC}, concurrency=1)) == [send(2, 104, "hello-2", op=MC)]


def test_a_job_with_tasks_still_to_report_stays_when_the_rest_is_released() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, 101))
    s.handle(taken(7, 102, op=MC))
    s.handle(result(1, 101, 8.0))
    assert s.handle(release()) == [
        TasksReleased(task_ids=(102,), reasons=((),), stimulus_id="release")
    ]
    assert s.jobs[7].finished and s.jobs[7].unreported == 1  # 101's outcome is on its way


def test_a_scheduler_without_shared_queue_events_is_unchanged() -> None:
    s = Scheduler(welcome=None)
    assert s.appetite() == (0, frozenset())


def test_identities_counts_distinct_keys_that_may_get_tasks() -> None:
    s = plain()
    assert s.identities([RM]) == {RM: 0}
    s.handle(join(1))
    s.handle(join(2))
    assert s.identities([RM, MC]) == {RM: 2, MC: 0}  # anonymous: one identity each
    for worker_id in (1, 2):
        s.handle(
            WorkerIntroduced(
                worker_id=worker_id, ops=frozenset({RM}), concurrency=1, now=0.0, key="k"
            )
        )
    assert s.identities([RM]) == {RM: 1}


def test_identities_leave_out_quarantined_workers_and_ops_not_asked_about() -> None:
    s = plain()
    for worker_id, key, standing in ((1, "good", None), (2, "bad", Standing(quarantined=True))):
        s.handle(join(worker_id))
        s.handle(
            WorkerIntroduced(
                worker_id=worker_id,
                ops=frozenset({RM, MC}),
                concurrency=1,
                now=0.0,
                key=key,
                standing=standing,
            )
        )
    assert s.identities([RM]) == {RM: 1}
