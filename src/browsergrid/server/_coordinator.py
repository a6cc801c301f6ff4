"""The coordinator: feeds the scheduler core, carries out its commands, and routes results.

Worker connections live in ``_workers.py``, client connections in ``_clients.py``; both
call ``Coordinator.apply`` with the events they see. Where jobs wait for workers (this
coordinator's own queue, or a grid's shared one in Redis) is its ``queue``, chosen once
from the store (``_job_queue.py``); what each command means for workers, the record and the
log is in ``_reports.py``; what a submit must be, in ``_submit.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from browsergrid._console import emit
from browsergrid._version import __version__
from browsergrid.config import ServeConfig
from browsergrid.core import (
    CancelTask,
    Command,
    DependenciesWanted,
    Event,
    Job,
    JobCancelled,
    JobsForgotten,
    OutcomesReported,
    RejectReport,
    ReplicaReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TasksReleased,
    TaskState,
    WorkerQuarantined,
)
from browsergrid.errors import SubmitError
from browsergrid.ops import OPS, PYTHON_OP, agree_op
from browsergrid.protocol import (
    MAX_RESOLVED_BYTES,
    Accepted,
    FailureRecord,
    Limits,
    ResultRecord,
    SubmitOptions,
    WorkerConnection,
    large_inputs,
    refs_in,
    resolve_futures,
    result_size,
    task_futures,
)
from browsergrid.server._blob_store import DiskBlobs
from browsergrid.server._dependencies import Dependencies
from browsergrid.server._feed import Feed
from browsergrid.server._grid_snapshot import snapshot
from browsergrid.server._guard import Connections, RateLimit
from browsergrid.server._job_queue import JobQueue, Written
from browsergrid.server._own_queue import OwnQueue
from browsergrid.server._push import Push
from browsergrid.server._reports import (
    log_job_cancelled,
    log_job_finished,
    quarantine,
    reject,
    report_done,
    report_failed,
    report_replica,
    send_cancel,
    send_tasks,
)
from browsergrid.server._shared_blobs import SharedBlobsError, shared_blobs
from browsergrid.server._shared_jobs import SharedJobs
from browsergrid.server._state import (
    AcceptedSlot,
    ClientPeer,
    GridMembership,
    Pushed,
    WorkerPeer,
)
from browsergrid.server._stats import Stats
from browsergrid.server._store_pipeline import StorePipeline
from browsergrid.server._submit import (
    check_options,
    check_tasks,
    job_info,
    log_submitted,
    ref_digests,
    sources_as_blobs,
    task_environment,
    task_records,
)
from browsergrid.server._worker_history import WorkerHistory
from browsergrid.store import (
    JobInfo,
    Outcome,
    RedisStore,
    Store,
    StoreError,
)

log = logging.getLogger("browsergrid.server")


def _any_task(task_id: int) -> bool:
    return True


class Coordinator:
    """One per ``browsergrid serve`` process: the scheduler, the store and who is connected."""

    def __init__(self, config: ServeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.seed = config.seed if config.seed is not None else secrets.randbits(32)
        self.public_url: str | None = None  # where it listens, once it does (http(s)://...)
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
        self.queue: JobQueue = (
            SharedJobs(self, store, lambda: snapshot(self))
            if isinstance(store, RedisStore)  # shared with the other coordinators on it
            else OwnQueue(self)
        )
        self.feed = Feed(self)
        self.allowed_origins = frozenset(config.allow_origins)
        self.connections = Connections(config.max_connections_per_address)
        self._ids = itertools.count(1)
        self._stimuli = itertools.count(1)
        self.pushes = Push(self.clients, self.workers, drain_timeout_s=config.shutdown_timeout_s)
        self.pipeline = StorePipeline(self._write_outcomes, self._report_stored)
        self.history = WorkerHistory(self)
        self._pruning: asyncio.Future[None] | None = None
        self.dependencies = Dependencies(
            store, lambda: self.scheduler, self.apply, self.stimulus, self.store_failed
        )
        # In a grid, blobs live in the shared store (--blob-store, else the grid's Redis),
        # so that a blob put through one coordinator is there for the workers of any other.
        self.blobs = DiskBlobs(
            config.data_dir / "blobs",
            max_size=config.max_blob_size,
            max_total=config.max_blob_bytes,
            shared=shared_blobs(config.blob_store, store, config.max_blob_bytes),
            grid=store if isinstance(store, RedisStore) else None,
        )
        self.blob_keys: dict[str, int] = {}  # a worker connection's blob_key -> its id
        # (worker id, task id) -> the blob that lease uploaded as its result: one upload per
        # lease, and the only blob its result may name
        self.lease_uploads: dict[tuple[int, int], str] = {}
        # job id -> the blobs of its large results, renewed when it finishes (a restart
        # renews every blob's time anyway)
        self.result_blobs: dict[int, set[str]] = {}

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
            inputs=large_inputs,
            environment=task_environment,
            depends=task_futures,
            resolve=resolve_futures,
            measure=result_size,
            max_resolved_bytes=MAX_RESOLVED_BYTES,
        )

    @property
    def grid(self) -> GridMembership | None:
        """This coordinator's place in a grid of coordinators (None: on its own)."""
        return self.queue.membership

    async def start(self) -> None:
        """Open the store and take up what is unfinished (jobs a previous run left, or the
        grid's queue); raises StoreError when the store cannot be used."""
        await self.store.open()
        try:
            await self.blobs.open()
        except SharedBlobsError as exc:
            raise StoreError(str(exc)) from None
        emit(
            log,
            "scheduler_seeded",
            f"spot checks are drawn with seed {self.seed} (serve --seed {self.seed} draws "
            "them again)",
            seed=self.seed,
        )
        self.scheduler = self._scheduler(*await self.queue.first_ids())
        await self.queue.start()
        self.dependencies.started()

    async def stop(self) -> None:
        """Finish the stores and pushes in progress, leave the grid, then close the store."""
        await self.dependencies.stop()  # first: a lookup would store more
        if self._pruning is not None:
            self._pruning.cancel()
            await asyncio.gather(self._pruning, return_exceptions=True)
        await self.drain()
        await self.blobs.flush_uses()
        await self.queue.stop()
        await self.store.close()

    def local_job(self, job_id: int) -> Job | None:
        """The job as this coordinator's scheduler runs it, with live counts; None when it
        does not, or when it runs only a share of it (in a grid: ask the store)."""
        return self.queue.local_job(job_id)

    def prune_soon(self) -> None:
        """Start ``prune`` in the background, unless one runs (it may take a while in a
        grid: it reads the grid's unfinished tasks and lists the shared blob store)."""
        if self._pruning is None or self._pruning.done():
            self._pruning = asyncio.ensure_future(self.prune())

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
        needed = self._needs_blob()
        blobs = self.blobs.prune(cutoff, needed)
        try:
            blobs += await self.blobs.prune_shared(cutoff, lambda: self._grid_needs(needed))
        except (SharedBlobsError, StoreError) as exc:
            log.warning("could not prune the shared blob store: %s", exc)
        if blobs:
            emit(
                log, "pruned_blobs", f"removed {blobs} blob(s) unused within retention", blobs=blobs
            )
        if forgotten:
            emit(
                log,
                "pruned_workers",
                f"removed the history of {forgotten} worker(s) not seen within retention",
                workers=forgotten,
            )

    async def _grid_needs(self, needed: Callable[[str], bool]) -> Callable[[str], bool]:
        """``needed``, and in a grid, whether an unfinished task of any coordinator refers
        to a blob (read from the store: the grid's queue holds tasks no one took yet)."""
        if self.grid is None:
            return needed
        _, unfinished = await self.store.unfinished()
        elsewhere: set[str] = set()
        named: set[int] = set()  # tasks whose results waiting tasks will take
        for task in unfinished:
            with contextlib.suppress(ValueError):
                elsewhere.update(ref.sha256 for ref in refs_in(task.args))
            named.update(task_futures(task.args))
        named_list = sorted(named)
        for start in range(0, len(named_list), 1000):
            for outcome in await self.store.outcomes_of(named_list[start : start + 1000]):
                if isinstance(outcome, ResultRecord):
                    with contextlib.suppress(ValueError):
                        elsewhere.update(ref.sha256 for ref in refs_in(outcome.result))
        return lambda digest: digest in elsewhere or needed(digest)

    def _needs_blob(self) -> Callable[[str], bool]:
        """Whether an unfinished task of this coordinator refers to a blob (the refs of
        every task it holds are gathered at the first question)."""
        needed: set[str] | None = None

        def needs(digest: str) -> bool:
            nonlocal needed
            if needed is None:
                needed = set()
                for task in self.scheduler.tasks.values():
                    with contextlib.suppress(ValueError):
                        needed.update(ref.sha256 for ref in refs_in(task.args))
                        if task.settled:  # results a waiting task holds until it runs
                            needed.update(r.sha256 for r in refs_in(list(task.settled.values())))
            return digest in needed

        return needs

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
        """Write the history of ``peers`` (or of the connected workers whose history
        changed) to the store: see ``WorkerHistory.remember``."""
        await self.history.remember(peers)

    def store_recovered(self) -> None:
        if self.store_problem is not None:
            emit(log, "store_recovered", "the store works again; accepting work")
            self.store_problem = None

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
            blob_key=secrets.token_urlsafe(18),
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

        Raises SubmitError (``unknown_op``, ``bad_args``, ``job_cancelled``, ...; see
        ``_submit.py``) and queues nothing when any task is refused.
        """
        refs: set[str] = set()
        # in a grid, ids come from Redis: the store holds a task back until the tasks it
        # depends on are final there (a future naming a later task waits for nothing)
        issued = self.scheduler.issued if self.grid is None else _any_task
        known = self.known_ops()
        try:
            tasks = check_tasks(op, args, known, self.config, self.blobs.size, refs, issued)
        except SubmitError as exc:
            if exc.code != "unknown_blob" or self.blobs.shared is None:
                raise
            try:  # a ref may name a blob another coordinator took: look, and check again
                await self.blobs.locate(ref_digests(args))
            except SharedBlobsError as failed:
                raise SubmitError("store_unavailable", str(failed)) from None
            refs.clear()
            tasks = check_tasks(op, args, known, self.config, self.blobs.size, refs, issued)
        if op == PYTHON_OP:
            refs |= await sources_as_blobs(tasks, self.blobs)
        self.blobs.touch(refs)  # now, before any pause: a prune meanwhile keeps them
        queue = self.queue
        job_id = client.job_keys.get(job_key) if client and job_key else None
        client_key = f"{client_id}/{job_key}" if client_id and job_key else None
        if job_id is None and client_key is not None:  # a client back after a reconnect
            try:
                job_id = await self.store.job_for(client_key)
            except StoreError as exc:
                self.store_failed(exc)
                raise SubmitError("store_unavailable", str(exc)) from None
        if job_id is not None:  # ended and forgotten: taken up again
            job_id = await queue.existing(job_id)
        held = await queue.task_count(job_id)
        job_options = check_options(options, held, len(tasks), self.config)
        try:
            ack, commands = await queue.accept(job_id, held, tasks, job_options)
        except StoreError as exc:
            self.store_failed(exc)
            raise SubmitError(
                "store_unavailable", f"the tasks could not be stored: {exc}"
            ) from None
        records = task_records(ack, tasks)
        # With its own queue, the tasks go out to workers before the store writes them, so
        # that a small task runs while its insert commits; no outcome is written before the
        # insert is (``StorePipeline.inserting``). The client follows the job at once, but
        # what it is sent stops at ``slot`` until the tasks are stored and "accepted" can go.
        slot = self._accepted_slot(ack, client, job_key, client_key)
        unstored: StoreError | ValueError | None = None
        with self.pipeline.inserting() if commands else contextlib.nullcontext():
            try:
                if commands:
                    await self._execute(commands, wait_stored=False)
                    await asyncio.sleep(0)  # one pass of the loop: the task frames leave now
                if job_id is None:
                    info = job_info(ack.job_id, op, options, submitted_by, client_key)
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
            await queue.unstored(ack)
            code = "store_unavailable" if isinstance(unstored, StoreError) else "conflict"
            raise SubmitError(code, f"the tasks could not be stored: {unstored}") from None
        self.store_recovered()
        if slot is not None:  # stored: the client may hear "accepted", then their outcomes
            slot.message = Accepted(
                ref=ref, job_id=ack.job_id, first_task_id=ack.first_task_id, count=ack.count
            )
            self.pushes.schedule()
        if job_id is None:
            log_submitted(ack, op, options)
        queue.submitted(ack.job_id, followed=client is not None)
        return ack

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

    async def watch(self, client: ClientPeer, job_ids: list[int], task_ids: list[int]) -> None:
        """A client back after a reconnect: push what it missed, then follow its jobs."""
        for job_id in job_ids:
            self.queue.watch(client, job_id)
        for start in range(0, len(task_ids), 1000):
            try:
                missed = await self.store.outcomes_of(task_ids[start : start + 1000])
            except StoreError as exc:
                self.store_failed(exc)
                return
            for outcome in missed:
                self.push(client, outcome)

    async def cancel(self, job_id: int, requested_by: ClientPeer | None = None) -> None:
        """Cancel the unfinished tasks of ``job_id``; KeyError if there is no such job,
        StoreError if the store cannot say."""
        await self.queue.cancel(job_id, requested_by)

    def known_ops(self) -> set[str]:
        """Built-in ops and every op a connected worker announced (in a grid: to any
        coordinator)."""
        ops = set(OPS)
        for worker in self.scheduler.workers.values():
            ops.update(worker.ops)
        ops.update(self.queue.known_ops())
        return ops

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

    async def _execute(
        self, commands: list[Command], *, wait_stored: bool = True, in_report: bool = False
    ) -> None:
        """Carry out commands: tasks for one worker go out in one frame; outcomes are stored
        before anyone hears of them, then pushed to clients in batches. ``in_report``: called
        from the report of a round of stored outcomes, which must not wait for the next."""
        outcomes: list[ResultRecord | FailureRecord] = []
        batches: dict[int, list[SendTask]] = {}
        rejected: dict[int, list[RejectReport]] = {}
        told: list[int] = []  # cancelled tasks, stored and told
        workers, stats = self.workers, self.stats
        for command in commands:
            match command:
                case SendTask():
                    batches.setdefault(command.worker_id, []).append(command)
                    peer = workers.get(command.worker_id)
                    if peer is not None:
                        peer.leases[command.task_id] = time.monotonic()
                case TaskDone():
                    record = report_done(command, workers.get(command.worker_id), stats)
                    if record is not None:
                        outcomes.append(record)
                case TaskFailed():
                    failure = report_failed(command, stats)
                    if failure is not None:
                        outcomes.append(failure)
                case TasksAccepted():
                    pass  # submit() acknowledges once the tasks are stored
                case CancelTask():
                    send_cancel(workers.get(command.worker_id), command)
                case JobCancelled():
                    log_job_cancelled(command)
                    await self.queue.job_cancelled(command)
                    told.extend(command.task_ids)
                case JobsForgotten():
                    self._forgot(command)
                case RejectReport():
                    rejected.setdefault(command.worker_id, []).append(command)
                case ReplicaReported():
                    report_replica(command, workers.get(command.worker_id), stats)
                case WorkerQuarantined():
                    await self._quarantined(command)
                case TasksReleased():
                    self.queue.released(command.task_ids, command.reasons)
                case DependenciesWanted():
                    self.dependencies.want(command.task_ids)
        if told:
            await self.reported(told, in_report=in_report)
        for worker_id, rejects in rejected.items():
            reject(worker_id, workers.get(worker_id), rejects, stats)
        for worker_id, batch in batches.items():
            send_tasks(worker_id, workers.get(worker_id), batch)
        if outcomes:
            await self.pipeline.store(outcomes, wait=wait_stored, in_report=in_report)
        self.queue.executed()

    async def _write_outcomes(self, outcomes: list[Outcome]) -> Written | None:
        """Store ``outcomes`` (see ``JobQueue.write``)."""
        return await self.queue.write(outcomes)

    async def _report_stored(self, outcomes: list[Outcome], written: Written | None) -> None:
        """Once stored: ack the workers, and tell the clients (or the grid)."""
        if written is None:
            return
        self.pushes.acknowledge(outcomes)
        self.queue.told(outcomes, written)
        await self.history.save_judged_absentees(outcomes)
        await self.reported([o.task_id for o in outcomes], in_report=True)

    async def reported(self, task_ids: list[int], *, in_report: bool = False) -> None:
        """These outcomes are stored and told: the scheduler may forget them, and the tasks
        that depend on them go on (or fail with them). ``in_report``: called from the
        report of a round of stored outcomes (what follows is not waited for)."""
        event = OutcomesReported(
            task_ids=task_ids, now=time.monotonic(), stimulus_id=self.stimulus("reported")
        )
        commands = self.scheduler.handle(event)
        if len(commands) == 1 and isinstance(commands[0], JobsForgotten):
            self._forgot(commands[0])  # the usual answer, at once
        elif commands:
            await self._execute(commands, wait_stored=False, in_report=in_report)

    def _forgot(self, command: JobsForgotten) -> None:
        """Jobs the scheduler let go of: so does the coordinator (the store has them)."""
        self.feed.forgotten(command.jobs)
        for job in command.jobs:
            self.queue.forgot(job, self.job_infos.pop(job.job_id, None))
            for client in self.clients.values():
                client.forget(job.job_id)
            for state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED):
                self.stats.ended[state] += job.counts[state]
            self.blobs.touch(self.result_blobs.pop(job.job_id, ()))  # cancelled: never finished

    def job_finished(self, job_id: int, done: int, failed: int) -> None:
        """Every task of the job is final and stored: its results are kept from now for
        the retention period, and so are the blobs that hold its large results."""
        log_job_finished(job_id, done, failed)
        self.blobs.touch(self.result_blobs.pop(job_id, ()))

    async def _quarantined(self, command: WorkerQuarantined) -> None:
        peers = [self.workers[i] for i in command.worker_ids if i in self.workers]
        quarantine(command, peers, self.stats)
        if command.worker_key is not None:
            await self.history.save_standing(command.worker_key, peers)

    # --- pushing outcomes to clients --------------------------------------------------

    def push(self, client: ClientPeer, message: Pushed) -> None:
        """Tell ``client`` ``message`` after what it was told before (see ``Push``)."""
        self.pushes.push(client, message)

    def forget_client(self, client: ClientPeer) -> None:
        """The client disconnected: stop pushing to it (its jobs run on)."""
        self.clients.pop(client.client_id, None)
        for job_id, subscribers in list(self.subscribers.items()):
            subscribers.discard(client)
            if not subscribers:
                del self.subscribers[job_id]
                self.queue.unwatched(job_id)

    async def drain(self) -> None:
        """Wait for stores and pushes in progress (used at shutdown): what clients that
        still read were told leaves before this returns."""
        await self.pipeline.drain()
        await self.pushes.drain()
