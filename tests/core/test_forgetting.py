"""What ends leaves the scheduler's memory: jobs once their outcomes are reported
(``OutcomesReported`` -> ``JobsForgotten``), reputations of identities gone, deadlines of
ended leases, ops nobody runs; and readers that only read (``changes_since``,
``standing``)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from browsergrid.core import (
    Changes,
    Command,
    JobCancelled,
    JobOptions,
    JobRestored,
    JobsForgotten,
    OutcomesReported,
    RestoredTask,
    Scheduler,
    SendTask,
    Standing,
    StrandedReleased,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TasksTaken,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
    WorkerQuarantined,
    WorkerState,
)
from browsergrid.core._scheduler import _STALE_DEADLINES
from tests.core.test_scheduler import (
    ARGS,
    RM,
    WELCOME_RESULT,
    accepted,
    cancel,
    counts,
    done,
    error,
    hello,
    join,
    leave,
    plain,
    result,
    send,
    submit,
    tick,
)

MC = "monte_carlo_pi"


def reported(*task_ids: int, sid: str = "reported") -> OutcomesReported:
    return OutcomesReported(task_ids=task_ids, now=0.0, stimulus_id=sid)


def forgets(s: Scheduler, *job_ids: int, sid: str = "reported") -> JobsForgotten:
    """The command handing over these jobs of ``s`` as they leave (take it before)."""
    return JobsForgotten(jobs=tuple(s.jobs[job_id] for job_id in job_ids), stimulus_id=sid)


def keyed(
    s: Scheduler,
    worker_id: int,
    key: str | None,
    *,
    ops: frozenset[str] = frozenset({RM}),
    standing: Standing | None = None,
    concurrency: int = 1,
) -> list[Command]:
    """Worker ``worker_id`` joins and says hello with lasting identity ``key``."""
    s.handle(WorkerJoined(worker_id=worker_id, now=0.0))
    return s.handle(
        WorkerIntroduced(
            worker_id=worker_id,
            ops=ops,
            concurrency=concurrency,
            prefetch=0,
            key=key,
            standing=standing,
            now=0.0,
        )
    )


def taken(job_id: int, *tasks: tuple[int, str]) -> TasksTaken:
    return TasksTaken(
        job_id=job_id,
        options=JobOptions(),
        tasks=[RestoredTask(task_id=t, index=0, op=op, args=ARGS) for t, op in tasks],
        now=0.0,
    )


def final_ids(commands: list[Command]) -> list[int]:
    """The job tasks these commands name as final: what the shell reports once told."""
    ids: list[int] = []
    for command in commands:
        if isinstance(command, TaskDone | TaskFailed) and command.job_id is not None:
            ids.append(command.task_id)
        elif isinstance(command, JobCancelled):
            ids.extend(command.task_ids)
    return ids


# --- jobs leave once what they finished is reported ----------------------------------------


def test_a_finished_job_leaves_once_its_outcome_is_reported() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(submit())
    assert s.handle(result(1, 1)) == [done(1, 1)]
    job = s.jobs[1]  # finished, not reported: the shell reads it while it routes the outcome
    assert job.finished and job.unreported == 1
    assert s.handle(reported(1)) == [JobsForgotten(jobs=(job,), stimulus_id="reported")]
    assert job.counts == counts(done=1)  # handed over as it ended, for a last look
    assert s.jobs == {} and s.tasks == {}
    assert s.changes_since(0).jobs == set()  # its entry went with it


def test_a_job_stays_until_every_final_task_of_it_is_reported() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=2))
    s.handle(submit(RM, RM))
    s.handle(result(1, 1))
    s.handle(result(1, 2))
    assert s.handle(reported(1)) == []
    assert s.jobs[1].unreported == 1
    gone = forgets(s, 1)
    assert s.handle(reported(2)) == [gone]


def test_one_report_may_forget_several_jobs() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=2))
    s.handle(submit())
    s.handle(submit())
    s.handle(result(1, 1))
    s.handle(result(1, 2))
    gone = forgets(s, 2, 1, sid="round")
    assert s.handle(reported(2, 1, sid="round")) == [gone]


def test_reporting_a_task_not_final_unknown_or_reported_already_is_ignored() -> None:
    """Ignored, not refused: a report sent late, twice or by mistake changes nothing."""
    s = Scheduler()  # with a welcome task: id 1, of no job
    s.handle(join(1))
    s.handle(submit(RM, RM))  # job 1: tasks 2 and 3, queued behind the welcome task
    assert s.handle(reported(1, 2, 3, 99)) == []  # leased, queued, queued, unknown
    assert s.jobs[1].counts == counts(queued=2) and s.jobs[1].unreported == 0
    s.handle(result(1, 1, WELCOME_RESULT))  # task 2 goes out
    s.handle(result(1, 2))
    assert s.handle(reported(1)) == []  # the welcome task: nothing to forget
    assert s.handle(reported(2)) == []  # job 1 still runs task 3
    assert s.handle(reported(2)) == []
    assert s.jobs[1].counts == counts(leased=1, done=1) and s.jobs[1].unreported == 0


def test_a_report_never_sends_tasks() -> None:
    """So the shell may send it from anywhere: it answers JobsForgotten at most."""
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(submit(RM, RM))
    s.handle(result(1, 1))  # task 2 goes out with the result
    assert s.handle(reported(1)) == []


def test_failed_and_cancelled_tasks_are_reported_like_results() -> None:
    s = plain(max_attempts=1)
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(submit(RM, RM, RM))
    assert final_ids(s.handle(error(1, 1))) == [1]  # failed; task 2 goes out
    cancelled = s.handle(cancel(1))
    assert final_ids(cancelled) == [2, 3]
    assert s.jobs[1].cancelled and s.jobs[1].unreported == 3
    assert s.handle(reported(1)) == []  # the cancel is not stored and told yet
    gone = forgets(s, 1)
    assert s.handle(reported(2, 3)) == [gone]


def test_a_running_job_keeps_exact_counts_and_takes_more_tasks_after_reports() -> None:
    """A session job: tasks finish and are reported while more keep coming."""
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(submit(RM, RM, RM))
    s.handle(result(1, 1))
    s.handle(result(1, 2))
    assert s.handle(reported(1, 2)) == []
    job = s.jobs[1]
    assert (job.total, job.counts, job.live, job.unreported) == (
        3,
        counts(leased=1, done=2),
        {3},
        0,
    )
    assert s.handle(submit(job_id=1, sid="more")) == [accepted(1, 4, "more", first_index=3)]
    s.handle(result(1, 3))
    s.handle(result(1, 4))
    assert (job.total, job.counts, job.unreported) == (4, counts(done=4), 2)
    gone = forgets(s, 1)
    assert s.handle(reported(3, 4)) == [gone]


def test_tasks_are_added_to_a_forgotten_job_once_it_is_taken_up_again() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(submit())
    s.handle(result(1, 1))
    s.handle(reported(1))
    with pytest.raises(ValueError, match="job 1 does not exist"):
        s.handle(submit(job_id=1))
    s.handle(  # what the store has of it: exact counts, and so the next index
        JobRestored(
            job_id=1, options=JobOptions(), total=1, done=1, failed=0, cancelled=0, tasks=[], now=0
        )
    )
    assert s.handle(submit(RM, RM, job_id=1, sid="more")) == [
        accepted(1, 2, "more", count=2, first_index=1),
        send(1, 2, "more"),
    ]
    s.handle(result(1, 2))
    s.handle(result(1, 3))
    assert s.jobs[1].counts == counts(done=3)
    gone = forgets(s, 1)
    assert s.handle(reported(2, 3)) == [gone]


def test_a_task_taken_again_before_its_report_is_reported_once() -> None:
    """In a grid, a task whose outcome could not be stored is handed back to the shared
    queue, and may be taken again here before the shell gave up on the first outcome."""
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, (101, RM)))
    s.handle(result(1, 101))
    s.handle(taken(7, (101, RM)))
    s.handle(result(1, 101))
    assert s.jobs[7].unreported == 1
    gone = forgets(s, 7)
    assert s.handle(reported(101)) == [gone]


def test_a_forgotten_job_leaves_the_round_robin_with_the_ids_released_from_it() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(taken(7, (101, MC), (102, RM)))  # 102 goes out; nobody here runs 101's op
    s.handle(StrandedReleased(now=0.0))  # 101 is handed back; its id stays in the queue
    s.handle(result(1, 102))
    gone = forgets(s, 7)
    assert s.handle(reported(102)) == [gone]
    assert not s._ringed and not s._rings
    s.handle(join(2))
    s.handle(hello(2, {MC}, concurrency=1))
    assert s.handle(submit(MC, sid="mc")) == [accepted(1, 1, "mc"), send(2, 1, "mc", op=MC)]


# --- readers read, and nothing more --------------------------------------------------------


def test_changes_since_serves_readers_that_each_keep_their_own_mark() -> None:
    s = plain()
    assert s.changes_since(0) == Changes(frozenset(), frozenset(), 0)
    s.handle(submit())
    s.handle(submit())
    a = s.changes_since(0)
    assert (a.jobs, a.workers) == ({1, 2}, set())
    s.handle(join(1))  # takes job 1's task
    s.handle(hello(1, {RM}, concurrency=1))
    b = s.changes_since(0)  # a second reader, looking for the first time
    assert (b.jobs, b.workers) == ({1, 2}, {1})
    assert s.changes_since(0) == b  # reading changed nothing
    a = s.changes_since(a.mark)
    assert (a.jobs, a.workers) == ({1}, {1})
    assert s.changes_since(a.mark) == Changes(frozenset(), frozenset(), a.mark)
    s.handle(result(1, 1))  # job 1 done, job 2's task leased
    s.handle(join(2))
    a = s.changes_since(a.mark)
    assert (a.jobs, a.workers) == ({1, 2}, {1, 2})
    s.handle(reported(1))  # job 1 leaves
    s.handle(leave(1))  # worker 1 leaves: job 2's task goes to worker 2
    b = s.changes_since(b.mark)
    assert (b.jobs, b.workers) == ({2}, {2})  # what left is not named: it is gone
    assert s.changes_since(a.mark) == b


def test_reading_a_standing_inserts_nothing() -> None:
    s = plain()
    fresh = s.standing("nobody")
    assert fresh == Standing() and s.standings == {}
    fresh.judge(agreed=False)  # a fresh one, not kept: this changes nothing here
    assert s.standing("nobody") == Standing()
    keyed(s, 1, "k")
    assert s.standing("k") is s.standings["k"]  # a connected identity's: the one kept


# --- reputations of identities gone --------------------------------------------------------


def test_a_standing_leaves_with_the_last_worker_of_its_identity() -> None:
    s = plain()
    keyed(s, 1, "k")
    keyed(s, 2, "k")  # a second tab of the same browser
    s.handle(leave(1))
    assert "k" in s.standings
    s.handle(leave(2))
    assert s.standings == {} and not s._holds
    keyed(s, 3, "k", standing=Standing(quarantined=True))  # the store's record comes back
    assert s.workers[3].quarantined


def test_a_connection_without_identity_keeps_its_standing_while_connected() -> None:
    s = plain()
    keyed(s, 1, None)
    assert set(s.standings) == {"#1"}
    s.handle(leave(1))
    assert s.standings == {}


def test_a_standing_stays_while_a_replica_cast_under_it_waits_and_is_judged() -> None:
    s = plain(speculate_factor=None)
    keyed(s, 1, "a")
    keyed(s, 2, "b")
    s.handle(submit(options=JobOptions(redundancy=2)))  # to both
    s.handle(result(1, 1))  # a's replica waits for b's
    s.handle(leave(1))
    assert "a" in s.standings
    [accepted_result] = [c for c in s.handle(result(2, 1)) if isinstance(c, TaskDone)]
    assert [(r.worker_key, r.agreed) for r in accepted_result.replicas] == [
        ("a", True),
        ("b", True),
    ]
    # judged while gone: the shell stores it with the outcome (before reporting it)
    assert s.standings["a"].valid == 1
    gone = forgets(s, 1)
    assert s.handle(reported(1)) == [gone]
    assert set(s.standings) == {"b"}


def test_a_quarantined_identity_s_waiting_replicas_let_go_of_its_standing() -> None:
    s = plain(speculate_factor=None)
    liar = Standing(error_rate=0.35)  # one more disagreement quarantines it
    keyed(s, 1, "liar", standing=liar, concurrency=2)
    keyed(s, 2, "b", concurrency=2)
    s.handle(submit(RM, RM, options=JobOptions(redundancy=2)))  # both to both workers
    s.handle(result(1, 2, 9.0))  # the liar's replica of task 2 waits
    s.handle(result(1, 1, 9.0))
    s.handle(result(2, 1, 8.0))  # they disagree: task 1 wants a third worker
    assert [c.task_id for c in keyed(s, 3, "c") if isinstance(c, SendTask)] == [1]
    s.handle(leave(1))  # the liar leaves before it is judged
    assert s._holds["liar"] == 2  # its replicas of tasks 1 and 2, waiting
    commands = s.handle(result(3, 1, 8.0))  # 8 wins: the liar is judged, and quarantined
    assert [c.worker_key for c in commands if isinstance(c, WorkerQuarantined)] == ["liar"]
    assert s.tasks[2].replicas == []  # its waiting replica counts no more
    assert s._holds["liar"] == 1  # only the judged outcome of task 1, until reported
    assert s.standings["liar"].quarantined  # for the shell to store
    s.handle(reported(1))
    assert "liar" not in s.standings


# --- ops and deadlines ---------------------------------------------------------------------


def test_an_op_leaves_with_its_last_worker_and_its_mean_with_it() -> None:
    s = plain()
    s.handle(join(1))
    s.handle(hello(1, {RM, "once"}, concurrency=1))
    s.handle(submit())
    s.handle(result(1, 1, now=0.5))
    assert s.op_mean_s == {RM: 0.5}
    s.handle(join(2))  # runs RM before its hello (the exercise's op), and after it
    s.handle(hello(2, {RM}, concurrency=1))
    s.handle(leave(1))
    assert s.op_mean_s == {RM: 0.5} and s._op_workers == {RM: 1}
    s.handle(leave(2))
    assert s.op_mean_s == {} and s._op_workers == {}


def test_deadlines_of_ended_leases_are_dropped_and_running_ones_still_expire() -> None:
    s = plain(lease_timeout_s=3600)
    s.handle(join(1))
    s.handle(hello(1, {RM}, concurrency=1))
    s.handle(join(2))
    s.handle(hello(2, {RM}, concurrency=1))
    s.handle(submit())  # task 1: worker 1 sits on it
    for task_id in range(2, 2 + 3 * _STALE_DEADLINES):
        s.handle(submit())
        s.handle(result(2, task_id))
        assert len(s._deadlines) <= _STALE_DEADLINES + 5
    lost = s.handle(tick(3601.0))
    assert [c.task_id for c in lost if isinstance(c, SendTask)] == [1]  # to worker 2 now


# --- everything at once: the bookkeeping stays exact -----------------------------------------


def _check(s: Scheduler) -> None:
    """The bookkeeping of what ends agrees with the state it follows."""
    holds: Counter[str] = Counter()
    for worker in s.workers.values():
        if not worker.key.startswith("#"):
            holds[worker.key] += 1
    for task in s.tasks.values():
        holds.update(r.key for r in task.replicas if not r.key.startswith("#"))
        holds.update(key for key in task.error_keys if not key.startswith("#"))
    for keys in s._unreported_keys.values():
        holds.update(keys)
    assert s._holds == holds
    assert {k for k in s.standings if not k.startswith("#")} == set(holds)
    assert {k for k in s.standings if k.startswith("#")} <= {w.key for w in s.workers.values()}
    unreported = Counter(s._unreported.values())
    for job_id, job in s.jobs.items():
        assert job.unreported == unreported[job_id]
        assert not (job.finished and not job.unreported), f"job {job_id} should have left"
    assert set(unreported) <= set(s.jobs) and set(s._unreported_keys) <= set(s._unreported)
    assert s._leases == sum(len(t.leases) for t in s.tasks.values())
    live = {
        (lease.deadline, t.task_id, w) for t in s.tasks.values() for w, lease in t.leases.items()
    }
    assert live <= set(s._deadlines)
    assert s._ringed <= set(s.jobs)
    assert set(s._job_marks) <= set(s.jobs) and set(s._worker_marks) <= set(s.workers)
    for marks in (s._job_marks, s._worker_marks):
        order = list(marks.values())
        assert order == sorted(order) and all(m <= s._mark for m in order)
    assert s._op_workers == Counter(op for w in s.workers.values() for op in w.ops)
    assert set(s.op_mean_s) <= set(s._op_workers)


@pytest.mark.parametrize("seed", range(10))
def test_the_bookkeeping_of_what_ends_follows_random_events(seed: int) -> None:
    rng = random.Random(seed)
    s = Scheduler(lease_timeout_s=8.0, max_attempts=3, speculate_min_s=0.5, rng=rng.random)
    now, next_worker = 0.0, 1
    finals: list[int] = []  # final job tasks not reported yet, as the shell holds them
    for step in range(800):
        workers = sorted(s.workers)
        holding = [w for w in workers if s.workers[w].in_flight]
        anonymous = [w for w in workers if s.workers[w].state is WorkerState.ANONYMOUS]
        open_jobs = [j for j, job in s.jobs.items() if not job.cancelled]
        choice = rng.random()
        event: Any
        if choice < 0.10 or not workers:
            event = join(next_worker, now)
            next_worker += 1
        elif choice < 0.18 and anonymous:
            event = WorkerIntroduced(
                worker_id=rng.choice(anonymous),
                ops=frozenset(rng.sample([RM, MC, f"op{step}"], 2)),
                concurrency=rng.randint(1, 2),
                prefetch=rng.randint(0, 2),
                key=rng.choice([None, "k0", "k1", "k2", "k3"]),
                standing=rng.choice([None, Standing(error_rate=0.35)]),
                now=now,
            )
        elif choice < 0.24:
            event = WorkerLeft(worker_id=rng.choice(workers), now=now)
        elif choice < 0.36:
            redundancy = rng.choice([1, 1, 2, 3])
            options = JobOptions(
                redundancy=redundancy, adaptive=redundancy > 1 and rng.random() < 0.5
            )
            ops = [rng.choice([RM, RM, MC]) for _ in range(rng.randint(1, 3))]
            job_id = rng.choice([None, *open_jobs]) if open_jobs else None
            event = submit(*ops, job_id=job_id, options=options, now=now)
        elif choice < 0.62 and holding:
            worker_id = rng.choice(holding)
            task_id = rng.choice(sorted(s.workers[worker_id].in_flight))
            liar = s.workers[worker_id].key == "k0"
            value = 9.0 if liar else rng.choice([8.0, 8.0, 8.0, 9.0])
            event = result(worker_id, task_id, value, now)
        elif choice < 0.68 and holding:
            worker_id = rng.choice(holding)
            event = error(worker_id, rng.choice(sorted(s.workers[worker_id].in_flight)), now=now)
        elif choice < 0.70 and open_jobs:
            event = cancel(rng.choice(open_jobs), now)
        elif choice < 0.85 and finals:
            rng.shuffle(finals)
            cut = rng.randint(1, len(finals))
            event = reported(*finals[:cut], rng.randrange(10_000))  # and one unknown
            finals = finals[cut:]
        else:
            now += rng.choice([0.1, 0.5, 2.0])
            event = tick(now)
        commands = s.handle(event)
        finals += final_ids(commands)
        gone = [j for c in commands if isinstance(c, JobsForgotten) for j in c.job_ids]
        assert all(j not in s.jobs for j in gone)
        _check(s)
    s.handle(reported(*finals))
    assert all(not job.finished for job in s.jobs.values())
    _check(s)


# --- memory: 20,000 jobs or tasks leave the structures as they found them -----------------


def _sizes(s: Scheduler) -> dict[str, int]:
    return {
        "jobs": len(s.jobs),
        "tasks": len(s.tasks),
        "workers": len(s.workers),
        "standings": len(s.standings),
        "holds": len(s._holds),
        "unreported": len(s._unreported) + len(s._unreported_keys),
        "job_marks": len(s._job_marks),
        "worker_marks": len(s._worker_marks),
        "rings": len(s._rings) + len(s._ringed),
        "ops": len(s._op_workers) + len(s.op_mean_s),
        "hungry": len(s._hungry),
    }


def _run(s: Scheduler, job_id: int | None, count: int, redundancy: int, now: float) -> list[int]:
    """Submit ``count`` tasks (one job each, or into ``job_id``), run them all."""
    commands = s.handle(
        submit(*[RM] * count, job_id=job_id, options=JobOptions(redundancy=redundancy), now=now)
    )
    finals: list[int] = []
    while sends := [c for c in commands if isinstance(c, SendTask)]:
        commands = []
        for send_ in sends:
            commands += s.handle(result(send_.worker_id, send_.task_id, 8.0, now))
        finals += final_ids(commands)
    return finals


@pytest.mark.parametrize("redundancy", [1, 2])
def test_twenty_thousand_one_task_jobs_leave_nothing_behind(redundancy: int) -> None:
    s = Scheduler(welcome=None, lease_timeout_s=3600.0)  # an hour: deadlines would pile up
    next_worker = 1
    baseline: dict[str, int] = {}
    for n in range(20_000):
        if n % 500 == 0:  # workers come and go, each with an identity of its own
            for worker_id in sorted(s.workers):
                s.handle(leave(worker_id, now=n))
            for _ in range(3):
                keyed(s, next_worker, f"key-{next_worker}", ops=frozenset({RM, f"op-{n}"}))
                next_worker += 1
        finals = _run(s, None, 1, redundancy, now=n / 1000)
        [gone] = s.handle(reported(*finals))
        assert isinstance(gone, JobsForgotten) and gone.job_ids == (n + 1,)
        if n == 999:
            baseline = _sizes(s)
        if n >= 999:
            assert _sizes(s) == baseline, n
    assert baseline["jobs"] == baseline["tasks"] == baseline["unreported"] == 0
    assert baseline["standings"] == baseline["holds"] == 3  # the connected workers' own
    assert len(s._deadlines) <= _STALE_DEADLINES + 2 * 3 * redundancy


def test_twenty_thousand_tasks_through_one_job_leave_only_its_counts() -> None:
    s = Scheduler(welcome=None, lease_timeout_s=3600.0)
    keyed(s, 1, "slow")
    [ack] = [c for c in s.handle(submit(now=0.0)) if isinstance(c, TasksAccepted)]
    for worker_id in (2, 3, 4):  # while worker 1 holds the first task, the job runs on
        keyed(s, worker_id, f"key-{worker_id}", concurrency=4)
    s.handle(reported(*_run(s, ack.job_id, 100, redundancy=1, now=0)))
    baseline = _sizes(s)  # with the op's mean, learnt
    assert baseline["jobs"] == baseline["tasks"] == 1 and baseline["unreported"] == 0
    for batch in range(1, 200):
        finals = _run(s, ack.job_id, 100, redundancy=1, now=batch)
        assert len(finals) == 100
        assert s.handle(reported(*finals)) == []  # the job stays: more may come
        assert _sizes(s) == baseline
        assert len(s._deadlines) <= _STALE_DEADLINES + 2 * 13
    job = s.jobs[ack.job_id]
    assert (job.total, job.counts, job.live, job.queues, job.wanting) == (
        20_001,
        counts(leased=1, done=20_000),
        {ack.first_task_id},
        {RM: []},
        {},
    )
    s.handle(result(1, ack.first_task_id))
    gone = forgets(s, ack.job_id)
    assert s.handle(reported(ack.first_task_id)) == [gone]
