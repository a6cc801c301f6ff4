"""The dashboard feed in-process: a real Coordinator on a MemoryStore, workers without sockets,
and viewers whose frames are replayed the way the page does (docs/dashboard.md). Whatever
happens between ticks, every viewer ends up holding what a fresh snapshot shows."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported
from browsergrid.protocol import SubmitOptions
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._feed import Viewer
from browsergrid.store import MemoryStore
from tests.server._fakes import join, leave


class Page:
    """A viewer and the state its frames build, as model.js builds it."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.viewer = Viewer(cast(Any, None))
        coordinator.feed.viewers.add(self.viewer)
        self.state: dict[str, Any] = {}
        self.snapshots = 0

    def take(self) -> None:
        """Receive the frame the feed left for it, if any."""
        frame, self.viewer.waiting = self.viewer.waiting, None
        if frame is not None:
            self.apply(json.loads(frame))

    def apply(self, frame: dict[str, Any]) -> None:
        state = self.state
        if frame["type"] == "snapshot":
            self.snapshots += 1
            state.clear()
            state["workers"] = {row["id"]: row for row in frame["workers"]}
            state["jobs"] = {row["id"]: row for row in frame["jobs"]}
            state["results"] = list(frame["results"])
            state["events"] = list(frame["events"])
            state["history"] = {row["key"]: row for row in frame["history"]}
            state["throughput"] = {s[0]: s for s in frame["throughput"]}
            return
        workers = state["workers"]
        for row in frame.get("workers", []):
            if row["id"] in workers:
                workers[row["id"]] = workers[row["id"]] | row
            else:
                assert "kind" in row, f"a partial row for a worker the page lacks: {row}"
                workers[row["id"]] = row
        for worker_id in frame.get("gone", []):
            workers.pop(worker_id, None)
        for row in frame.get("jobs", []):
            state["jobs"][row["id"]] = row
        state["results"] += frame.get("results", [])
        state["events"] += frame.get("events", [])
        for row in frame.get("history", []):
            state["history"][row["key"]] = row
        for second in frame.get("throughput", []):
            state["throughput"][second[0]] = second


async def started() -> Coordinator:
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), MemoryStore())
    await coordinator.start()
    return coordinator


async def submit(coordinator: Coordinator, count: int) -> None:
    args = [{"initial": 1, "factor": 2, "times": 1}] * count
    await coordinator.submit("repeat_multiply", args, SubmitOptions(name="feed"))


async def answer_all(coordinator: Coordinator) -> None:
    """Every worker answers every task it holds."""
    for worker in list(coordinator.scheduler.workers.values()):
        for task_id in sorted(worker.in_flight):
            await coordinator.apply(
                ResultReported(
                    worker_id=worker.worker_id,
                    task_id=task_id,
                    result=2.0,
                    duration_ms=1.0,
                    now=time.monotonic(),
                    stimulus_id="result",
                )
            )


async def test_viewers_joining_at_any_time_hold_what_a_fresh_snapshot_shows() -> None:
    coordinator = await started()
    feed = coordinator.feed
    first = Page(coordinator)
    now = 1000.0
    await feed.tick(now)
    first.take()
    assert first.snapshots == 1
    pages = [first]
    peers = [await join(coordinator, f"k{i}") for i in range(3)]
    for step in range(8):
        # between two ticks: workers come and go, work is done, a worker joins and leaves
        passing = await join(coordinator)
        if step % 2:
            await leave(coordinator, peers.pop(0))
            peers.append(await join(coordinator, f"k{step}"))
        await submit(coordinator, 5)
        await answer_all(coordinator)
        await leave(coordinator, passing)
        if step == 3:
            pages.append(Page(coordinator))  # a second viewer arrives mid-way
        now += 0.5
        await feed.tick(now)
        for page in pages:
            page.take()
    await feed.tick(now + 0.5)
    for page in pages:
        page.take()
    fresh = Page(coordinator)
    await feed.tick(now + 1.0)
    fresh.take()
    assert [page.snapshots for page in (*pages, fresh)] == [1, 1, 1]
    for page in pages:
        assert page.state["workers"] == fresh.state["workers"]
        assert history(page) == history(fresh)
        assert progress(page) == progress(fresh)
        tasks = [row["task_id"] for row in page.state["results"]]
        assert len(tasks) == len(set(tasks)), "a result was sent twice"
        events = [(row["worker_id"], row["kind"]) for row in page.state["events"]]
        assert len(events) == len(set(events)), "an event was sent twice"
    assert sorted(fresh.state["workers"]) == sorted(p.worker_id for p in peers)
    connected = {key for key, row in fresh.state["history"].items() if row["connected"]}
    assert connected == {peer.worker_key for peer in peers}
    assert sorted(fresh.state["history"]) == ["k0", "k1", "k2", "k3", "k5", "k7"]


def history(page: Page) -> dict[str, Any]:
    """History rows; those of connected workers are as of when they connected (their live
    figures are in their worker rows), so only who is connected is compared for them."""
    return {
        key: row["connected"] if row["connected"] else row
        for key, row in page.state["history"].items()
    }


def progress(page: Page) -> dict[int, tuple[str, int, int]]:
    return {j["id"]: (j["state"], j["done"], j["total"]) for j in page.state["jobs"].values()}


async def test_a_worker_back_under_the_same_key_within_a_tick_stays_connected() -> None:
    coordinator = await started()
    page = Page(coordinator)
    await coordinator.feed.tick(1000.0)
    page.take()
    old = await join(coordinator, "tab-1")
    await coordinator.feed.tick(1000.5)
    page.take()
    await leave(coordinator, old)
    await join(coordinator, "tab-1")  # the tab reloaded
    await coordinator.feed.tick(1001.0)
    page.take()
    assert page.state["history"]["tab-1"]["connected"] is True


async def test_a_slow_viewer_gets_a_snapshot_once_it_has_sent_what_it_was_sending() -> None:
    coordinator = await started()
    feed = coordinator.feed
    slow = Page(coordinator)
    await feed.tick(1000.0)
    slow.take()
    slow.viewer.sending = True  # a big frame is still going out
    await join(coordinator)
    await feed.tick(1000.5)  # one frame may wait behind the one being sent
    assert slow.viewer.waiting is not None and not slow.viewer.needs_snapshot
    await feed.tick(1001.0)  # it did not take it: it fell behind
    assert slow.viewer.waiting is None and slow.viewer.needs_snapshot
    await feed.tick(1001.5)  # still sending: nothing is built for it
    assert slow.viewer.waiting is None
    slow.viewer.sending = False
    await feed.tick(1002.0)
    slow.take()
    assert slow.snapshots == 2
    assert len(slow.state["workers"]) == 1
