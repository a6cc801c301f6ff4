"""What an idle coordinator does every few seconds no longer grows with its idle workers: the
periodic history write stores only workers whose history changed, and the dashboard feed
builds rows again only for workers that changed. These tests pin that nothing is missed."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from browsergrid.config import ServeConfig
from browsergrid.core import (
    ResultReported,
    Standing,
    TaskErrorReported,
    WorkerIntroduced,
    WorkerJoined,
)
from browsergrid.protocol import SubmitOptions
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._feed import Feed, Viewer
from browsergrid.server._state import WorkerPeer
from browsergrid.store import MemoryStore, SqliteStore, Store, StoreError, WorkerRecord
from tests.server._fakes import CHROME, Sink, join, leave, rules

OP = "repeat_multiply"
ARGS = {"initial": 1, "factor": 2, "times": 1}


class CountingStore(MemoryStore):
    """Keeps every batch of worker history written; fails the next ``fail`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail = 0

    async def record_workers(self, workers: Sequence[WorkerRecord]) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("disk full")
        self.batches.append(sorted(w.worker_key for w in workers))
        await super().record_workers(workers)

    def written(self) -> list[list[str]]:
        batches, self.batches = self.batches, []
        return batches


async def started(store: Store | None = None) -> Coordinator:
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), store or CountingStore())
    await coordinator.start()
    return coordinator


async def hello_later(coordinator: Coordinator, key: str | None = None) -> WorkerPeer:
    """A worker that joined and said hello; as in serve_worker, its key and standing are
    set once WorkerIntroduced is applied."""
    peer = await join(coordinator)
    if key is not None:
        peer.worker_key, peer.standing = key, coordinator.scheduler.standing(key)
    return peer


async def answer(coordinator: Coordinator, peer: WorkerPeer, duration_ms: float = 5.0) -> None:
    """``peer`` reports a result for every task it holds."""
    for task_id in sorted(coordinator.scheduler.workers[peer.worker_id].in_flight):
        await coordinator.apply(
            ResultReported(
                worker_id=peer.worker_id,
                task_id=task_id,
                result=2.0,
                duration_ms=duration_ms,
                now=time.monotonic(),
                stimulus_id="result",
            )
        )


# --- the periodic history write ---------------------------------------------------------------


STORED = [f.name for f in dataclasses.fields(Standing) if f.name != "done"]
"""The standing's fields a WorkerRecord keeps under their own names: ``done`` is the record's
``job_tasks_done`` (its ``tasks_done`` counts welcome tasks too)."""


def test_a_record_carries_every_field_of_the_standing() -> None:
    standing = Standing(
        valid=7,
        invalid=2,
        consecutive_valid=3,
        error_rate=0.25,
        done=9,
        lost=4,
        loss_rate=0.5,
    )
    peer = WorkerPeer(1, "127.0.0.1:1", "/ws", CHROME, 1000.0, Sink(), rules(1), worker_key="k")
    assert peer.record() is not None
    fresh = Standing()
    assert {f: getattr(peer.record(), f) for f in STORED} == {f: getattr(fresh, f) for f in STORED}
    history = peer.history()
    peer.standing = standing
    record = peer.record()
    assert record is not None
    assert {f: getattr(record, f) for f in STORED} == {f: getattr(standing, f) for f in STORED}
    assert record.job_tasks_done == standing.done
    assert (record.first_seen, record.agent) == (1000.0, CHROME)
    assert peer.history() != history
    before = peer.history()
    standing.lose()
    assert peer.history() != before  # a loss alone makes the history worth writing again
    peer.worker_key = None
    assert peer.record() is None


async def test_an_idle_periodic_write_writes_nothing_and_a_change_writes_that_worker() -> None:
    coordinator = await started()
    store = cast(CountingStore, coordinator.store)
    a, b, c = [await hello_later(coordinator, key) for key in ("ka", "kb", "kc")]
    await hello_later(coordinator)  # no lasting identity: no history
    await coordinator.remember_workers()  # every worker is new to the store
    assert store.written() == [["ka", "kb", "kc"]]
    for _ in range(3):
        await coordinator.remember_workers()
    assert store.written() == [], "idle workers written again"
    await coordinator.submit(OP, [ARGS], SubmitOptions())  # leased to a
    await coordinator.remember_workers()
    assert store.written() == []  # a lease is no history
    await answer(coordinator, a)
    await coordinator.remember_workers()
    assert store.written() == [["ka"]]
    stored = await store.worker("ka")
    assert stored is not None and (stored.tasks_done, stored.compute_ms) == (1, 5.0)
    assert b.standing is not None
    b.standing.judge(True)  # a quorum agreed with it
    c.failures += 1  # it reported an error
    await coordinator.remember_workers()
    assert store.written() == [["kb", "kc"]]
    c.agent = "Mozilla/5.0 Firefox/130.0"  # a result frame told another agent
    await coordinator.remember_workers()
    assert store.written() == [["kc"]]
    await coordinator.remember_workers()
    assert store.written() == []


async def test_a_key_that_arrives_after_hello_is_written_at_the_next_periodic_write() -> None:
    coordinator = await started()
    store = cast(CountingStore, coordinator.store)
    peer = await hello_later(coordinator)
    await coordinator.remember_workers()
    assert store.written() == []
    peer.worker_key, peer.standing = "late", coordinator.scheduler.standing("late")
    await coordinator.remember_workers()
    assert store.written() == [["late"]]


async def test_a_worker_leaving_is_written_with_the_time_it_left() -> None:
    coordinator = await started()
    store = cast(CountingStore, coordinator.store)
    peer = await hello_later(coordinator, "k")
    await coordinator.remember_workers()
    first = await store.worker("k")
    assert first is not None
    store.written()
    await leave(coordinator, peer)  # nothing changed but the time: written all the same
    assert store.written() == [["k"]]
    last = await store.worker("k")
    assert last is not None and last.last_seen == peer.left_at >= first.last_seen


async def test_while_closing_the_periodic_write_writes_every_worker() -> None:
    coordinator = await started()
    store = cast(CountingStore, coordinator.store)
    for key in ("k1", "k2"):
        await hello_later(coordinator, key)
    await coordinator.remember_workers()
    store.written()
    coordinator.closing = True  # the shutdown's write: last_seen is now for everyone
    await coordinator.remember_workers()
    assert store.written() == [["k1", "k2"]]


async def test_a_failed_periodic_write_is_tried_again() -> None:
    coordinator = await started()
    store = cast(CountingStore, coordinator.store)
    await hello_later(coordinator, "k")
    store.fail = 1
    await coordinator.remember_workers()
    assert store.written() == [] and not coordinator.healthy
    await coordinator.remember_workers()
    assert store.written() == [["k"]] and coordinator.healthy
    await coordinator.remember_workers()
    assert store.written() == []


async def test_with_sqlite_idle_periodic_writes_leave_the_stored_history_alone(
    tmp_path: Path,
) -> None:
    coordinator = await started(SqliteStore(tmp_path / "grid.db"))
    try:
        a, _ = [await hello_later(coordinator, key) for key in ("ka", "kb")]
        await coordinator.remember_workers()
        before = {w.worker_key: w for w in await coordinator.store.workers()}
        assert sorted(before) == ["ka", "kb"]
        time.sleep(0.01)  # noqa: ASYNC251 - the clock must move for last_seen to
        await coordinator.remember_workers()
        assert {w.worker_key: w for w in await coordinator.store.workers()} == before
        await coordinator.submit(OP, [ARGS], SubmitOptions())
        await answer(coordinator, a)
        await coordinator.remember_workers()
        after = {w.worker_key: w for w in await coordinator.store.workers()}
        assert after["kb"] == before["kb"]
        assert after["ka"].tasks_done == 1 and after["ka"].last_seen > before["ka"].last_seen
    finally:
        await coordinator.stop()


# --- the dashboard feed -----------------------------------------------------------------------


def watched(coordinator: Coordinator) -> Viewer:
    viewer = Viewer(cast(Any, None))
    viewer.needs_snapshot = False
    coordinator.feed.viewers.add(viewer)
    return viewer


async def test_the_feed_reports_a_worker_whose_key_arrives_after_hello() -> None:
    coordinator = await started()
    watched(coordinator)
    feed = coordinator.feed
    peer = await join(coordinator)  # hello applied, its key not set yet
    frame = feed.advance(1000.0)
    assert frame is not None
    assert [(row["id"], row["key"]) for row in frame["workers"]] == [(peer.worker_id, None)]
    assert "history" not in frame
    peer.worker_key, peer.standing = "tab-1", coordinator.scheduler.standing("tab-1")
    frame = feed.advance(1000.5)
    assert frame is not None
    assert frame["workers"] == [{"id": peer.worker_id, "key": "tab-1"}]
    assert [(row["key"], row["connected"]) for row in frame["history"]] == [("tab-1", True)]
    frame = feed.advance(1001.0)
    assert frame is not None and "workers" not in frame and "history" not in frame


async def test_the_feed_reports_what_changes_on_a_worker_without_the_scheduler() -> None:
    coordinator = await started()
    watched(coordinator)
    feed = coordinator.feed
    peer = await hello_later(coordinator, "k")
    feed.advance(1000.0)
    peer.agent = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
    peer.tasks_done += 4  # its history, read at hello
    frame = feed.advance(1000.5)
    assert frame is not None
    assert frame["workers"] == [
        {"id": peer.worker_id, "browser": "Firefox 130", "agent": peer.agent, "lifetime_done": 4}
    ]


async def test_rows_built_only_for_changed_workers_are_those_built_for_all() -> None:
    """Whatever happens between ticks, the feed's worker changes, departures and history
    rows are what building every row again (as before) gives; and so is its snapshot."""
    coordinator = await started()
    watched(coordinator)
    feed = coordinator.feed
    reference = Feed(coordinator)  # builds every row, every time
    rng = random.Random(7)
    peers: list[WorkerPeer] = []
    now = 1000.0
    for step in range(300):
        choice = rng.random()
        if choice < 0.15 or not peers:
            peers.append(await hello_later(coordinator, rng.choice([None, f"k{step}"])))
        elif choice < 0.2:
            peer = await join(coordinator)
            peers.append(peer)
            if rng.random() < 0.5:
                now += 0.5
                check(feed, reference, now)  # a tick between its hello and its key
            peer.worker_key = f"late{step}"
            peer.standing = coordinator.scheduler.standing(peer.worker_key)
        elif choice < 0.3:
            await leave(coordinator, peers.pop(rng.randrange(len(peers))))
        elif choice < 0.4:
            await coordinator.submit(OP, [ARGS] * rng.randint(1, 5), SubmitOptions())
        elif choice < 0.6:
            await answer(coordinator, rng.choice(peers), rng.uniform(1, 50))
        elif choice < 0.65:
            peer = rng.choice(peers)
            for task_id in sorted(coordinator.scheduler.workers[peer.worker_id].in_flight):
                await coordinator.apply(
                    TaskErrorReported(
                        worker_id=peer.worker_id,
                        task_id=task_id,
                        message="boom",
                        now=time.monotonic(),
                        stimulus_id="error",
                    )
                )
        elif choice < 0.7:
            rng.choice(peers).agent = rng.choice([CHROME, "curl/8", None])
        elif choice < 0.72:
            rng.choice(peers).tasks_done += 1
        elif choice < 0.75:  # joined, no hello yet: an exercise-style worker
            worker_id = coordinator.next_id()
            peer = WorkerPeer(
                worker_id, "127.0.0.1:2", "/", None, time.time(), Sink(), rules(worker_id)
            )
            coordinator.workers[peer.worker_id] = peer
            if rng.random() < 0.5:  # the feed may see it before the scheduler does
                now += 0.5
                check(feed, reference, now)
            await coordinator.apply(
                WorkerJoined(worker_id=peer.worker_id, now=time.monotonic(), stimulus_id="j")
            )
            if rng.random() < 0.5:
                await coordinator.apply(
                    WorkerIntroduced(
                        worker_id=peer.worker_id,
                        ops=frozenset({OP}),
                        concurrency=2,
                        now=time.monotonic(),
                        stimulus_id="h",
                    )
                )
            peers.append(peer)
        else:
            now += 0.5
            check(feed, reference, now)
    now += 0.5
    check(feed, reference, now)
    now += 0.5
    frame = feed.advance(now)
    assert frame is not None and not {"workers", "gone", "history"} & frame.keys()


def check(feed: Feed, reference: Feed, now: float) -> None:
    frame = feed.advance(now)
    assert frame is not None
    workers, gone, history = reference._worker_changes(None)
    assert frame.get("workers", []) == workers
    assert frame.get("gone", []) == gone
    assert [_timeless(row) for row in frame.get("history", [])] == [_timeless(r) for r in history]
    snapshot = feed.snapshot(now)
    assert snapshot["workers"] == list(reference._sent_workers.values())


def _timeless(row: dict[str, Any]) -> dict[str, Any]:
    """A history row but its ``last_seen`` (a connected worker's is the time it is built)."""
    return {k: v for k, v in row.items() if k != "last_seen"}
