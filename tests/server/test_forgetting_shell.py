"""What has ended leaves the coordinator's memory once its client was told, and the
coordinator still answers for it from the store: more tasks for a forgotten job, a cancel of
an ended one. And the scheduler's random draws are seeded, the seed logged."""

from __future__ import annotations

import logging
import time

import pytest

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported, TasksAccepted
from browsergrid.protocol import CancelJob, SubmitOptions
from browsergrid.server._clients import _act
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import FORGOTTEN_KEYS, ClientPeer, WorkerPeer
from browsergrid.store import MemoryStore, StoreError
from tests.server._fakes import Sink, join

OP = "repeat_multiply"
ARGS = {"initial": 1.0, "factor": 2.0, "times": 3}


async def started(**config: object) -> tuple[Coordinator, WorkerPeer, ClientPeer]:
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None, **config), MemoryStore())  # type: ignore[arg-type]
    await coordinator.start()
    peer = await join(coordinator, concurrency=64)
    client = ClientPeer(client_id=coordinator.next_id(), address="127.0.0.1:2", sender=Sink())
    coordinator.clients[client.client_id] = client
    return coordinator, peer, client


async def answer_all(coordinator: Coordinator, peer: WorkerPeer) -> None:
    """``peer`` reports every task it holds, then everything is stored and told."""
    held = list(coordinator.scheduler.workers[peer.worker_id].in_flight)
    for task_id in held:
        event = ResultReported(
            worker_id=peer.worker_id,
            task_id=task_id,
            result=8.0,
            duration_ms=1.0,
            now=time.monotonic(),
            stimulus_id="r",
        )
        await coordinator.apply(event)
    await coordinator.drain()


def frames_of(client: ClientPeer, kind: str) -> list[dict[str, object]]:
    sink = client.sender
    assert isinstance(sink, Sink)
    return [f for f in sink.frames if f.get("type") == kind]


async def test_finished_jobs_leave_memory_once_their_client_was_told() -> None:
    coordinator, peer, client = await started()
    for round_ in range(5):
        for _ in range(20):
            await coordinator.submit(OP, [ARGS], SubmitOptions(), client=client)
        await answer_all(coordinator, peer)
        assert len(frames_of(client, "accepted")) == 20 * (round_ + 1)
        assert coordinator.scheduler.jobs == {}
        assert coordinator.job_infos == {}
        assert coordinator.subscribers == {}
    results = [r for f in frames_of(client, "done") for r in f["results"]]  # type: ignore[attr-defined]
    assert len(results) == 100
    assert coordinator.stats.ended["done"] == 100  # /metrics still counts them
    await coordinator.stop()


@pytest.mark.parametrize("client_id", [None, "c-1"])
async def test_a_job_key_whose_job_was_forgotten_takes_it_up_from_the_store(
    client_id: str | None,
) -> None:
    coordinator, peer, client = await started()

    async def submit(count: int) -> TasksAccepted:
        return await coordinator.submit(
            OP, [ARGS] * count, SubmitOptions(), client=client, job_key="s", client_id=client_id
        )

    first = await submit(2)
    await answer_all(coordinator, peer)
    assert first.job_id not in coordinator.scheduler.jobs  # all done: forgotten
    assert client.job_keys == {"s": first.job_id}  # a session's next submit needs it
    more = await submit(1)
    assert more.job_id == first.job_id and more.first_index == 2
    await answer_all(coordinator, peer)
    summary = await coordinator.store.job(first.job_id)
    assert summary is not None and (summary.total, summary.done) == (3, 3)
    await coordinator.stop()


async def test_a_session_takes_its_job_up_again_without_reading_the_store() -> None:
    coordinator, peer, client = await started()
    reads: list[int] = []
    read = coordinator.store.job

    async def counted(job_id: int) -> object:
        reads.append(job_id)
        return await read(job_id)

    coordinator.store.job = counted  # type: ignore[method-assign,assignment]
    for n in range(5):
        ack = await coordinator.submit(
            OP, [ARGS], SubmitOptions(), client=client, job_key="s", client_id="c-1"
        )
        assert ack.first_index == n
        await answer_all(coordinator, peer)
    assert reads == []  # each next submit found the job that ended moments ago in memory
    await coordinator.stop()


async def test_the_keys_of_forgotten_jobs_leave_memory_when_the_store_finds_them() -> None:
    coordinator, peer, client = await started()
    for n in range(FORGOTTEN_KEYS + 10):
        await coordinator.submit(
            OP, [ARGS], SubmitOptions(), client=client, job_key=f"j{n}", client_id="c-1"
        )
        await answer_all(coordinator, peer)
    assert len(client.job_keys) == FORGOTTEN_KEYS  # the latest ones
    assert "j0" not in client.job_keys
    again = await coordinator.submit(
        OP, [ARGS], SubmitOptions(), client=client, job_key="j0", client_id="c-1"
    )
    assert again.first_index == 1  # found in the store by client_id/job_key
    await answer_all(coordinator, peer)
    for n in range(FORGOTTEN_KEYS + 10):  # without a client_id a key is all that finds it
        await coordinator.submit(OP, [ARGS], SubmitOptions(), client=client, job_key=f"k{n}")
        await answer_all(coordinator, peer)
    assert all(f"k{n}" in client.job_keys for n in range(FORGOTTEN_KEYS + 10))
    await coordinator.stop()


async def test_cancelling_a_job_that_ended_answers_cancelled_with_no_tasks() -> None:
    coordinator, peer, client = await started()
    ack = await coordinator.submit(OP, [ARGS], SubmitOptions(), client=client)
    await answer_all(coordinator, peer)
    await coordinator.cancel(ack.job_id, requested_by=client)
    await coordinator.drain()
    assert frames_of(client, "cancelled") == [
        {"type": "cancelled", "job_id": ack.job_id, "task_ids": []}
    ]
    with pytest.raises(KeyError):
        await coordinator.cancel(ack.job_id + 1000)
    await coordinator.stop()


async def test_a_cancel_the_store_cannot_answer_gets_an_error_not_a_dropped_connection() -> None:
    coordinator, peer, client = await started()
    ack = await coordinator.submit(OP, [ARGS], SubmitOptions(), client=client)
    await answer_all(coordinator, peer)  # ended: only the store knows it now

    async def unreadable(job_id: int) -> None:
        raise StoreError("disk unreadable")

    coordinator.store.job = unreadable  # type: ignore[method-assign,assignment]
    await _act(coordinator, client, CancelJob(job_id=ack.job_id))
    await coordinator.drain()
    [error] = frames_of(client, "error")
    assert error["code"] == "store_unavailable"
    await coordinator.stop()


async def test_the_seed_of_the_random_draws_is_logged_and_can_be_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="browsergrid.server")
    coordinator, _, _ = await started(seed=1234)
    assert coordinator.seed == 1234
    seeded = [r for r in caplog.records if getattr(r, "event", None) == "scheduler_seeded"]
    assert [r.fields["seed"] for r in seeded] == [1234]  # type: ignore[attr-defined]
    draws = [coordinator.scheduler._random() for _ in range(3)]
    again, _, _ = await started(seed=1234)
    assert [again.scheduler._random() for _ in range(3)] == draws
    await coordinator.stop()
    await again.stop()
