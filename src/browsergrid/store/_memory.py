"""A store that keeps everything in memory: for tests, and until a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from browsergrid.store._base import JobInfo, Outcome


class MemoryStore:
    """``Store`` in memory. Nothing survives a restart."""

    def __init__(self) -> None:
        self._jobs: dict[int, JobInfo] = {}
        self._outcomes: dict[int, list[Outcome]] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self._closed: set[int] = set()

    async def add_job(self, job: JobInfo) -> None:
        self._jobs[job.job_id] = job
        self._outcomes.setdefault(job.job_id, [])

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        touched = set()
        for outcome in outcomes:
            self._outcomes.setdefault(outcome.job_id, []).append(outcome)
            touched.add(outcome.job_id)
        for job_id in touched:
            self._wake(job_id)

    async def job(self, job_id: int) -> JobInfo | None:
        return self._jobs.get(job_id)

    async def jobs(self) -> list[JobInfo]:
        return list(self._jobs.values())

    async def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        sent = 0
        while True:
            stored = self._outcomes.get(job_id, [])
            while sent < len(stored):
                yield stored[sent]
                sent += 1
            if not follow or job_id in self._closed:
                return
            arrived = self._arrived.setdefault(job_id, asyncio.Event())
            await arrived.wait()
            arrived.clear()

    async def close_job(self, job_id: int) -> None:
        self._closed.add(job_id)
        self._wake(job_id)

    def _wake(self, job_id: int) -> None:
        event = self._arrived.get(job_id)
        if event is not None:
            event.set()
