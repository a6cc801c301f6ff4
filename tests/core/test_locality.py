"""Locality: a task whose large inputs a worker holds goes to that worker before one that
would fetch them, while the holder can take it; once the holders are busy, others do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from browsergrid.core import (
    JobOptions,
    JobRestored,
    RestoredTask,
    ResultReported,
    Scheduler,
    SendTask,
    TaskErrorReported,
    TaskSpec,
    TasksSubmitted,
    WorkerCapacityChanged,
    WorkerHoldsChanged,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)

OP = "digest"
BIG, OTHER = "b" * 64, "c" * 64


def inputs(args: Mapping[str, Any]) -> frozenset[str]:
    """The test's stand-in for the shell's reading of refs: ``args["blobs"]``."""
    return frozenset(args.get("blobs", ()))


def scheduler(**kwargs: Any) -> Scheduler:
    return Scheduler(welcome=None, inputs=inputs, **kwargs)


def introduce(
    s: Scheduler,
    worker_id: int,
    holds: frozenset[str] = frozenset(),
    concurrency: int = 1,
    cold: frozenset[str] = frozenset(),
) -> list[Any]:
    s.handle(WorkerJoined(worker_id=worker_id, now=0.0))
    return s.handle(
        WorkerIntroduced(
            worker_id=worker_id,
            ops=frozenset({OP}),
            concurrency=concurrency,
            prefetch=0,
            cold=cold,
            holds=holds,
            now=0.0,
        )
    )


def submit(s: Scheduler, *blob_sets: tuple[str, ...]) -> list[Any]:
    tasks = [TaskSpec(op=OP, args={"blobs": list(blobs)}) for blobs in blob_sets]
    return s.handle(TasksSubmitted(tasks=tasks, now=0.0))


def sent(commands: list[Any]) -> list[tuple[int, int]]:
    return [(c.worker_id, c.task_id) for c in commands if isinstance(c, SendTask)]


def test_a_task_goes_to_the_worker_that_holds_its_input() -> None:
    s = scheduler()
    introduce(s, 1)  # first in line, holds nothing
    introduce(s, 2, holds=frozenset({BIG}))
    assert sent(submit(s, (BIG,))) == [(2, 1)]
    assert s.tasks[1].inputs == {BIG}


def test_a_busy_holder_leaves_the_task_to_others() -> None:
    s = scheduler()
    introduce(s, 1)
    introduce(s, 2, holds=frozenset({BIG}))
    assert sent(submit(s, (BIG,), (BIG,), (BIG,))) == [(2, 1), (1, 2)]
    # the holder finishes: the third goes to it, not to the worker still busy
    done = s.handle(ResultReported(worker_id=2, task_id=1, result=0, duration_ms=1, now=1.0))
    assert sent(done) == [(2, 3)]


def test_a_holder_must_hold_every_input() -> None:
    s = scheduler()
    introduce(s, 1)
    introduce(s, 2, holds=frozenset({BIG}))
    introduce(s, 3, holds=frozenset({BIG, OTHER}))
    assert sent(submit(s, (BIG, OTHER))) == [(3, 1)]


def test_what_a_worker_holds_changes_and_goes_with_it() -> None:
    s = scheduler(max_holds=2)
    introduce(s, 1)
    introduce(s, 2)
    s.handle(WorkerHoldsChanged(worker_id=2, added=frozenset({BIG}), dropped=frozenset(), now=0))
    assert s.workers[2].holds == {BIG}
    assert sent(submit(s, (BIG,))) == [(2, 1)]
    s.handle(WorkerHoldsChanged(worker_id=2, added=frozenset(), dropped=frozenset({BIG}), now=0))
    s.handle(
        WorkerHoldsChanged(
            worker_id=1, added=frozenset({"x", "y", "z"}), dropped=frozenset(), now=0
        )
    )
    assert len(s.workers[1].holds) == 2  # max_holds: no more are counted
    s.handle(WorkerHoldsChanged(worker_id=1, added=frozenset(), dropped=frozenset({"w"}), now=0))
    held = set(s.workers[1].holds)
    s.handle(WorkerLeft(worker_id=1, now=1.0))
    assert not any(digest in s._holders for digest in held)
    assert BIG not in s._holders


def test_holds_before_hello_are_refused() -> None:
    s = scheduler()
    s.handle(WorkerJoined(worker_id=1, now=0.0))
    with pytest.raises(ValueError, match="before hello"):
        s.handle(
            WorkerHoldsChanged(worker_id=1, added=frozenset({BIG}), dropped=frozenset(), now=0)
        )


def test_a_holder_that_cannot_take_it_does_not_hold_it_back() -> None:
    s = scheduler()
    introduce(s, 1)
    introduce(s, 2, holds=frozenset({BIG}))
    s.handle(WorkerCapacityChanged(worker_id=2, concurrency=0, now=0.0))  # paused
    assert sent(submit(s, (BIG,))) == [(1, 1)]


def test_a_holder_that_failed_the_task_does_not_hold_it_back() -> None:
    s = scheduler()
    introduce(s, 2, holds=frozenset({BIG}))
    assert sent(submit(s, (BIG,))) == [(2, 1)]
    introduce(s, 1)
    failed = s.handle(TaskErrorReported(worker_id=2, task_id=1, message="no", now=1.0))
    assert sent(failed) == [(1, 1)]


def test_a_cold_holder_is_not_waited_for_while_others_are_warm() -> None:
    s = scheduler()
    introduce(s, 1)
    introduce(s, 2, holds=frozenset({BIG}), cold=frozenset({OP}))
    assert sent(submit(s, (BIG,))) == [(1, 1)]


def test_restored_tasks_know_their_inputs() -> None:
    s = scheduler()
    s.handle(
        JobRestored(
            job_id=1,
            options=JobOptions(),
            total=1,
            done=0,
            failed=0,
            cancelled=0,
            tasks=[RestoredTask(task_id=5, index=0, op=OP, args={"blobs": [BIG]})],
            now=0.0,
        )
    )
    assert s.tasks[5].inputs == {BIG}


def test_a_blob_stays_indexed_while_another_worker_holds_it() -> None:
    s = scheduler()
    introduce(s, 1, holds=frozenset({BIG}))
    introduce(s, 2, holds=frozenset({BIG}))
    s.handle(WorkerLeft(worker_id=1, now=1.0))
    assert s._holders == {BIG: {2}}


def test_a_holder_that_would_be_refused_the_task_does_not_hold_it_back() -> None:
    s = scheduler()
    introduce(s, 1)
    s.handle(TasksSubmitted(tasks=[TaskSpec(op=OP, args={})], now=0.0))
    s.handle(ResultReported(worker_id=1, task_id=1, result=0, duration_ms=1, now=1.0))
    assert s.workers[1].standing.reliable
    s.handle(WorkerCapacityChanged(worker_id=1, concurrency=0, now=1.0))  # paused
    introduce(s, 3)
    assert sent(submit(s, (BIG,))) == [(3, 2)]
    # a newcomer claims the input: it is not reliable, and a lost task waits for a reliable
    # worker that could take it; that worker must not wait for the newcomer in turn
    introduce(s, 9, holds=frozenset({BIG}))
    s.handle(WorkerCapacityChanged(worker_id=1, concurrency=1, now=2.0))
    lost = s.handle(TaskErrorReported(worker_id=3, task_id=2, message="x", now=3.0))
    assert sent(lost) == [(1, 2)]


def test_a_busy_worker_with_a_free_slot_runs_what_a_busy_holder_holds() -> None:
    s = scheduler()
    introduce(s, 1, concurrency=4)
    introduce(s, 2, holds=frozenset({BIG}))
    s.handle(WorkerCapacityChanged(worker_id=2, concurrency=1, prefetch=0, now=0.0))
    leased = sent(submit(s, *[(BIG,)] * 6))
    assert leased.count((2, 1)) == 1 and sum(1 for w, _ in leased if w == 1) == 4
    # worker 1 runs 4 at once (its slots), but queues none up behind them for the holder


def test_holds_keep_the_first_in_order_and_a_drop_comes_before_an_add() -> None:
    s = scheduler(max_holds=2)
    introduce(s, 1)
    s.handle(WorkerHoldsChanged(worker_id=1, added=frozenset("zyx"), dropped=frozenset(), now=0))
    assert s.workers[1].holds == {"x", "y"}
    s.handle(WorkerHoldsChanged(worker_id=1, added=frozenset("x"), dropped=frozenset("x"), now=0))
    assert s.workers[1].holds == {"x", "y"}  # dropped, then kept again
    assert s._holders["x"] == {1}
