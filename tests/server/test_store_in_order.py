"""A worker's results are stored in the background (``apply(..., wait_stored=False)``): its
next frame is read while the store commits, yet nothing is acknowledged or pushed before it
is stored, and reports keep the order of the calls. What arrives during a write goes into
the next one (a round). Submitted tasks go out to workers before their insert is written,
and their outcomes are written after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported
from browsergrid.protocol import SubmitOptions
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import ClientPeer, WorkerPeer
from browsergrid.store import JobInfo, MemoryStore, Outcome, StoreError, TaskRecord
from tests.server._fakes import Sink, join

OP = "repeat_multiply"


class HeldStore(MemoryStore):
    """Each outcome write waits for its own go-ahead (its gate), and records its tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []
        self.writes: list[list[int]] = []
        self.fail_next = False

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.writes.append([o.task_id for o in outcomes])
        failing, self.fail_next = self.fail_next, False
        await gate.wait()
        if failing:
            raise StoreError("disk full")
        return await super().add_outcomes(outcomes)


async def setup(tasks: int) -> tuple[Coordinator, HeldStore, WorkerPeer, ClientPeer, list[int]]:
    """A coordinator over a HeldStore, a worker holding ``tasks`` tasks of one client's
    job (their ids are returned last), and that client."""
    store = HeldStore()
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), store)
    await coordinator.start()
    peer = await join(coordinator, concurrency=tasks)
    client = ClientPeer(client_id=coordinator.next_id(), address="127.0.0.1:2", sender=Sink())
    coordinator.clients[client.client_id] = client
    args = [{"initial": float(i), "factor": 2.0, "times": 1} for i in range(tasks)]
    await coordinator.submit(OP, args, SubmitOptions(), client=client)
    sink = peer.sender
    assert isinstance(sink, Sink)
    return coordinator, store, peer, client, [t["task_id"] for t in sink.tasks()]


async def report(
    coordinator: Coordinator, peer: WorkerPeer, task_id: int, *, wait_stored: bool = False
) -> None:
    """``peer`` reports a result for ``task_id``, as its endpoint does (not waiting)."""
    event = ResultReported(
        worker_id=peer.worker_id,
        task_id=task_id,
        result=1.0,
        duration_ms=1.0,
        now=time.monotonic(),
        stimulus_id="r",
    )
    await coordinator.apply(event, wait_stored=wait_stored)


def pushed(client: ClientPeer) -> list[int]:
    sink = client.sender
    assert isinstance(sink, Sink)
    return [r["task_id"] for r in sink.results()]


def acked(peer: WorkerPeer) -> list[int]:
    sink = peer.sender
    assert isinstance(sink, Sink)
    return [i for f in sink.frames if f.get("type") == "ack" for i in f["task_ids"]]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_results_are_reported_after_they_are_stored_in_rounds_in_order() -> None:
    coordinator, store, peer, client, ids = await setup(4)
    await asyncio.wait_for(report(coordinator, peer, ids[0]), 1)
    await settle()  # its write begins (wait_for runs the report in place from Python 3.12)
    for task_id in ids[1:]:  # each returns without waiting for its store
        await asyncio.wait_for(report(coordinator, peer, task_id), 1)
    await settle()
    assert store.writes == [ids[:1]]  # the first is being written; the others wait for it
    assert pushed(client) == [] and acked(peer) == []
    store.gates[0].set()
    await settle()
    assert pushed(client) == ids[:1] and acked(peer) == ids[:1]
    assert store.writes == [ids[:1], ids[1:]]  # the rest in one write
    store.gates[1].set()
    await coordinator.drain()
    assert pushed(client) == ids and acked(peer) == ids
    await coordinator.stop()


async def test_a_failed_round_reports_nothing_and_the_next_goes_on() -> None:
    coordinator, store, peer, client, ids = await setup(2)
    first, second = ids
    store.fail_next = True
    await report(coordinator, peer, first)
    await settle()
    await report(coordinator, peer, second)
    store.gates[0].set()
    await settle()
    store.gates[1].set()
    await coordinator.drain()
    assert store.writes == [[first], [second]]
    assert pushed(client) == [second] and acked(peer) == [second]
    assert coordinator.stats.errors["store"] == 1  # counted; the next write healed it
    assert coordinator.healthy
    await coordinator.stop()


async def test_a_waiting_apply_returns_once_its_round_is_reported() -> None:
    coordinator, store, peer, client, ids = await setup(2)
    first, second = ids
    await report(coordinator, peer, first)
    await settle()
    waiting = asyncio.ensure_future(report(coordinator, peer, second, wait_stored=True))
    await settle()
    store.gates[0].set()
    await settle()
    assert not waiting.done()  # its round is the next one
    store.gates[1].set()
    await asyncio.wait_for(waiting, 5)
    assert pushed(client) == [first, second]
    await coordinator.stop()


async def test_stop_waits_for_results_on_their_way_to_the_store() -> None:
    coordinator, store, peer, client, ids = await setup(1)
    (task_id,) = ids
    await report(coordinator, peer, task_id)
    stopping = asyncio.ensure_future(coordinator.stop())
    await settle()
    assert not stopping.done()
    store.gates[0].set()
    await asyncio.wait_for(stopping, 5)
    assert pushed(client) == [task_id]


async def test_past_the_limit_a_worker_waits_for_its_round(monkeypatch: Any) -> None:
    from browsergrid.server import _store_pipeline

    monkeypatch.setattr(_store_pipeline, "UNSTORED_LIMIT", 3)
    coordinator, store, peer, client, ids = await setup(5)
    await asyncio.wait_for(report(coordinator, peer, ids[0]), 1)
    await settle()  # its write begins
    for task_id in ids[1:3]:  # one being written, two waiting: under the limit
        await asyncio.wait_for(report(coordinator, peer, task_id), 1)
    blocked = asyncio.ensure_future(report(coordinator, peer, ids[3]))  # the third waiting
    await settle()
    assert not blocked.done()
    store.gates[0].set()
    await settle()
    assert not blocked.done()  # its round is being written
    store.gates[1].set()
    await asyncio.wait_for(blocked, 5)
    await report(coordinator, peer, ids[4])
    await settle()
    store.gates[2].set()
    await coordinator.drain()
    assert pushed(client) == ids
    assert store.writes == [ids[:1], ids[1:4], ids[4:]]
    await coordinator.stop()


class SlowInsertStore(MemoryStore):
    """Inserts of tasks wait for ``inserts``; every write is logged by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.inserts = asyncio.Event()
        self.log: list[str] = []

    async def add_job(self, job: JobInfo, tasks: Sequence[TaskRecord]) -> None:
        self.log.append("insert")
        await self.inserts.wait()
        await super().add_job(job, tasks)

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        self.log.append("outcomes")
        return await super().add_outcomes(outcomes)


async def test_a_task_runs_while_it_is_inserted_and_its_outcome_is_written_after() -> None:
    store = SlowInsertStore()
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), store)
    await coordinator.start()
    peer = await join(coordinator)
    sink = Sink()
    client = ClientPeer(client_id=coordinator.next_id(), address="127.0.0.1:2", sender=sink)
    coordinator.clients[client.client_id] = client
    args = [{"initial": 3.0, "factor": 2.0, "times": 1}]
    submitting = asyncio.ensure_future(coordinator.submit(OP, args, SubmitOptions(), client=client))
    await settle()
    assert isinstance(peer.sender, Sink)
    (task,) = peer.sender.tasks()  # out to the worker while its insert is being written
    assert store.log == ["insert"] and not submitting.done()
    await report(coordinator, peer, task["task_id"])  # its result is back at once
    await settle()
    assert store.log == ["insert"]  # the outcome waits for the insert
    assert sink.frames == [] and acked(peer) == []
    store.inserts.set()
    await asyncio.wait_for(submitting, 5)
    await coordinator.drain()
    assert store.log == ["insert", "outcomes"]
    assert [frame["type"] for frame in sink.frames] == ["accepted", "done"]
    assert pushed(client) == [task["task_id"]] and acked(peer) == [task["task_id"]]
    await coordinator.stop()
