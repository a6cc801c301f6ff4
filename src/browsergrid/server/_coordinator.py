"""The coordinator: feeds the scheduler core, carries out its commands, and routes results.

Worker connections live in ``_workers.py``, client connections in ``_clients.py``; both
call ``Coordinator.apply`` with the events they see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from browsergrid._console import emit
from browsergrid._version import __version__
from browsergrid.config import ServeConfig
from browsergrid.core import (
    CancelTask,
    Command,
    Event,
    Job,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    JobRestored,
    JobsForgotten,
    OutcomesReported,
    RejectReport,
    ReplicaReported,
    RestoredTask,
    Scheduler,
    SendTask,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TaskSpec,
    TasksReleased,
    TasksSubmitted,
    TaskState,
    WorkerQuarantined,
)
from browsergrid.errors import SubmitError
from browsergrid.ops import OPS, agree_op
from browsergrid.protocol import (
    Accepted,
    Cancelled,
    FailureRecord,
    Limits,
    Replica,
    ResultRecord,
    SubmitOptions,
    WorkerConnection,
    check_arg_names,
    encode_cancel,
    encode_server_error,
    encode_task,
    encode_tasks,
)
from browsergrid.server._feed import Feed
from browsergrid.server._grid_link import GridLink
from browsergrid.server._grid_snapshot import grid_ops, snapshot
from browsergrid.server._guard import Connections, RateLimit
from browsergrid.server._push import Push
from browsergrid.server._state import (
    QUARANTINED,
    AcceptedSlot,
    ClientPeer,
    Pushed,
    WorkerPeer,
)
from browsergrid.server._stats import RecentResult, Stats
from browsergrid.server._store_pipeline import StorePipeline
from browsergrid.store import (
    JobInfo,
    JobState,
    JobSummary,
    Outcome,
    RedisStore,
    Store,
    StoreError,
    TaskRecord,
    WorkerRecord,
)

log = logging.getLogger("browsergrid.server")
events = logging.getLogger("browsergrid.server.events")
_json_encode = msgspec.json.Encoder().encode


GRID_WELCOME_IDS: Final = 2**52
"""In a grid, the first id of this coordinator's welcome tasks: they are its own and never
stored, and the ids the grid hands out (from 1, in Redis) never reach this far, while
JavaScript still counts exactly up to 2**53."""


class Coordinator:
    """One per ``browsergrid serve`` process: the scheduler, the store and who is connected."""

    def __init__(self, config: ServeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self.public_url: str | None = None  # where it listens, once it does (http(s)://...)
        self.grid: GridLink | None = None  # with a RedisStore: shared with other coordinators
        if isinstance(store, RedisStore):
            self.grid = GridLink(self, store, lambda: snapshot(self))
        self.scheduler = self._scheduler()
        self.limits = Limits(
            max_frame_bytes=config.max_frame_bytes,
            heartbeat_interval_s=config.heartbeat_interval_s,
            heartbeat_timeout_s=config.heartbeat_timeout_s,
        )
        self.workers: dict[int, WorkerPeer] = {}
        self.clients: dict[int, ClientPeer] = {}
        self.subscribers: defaultdict[int, set[ClientPeer]] = defaultdict(set)
        self.closing = False
        self.store_problem: str | None = None  # why the store failed, until it works again
        self.stats = Stats()
        self.started_at = time.time()
        self.job_infos: dict[int, JobInfo] = {}  # every job the scheduler knows
        self.feed = Feed(self)
        self.allowed_origins = frozenset(config.allow_origins)
        self.connections = Connections(config.max_connections_per_address)
        self._ids = itertools.count(1)
        self._stimuli = itertools.count(1)
        self.pushes = Push(self.clients, self.workers, drain_timeout_s=config.shutdown_timeout_s)
        self.pipeline = StorePipeline(self._write_outcomes, self._report_stored)
        self._ended: OrderedDict[int, tuple[float, JobSummary]] = OrderedDict()

    def _scheduler(self, next_job_id: int = 1, next_task_id: int = 1) -> Scheduler:
        return Scheduler(
            rng=random.Random(self.seed).random,
            welcome=self.config.welcome,
            lease_timeout_s=self.config.lease_timeout_s,
            op_lease_timeouts={name: op.lease_timeout_s for name, op in OPS.items()},
            max_attempts=self.config.max_attempts,
            buffer_s=self.config.work_buffer_s,
            next_job_id=next_job_id,
            next_task_id=next_task_id,
            agree=agree_op,
        )

    async def start(self) -> None:
        """Open the store and take up the jobs a previous run left unfinished; raises
        StoreError when the store cannot be used."""
        await self.store.open()
        emit(
            log,
            "scheduler_seeded",
            f"spot checks are drawn with seed {self.seed} (serve --seed {self.seed} draws "
            "them again)",
            seed=self.seed,
        )
        if self.grid is not None:  # the shared queue holds what is unfinished
            self.scheduler = self._scheduler(next_task_id=GRID_WELCOME_IDS)
            await self.grid.start()
            return
        job_id, task_id = await self.store.next_ids()
        self.scheduler = self._scheduler(job_id, task_id)
        await self.restore()

    async def stop(self) -> None:
        """Finish the stores and pushes in progress, leave the grid, then close the store."""
        await self.drain()
        if self.grid is not None:
            await self.grid.stop()
        await self.store.close()

    def local_job(self, job_id: int) -> Job | None:
        """The job as this coordinator's scheduler runs it, with live counts; None when it
        does not, or when it runs only a share of it (in a grid: ask the store)."""
        return None if self.grid is not None else self.scheduler.jobs.get(job_id)

    async def prune(self) -> None:
        """Remove finished jobs older than the retention period (--retain), and the history
        of workers not seen for as long (but connected and quarantined ones)."""
        cutoff = time.time() - self.config.retain_s
        connected = [p.worker_key for p in self.workers.values() if p.worker_key]
        try:
            removed = await self.store.prune(cutoff)
            forgotten = await self.store.prune_workers(cutoff, keep=connected)
        except StoreError as exc:
            self.store_failed(exc)
            return
        if removed:
            emit(log, "pruned", f"removed {removed} job(s) past retention", jobs=removed)
        if forgotten:
            emit(
                log,
                "pruned_workers",
                f"removed the history of {forgotten} worker(s) not seen within retention",
                workers=forgotten,
            )

    @property
    def healthy(self) -> bool:
        """False after a store write failed, until one succeeds again. Work that cannot be
        stored is refused, never acknowledged."""
        return self.store_problem is None

    def store_failed(self, exc: StoreError) -> None:
        self.stats.errors["store"] += 1
        if self.store_problem is None:
            emit(
                log,
                "store_failed",
                f"the store failed: work that cannot be stored is refused: {exc}",
                level=logging.ERROR,
                error=str(exc),
            )
        self.store_problem = str(exc)

    async def remember_workers(self, peers: list[WorkerPeer] | None = None) -> None:
        """Write the history of ``peers`` to the store. Without ``peers`` (the periodic
        write): that of each connected worker whose history changed since it was last
        stored (tasks, failures, compute time, standing, agent, identity), none when all are
        idle; that of every connected worker while closing.

        So the stored ``last_seen`` of a connected worker is the time of its last write
        (the first periodic write after its hello, or the first after its last change): it
        is not moved on as time passes, only when the worker leaves (``serve_worker``
        writes it then) and at shutdown. The dashboard builds connected workers' history
        rows live; ``/api/workers/history`` marks them ``connected``, seen now."""
        chosen = list(self.workers.values()) if peers is None else peers
        changed_only = peers is None and not self.closing
        records: list[WorkerRecord] = []
        written: list[tuple[WorkerPeer, tuple[Any, ...]]] = []
        for peer in chosen:
            if peer.worker_key is None:
                continue  # no lasting identity: no history
            history = peer.history()
            if changed_only and history == peer.written:
                continue
            record = peer.record()
            if record is not None:
                records.append(record)
                written.append((peer, history))
        if not records:
            return
        try:
            await self.store.record_workers(records)
        except StoreError as exc:
            self.store_failed(exc)  # still unwritten: the next periodic write tries again
        else:
            for peer, history in written:
                peer.written = history
            self.store_recovered()

    def store_recovered(self) -> None:
        if self.store_problem is not None:
            emit(log, "store_recovered", "the store works again; accepting work")
            self.store_problem = None

    async def restore(self) -> None:
        """After a restart: queue again every unfinished task of every running job."""
        jobs, tasks = await self.store.unfinished()
        by_job: defaultdict[int, list[TaskRecord]] = defaultdict(list)
        for task in tasks:
            by_job[task.job_id].append(task)
        restored = 0
        for info in jobs:
            summary = await self.store.job(info.job_id)
            if summary is None:
                continue
            pending = by_job.get(info.job_id, [])
            await self.apply(self._restored(summary, pending))
            restored += len(pending)
        if jobs:
            emit(
                log,
                "restored",
                f"restored {len(jobs)} running job(s) with {restored} unfinished task(s)",
                jobs=len(jobs),
                tasks=restored,
            )

    def job_options(self, info: JobInfo) -> JobOptions:
        """The scheduler's options for a stored job."""
        return JobOptions(
            name=info.name,
            priority=info.priority,
            lease_timeout_s=info.lease_timeout,
            max_attempts=info.max_attempts,
            redundancy=info.redundancy,
            max_replicas=info.max_replicas,
            adaptive=info.adaptive,
        )

    def _restored(self, summary: JobSummary, pending: list[TaskRecord]) -> JobRestored:
        """The event that takes up a stored job again, with its unfinished tasks."""
        info = summary.info
        self.job_infos[info.job_id] = info
        return JobRestored(
            job_id=info.job_id,
            options=self.job_options(info),
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
            stimulus_id=self.stimulus("restore"),
        )

    def next_id(self) -> int:
        """A fresh connection id (workers and clients share the sequence)."""
        return next(self._ids)

    def rate_limit(self) -> RateLimit:
        """A fresh per-connection message budget (``--max-messages-per-s``, bursts of twice
        that)."""
        rate = self.config.max_messages_per_s
        return RateLimit(rate, 2 * rate, time.monotonic())

    def worker_rules(self, worker_id: int) -> WorkerConnection:
        """The rules of a new worker connection: this coordinator's welcome and limits,
        ``--max-messages-per-s`` (bursts of twice that)."""
        rate = self.config.max_messages_per_s
        return WorkerConnection(
            worker_id,
            server=f"browsergrid {__version__}",
            limits=self.limits,
            rate=rate,
            burst=2 * rate,
            now=time.monotonic(),
        )

    def stimulus(self, kind: str) -> str:
        return f"{kind}-{next(self._stimuli)}"

    # --- submissions (from the client WebSocket and the HTTP API) ----------------------

    async def submit(
        self,
        op: str,
        args: Sequence[dict[str, Any]],
        options: SubmitOptions,
        *,
        client: ClientPeer | None = None,
        job_key: str | None = None,
        ref: int = 0,
        submitted_by: str = "",
        client_id: str | None = None,
    ) -> TasksAccepted:
        """Queue ``op`` once per ``args`` item; in ``client``'s job ``job_key`` when given,
        and ``client`` is told ``accepted`` (with ``ref``) before any of their results.

        Raises SubmitError (``unknown_op``, ``bad_args``, ``job_cancelled``) and queues
        nothing when any task is refused.
        """
        if not args:
            raise SubmitError("bad_args", "a job needs at least one task")
        if op not in self.known_ops():
            raise SubmitError(
                "unknown_op", f"no worker runs op {op!r}; known ops: {sorted(self.known_ops())}"
            )
        limit = self.config.max_args_bytes
        for index, item in enumerate(args):
            try:
                check_arg_names(item)
            except ValueError as exc:
                raise SubmitError("bad_args", str(exc)) from None
            if len(_json_encode(item)) > limit:
                raise SubmitError(
                    "args_too_large",
                    f"the arguments of task {index} of this submit are over {limit} bytes "
                    "as JSON (--max-args-bytes)",
                )
        job_id = client.job_keys.get(job_key) if client and job_key else None
        if job_id is not None and self.grid is None and job_id not in self.scheduler.jobs:
            job_id = await self._take_up(job_id)  # finished and forgotten: from the store
        client_key = f"{client_id}/{job_key}" if client_id and job_key else None
        if job_id is None and client_key is not None:  # a client back after a reconnect
            job_id = await self._job_for(client_key)
        held = await self._task_count(job_id)
        try:
            job_options = JobOptions(
                name=options.name,
                priority=options.priority,
                lease_timeout_s=options.lease_timeout,
                max_attempts=options.max_attempts,
                redundancy=options.redundancy,
                max_replicas=options.max_replicas,
                adaptive=options.adaptive,
            )
        except ValueError as exc:
            raise SubmitError("bad_options", str(exc)) from None
        if held + len(args) > self.config.max_tasks_per_job:
            raise SubmitError(
                "too_many_tasks",
                f"a job holds at most {self.config.max_tasks_per_job} tasks "
                f"(--max-tasks-per-job); this one would hold {held + len(args)}",
            )
        if self.grid is not None:
            return await self._submit_shared(
                op,
                args,
                options,
                job_id=job_id,
                first_index=held,
                client=client,
                job_key=job_key,
                ref=ref,
                submitted_by=submitted_by,
                client_key=client_key,
            )
        event = TasksSubmitted(
            job_id=job_id,
            tasks=[TaskSpec(op=op, args=item) for item in args],
            options=job_options,
            now=time.monotonic(),
            stimulus_id=self.stimulus("submit"),
        )
        commands = self.scheduler.handle(event)
        ack = next(c for c in commands if isinstance(c, TasksAccepted))
        records = [
            TaskRecord(
                task_id=ack.first_task_id + offset,
                job_id=ack.job_id,
                index=ack.first_index + offset,
                op=op,
                args=item,
            )
            for offset, item in enumerate(args)
        ]
        # The tasks go out to workers before the store writes them, so that a small task
        # runs while its insert commits; no outcome is written before the insert is
        # (``StorePipeline.inserting``). The client follows the job at once, but what it is
        # sent stops at ``slot`` until the tasks are stored and "accepted" can go first.
        slot = self._accepted_slot(ack, client, job_key, client_key)
        unstored: StoreError | ValueError | None = None
        with self.pipeline.inserting():
            try:
                await self._execute(commands, wait_stored=False)
                await asyncio.sleep(0)  # one pass of the loop: the task frames leave now
                if job_id is None:
                    info = self._job_info(ack.job_id, op, options, submitted_by, client_key)
                    self.job_infos[ack.job_id] = info
                    await self.store.add_job(info, records)
                else:
                    await self.store.add_tasks(records)
            except (StoreError, ValueError) as exc:
                unstored = exc
        if unstored is not None:
            if slot is not None and client is not None:
                client.outbox.remove(slot)
            if isinstance(unstored, StoreError):
                self.store_failed(unstored)
            await self.apply(
                JobCancelRequested(
                    job_id=ack.job_id, now=time.monotonic(), stimulus_id=self.stimulus("unstored")
                )
            )
            code = "store_unavailable" if isinstance(unstored, StoreError) else "conflict"
            raise SubmitError(code, f"the tasks could not be stored: {unstored}") from None
        self.store_recovered()
        self._accepted(ack, slot, ref, op, options, new=job_id is None)
        return ack

    async def _take_up(self, job_id: int) -> int:
        """A job that ended and left memory (forgotten, or finished before a restart):
        take it up again (exact counts, the next index) so tasks can be added; from the
        store unless it ended moments ago. SubmitError when it was cancelled or is gone."""
        kept = self._ended.pop(job_id, None)
        if kept is not None and time.monotonic() - kept[0] < _ENDED_KEPT_S:
            summary: JobSummary | None = kept[1]
        else:
            try:
                summary = await self.store.job(job_id)
            except StoreError as exc:
                self.store_failed(exc)
                raise SubmitError("store_unavailable", str(exc)) from None
        if job_id in self.scheduler.jobs:  # taken up meanwhile
            return job_id
        if summary is None:
            raise SubmitError("bad_args", f"job {job_id} no longer exists")
        if summary.state is JobState.CANCELLED:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        await self.apply(self._restored(summary, []))
        return job_id

    async def _job_for(self, client_key: str) -> int | None:
        """The job a client created under ``client_key`` before it reconnected; one that
        finished before a restart is taken up again, so that tasks can be added to it."""
        try:
            job_id = await self.store.job_for(client_key)
        except StoreError as exc:
            self.store_failed(exc)
            raise SubmitError("store_unavailable", str(exc)) from None
        if job_id is None or job_id in self.scheduler.jobs:
            return job_id
        if self.grid is not None:  # the job is in the shared queue, not taken up here
            return job_id
        return await self._take_up(job_id)

    async def watch(self, client: ClientPeer, job_ids: list[int], task_ids: list[int]) -> None:
        """A client back after a reconnect: push what it missed, then follow its jobs."""
        for job_id in job_ids:
            if self.grid is not None:
                self.subscribers[job_id].add(client)
                self.grid.follow(job_id)  # pushes a cancel that happened meanwhile too
                continue
            job = self.scheduler.jobs.get(job_id)
            if job is not None and not job.cancelled:
                self.subscribers[job_id].add(client)
        for start in range(0, len(task_ids), 1000):
            try:
                missed = await self.store.outcomes_of(task_ids[start : start + 1000])
            except StoreError as exc:
                self.store_failed(exc)
                return
            for outcome in missed:
                self.push(client, outcome)

    async def cancel(self, job_id: int, requested_by: ClientPeer | None = None) -> None:
        """Cancel the unfinished tasks of ``job_id``; KeyError if there is no such job."""
        if self.grid is not None:
            await self._cancel_shared(job_id, requested_by, self.grid)
            return
        if job_id not in self.scheduler.jobs:  # ended and forgotten, or no such job
            try:
                summary = await self.store.job(job_id)
            except StoreError as exc:
                self.store_failed(exc)
                raise
            if summary is None:
                raise KeyError(job_id)
            if requested_by is not None:  # nothing left to cancel
                self.push(requested_by, Cancelled(job_id=job_id, task_ids=[]))
            return
        if requested_by is not None:
            self.subscribers[job_id].add(requested_by)
        await self.apply(
            JobCancelRequested(
                job_id=job_id, now=time.monotonic(), stimulus_id=self.stimulus("cancel")
            )
        )

    def known_ops(self) -> set[str]:
        """Built-in ops and every op a connected worker announced (in a grid: to any
        coordinator)."""
        ops = set(OPS)
        for worker in self.scheduler.workers.values():
            ops.update(worker.ops)
        if self.grid is not None:
            ops.update(grid_ops(self.grid.members.values()))
        return ops

    async def _task_count(self, job_id: int | None) -> int:
        """How many tasks job ``job_id`` holds (0 for a new job); SubmitError if it was
        cancelled."""
        if job_id is None:
            return 0
        if self.grid is None:
            job = self.scheduler.jobs[job_id]
            cancelled, total = job.cancelled, job.total
        else:
            try:
                summary = await self.store.job(job_id)
            except StoreError as exc:
                self.store_failed(exc)
                raise SubmitError("store_unavailable", str(exc)) from None
            if summary is None:
                raise SubmitError("bad_args", f"job {job_id} no longer exists")
            cancelled, total = summary.state is JobState.CANCELLED, summary.total
        if cancelled:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        return total

    async def _submit_shared(
        self,
        op: str,
        args: Sequence[dict[str, Any]],
        options: SubmitOptions,
        *,
        job_id: int | None,
        first_index: int,
        client: ClientPeer | None,
        job_key: str | None,
        ref: int,
        submitted_by: str,
        client_key: str | None,
    ) -> TasksAccepted:
        """``submit`` in a grid: store the tasks, which queues them for every coordinator."""
        assert self.grid is not None
        store = self.grid.store
        new = job_id is None
        try:
            new_job, first_task_id = await store.reserve_ids(int(new), len(args))
        except StoreError as exc:
            self.store_failed(exc)
            raise SubmitError(
                "store_unavailable", f"the tasks could not be stored: {exc}"
            ) from None
        job_id = new_job if job_id is None else job_id
        ack = TasksAccepted(
            job_id=job_id,
            first_task_id=first_task_id,
            first_index=first_index,
            count=len(args),
            stimulus_id=self.stimulus("submit"),
        )
        records = [
            TaskRecord(
                task_id=first_task_id + offset,
                job_id=job_id,
                index=first_index + offset,
                op=op,
                args=item,
            )
            for offset, item in enumerate(args)
        ]
        slot = self._accepted_slot(ack, client, job_key, client_key)
        try:
            if new:
                info = self._job_info(job_id, op, options, submitted_by, client_key)
                self.job_infos[job_id] = info
                await store.add_job(info, records)
            else:
                await store.add_tasks(records)
        except (StoreError, ValueError) as exc:
            if slot is not None and client is not None:
                client.outbox.remove(slot)
            if isinstance(exc, StoreError):
                self.store_failed(exc)
            code = "store_unavailable" if isinstance(exc, StoreError) else "conflict"
            raise SubmitError(code, f"the tasks could not be stored: {exc}") from None
        self.store_recovered()
        self._accepted(ack, slot, ref, op, options, new=new)
        if client is not None:
            self.grid.follow(job_id)  # now that the store has the job
        self.grid.wake()
        return ack

    def _job_info(
        self,
        job_id: int,
        op: str,
        options: SubmitOptions,
        submitted_by: str,
        client_key: str | None,
    ) -> JobInfo:
        return JobInfo(
            job_id=job_id,
            name=options.name,
            op=op,
            priority=options.priority,
            created_at=time.time(),
            submitted_by=submitted_by,
            lease_timeout=options.lease_timeout,
            max_attempts=options.max_attempts,
            client_key=client_key,
            redundancy=options.redundancy,
            max_replicas=options.max_replicas,
            adaptive=options.adaptive,
        )

    def _accepted(
        self,
        ack: TasksAccepted,
        slot: AcceptedSlot | None,
        ref: int,
        op: str,
        options: SubmitOptions,
        *,
        new: bool,
    ) -> None:
        """The tasks are stored: the client may hear "accepted", then their outcomes."""
        if slot is not None:
            slot.message = Accepted(
                ref=ref, job_id=ack.job_id, first_task_id=ack.first_task_id, count=ack.count
            )
            self.pushes.schedule()
        if new:
            emit(
                events,
                "job_submitted",
                f"job {ack.job_id} submitted: {ack.count} x {op}"
                + (f" ({options.name})" if options.name else ""),
                job_id=ack.job_id,
                op=op,
                count=ack.count,
                name=options.name,
            )

    async def _cancel_shared(
        self, job_id: int, requested_by: ClientPeer | None, grid: GridLink
    ) -> None:
        """``cancel`` in a grid: cancel it in the store, which tells every coordinator."""
        try:
            summary = await self.store.job(job_id)
            if summary is None:
                raise KeyError(job_id)
            if requested_by is not None:
                self.subscribers[job_id].add(requested_by)
                grid.follow(job_id)  # pushes "cancelled" once the store has it
            await self.store.cancel_job(job_id, time.time())
        except StoreError as exc:
            self.store_failed(exc)
            raise

    # --- the core ----------------------------------------------------------------------

    async def apply(self, *evs: Event, wait_stored: bool = True) -> None:
        """Feed events to the scheduler and carry out what it asks, in order.

        Outcomes are always stored before anyone hears of them. With ``wait_stored`` False
        (a worker's results) this returns once they are on their way to the store, so the
        worker's next frame is read while the store commits; the stores and what follows
        them (acks, pushes to clients) still happen in the order of the calls."""
        commands: list[Command] = []
        for event in evs:
            commands.extend(self.scheduler.handle(event))
        await self._execute(commands, wait_stored=wait_stored)

    async def _execute(self, commands: list[Command], *, wait_stored: bool = True) -> None:
        """Carry out commands: tasks for one worker go out in one frame; outcomes are stored
        before anyone hears of them, then pushed to clients in batches."""
        outcomes: list[ResultRecord | FailureRecord] = []
        batches: dict[int, list[SendTask]] = {}
        rejected: dict[int, list[RejectReport]] = {}
        reported: list[int] = []  # cancelled tasks, stored and told
        for command in commands:
            match command:
                case SendTask():
                    batches.setdefault(command.worker_id, []).append(command)
                    peer = self.workers.get(command.worker_id)
                    if peer is not None:
                        peer.leases[command.task_id] = time.monotonic()
                case TaskDone():
                    self._report_done(command, outcomes)
                case TaskFailed():
                    self._report_failed(command, outcomes)
                case TasksAccepted():
                    pass  # submit() acknowledges once the tasks are stored
                case CancelTask():
                    self._send_cancel(command)
                case JobCancelled():
                    await self._job_cancelled(command)
                    reported.extend(command.task_ids)
                case JobsForgotten():
                    self._forgot(command)
                case RejectReport():
                    rejected.setdefault(command.worker_id, []).append(command)
                case ReplicaReported():
                    self._report_replica(command)
                case WorkerQuarantined():
                    await self._quarantined(command)
                case TasksReleased():
                    if self.grid is not None:
                        self.grid.hand_back(command.task_ids, command.reasons)
        if reported:
            self._reported(reported)
        for worker_id, reports in rejected.items():
            self._reject(worker_id, reports)
        for worker_id, batch in batches.items():
            self._send_tasks(worker_id, batch)
        if outcomes:
            await self.pipeline.store(outcomes, wait=wait_stored)
        if self.grid is not None and self.scheduler.appetite()[0] > 0:
            self.grid.wake()

    async def _write_outcomes(
        self, outcomes: list[Outcome]
    ) -> tuple[list[bool], list[tuple[int, int, int]]] | None:
        """Store ``outcomes``: whether each is new, and the jobs they finished (in a grid);
        None when the store failed (then nothing is reported, and after a restart these
        tasks run again)."""
        finished: list[tuple[int, int, int]] = []
        try:
            if self.grid is not None:
                recorded, finished = await self.grid.store.add_outcomes_finishing(outcomes)
            else:
                recorded = await self.store.add_outcomes(outcomes)
        except StoreError as exc:
            self.store_failed(exc)
            if self.grid is not None:  # another coordinator may store them
                self.grid.hand_back(o.task_id for o in outcomes)
                self._reported([o.task_id for o in outcomes])
            return None
        self.store_recovered()
        return recorded, finished

    async def _report_stored(
        self,
        outcomes: list[Outcome],
        written: tuple[list[bool], list[tuple[int, int, int]]] | None,
    ) -> None:
        """Once stored: ack the workers, and tell the clients (or the grid)."""
        if written is None:
            return
        recorded, finished = written
        self.pushes.acknowledge(outcomes)
        if self.grid is not None:  # clients follow the store's log instead
            self.grid.finished(o.task_id for o in outcomes)
            for job_id, done, failed in finished:
                self._job_finished(job_id, done, failed)
        else:
            self._route([o for o, new in zip(outcomes, recorded, strict=True) if new])
        await self._save_judged_absentees(outcomes)
        self._reported([o.task_id for o in outcomes])

    def _reported(self, task_ids: list[int]) -> None:
        """These outcomes are stored and told: the scheduler may forget them."""
        event = OutcomesReported(
            task_ids=task_ids, now=time.monotonic(), stimulus_id=self.stimulus("reported")
        )
        for command in self.scheduler.handle(event):
            if isinstance(command, JobsForgotten):
                self._forgot(command)

    def _forgot(self, command: JobsForgotten) -> None:
        """Jobs the scheduler let go of: so does the coordinator (the store has them), but
        for a few recent ones, kept to be taken up again without reading the store (a
        session's next ``submit``)."""
        self.feed.forgotten(command.jobs)
        ended = self._ended
        for job in command.jobs:
            info = self.job_infos.pop(job.job_id, None)
            if info is not None and not job.cancelled and self.grid is None:
                ended[job.job_id] = (time.monotonic(), _summary(job, info))
                if len(ended) > _ENDED_KEPT:
                    ended.popitem(last=False)
            for client in self.clients.values():
                client.forget(job.job_id)
            if self.grid is None:
                self.subscribers.pop(job.job_id, None)
            for state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED):
                self.stats.ended[state] += job.counts[state]

    async def _save_judged_absentees(self, outcomes: list[ResultRecord | FailureRecord]) -> None:
        """A quorum judged workers that have left since they sent their replica: store
        their new standing now (a connected worker's is stored with its history)."""
        judged = {
            r.worker_key
            for o in outcomes
            if isinstance(o, ResultRecord) and len(o.replicas) > 1
            for r in o.replicas
            if r.worker_key is not None
        }
        if judged:
            judged -= {peer.worker_key for peer in self.workers.values()}
            for key in sorted(judged):
                await self._save_standing(key, [])

    def _accepted_slot(
        self,
        ack: TasksAccepted,
        client: ClientPeer | None,
        job_key: str | None,
        client_key: str | None,
    ) -> AcceptedSlot | None:
        """Let ``client`` follow the job now; its outbox waits at the returned slot until the
        tasks are stored (the slot then becomes their "accepted")."""
        if client is None:
            return None
        if job_key:  # with a client_id the store finds it again: see ClientPeer.forget
            client.remember(job_key, ack.job_id, findable=client_key is not None)
        self.subscribers[ack.job_id].add(client)
        slot = AcceptedSlot()
        client.outbox.append(slot)
        return slot

    def _send_tasks(self, worker_id: int, batch: list[SendTask]) -> None:
        worker = self.workers.get(worker_id)
        if worker is None:
            return  # it left; its WorkerLeft event takes the leases back
        worker.rules.tasks_sent(len(batch))  # each may come back in a frame of its own
        if worker.introduced and len(batch) > 1:
            worker.send(encode_tasks([(c.task_id, c.op, c.args) for c in batch]))
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

    def _credit(self, worker: WorkerPeer | None, task_id: int, duration_ms: float) -> float | None:
        """Count a result's work for ``worker``; returns its lease time in ms, if known."""
        if worker is None:
            return None
        worker.tasks_done += 1
        worker.compute_ms += duration_ms
        started = worker.leases.pop(task_id, None)
        if started is None:
            return None
        lease_s = time.monotonic() - started
        self.stats.latency.observe(lease_s)
        return round(lease_s * 1000, 3)

    def _report_replica(self, command: ReplicaReported) -> None:
        worker = self.workers.get(command.worker_id)
        self._credit(worker, command.task_id, command.duration_ms)
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

    async def _quarantined(self, command: WorkerQuarantined) -> None:
        self.stats.errors["quarantined"] += 1
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
        peers = [self.workers[i] for i in command.worker_ids if i in self.workers]
        for peer in peers:
            if peer.introduced:
                peer.send(encode_server_error("quarantined", QUARANTINED))
        if command.worker_key is not None:
            await self._save_standing(command.worker_key, peers)

    async def _save_standing(self, key: str, peers: list[WorkerPeer]) -> None:
        """Store identity ``key``'s reputation now: with a connected worker's history, or
        into the history the store has (its workers may all have left)."""
        if any(peer.worker_key == key for peer in peers):
            await self.remember_workers(peers)
            return
        standing = self.scheduler.standings.get(key)
        try:
            known = await self.store.worker(key)
            if known is not None and standing is not None:
                updated = msgspec.structs.replace(known, **dataclasses.asdict(standing))
                await self.store.record_workers([updated])
        except StoreError as exc:
            self.store_failed(exc)

    def _log_result(self, command: TaskDone, agent: str | None) -> None:
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

    def _report_done(self, command: TaskDone, outcomes: list[ResultRecord | FailureRecord]) -> None:
        worker = self.workers.get(command.worker_id)
        agent = worker.agent if worker else None
        lease_ms = None  # a replicated task's lease times were counted as its replicas came
        if not command.replicas:
            lease_ms = self._credit(worker, command.task_id, command.duration_ms)
        now = time.time()
        stats = self.stats
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
            self._log_result(command, agent)
        if command.job_id is None:
            return
        outcomes.append(
            ResultRecord(
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
        )

    def _report_failed(
        self, command: TaskFailed, outcomes: list[ResultRecord | FailureRecord]
    ) -> None:
        self.stats.failed += 1
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
        if command.job_id is None:
            return
        outcomes.append(
            FailureRecord(
                task_id=command.task_id,
                job_id=command.job_id,
                index=command.index,
                reasons=list(command.reasons),
                finished_at=time.time(),
            )
        )

    def _send_cancel(self, command: CancelTask) -> None:
        worker = self.workers.get(command.worker_id)
        if worker is not None:
            worker.leases.pop(command.task_id, None)
        if worker is not None and worker.introduced:  # exercise-style pages know no cancel
            worker.send(encode_cancel(command.task_id))

    async def _job_cancelled(self, command: JobCancelled) -> None:
        emit(
            events,
            "job_cancelled",
            f"job {command.job_id} cancelled: {len(command.task_ids)} task(s) will not run",
            job_id=command.job_id,
            cancelled=len(command.task_ids),
            stimulus_id=command.stimulus_id,
        )
        if self.grid is not None:  # cancelled in the store already; followers tell clients
            self.grid.finished(command.task_ids)
            return
        try:
            await self.store.cancel_job(command.job_id, time.time())
        except StoreError as exc:
            self.store_failed(exc)
        message = Cancelled(job_id=command.job_id, task_ids=list(command.task_ids))
        for client in self.subscribers.pop(command.job_id, ()):
            self.push(client, message)

    def _reject(self, worker_id: int, reports: list[RejectReport]) -> None:
        """Reports the scheduler could not use, from one worker's frame: one log line and
        one ``unknown_task`` error frame for them all."""
        self.stats.errors["report_rejected"] += len(reports)
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
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.rules.reject([(r.task_id, r.reason) for r in reports])
            worker.answer()

    # --- pushing outcomes to clients --------------------------------------------------

    def _route(self, outcomes: list[ResultRecord | FailureRecord]) -> None:
        finished: set[int] = set()
        for outcome in outcomes:
            for client in self.subscribers.get(outcome.job_id, ()):
                self.push(client, outcome)
            if self.scheduler.jobs[outcome.job_id].finished:
                finished.add(outcome.job_id)
        for job_id in finished:
            counts = self.scheduler.jobs[job_id].counts
            self._job_finished(job_id, counts[TaskState.DONE], counts[TaskState.FAILED])

    def push(self, client: ClientPeer, message: Pushed) -> None:
        """Tell ``client`` ``message`` after what it was told before (see ``Push``)."""
        self.pushes.push(client, message)

    def _job_finished(self, job_id: int, done: int, failed: int) -> None:
        emit(
            events,
            "job_finished",
            f"job {job_id} finished: {done} done, {failed} failed",
            job_id=job_id,
            done=done,
            failed=failed,
        )

    def forget_client(self, client: ClientPeer) -> None:
        """The client disconnected: stop pushing to it (its jobs run on)."""
        self.clients.pop(client.client_id, None)
        for job_id, subscribers in list(self.subscribers.items()):
            subscribers.discard(client)
            if not subscribers:
                del self.subscribers[job_id]
                if self.grid is not None:
                    self.grid.unfollow(job_id)

    async def drain(self) -> None:
        """Wait for stores and pushes in progress (used at shutdown): what clients that
        still read were told leaves before this returns."""
        await self.pipeline.drain()
        await self.pushes.drain()


_ENDED_KEPT: Final = 256  # jobs that ended lately, kept to be taken up without a store read
_ENDED_KEPT_S: Final = 60.0  # ... for this long at most (the store is the truth)


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
