"""Lost leases: what they cost the task (only losses that point at it) and the worker
(every one): churn and error spam beside an honest worker, poison tasks, forgiveness,
slowing and quarantine for losses, and reported durations no worker can poison."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from browsergrid.core import (
    JobOptions,
    Scheduler,
    StrandedReleased,
    TaskDone,
    TaskFailed,
    TasksReleased,
    WelcomeTask,
    WorkerCapacityChanged,
    WorkerIntroduced,
    WorkerJoined,
    WorkerQuarantined,
)
from browsergrid.core._reputation import (
    ESTABLISHED_AFTER,
    LOSS_QUARANTINE_AFTER,
    Standing,
)
from browsergrid.core._scheduler import MAX_DURATION_MS
from tests.core.test_scheduler import (
    RM,
    error,
    hello,
    join,
    leave,
    plain,
    result,
    submit,
    tick,
)


def keyed(
    worker_id: int,
    key: str,
    concurrency: int = 1,
    ops: frozenset[str] = frozenset({RM}),
    standing: Standing | None = None,
) -> WorkerIntroduced:
    """Hello from ``worker_id`` as identity ``key`` (``standing``: what the store knows of it)."""
    return WorkerIntroduced(
        worker_id=worker_id,
        ops=ops,
        concurrency=concurrency,
        key=key,
        standing=standing,
        now=0.0,
    )


def leased_to(s: Scheduler, worker_id: int) -> set[int]:
    return set(s.workers[worker_id].in_flight)


def honest(s: Scheduler, worker_id: int, key: str = "honest") -> None:
    """A worker whose identity has a record (job tasks finished in an earlier run):
    established. It answers its welcome task."""
    s.handle(join(worker_id))
    s.handle(keyed(worker_id, key, 1, standing=Standing(done=ESTABLISHED_AFTER)))
    (welcome,) = leased_to(s, worker_id)
    s.handle(result(worker_id, welcome))


def test_a_new_workers_dropped_connection_costs_the_task_nothing() -> None:
    s = plain(max_attempts=1)
    s.handle(submit())
    for worker_id in range(1, 12):  # one churning tab after another
        s.handle(join(worker_id))
        assert leased_to(s, worker_id) == {1}
        s.handle(leave(worker_id))
    task = s.tasks[1]
    assert (task.state.value, task.charges, len(task.reasons)) == ("queued", 0, 11)


def test_churn_beside_an_honest_worker_fails_nothing() -> None:
    s = Scheduler(max_attempts=3)
    honest(s, 1)
    s.handle(submit(*[RM] * 20))
    done: list[TaskDone] = []
    failed: list[TaskFailed] = []
    churner = 100
    for _ in range(200):  # strangers take tasks and vanish; the honest worker works
        churner += 1
        s.handle(join(churner))
        s.handle(keyed(churner, f"fresh-{churner}", concurrency=4))
        for command in s.handle(leave(churner)):
            if isinstance(command, TaskFailed):
                failed.append(command)
        for task_id in sorted(leased_to(s, 1)):
            for command in s.handle(result(1, task_id)):
                if isinstance(command, TaskDone):
                    done.append(command)
    assert failed == []
    assert len([d for d in done if not d.welcome]) == 20


def outcomes_of(commands: list[object]) -> list[TaskDone | TaskFailed]:
    return [c for c in commands if isinstance(c, TaskDone | TaskFailed)]


def spam(s: Scheduler, spammers: list[int], honest_ids: list[int]) -> list[TaskDone | TaskFailed]:
    """Job 1 runs: the spammers answer every job task they hold with an error, the honest
    workers answer theirs with a result, round after round until the job ends."""
    outcomes: list[TaskDone | TaskFailed] = []
    for _ in range(400):
        if not s.jobs or not s.jobs[1].live:
            break
        for spammer in spammers:
            for task_id in sorted(leased_to(s, spammer)):
                if s.tasks[task_id].pinned_to is None:
                    outcomes += outcomes_of(s.handle(error(spammer, task_id, "nope")))
        for worker_id in honest_ids:
            for task_id in sorted(leased_to(s, worker_id)):
                outcomes += outcomes_of(s.handle(result(worker_id, task_id)))
    return outcomes


def test_error_spam_beside_an_honest_worker_fails_nothing() -> None:
    s = Scheduler(max_attempts=3)
    honest(s, 1)
    spammers = [11, 12, 13]
    for spammer in spammers:  # they never answer their welcome task: never reliable
        s.handle(join(spammer))
        s.handle(keyed(spammer, f"spam-{spammer}", concurrency=2))
    s.handle(submit(*[RM] * 40))
    outcomes = spam(s, spammers, [1])
    assert [o for o in outcomes if isinstance(o, TaskFailed)] == []
    assert len([o for o in outcomes if isinstance(o, TaskDone) and not o.welcome]) == 40
    for spammer in spammers:  # their errors proved wrong: they pay, slowed down
        standing = s.standing(f"spam-{spammer}")
        assert standing.lost > 0 and not standing.reliable


def churn_of_spammers(s: Scheduler, record: Standing | None) -> list[TaskDone | TaskFailed]:
    """Job 1 runs beside honest worker 1: every other connection is a fresh identity (with
    ``record`` as its past) that answers its welcome task, reports an error for each job
    task it gets, and leaves; three per round, until the job ends."""
    outcomes: list[TaskDone | TaskFailed] = []
    minted = 100
    for _ in range(300):
        if not s.jobs or not s.jobs[1].live:
            break
        for _ in range(3):
            minted += 1
            s.handle(join(minted))
            s.handle(
                keyed(
                    minted,
                    f"minted-{minted}",
                    2,
                    standing=None if record is None else dataclasses.replace(record),
                )
            )
            (welcome,) = [t for t in leased_to(s, minted) if s.tasks[t].pinned_to is not None]
            outcomes += outcomes_of(s.handle(result(minted, welcome)))
            for task_id in sorted(leased_to(s, minted)):
                outcomes += outcomes_of(s.handle(error(minted, task_id, "nope")))
            s.handle(leave(minted))
        for task_id in sorted(leased_to(s, 1)):
            outcomes += outcomes_of(s.handle(result(1, task_id)))
    return outcomes


def test_identities_minted_to_answer_a_welcome_and_err_fail_nothing() -> None:
    """Answering a welcome task costs a minted identity nothing, so it earns nothing: beside
    one honest worker as new as they are (a fresh grid, no record anywhere), strangers'
    errors count against a task only when no other worker could run it."""
    s = Scheduler(max_attempts=3)
    s.handle(join(1))
    s.handle(keyed(1, "honest-but-new"))
    (welcome,) = leased_to(s, 1)
    s.handle(result(1, welcome))
    s.handle(submit(*[RM] * 20))
    outcomes = churn_of_spammers(s, None)
    assert [o for o in outcomes if isinstance(o, TaskFailed)] == []
    assert len([o for o in outcomes if isinstance(o, TaskDone) and not o.welcome]) == 20
    assert s.standing("honest-but-new").reliable


def test_identities_with_a_short_record_fail_nothing_beside_an_established_worker() -> None:
    """Identities that each finished a job task before (reliable, not established), each
    erring on what it gets once: an established worker could take every task instead, so
    nothing is charged to the tasks."""
    s = Scheduler(max_attempts=3)
    honest(s, 1)
    s.handle(submit(*[RM] * 20))
    outcomes = churn_of_spammers(s, Standing(done=1))
    assert [o for o in outcomes if isinstance(o, TaskFailed)] == []
    assert len([o for o in outcomes if isinstance(o, TaskDone) and not o.welcome]) == 20


def test_a_task_lost_once_waits_for_a_reliable_worker() -> None:
    s = Scheduler(max_attempts=3)
    honest(s, 1)
    s.handle(join(2))
    s.handle(keyed(2, "stranger", concurrency=4))
    s.handle(join(3))
    s.handle(keyed(3, "other-stranger", concurrency=4))
    s.handle(submit(*[RM] * 3))
    lost = sorted(leased_to(s, 2) - {t for t in leased_to(s, 2) if s.tasks[t].pinned_to})
    assert lost
    s.handle(leave(2))
    for task_id in lost:  # queued again, for the honest worker only
        assert task_id not in leased_to(s, 3)
    done: set[int] = set()
    for _ in range(10):
        for task_id in sorted(leased_to(s, 1)):
            done |= {c.task_id for c in s.handle(result(1, task_id)) if isinstance(c, TaskDone)}
    assert set(lost) <= done


def test_an_established_workers_dropped_connection_counts() -> None:
    s = plain(max_attempts=2)
    s.handle(join(1))
    s.handle(keyed(1, "regular"))
    s.handle(submit(*[RM] * ESTABLISHED_AFTER))
    for task_id in range(1, ESTABLISHED_AFTER + 1):
        s.handle(result(1, task_id))
    assert s.standing("regular").established
    s.handle(submit(job_id=1))
    task_id = ESTABLISHED_AFTER + 1
    assert leased_to(s, 1) == {task_id}
    s.handle(leave(1))
    assert s.tasks[task_id].charges == 1


def test_a_poison_task_fails_after_the_loss_limit_whoever_touched_it() -> None:
    s = plain(max_attempts=3, max_losses=5)
    s.handle(submit())
    commands = []
    for worker_id in range(1, 6):  # every tab that runs it dies
        s.handle(join(worker_id))
        commands = s.handle(leave(worker_id))
    (failure,) = commands
    assert isinstance(failure, TaskFailed) and len(failure.reasons) == 5
    assert s.tasks == {}


def test_the_default_loss_limit_follows_max_attempts() -> None:
    s = plain(max_attempts=5)
    s.handle(submit())
    for worker_id in range(1, 100):
        s.handle(join(worker_id))
        if not s.tasks:
            break
        s.handle(leave(worker_id))
    assert s.tasks == {} and worker_id == 21  # the 20th loss failed it


def test_errors_on_a_task_that_fails_everywhere_are_forgiven() -> None:
    s = Scheduler(max_attempts=2)
    honest(s, 1, "a")
    honest(s, 2, "b")
    s.handle(submit())
    (first,) = {1, 2} & {w for w in (1, 2) if leased_to(s, w)}
    task_id = next(iter(leased_to(s, first)))
    s.handle(error(first, task_id, "ValueError"))
    second = 3 - first
    assert task_id in leased_to(s, second)
    (failure,) = s.handle(error(second, task_id, "ValueError"))
    assert isinstance(failure, TaskFailed)
    for key in ("a", "b"):  # the task was at fault, not the workers
        assert (s.standing(key).lost, s.standing(key).loss_rate) == (0, 0.0)


def test_errors_proven_wrong_quarantine_a_worker_that_keeps_erring() -> None:
    s = Scheduler(max_attempts=50)
    honest(s, 1)
    s.handle(join(2))
    s.handle(keyed(2, "liar"))
    (welcome,) = leased_to(s, 2)
    s.handle(result(2, welcome))  # it looks honest at first
    quarantined: list[WorkerQuarantined] = []
    s.handle(submit(*[RM] * 40))
    for _ in range(200):
        for task_id in sorted(leased_to(s, 2)):
            quarantined += [
                c for c in s.handle(error(2, task_id)) if isinstance(c, WorkerQuarantined)
            ]
        for task_id in sorted(leased_to(s, 1)):
            quarantined += [
                c for c in s.handle(result(1, task_id)) if isinstance(c, WorkerQuarantined)
            ]
        if not s.jobs or not s.jobs[1].live:
            break
    assert [q.worker_key for q in quarantined] == ["liar"]
    assert s.standing("liar").quarantined and s.standing("liar").lost >= LOSS_QUARANTINE_AFTER
    assert s.workers[2].credit == 0


def test_deadlines_passed_again_and_again_quarantine() -> None:
    s = plain(lease_timeout_s=1.0, max_attempts=100)
    s.handle(join(1))
    s.handle(keyed(1, "sleeper"))
    s.handle(submit(*[RM] * 20))
    quarantined = []
    for second in range(2, 40):
        commands = s.handle(tick(float(second)))
        quarantined += [c for c in commands if isinstance(c, WorkerQuarantined)]
    assert [q.worker_key for q in quarantined] == ["sleeper"]
    assert s.workers[1].quarantined and s.standing("sleeper").lost == LOSS_QUARANTINE_AFTER


def test_a_closed_tab_loses_all_it_held_in_one_loss() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(keyed(1, "laptop", concurrency=8))
    s.handle(join(2))
    s.handle(keyed(2, "laptop", concurrency=0))  # its twin keeps the standing in memory
    s.handle(submit(*[RM] * 20))
    assert len(leased_to(s, 1)) == 9
    s.handle(leave(1))
    assert s.standing("laptop").lost == 1


def test_a_worker_that_loses_holds_fewer_tasks_then_earns_them_back() -> None:
    s = plain(lease_timeout_s=1.0)
    s.handle(join(1))
    s.handle(keyed(1, "flaky", concurrency=8))
    s.handle(submit(*[RM] * 1000))
    assert len(leased_to(s, 1)) == 9  # eight at once, one more waiting
    for second in (2.0, 4.0, 6.0):  # all it held passed their deadline: one loss a time
        s.handle(tick(second))
    standing = s.standing("flaky")
    assert standing.lost == 3 and len(leased_to(s, 1)) == standing.slots(9) == 4
    for _ in range(30):
        for task_id in sorted(leased_to(s, 1)):
            s.handle(result(1, task_id, now=7.0))
    assert len(leased_to(s, 1)) == 9 and not standing.quarantined


def test_slots_shrink_with_the_loss_rate_but_never_to_zero() -> None:
    standing = Standing()
    assert standing.slots(10) == 10
    for _ in range(30):
        standing.lose()
    assert standing.slots(10) == 1 and standing.slots(0) == 0 and standing.slots(1) == 1


def test_forgive_undoes_a_loss() -> None:
    standing = Standing()
    standing.lose()
    standing.forgive()
    assert (standing.lost, standing.loss_rate) == (0, 0.0)
    standing.forgive()  # nothing to forgive: stays at zero
    assert (standing.lost, standing.loss_rate) == (0, 0.0)


def test_released_stranded_tasks_let_go_of_the_identities_they_held() -> None:
    s = Scheduler()
    honest(s, 1, "a")
    s.handle(submit("monte_carlo_pi"))  # nobody runs it
    s.handle(join(2))
    s.handle(keyed(2, "b", ops=frozenset({"monte_carlo_pi"})))  # it runs it, errs, and leaves
    (task_id,) = [t for t in leased_to(s, 2) if s.tasks[t].pinned_to is None]
    s.handle(error(2, task_id))
    assert s.tasks[task_id].error_keys == ["b"]
    s.handle(leave(2))
    commands = s.handle(StrandedReleased(now=1.0))
    assert any(isinstance(c, TasksReleased) for c in commands)
    assert "b" not in s.standings


def test_a_huge_duration_then_a_share_keeps_every_number_finite() -> None:
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=4))
    s.handle(submit(*[RM] * 10))
    commands = s.handle(result(1, 1, duration_ms=1e308))
    (done,) = [c for c in commands if isinstance(c, TaskDone)]
    assert done.duration_ms == MAX_DURATION_MS
    s.handle(WorkerCapacityChanged(worker_id=1, concurrency=1, share=0.5, prefetch=4, now=1.0))
    s.handle(WorkerCapacityChanged(worker_id=1, concurrency=1, share=1e-300, prefetch=4, now=1.0))
    worker = s.workers[1]
    assert worker.mean_ms is not None and math.isfinite(worker.mean_ms)
    commands = s.handle(result(1, 2, duration_ms=math.nan))
    (done,) = [c for c in commands if isinstance(c, TaskDone)]
    assert done.duration_ms == MAX_DURATION_MS
    (done,) = [c for c in s.handle(result(1, 3, duration_ms=-1.0)) if isinstance(c, TaskDone)]
    assert done.duration_ms == 0.0


def test_a_welcome_task_earns_no_reliability_and_cleans_no_record() -> None:
    s = Scheduler(welcome=WelcomeTask())
    s.handle(join(1))
    s.handle(keyed(1, "lossy", 1, standing=Standing(lost=2, loss_rate=0.4)))
    (welcome,) = leased_to(s, 1)
    s.handle(result(1, welcome))
    standing = s.standing("lossy")
    assert (standing.done, standing.loss_rate, standing.reliable) == (0, 0.4, False)


def test_job_options_do_not_change_the_loss_rules() -> None:
    s = plain()
    s.handle(submit(options=JobOptions(max_attempts=1)))
    s.handle(join(1))
    s.handle(leave(1))  # a new worker's dropped connection: still queued
    assert s.tasks[1].state.value == "queued"


def test_minted_identities_get_no_wrong_result_accepted_beside_vouched_workers() -> None:
    """A saboteur with as many fresh identities as it likes, at redundancy 2, beside two
    honest workers with a record: every task settles on the honest result."""
    s = plain(spot_check=0.0)
    for worker_id in (1, 2):
        s.handle(join(worker_id))
        s.handle(
            keyed(
                worker_id, f"honest-{worker_id}", 1, standing=Standing(valid=5, consecutive_valid=5)
            )
        )
    minted = list(range(10, 30))
    for worker_id in minted:
        s.handle(join(worker_id))
        s.handle(keyed(worker_id, f"minted-{worker_id}", concurrency=2))
    s.handle(submit(*[RM] * 30, options=JobOptions(redundancy=2)))
    done: dict[int, TaskDone] = {}
    for _ in range(200):
        for worker_id in list(s.workers):
            value = 8.0 if worker_id in (1, 2) else 666.0
            for task_id in sorted(leased_to(s, worker_id)):
                for c in s.handle(result(worker_id, task_id, value)):
                    if isinstance(c, TaskDone):
                        done[c.task_id] = c
                    assert not isinstance(c, TaskFailed), c
        if len(done) == 30:
            break
    assert len(done) == 30 and {d.result for d in done.values()} == {8.0}
    assert all(d.verdict == "quorum" for d in done.values())
    assert any(s.standing(f"minted-{w}").invalid for w in minted)


def test_a_fresh_grid_settles_quorums_of_fresh_identities() -> None:
    s = plain()
    for worker_id in (1, 2):
        s.handle(join(worker_id))
        s.handle(keyed(worker_id, f"new-{worker_id}"))
    s.handle(submit(options=JobOptions(redundancy=2)))
    s.handle(result(1, 1))
    (done,) = [c for c in s.handle(result(2, 1)) if isinstance(c, TaskDone)]
    assert done.verdict == "quorum" and s.standing("new-1").valid == 1


def test_replicas_of_a_task_go_to_different_addresses_when_there_are_some() -> None:
    s = plain()
    for worker_id, address in ((1, "10.0.0.1"), (2, "10.0.0.1"), (3, "10.0.0.2")):
        s.handle(WorkerJoined(worker_id=worker_id, now=0.0, address=address))
        s.handle(keyed(worker_id, f"k{worker_id}"))
    s.handle(submit(options=JobOptions(redundancy=2)))
    holders = {w for w in (1, 2, 3) if leased_to(s, w)}
    assert 3 in holders and len(holders) == 2


def test_one_address_alone_still_gets_every_replica() -> None:
    s = plain()
    for worker_id in (1, 2):
        s.handle(WorkerJoined(worker_id=worker_id, now=0.0, address="10.0.0.1"))
        s.handle(keyed(worker_id, f"k{worker_id}"))
    s.handle(submit(options=JobOptions(redundancy=2)))
    assert leased_to(s, 1) == leased_to(s, 2) == {1}


@settings(max_examples=300, deadline=None)
@given(
    reports=st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(min_value=1e-300, max_value=1.0, exclude_min=False),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_reported_duration_and_share_keep_the_numbers_finite(
    reports: list[tuple[float, float]],
) -> None:
    """Whatever numbers a worker reports, the scheduler's means stay finite and every
    result it takes is told with a bounded duration."""
    s = plain(buffer_s=1.0)
    s.handle(join(1))
    s.handle(hello(1, {RM}, 1, prefetch=8))
    s.handle(submit(*[RM] * len(reports)))
    for duration, share in reports:
        (task_id, *_) = sorted(leased_to(s, 1))
        commands = s.handle(result(1, task_id, duration_ms=duration))
        (done,) = [c for c in commands if isinstance(c, TaskDone)]
        assert 0.0 <= done.duration_ms <= MAX_DURATION_MS
        s.handle(WorkerCapacityChanged(worker_id=1, concurrency=1, share=share, now=1.0))
        worker = s.workers[1]
        assert worker.mean_ms is None or math.isfinite(worker.mean_ms)
        assert all(math.isfinite(mean) for mean in s.op_mean_s.values())
