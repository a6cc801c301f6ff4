"""The dashboard's live feed with 1,000 workers: bounded frames, differences only, fair spread.

One real coordinator (``--memory``) and a swarm of 1,000 fake browser workers in this process
(``bench/_swarm.py``). The module runs one scenario once (``watched``): a viewer opens the
feed, a job of 60,000 trivial tasks runs over the grid while 200 more workers join at once and
``/healthz`` is probed from a thread, then the grid goes idle. Each test checks one property
of what was recorded. About 20 s in all on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from bench._swarm import Swarm
from tests._support import AUTH, Coordinator

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.processes]

WORKERS = 1_000
LATE_WORKERS = 200  # join at once while the job runs: more than 50 events in one tick
TASKS = 60_000  # about 4 s of work for the grid here; the feed is watched for 3 s of it
WINDOW_S = 3.0


@dataclass
class Frame:
    at: float  # time.monotonic() when read
    size: int  # bytes of JSON text
    body: dict[str, Any]


@dataclass
class Watched:
    """What the scenario recorded."""

    snapshot: Frame
    frames: list[Frame]  # every frame after the snapshot
    posted_at: float  # the job was accepted
    grow_at: float  # the late workers began to connect
    finished_at: float  # the job was seen finished
    idle_at: float  # from here on, nothing happens on the grid
    ids: set[int]  # worker ids of the first 1,000
    job_done: list[int]  # tasks of the job done by each of the first 1,000 workers
    health: list[tuple[float, int]] = field(default_factory=list)  # (seconds, status)


class HealthProbe(threading.Thread):
    """GET /healthz every 0.2 s from its own thread, so that the swarm's busy event loop
    in this process does not delay the requests."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=AUTH, base_url=self.base, timeout=10, trust_env=False) as http:
            while not self.halt.is_set():
                started = time.perf_counter()
                status = http.get("/healthz").status_code
                self.samples.append((time.perf_counter() - started, status))
                self.halt.wait(0.2)


@pytest.fixture(scope="module")
def server() -> Iterator[Coordinator]:
    coordinator = Coordinator(0, ("--memory", "--quiet", "--max-connections-per-address", "0"))
    try:
        yield coordinator
    finally:
        coordinator.end()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watched(server: Coordinator) -> AsyncIterator[Watched]:
    base = f"http://127.0.0.1:{server.port}"
    url = f"ws://127.0.0.1:{server.port}/dashboard/live"
    async with (
        Swarm(server.ws_url, WORKERS) as swarm,
        websockets.connect(url, max_size=None, compression=None, proxy=None) as viewer,
        httpx.AsyncClient(headers=AUTH, base_url=base, timeout=60, trust_env=False) as http,
    ):
        first = await asyncio.wait_for(viewer.recv(), 10)
        snapshot = Frame(time.monotonic(), len(first), json.loads(first))
        frames: list[Frame] = []

        finished = asyncio.Event()

        async def read() -> None:
            async for message in viewer:
                frame = Frame(time.monotonic(), len(message), json.loads(message))
                frames.append(frame)
                jobs = frame.body.get("jobs", [])
                if any(j["name"] == "scale" and j["state"] == "finished" for j in jobs):
                    finished.set()

        reader = asyncio.create_task(read())
        probe = HealthProbe(base)
        try:
            before = swarm.counts()
            response = await http.post(
                "/api/jobs",
                json={
                    "op": "repeat_multiply",
                    "name": "scale",
                    "args": [{"initial": 1, "factor": 1, "times": 1}] * TASKS,
                },
            )
            assert response.status_code == 201, response.text
            posted_at = time.monotonic()
            # probed from now on: accepting a job this big holds the event loop for a while
            probe.start()
            await asyncio.sleep(1.0)
            grow_at = time.monotonic()
            await swarm.grow(LATE_WORKERS, batch=LATE_WORKERS)
            await asyncio.wait_for(finished.wait(), 60)  # as the feed shows it
            finished_at = time.monotonic()
            await asyncio.sleep(1.5)  # the tick after the last result sends the idle rows
            idle_at = time.monotonic()
            await asyncio.sleep(2.5)
        finally:
            probe.halt.set()
            if probe.is_alive():
                probe.join(15)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        after = swarm.counts()
        yield Watched(
            snapshot=snapshot,
            frames=frames,
            posted_at=posted_at,
            grow_at=grow_at,
            finished_at=finished_at,
            idle_at=idle_at,
            ids={w.worker_id for w in swarm.workers[:WORKERS] if w.worker_id is not None},
            job_done=[a - b for a, b in zip(after[:WORKERS], before, strict=True)],
            health=probe.samples,
        )


async def test_snapshot_lists_every_worker(watched: Watched) -> None:
    snapshot = watched.snapshot.body
    assert snapshot["type"] == "snapshot"
    assert snapshot["totals"]["workers"] == WORKERS
    assert len(watched.ids) == WORKERS
    assert {row["id"] for row in snapshot["workers"]} == watched.ids
    assert {row["kind"] for row in snapshot["workers"]} == {"browser"}
    kinds = {(row["browser"], row["os"]) for row in snapshot["workers"]}
    assert len(kinds) >= 5  # the swarm mixes 7 User-Agents
    assert all(row["browser"] and row["os"] for row in snapshot["workers"])


async def test_at_most_two_frames_a_second_while_busy(watched: Watched) -> None:
    end = min(watched.posted_at + WINDOW_S, watched.finished_at)
    assert end - watched.posted_at >= 1.5, "the job ended too soon to be watched"
    window = [f for f in watched.frames if watched.posted_at <= f.at < end]
    # ticks are 0.5 s apart (longer while the coordinator is saturated): at most 6 + 2 in 3 s
    assert 1 <= len(window) <= 2 * (end - watched.posted_at) + 2, [
        round(f.at - watched.posted_at, 2) for f in window
    ]
    span = watched.frames[-1].at - watched.frames[0].at
    assert len(watched.frames) <= 2 * span + 3
    # the viewer kept up: no second snapshot (a fresh one is sent only to a viewer that fell
    # behind)
    assert [f.body["type"] for f in watched.frames] == ["update"] * len(watched.frames)


async def test_update_rows_are_capped(watched: Watched) -> None:
    updates = [f.body for f in watched.frames]
    assert max(len(u.get("results", [])) for u in updates) == 20  # a busy grid fills them
    assert all(len(u.get("results", [])) <= 20 for u in updates)
    assert all(len(u.get("events", [])) <= 50 for u in updates)
    during = [u for u in updates if "jobs" in u]
    assert during, "no update showed the job"


async def test_events_dropped_when_many_workers_join_at_once(watched: Watched) -> None:
    late = [f.body for f in watched.frames if f.at >= watched.grow_at]
    events = [e for u in late for e in u.get("events", [])]
    dropped = [u.get("events_dropped", 0) for u in late]
    # every connect is accounted for, listed or counted as dropped
    assert len(events) + sum(dropped) == LATE_WORKERS
    assert {e["kind"] for e in events} == {"connected"}
    assert all(e["label"] != "unknown" for e in events)
    # 200 joined within a tick or two: more than 50 in one tick, so some were left out, and
    # a frame that drops events lists the 50 latest
    assert any(dropped)
    assert all(len(u.get("events", [])) == 50 for u in late if u.get("events_dropped"))


async def test_an_idle_grid_sends_small_differences(watched: Watched) -> None:
    idle = [f for f in watched.frames if f.at >= watched.idle_at]
    assert idle, "no frame while idle"
    # An idle tick carries type, now and totals (about 170 bytes here), perhaps a throughput
    # second: nothing per worker. One worker row alone is about 400 bytes, and the snapshot
    # of the grid about 400 KB, so 2 KB means no per-worker rows, only differences.
    assert max(f.size for f in idle) < 2_000, [f.body for f in idle]
    assert all("workers" not in f.body for f in idle)
    assert watched.snapshot.size > 200 * max(f.size for f in idle)


async def test_tasks_spread_over_the_workers(watched: Watched) -> None:
    done = watched.job_done
    assert sum(done) <= TASKS
    assert sum(1 for n in done if n > 0) >= 900
    jain = sum(done) ** 2 / (len(done) * sum(n * n for n in done))
    assert jain >= 0.8, (min(done), statistics.median(done), max(done))


async def test_healthz_answers_quickly_while_busy(watched: Watched) -> None:
    assert len(watched.health) >= 10
    assert {status for _, status in watched.health} == {200}
    # A coordinator kept busy by 1,000 workers answers in 0.1-0.45 s here (each turn of its
    # event loop serves the sockets that are ready); with two CPU hogs beside this test, up to
    # 0.86 s. 2 s leaves room for a loaded machine and still fails if a tick or the feed held
    # the loop for seconds.
    assert max(seconds for seconds, _ in watched.health) < 2.0
