"""The dashboard's live feed, /metrics and the demo, on a real coordinator with real workers."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests._support import AUTH, FIXTURES, Coordinator, Process


class Viewer:
    """A dashboard connection that keeps the frames it receives."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.workers: dict[int, dict[str, Any]] = {}  # as the page holds them

    async def next_frame(self, wait_s: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))
        self.frames.append(frame)
        if frame["type"] == "snapshot":
            self.workers = {row["id"]: row for row in frame["workers"]}
        for row in frame.get("workers", []) if frame["type"] == "update" else []:
            self.workers[row["id"]] = self.workers.get(row["id"], {}) | row
        for worker_id in frame.get("gone", []):
            self.workers.pop(worker_id, None)
        return frame

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], wait_s: float = 20
    ) -> dict[str, Any]:
        """Read frames until one satisfies ``condition``; returns it."""
        deadline = time.monotonic() + wait_s
        while True:
            frame = await self.next_frame(max(0.1, deadline - time.monotonic()))
            if condition(frame):
                return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no such frame; last: {frame}")

    def holds_python_worker(self, _: dict[str, Any]) -> bool:
        return any(row["kind"] == "python" for row in self.workers.values())

    def seen(self, key: str) -> list[dict[str, Any]]:
        """Every row under ``key`` in the frames received so far, in order."""
        return [row for frame in self.frames for row in frame.get(key, [])]


async def open_viewer(coordinator: Coordinator) -> AsyncIterator[Viewer]:
    url = f"ws://127.0.0.1:{coordinator.port}/dashboard/live"
    async with websockets.connect(url) as ws:
        yield Viewer(ws)


def worker(coordinator: Coordinator, *extra: str) -> Process:
    process = Process([sys.executable, "-m", "browsergrid", "worker", coordinator.ws_url, *extra])
    process.wait_for_line(lambda line: "welcomed" in line)
    return process


def keys_of(rows: list[dict[str, Any]]) -> set[str]:
    return set().union(*(row.keys() for row in rows))


def fixture_frame(kind: str) -> dict[str, Any]:
    feed = json.loads((FIXTURES / "dashboard_feed.json").read_text(encoding="utf-8"))
    frames: list[dict[str, Any]] = feed["frames"]
    return next(f for f in frames if f["type"] == kind)


async def test_snapshot_has_every_documented_field(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator()
    python = worker(coordinator)
    try:
        async for viewer in open_viewer(coordinator):
            snapshot = await viewer.until(lambda f: f["type"] == "snapshot")
            expected = fixture_frame("snapshot")
            assert set(snapshot) == set(expected)
            assert set(snapshot["server"]) == set(expected["server"])
            assert set(snapshot["server"]["demo"]) == set(expected["server"]["demo"])
            assert set(snapshot["totals"]) == set(expected["totals"])
            assert keys_of(snapshot["workers"]) == keys_of(expected["workers"])
            assert keys_of(snapshot["events"]) == keys_of(expected["events"])
            assert keys_of(snapshot["history"]) == keys_of(expected["history"])
            row = snapshot["workers"][0]
            assert row["kind"] == "python"
            assert row["browser"].startswith("Python 3.")
            assert row["os"] == "Linux"
            assert row["state"] == "idle"
            assert row["speed_ms"] is not None  # its welcome task was timed
            assert snapshot["totals"]["workers"] == 1
            assert snapshot["totals"]["viewers"] == 1
    finally:
        python.end()


async def test_workers_jobs_results_and_throughput_arrive_live(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator()
    base = f"http://127.0.0.1:{coordinator.port}"
    async for viewer in open_viewer(coordinator):
        snapshot = await viewer.next_frame()
        assert snapshot["type"] == "snapshot"
        assert snapshot["workers"] == []
        python = worker(coordinator, "--concurrency", "2")
        try:
            joined = await viewer.until(lambda f: bool(f.get("workers")))
            assert joined["type"] == "update"  # a worker that joined comes whole
            assert keys_of(joined["workers"]) == keys_of(fixture_frame("snapshot")["workers"])
            await viewer.until(viewer.holds_python_worker)
            (row,) = viewer.workers.values()  # introduced itself: its row says what it is
            if not viewer.seen("events"):
                await viewer.until(lambda f: bool(f.get("events")))
            connected = viewer.seen("events")[-1]
            assert connected["kind"] == "connected"
            assert connected["worker_id"] == row["id"]
            assert connected["label"].startswith("Python 3.")
            # what the page names it by, in its own language ("exercise": no hello yet at connect)
            assert connected["worker_kind"] in {"python", "exercise"}
            assert (connected["browser"], connected["os"]) == (row["browser"], row["os"])
            async with httpx.AsyncClient(headers=AUTH, base_url=base) as http:
                response = await http.post(
                    "/api/jobs",
                    json={
                        "op": "repeat_multiply",
                        "name": "live",
                        "args": [{"initial": 1, "factor": 2, "times": k} for k in range(200)],
                    },
                )
                assert response.status_code == 201
                job_id = response.json()["job_id"]

            def job_done(frame: dict[str, Any], job_id: int = job_id) -> bool:
                return any(
                    j["id"] == job_id and j["state"] == "finished" for j in frame.get("jobs", [])
                )

            done = await viewer.until(job_done)
            job = next(j for j in done["jobs"] if j["id"] == job_id)
            assert (job["name"], job["op"], job["done"], job["total"]) == (
                "live",
                "repeat_multiply",
                200,
                200,
            )
            assert job["finished_at"] is not None
            assert set(job) == keys_of(fixture_frame("snapshot")["jobs"])
            seen_results = viewer.seen("results")
            assert any(r["job_id"] == job_id for r in seen_results)
            assert all(len(r["result"]) <= 120 for r in seen_results)
            if not viewer.seen("throughput"):
                await viewer.until(lambda f: bool(f.get("throughput")))
            assert sum(done for _, done, _ in viewer.seen("throughput")) >= 1
            assert viewer.frames[-1]["totals"]["done"] >= 200
        finally:
            python.end()
        gone = await viewer.until(lambda f: bool(f.get("gone")))
        assert gone["gone"] == [row["id"]]
        assert gone["totals"]["workers"] == 0
        left = viewer.seen("events")
        assert left[-1]["kind"] == "disconnected"
        assert left[-1]["worker_id"] == row["id"]
        history = viewer.seen("history")
        assert history[-1]["key"] == row["key"]
        assert history[-1]["connected"] is False
        assert history[-1]["done"] >= 200


async def test_a_busy_grid_sends_at_most_two_frames_a_second(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory")
    python = worker(coordinator, "--concurrency", "2")
    try:
        async for viewer in open_viewer(coordinator):
            await viewer.next_frame()  # snapshot
            async with httpx.AsyncClient(
                headers=AUTH, base_url=f"http://127.0.0.1:{coordinator.port}"
            ) as h:
                args = [{"initial": 1, "factor": 1, "times": 1}] * 20_000
                response = await h.post("/api/jobs", json={"op": "repeat_multiply", "args": args})
                assert response.status_code == 201
            start = time.monotonic()
            frames = 0
            while (left := 3.0 - (time.monotonic() - start)) > 0:
                try:
                    await viewer.next_frame(wait_s=left)
                except TimeoutError:
                    break
                frames += 1
            assert 2 <= frames <= 8  # ticks are 0.5 s apart: about 6 in 3 s
            assert max(len(f.get("results", [])) for f in viewer.frames) <= 20
    finally:
        python.end()


async def test_history_survives_a_restart(start_coordinator: Callable[..., Coordinator]) -> None:
    data = tempfile.mkdtemp(prefix="browsergrid-dash-")
    first = start_coordinator("--data-dir", data)
    python = worker(first)
    async with httpx.AsyncClient(headers=AUTH, base_url=f"http://127.0.0.1:{first.port}") as http:
        response = await http.post(
            "/api/jobs",
            json={"op": "prime_count", "name": "before", "args": [{"lo": 0, "hi": 1000}] * 50},
        )
        job_id = response.json()["job_id"]
        async with http.stream("GET", f"/api/jobs/{job_id}/results?follow=true") as stream:
            async for _ in stream.aiter_lines():
                pass
    python.end()
    await asyncio.sleep(1.2)  # a second closes; the last is saved at shutdown anyway
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = start_coordinator("--data-dir", data, port=0)
    async for viewer in open_viewer(second):
        snapshot = await viewer.next_frame()
    job = next(j for j in snapshot["jobs"] if j["id"] == job_id)
    assert (job["name"], job["state"], job["done"]) == ("before", "finished", 50)
    assert sum(done for _, done, _ in snapshot["throughput"]) >= 50
    assert snapshot["history"] and snapshot["history"][0]["done"] >= 50
    assert snapshot["history"][0]["connected"] is False
    second.end()
    shutil.rmtree(data, ignore_errors=True)


def test_metrics_in_prometheus_format(start_coordinator: Callable[..., Coordinator]) -> None:
    coordinator = start_coordinator()
    python = worker(coordinator)
    try:
        with httpx.Client(
            headers=AUTH, base_url=f"http://127.0.0.1:{coordinator.port}", timeout=30
        ) as http:
            accepted = http.post(
                "/api/jobs",
                json={
                    "op": "repeat_multiply",
                    "args": [{"initial": 1, "factor": 2, "times": 3}] * 30,
                },
            ).json()
            with http.stream("GET", f"/api/jobs/{accepted['job_id']}/results?follow=true") as s:
                assert len([line for line in s.iter_lines() if line]) == 30
            http.post("/api/jobs", json={"op": "no_such_op", "args": [{}]})
            response = http.get("/metrics")
    finally:
        python.end()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("browsergrid_workers_connected", (("kind", "python"),))] == 1
    assert samples[("browsergrid_tasks", (("state", "done"),))] == 30
    assert samples[("browsergrid_results_total", ())] >= 31  # and the welcome task
    assert samples[("browsergrid_task_latency_seconds_count", ())] >= 31
    assert samples[("browsergrid_task_latency_seconds_bucket", (("le", "+Inf"),))] >= 31
    assert samples[("browsergrid_errors_total", (("kind", "lease_expired"),))] == 0
    assert samples[("browsergrid_store_healthy", ())] == 1
    assert "process_resident_memory_bytes" in {name for name, _ in samples}


def test_demo_job_paints_80_tiles(start_coordinator: Callable[..., Coordinator]) -> None:
    coordinator = start_coordinator()
    python = worker(coordinator, "--concurrency", "2")
    try:
        with httpx.Client(
            headers=AUTH, base_url=f"http://127.0.0.1:{coordinator.port}", timeout=60
        ) as http:
            accepted = http.post("/api/demo")
            assert accepted.status_code == 201, accepted.text
            job_id = accepted.json()["job_id"]
            assert accepted.json()["count"] == 80
            with http.stream("GET", f"/api/jobs/{job_id}/results?follow=true") as stream:
                tiles = [json.loads(line) for line in stream.iter_lines() if line]
            job = http.get(f"/api/jobs/{job_id}").json()
    finally:
        python.end()
    assert job["name"] == "demo" and job["op"] == "mandelbrot_tile"
    assert sorted(t["index"] for t in tiles) == list(range(80))
    assert all(len(t["result"]["counts"]) == 64 * 64 for t in tiles)
    # the middle of the set is inside (max_iter), the far left corner escapes at once
    middle = next(t for t in tiles if t["index"] == 4 * 10 + 5)
    assert 200 in middle["result"]["counts"]
    assert max(next(t for t in tiles if t["index"] == 0)["result"]["counts"]) < 200
