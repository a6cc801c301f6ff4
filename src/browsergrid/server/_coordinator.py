"""The coordinator: feeds the scheduler core, carries out its commands, and routes results.

Worker connections live in ``_workers.py``, client connections in ``_clients.py``; both
call ``Coordinator.apply`` with the events they see.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from browsergrid._console import emit
from browsergrid.config import ServeConfig
from browsergrid.core import (
    CancelTask,
    Command,
    Event,
    Job,
    JobCancelled,
    JobCancelRequested,
    JobOptions,
    RejectReport,
    Scheduler,
    SendTask,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TaskSpec,
    TasksSubmitted,
    TaskState,
)
from browsergrid.errors import SubmitError
from browsergrid.ops import OPS
from browsergrid.protocol import (
    Accepted,
    Cancelled,
    Done,
    FailureRecord,
    Limits,
    ResultRecord,
    SubmitOptions,
    check_arg_names,
    encode_cancel,
    encode_client_message,
    encode_server_error,
    encode_task,
    encode_tasks,
)
from browsergrid.store import JobInfo, Store

log = logging.getLogger("browsergrid.server")
events = logging.getLogger("browsergrid.server.events")


class Peer(Protocol):
    """A connection the coordinator can send text frames to."""

    async def send(self, frame: str) -> None: ...


@dataclass(eq=False)
class WorkerPeer:
    """One worker connection, as the coordinator sees it."""

    worker_id: int
    address: str
    path: str
    agent: str | None
    connected_at: float  # Unix time
    sender: Peer
    introduced: bool = False

    async def send(self, frame: str) -> None:
        await self.sender.send(frame)


_Pushed = Accepted | Cancelled | ResultRecord | FailureRecord


@dataclass(eq=False)
class ClientPeer:
    """One submitting client connection. What it is told goes through ``outbox`` in order
    (an ``accepted`` always before the results of its tasks), in batches."""

    client_id: int
    address: str
    sender: Peer
    job_keys: dict[str, int] = field(default_factory=dict)
    outbox: list[_Pushed] = field(default_factory=list)

    async def send(self, frame: str) -> None:
        await self.sender.send(frame)


class Coordinator:
    """One per ``browsergrid serve`` process: the scheduler, the store and who is connected."""

    def __init__(self, config: ServeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.scheduler = Scheduler(
            welcome=config.welcome,
            lease_timeout_s=config.lease_timeout_s,
            op_lease_timeouts={name: op.lease_timeout_s for name, op in OPS.items()},
            max_attempts=config.max_attempts,
            buffer_s=config.work_buffer_s,
        )
        self.limits = Limits(
            max_frame_bytes=config.max_frame_bytes,
            heartbeat_interval_s=config.heartbeat_interval_s,
            heartbeat_timeout_s=config.heartbeat_timeout_s,
        )
        self.workers: dict[int, WorkerPeer] = {}
        self.clients: dict[int, ClientPeer] = {}
        self.subscribers: defaultdict[int, set[ClientPeer]] = defaultdict(set)
        self.closing = False
        self._ids = itertools.count(1)
        self._stimuli = itertools.count(1)
        self._flush_scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()

    def next_id(self) -> int:
        """A fresh connection id (workers and clients share the sequence)."""
        return next(self._ids)

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
        for item in args:
            try:
                check_arg_names(item)
            except ValueError as exc:
                raise SubmitError("bad_args", str(exc)) from None
        job_id = client.job_keys.get(job_key) if client and job_key else None
        if job_id is not None and self.scheduler.jobs[job_id].cancelled:
            raise SubmitError("job_cancelled", f"job {job_id} was cancelled")
        event = TasksSubmitted(
            job_id=job_id,
            tasks=[TaskSpec(op=op, args=item) for item in args],
            options=JobOptions(
                name=options.name,
                priority=options.priority,
                lease_timeout_s=options.lease_timeout,
                max_attempts=options.max_attempts,
            ),
            now=time.monotonic(),
            stimulus_id=self.stimulus("submit"),
        )
        accepted: list[TasksAccepted] = []
        await self.apply(event, accepted=accepted, origin=(client, job_key, ref))
        ack = accepted[0]
        if job_id is None:
            await self.store.add_job(
                JobInfo(
                    job_id=ack.job_id,
                    name=options.name,
                    op=op,
                    priority=options.priority,
                    created_at=time.time(),
                    submitted_by=submitted_by,
                )
            )
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
        return ack

    async def cancel(self, job_id: int, requested_by: ClientPeer | None = None) -> None:
        """Cancel the unfinished tasks of ``job_id``; KeyError if there is no such job."""
        if job_id not in self.scheduler.jobs:
            raise KeyError(job_id)
        if requested_by is not None:
            self.subscribers[job_id].add(requested_by)
        await self.apply(
            JobCancelRequested(
                job_id=job_id, now=time.monotonic(), stimulus_id=self.stimulus("cancel")
            )
        )

    def known_ops(self) -> set[str]:
        """Built-in ops and every op a connected worker announced."""
        ops = set(OPS)
        for worker in self.scheduler.workers.values():
            ops.update(worker.ops)
        return ops

    # --- the core ----------------------------------------------------------------------

    async def apply(
        self,
        *evs: Event,
        accepted: list[TasksAccepted] | None = None,
        origin: tuple[ClientPeer | None, str | None, int] = (None, None, 0),
    ) -> None:
        """Feed events to the scheduler and carry out what it asks, in order.

        Tasks for one worker go out in one frame; what clients are told is pushed in
        batches once the event loop is free. A ``TasksAccepted`` is appended to
        ``accepted``, and the ``origin`` client (with its job key and ref) is told.
        """
        commands: list[Command] = []
        for event in evs:
            commands.extend(self.scheduler.handle(event))
        outcomes: list[ResultRecord | FailureRecord] = []
        batches: dict[int, list[SendTask]] = {}
        for command in commands:
            match command:
                case SendTask():
                    batches.setdefault(command.worker_id, []).append(command)
                case TaskDone():
                    self._report_done(command, outcomes)
                case TaskFailed():
                    self._report_failed(command, outcomes)
                case TasksAccepted():
                    self._accepted(command, *origin)
                    if accepted is not None:
                        accepted.append(command)
                case CancelTask():
                    await self._send_cancel(command)
                case JobCancelled():
                    await self._job_cancelled(command)
                case RejectReport():
                    await self._reject(command)
        if outcomes:
            await self.store.add_outcomes(outcomes)
            self._route(outcomes)
        for worker_id, batch in batches.items():
            await self._send_tasks(worker_id, batch)

    def _accepted(
        self, command: TasksAccepted, client: ClientPeer | None, job_key: str | None, ref: int
    ) -> None:
        if client is None:
            return
        if job_key:
            client.job_keys[job_key] = command.job_id
        self.subscribers[command.job_id].add(client)
        self._push(
            client,
            Accepted(
                ref=ref,
                job_id=command.job_id,
                first_task_id=command.first_task_id,
                count=command.count,
            ),
        )

    async def _send_tasks(self, worker_id: int, batch: list[SendTask]) -> None:
        worker = self.workers.get(worker_id)
        if worker is None:
            return  # it left; its WorkerLeft event takes the leases back
        if worker.introduced and len(batch) > 1:
            await worker.send(encode_tasks([(c.task_id, c.op, c.args) for c in batch]))
        else:
            for command in batch:
                await worker.send(encode_task(command.task_id, command.op, command.args))
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
            )

    def _report_done(self, command: TaskDone, outcomes: list[ResultRecord | FailureRecord]) -> None:
        worker = self.workers.get(command.worker_id)
        agent = worker.agent if worker else None
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
        )
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
            )
        )

    def _report_failed(
        self, command: TaskFailed, outcomes: list[ResultRecord | FailureRecord]
    ) -> None:
        emit(
            log,
            "task_failed",
            f"task {command.task_id} ({command.op}) failed: " + "; ".join(command.reasons),
            level=logging.WARNING,
            task_id=command.task_id,
            job_id=command.job_id,
            op=command.op,
            reasons=list(command.reasons),
        )
        if command.job_id is None:
            return
        outcomes.append(
            FailureRecord(
                task_id=command.task_id,
                job_id=command.job_id,
                index=command.index,
                reasons=list(command.reasons),
            )
        )

    async def _send_cancel(self, command: CancelTask) -> None:
        worker = self.workers.get(command.worker_id)
        if worker is not None and worker.introduced:  # exercise-style pages know no cancel
            await worker.send(encode_cancel(command.task_id))

    async def _job_cancelled(self, command: JobCancelled) -> None:
        emit(
            events,
            "job_cancelled",
            f"job {command.job_id} cancelled: {len(command.task_ids)} task(s) will not run",
            job_id=command.job_id,
            cancelled=len(command.task_ids),
        )
        await self.store.close_job(command.job_id)
        message = Cancelled(job_id=command.job_id, task_ids=list(command.task_ids))
        for client in self.subscribers.pop(command.job_id, ()):
            self._push(client, message)

    async def _reject(self, command: RejectReport) -> None:
        emit(
            events,
            "report_ignored",
            f"[#{command.worker_id}] ignored report for task_id={command.task_id!r}: "
            f"{command.reason}",
            level=logging.WARNING,
            worker_id=command.worker_id,
            task_id=command.task_id,
        )
        worker = self.workers.get(command.worker_id)
        if worker is not None:
            await worker.send(encode_server_error("unknown_task", command.reason, command.task_id))

    # --- pushing outcomes to clients --------------------------------------------------

    def _route(self, outcomes: list[ResultRecord | FailureRecord]) -> None:
        finished: set[int] = set()
        for outcome in outcomes:
            for client in self.subscribers.get(outcome.job_id, ()):
                self._push(client, outcome)
            if self.scheduler.jobs[outcome.job_id].finished:
                finished.add(outcome.job_id)
        for job_id in finished:
            self._job_finished(self.scheduler.jobs[job_id])

    def _push(self, client: ClientPeer, message: _Pushed) -> None:
        client.outbox.append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _job_finished(self, job: Job) -> None:
        emit(
            events,
            "job_finished",
            f"job {job.job_id} finished: {job.counts[TaskState.DONE]} done, "
            f"{job.counts[TaskState.FAILED]} failed",
            job_id=job.job_id,
            done=job.counts[TaskState.DONE],
            failed=job.counts[TaskState.FAILED],
        )
        task = asyncio.get_running_loop().create_task(self.store.close_job(job.job_id))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        """Send every client what was gathered for it since the last flush, in order:
        consecutive outcomes go out together in ``done`` frames."""
        for client in list(self.clients.values()):
            outbox, client.outbox = client.outbox, []
            for frame in _frames(outbox):
                await client.send(frame)

    def forget_client(self, client: ClientPeer) -> None:
        """The client disconnected: stop pushing to it (its jobs run on)."""
        self.clients.pop(client.client_id, None)
        for job_id in list(client.job_keys.values()) + list(self.subscribers):
            subscribers = self.subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self.subscribers[job_id]

    async def drain(self) -> None:
        """Wait for pushes in progress (used at shutdown)."""
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


_PUSH_BATCH = 2000  # outcomes per pushed frame (clients accept frames of any size)


def _frames(outbox: list[_Pushed]) -> list[str]:
    frames: list[str] = []
    results: list[ResultRecord] = []
    failures: list[FailureRecord] = []

    def close_batch() -> None:
        if results or failures:
            frames.append(
                encode_client_message(Done(results=results[:], failures=failures[:])).decode()
            )
            results.clear()
            failures.clear()

    for message in outbox:
        if isinstance(message, ResultRecord):
            results.append(message)
        elif isinstance(message, FailureRecord):
            failures.append(message)
        else:
            close_batch()
            frames.append(encode_client_message(message).decode())
        if len(results) + len(failures) >= _PUSH_BATCH:
            close_batch()
    close_batch()
    return frames


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
