"""Builders shared by the store tests."""

from __future__ import annotations

from typing import Any

from browsergrid.protocol import FailureRecord, ResultRecord
from browsergrid.store import JobInfo, TaskRecord, WorkerRecord


def job(job_id: int, **options: Any) -> JobInfo:
    fields: dict[str, Any] = {
        "name": f"job {job_id}",
        "op": "prime_count",
        "priority": 0,
        "created_at": 1_700_000_000.0 + job_id,
        "submitted_by": "127.0.0.1:5000",
    }
    return JobInfo(job_id=job_id, **{**fields, **options})


def tasks(job_id: int, first: int, count: int, *, start_index: int = 0) -> list[TaskRecord]:
    return [
        TaskRecord(
            task_id=first + n,
            job_id=job_id,
            index=start_index + n,
            op="prime_count",
            args={"lo": n * 100, "hi": n * 100 + 100, "label": f"t{first + n}"},
        )
        for n in range(count)
    ]


def result(
    task: TaskRecord, value: Any = None, *, at: float | None = 1_700_000_100.0
) -> ResultRecord:
    return ResultRecord(
        task_id=task.task_id,
        job_id=task.job_id,
        index=task.index,
        result={"count": task.task_id} if value is None else value,
        worker_id=7,
        attempts=1,
        duration_ms=12.5,
        worker_key="wk-1",
        lease_ms=20.0,
        finished_at=at,
    )


def failure(task: TaskRecord, *, at: float | None = 1_700_000_100.0) -> FailureRecord:
    return FailureRecord(
        task_id=task.task_id,
        job_id=task.job_id,
        index=task.index,
        reasons=["worker 3: ValueError: bad", "worker 4: lease expired"],
        finished_at=at,
    )


def worker(key: str, last_seen: float, **fields: Any) -> WorkerRecord:
    values: dict[str, Any] = {
        "agent": "Mozilla/5.0",
        "first_seen": 1_700_000_000.0,
        "tasks_done": 3,
        "failures": 1,
        "compute_ms": 30.0,
    }
    return WorkerRecord(worker_key=key, last_seen=last_seen, **{**values, **fields})
