"""Coordinators sharing one grid through Redis, driven in process (real Redis, real
``Coordinator`` and ``GridLink``, workers and clients as in-memory peers): the races and
failures of the shared queue that the process-level tests in test_grid_serve.py cannot
aim at precisely."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported, WorkerJoined, WorkerLeft
from browsergrid.protocol import PROTOCOL_VERSION, Hello, SubmitOptions
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import ClientPeer, WorkerPeer
from browsergrid.server._workers import receive
from browsergrid.store import JobState, RedisStore, StoreError
from browsergrid.store._shared_queue import SharedQueue
from tests._support import RedisServer
from tests.server._fakes import Sink, rules

RM = "repeat_multiply"
PC = "prime_count"


def rm_args(k: int) -> dict[str, Any]:
    return {"initial": float(k), "factor": 1.0, "times": 1}


class Member:
    """One in-process coordinator of the grid."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator
        self.sinks: dict[int, Sink] = {}

    @property
    def store(self) -> RedisStore:
        assert isinstance(self.c.store, RedisStore)
        return self.c.store

    async def worker(
        self,
        key: str | None,
        ops: tuple[str, ...] = (RM,),
        concurrency: int = 1,
        *,
        anonymous: bool = False,
    ) -> WorkerPeer:
        sink = Sink()
        peer = WorkerPeer(
            worker_id=self.c.next_id(),
            address="127.0.0.1:1",
            path="/ws",
            agent="test",
            connected_at=time.time(),
            sender=sink,
            rules=rules(0),
        )
        self.sinks[peer.worker_id] = sink
        self.c.workers[peer.worker_id] = peer
        now = time.monotonic()
        await self.c.apply(WorkerJoined(worker_id=peer.worker_id, now=now, stimulus_id="join"))
        if not anonymous:
            hello = Hello(
                protocol=PROTOCOL_VERSION,
                agent="test",
                ops=list(ops),
                concurrency=concurrency,
                prefetch=0,
                worker_key=key,
            )
            await receive(self.c, peer, msgspec.json.encode(hello).decode(), now)
            assert peer.introduced
        return peer

    async def leave(self, peer: WorkerPeer) -> None:
        peer.left_at = time.time()
        del self.c.workers[peer.worker_id]
        await self.c.apply(
            WorkerLeft(worker_id=peer.worker_id, now=time.monotonic(), stimulus_id="leave")
        )

    async def answer(self, peer: WorkerPeer, task_id: int, value: Any) -> None:
        await self.c.apply(
            ResultReported(
                worker_id=peer.worker_id,
                task_id=task_id,
                result=value,
                duration_ms=1.0,
                now=time.monotonic(),
                stimulus_id="result",
            )
        )

    def client(self) -> tuple[ClientPeer, Sink]:
        sink = Sink()
        client = ClientPeer(client_id=self.c.next_id(), address="127.0.0.1:2", sender=sink)
        self.c.clients[client.client_id] = client
        return client, sink


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def until_async(condition: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def job_state(member: Member, job_id: int) -> JobState | None:
    summary = await member.store.job(job_id)
    return None if summary is None else summary.state


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[Callable[..., Awaitable[Member]]]:
    started: list[Coordinator] = []

    async def start(url: str | None = None, **config: Any) -> Member:
        url = url or redis_url
        coordinator = Coordinator(
            ServeConfig(redis_url=url, **{"welcome": None, **config}), RedisStore(url)
        )
        await coordinator.start()
        started.append(coordinator)
        return Member(coordinator)

    yield start
    for coordinator in reversed(started):
        coordinator.closing = True
        with contextlib.suppress(StoreError, TimeoutError):
            await asyncio.wait_for(coordinator.stop(), 10)


# --- smoke: the harness itself ----------------------------------------------------------


async def test_a_job_submitted_in_process_runs_on_a_worker(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid()
    w = await a.worker("w1")
    ack = await a.c.submit(RM, [rm_args(1), rm_args(2)], SubmitOptions())
    await until(lambda: len(a.sinks[w.worker_id].tasks()) >= 1)
    answered: set[int] = set()
    while len(answered) < 2:
        for t in a.sinks[w.worker_id].tasks():
            if t["task_id"] not in answered:
                answered.add(t["task_id"])
                await a.answer(w, t["task_id"], t["initial"])
        await asyncio.sleep(0.02)

    async def finished() -> bool:
        return await job_state(a, ack.job_id) is JobState.FINISHED

    await until_async(finished)
    await until(lambda: not a.c.grid.taken)  # type: ignore[union-attr]


async def answer_everything(members: list[Member], value: Callable[[dict[str, Any]], Any]) -> None:
    """Workers that answer every task they are sent, each time it is sent (until
    cancelled)."""
    answered: set[tuple[int, int, int]] = set()
    while True:
        for m, member in enumerate(members):
            for worker_id, sink in list(member.sinks.items()):
                peer = member.c.workers.get(worker_id)
                if peer is None:
                    continue
                for position, task in enumerate(sink.tasks()):
                    mark = (m, worker_id, position)
                    if mark not in answered:
                        answered.add(mark)
                        await member.answer(peer, task["task_id"], value(task))
        await asyncio.sleep(0.02)


# --- bugs ---------------------------------------------------------------------------------


@pytest.mark.processes
@pytest.mark.timeout(60)
async def test_a_result_unstored_during_a_redis_outage_is_run_again(
    tmp_path: Path, grid: Callable[..., Awaitable[Member]]
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        a = await grid(server.url + "?prefix=outage:")
        w = await a.worker("w1")
        ack = await a.c.submit(RM, [rm_args(7)], SubmitOptions())
        sink = a.sinks[w.worker_id]
        await until(lambda: len(sink.tasks()) == 1)
        server.stop()  # Redis goes away for a moment (its data is kept on disk)
        await a.answer(w, sink.tasks()[0]["task_id"], 7.0)  # cannot be stored
        await asyncio.sleep(0.5)
        server.start()
        responder = asyncio.ensure_future(answer_everything([a], lambda t: t["initial"]))
        try:

            async def finished() -> bool:
                try:
                    return await job_state(a, ack.job_id) is JobState.FINISHED
                except StoreError:
                    return False

            await until_async(finished, within=10)  # well past a beat and a claim
        finally:
            responder.cancel()
    finally:
        try:
            await asyncio.wait_for(a.c.stop(), 15)
        finally:
            server.stop()  # even when the coordinator's stop fails: no redis-server left


@pytest.mark.timeout(60)
async def test_replicated_tasks_are_not_taken_where_too_few_identities_run_their_op(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid()
    await a.worker("x", ops=(PC, RM))
    await a.worker(None, anonymous=True)  # an exercise page: repeat_multiply only
    b = await grid()
    await b.worker("y", ops=(PC,))
    await b.worker("z", ops=(PC,))
    responder = asyncio.ensure_future(answer_everything([a, b], lambda t: t["hi"] - t["lo"]))
    try:
        args = [{"lo": 0, "hi": 10 + k} for k in range(4)]
        ack = await b.c.submit(PC, args, SubmitOptions(redundancy=2))

        async def finished() -> bool:
            return await job_state(b, ack.job_id) is JobState.FINISHED

        await until_async(finished, within=8)
    finally:
        responder.cancel()


async def test_tasks_taken_just_before_a_cancel_are_not_run(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid()
    link = a.c.grid
    assert link is not None
    ack = await a.c.submit(RM, [rm_args(k) for k in range(3)], SubmitOptions())
    # a take by a.grid happens in Redis just before the cancel; its reply is read after the
    # cancel's signal was handled (the two come on different connections)
    taken = await link.grid.take({RM}, 10)
    assert len(taken) == 3
    await a.store.cancel_job(ack.job_id, time.time())
    await asyncio.sleep(0.5)  # the "cancel" signal reached a: it knew no such job yet
    await link.adopt(taken)
    w = await a.worker("w1")
    await asyncio.sleep(0.3)
    assert a.sinks[w.worker_id].tasks() == []  # nothing of a cancelled job is run


@pytest.mark.timeout(30)
async def test_a_session_job_that_grows_while_its_follower_ends_still_reports(
    grid: Callable[..., Awaitable[Member]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await grid()
    link = a.c.grid
    assert link is not None
    w = await a.worker("w1")
    client, client_sink = a.client()
    responder = asyncio.ensure_future(answer_everything([a], lambda t: t["initial"]))
    store_job = a.store.job

    async def slow_for_the_follower(job_id: int) -> Any:
        if asyncio.current_task() is link.followers.get(job_id):
            await asyncio.sleep(0.5)  # one slow round trip of the follower's
        return await store_job(job_id)

    monkeypatch.setattr(a.store, "job", slow_for_the_follower)
    try:
        ack = await a.c.submit(RM, [rm_args(1)], SubmitOptions(), client=client, job_key="s")
        await until(lambda: len(client_sink.results()) == 1)  # the job finished
        await a.c.submit(RM, [rm_args(2)], SubmitOptions(), client=client, job_key="s")
        assert ack.job_id == client.job_keys["s"]
        await until(lambda: len(client_sink.results()) == 2, within=5)
    finally:
        responder.cancel()
    assert w.worker_id in a.sinks


@pytest.mark.timeout(30)
async def test_a_follower_stops_once_its_client_has_left(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid()
    link = a.c.grid
    assert link is not None
    client, _ = a.client()
    ack = await a.c.submit(RM, [rm_args(1)], SubmitOptions(), client=client, job_key="s")
    await until(lambda: ack.job_id in link.followers)
    await asyncio.sleep(0.5)  # it waits for the job's log (XREAD BLOCK)
    a.c.forget_client(client)
    await until(lambda: ack.job_id not in link.followers, within=7)  # > one 5 s XREAD


@pytest.mark.timeout(30)
async def test_a_handed_back_task_keeps_its_failed_attempts(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid(max_attempts=2)
    w = await a.worker("w1")
    await a.c.submit(RM, [rm_args(1)], SubmitOptions())
    await until(lambda: len(a.sinks[w.worker_id].tasks()) == 1)
    await a.leave(w)  # its tab crashed on the task: one attempt used
    probe = SharedQueue(a.store, "probe")
    await probe.beat(b"{}")
    taken: list[Any] = []

    async def handed_back() -> bool:
        taken.extend(await probe.take({RM}, 10))
        return bool(taken)

    await until_async(handed_back, within=5)  # a gave it back at its next beat
    assert taken[0].task.attempts == 1
    assert taken[0].task.reasons and "disconnected" in taken[0].task.reasons[0]


@pytest.mark.timeout(30)
async def test_one_task_met_twice_in_one_take_still_runs(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    c = await grid()
    ack = await c.c.submit(RM, [rm_args(5)], SubmitOptions())
    stalled, claimer = SharedQueue(c.store, "stalled"), SharedQueue(c.store, "claimer")
    await stalled.beat(b"{}")
    await claimer.beat(b"{}")
    (held,) = await stalled.take({RM}, 1)
    await c.store.client().delete(f"{c.store.prefix}coord:stalled")  # its key expired
    (claimed,) = await claimer.claim()
    assert claimed.entry == held.entry
    await stalled.beat(b"{}")  # it is back, and its workers left: both give the task back
    await stalled.hand_back([held])
    await claimer.hand_back([claimed])
    # hungry for two at once (no identity to look up: join and hello in one go), so one
    # take gets both entries
    w = await c.worker(None, concurrency=2)
    await until(lambda: [t["task_id"] for t in c.sinks[w.worker_id].tasks()] == [ack.first_task_id])


@pytest.mark.timeout(30)
async def test_a_store_error_right_after_a_take_loses_nothing(
    grid: Callable[..., Awaitable[Member]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await grid()  # the submitter: no workers
    ack = await a.c.submit(RM, [rm_args(1), rm_args(2)], SubmitOptions())
    b = await grid()
    store_job = b.store.job
    failures = [StoreError("cannot reach Redis at redis://...: Connection reset by peer")]

    async def blip(job_id: int) -> Any:
        if failures:
            raise failures.pop()
        return await store_job(job_id)

    monkeypatch.setattr(b.store, "job", blip)
    w = await b.worker("w1")
    responder = asyncio.ensure_future(answer_everything([b], lambda t: t["initial"]))
    try:

        async def finished() -> bool:
            return await job_state(a, ack.job_id) is JobState.FINISHED

        await until_async(finished, within=6)
    finally:
        responder.cancel()
    assert w.worker_id in b.sinks


@pytest.mark.processes
@pytest.mark.timeout(60)
async def test_a_member_is_healthy_again_once_redis_is_back(
    tmp_path: Path, grid: Callable[..., Awaitable[Member]]
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        a = await grid(server.url + "?prefix=blip:")
        server.stop()
        await until(lambda: not a.c.healthy, within=5)  # its beat failed
        server.start()
        await until(lambda: a.c.healthy, within=5)  # beats work again
    finally:
        try:
            await asyncio.wait_for(a.c.stop(), 15)
        finally:
            server.stop()  # even when the coordinator's stop fails: no redis-server left


# --- checked and found sound --------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_a_client_watching_a_finished_job_on_another_member_gets_every_result(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    """The job ran and finished on A; the client reconnects to B (``watch``): B pushes
    every result it missed (the follower replays the job's log, so some come twice, which
    the client ignores), then its follower ends."""
    a = await grid()
    b = await grid()
    await a.worker("w1")
    first, _ = a.client()
    responder = asyncio.ensure_future(answer_everything([a], lambda t: t["initial"]))
    try:
        ack = await a.c.submit(RM, [rm_args(k) for k in range(3)], SubmitOptions(), client=first)

        async def finished() -> bool:
            return await job_state(b, ack.job_id) is JobState.FINISHED

        await until_async(finished)
    finally:
        responder.cancel()
    a.c.forget_client(first)
    moved, sink = b.client()
    task_ids = list(range(ack.first_task_id, ack.first_task_id + 3))
    await b.c.watch(moved, [ack.job_id], task_ids)
    await until(lambda: {r["task_id"] for r in sink.results()} == set(task_ids))
    assert sorted({(r["task_id"], r["result"]) for r in sink.results()}) == [
        (t, float(t - ack.first_task_id)) for t in task_ids
    ]
    link = b.c.grid
    assert link is not None
    await until(lambda: ack.job_id not in link.followers)


@pytest.mark.timeout(30)
async def test_a_cancel_on_one_member_takes_the_tasks_back_on_another(
    grid: Callable[..., Awaitable[Member]],
) -> None:
    a = await grid()
    b = await grid()
    w = await a.worker("w1", concurrency=2)
    ack = await b.c.submit(RM, [rm_args(k) for k in range(5)], SubmitOptions())
    await until(lambda: len(a.sinks[w.worker_id].tasks()) == 2)
    await b.c.cancel(ack.job_id)
    await until(lambda: [f for f in a.sinks[w.worker_id].frames if f["type"] == "cancel"] != [])
    link = a.c.grid
    assert link is not None
    await until(lambda: not link.taken and not a.c.scheduler.tasks)
    summary = await b.store.job(ack.job_id)
    assert summary is not None
    assert (summary.state, summary.cancelled, summary.done) == (JobState.CANCELLED, 5, 0)
