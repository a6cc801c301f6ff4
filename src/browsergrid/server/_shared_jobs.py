"""``SharedJobs``: the job queue of a coordinator in a grid (``serve --redis``).

A submit stores its tasks in Redis, which queues them in the shared queue for every
coordinator; the grid link (``_grid_link.py``) takes from it what the workers here can run.
Outcomes are stored with the job's counts; clients follow the job's log in Redis, whoever
ran its tasks, and a cancel is written to the store, which tells every coordinator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

from browsergrid.core import (
    Command,
    Job,
    JobCancelled,
    JobOptions,
    TasksAccepted,
    TaskSpec,
)
from browsergrid.errors import SubmitError
from browsergrid.protocol import FailureRecord, ResultRecord
from browsergrid.server._grid_link import GridLink
from browsergrid.server._grid_snapshot import grid_ops
from browsergrid.server._job_queue import QueueHost, Written
from browsergrid.server._state import ClientPeer, GridMembership
from browsergrid.store import JobInfo, JobState, Outcome, RedisStore, StoreError

GRID_WELCOME_IDS: Final = 2**52
"""In a grid, the first id of this coordinator's welcome tasks: they are its own and never
stored, and the ids the grid hands out (from 1, in Redis) never reach this far, while
JavaScript still counts exactly up to 2**53."""


class SharedJobs:
    """The grid's shared queue, as one coordinator uses it: see the module docstring."""

    def __init__(self, host: QueueHost, store: RedisStore, snapshot: Callable[[], bytes]) -> None:
        self.host = host
        self.store = store
        self.link = GridLink(host, store, snapshot)

    @property
    def membership(self) -> GridMembership | None:
        return self.link

    async def first_ids(self) -> tuple[int, int]:
        return 1, GRID_WELCOME_IDS  # job and task ids come from Redis (``accept``)

    async def start(self) -> None:
        await self.link.start()  # the shared queue holds what is unfinished

    async def stop(self) -> None:
        await self.link.stop()

    def local_job(self, job_id: int) -> Job | None:
        return None  # this coordinator runs only a share of it: the store has the counts

    def known_ops(self) -> set[str]:
        return grid_ops(self.link.members.values())

    async def existing(self, job_id: int) -> int:
        return job_id  # in the shared queue: nothing to take up here

    async def task_count(self, job_id: int | None) -> int:
        if job_id is None:
            return 0
        try:
            summary = await self.store.job(job_id)
        except StoreError as exc:
            self.host.store_failed(exc)
            raise SubmitError("store_unavailable", str(exc)) from None
        if summary is None:
            raise SubmitError("bad_args", f"job {job_id} no longer exists")
        if summary.state is JobState.CANCELLED:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        return summary.total

    async def accept(
        self,
        job_id: int | None,
        first_index: int,
        tasks: Sequence[TaskSpec],
        options: JobOptions,
    ) -> tuple[TasksAccepted, list[Command]]:
        """Ids from Redis; the tasks are queued for everyone once they are stored."""
        new_job, first_task_id = await self.store.reserve_ids(int(job_id is None), len(tasks))
        ack = TasksAccepted(
            job_id=new_job if job_id is None else job_id,
            first_task_id=first_task_id,
            first_index=first_index,
            count=len(tasks),
            stimulus_id=self.host.stimulus("submit"),
        )
        return ack, []

    async def unstored(self, ack: TasksAccepted) -> None:
        pass  # nothing was queued: storing is queueing

    def submitted(self, job_id: int, *, followed: bool) -> None:
        if followed:
            self.link.follow(job_id)  # now that the store has the job
        self.link.wake()

    def watch(self, client: ClientPeer, job_id: int) -> None:
        self.host.subscribers[job_id].add(client)
        self.link.follow(job_id)  # pushes a cancel that happened meanwhile too

    def unwatched(self, job_id: int) -> None:
        self.link.unfollow(job_id)

    async def cancel(self, job_id: int, requested_by: ClientPeer | None) -> None:
        """Cancel it in the store, which tells every coordinator."""
        host = self.host
        try:
            summary = await self.store.job(job_id)
            if summary is None:
                raise KeyError(job_id)
            if requested_by is not None:
                host.subscribers[job_id].add(requested_by)
                self.link.follow(job_id)  # pushes "cancelled" once the store has it
            await self.store.cancel_job(job_id, time.time())
        except StoreError as exc:
            host.store_failed(exc)
            raise

    async def job_cancelled(self, command: JobCancelled) -> None:
        self.link.finished(command.task_ids)  # cancelled in the store already: followers tell

    def released(self, task_ids: Sequence[int], reasons: Sequence[tuple[str, ...]]) -> None:
        self.link.hand_back(task_ids, reasons)

    def executed(self) -> None:
        if self.host.scheduler.appetite()[0] > 0:
            self.link.wake()

    async def write(self, outcomes: list[Outcome]) -> Written | None:
        """None when the store failed: the tasks go back to the queue, for another
        coordinator to run and store."""
        host = self.host
        try:
            written = await self.store.add_outcomes_finishing(outcomes)
        except StoreError as exc:
            host.store_failed(exc)
            self.link.hand_back(o.task_id for o in outcomes)
            await host.reported([o.task_id for o in outcomes], in_report=True)
            return None
        host.store_recovered()
        return written

    def told(self, outcomes: list[ResultRecord | FailureRecord], written: Written) -> None:
        """Clients follow the store's log instead: end the tasks' queue entries."""
        self.link.finished(o.task_id for o in outcomes)
        for job_id, done, failed in written[1]:
            self.host.job_finished(job_id, done, failed)

    def forgot(self, job: Job, info: JobInfo | None) -> None:
        pass  # its followers end with the job's log
