"""``OwnQueue``: the job queue of a coordinator on its own (SQLite or memory).

Its scheduler holds every unfinished task; the store keeps them, and a restart takes them
up again (``start``). Clients hear of outcomes from this coordinator once they are stored.
A job that ended leaves memory; a later submit to it takes it up again from the store, or
from a small cache of jobs that ended moments ago (a session's next ``submit``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Final

from browsergrid._console import emit
from browsergrid.core import (
    Command,
    Job,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    JobRestored,
    RestoredTask,
    TasksAccepted,
    TaskSpec,
    TasksSubmitted,
    TaskState,
)
from browsergrid.errors import SubmitError
from browsergrid.protocol import Cancelled, FailureRecord, ResultRecord
from browsergrid.server._job_queue import QueueHost, Written
from browsergrid.server._state import ClientPeer, GridMembership
from browsergrid.server._submit import job_options
from browsergrid.store import JobInfo, JobState, JobSummary, Outcome, StoreError, TaskRecord

log = logging.getLogger("browsergrid.server")

ENDED_KEPT: Final = 256  # jobs that ended lately, kept to be taken up without a store read
ENDED_KEPT_S: Final = 60.0  # ... for this long at most (the store is the truth)


class OwnQueue:
    """This coordinator's own queue: see the module docstring."""

    membership: GridMembership | None = None

    def __init__(self, host: QueueHost) -> None:
        self.host = host
        self._ended: OrderedDict[int, tuple[float, JobSummary]] = OrderedDict()

    async def first_ids(self) -> tuple[int, int]:
        return await self.host.store.next_ids()

    async def start(self) -> None:
        """After a restart: queue again every unfinished task of every running job."""
        host = self.host
        jobs, tasks = await host.store.unfinished()
        by_job: defaultdict[int, list[TaskRecord]] = defaultdict(list)
        for task in tasks:
            by_job[task.job_id].append(task)
        restored = 0
        for info in jobs:
            summary = await host.store.job(info.job_id)
            if summary is None:
                continue
            pending = by_job.get(info.job_id, [])
            await host.apply(self._restored(summary, pending))
            restored += len(pending)
        if jobs:
            emit(
                log,
                "restored",
                f"restored {len(jobs)} running job(s) with {restored} unfinished task(s)",
                jobs=len(jobs),
                tasks=restored,
            )

    async def stop(self) -> None:
        pass

    def local_job(self, job_id: int) -> Job | None:
        return self.host.scheduler.jobs.get(job_id)

    def known_ops(self) -> set[str]:
        return set()

    def _restored(self, summary: JobSummary, pending: list[TaskRecord]) -> JobRestored:
        """The event that takes up a stored job again, with its unfinished tasks."""
        info = summary.info
        self.host.job_infos[info.job_id] = info
        return JobRestored(
            job_id=info.job_id,
            options=job_options(info),
            total=summary.total,
            done=summary.done,
            failed=summary.failed,
            cancelled=summary.cancelled,
            tasks=[
                RestoredTask(
                    task_id=t.task_id,
                    index=t.index,
                    op=t.op,
                    args=t.args,
                    attempts=t.attempts,
                    reasons=tuple(t.reasons),
                )
                for t in pending
            ],
            now=time.monotonic(),
            stimulus_id=self.host.stimulus("restore"),
        )

    async def existing(self, job_id: int) -> int:
        """A job that ended and left memory (forgotten, or finished before a restart) is
        taken up again (exact counts, the next index) so tasks can be added; from the store
        unless it ended moments ago."""
        host = self.host
        if job_id in host.scheduler.jobs:
            return job_id
        kept = self._ended.pop(job_id, None)
        if kept is not None and time.monotonic() - kept[0] < ENDED_KEPT_S:
            summary: JobSummary | None = kept[1]
        else:
            try:
                summary = await host.store.job(job_id)
            except StoreError as exc:
                host.store_failed(exc)
                raise SubmitError("store_unavailable", str(exc)) from None
        if job_id in host.scheduler.jobs:  # taken up meanwhile
            return job_id
        if summary is None:
            raise SubmitError("bad_args", f"job {job_id} no longer exists")
        if summary.state is JobState.CANCELLED:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        await host.apply(self._restored(summary, []))
        return job_id

    async def task_count(self, job_id: int | None) -> int:
        if job_id is None:
            return 0
        job = self.host.scheduler.jobs[job_id]
        if job.cancelled:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        return job.total

    async def accept(
        self,
        job_id: int | None,
        first_index: int,
        tasks: Sequence[TaskSpec],
        options: JobOptions,
    ) -> tuple[TasksAccepted, list[Command]]:
        """The scheduler queues the tasks at once: they go out to workers before the store
        writes them, so that a small task runs while its insert commits."""
        host = self.host
        event = TasksSubmitted(
            job_id=job_id,
            tasks=list(tasks),
            options=options,
            now=time.monotonic(),
            stimulus_id=host.stimulus("submit"),
        )
        commands = host.scheduler.handle(event)
        ack = next(c for c in commands if isinstance(c, TasksAccepted))
        return ack, commands

    async def unstored(self, ack: TasksAccepted) -> None:
        host = self.host
        await host.apply(
            JobCancelRequested(
                job_id=ack.job_id, now=time.monotonic(), stimulus_id=host.stimulus("unstored")
            )
        )

    def submitted(self, job_id: int, *, followed: bool) -> None:
        pass  # its clients are told as its outcomes are stored (``told``)

    def watch(self, client: ClientPeer, job_id: int) -> None:
        job = self.host.scheduler.jobs.get(job_id)
        if job is not None and not job.cancelled:
            self.host.subscribers[job_id].add(client)

    def unwatched(self, job_id: int) -> None:
        pass

    async def cancel(self, job_id: int, requested_by: ClientPeer | None) -> None:
        host = self.host
        if job_id not in host.scheduler.jobs:  # ended and forgotten, or no such job
            try:
                summary = await host.store.job(job_id)
            except StoreError as exc:
                host.store_failed(exc)
                raise
            if summary is None:
                raise KeyError(job_id)
            if requested_by is not None:  # nothing left to cancel
                host.push(requested_by, Cancelled(job_id=job_id, task_ids=[]))
            return
        if requested_by is not None:
            host.subscribers[job_id].add(requested_by)
        await host.apply(
            JobCancelRequested(
                job_id=job_id, now=time.monotonic(), stimulus_id=host.stimulus("cancel")
            )
        )

    async def job_cancelled(self, command: JobCancelled) -> None:
        host = self.host
        try:
            await host.store.cancel_job(command.job_id, time.time())
        except StoreError as exc:
            host.store_failed(exc)
        message = Cancelled(job_id=command.job_id, task_ids=list(command.task_ids))
        for client in host.subscribers.pop(command.job_id, ()):
            host.push(client, message)

    def released(self, task_ids: Sequence[int], reasons: Sequence[tuple[str, ...]]) -> None:
        pass  # they stay queued here: there is nobody else to run them

    def executed(self) -> None:
        pass

    async def write(self, outcomes: list[Outcome]) -> Written | None:
        """None when the store failed: nothing is reported, and after a restart these
        tasks run again."""
        host = self.host
        try:
            recorded = await host.store.add_outcomes(outcomes)
        except StoreError as exc:
            host.store_failed(exc)
            return None
        host.store_recovered()
        return recorded, []

    def told(self, outcomes: list[ResultRecord | FailureRecord], written: Written) -> None:
        """Push the new outcomes to the job's clients; say which jobs they finished."""
        host = self.host
        jobs = host.scheduler.jobs
        finished: set[int] = set()
        for outcome, new in zip(outcomes, written[0], strict=True):
            if not new:
                continue
            for client in host.subscribers.get(outcome.job_id, ()):
                host.push(client, outcome)
            if jobs[outcome.job_id].finished:
                finished.add(outcome.job_id)
        for job_id in finished:
            counts = jobs[job_id].counts
            host.job_finished(job_id, counts[TaskState.DONE], counts[TaskState.FAILED])

    def forgot(self, job: Job, info: JobInfo | None) -> None:
        """Kept a little longer, for a session's next submit; its followers are done."""
        if info is not None and not job.cancelled:
            ended = self._ended
            ended[job.job_id] = (time.monotonic(), _summary(job, info))
            if len(ended) > ENDED_KEPT:
                ended.popitem(last=False)
        self.host.subscribers.pop(job.job_id, None)


def _summary(job: Job, info: JobInfo) -> JobSummary:
    """A job the scheduler let go of (every task final, stored and told), as the store
    would summarise it."""
    counts = job.counts
    return JobSummary(
        info=info,
        state=JobState.FINISHED,
        total=job.total,
        done=counts[TaskState.DONE],
        failed=counts[TaskState.FAILED],
        cancelled=counts[TaskState.CANCELLED],
        finished_at=time.time(),
    )
