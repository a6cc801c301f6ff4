"""The rows of the dashboard's live feed, one builder per row type of docs/dashboard.md: a
JobRow, a WorkerRow (this coordinator's, or another's in a grid), a HistoryRow, a result and
a worker event; and how many rows of each kind the dashboard is sent at most.

Each builder reads what it is given and nothing else (but ``job_rate``, which keeps a job's
recent progress in the deque it is given), so a row is the same whoever builds it. The feed
(``_feed.py``, ``_feed_grid.py``) decides which rows to build and compares them with what
viewers hold.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import msgspec

from browsergrid.core import Worker
from browsergrid.server._agents import Agent, describe
from browsergrid.server._grid_snapshot import SharedWorker, worker_state
from browsergrid.server._state import WorkerPeer
from browsergrid.server._stats import RecentResult, WorkerEvent
from browsergrid.store import JobInfo, JobState, JobSummary, WorkerRecord

Row = dict[str, Any]
"""One row of a frame, as JSON sends it."""

RECENT_JOBS: Final = 20  # the newest jobs shown besides the running ones
RECENT_RESULTS: Final = 20
HISTORY_ROWS: Final = 100
_JOB_RATE_WINDOW_S: Final = 10.0
_RESULT_CHARS: Final = 120
_encode = msgspec.json.Encoder().encode


def job_row(info: JobInfo, *, rate: float, eta_s: float | None, **counts: Any) -> Row:
    """A JobRow: ``counts`` are its ``state`` and task counts, in the order sent."""
    return {
        "id": info.job_id,
        "name": info.name,
        "op": info.op,
        "state": counts.pop("state"),
        **counts,
        "created_at": info.created_at,
        "rate": round(rate, 1),
        "eta_s": None if eta_s is None else round(eta_s),
    }


def stored_job_row(summary: JobSummary, now: float) -> Row:
    """A JobRow as the store has the job (its rate over its whole life, no ETA)."""
    end = summary.finished_at or now
    elapsed = end - summary.info.created_at
    finished = summary.done + summary.failed
    return job_row(
        summary.info,
        state=summary.state.value,
        total=summary.total,
        queued=summary.total - finished - summary.cancelled
        if summary.state is JobState.RUNNING
        else 0,
        leased=0,
        done=summary.done,
        failed=summary.failed,
        cancelled=summary.cancelled,
        finished_at=summary.finished_at if summary.state is not JobState.RUNNING else None,
        rate=finished / elapsed if elapsed > 0 else 0.0,
        eta_s=None,
    )


def job_rate(samples: deque[tuple[float, int]], now: float, finished: int) -> float:
    """A running job's tasks finished per second over the last ten seconds or so: adds
    ``(now, finished)`` to its ``samples`` (kept by the caller, one deque per job) and drops
    those it no longer needs."""
    if not samples or samples[-1][0] < now:
        samples.append((now, finished))
    while len(samples) > 2 and samples[1][0] <= now - _JOB_RATE_WINDOW_S:
        samples.popleft()
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def worker_row(peer: WorkerPeer, worker: Worker, agent: Agent) -> Row:
    """A WorkerRow of this coordinator's worker: its connection (``peer``), the scheduler's
    ``worker`` and its ``agent`` as read for people."""
    return {
        "id": peer.worker_id,
        "key": peer.worker_key,
        "kind": agent.kind,
        "browser": agent.browser,
        "os": agent.os,
        "agent": peer.agent,
        "address": peer.address,
        "connected_at": peer.connected_at,
        "state": worker_state(worker),
        "in_flight": len(worker.in_flight),
        "concurrency": worker.concurrency,
        "done": worker.tasks_done,
        "failures": worker.failures,
        "lifetime_done": peer.tasks_done,
        "mean_ms": None if worker.mean_ms is None else round(worker.mean_ms, 3),
        "speed_ms": worker.speed_ms,
    }


def remote_row(coordinator_id: str, worker: SharedWorker) -> Row:
    """A RemoteWorkerRow: a WorkerRow of another coordinator's worker, from its snapshot."""
    return {
        "coordinator": coordinator_id,
        "id": worker.id,
        "key": worker.key,
        "kind": worker.kind,
        "browser": worker.browser,
        "os": worker.os,
        "agent": None,
        "address": worker.address,
        "connected_at": worker.connected_at,
        "state": worker.state,
        "in_flight": worker.in_flight,
        "concurrency": worker.concurrency,
        "done": worker.done,
        "failures": worker.failures,
        "lifetime_done": None,
        "mean_ms": worker.mean_ms,
        "speed_ms": worker.speed_ms,
    }


def history_row(record: WorkerRecord, *, connected: bool) -> Row:
    """A HistoryRow, from the store's record or a connected peer's ``record()``."""
    done = record.tasks_done
    agent = describe(record.agent)
    return {
        "key": record.worker_key,
        "label": agent.label,
        "kind": agent.kind,
        "browser": agent.browser,
        "os": agent.os,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "done": done,
        "failures": record.failures,
        "mean_ms": round(record.compute_ms / done, 3) if done else None,
        "connected": connected,
    }


def result_row(result: RecentResult) -> Row:
    """A recent result, its value cut to ``_RESULT_CHARS`` characters of JSON."""
    text = _encode(result.result).decode()
    if len(text) > _RESULT_CHARS:
        text = text[: _RESULT_CHARS - 1] + "…"
    return {
        "task_id": result.task_id,
        "job_id": result.job_id,
        "worker_id": result.worker_id,
        "op": result.op,
        "result": text,
        "duration_ms": result.duration_ms,
        "at": result.at,
    }


def event_row(event: WorkerEvent) -> Row:
    """A worker that connected or disconnected."""
    agent = describe(event.agent, introduced=event.introduced)
    return {
        "at": event.at,
        "kind": event.kind,
        "worker_id": event.worker_id,
        "address": event.address,
        "label": agent.label,
        "worker_kind": agent.kind,
        "browser": agent.browser,
        "os": agent.os,
    }
