"""``JobQueue``: where a coordinator's jobs wait for workers, chosen once at start.

Two implementations, one per kind of store:

- ``OwnQueue`` (``_own_queue.py``, SQLite or memory): this coordinator's scheduler holds
  every unfinished task; the store keeps them for a restart, and clients hear of outcomes
  from this coordinator.
- ``SharedJobs`` (``_shared_jobs.py``, ``serve --redis``): jobs are stored in Redis and
  queued in the shared queue; each coordinator takes what its workers can run now, and
  clients follow a job's log in Redis, whoever ran its tasks.

The coordinator calls the queue where the two differ (submitting, cancelling, following a
job, writing and telling outcomes, letting go of finished jobs) and nowhere else asks which
one it has. ``QueueHost`` is what a queue needs of its coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from browsergrid.core import (
    Command,
    Job,
    JobCancelled,
    JobOptions,
    TasksAccepted,
    TaskSpec,
)
from browsergrid.protocol import FailureRecord, ResultRecord
from browsergrid.server._grid_link import GridHost
from browsergrid.server._state import ClientPeer, GridMembership
from browsergrid.store import JobInfo, Outcome, Store

Written = tuple[list[bool], list[tuple[int, int, int]]]
"""What a write of outcomes did: whether each outcome is new (not stored before), and the
jobs it finished as ``(job_id, done, failed)`` when the store says so (in a grid)."""


class QueueHost(GridHost, Protocol):
    """What a job queue needs of its coordinator: what the grid link needs (the scheduler,
    who follows which job, the events to feed it, the store's health), and the store, and
    word of what was told and what finished."""

    store: Store

    async def reported(self, task_ids: list[int], *, in_report: bool = False) -> None: ...

    def job_finished(self, job_id: int, done: int, failed: int) -> None: ...


class JobQueue(Protocol):
    """Where jobs wait for workers: this coordinator's own queue, or the grid's shared one.
    The coordinator builds one for its store; ``first_ids`` then ``start`` after the store
    is open, ``stop`` before it closes."""

    @property
    def membership(self) -> GridMembership | None:
        """This coordinator's place in a grid (None: it is on its own)."""
        ...

    async def first_ids(self) -> tuple[int, int]:
        """The first job id and task id the scheduler may hand out."""
        ...

    async def start(self) -> None:
        """Take up what is unfinished: jobs a previous run left, or the grid's queue."""
        ...

    async def stop(self) -> None: ...

    def local_job(self, job_id: int) -> Job | None:
        """The job with live counts when this coordinator runs all of it, else None (in a
        grid: ask the store)."""
        ...

    def known_ops(self) -> set[str]:
        """Ops that workers elsewhere announced (other coordinators' workers)."""
        ...

    async def existing(self, job_id: int) -> int:
        """Job ``job_id`` (a client's, by its job key), ready to take more tasks: one that
        ended and left memory is taken up again. SubmitError when it was cancelled, is
        gone, or the store cannot say."""
        ...

    async def task_count(self, job_id: int | None) -> int:
        """How many tasks the job holds (0 for a new one); SubmitError if it was
        cancelled or is gone."""
        ...

    async def accept(
        self,
        job_id: int | None,
        first_index: int,
        tasks: Sequence[TaskSpec],
        options: JobOptions,
    ) -> tuple[TasksAccepted, list[Command]]:
        """Ids for the tasks of a submit, and what the scheduler asks to do at once (to be
        carried out before the tasks are stored). StoreError if no ids can be had."""
        ...

    async def unstored(self, ack: TasksAccepted) -> None:
        """The tasks ``ack`` accepted could not be stored: take them back."""
        ...

    def submitted(self, job_id: int, *, followed: bool) -> None:
        """The tasks are stored; ``followed``: a client here follows the job."""
        ...

    def watch(self, client: ClientPeer, job_id: int) -> None:
        """``client`` (back after a reconnect) follows ``job_id`` from now on."""
        ...

    def unwatched(self, job_id: int) -> None:
        """Nobody here follows ``job_id`` any more."""
        ...

    async def cancel(self, job_id: int, requested_by: ClientPeer | None) -> None:
        """Cancel the unfinished tasks of ``job_id``; KeyError if there is no such job,
        StoreError if the store cannot say."""
        ...

    async def job_cancelled(self, command: JobCancelled) -> None:
        """The scheduler cancelled the job's tasks here: record it and tell its clients."""
        ...

    def released(self, task_ids: Sequence[int], reasons: Sequence[tuple[str, ...]]) -> None:
        """The scheduler gave up these queued tasks (no worker here runs them now)."""
        ...

    def executed(self) -> None:
        """Commands were carried out: workers here may be hungry for more."""
        ...

    async def write(self, outcomes: list[Outcome]) -> Written | None:
        """Store ``outcomes``; None when the store failed (nothing is then reported)."""
        ...

    def told(self, outcomes: list[ResultRecord | FailureRecord], written: Written) -> None:
        """The outcomes are stored: tell their clients (or let the grid tell them)."""
        ...

    def forgot(self, job: Job, info: JobInfo | None) -> None:
        """The scheduler let go of ``job`` (every task final, stored and told)."""
        ...
