"""Result validation in the coordinator shell, driven in process: what is stored about a
replicated task and about worker reputation (a quarantine must survive a restart), what
workers are told, and that nothing is kept per task once it is over."""

from __future__ import annotations

import time
from typing import Any

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported
from browsergrid.protocol import SubmitOptions, public_worker_key
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import WorkerPeer
from browsergrid.store import MemoryStore, StoreError, WorkerRecord
from tests.server._fakes import connect, leave

OP = "repeat_multiply"
ARGS = {"initial": 1, "factor": 2, "times": 1}
RIGHT, WRONG = 2.0, 3.0


async def started(store: MemoryStore) -> Coordinator:
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), store)
    await coordinator.start()
    return coordinator


async def answer(coordinator: Coordinator, peer: WorkerPeer, task_id: int, value: Any) -> None:
    await coordinator.apply(
        ResultReported(
            worker_id=peer.worker_id,
            task_id=task_id,
            result=value,
            duration_ms=1.0,
            now=time.monotonic(),
            stimulus_id="result",
        )
    )


async def one_task_for_two(
    store: MemoryStore,
) -> tuple[Coordinator, WorkerPeer, WorkerPeer, int]:
    """A coordinator on ``store`` with workers "first" and "second", each holding a replica
    of the one task of a job of redundancy 2 (its id last)."""
    coordinator = await started(store)
    first = await connect(coordinator, "first")
    second = await connect(coordinator, "second")
    ack = await coordinator.submit(OP, [ARGS], SubmitOptions(redundancy=2))
    return coordinator, first, second, ack.first_task_id


def held(coordinator: Coordinator, peer: WorkerPeer) -> set[int]:
    return set(coordinator.scheduler.workers[peer.worker_id].in_flight)


async def test_quarantine_of_a_worker_that_already_left_is_not_stored() -> None:
    """The saboteur answers wrongly and disconnects before the quorum settles: no connected
    peer remembers it, yet its quarantine is stored, and it leaves memory once reported."""
    store = MemoryStore()
    coordinator = await started(store)
    bad = public_worker_key("saboteur-secret")
    now = time.time()
    await store.record_workers(
        [WorkerRecord(bad, None, now, now, 2, 0, 2.0, invalid=2, error_rate=0.35)]
    )
    saboteur = await connect(coordinator, "saboteur-secret")
    honest1 = await connect(coordinator, "honest-1")
    honest2 = await connect(coordinator, "honest-2")
    ack = await coordinator.submit(OP, [ARGS], SubmitOptions(redundancy=2))
    task_id = ack.first_task_id
    assert task_id in held(coordinator, saboteur) and task_id in held(coordinator, honest1)
    await answer(coordinator, saboteur, task_id, WRONG)
    await leave(coordinator, saboteur)  # a tab closed
    await answer(coordinator, honest1, task_id, RIGHT)
    assert task_id in held(coordinator, honest2)
    await answer(coordinator, honest2, task_id, RIGHT)
    record = await store.worker(bad)
    assert record is not None and record.quarantined, "the quarantine was never stored"
    assert bad not in coordinator.scheduler.standings  # memory lets go; the store keeps it
    back = await connect(coordinator, "saboteur-secret")
    assert coordinator.scheduler.workers[back.worker_id].quarantined


async def test_a_replicated_result_keeps_its_worker_key_when_that_worker_left() -> None:
    store = MemoryStore()
    coordinator, first, second, task_id = await one_task_for_two(store)
    await answer(coordinator, first, task_id, RIGHT)
    await leave(coordinator, first)
    await answer(coordinator, second, task_id, RIGHT)
    [outcome] = await store.outcomes_of([task_id])
    assert outcome.verdict == "quorum"  # type: ignore[union-attr]
    assert outcome.worker_id == first.worker_id  # type: ignore[union-attr]
    assert outcome.worker_key == public_worker_key("first"), (  # type: ignore[union-attr]
        f"stored worker_key {outcome.worker_key!r}, replicas say "  # type: ignore[union-attr]
        f"{[r.worker_key for r in outcome.replicas]}"  # type: ignore[union-attr]
    )


class FlakyStore(MemoryStore):
    """Reading a worker's history fails once (a locked or busy database)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_reads = 0

    async def worker(self, worker_key: str) -> WorkerRecord | None:
        if self.fail_reads:
            self.fail_reads -= 1
            raise StoreError("database is locked")
        return await super().worker(worker_key)


async def test_a_failed_history_read_at_hello_does_not_overwrite_a_stored_quarantine() -> None:
    """The worker then works without a lasting identity (as a newcomer nobody trusts), and
    its stored record is left alone."""
    store = FlakyStore()
    coordinator = await started(store)
    bad = public_worker_key("saboteur-secret")
    now = time.time()
    await store.record_workers(
        [WorkerRecord(bad, None, now, now, 9, 0, 9.0, invalid=3, error_rate=0.4, quarantined=True)]
    )
    store.fail_reads = 1
    saboteur = await connect(coordinator, "saboteur-secret")
    await coordinator.remember_workers()  # the periodic write, every 10 s
    record = await store.worker(bad)
    assert record is not None and record.quarantined, "stored quarantine overwritten"
    assert saboteur.worker_key is None
    assert coordinator.scheduler.workers[saboteur.worker_id].key == f"#{saboteur.worker_id}"


async def test_a_quarantined_identity_is_told_so_when_it_says_hello() -> None:
    store = MemoryStore()
    coordinator = await started(store)
    bad = public_worker_key("saboteur-secret")
    now = time.time()
    await store.record_workers(
        [WorkerRecord(bad, None, now, now, 9, 0, 9.0, invalid=3, error_rate=0.4, quarantined=True)]
    )
    saboteur = await connect(coordinator, "saboteur-secret")
    frames = saboteur.sender.frames  # type: ignore[attr-defined]
    assert [f["code"] for f in frames if f["type"] == "error"] == ["quarantined"]
    await coordinator.submit(OP, [ARGS], SubmitOptions())
    assert not held(coordinator, saboteur)


async def test_every_replica_is_acknowledged_once_the_result_is_stored() -> None:
    store = MemoryStore()
    coordinator, first, second, task_id = await one_task_for_two(store)
    await answer(coordinator, first, task_id, RIGHT)
    await answer(coordinator, second, task_id, RIGHT)
    for peer in (first, second):
        frames = peer.sender.frames  # type: ignore[attr-defined]
        assert [f["task_ids"] for f in frames if f["type"] == "ack"] == [[task_id]]
        assert not peer.leases


async def test_cancel_and_take_backs_leave_lease_start_times_behind() -> None:
    """WorkerPeer.leases is popped only when a result comes: every take-back (cancel, a
    quorum reached without a replica, expiry, error, quarantine) leaves an entry for the
    life of the connection."""
    store = MemoryStore()
    coordinator = await started(store)
    one = await connect(coordinator, "one")
    two = await connect(coordinator, "two")
    ack = await coordinator.submit(OP, [ARGS], SubmitOptions(redundancy=2))
    await coordinator.cancel(ack.job_id)
    assert not one.leases and not two.leases, (one.leases, two.leases)


async def test_a_worker_judged_after_it_left_has_its_standing_stored() -> None:
    store = MemoryStore()
    coordinator, first, second, task_id = await one_task_for_two(store)
    await answer(coordinator, first, task_id, RIGHT)
    await leave(coordinator, first)  # stored with valid 0: its replica is not judged yet
    await answer(coordinator, second, task_id, RIGHT)
    record = await store.worker(public_worker_key("first"))
    assert record is not None and (record.valid, record.consecutive_valid) == (1, 1)
