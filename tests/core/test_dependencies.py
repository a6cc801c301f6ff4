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
from browsergrid.protocol import FUTURE, MAX_RESOLVED_BYTES, resolve_futures, task_futures
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
    """A scheduler wired as the coordinator wires it (``task_futures``, ``resolve_futures``),
    without welcome tasks (task ids start at 1 with submissions) or speculation."""
    kwargs.setdefault("resolve", resolve_futures)
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


def check(s: Scheduler) -> None:
    """Every job's counts agree with the states of its tasks held here, waiting ones too;
    waiting tasks wait for something, and none of them is queued or leased."""
    held: dict[int, Counter[TaskState]] = {}
    for task in s.tasks.values():
        if task.job_id is not None:
            held.setdefault(task.job_id, Counter())[task.state] += 1
        if task.state is TaskState.WAITING:
            assert task.after and not task.queued and not task.leases
            assert all(task.task_id in s._dependents[dep] for dep in task.after)
        else:
            assert not task.after and not task.settled
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
    assert s._dependents == {1: [2], 2: [3]}
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
    assert s.tasks[2].args == {"x": 5, "y": 2} and s.tasks[2].settled == {}
    assert b_args == {"x": fut(1), "y": 2}  # the submitted arguments are not changed
    assert s.jobs[2].counts == counts(leased=1, waiting=1)
    assert s._settlements == {} and s._dependents == {2: [3]}
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
    assert s._dependents == {1: [3], 2: [3]}

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
    assert s._dependents == {1: [2, 3, 4]} and s.jobs[2].counts == counts(waiting=3)
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
    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
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
    check(s)
    assert s.handle(reported(2, 3, 4)) == [JobsForgotten(jobs=(job2,), stimulus_id="reported")]
    assert 2 not in s.jobs

    assert s.handle(result(1, 1, 5)) == [done(1, 1, 5)]
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
    assert s._dependents == {4: [5]} and s._settlements == {}
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
    assert s._dependents == {6: [8, 9], 4: [9]}
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
            {},  # resolve_futures: one result too large for a task frame
            "a" * MAX_RESOLVED_BYTES,
            f"it cannot run: its arguments with the results of the tasks it depends on are "
            f"{MAX_RESOLVED_BYTES + 8} bytes as JSON, over the {MAX_RESOLVED_BYTES} a task "
            "frame allows: have those tasks return smaller results (a large result is kept "
            "as a blob by a worker that can), or make each task depend on fewer of them "
            "(reduce in a tree)",
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
    assert s._dependents == {7: [1]}
