"""Task, Job and Worker: every arrow of the diagrams works, every other move raises; a job's
counts, a worker's credit."""

from __future__ import annotations

import itertools

import pytest

from browsergrid.core import (
    FINAL_STATES,
    Job,
    JobOptions,
    Lease,
    Task,
    TaskState,
    Worker,
    WorkerState,
)
from browsergrid.errors import BrowsergridError, IllegalTransition

TASK_ARROWS = {
    (TaskState.WAITING, TaskState.QUEUED),
    (TaskState.WAITING, TaskState.FAILED),
    (TaskState.WAITING, TaskState.CANCELLED),
    (TaskState.QUEUED, TaskState.LEASED),
    (TaskState.QUEUED, TaskState.CANCELLED),
    (TaskState.LEASED, TaskState.QUEUED),
    (TaskState.LEASED, TaskState.DONE),
    (TaskState.LEASED, TaskState.FAILED),
    (TaskState.LEASED, TaskState.CANCELLED),
}
WORKER_ARROWS = {
    (WorkerState.ANONYMOUS, WorkerState.INTRODUCED),
    (WorkerState.ANONYMOUS, WorkerState.GONE),
    (WorkerState.INTRODUCED, WorkerState.GONE),
}


def make_task(
    state: TaskState = TaskState.QUEUED, task_id: int = 7, op: str = "repeat_multiply"
) -> Task:
    return Task(
        task_id=task_id,
        job_id=2,
        index=0,
        op=op,
        args={},
        lease_timeout_s=60.0,
        max_attempts=3,
        state=state,
    )


def make_worker(
    state: WorkerState = WorkerState.ANONYMOUS, concurrency: int = 2, prefetch: int = 0
) -> Worker:
    return Worker(
        worker_id=4,
        ops=frozenset({"repeat_multiply"}),
        concurrency=concurrency,
        prefetch=prefetch,
        joined_at=0.0,
        state=state,
    )


def make_job() -> Job:
    return Job(job_id=2, options=JobOptions(name="j", priority=1), created_at=5.0)


def test_illegal_transition_is_a_browsergrid_error() -> None:
    assert issubclass(IllegalTransition, BrowsergridError)


# --- tasks -------------------------------------------------------------------------------


def test_task_defaults() -> None:
    task = make_task()
    assert (task.state, task.leases, task.attempts) == (TaskState.QUEUED, {}, 0)
    assert (task.pinned_to, task.reasons, task.failed_on) == (None, [], set())
    other = make_task()
    assert other.reasons is not task.reasons
    assert other.leases is not task.leases
    assert other.failed_on is not task.failed_on


def test_task_state_values() -> None:
    assert [s.value for s in TaskState] == [
        "waiting",
        "queued",
        "leased",
        "done",
        "failed",
        "cancelled",
    ]


def test_final_states_are_those_without_a_way_out() -> None:
    assert {TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED} == FINAL_STATES
    assert {s for s in TaskState if not any(a == s for a, _ in TASK_ARROWS)} == FINAL_STATES


@pytest.mark.parametrize(
    ("old", "new"),
    sorted(TASK_ARROWS),
    ids=[f"{a}->{b}" for a, b in sorted(TASK_ARROWS)],
)
def test_task_moves_along_an_arrow(old: TaskState, new: TaskState) -> None:
    task = make_task(old)
    task.move_to(new)
    assert task.state is new


NOT_TASK_ARROWS = sorted(set(itertools.product(TaskState, TaskState)) - TASK_ARROWS)


@pytest.mark.parametrize(
    ("old", "new"), NOT_TASK_ARROWS, ids=[f"{a}->{b}" for a, b in NOT_TASK_ARROWS]
)
def test_task_refuses_any_other_move(old: TaskState, new: TaskState) -> None:
    task = make_task(old)
    with pytest.raises(IllegalTransition, match=f"^task 7: {old.value} -> {new.value}$"):
        task.move_to(new)
    assert task.state is old


def test_lease_defaults_to_not_speculative() -> None:
    assert Lease(start=1.0, deadline=61.0) == Lease(1.0, 61.0, speculative=False)


# --- jobs --------------------------------------------------------------------------------


def test_job_defaults() -> None:
    job = make_job()
    assert (job.total, job.cancelled, job.live, job.queues) == (0, False, set(), {})
    assert job.counts == dict.fromkeys(TaskState, 0)
    assert (job.options, job.created_at) == (JobOptions(name="j", priority=1), 5.0)
    other = make_job()
    assert other.counts is not job.counts
    assert other.live is not job.live


def test_job_options_defaults() -> None:
    options = JobOptions()
    assert (options.name, options.priority) == ("", 0)
    assert (options.lease_timeout_s, options.max_attempts) == (None, None)


def test_an_empty_job_is_finished_and_has_nothing_queued() -> None:
    job = make_job()
    assert job.finished
    assert not job.queued()


@pytest.mark.parametrize(
    ("counts", "finished"),
    [
        ({TaskState.QUEUED: 1, TaskState.DONE: 2}, False),
        ({TaskState.LEASED: 1, TaskState.FAILED: 2}, False),
        ({TaskState.DONE: 1, TaskState.FAILED: 1, TaskState.CANCELLED: 1}, True),
        ({TaskState.CANCELLED: 3}, True),
    ],
)
def test_job_is_finished_when_every_task_is_final(
    counts: dict[TaskState, int], finished: bool
) -> None:
    job = make_job()
    job.total = 3
    job.counts.update(counts)
    assert job.finished is finished


def test_job_push_keeps_one_heap_per_op_oldest_first() -> None:
    job = make_job()
    for task_id, op in [(5, "a"), (3, "a"), (4, "b"), (1, "a")]:
        job.push(make_task(task_id=task_id, op=op))
    assert job.queued()
    assert sorted(job.queues) == ["a", "b"]
    assert job.queues["a"][0] == 1
    assert sorted(job.queues["a"]) == [1, 3, 5]
    assert job.queues["b"] == [4]


def test_job_with_only_empty_heaps_has_nothing_queued() -> None:
    job = make_job()
    job.queues = {"a": [], "b": []}
    assert not job.queued()


# --- workers -----------------------------------------------------------------------------


def test_worker_defaults() -> None:
    worker = make_worker()
    assert (worker.state, worker.in_flight, worker.ignored) == (WorkerState.ANONYMOUS, set(), set())
    assert (worker.tasks_done, worker.failures, worker.speed_ms) == (0, 0, None)
    assert (worker.prefetch_cap, worker.mean_ms) == (0, None)
    other = make_worker()
    assert other.in_flight is not worker.in_flight
    assert other.ignored is not worker.ignored


def test_worker_state_values() -> None:
    assert [s.value for s in WorkerState] == ["anonymous", "introduced", "gone"]


@pytest.mark.parametrize(
    ("old", "new"),
    sorted(WORKER_ARROWS),
    ids=[f"{a}->{b}" for a, b in sorted(WORKER_ARROWS)],
)
def test_worker_moves_along_an_arrow(old: WorkerState, new: WorkerState) -> None:
    worker = make_worker(old)
    worker.move_to(new)
    assert worker.state is new


NOT_WORKER_ARROWS = sorted(set(itertools.product(WorkerState, WorkerState)) - WORKER_ARROWS)


@pytest.mark.parametrize(
    ("old", "new"), NOT_WORKER_ARROWS, ids=[f"{a}->{b}" for a, b in NOT_WORKER_ARROWS]
)
def test_worker_refuses_any_other_move(old: WorkerState, new: WorkerState) -> None:
    worker = make_worker(old)
    with pytest.raises(IllegalTransition, match=f"^worker 4: {old.value} -> {new.value}$"):
        worker.move_to(new)
    assert worker.state is old


@pytest.mark.parametrize(
    ("concurrency", "prefetch", "in_flight", "credit", "idle"),
    [
        (2, 0, set(), 2, True),
        (2, 0, {1}, 1, False),
        (2, 0, {1, 2}, 0, False),
        (2, 1, {1, 2}, 1, False),
        (2, 1, set(), 3, True),
        (1, 0, {1, 2, 3}, 0, False),  # never negative, even after concurrency went down
    ],
)
def test_worker_credit_counts_concurrency_plus_prefetch(
    concurrency: int, prefetch: int, in_flight: set[int], credit: int, idle: bool
) -> None:
    worker = make_worker(concurrency=concurrency, prefetch=prefetch)
    worker.in_flight = in_flight
    assert (worker.credit, worker.idle) == (credit, idle)
