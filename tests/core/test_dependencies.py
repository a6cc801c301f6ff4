"""Futures as arguments in the scheduler core: a task whose arguments name other tasks
waits (WAITING) until each of them is done and its outcome reported, then is queued with
their results in; a dependency that fails, is cancelled or is unknown fails it, down a
chain. Tasks the scheduler does not hold are asked of the shell (``DependenciesWanted``),
which answers from the store (``DependenciesSettled``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from browsergrid.core import (
    ClockTicked,
    Command,
    DependenciesSettled,
    DependenciesWanted,
    JobCancelled,
    JobOptions,
    JobRestored,
    JobsForgotten,
    ReplicaReported,
    RestoredTask,
    Scheduler,
    SendTask,
    Settled,
    TaskDone,
    TaskFailed,
    TaskSpec,
    TasksSubmitted,
    TasksTaken,
    TaskState,
    WelcomeTask,
    WorkerIntroduced,
)
from browsergrid.protocol import (
    BLOB,
    FUTURE,
    MAX_FRAME_BYTES,
    MAX_RESOLVED_BYTES,
    encode_task,
    resolve_futures,
    result_size,
    task_futures,
)
from browsergrid.protocol._futures import FUTURES_DEPTH
from tests.core.test_forgetting import forgets, reported
from tests.core.test_scheduler import (
    accepted,
    cancel,
    cancel_task,
    counts,
    error,
    join,
    result,
)
from tests.core.test_scheduler import done as _done
from tests.core.test_scheduler import failed as _failed

OP = "add"
BOOM = "worker 1 reported: boom"  # the reason of a task worker 1 reports an error for


# --- helpers ------------------------------------------------------------------------------


def fut(task_id: int) -> dict[str, int]:
    """A future: ``{"$future": task_id}``."""
    return {FUTURE: task_id}


def grid(**kwargs: Any) -> Scheduler:
    """A scheduler wired as the coordinator wires it (``task_futures``, ``resolve_futures``,
    ``result_size`` within ``MAX_RESOLVED_BYTES``), without welcome tasks (task ids start
    at 1 with submissions) or speculation."""
    kwargs.setdefault("resolve", resolve_futures)
    kwargs.setdefault("measure", result_size)
    kwargs.setdefault("max_resolved_bytes", MAX_RESOLVED_BYTES)
    return Scheduler(welcome=None, speculate_factor=None, depends=task_futures, **kwargs)


def worker(s: Scheduler, worker_id: int, concurrency: int = 1, key: str | None = None) -> None:
    """Worker ``worker_id`` joins and runs OP, ``concurrency`` at a time, no prefetch."""
    s.handle(join(worker_id))
    s.handle(
        WorkerIntroduced(
            worker_id=worker_id,
            ops=frozenset({OP}),
            concurrency=concurrency,
            prefetch=0,
            key=key,
            now=0.0,
            stimulus_id=f"hello-{worker_id}",
        )
    )


def submit(
    s: Scheduler,
    *args: dict[str, Any],
    job_id: int | None = None,
    options: JobOptions | None = None,
    sid: str = "submit",
) -> list[Command]:
    """One OP task per ``args``, for a new job or added to ``job_id``."""
    return s.handle(
        TasksSubmitted(
            tasks=[TaskSpec(op=OP, args=a) for a in args],
            job_id=job_id,
            options=options or JobOptions(),
            now=0.0,
            stimulus_id=sid,
        )
    )


def settle(s: Scheduler, *settled: Settled, sid: str = "settled") -> list[Command]:
    """The shell's answer to a ``DependenciesWanted``."""
    return s.handle(DependenciesSettled(settled=settled, now=0.0, stimulus_id=sid))


def send(worker_id: int, task_id: int, args: dict[str, Any], sid: str) -> SendTask:
    return SendTask(
        worker_id=worker_id,
        task_id=task_id,
        op=OP,
        args=args,
        welcome=False,
        speculative=False,
        stimulus_id=sid,
    )


def done(worker_id: int, task_id: int, value: Any, **kwargs: Any) -> TaskDone:
    return _done(worker_id, task_id, op=OP, value=value, **kwargs)


def failed(task_id: int, reason: str, sid: str, job: int, index: int = 0) -> TaskFailed:
    return _failed(task_id, reason, sid=sid, job=job, index=index, op=OP)


def wanted(*task_ids: int, sid: str) -> DependenciesWanted:
    return DependenciesWanted(task_ids=task_ids, stimulus_id=sid)


def because(task_id: int, why: str) -> str:
    """The reason a dependent of ``task_id`` fails with."""
    return f"task {task_id}, which it depends on, {why}"


def dependents(s: Scheduler) -> dict[int, list[int]]:
    """``s._dependents`` with each ordered set of waiting tasks as a list, in its order."""
    return {dep: list(waiting) for dep, waiting in s._dependents.items()}


def too_large(over: int, most: int = MAX_RESOLVED_BYTES) -> str:
    """The reason a dependent fails with when its results come to ``over + 1`` bytes."""
    return (
        f"it cannot run: the results of the tasks it depends on come to at least {over + 1} bytes "
        f"as JSON, more than the {most} one task's arguments may hold: have those tasks "
        "return smaller results (a large result is kept as a blob by a worker that can), or "
        "make each task depend on fewer of them (reduce in a tree)"
    )


def check(s: Scheduler) -> None:
    """Every job's counts agree with the states of its tasks held here, waiting ones too;
    waiting tasks wait for something, and none of them is queued or leased; the tasks a
    task has waiting on it are exactly the waiting tasks that wait for it."""
    held: dict[int, Counter[TaskState]] = {}
    for task in s.tasks.values():
        if task.job_id is not None:
            held.setdefault(task.job_id, Counter())[task.state] += 1
        if task.state is TaskState.WAITING:
            assert task.after and not task.queued and not task.leases
            assert all(task.task_id in s._dependents[dep] for dep in task.after)
        else:
            assert not task.after and not task.settled
    for dep, waiting in s._dependents.items():
        assert waiting, dep  # an empty entry is dropped
        for task_id in waiting:
            task = s.tasks[task_id]
            assert task.state is TaskState.WAITING and dep in task.after, (dep, task_id)
    for job_id, job in s.jobs.items():
        live = held.get(job_id, Counter())
        for state in (TaskState.WAITING, TaskState.QUEUED, TaskState.LEASED):
            assert job.counts[state] == live[state], (job_id, state)
        assert sum(job.counts.values()) == job.total
        assert sum(live.values()) == len(job.live)


# --- a chain, step by step ---------------------------------------------------------------


def test_a_chain_runs_each_task_only_once_the_outcome_before_it_is_reported() -> None:
    s = grid()
    worker(s, 1)
    assert submit(s, {"x": 1}) == [accepted(1, 1), send(1, 1, {"x": 1}, "submit")]
    b_args = {"x": fut(1), "y": 2}
    assert submit(s, b_args, sid="b") == [accepted(2, 2, "b")]  # 1 runs here: nothing wanted
    assert submit(s, {"xs": [fut(2), 10]}, job_id=2, sid="c") == [
        accepted(2, 3, "c", first_index=1)
    ]
    assert s.jobs[2].counts == counts(waiting=2)
    assert (s.tasks[2].after, s.tasks[3].after) == ({1}, {2})
    assert dependents(s) == {1: [2], 2: [3]}
    check(s)

    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
    assert s.tasks[2].state is TaskState.WAITING  # done, but its outcome is not stored yet
    assert s._settlements == {1: Settled(task_id=1, result=5)}
    assert s.jobs[2].counts == counts(waiting=2)
    check(s)

    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 2, {"x": 5, "y": 2}, "reported"),  # reported: queued, with the result in
    ]
    assert s.tasks[2].args == {"x": 5, "y": 2} and s.tasks[2].settled is None
    assert b_args == {"x": fut(1), "y": 2}  # the submitted arguments are not changed
    assert s.jobs[2].counts == counts(leased=1, waiting=1)
    assert s._settlements == {} and dependents(s) == {2: [3]}
    check(s)

    assert s.handle(result(1, 2, 7, sid="r2")) == [done(1, 2, 7, sid="r2", job=2)]
    assert s.tasks[3].state is TaskState.WAITING
    assert s.jobs[2].counts == counts(done=1, waiting=1)
    check(s)
    assert s.handle(reported(2, sid="rep2")) == [send(1, 3, {"xs": [7, 10]}, "rep2")]
    assert s.jobs[2].counts == counts(done=1, leased=1)
    check(s)

    assert s.handle(result(1, 3, 17, sid="r3")) == [done(1, 3, 17, sid="r3", job=2, index=1)]
    gone = forgets(s, 2)
    assert s.handle(reported(3)) == [gone]
    assert gone.jobs[0].counts == counts(done=2)
    assert s.jobs == {} and s.tasks == {} and s._dependents == {} and s._settlements == {}


def test_the_result_a_quorum_accepted_reaches_the_dependent() -> None:
    s = grid(agree=lambda op, args, a, b: round(a) == round(b))
    worker(s, 1, key="w1")
    worker(s, 2, key="w2")
    assert submit(s, {"x": 1}, options=JobOptions(redundancy=2)) == [
        accepted(1, 1),
        send(1, 1, {"x": 1}, "submit"),
        send(2, 1, {"x": 1}, "submit"),
    ]
    assert submit(s, {"x": fut(1)}, sid="b") == [accepted(2, 2, "b")]

    first = s.handle(result(1, 1, 25.25))
    assert [type(c) for c in first] == [ReplicaReported]  # one replica: no quorum yet
    assert 1 not in s._settlements
    second = s.handle(result(2, 1, 24.875))
    assert [type(c) for c in second] == [ReplicaReported, TaskDone]
    quorum = second[1]
    assert isinstance(quorum, TaskDone)
    assert (quorum.verdict, quorum.result) == ("quorum", 25.25)  # the first of the quorum
    assert s._settlements == {1: Settled(task_id=1, result=25.25)}
    assert s.tasks[2].state is TaskState.WAITING
    check(s)

    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 2, {"x": 25.25}, "reported"),
    ]
    check(s)


def test_a_task_that_depends_on_tasks_of_two_jobs_waits_for_both() -> None:
    s = grid()
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})
    submit(s, {"n": 2})
    args = {"a": fut(1), "b": {"deep": [fut(2), fut(1)]}}
    assert submit(s, args) == [accepted(3, 3)]
    assert s.tasks[3].after == {1, 2}
    assert dependents(s) == {1: [3], 2: [3]}

    assert s.handle(result(1, 2, "two")) == [done(1, 2, "two", job=2)]
    job2 = s.jobs[2]
    # one of two: nothing is queued, so nothing is dispatched (the worker has room)
    assert s.handle(reported(2)) == [JobsForgotten(jobs=(job2,), stimulus_id="reported")]
    assert s.tasks[3].after == {1} and s.tasks[3].settled == {2: "two"}
    assert s.jobs[3].counts == counts(waiting=1)
    check(s)

    assert s.handle(result(1, 1, "one")) == [done(1, 1, "one")]
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 3, {"a": "one", "b": {"deep": ["two", "one"]}}, "reported"),
    ]
    assert s.jobs[3].counts == counts(leased=1)
    check(s)


def test_a_waiting_task_is_never_leased() -> None:
    s = grid()
    worker(s, 1, concurrency=4)
    submit(s, {"n": 1})
    assert submit(s, {"x": fut(1)}, {"x": fut(1)}, {"x": fut(1)}, sid="b") == [
        accepted(2, 2, "b", count=3)  # the worker has 3 free slots: none of them is queued
    ]
    assert s.jobs[2].counts == counts(waiting=3)
    assert 2 not in s._ringed and not s.jobs[2].queued()
    assert s.handle(ClockTicked(now=1.0)) == []
    worker(s, 2, concurrency=4)
    assert s.workers[2].in_flight == set()
    # a report of a task still running is a mistake: nothing changes
    assert s.handle(reported(1)) == []
    assert dependents(s) == {1: [2, 3, 4]} and s.jobs[2].counts == counts(waiting=3)
    assert s.workers[1].in_flight == {1}
    check(s)

    s.handle(result(1, 1, 0))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 2, {"x": 0}, "reported"),
        send(2, 3, {"x": 0}, "reported"),
        send(1, 4, {"x": 0}, "reported"),
    ]
    assert s.jobs[2].counts == counts(leased=3)
    check(s)


# --- failures down a chain -----------------------------------------------------------------


def test_a_failure_fails_a_chain_one_reported_step_at_a_time_naming_each_task() -> None:
    s = grid(max_attempts=1)
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, sid="b")
    submit(s, {"x": fut(2)}, job_id=2, sid="c")
    submit(s, {"x": fut(3)}, job_id=2, sid="d")
    assert s.jobs[2].counts == counts(waiting=3)

    assert s.handle(error(1, 1)) == [failed(1, BOOM, "error", job=1)]
    assert s._settlements == {1: Settled(task_id=1, failure=f"failed: {BOOM}")}
    assert s.jobs[2].counts == counts(waiting=3)  # not before the failure is reported

    first = "task 1, which it depends on, failed: worker 1 reported: boom"
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        failed(2, first, "reported", job=2),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert s.jobs[2].counts == counts(failed=1, waiting=2)
    assert s._settlements == {2: Settled(task_id=2, failure=f"failed: {first}")}
    check(s)

    second = because(2, f"failed: {first}")
    assert s.handle(reported(2, sid="r2")) == [failed(3, second, "r2", job=2, index=1)]
    assert s.jobs[2].counts == counts(failed=2, waiting=1)
    check(s)

    third = (
        "task 3, which it depends on, failed: task 2, which it depends on, failed: "
        "task 1, which it depends on, failed: worker 1 reported: boom"
    )
    assert s.handle(reported(3, sid="r3")) == [failed(4, third, "r3", job=2, index=2)]
    job2 = s.jobs[2]
    assert job2.finished and job2.unreported == 1 and job2.counts == counts(failed=3)
    assert s.handle(reported(4)) == [JobsForgotten(jobs=(job2,), stimulus_id="reported")]
    assert s.jobs == {} and s._dependents == {} and s._settlements == {}


def test_the_first_dependency_to_fail_decides_and_the_other_outcome_is_ignored() -> None:
    s = grid(max_attempts=1)
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})
    submit(s, {"n": 2})
    assert submit(s, {"a": fut(1), "b": fut(2)}) == [accepted(3, 3)]
    s.handle(error(1, 2))
    job2 = s.jobs[2]
    assert s.handle(reported(2)) == [
        failed(3, because(2, f"failed: {BOOM}"), "reported", job=3),
        JobsForgotten(jobs=(job2,), stimulus_id="reported"),
    ]
    assert s.jobs[3].counts == counts(failed=1)
    assert s._dependents == {}  # it waits for 1 no more: 1 has no dependent left
    check(s)
    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
    assert s._settlements == {}  # so how 1 ended is not kept
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [JobsForgotten(jobs=(job1,), stimulus_id="reported")]
    assert s._dependents == {} and s._settlements == {}
    check(s)


# --- cancelling -----------------------------------------------------------------------------


def test_cancelling_a_dependency_fails_dependents_elsewhere_and_cancels_those_of_its_job() -> None:
    s = grid()
    worker(s, 1)
    assert submit(s, {"n": 1}, {"x": fut(1)}) == [  # its dependent in its own job
        accepted(1, 1, count=2),
        send(1, 1, {"n": 1}, "submit"),
    ]
    submit(s, {"x": fut(1)})  # job 2, task 3
    submit(s, {"x": fut(3)})  # job 3, task 4: a step further
    assert s.jobs[1].counts == counts(leased=1, waiting=1)

    assert s.handle(cancel(1)) == [
        cancel_task(1, 1, "job cancelled", "cancel"),
        JobCancelled(job_id=1, task_ids=(1, 2), stimulus_id="cancel"),
    ]
    assert s.jobs[1].counts == counts(cancelled=2)
    assert s._settlements == {1: Settled(task_id=1, failure="was cancelled")}  # 2: no dependent
    assert dependents(s) == {1: [3], 3: [4]}  # 2, cancelled, waits for 1 no more
    assert s.jobs[2].counts == counts(waiting=1)  # until the cancel is reported
    check(s)

    job1 = s.jobs[1]
    assert s.handle(reported(1, 2)) == [
        failed(3, "task 1, which it depends on, was cancelled", "reported", job=2),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert s.jobs[2].counts == counts(failed=1)
    job2 = s.jobs[2]
    assert s.handle(reported(3, sid="r3")) == [
        failed(
            4,
            "task 3, which it depends on, failed: task 1, which it depends on, was cancelled",
            "r3",
            job=3,
        ),
        JobsForgotten(jobs=(job2,), stimulus_id="r3"),
    ]
    assert s.handle(result(1, 1, 5)) == []  # taken back: its late result is dropped
    assert s._dependents == {} and s._settlements == {}
    check(s)


def test_cancelling_a_job_of_waiting_tasks_finishes_it() -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    assert submit(s, {"x": fut(1)}, {"y": [fut(1)]}, {"z": 3}, sid="b") == [
        accepted(2, 2, "b", count=3)
    ]
    job2 = s.jobs[2]
    assert job2.counts == counts(waiting=2, queued=1)  # the worker is busy
    check(s)

    assert s.handle(cancel(2)) == [JobCancelled(job_id=2, task_ids=(2, 3, 4), stimulus_id="cancel")]
    assert job2.counts == counts(cancelled=3)
    assert job2.finished and job2.unreported == 3 and job2.live == set()
    assert set(s.tasks) == {1} and 2 not in s._ringed
    assert s._dependents == {}  # nothing waits for 1 now
    check(s)
    assert s.handle(reported(2, 3, 4)) == [JobsForgotten(jobs=(job2,), stimulus_id="reported")]
    assert 2 not in s.jobs

    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
    assert s._settlements == {}  # no dependent: how it ended is not kept
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [JobsForgotten(jobs=(job1,), stimulus_id="reported")]
    assert s.jobs == {} and s.tasks == {} and s._dependents == {} and s._settlements == {}


# --- dependencies the scheduler does not hold ------------------------------------------------


def test_dependencies_that_ended_before_are_asked_of_the_shell() -> None:
    s = grid()
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})
    s.handle(result(1, 1, 5))
    s.handle(reported(1))
    assert not s.live(1) and s.jobs == {}

    assert submit(s, {"x": fut(1)}, {"x": fut(1), "y": fut(99)}, sid="late") == [
        accepted(2, 2, "late", count=2),
        wanted(1, 99, sid="late"),
    ]
    assert s.jobs[2].counts == counts(waiting=2)
    submit(s, {"n": 4})  # job 3, task 4: running
    assert submit(s, {"x": fut(4)}, sid="e") == [accepted(4, 5, "e")]  # live: not wanted
    check(s)

    # a live task settles when it is reported; a task nobody waits for settles nothing
    noise = (Settled(task_id=4, failure="is unknown"), Settled(task_id=500, result=0))
    assert settle(s, *noise, sid="noise") == []
    assert s.tasks[5].state is TaskState.WAITING and s.tasks[5].after == {4}

    assert settle(s, Settled(task_id=1, result=5), sid="s1") == [send(1, 2, {"x": 5}, "s1")]
    assert s.tasks[3].after == {99} and s.tasks[3].settled == {1: 5}
    assert s.jobs[2].counts == counts(leased=1, waiting=1)
    check(s)

    assert settle(s, Settled(task_id=99, failure="is unknown here"), sid="s2") == [
        failed(3, "task 99, which it depends on, is unknown here", "s2", job=2, index=1)
    ]
    assert s.jobs[2].counts == counts(leased=1, failed=1)
    assert settle(s, Settled(task_id=1, result=6), sid="again") == []  # nobody waits now
    assert settle(s, Settled(task_id=77, failure="failed: x")) == []
    assert dependents(s) == {4: [5]} and s._settlements == {}
    check(s)


def test_a_failure_from_the_store_fails_the_dependent() -> None:
    s = grid()
    assert submit(s, {"x": fut(3)}) == [accepted(1, 1), wanted(3, sid="submit")]
    assert settle(s, Settled(task_id=3, failure="failed: worker 9 disconnected")) == [
        failed(1, because(3, "failed: worker 9 disconnected"), "settled", job=1)
    ]
    assert s.jobs[1].counts == counts(failed=1)


def test_a_dependency_done_but_not_yet_reported_is_asked_of_the_shell_once_reported() -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
    assert s.live(1)  # final, its outcome not reported yet
    assert submit(s, {"x": fut(1)}, sid="b") == [accepted(2, 2, "b")]  # no DependenciesWanted
    assert s._settlements == {}  # it ended before anything depended on it

    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        wanted(1, sid="reported"),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert not s.live(1) and s.tasks[2].state is TaskState.WAITING
    check(s)
    assert settle(s, Settled(task_id=1, result=5)) == [send(1, 2, {"x": 5}, "settled")]
    check(s)


def test_a_future_may_name_a_welcome_task_which_the_store_does_not_know() -> None:
    s = Scheduler(welcome=WelcomeTask(), depends=task_futures, resolve=resolve_futures)
    s.handle(join(1))  # its welcome task: 1
    assert not s.live(1) and s.issued(1)  # not a job task
    assert submit(s, {"x": fut(1)}) == [accepted(1, 2), wanted(1, sid="submit")]
    welcome = s.handle(result(1, 1, 1.5))
    assert [(type(c), c.welcome) for c in welcome if isinstance(c, TaskDone)] == [(TaskDone, True)]
    assert s._settlements == {}  # a welcome task's result is no task's argument
    assert settle(s, Settled(task_id=1, failure="is unknown")) == [
        failed(2, because(1, "is unknown"), "settled", job=1)
    ]


# --- restored and taken tasks ------------------------------------------------------------------


def test_restored_and_taken_tasks_wait_too_and_a_dependency_may_be_restored_later() -> None:
    s = grid(next_job_id=8, next_task_id=10)
    worker(s, 1)
    restored_b = JobRestored(
        job_id=2,
        options=JobOptions(),
        total=3,
        done=1,
        failed=0,
        cancelled=0,
        tasks=[
            RestoredTask(task_id=5, index=1, op=OP, args={"x": fut(3)}, attempts=1),
            RestoredTask(task_id=6, index=2, op=OP, args={"x": fut(5)}),
        ],
        now=0.0,
        stimulus_id="restore-2",
    )
    assert s.handle(restored_b) == [wanted(3, sid="restore-2")]  # 5 is restored here
    assert s.jobs[2].counts == counts(done=1, waiting=2)
    check(s)

    restored_a = JobRestored(
        job_id=1,
        options=JobOptions(),
        total=1,
        done=0,
        failed=0,
        cancelled=0,
        tasks=[RestoredTask(task_id=3, index=0, op=OP, args={"n": 3})],
        now=0.0,
        stimulus_id="restore-1",
    )
    assert s.handle(restored_a) == [send(1, 3, {"n": 3}, "restore-1")]
    assert s.live(3)
    # the store has no outcome for 3 and it is live: the answer for it is ignored
    assert settle(s, Settled(task_id=3, failure="is unknown")) == []
    assert s.tasks[5].state is TaskState.WAITING
    check(s)

    assert s.handle(result(1, 3, 30)) == [done(1, 3, 30)]
    job1 = s.jobs[1]
    assert s.handle(reported(3)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 5, {"x": 30}, "reported"),
    ]
    assert s.handle(result(1, 5, 50)) == [done(1, 5, 50, job=2, index=1, attempts=2)]
    assert s.handle(reported(5)) == [send(1, 6, {"x": 50}, "reported")]
    assert s.jobs[2].counts == counts(done=2, leased=1)
    check(s)

    taken = TasksTaken(
        job_id=7,
        options=JobOptions(),
        tasks=[
            RestoredTask(task_id=8, index=0, op=OP, args={"x": fut(6)}),
            RestoredTask(task_id=9, index=1, op=OP, args={"x": [fut(4), fut(6)]}),
        ],
        now=0.0,
        stimulus_id="taken",
    )
    assert s.handle(taken) == [wanted(4, sid="taken")]  # 6 runs here
    assert s.jobs[7].counts == counts(waiting=2) and s.jobs[7].total == 2
    assert dependents(s) == {6: [8, 9], 4: [9]}
    check(s)


# --- how results are put in -----------------------------------------------------------------


def refuse(args: dict[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    raise ValueError(f"no room for the results of {sorted(results)}")


@pytest.mark.parametrize(
    ("kwargs", "value", "reason"),
    [
        ({"resolve": refuse}, 5, "it cannot run: no room for the results of [1]"),
        (
            {"resolve": None},  # the default: no way to put results in
            5,
            "it cannot run: this scheduler was given no way to put results into arguments",
        ),
        (
            {},  # result_size: one result too large for a task's arguments (2 bytes of quotes)
            "a" * MAX_RESOLVED_BYTES,
            too_large(MAX_RESOLVED_BYTES + 1),
        ),
    ],
)
def test_a_dependent_whose_results_cannot_be_put_in_fails(
    kwargs: dict[str, Any], value: Any, reason: str
) -> None:
    s = grid(**kwargs)
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, sid="b")
    s.handle(result(1, 1, value))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        failed(2, reason, "reported", job=2),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert s.jobs[2].counts == counts(failed=1)
    assert s.workers[1].in_flight == set()
    check(s)


# --- results passed on: what they may hold, and their size ----------------------------------


def nest(depth: int) -> Any:
    """A value nesting arrays ``depth`` deep: ``nest(2) == [[0]]``."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


MARKED = (
    f'it holds an object with a "{BLOB}" or "{FUTURE}" member, which another task\'s '
    "arguments would read as a ref or a future"
)
DIGEST = "a" * 64


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"x": {BLOB: DIGEST, "size": 3}}, MARKED),  # a ref, but not at the top
        ([1, {"y": fut(7)}], MARKED),  # a future, nested
        (fut(7), MARKED),  # a future, at the top
        ({BLOB: DIGEST, FUTURE: 7}, MARKED),  # a ref at the top that is a future too
        (nest(FUTURES_DEPTH + 1), f"it nests arrays and objects deeper than {FUTURES_DEPTH}"),
    ],
    ids=["nested-ref", "nested-future", "future", "ref-and-future", "too-deep"],
)
def test_a_result_that_cannot_be_passed_on_fails_every_dependent(value: Any, why: str) -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, {"y": [fut(1)]}, sid="b")
    assert s.handle(result(1, 1, value)) == [done(1, 1, value)]
    job1 = s.jobs[1]
    reason = because(1, f"returned a result that cannot be passed on: {why}")
    assert s.handle(reported(1)) == [
        failed(2, reason, "reported", job=2),
        failed(3, reason, "reported", job=2, index=1),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert s.jobs[2].counts == counts(failed=2)
    assert s._dependents == {} and s._settlements == {}
    check(s)


@pytest.mark.parametrize(
    "value",
    [
        {BLOB: DIGEST, "size": 3, "format": "bytes"},  # a large result its worker uploaded
        nest(FUTURES_DEPTH),
        {"note": "$blob", "xs": ["$future", "$blob"]},  # strings, not members
        {"$blobs": 1, "$futures": [2]},
    ],
    ids=["ref", "at-the-depth-limit", "strings", "other-members"],
)
def test_a_ref_at_the_top_and_results_at_the_depth_limit_are_passed_on(value: Any) -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, sid="b")
    s.handle(result(1, 1, value))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 2, {"x": value}, "reported"),
    ]
    check(s)


def test_each_result_is_measured_once_and_any_exception_fails_the_dependents() -> None:
    measured: list[Any] = []

    def measure(value: Any) -> int:
        measured.append(value)
        if value == "odd":
            raise RuntimeError("cannot tell its size")
        return 1

    s = grid(measure=measure, max_attempts=1)
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})  # job 1, task 1
    submit(s, {"n": 2})  # job 2, task 2
    submit(s, {"a": fut(1)}, {"a": fut(1), "b": fut(2)}, {"b": fut(2)}, sid="c")  # 3, 4, 5
    assert measured == []  # nothing is measured before it is reported

    s.handle(result(1, 1, 5))
    assert measured == []
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 3, {"a": 5}, "reported"),
    ]
    assert measured == [5]  # once, for its two dependents
    assert s.tasks[4].resolved_bytes == 1

    s.handle(error(1, 2))
    job2 = s.jobs[2]
    why = because(2, f"failed: {BOOM}")
    assert s.handle(reported(2)) == [
        failed(4, why, "reported", job=3, index=1),
        failed(5, why, "reported", job=3, index=2),
        JobsForgotten(jobs=(job2,), stimulus_id="reported"),
    ]
    assert measured == [5]  # a failure has no result to measure
    check(s)

    # a result from the store is measured too, whatever the exception
    assert submit(s, {"x": fut(1)}, {"y": fut(99)}, sid="late") == [
        accepted(4, 6, "late", count=2),
        wanted(1, 99, sid="late"),
    ]
    assert settle(s, Settled(task_id=99, result="odd"), sid="s99") == [
        failed(
            7,
            because(99, "returned a result that cannot be passed on: cannot tell its size"),
            "s99",
            job=4,
            index=1,
        )
    ]
    assert measured == [5, "odd"]
    assert dependents(s) == {1: [6]}
    check(s)


def test_a_dependent_fails_as_soon_as_its_results_are_too_large_while_others_run() -> None:
    s = grid(max_resolved_bytes=10)
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})  # job 1, task 1
    submit(s, {"n": 2})  # job 2, task 2
    assert submit(s, {"a": fut(1), "b": fut(2)}, {"c": fut(2)}, sid="c") == [
        accepted(3, 3, "c", count=2)
    ]
    big = "a" * 20  # 22 bytes as JSON

    assert s.handle(result(1, 1, big)) == [done(1, 1, big)]
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        failed(3, too_large(21, 10), "reported", job=3),  # 2 is still running
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
    ]
    assert s.tasks[2].state is TaskState.LEASED
    assert s.jobs[3].counts == counts(failed=1, waiting=1)
    assert dependents(s) == {2: [4]}  # 3 waits for 2 no more
    check(s)

    assert s.handle(result(1, 2, "b", sid="r2")) == [done(1, 2, "b", sid="r2", job=2)]
    job2 = s.jobs[2]
    assert s.handle(reported(2, sid="rep2")) == [  # nothing more for 3
        JobsForgotten(jobs=(job2,), stimulus_id="rep2"),
        send(1, 4, {"c": "b"}, "rep2"),
    ]
    assert s.jobs[3].counts == counts(failed=1, leased=1)
    assert s._dependents == {} and s._settlements == {}
    check(s)


@pytest.mark.parametrize(
    ("first", "second", "fits"),
    [("abc", "abc", True), ("abc", "abcd", False)],  # 5 + 5 bytes: at the limit; 5 + 6: over
)
def test_the_results_of_a_dependent_add_up_to_at_most_max_resolved_bytes(
    first: str, second: str, fits: bool
) -> None:
    s = grid(max_resolved_bytes=10)
    worker(s, 1, concurrency=2)
    submit(s, {"n": 1})
    submit(s, {"n": 2})
    submit(s, {"a": fut(1), "b": fut(2)})  # task 3
    s.handle(result(1, 1, first))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [JobsForgotten(jobs=(job1,), stimulus_id="reported")]
    assert s.tasks[3].resolved_bytes == 5 and s.tasks[3].state is TaskState.WAITING

    s.handle(result(1, 2, second))
    job2 = s.jobs[2]
    forgotten = JobsForgotten(jobs=(job2,), stimulus_id="reported")
    if fits:
        expected = [forgotten, send(1, 3, {"a": first, "b": second}, "reported")]
    else:
        expected = [failed(3, too_large(10, 10), "reported", job=3), forgotten]
    assert s.handle(reported(2)) == expected
    check(s)


def test_a_result_named_by_many_futures_counts_each_time_it_goes_in() -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"xs": [fut(1)] * 5}, sid="b")  # 5 futures of one task: a valid submit
    value = "a" * (MAX_RESOLVED_BYTES // 2)  # within the limit once, not 5 times
    s.handle(result(1, 1, value))
    commands = s.handle(reported(1))
    sent = [c for c in commands if isinstance(c, SendTask)]
    assert all(len(encode_task(c.task_id, c.op, c.args).encode()) <= MAX_FRAME_BYTES for c in sent)
    assert [c.task_id for c in commands if isinstance(c, TaskFailed)] == [2]


def test_without_measure_any_result_of_any_size_is_passed_on() -> None:
    s = Scheduler(welcome=None, depends=task_futures, resolve=resolve_futures)
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, sid="b")
    value = [fut(9), {BLOB: DIGEST}, "a" * MAX_RESOLVED_BYTES]
    s.handle(result(1, 1, value))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 2, {"x": value}, "reported"),
    ]


def resolve_or_raise(args: dict[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    if "bad" in args:
        raise RuntimeError("kaput")
    return resolve_futures(args, results)


def inputs_or_raise(args: Mapping[str, Any]) -> frozenset[str]:
    if args.get("bad") == 5:  # its arguments with the result in
        raise OSError("kaput")
    return frozenset()


@pytest.mark.parametrize(
    "kwargs",
    [{"resolve": resolve_or_raise}, {"inputs": inputs_or_raise}],
    ids=["resolve", "inputs"],
)
def test_a_dependent_whose_arguments_raise_fails_alone(kwargs: dict[str, Any]) -> None:
    s = grid(**kwargs)
    worker(s, 1)
    submit(s, {"n": 1})
    assert submit(s, {"bad": fut(1)}, {"good": fut(1)}, sid="b") == [accepted(2, 2, "b", count=2)]
    s.handle(result(1, 1, 5))
    job1 = s.jobs[1]
    assert s.handle(reported(1)) == [
        failed(2, "it cannot run: kaput", "reported", job=2),
        JobsForgotten(jobs=(job1,), stimulus_id="reported"),
        send(1, 3, {"good": 5}, "reported"),  # the other dependent goes on
    ]
    assert s.jobs[2].counts == counts(failed=1, leased=1)
    check(s)


# --- what is let go ---------------------------------------------------------------------------


def test_how_a_dependency_ended_is_let_go_once_reported_though_its_dependents_went_away() -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"x": fut(1)}, {"y": fut(1)}, sid="b")  # job 2: tasks 2 and 3
    s.handle(result(1, 1, 5))
    assert s._settlements == {1: Settled(task_id=1, result=5)}  # kept for 2 and 3
    assert s.handle(cancel(2)) == [JobCancelled(job_id=2, task_ids=(2, 3), stimulus_id="cancel")]
    assert s._dependents == {}  # they wait no more
    check(s)

    job1, job2 = s.jobs[1], s.jobs[2]
    assert s.handle(reported(1, 2, 3)) == [JobsForgotten(jobs=(job1, job2), stimulus_id="reported")]
    assert s._settlements == {} and s._dependents == {} and s.jobs == {}


def test_without_depends_futures_are_plain_arguments() -> None:
    s = Scheduler(welcome=None)
    assert submit(s, {"x": fut(1)}) == [accepted(1, 1)]
    assert s.jobs[1].counts == counts(queued=1)


def test_the_inputs_of_a_dependent_are_read_from_its_resolved_arguments() -> None:
    def inputs(args: Mapping[str, Any]) -> frozenset[str]:
        blobs = args.get("blobs")
        return frozenset(blobs) if isinstance(blobs, list) else frozenset()

    s = grid(inputs=inputs)
    worker(s, 1)
    submit(s, {"n": 1})
    submit(s, {"blobs": fut(1)}, sid="b")
    assert s.tasks[2].inputs == frozenset()
    s.handle(result(1, 1, ["b" * 64]))
    s.handle(reported(1))
    assert s.tasks[2].inputs == {"b" * 64}


# --- what the shell may ask -----------------------------------------------------------------


def test_issued_names_the_task_ids_handed_out_so_far() -> None:
    s = grid(next_task_id=5)
    assert [s.issued(t) for t in (-1, 0, 1, 4, 5)] == [False, False, True, True, False]
    submit(s, {"n": 1}, {"n": 2})  # tasks 5 and 6
    assert [s.issued(t) for t in (5, 6, 7)] == [True, True, False]
    s.handle(join(1))  # no welcome task here: no id
    assert not s.issued(7)
    with_welcome = Scheduler()
    assert not with_welcome.issued(1)
    with_welcome.handle(join(1))
    assert with_welcome.issued(1) and not with_welcome.issued(2)


def test_live_is_true_for_job_tasks_held_here_until_their_outcome_is_reported() -> None:
    s = grid()
    worker(s, 1)
    submit(s, {"n": 1}, {"x": fut(1)})
    assert [s.live(t) for t in (0, 1, 2, 3)] == [False, True, True, False]  # leased, waiting
    s.handle(result(1, 1, 5))
    assert s.live(1)  # done, not reported
    s.handle(reported(1))
    assert not s.live(1) and s.live(2)


def test_restoring_a_waiting_task_again_is_refused() -> None:
    s = grid()
    submit(s, {"x": fut(7)})
    taken = TasksTaken(
        job_id=1,
        options=JobOptions(),
        tasks=[RestoredTask(task_id=1, index=1, op=OP, args={"x": fut(7)})],
        now=0.0,
    )
    with pytest.raises(ValueError, match="restored twice"):
        s.handle(taken)
    assert dependents(s) == {7: [1]}
