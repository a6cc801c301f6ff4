"""``WorkerHistory``: what the store keeps of each worker identity, and when it is written.

A worker with a lasting identity (``worker_key`` in its hello) has a history: tasks done,
failures, compute time, agent, and its standing (reputation): as quorums judged it, and the
leases it lost, with its loss rate. The coordinator writes it when the worker leaves (once
the scheduler took back its leases, so with the loss that made), every 10 s for those whose
history changed, at shutdown, and at once when a quorum judges a worker (quarantined, or
gone already).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from browsergrid.core import Scheduler
from browsergrid.protocol import FailureRecord, ResultRecord
from browsergrid.server._state import WorkerPeer, record_fields
from browsergrid.store import Store, StoreError, WorkerRecord


class HistoryHost(Protocol):
    """What the worker history needs of its coordinator: the store and its health, the
    connected workers, and the scheduler's standings."""

    store: Store
    scheduler: Scheduler
    workers: dict[int, WorkerPeer]
    closing: bool

    def store_failed(self, exc: StoreError) -> None: ...

    def store_recovered(self) -> None: ...


class WorkerHistory:
    """Writes worker histories to ``host``'s store; see the module docstring."""

    def __init__(self, host: HistoryHost) -> None:
        self.host = host

    async def remember(self, peers: list[WorkerPeer] | None = None) -> None:
        """Write the history of ``peers`` to the store. Without ``peers`` (the periodic
        write): that of each connected worker whose history changed since it was last
        stored (tasks, failures, compute time, standing, agent, identity), none when all are
        idle; that of every connected worker while closing.

        So the stored ``last_seen`` of a connected worker is the time of its last write
        (the first periodic write after its hello, or the first after its last change): it
        is not moved on as time passes, only when the worker leaves (``serve_worker``
        writes it then) and at shutdown. The dashboard builds connected workers' history
        rows live; ``/api/workers/history`` marks them ``connected``, seen now."""
        chosen = list(self.host.workers.values()) if peers is None else peers
        changed_only = peers is None and not self.host.closing
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
            await self.host.store.record_workers(records)
        except StoreError as exc:
            self.host.store_failed(exc)  # still unwritten: the next periodic write tries again
        else:
            for peer, history in written:
                peer.written = history
            self.host.store_recovered()

    async def save_judged_absentees(self, outcomes: list[ResultRecord | FailureRecord]) -> None:
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
            judged -= {peer.worker_key for peer in self.host.workers.values()}
            for key in sorted(judged):
                await self.save_standing(key, [])

    async def save_standing(self, key: str, peers: list[WorkerPeer]) -> None:
        """Store identity ``key``'s reputation now: with a connected worker's history, or
        into the history the store has (its workers may all have left)."""
        if any(peer.worker_key == key for peer in peers):
            await self.remember(peers)
            return
        standing = self.host.scheduler.standings.get(key)
        try:
            known = await self.host.store.worker(key)
            if known is not None and standing is not None:
                # its tasks_done stays the store's
                updated = msgspec.structs.replace(known, **record_fields(standing))
                await self.host.store.record_workers([updated])
        except StoreError as exc:
            self.host.store_failed(exc)
