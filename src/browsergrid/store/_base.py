"""The store interface every backend implements, and the records it keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

from browsergrid.protocol import FailureRecord, ResultRecord

Outcome = ResultRecord | FailureRecord
"""How a task ended: a result, or a failure with one reason per attempt."""


class JobInfo(msgspec.Struct, frozen=True):
    """What a job was when it was created."""

    job_id: int
    name: str
    op: str
    priority: int
    created_at: float  # Unix time
    submitted_by: str  # the client's address


class Store(Protocol):
    """Where jobs and task outcomes are kept. Every method may wait for the disk: a caller
    acknowledges nothing (to a client or a worker) before the call has returned."""

    async def add_job(self, job: JobInfo) -> None:
        """Remember a new job."""

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Remember how these tasks ended (each task at most once)."""

    async def job(self, job_id: int) -> JobInfo | None:
        """The job, or None if it is unknown."""

    async def jobs(self) -> list[JobInfo]:
        """Every job, oldest first."""

    def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        """The job's outcomes in the order they arrived; with ``follow``, keep waiting for
        more until ``close_job(job_id)`` is called."""

    async def close_job(self, job_id: int) -> None:
        """No more outcomes will come for this job (it finished or was cancelled)."""
