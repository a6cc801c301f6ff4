"""Environments: a task whose environment holds compiled code ("native") goes only to a
worker that runs native environments (a Python worker, never a tab's Pyodide); one of an
environment a worker does not have never goes to a worker that builds no new ones
(``--no-new-environments``). A task no connected worker may take stays queued: it never
fails for want of one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from browsergrid.core import (
    ClockTicked,
    Environment,
    JobOptions,
    JobRestored,
    RestoredTask,
    ResultReported,
    Scheduler,
    SendTask,
    Standing,
    StrandedReleased,
    TaskErrorReported,
    TaskFailed,
    TasksHandedBack,
    TaskSpec,
    TasksReleased,
    TasksSubmitted,
    TasksTaken,
    TaskState,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.core._scheduler import _MAX_OTHERS_LOOKED

OP = "python"
X, Y = "a" * 64, "b" * 64  # env ids
BIG = "c" * 64  # a blob


def environment(args: Mapping[str, Any]) -> Environment | None:
    """The test's stand-in for the shell's reading of a task's environment: ``args["env"]``."""
    env = args.get("env")
    return None if env is None else Environment(env["id"], env["native"])


def inputs(args: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(args.get("blobs", ()))


def scheduler(**kwargs: Any) -> Scheduler:
    return Scheduler(welcome=None, environment=environment, inputs=inputs, **kwargs)


def introduce(
    s: Scheduler,
    worker_id: int,
    *,
    native: bool,
    environments: frozenset[str] | None = None,
    concurrency: int = 1,
    cold: frozenset[str] = frozenset(),
    holds: frozenset[str] = frozenset(),
    key: str | None = None,
    standing: Standing | None = None,
    now: float = 0.0,
) -> list[Any]:
    s.handle(WorkerJoined(worker_id=worker_id, now=now))
    return s.handle(
        WorkerIntroduced(
            worker_id=worker_id,
            ops=frozenset({OP}),
            concurrency=concurrency,
            prefetch=0,
            cold=cold,
            holds=holds,
            key=key,
            standing=standing,
            native=native,
            environments=environments,
            now=now,
        )
    )


def tab(s: Scheduler, worker_id: int, **kwargs: Any) -> list[Any]:
    """A browser tab: its Pyodide builds any pure-Python environment, no native one."""
    return introduce(s, worker_id, native=False, **kwargs)


def python_worker(s: Scheduler, worker_id: int, **kwargs: Any) -> list[Any]:
    """A Python worker: it runs native environments too."""
    return introduce(s, worker_id, native=True, **kwargs)


def args(env_id: str | None = X, *, native: bool = False, **more: Any) -> dict[str, Any]:
    env = None if env_id is None else {"id": env_id, "native": native}
    return {"env": env, **more}


def spec(env_id: str | None = X, *, native: bool = False, **more: Any) -> TaskSpec:
    return TaskSpec(op=OP, args=args(env_id, native=native, **more))


def submit(s: Scheduler, *specs: TaskSpec, options: JobOptions | None = None) -> list[Any]:
    return s.handle(TasksSubmitted(tasks=specs, options=options or JobOptions(), now=0.0))


def sent(commands: list[Any]) -> list[tuple[int, int]]:
    return [(c.worker_id, c.task_id) for c in commands if isinstance(c, SendTask)]


def error(worker_id: int, task_id: int, now: float) -> TaskErrorReported:
    return TaskErrorReported(worker_id=worker_id, task_id=task_id, message="no", now=now)


# --- which worker may take which task ----------------------------------------------------


def test_a_task_knows_its_environment() -> None:
    s = scheduler()
    submit(s, spec(X, native=True), spec(Y), spec(None))
    assert [s.tasks[t].environment for t in (1, 2, 3)] == [
        Environment(X, native=True),
        Environment(Y),
        None,
    ]
    assert Environment(X).native is False


def test_a_worker_keeps_what_it_said_of_environments() -> None:
    s = scheduler()
    python_worker(s, 1, environments=frozenset({X}))
    tab(s, 2)
    assert (s.workers[1].native, s.workers[1].environments) == (True, frozenset({X}))
    assert (s.workers[2].native, s.workers[2].environments) == (False, None)


def test_a_native_task_waits_for_a_native_worker() -> None:
    s = scheduler()
    tab(s, 1)
    tab(s, 2)
    assert sent(submit(s, spec(X, native=True))) == []
    for now in range(1, 50):  # time passes: it is neither sent nor failed
        assert s.handle(ClockTicked(now=float(now))) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert sent(python_worker(s, 3, now=50.0)) == [(3, 1)]


def test_a_tab_takes_what_it_can_and_leaves_the_native_task() -> None:
    s = scheduler()
    tab(s, 1, concurrency=2)
    assert sent(submit(s, spec(X, native=True), spec(X), spec(None))) == [(1, 2), (1, 3)]
    assert s.tasks[1].state is TaskState.QUEUED
    assert sent(python_worker(s, 2)) == [(2, 1)]


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize(
    ("ready", "takes"),
    [
        (frozenset({Y}), False),
        (frozenset(), False),
        (frozenset({X}), True),
        (frozenset({X, Y}), True),
        (None, True),
    ],
)
def test_a_worker_that_builds_no_new_environment_runs_only_those_it_has(
    native: bool, ready: frozenset[str] | None, takes: bool
) -> None:
    s = scheduler()
    python_worker(s, 1, environments=ready)
    assert sent(submit(s, spec(X, native=native))) == ([(1, 1)] if takes else [])


def test_each_environment_goes_to_a_worker_that_has_it() -> None:
    s = scheduler()
    python_worker(s, 1, environments=frozenset({Y}))  # first in line, has Y only
    python_worker(s, 2)
    assert sent(submit(s, spec(X, native=True), spec(Y, native=True))) == [(1, 2), (2, 1)]


def test_a_task_without_an_environment_goes_to_any_worker() -> None:
    s = scheduler()
    python_worker(s, 1, environments=frozenset())  # has no environment at all
    tab(s, 2)
    assert sent(submit(s, spec(None), spec(None))) == [(1, 1), (2, 2)]


def test_welcome_tasks_have_no_environment() -> None:
    s = Scheduler(environment=lambda args: Environment(X, native=True))
    (welcome,) = s.handle(WorkerJoined(worker_id=1, now=0.0))
    assert isinstance(welcome, SendTask) and welcome.welcome  # a tab runs it all the same
    assert s.tasks[welcome.task_id].environment is None


def test_a_cold_tab_starts_when_the_warm_worker_lacks_the_environment() -> None:
    """A warm worker with room holds back a cold tab (it would take the task at once),
    unless it runs only some environments: it may take none of those queued."""
    s = scheduler()
    tab(s, 1, cold=frozenset({OP}))
    python_worker(s, 2, environments=frozenset({Y}), concurrency=4)
    assert sent(submit(s, spec(X))) == [(1, 1)]


def test_a_warm_worker_that_builds_environments_still_holds_back_a_cold_tab() -> None:
    s = scheduler()
    tab(s, 1, cold=frozenset({OP}))
    python_worker(s, 2)
    assert sent(submit(s, spec(X))) == [(2, 1)]


# --- the rules everywhere a task is handed out ---------------------------------------------


def test_a_straggler_is_copied_only_to_a_worker_that_runs_its_environment() -> None:
    s = scheduler()
    python_worker(s, 1)
    tab(s, 2)  # idle all along: nothing queued suits it
    assert sent(submit(s, spec(X, native=True), spec(X, native=True))) == [(1, 1)]
    done = s.handle(ResultReported(worker_id=1, task_id=1, result=0, duration_ms=1, now=1.0))
    assert sent(done) == [(1, 2)]  # its op's mean is 1 s now
    assert s.handle(ClockTicked(now=10.0)) == []  # a straggler, but no copy for the tab
    assert sent(python_worker(s, 3, now=10.0)) == []
    copies = s.handle(ClockTicked(now=11.0))
    assert [(c.worker_id, c.task_id, c.speculative) for c in copies] == [(3, 2, True)]


def test_a_replicated_task_waits_for_a_second_native_identity() -> None:
    s = scheduler()
    python_worker(s, 1, key="py-1")
    tab(s, 2, key="tab-2")
    assert sent(submit(s, spec(X, native=True), options=JobOptions(redundancy=2))) == [(1, 1)]
    assert s.jobs[1].wanting == {1: None}  # wants another worker: not the tab
    assert sent(python_worker(s, 3, key="py-3")) == [(3, 1)]


def test_a_holder_of_the_inputs_that_cannot_take_the_task_is_not_waited_for() -> None:
    s = scheduler()
    tab(s, 1, holds=frozenset({BIG}))
    python_worker(s, 2)
    assert sent(submit(s, spec(X, native=True, blobs=[BIG]))) == [(2, 1)]


def test_a_reliable_worker_that_cannot_take_a_lost_task_does_not_hold_it_back() -> None:
    s = scheduler()
    tab(s, 1, key="tab-1", standing=Standing(done=5))  # reliable
    python_worker(s, 2)
    python_worker(s, 3)
    assert sent(submit(s, spec(X, native=True))) == [(2, 1)]
    assert s.workers[1].standing.reliable and not s.workers[3].standing.reliable
    assert sent(s.handle(error(2, 1, now=1.0))) == [(3, 1)]


# --- losses: avoiding the worker a task failed on, and failing ---------------------------


def test_a_task_failed_on_the_only_suitable_worker_goes_back_to_it_then_fails() -> None:
    s = scheduler(max_attempts=2)
    tab(s, 1)
    python_worker(s, 2)
    tab(s, 3)
    assert sent(submit(s, spec(X, native=True))) == [(2, 1)]
    retry = s.handle(error(2, 1, now=1.0))
    assert sent(retry) == [(2, 1)]  # the tabs may not take it: no other worker could
    (failure,) = [c for c in s.handle(error(2, 1, now=2.0)) if isinstance(c, TaskFailed)]
    assert failure.reasons == ("worker 2 reported: no", "worker 2 reported: no")


def test_in_a_large_grid_of_tabs_the_only_native_worker_takes_its_task_back() -> None:
    s = scheduler()
    for worker_id in range(1, _MAX_OTHERS_LOOKED + 2):  # more tabs than are looked at
        tab(s, worker_id)
    native = _MAX_OTHERS_LOOKED + 2
    python_worker(s, native)
    assert sent(submit(s, spec(X, native=True))) == [(native, 1)]
    assert sent(s.handle(error(native, 1, now=1.0))) == [(native, 1)]


def test_a_task_avoids_the_native_worker_it_failed_on_while_another_may_take_it() -> None:
    s = scheduler()
    python_worker(s, 1)
    python_worker(s, 2)
    tab(s, 3)
    assert sent(submit(s, spec(X, native=True))) == [(1, 1)]
    assert sent(s.handle(error(1, 1, now=1.0))) == [(2, 1)]
    # its other native worker leaves: the one it failed on is the only one left
    assert sent(s.handle(WorkerLeft(worker_id=2, now=2.0))) == [(1, 1)]
    assert s._native_workers == {OP: 1}
    s.handle(WorkerLeft(worker_id=1, now=3.0))
    assert OP not in s._native_workers
    for now in range(4, 50):  # no worker may take it: it waits, never fails
        assert s.handle(ClockTicked(now=float(now))) == []
    assert s.tasks[1].state is TaskState.QUEUED
    assert sent(python_worker(s, 4, now=50.0)) == [(4, 1)]


# --- restarts and shared queues ------------------------------------------------------------


def test_a_restored_task_takes_its_environment_from_its_arguments() -> None:
    s = scheduler()
    tab(s, 1)
    restored = JobRestored(
        job_id=7,
        options=JobOptions(),
        total=2,
        done=0,
        failed=0,
        cancelled=0,
        tasks=[
            RestoredTask(task_id=20, index=0, op=OP, args=args(X, native=True)),
            RestoredTask(task_id=21, index=1, op=OP, args=args(Y)),
        ],
        now=1.0,
    )
    assert sent(s.handle(restored)) == [(1, 21)]
    assert s.tasks[20].environment == Environment(X, native=True)
    assert sent(python_worker(s, 2, now=2.0)) == [(2, 20)]


def test_a_task_taken_from_a_shared_queue_takes_its_environment_too() -> None:
    s = scheduler()
    tab(s, 1)
    taken = TasksTaken(
        job_id=3,
        options=JobOptions(),
        tasks=[RestoredTask(task_id=9, index=0, op=OP, args=args(X, native=True))],
        now=1.0,
    )
    assert sent(s.handle(taken)) == []
    assert s.tasks[9].environment == Environment(X, native=True)


def test_a_native_task_taken_where_only_tabs_run_is_released_to_the_shared_queue() -> None:
    """A grid member whose workers are tabs gives a native task back to the shared queue
    (as for an op nobody here runs), so a member with a Python worker can take it; the
    tabs' own tasks stay."""
    s = scheduler()
    tab(s, 1, concurrency=1)
    taken = TasksTaken(
        job_id=3,
        options=JobOptions(),
        tasks=[
            RestoredTask(task_id=9, index=0, op=OP, args=args(X, native=True)),
            RestoredTask(task_id=10, index=1, op=OP, args=args(X)),
            RestoredTask(task_id=11, index=2, op=OP, args=args(X)),
        ],
        now=1.0,
    )
    assert sent(s.handle(taken)) == [(1, 10)]
    released = s.handle(StrandedReleased(now=2.0))
    assert [c.task_ids for c in released if isinstance(c, TasksReleased)] == [(9,)]
    assert set(s.tasks) == {10, 11}
    python_worker(s, 2)
    assert sent(s.handle(StrandedReleased(now=3.0))) == []
    assert set(s.tasks) == {10, 11}


def test_a_worker_that_hands_back_an_environment_it_claimed_is_not_sent_it_again() -> None:
    """A worker started with --no-new-environments said it had X, then handed X's task
    back (it lied, or lost the folder): it is not sent X again, the task goes to a worker
    that builds environments, and the liar still gets tasks of others it has."""
    s = scheduler()
    python_worker(s, 1, environments=frozenset({X, Y}))
    assert sent(submit(s, spec(X))) == [(1, 1)]
    back = s.handle(TasksHandedBack(worker_id=1, task_ids=[1], now=1.0))
    assert sent(back) == []
    assert s.workers[1].environments == frozenset({Y})
    assert sent(python_worker(s, 2)) == [(2, 1)]
    assert sent(submit(s, spec(Y))) == [(1, 2)]
