"""The dashboard of a coordinator in a grid (``serve --redis``) shows the whole grid: two real
coordinators on a real Redis, a real Python worker on each, and the live feed of one of
them read as the page reads it (docs/dashboard.md, tests/fixtures/dashboard_feed_grid.json)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import websockets

from browsergrid.config import ServeConfig
from browsergrid.server._coordinator import Coordinator as InProcess
from browsergrid.server._grid_snapshot import (
    SHARED_WORKERS,
    Shared,
    read_shared,
    shared_workers,
    snapshot,
)
from browsergrid.store import MemoryStore
from tests._support import FIXTURES, ROOT, Coordinator, Process, slow_tasks, submit_job
from tests.server._fakes import join

Row = dict[str, Any]


class GridPage:
    """A dashboard connection, and what the page holds after each frame (model.js)."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Row] = []
        self.totals: Row = {}
        self.workers: dict[int, Row] = {}
        self.jobs: dict[int, Row] = {}
        self.throughput: dict[int, list[int]] = {}
        self.grid_id: str | None = None
        self.coordinators: list[Row] = []
        self.remote: dict[tuple[str, int], Row] = {}

    async def next_frame(self, wait_s: float) -> Row:
        frame: Row = json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))
        self.frames.append(frame)
        self.apply(frame)
        return frame

    def apply(self, frame: Row) -> None:
        self.totals = frame["totals"]
        grid = frame.get("grid", {})
        if frame["type"] == "snapshot":
            self.workers = {row["id"]: row for row in frame["workers"]}
            self.jobs = {row["id"]: row for row in frame["jobs"]}
            self.throughput = {s[0]: s for s in frame["throughput"]}
            self.grid_id = grid.get("id")
            self.coordinators = grid.get("coordinators", [])
            self.remote = {(row["coordinator"], row["id"]): row for row in grid.get("workers", [])}
            return
        for row in frame.get("workers", []):
            self.workers[row["id"]] = self.workers.get(row["id"], {}) | row
        for worker_id in frame.get("gone", []):
            self.workers.pop(worker_id, None)
        for row in frame.get("jobs", []):
            self.jobs[row["id"]] = row
        for second in frame.get("throughput", []):
            self.throughput[second[0]] = second
        if "coordinators" in grid:
            self.coordinators = grid["coordinators"]
        for row in grid.get("workers", []):
            key = (row["coordinator"], row["id"])
            if key in self.remote:
                self.remote[key] = self.remote[key] | row
            else:
                assert "kind" in row, f"a partial row for a worker the page lacks: {row}"
                self.remote[key] = row
        for coordinator_id, worker_id in grid.get("gone", []):
            self.remote.pop((coordinator_id, worker_id), None)

    async def until(self, condition: Callable[[], bool], wait_s: float = 20) -> None:
        """Read frames until what the page holds satisfies ``condition``."""
        deadline = time.monotonic() + wait_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in {wait_s} s; last frame: {self.frames[-1]}")
            await self.next_frame(left)

    def coordinator_ids(self) -> set[str]:
        return {row["id"] for row in self.coordinators}

    def held(self) -> Row:
        """What a fresh snapshot would show of the grid, jobs and throughput."""
        return {
            "totals": {k: v for k, v in self.totals.items() if k != "viewers"},
            "jobs": self.jobs,
            "throughput": self.throughput,
            "coordinators": self.coordinators,
            "remote": self.remote,
        }


@asynccontextmanager
async def dashboard(coordinator: Coordinator) -> AsyncIterator[GridPage]:
    url = f"ws://127.0.0.1:{coordinator.port}/dashboard/live"
    async with websockets.connect(url, max_size=None) as ws:
        yield GridPage(ws)


def grid_fixture() -> list[Row]:
    frames: list[Row] = json.loads((FIXTURES / "dashboard_feed_grid.json").read_text())["frames"]
    return frames


def keys_of(rows: list[Row]) -> set[str]:
    return set().union(*(row.keys() for row in rows))


@pytest.mark.timeout(120)
async def test_every_coordinator_dashboard_shows_the_whole_grid(
    redis_url: str,
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    a = start_coordinator("--redis", redis_url)
    b = start_coordinator("--redis", redis_url)
    a_id = a.event("grid_joined")["coordinator_id"]
    b_id = b.event("grid_joined")["coordinator_id"]
    for coordinator, name in ((a, "wa"), (b, "wb")):
        worker = start_worker(coordinator.ws_url, "--data-dir", str(tmp_path / name))
        worker.wait_for_line(lambda line: "welcomed" in line)

    async with dashboard(a) as page:
        await page.until(lambda: page.grid_id is not None)
        first = page.frames[0]
        expected = grid_fixture()[0]
        assert first["type"] == "snapshot"
        assert set(first) == set(expected)
        assert set(first["grid"]) == set(expected["grid"])
        assert set(first["totals"]) == set(expected["totals"])
        assert page.grid_id == a_id

        # both coordinators, and the worker connected to B, marked with B
        await page.until(lambda: page.coordinator_ids() == {a_id, b_id} and bool(page.remote))
        assert keys_of(page.coordinators) == keys_of(expected["grid"]["coordinators"])
        mine, theirs = (
            next(row for row in page.coordinators if row["id"] == cid) for cid in (a_id, b_id)
        )
        assert (mine["this"], theirs["this"]) == (True, False)
        assert mine["url"] == f"http://127.0.0.1:{a.port}"
        assert theirs["url"] == f"http://127.0.0.1:{b.port}"
        assert theirs["workers"] == theirs["listed"] == 1
        ((coordinator_id, _),) = page.remote
        (remote,) = page.remote.values()
        assert coordinator_id == b_id
        assert set(remote) == keys_of(expected["grid"]["workers"])
        assert remote["kind"] == "python" and remote["browser"].startswith("Python 3.")
        assert remote["agent"] is None and remote["lifetime_done"] is None
        assert [row["kind"] for row in page.workers.values()] == ["python"]  # A's own
        assert page.totals["workers"] == 2

        # a job submitted to B, run by both: A shows its grid-wide counts as it runs
        total = 400
        job_id = submit_job(
            b.port, {"op": "repeat_multiply", "name": "grid", "args": slow_tasks(total)}
        )

        def running() -> bool:
            row = page.jobs.get(job_id)
            return row is not None and row["state"] == "running" and row["leased"] > 0

        await page.until(running)
        row = page.jobs[job_id]
        assert row["name"] == "grid" and row["total"] == total
        assert row["queued"] + row["leased"] + row["done"] + row["failed"] == total
        assert page.totals["leased"] >= row["leased"]
        await page.until(lambda: page.jobs[job_id]["state"] == "finished", wait_s=60)
        row = page.jobs[job_id]
        assert (row["done"], row["queued"], row["leased"], row["failed"]) == (total, 0, 0, 0)

        # both workers ran part of it: A's totals and throughput count B's results too
        await page.until(
            lambda: (
                page.totals["done"] >= total + 2  # and the two welcome tasks
                and sum(s[1] for s in page.throughput.values()) >= total + 2
            ),
            wait_s=15,
        )
        (own,) = page.workers.values()
        (remote,) = page.remote.values()
        assert own["done"] > 1 and remote["done"] > 1, (own["done"], remote["done"])
        assert own["done"] + remote["done"] == total + 2
        assert sum(s[1] for s in page.throughput.values()) == total + 2

        # what the page holds equals what a new viewer is shown
        async with dashboard(a) as fresh:
            await fresh.next_frame(10)
            while True:  # the update of the same tick as fresh's snapshot
                frame = await page.next_frame(10)
                if frame["now"] >= fresh.frames[0]["now"]:
                    break
            assert frame["now"] == fresh.frames[0]["now"]
            assert page.held() == fresh.held()

        # B leaves: its row and its worker's row go
        b.signal(signal.SIGTERM)
        assert b.wait() == 0
        await page.until(lambda: page.coordinator_ids() == {a_id} and not page.remote)
        assert page.totals["workers"] == 1


# --- the snapshot a coordinator shares, in process ---------------------------------------


async def test_a_snapshot_shares_counts_seconds_and_the_first_workers_rows() -> None:
    coordinator = InProcess(ServeConfig(memory=True, welcome=None), MemoryStore())
    await coordinator.start()
    coordinator.public_url = "http://127.0.0.1:9999"
    for _ in range(5):
        await join(coordinator, concurrency=2)
    coordinator.stats.results, coordinator.stats.failed = 7, 1
    coordinator.feed.count(1000.2)
    coordinator.feed.count(1001.5)  # closes second 1000
    shared = read_shared(snapshot(coordinator))
    assert shared is not None
    assert (shared.workers, shared.results, shared.url) == (5, 7, "http://127.0.0.1:9999")
    assert shared.ops == ["repeat_multiply"]
    assert shared.seconds == [(1000, 7, 1)]
    assert [row.id for row in shared.rows] == [1, 2, 3, 4, 5]
    row = shared.rows[0]
    assert (row.kind, row.browser, row.os, row.state, row.concurrency) == (
        "browser",
        "Chrome 131",
        "Linux",
        "idle",
        2,
    )
    assert [r.id for r in shared_workers(coordinator, limit=3)] == [1, 2, 3]
    raw = json.loads(snapshot(coordinator))
    assert isinstance(raw["rows"][0], list)  # a row is a JSON array: small
    await coordinator.stop()


def test_snapshots_of_other_versions_are_read_as_far_as_they_go() -> None:
    assert read_shared(b'{"workers": 2}') == Shared(workers=2)  # an earlier version's
    row = [3, None, "python", "Python 3.12", "Linux", "10.0.0.8:1", 1.0, "idle"]
    row += [0, 4, 9, 0, 1.5, 2.0, "a field added later"]
    later = msgspec.json.encode({"workers": 1, "rows": [row], "added": {"later": True}})
    shared = read_shared(later)
    assert shared is not None and shared.rows[0].id == 3 and shared.rows[0].speed_ms == 2.0
    assert read_shared(b'{"rows": [["not a row"]]}') is None
    assert read_shared(b"not json") is None


def test_the_page_says_how_many_rows_a_coordinator_shares() -> None:
    strings = (ROOT / "src/browsergrid/web/js/dashboard/strings.js").read_text(encoding="utf-8")
    english, spanish = re.findall(r"workersUnlisted: [^`]*`[^`]*`", strings)
    assert f"first {SHARED_WORKERS})" in english
    assert f"primeros {SHARED_WORKERS})" in spanish
