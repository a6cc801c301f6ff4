"""What the scheduler's commands mean for the workers they name, the record and the log.

Each function here carries out one kind of command against the peer it names (the worker
may have left: ``None``), the counters and the event log, and returns what is to be stored.
None of them waits: frames go into the peer's own outbox. ``Coordinator._execute`` calls
them, in the order of the commands, then stores the outcomes they returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from browsergrid._console import emit
from browsergrid.core import (
    CancelTask,
    JobCancelled,
    RejectReport,
    ReplicaReported,
    SendTask,
    TaskDone,
    TaskFailed,
    WorkerQuarantined,
)
from browsergrid.protocol import (
    FailureRecord,
    Replica,
    ResultRecord,
    encode_cancel,
    encode_server_error,
    encode_task,
    encode_task_frames,
)
from browsergrid.server._state import QUARANTINED, WorkerPeer
from browsergrid.server._stats import RecentResult, Stats

log = logging.getLogger("browsergrid.server")
events = logging.getLogger("browsergrid.server.events")


def send_tasks(worker_id: int, worker: WorkerPeer | None, batch: list[SendTask]) -> None:
    """Tasks for one worker: one ``tasks`` frame (a ``task`` frame each for an
    exercise-style worker, or a single task)."""
    if worker is None:
        return  # it left; its WorkerLeft event takes the leases back
    worker.rules.tasks_sent(len(batch))  # each may come back in a frame of its own
    if worker.introduced and len(batch) > 1:  # frames a worker takes (MAX_FRAME_BYTES)
        for frame in encode_task_frames([(c.task_id, c.op, c.args) for c in batch]):
            worker.send(frame)
    else:
        for command in batch:
            worker.send(encode_task(command.task_id, command.op, command.args))
    if not events.isEnabledFor(logging.INFO):  # --quiet: no line to build per task
        return
    for command in batch:
        emit(
            events,
            "task_sent",
            f"[#{worker_id}] task sent task_id={command.task_id} op={command.op}"
            + (" (welcome task)" if command.welcome else "")
            + (" (copy of a straggler)" if command.speculative else ""),
            worker_id=worker_id,
            task_id=command.task_id,
            op=command.op,
            welcome=command.welcome,
            speculative=command.speculative,
            stimulus_id=command.stimulus_id,
        )


def send_cancel(worker: WorkerPeer | None, command: CancelTask) -> None:
    """The worker's lease ended elsewhere: tell it to stop (if it knows ``cancel``)."""
    if worker is None:
        return
    worker.leases.pop(command.task_id, None)
    if worker.introduced:  # exercise-style pages know no cancel
        worker.send(encode_cancel(command.task_id))


def credit(
    worker: WorkerPeer | None, task_id: int, duration_ms: float, stats: Stats
) -> float | None:
    """Count a result's work for ``worker``; returns its lease time in ms, if known."""
    if worker is None:
        return None
    worker.tasks_done += 1
    worker.compute_ms += duration_ms
    started = worker.leases.pop(task_id, None)
    if started is None:
        return None
    lease_s = time.monotonic() - started
    stats.latency.observe(lease_s)
    return round(lease_s * 1000, 3)


def report_replica(command: ReplicaReported, worker: WorkerPeer | None, stats: Stats) -> None:
    """One replica of a replicated task came in; the task is done when its quorum is."""
    credit(worker, command.task_id, command.duration_ms, stats)
    emit(
        events,
        "replica",
        f"[#{command.worker_id}] replica of task_id={command.task_id} "
        f"duration_ms={command.duration_ms:g}",
        worker_id=command.worker_id,
        task_id=command.task_id,
        job_id=command.job_id,
        duration_ms=command.duration_ms,
        stimulus_id=command.stimulus_id,
    )


def report_done(command: TaskDone, worker: WorkerPeer | None, stats: Stats) -> ResultRecord | None:
    """Count and log a task's result; its record to store (None for a welcome task)."""
    agent = worker.agent if worker else None
    lease_ms = None  # a replicated task's lease times were counted as its replicas came
    if not command.replicas:
        lease_ms = credit(worker, command.task_id, command.duration_ms, stats)
    now = time.time()
    stats.results += 1
    stats.recent.append(
        RecentResult(
            now,
            command.task_id,
            command.job_id,
            command.worker_id,
            command.op,
            command.result,
            command.duration_ms,
        )
    )
    if events.isEnabledFor(logging.INFO):  # --quiet: no line to build per result
        _never_raising(_log_result, command, agent)
    if command.job_id is None:
        return None
    return ResultRecord(
        task_id=command.task_id,
        job_id=command.job_id,
        index=command.index,
        result=command.result,
        worker_id=command.worker_id,
        attempts=command.attempts,
        duration_ms=command.duration_ms,
        worker_key=_key_of(command, worker),
        lease_ms=lease_ms,
        finished_at=now,
        verdict=command.verdict,
        replicas=[
            Replica(
                worker_id=r.worker_id,
                worker_key=r.worker_key,
                agreed=r.agreed,
                duration_ms=r.duration_ms,
                result=None if r.agreed else r.result,
            )
            for r in command.replicas
        ],
    )


def report_failed(command: TaskFailed, stats: Stats) -> FailureRecord | None:
    """Count and log a task that failed for good; its record to store."""
    stats.failed += 1
    _never_raising(_log_failed, command)
    if command.job_id is None:
        return None
    return FailureRecord(
        task_id=command.task_id,
        job_id=command.job_id,
        index=command.index,
        reasons=list(command.reasons),
        finished_at=time.time(),
    )


def reject(
    worker_id: int, worker: WorkerPeer | None, reports: list[RejectReport], stats: Stats
) -> None:
    """Reports the scheduler could not use, from one worker's frame: one log line and one
    ``unknown_task`` error frame for them all."""
    stats.errors["report_rejected"] += len(reports)
    first = reports[0]
    emit(
        events,
        "report_ignored",
        f"[#{worker_id}] ignored {len(reports)} report(s), the first for "
        f"task_id={first.task_id!r}: {first.reason}",
        level=logging.WARNING,
        worker_id=worker_id,
        task_id=first.task_id,
        count=len(reports),
        stimulus_id=first.stimulus_id,
    )
    if worker is not None:
        worker.rules.reject([(r.task_id, r.reason) for r in reports])
        worker.answer()


def quarantine(command: WorkerQuarantined, peers: list[WorkerPeer], stats: Stats) -> None:
    """Log a worker identity's quarantine and tell its connected workers (the caller stores
    its standing)."""
    stats.errors["quarantined"] += 1
    who = command.worker_key or "a worker without a lasting identity"
    emit(
        log,
        "worker_quarantined",
        f"{who} quarantined: {command.invalid} of its {command.valid + command.invalid} "
        f"checked results disagreed with the quorum (error rate {command.error_rate:.2f}); "
        "it gets no more tasks",
        level=logging.WARNING,
        worker_key=command.worker_key,
        worker_ids=list(command.worker_ids),
        valid=command.valid,
        invalid=command.invalid,
        error_rate=round(command.error_rate, 4),
        stimulus_id=command.stimulus_id,
    )
    for peer in peers:
        if peer.introduced:
            peer.send(encode_server_error("quarantined", QUARANTINED))


def log_job_cancelled(command: JobCancelled) -> None:
    emit(
        events,
        "job_cancelled",
        f"job {command.job_id} cancelled: {len(command.task_ids)} task(s) will not run",
        job_id=command.job_id,
        cancelled=len(command.task_ids),
        stimulus_id=command.stimulus_id,
    )


def log_job_finished(job_id: int, done: int, failed: int) -> None:
    emit(
        events,
        "job_finished",
        f"job {job_id} finished: {done} done, {failed} failed",
        job_id=job_id,
        done=done,
        failed=failed,
    )


def _log_result(command: TaskDone, agent: str | None) -> None:
    emit(
        events,
        "result",
        f"[#{command.worker_id}] result task_id={command.task_id}\n"
        f"          result={_short(command.result)}\n"
        f"          duration_ms={command.duration_ms:g}"
        + (f"\n          agent={agent}" if agent else ""),
        worker_id=command.worker_id,
        task_id=command.task_id,
        job_id=command.job_id,
        op=command.op,
        result=command.result,
        duration_ms=command.duration_ms,
        agent=agent,
        welcome=command.welcome,
        verdict=command.verdict,
        stimulus_id=command.stimulus_id,
    )


def _log_failed(command: TaskFailed) -> None:
    emit(
        log,
        "task_failed",
        f"task {command.task_id} ({command.op}) failed: " + "; ".join(command.reasons),
        level=logging.WARNING,
        task_id=command.task_id,
        job_id=command.job_id,
        op=command.op,
        reasons=list(command.reasons),
        stimulus_id=command.stimulus_id,
    )


def _never_raising(write: Callable[..., None], *args: Any) -> None:
    """Write a log line about an outcome; if it cannot be written (a value the log cannot
    show), say so instead: the outcome is stored and told all the same."""
    try:
        write(*args)
    except Exception as exc:  # a log line never costs an outcome
        log.warning("could not log an outcome (%s: %.200s)", type(exc).__name__, exc)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _key_of(command: TaskDone, worker: WorkerPeer | None) -> str | None:
    """The lasting identity of the worker whose result was taken (for a replicated task,
    as its replica recorded it: the worker may have left since)."""
    for replica in command.replicas:
        if replica.worker_id == command.worker_id:
            return replica.worker_key
    return worker.worker_key if worker else None
