"""Task and Worker state machines: every arrow of the diagram works, every other move raises."""

from __future__ import annotations

import itertools

import pytest

from browsergrid.core import Task, TaskState, Worker, WorkerState
from browsergrid.errors import BrowsergridError, IllegalTransition

TASK_ARROWS = {
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


def make_task(state: TaskState = TaskState.QUEUED) -> Task:
    return Task(
        task_id=7, op="repeat_multiply", args={}, lease_timeout_s=60.0, max_attempts=3, state=state
    )


def make_worker(state: WorkerState = WorkerState.ANONYMOUS, concurrency: int = 2) -> Worker:
    return Worker(
        worker_id=4,
        ops=frozenset({"repeat_multiply"}),
        concurrency=concurrency,
        joined_at=0.0,
        state=state,
    )


def test_illegal_transition_is_a_browsergrid_error() -> None:
    assert issubclass(IllegalTransition, BrowsergridError)


def test_task_defaults() -> None:
    task = make_task()
    assert (task.state, task.worker_id, task.attempts, task.deadline) == (
        TaskState.QUEUED,
        None,
        0,
        0.0,
    )
    assert (task.pinned_to, task.reasons) == (None, [])
    assert make_task().reasons is not task.reasons


def test_task_state_values() -> None:
    assert [s.value for s in TaskState] == ["queued", "leased", "done", "failed", "cancelled"]


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


def test_worker_defaults() -> None:
    worker = make_worker()
    assert (worker.state, worker.in_flight, worker.tasks_done) == (WorkerState.ANONYMOUS, set(), 0)
    assert (worker.failures, worker.speed_ms) == (0, None)
    assert make_worker().in_flight is not worker.in_flight


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
    ("concurrency", "in_flight", "credit"),
    [(2, set(), 2), (2, {1}, 1), (2, {1, "a"}, 0), (1, {1, 2, 3}, 0)],
)
def test_worker_credit(concurrency: int, in_flight: set[int | str], credit: int) -> None:
    worker = make_worker(concurrency=concurrency)
    worker.in_flight = in_flight
    assert worker.credit == credit
