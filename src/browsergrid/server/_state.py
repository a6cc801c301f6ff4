"""Who is connected, as the coordinator sees them: ``WorkerPeer`` and ``ClientPeer``.

A peer pairs a socket (``Peer``: ``send`` never waits) with what the coordinator keeps for
it: a worker's connection rules, leases and history; a client's job keys and its outbox of
what it will be told, in order. The coordinator, the push to clients, the dashboard feed and
the grid link read these; none of them owns another's.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from browsergrid.config import ServeConfig
from browsergrid.core import Scheduler, Standing
from browsergrid.protocol import (
    Accepted,
    Cancelled,
    FailureRecord,
    ResultRecord,
    WorkerConnection,
)
from browsergrid.protocol._limits import Connections, RateLimit
from browsergrid.server._stats import Stats
from browsergrid.store import JobInfo, Store, ThroughputSample, WorkerRecord
from browsergrid.store._shared_queue import SharedQueue


class Peer(Protocol):
    """A connection the coordinator can send text frames to: ``send`` queues a frame in the
    peer's own outbox and never waits; only the peer's own writer awaits ``drained``."""

    def send(self, frame: str) -> None: ...

    async def drained(self) -> None: ...


class Throughput(Protocol):
    """The dashboard feed's throughput, as the grid snapshot and /metrics read it."""

    def rate(self) -> float: ...

    def recent_seconds(self) -> list[ThroughputSample]: ...


class GridMembership(Protocol):
    """A coordinator's place in a grid of coordinators (``serve --redis``), as readers see
    it: its id, the live coordinators' snapshots, and the shared queue."""

    members: dict[str, bytes]
    grid: SharedQueue

    @property
    def coordinator_id(self) -> str: ...


class CoordinatorState(Protocol):
    """What the parts around the coordinator read of it (the dashboard feed, /metrics, the
    grid snapshot, the upgrade guard): who is connected, the scheduler, the counters. They
    read it and never change it, but for the counters of ``stats`` and ``connections``.
    ``Coordinator`` is the one implementation; a test may pass a stand-in."""

    config: ServeConfig
    store: Store
    scheduler: Scheduler
    stats: Stats
    workers: dict[int, WorkerPeer]
    clients: dict[int, ClientPeer]
    job_infos: dict[int, JobInfo]
    started_at: float  # Unix time
    public_url: str | None
    closing: bool
    store_problem: str | None
    connections: Connections
    allowed_origins: frozenset[str]

    @property
    def healthy(self) -> bool: ...

    def rate_limit(self) -> RateLimit: ...

    @property
    def grid(self) -> GridMembership | None: ...

    @property
    def feed(self) -> Throughput: ...


@dataclass(eq=False)
class WorkerPeer:
    """One worker connection, as the coordinator sees it: its socket (``sender``), the
    rules of its connection (``rules``: hello, rate, refusals) and its history."""

    worker_id: int
    address: str
    path: str
    agent: str | None
    connected_at: float  # Unix time
    sender: Peer
    rules: WorkerConnection
    worker_key: str | None = None  # its lasting identity (hello), for its history
    first_seen: float = 0.0  # Unix time, from its history when it has one
    tasks_done: int = 0  # over its whole history
    failures: int = 0
    compute_ms: float = 0.0
    leases: dict[int, float] = field(default_factory=dict)  # task id -> lease start
    standing: Standing | None = None  # its reputation (the scheduler's, kept up to date)
    left_at: float | None = None  # Unix time it disconnected
    written: tuple[Any, ...] | None = None  # its ``history()`` as last stored

    def send(self, frame: str) -> None:
        self.sender.send(frame)

    @property
    def introduced(self) -> bool:
        """It said hello (an exercise-style worker never does: it knows no ``tasks``,
        ``cancel`` or ``ack``)."""
        return self.rules.introduced

    def answer(self) -> None:
        """Send what its connection's rules queued (welcome, refusals), in order."""
        for frame in self.rules.data_to_send():
            self.sender.send(frame)

    def history(self) -> tuple[Any, ...]:
        """What its record holds but ``last_seen``: what makes a new write worth it."""
        return (
            self.worker_key,
            self.agent,
            self.first_seen or self.connected_at,
            self.tasks_done,
            self.failures,
            self.compute_ms,
            *record_fields(self.standing or FRESH).values(),
        )

    def record(self) -> WorkerRecord | None:
        """Its history as the store keeps it (None for a worker with no lasting identity)."""
        if self.worker_key is None:
            return None
        return WorkerRecord(
            worker_key=self.worker_key,
            agent=self.agent,
            first_seen=self.first_seen or self.connected_at,
            last_seen=self.left_at or time.time(),
            tasks_done=self.tasks_done,
            failures=self.failures,
            compute_ms=self.compute_ms,
            **record_fields(self.standing or FRESH),
        )


FRESH: Final = Standing()
"""The standing of a worker not yet judged (read only, never handed out)."""


def record_fields(standing: Standing) -> dict[str, Any]:
    """The fields of a ``WorkerRecord`` that keep ``standing`` (read field by field:
    ``asdict()`` deep-copies); its ``done`` is the record's ``job_tasks_done``, since
    ``tasks_done`` counts welcome tasks too. ``standing_of`` reads them back."""
    return {
        "valid": standing.valid,
        "invalid": standing.invalid,
        "consecutive_valid": standing.consecutive_valid,
        "error_rate": standing.error_rate,
        "quarantined": standing.quarantined,
        "lost": standing.lost,
        "loss_rate": standing.loss_rate,
        "job_tasks_done": standing.done,
    }


def standing_of(record: WorkerRecord) -> Standing:
    """The standing a stored history keeps (see ``record_fields``)."""
    return Standing(
        valid=record.valid,
        invalid=record.invalid,
        consecutive_valid=record.consecutive_valid,
        error_rate=record.error_rate,
        quarantined=record.quarantined,
        done=record.job_tasks_done,
        lost=record.lost,
        loss_rate=record.loss_rate,
    )


@dataclass(eq=False)
class AcceptedSlot:
    """A place in a client's outbox for an "accepted" not yet sendable (its tasks are not
    yet stored): nothing behind it is sent before it is filled."""

    message: Accepted | None = None


Pushed = AcceptedSlot | Cancelled | ResultRecord | FailureRecord


@dataclass(eq=False)
class ClientPeer:
    """One submitting client connection. What it is told goes through ``outbox`` in order
    (an ``accepted`` always before the results of its tasks), in batches, encoded and sent
    by a ``writer`` task of its own only as fast as the client reads (the task exists while
    there is something to send)."""

    client_id: int
    address: str
    sender: Peer
    job_keys: dict[str, int] = field(default_factory=dict)  # its jobs, by its job_key
    outbox: list[Pushed] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None
    findable: dict[int, str] = field(default_factory=dict)  # job id -> job_key, see forget
    forgotten: OrderedDict[str, None] = field(default_factory=OrderedDict)  # keys, oldest first

    def send(self, frame: str) -> None:
        self.sender.send(frame)

    def forget(self, job_id: int) -> None:
        """Job ``job_id`` left the coordinator's memory: so does its job key, once
        ``FORGOTTEN_KEYS`` later ones went too, when it was submitted with a ``client_id``
        (a later submit under that key finds the job in the store by
        ``client_id/job_key``). Without one, the key stays: it is all that finds the job."""
        job_key = self.findable.pop(job_id, None)
        if job_key is None:
            return
        self.forgotten[job_key] = None
        self.forgotten.move_to_end(job_key)
        while len(self.forgotten) > FORGOTTEN_KEYS:
            oldest, _ = self.forgotten.popitem(last=False)
            self.job_keys.pop(oldest, None)

    def remember(self, job_key: str, job_id: int, *, findable: bool) -> None:
        """Its submit under ``job_key`` went into job ``job_id``; ``findable``: the store
        finds it by the submit's ``client_id`` too."""
        self.job_keys[job_key] = job_id
        self.forgotten.pop(job_key, None)
        if findable:
            self.findable[job_id] = job_key

    def ready(self, limit: int) -> list[Pushed]:
        """Take what may be sent now: up to the first hold still waiting for its tasks to be
        stored, and at most ``limit`` outcomes."""
        outbox = self.outbox
        end, outcomes = 0, 0
        for message in outbox:
            if isinstance(message, AcceptedSlot) and message.message is None:
                break
            end += 1
            if isinstance(message, ResultRecord | FailureRecord):
                outcomes += 1
                if outcomes >= limit:
                    break
        taken, self.outbox = outbox[:end], outbox[end:]
        return taken


FORGOTTEN_KEYS: Final = 64
"""Job keys of a client kept after their jobs left memory (a session's next submit finds
its job without asking the store)."""

QUARANTINED: Final = (
    "this worker's results kept disagreeing with other workers' results for the same tasks; "
    "it will be sent no more tasks"
)
"""The message of the ``quarantined`` error frame a quarantined worker is sent."""
