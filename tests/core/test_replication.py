"""Replicated tasks in the scheduler core: quorums, more replicas on disagreement, worker
reputation (trust, spot checks, quarantine), and a simulated saboteur."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from browsergrid.core import (
    CancelTask,
    ClockTicked,
    Command,
    JobCancelRequested,
    JobOptions,
    ReplicaReported,
    ResultReported,
    Scheduler,
    SendTask,
    Standing,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    TaskSpec,
    TasksSubmitted,
    TaskState,
    WelcomeTask,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
    WorkerQuarantined,
)

OP = "prime_count"
RM = "repeat_multiply"  # what a worker runs before its hello (the exercise's op)


class Grid:
    """A scheduler (without welcome tasks unless given one), and short ways to drive it."""

    def __init__(self, welcome: WelcomeTask | None = None, **kwargs: Any) -> None:
        self.scheduler = Scheduler(welcome=welcome, speculate_factor=None, **kwargs)
        self.now = 0.0

    def handle(self, event: Any) -> list[Command]:
        return self.scheduler.handle(event)

    def worker(
        self,
        worker_id: int,
        key: str | None = None,
        standing: Standing | None = None,
        concurrency: int = 1,
        op: str = OP,
    ) -> list[Command]:
        self.handle(WorkerJoined(worker_id=worker_id, now=self.now))
        return self.handle(
            WorkerIntroduced(
                worker_id=worker_id,
                ops=frozenset({op}),
                concurrency=concurrency,
                prefetch=0,
                key=key if key is not None else f"w{worker_id}",
                standing=standing,
                now=self.now,
            )
        )

    def submit(self, count: int = 1, op: str = OP, **options: Any) -> list[Command]:
        specs = [TaskSpec(op=op, args={"n": i}) for i in range(count)]
        return self.handle(TasksSubmitted(tasks=specs, options=JobOptions(**options), now=self.now))

    def result(self, worker_id: int, task_id: int, value: Any) -> list[Command]:
        self.now += 0.01
        return self.handle(
            ResultReported(
                worker_id=worker_id, task_id=task_id, result=value, duration_ms=1.0, now=self.now
            )
        )


def sent(commands: Iterable[Command]) -> list[tuple[int, int]]:
    """(worker id, task id) of every task sent."""
    return [(c.worker_id, c.task_id) for c in commands if isinstance(c, SendTask)]


def of(kind: type[Any], commands: Iterable[Command]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def test_a_task_of_redundancy_2_goes_to_two_workers_and_waits_for_both() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3):
        grid.worker(worker_id)
    commands = grid.submit(redundancy=2)
    assert sent(commands) == [(1, 1), (2, 1)]  # two replicas at once, the third worker idle

    first = grid.result(1, 1, 25)
    assert of(ReplicaReported, first) and not of(TaskDone, first)
    assert grid.scheduler.tasks[1].state is TaskState.LEASED

    second = grid.result(2, 1, 25)
    [done] = of(TaskDone, second)
    assert (done.result, done.verdict, done.worker_id) == (25, "quorum", 1)
    assert [(r.worker_id, r.worker_key, r.agreed) for r in done.replicas] == [
        (1, "w1", True),
        (2, "w2", True),
    ]
    assert grid.scheduler.standing("w1").valid == 1
    assert grid.scheduler.jobs[1].counts[TaskState.DONE] == 1


def test_replicas_go_to_distinct_identities_only() -> None:
    grid = Grid()
    grid.worker(1, key="same")
    grid.worker(2, key="same")  # a second tab of the same browser
    commands = grid.submit(redundancy=2)
    assert sent(commands) == [(1, 1)]
    grid.result(1, 1, 25)
    assert sent(grid.handle(ClockTicked(now=1.0))) == []  # worker 2 may not vote again
    assert sent(grid.worker(3)) == [(3, 1)]
    assert of(TaskDone, grid.result(3, 1, 25))


def test_disagreement_brings_another_replica_and_the_majority_wins() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3):
        grid.worker(worker_id)
    grid.submit(redundancy=2)
    grid.result(1, 1, 25)
    commands = grid.result(2, 1, 99)  # a wrong answer
    assert sent(commands) == [(3, 1)]
    [done] = of(TaskDone, grid.result(3, 1, 25))
    assert done.result == 25 and done.verdict == "quorum"
    assert [(r.worker_id, r.agreed, r.result) for r in done.replicas] == [
        (1, True, 25),
        (2, False, 99),
        (3, True, 25),
    ]
    assert grid.scheduler.standing("w2").invalid == 1
    assert grid.scheduler.standing("w1").valid == 1


def test_a_task_fails_when_its_replicas_are_used_up_without_a_quorum() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3, 4):
        grid.worker(worker_id)
    grid.submit(redundancy=2, max_replicas=3)
    grid.result(1, 1, 1)
    grid.result(2, 1, 2)
    commands = grid.result(3, 1, 3)
    [failed] = of(TaskFailed, commands)
    assert "no 2 of its 3 results agreed" in failed.reasons[-1]
    assert sent(commands) == []
    assert grid.scheduler.jobs[1].counts[TaskState.FAILED] == 1
    assert grid.scheduler.standing("w1").invalid == 0  # no quorum: nobody is judged


def test_a_replica_lost_with_its_worker_is_sent_to_another() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3):
        grid.worker(worker_id)
    grid.submit(redundancy=2)
    grid.result(1, 1, 25)
    commands = grid.handle(WorkerLeft(worker_id=2, now=1.0))
    assert sent(commands) == [(3, 1)]
    assert of(TaskDone, grid.result(3, 1, 25))


def test_an_error_on_one_replica_gives_it_to_another_worker() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3):
        grid.worker(worker_id)
    grid.submit(redundancy=2)
    commands = grid.handle(TaskErrorReported(worker_id=2, task_id=1, message="boom", now=0.1))
    assert sent(commands) == [(3, 1)]
    grid.result(1, 1, 25)
    [done] = of(TaskDone, grid.result(3, 1, 25))
    assert done.attempts == 3


def test_tolerance_comes_from_the_agree_function() -> None:
    def close(op: str, args: Any, a: Any, b: Any) -> bool:
        return bool(abs(a - b) <= 1e-9 * abs(a))

    grid = Grid(agree=close)
    grid.worker(1)
    grid.worker(2)
    grid.submit(redundancy=2)
    grid.result(1, 1, 1.0)
    [done] = of(TaskDone, grid.result(2, 1, 1.0 + 1e-12))
    assert done.result == 1.0 and all(r.agreed for r in done.replicas)


def test_a_worker_that_keeps_disagreeing_is_quarantined() -> None:
    grid = Grid()
    for worker_id in (1, 2, 3):
        grid.worker(worker_id)
    grid.submit(count=12, redundancy=2)
    quarantined: list[WorkerQuarantined] = []
    for turn in range(300):  # each worker answers its oldest task in turn; 3 is always wrong
        worker = grid.scheduler.workers[turn % 3 + 1]
        if worker.in_flight:
            task_id = min(worker.in_flight)
            value = 666 + task_id if worker.worker_id == 3 else task_id
            quarantined += of(WorkerQuarantined, grid.result(worker.worker_id, task_id, value))
    [event] = quarantined
    assert (event.worker_key, event.worker_ids, event.invalid) == ("w3", (3,), 3)
    assert grid.scheduler.workers[3].quarantined and grid.scheduler.workers[3].credit == 0
    assert grid.scheduler.jobs[1].counts[TaskState.DONE] == 12
    assert not grid.scheduler.tasks
    # and a quarantined worker is sent nothing, even with work waiting
    assert sent(grid.submit(count=3, redundancy=1)) == [(1, 13), (2, 14)]


def test_quarantine_takes_back_leases_and_discards_waiting_replicas() -> None:
    grid = Grid()
    grid.worker(1, standing=Standing(error_rate=0.35), concurrency=3)  # one more invalid: out
    grid.worker(2, concurrency=3)
    grid.submit(count=3, redundancy=2)
    assert grid.scheduler.workers[1].in_flight == {1, 2, 3}
    grid.result(1, 2, 1234)  # a replica waiting for its quorum, to be thrown away
    grid.result(1, 1, -1)
    grid.worker(3)
    commands = grid.result(2, 1, 1)  # 1 and 2 disagree on task 1: worker 3 settles it
    assert sent(commands) == [(3, 1)]
    commands = grid.result(3, 1, 1)
    [event] = of(WorkerQuarantined, commands)
    assert event.worker_ids == (1,)
    assert [c.task_id for c in of(CancelTask, commands)] == [3]  # its lease on task 3
    assert not grid.scheduler.workers[1].in_flight
    assert [r.key for r in grid.scheduler.tasks[2].replicas] == []  # 1234 no longer counts
    later: list[tuple[int, int]] = sent(commands)
    while grid.scheduler.tasks:  # workers 2 and 3 settle tasks 2 and 3 between them
        worker_id, task_id = min(
            (w, t) for t, task in grid.scheduler.tasks.items() for w in task.leases
        )
        later += sent(grid.result(worker_id, task_id, task_id))
    assert all(worker_id != 1 for worker_id, _ in later)
    assert grid.scheduler.jobs[1].counts[TaskState.DONE] == 3


def test_a_quarantined_identity_gets_no_work_when_it_comes_back() -> None:
    grid = Grid()
    grid.worker(1, key="bad", standing=Standing(quarantined=True, invalid=5))
    grid.worker(2)
    assert sent(grid.submit(count=2)) == [(2, 1)]


def test_quarantine_lets_the_welcome_task_of_a_tab_of_that_identity_run_on() -> None:
    grid = Grid(welcome=WelcomeTask())  # tasks 1-3: the welcome tasks of workers 1-3
    grid.worker(1, key="bad", standing=Standing(error_rate=0.35), concurrency=2)
    grid.worker(2, concurrency=2)
    grid.worker(3, concurrency=2)
    assert sent(grid.submit(redundancy=2)) == [(1, 4), (2, 4)]
    grid.result(1, 4, -1)
    assert sent(grid.result(2, 4, 1)) == [(3, 4)]
    commands = grid.result(3, 4, 1)
    [event] = of(WorkerQuarantined, commands)
    assert (event.worker_key, event.worker_ids) == ("bad", (1,))
    assert of(CancelTask, commands) == []  # its welcome task is no job's: it runs on
    assert list(grid.scheduler.tasks[1].leases) == [1]
    [welcomed] = of(TaskDone, grid.result(1, 1, 1.5))
    assert welcomed.welcome and grid.scheduler.workers[1].speed_ms == 1.0


def test_a_quarantined_identity_saying_hello_keeps_its_welcome_task_and_gets_nothing_else() -> None:
    grid = Grid(welcome=WelcomeTask())
    grid.submit(count=2, op=RM)
    grid.handle(WorkerJoined(worker_id=1, now=0.0))  # its welcome task 3 first
    commands = grid.handle(
        WorkerIntroduced(
            worker_id=1,
            ops=frozenset({RM}),
            concurrency=2,
            key="bad",
            standing=Standing(quarantined=True, invalid=5),
            now=0.0,
        )
    )
    assert commands == []
    assert grid.scheduler.workers[1].quarantined
    assert list(grid.scheduler.tasks[3].leases) == [1]
    assert sent(grid.result(1, 3, 1.5)) == []  # the welcome result is taken, no work follows
    assert 3 not in grid.scheduler.tasks


def test_adaptive_trusts_an_established_worker_with_spot_checks() -> None:
    draws = iter([0.5, 0.05])  # the first task is spared, the second spot-checked
    grid = Grid(spot_check=0.1, rng=lambda: next(draws))
    established = Standing(consecutive_valid=10, valid=10, error_rate=0.05)
    grid.worker(1, standing=established, concurrency=2)
    commands = grid.submit(count=2, redundancy=2, adaptive=True)
    assert sent(commands) == [(1, 1), (1, 2)]
    [done] = of(TaskDone, grid.result(1, 1, 1))
    assert done.verdict == "trusted" and len(done.replicas) == 1
    assert not of(TaskDone, grid.result(1, 2, 2))  # the spot check waits for a second result
    assert sent(grid.worker(2)) == [(2, 2)]
    [checked] = of(TaskDone, grid.result(2, 2, 2))
    assert checked.verdict == "quorum"
    assert grid.scheduler.standing("w1").valid == 11


def test_adaptive_double_checks_a_new_worker() -> None:
    grid = Grid(rng=lambda: 0.99)
    grid.worker(1)
    grid.worker(2)
    commands = grid.submit(redundancy=2, adaptive=True)
    assert sent(commands) == [(1, 1), (2, 1)]


def test_cancelling_a_job_ends_its_replicas() -> None:
    grid = Grid()
    for worker_id in (1, 2):
        grid.worker(worker_id)
    grid.submit(count=3, redundancy=2)
    grid.result(1, 1, 1)
    commands = grid.handle(JobCancelRequested(job_id=1, now=1.0))
    cancelled = {(c.worker_id, c.task_id) for c in commands if isinstance(c, CancelTask)}
    assert cancelled == {(1, 2), (2, 1)}
    assert not grid.scheduler.tasks
    assert sent(grid.handle(ClockTicked(now=2.0))) == []


def test_a_quorum_made_by_dropping_a_replica_takes_back_the_lease_still_running() -> None:
    """Agreement within a tolerance is not transitive: 0~1 and 1~2, but not 0~2. Dropping
    the replica 0 (its worker changed identity) merges {0, 1} and {2, 2} into {1, 2, 2};
    the next agreeing result then makes the quorum of 4 while worker 6 still runs its
    copy, which is taken back."""
    grid = Grid(agree=lambda op, args, a, b: abs(a - b) <= 1)
    grid.handle(WorkerJoined(worker_id=1, now=0.0))  # no hello yet: identity "#1"
    for worker_id in (2, 3, 4):
        grid.worker(worker_id, op=RM)
    commands = grid.submit(op=RM, redundancy=4, max_replicas=10)
    assert sent(commands) == [(1, 1), (2, 1), (3, 1), (4, 1)]
    for worker_id, value in ((1, 0), (2, 1), (3, 2), (4, 2)):
        assert not of(TaskDone, grid.result(worker_id, 1, value))
    assert sent(grid.worker(5, op=RM)) == [(5, 1)]
    assert sent(grid.worker(6, op=RM)) == [(6, 1)]
    hello = WorkerIntroduced(worker_id=1, ops=frozenset({RM}), concurrency=1, key="k", now=0.0)
    assert grid.handle(hello) == []
    commands = grid.result(5, 1, 2)
    assert of(CancelTask, commands) == [
        CancelTask(worker_id=6, task_id=1, reason="a quorum agreed without it", stimulus_id="")
    ]
    [done] = of(TaskDone, commands)
    assert (done.result, done.verdict) == (1, "quorum")
    assert [(r.worker_id, r.agreed) for r in done.replicas] == [
        (2, True),
        (3, True),
        (4, True),
        (5, True),
    ]
    assert grid.result(6, 1, 2) == []  # its late result is dropped quietly


@pytest.mark.parametrize(
    "options",
    [
        {"redundancy": 0},
        {"redundancy": 2, "max_replicas": 1},
        {"adaptive": True},
    ],
)
def test_bad_validation_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JobOptions(**options)


@pytest.mark.parametrize("seed", range(5))
def test_a_saboteur_never_gets_a_wrong_result_accepted_and_ends_in_quarantine(
    seed: int,
) -> None:
    """Four honest workers and one that answers wrongly 30% of the time, at redundancy 2,
    served in a random order: every accepted result is right, and the saboteur ends up
    quarantined."""
    chance = random.Random(seed)
    grid = Grid(rng=chance.random)
    workers = [1, 2, 3, 4, 5]
    saboteur = 5
    for worker_id in workers:
        grid.worker(worker_id)
        grid.scheduler.workers[worker_id].concurrency = 2
    accepted: dict[int, Any] = {}
    quarantined = []
    commands = grid.submit(count=300, redundancy=2)
    for _ in range(10_000):
        accepted.update({c.task_id: c.result for c in of(TaskDone, commands)})
        quarantined += of(WorkerQuarantined, commands)
        leases = [
            (worker_id, task_id)
            for task_id, task in grid.scheduler.tasks.items()
            for worker_id in task.leases
        ]
        if not leases:
            break
        worker_id, task_id = chance.choice(sorted(leases))
        right = task_id * 7
        wrong = worker_id == saboteur and chance.random() < 0.3
        commands = grid.result(worker_id, task_id, -chance.randrange(10**9) if wrong else right)
    assert len(accepted) == 300
    assert all(result == task_id * 7 for task_id, result in accepted.items())
    assert [q.worker_key for q in quarantined] == ["w5"]
    assert all(not grid.scheduler.standing(f"w{w}").quarantined for w in (1, 2, 3, 4))
