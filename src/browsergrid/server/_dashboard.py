"""The dashboard's live feed (``/dashboard/live``), as docs/dashboard.md specifies it.

``Feed.update`` runs every half second: it compares what the coordinator has with what
viewers were last sent and returns one frame of differences, sent as is to every viewer.
Nothing here runs per task; the cost of a tick grows with the number of connected workers
and running jobs only, and only while someone is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from browsergrid._version import __version__
from browsergrid.core import Job, TaskState, WorkerState
from browsergrid.protocol import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION
from browsergrid.server._access import Access, Role
from browsergrid.server._agents import Agent, describe
from browsergrid.server._demo import DEMO
from browsergrid.server._guard import guarded
from browsergrid.server._stats import RecentResult, WorkerEvent
from browsergrid.store import (
    JobInfo,
    JobState,
    JobSummary,
    StoreError,
    ThroughputSample,
    WorkerRecord,
)

if TYPE_CHECKING:
    from browsergrid.server._coordinator import Coordinator, WorkerPeer

log = logging.getLogger("browsergrid.server")

TICK_S: Final = 0.5  # at most two frames per second per viewer
WINDOW_S: Final = 15 * 60  # throughput kept and shown
RECENT_JOBS: Final = 20
RECENT_RESULTS: Final = 20
RECENT_EVENTS: Final = 50
HISTORY_ROWS: Final = 100
_RATE_WINDOW_S: Final = 5.0
_JOB_RATE_WINDOW_S: Final = 10.0
_RESULT_CHARS: Final = 120

Row = dict[str, Any]
_encode = msgspec.json.Encoder().encode


class Viewer:
    """One open dashboard. Besides the frame being sent it holds at most one frame waiting;
    a viewer that has not taken it by the next tick has fallen behind, and is given a
    snapshot once it has sent what it was sending: nothing queues up for a slow viewer."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.wake = asyncio.Event()
        self.waiting: bytes | None = None
        self.sending = False
        self.needs_snapshot = True

    def offer(self, frame: bytes) -> None:
        """The next ``update`` frame."""
        if self.needs_snapshot:
            return
        if self.waiting is not None:  # it did not take the last one
            self.waiting = None
            self.needs_snapshot = True
            return
        self.waiting = frame
        self.wake.set()

    @property
    def ready_for_snapshot(self) -> bool:
        return self.needs_snapshot and not self.sending and self.waiting is None

    def give_snapshot(self, frame: bytes) -> None:
        self.needs_snapshot = False
        self.waiting = frame
        self.wake.set()


class Feed:
    """What the dashboard shows, kept up to date from the coordinator's state."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.viewers: set[Viewer] = set()
        self.throughput: deque[ThroughputSample] = deque()
        self._unsaved: list[ThroughputSample] = []
        self._second = 0  # the Unix second being counted
        self._second_done = 0
        self._second_failed = 0
        self._counted = (0, 0)  # (results, failed) already put into seconds
        self._counted_at: float | None = None
        self._finished: deque[tuple[float, int]] = deque()  # (time, results + failed)
        self._sent_workers: dict[int, Row] = {}  # what viewers hold, by worker id
        self._sent_peers: dict[int, WorkerPeer] = {}
        self._stored_jobs: list[JobSummary] = []  # read for snapshots
        self._stored_history: list[WorkerRecord] = []
        self._agents: dict[int, tuple[tuple[str | None, bool], Agent]] = {}
        self._throughput_sent = 0  # the last second sent
        self._sent_jobs: dict[int, tuple[Any, ...]] = {}
        self._running: dict[int, deque[tuple[float, int]]] = {}  # job -> (time, finished)
        self._ended_at: dict[int, float] = {}
        self._results_sent = 0
        self._events_sent = 0

    # --- the clock -------------------------------------------------------------------

    async def load(self, now: float | None = None) -> None:
        """Read the last 15 minutes of throughput from the store (after a restart)."""
        now = time.time() if now is None else now
        try:
            self.throughput.extend(await self.coordinator.store.throughput(now - WINDOW_S))
        except StoreError as exc:
            log.warning("dashboard: throughput history unavailable: %s", exc)

    def count(self, now: float) -> None:
        """Put the results and failures since the last call into their seconds (shared in
        proportion to time when the interval spans several: ticks can come late)."""
        stats = self.coordinator.stats
        results, failed = stats.results, stats.failed
        done, lost = results - self._counted[0], failed - self._counted[1]
        self._counted = (results, failed)
        start = now if self._counted_at is None else min(self._counted_at, now)
        self._counted_at = now
        left_done, left_lost = done, lost
        t = start
        while int(t) < int(now):
            share = (int(t) + 1 - t) / (now - start)
            part_done, part_lost = (
                min(left_done, round(done * share)),
                min(left_lost, round(lost * share)),
            )
            self._add(int(t), part_done, part_lost)
            left_done, left_lost = left_done - part_done, left_lost - part_lost
            t = int(t) + 1
        self._add(int(now), left_done, left_lost)
        self._finished.append((now, results + failed))
        while len(self._finished) > 2 and self._finished[1][0] <= now - _RATE_WINDOW_S:
            self._finished.popleft()

    def _add(self, second: int, done: int, failed: int) -> None:
        if second != self._second:
            self._close_second()
            self._second = second
        self._second_done += done
        self._second_failed += failed

    def _close_second(self) -> None:
        if self._second_done or self._second_failed:
            sample = ThroughputSample(
                at=self._second, done=self._second_done, failed=self._second_failed
            )
            self.throughput.append(sample)
            self._unsaved.append(sample)
        self._second_done = self._second_failed = 0
        while self.throughput and self.throughput[0].at < self._second - WINDOW_S:
            self.throughput.popleft()

    async def save(self, *, final: bool = False) -> None:
        """Write the seconds counted so far to the store: every few seconds, and with
        ``final`` (the second in progress too) at exit."""
        if final:
            self._close_second()
        samples, self._unsaved = self._unsaved, []
        if not samples:
            return
        try:
            await self.coordinator.store.record_throughput(samples)
        except StoreError as exc:
            log.warning("dashboard: throughput not saved: %s", exc)

    def rate(self) -> float:
        """Tasks finished per second over the last few seconds."""
        if len(self._finished) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._finished[0], self._finished[-1]
        return round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else 0.0

    # --- frames ----------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """One beat of the feed: count; offer every viewer that keeps up the ``update``
        frame; give viewers that need one a ``snapshot`` of the same moment, so that the
        next update applies to it exactly."""
        if any(viewer.needs_snapshot for viewer in self.viewers):
            await self._read_store()  # before the diff: nothing may run between it and a snapshot
        diff = self.advance(now)
        takers = [viewer for viewer in self.viewers if not viewer.needs_snapshot]
        if diff is not None and takers:
            frame = _encode(diff)
            for viewer in takers:
                viewer.offer(frame)
        ready = [viewer for viewer in self.viewers if viewer.ready_for_snapshot]
        if ready:
            snapshot = _encode(self.snapshot(now))
            for viewer in ready:
                viewer.give_snapshot(snapshot)

    def advance(self, now: float) -> Row | None:
        """Count, and compare the state with what viewers hold: returns the ``update``
        frame's content (None when nobody watches) and takes it as what they hold."""
        self.count(now)
        scheduler = self.coordinator.scheduler
        changed_ids = set(scheduler.changed_jobs)
        scheduler.changed_jobs.clear()
        for job_id in changed_ids:  # which jobs run, watched or not (totals need them)
            job = scheduler.jobs.get(job_id)
            if job is not None and not job.finished and not job.cancelled:
                self._running.setdefault(job_id, deque())
            elif not self.viewers:
                self._running.pop(job_id, None)
        if not self.viewers:
            self._sent_jobs.clear()
            self._sent_workers.clear()
            self._sent_peers.clear()
            self._mark_sent()
            return None
        frame: Row = {"type": "update", "now": now, "totals": self.totals()}
        workers, gone, history = self._worker_changes()
        if workers:
            frame["workers"] = workers
        if gone:
            frame["gone"] = gone
        if history:
            frame["history"] = history
        jobs = self._job_changes(changed_ids, now)
        if jobs:
            frame["jobs"] = jobs
        closed = [s for s in self.throughput if s.at > self._throughput_sent]
        if closed:
            frame["throughput"] = [[s.at, s.done, s.failed] for s in closed]
        results = self._new_results()
        if results:
            frame["results"] = results
        events, dropped = self._new_events()
        if events:
            frame["events"] = events
        if dropped:
            frame["events_dropped"] = dropped
        self._mark_sent()
        return frame

    def _mark_sent(self) -> None:
        """Results, events and seconds so far are held by viewers (or by nobody)."""
        stats = self.coordinator.stats
        self._results_sent, self._events_sent = stats.results, stats.connections
        if self.throughput:
            self._throughput_sent = self.throughput[-1].at

    async def _read_store(self) -> None:
        """Recent jobs and worker history for snapshots (the last good read is kept)."""
        store = self.coordinator.store
        try:
            self._stored_jobs = await store.jobs(limit=RECENT_JOBS)
            self._stored_history = await store.workers(limit=HISTORY_ROWS)
        except StoreError as exc:
            log.warning("dashboard: history unavailable: %s", exc)

    def snapshot(self, now: float) -> Row:
        """What viewers hold after ``advance(now)``, whole; call it right after, with no
        ``await`` in between."""
        scheduler = self.coordinator.scheduler
        jobs: dict[int, Row] = {}
        for summary in self._stored_jobs:
            job_id = summary.info.job_id
            live = scheduler.jobs.get(job_id)
            # the scheduler's counts are ahead of the store's (outcomes are written after)
            row = self._live_job_row(job_id, live, now, summary.finished_at) if live else None
            jobs[job_id] = row or self._stored_job_row(summary, now)
        for job_id in self._running:
            job = scheduler.jobs.get(job_id)
            row = self._live_job_row(job_id, job, now) if job else None
            if row is not None:
                jobs[job_id] = row
        history = {r.worker_key: _history_row(r, connected=False) for r in self._stored_history}
        for peer in self._sent_peers.values():
            if (record := peer.record()) is not None:
                history[record.worker_key] = _history_row(record, connected=True)
        return {
            "type": "snapshot",
            "now": now,
            "server": {
                "version": __version__,
                "started_at": self.coordinator.started_at,
                "demo": DEMO.describe(),
            },
            "totals": self.totals(),
            "workers": list(self._sent_workers.values()),
            "jobs": sorted(jobs.values(), key=lambda row: row["id"], reverse=True),
            "throughput": [[s.at, s.done, s.failed] for s in self.throughput],
            "results": [_result_row(r) for r in self.coordinator.stats.recent],
            "events": [_event_row(e) for e in self.coordinator.stats.worker_events],
            "history": sorted(history.values(), key=lambda row: row["last_seen"], reverse=True)[
                :HISTORY_ROWS
            ],
        }

    def totals(self) -> Row:
        coordinator = self.coordinator
        queued = leased = 0
        for job_id in self._running:
            job = coordinator.scheduler.jobs.get(job_id)
            if job is not None:
                queued += job.counts[TaskState.QUEUED]
                leased += job.counts[TaskState.LEASED]
        workers = coordinator.scheduler.workers
        return {
            "workers": len(coordinator.workers),
            "busy": sum(1 for w in workers.values() if w.in_flight),
            "queued": queued,
            "leased": leased,
            "done": coordinator.stats.results,
            "failed": coordinator.stats.failed,
            "rate": self.rate(),
            "clients": len(coordinator.clients),
            "viewers": len(self.viewers),
            "store": coordinator.store_problem or "ok",
        }

    # --- workers ---------------------------------------------------------------------

    def _worker_row(self, peer: WorkerPeer) -> Row | None:
        worker = self.coordinator.scheduler.workers.get(peer.worker_id)
        if worker is None:
            return None  # joining or leaving right now
        introduced = worker.state is WorkerState.INTRODUCED
        seen = self._agents.get(peer.worker_id)
        if seen is None or seen[0] != (peer.agent, introduced):  # read each agent once
            seen = (peer.agent, introduced), describe(peer.agent, introduced=introduced)
            self._agents[peer.worker_id] = seen
        agent = seen[1]
        if worker.quarantined:
            state = "quarantined"
        elif not introduced:
            state = "busy" if worker.in_flight and worker.tasks_done else "new"
        else:
            state = "busy" if worker.in_flight else "idle"
        return {
            "id": peer.worker_id,
            "key": peer.worker_key,
            "kind": agent.kind,
            "browser": agent.browser,
            "os": agent.os,
            "agent": peer.agent,
            "address": peer.address,
            "connected_at": peer.connected_at,
            "state": state,
            "in_flight": len(worker.in_flight),
            "concurrency": worker.concurrency,
            "done": worker.tasks_done,
            "failures": worker.failures,
            "lifetime_done": peer.tasks_done,
            "mean_ms": None if worker.mean_ms is None else round(worker.mean_ms, 3),
            "speed_ms": worker.speed_ms,
        }

    def _worker_changes(self) -> tuple[list[Row], list[int], list[Row]]:
        """Rows of workers that joined (whole) or changed (``id`` and the fields that
        changed), ids of those gone, and history rows of workers whose lasting identity
        appeared or left."""
        changed: list[Row] = []
        history: list[Row] = []
        sent = self._sent_workers
        now_sent: dict[int, Row] = {}
        peers: dict[int, WorkerPeer] = {}
        for peer in list(self.coordinator.workers.values()):
            row = self._worker_row(peer)
            if row is None:
                continue
            now_sent[peer.worker_id] = row
            peers[peer.worker_id] = peer
            before = sent.get(peer.worker_id)
            if before is None:
                changed.append(row)
            elif before != row:
                changed.append(
                    {"id": peer.worker_id}
                    | {field: value for field, value in row.items() if before[field] != value}
                )
            record = peer.record()
            if record is not None and (before is None or before["key"] != record.worker_key):
                history.append(_history_row(record, connected=True))
        gone = [worker_id for worker_id in sent if worker_id not in now_sent]
        online = {p.worker_key for p in peers.values() if p.worker_key}
        left_rows = []
        for worker_id in gone:
            self._agents.pop(worker_id, None)
            left = self._sent_peers.get(worker_id)
            record = left.record() if left is not None else None
            if record is not None:  # back already on another connection?
                left_rows.append(_history_row(record, connected=record.worker_key in online))
        self._sent_workers, self._sent_peers = now_sent, peers
        return changed, gone, left_rows + history

    # --- jobs ------------------------------------------------------------------------

    def _job_changes(self, changed_ids: set[int], now: float) -> list[Row]:
        rows: list[Row] = []
        scheduler = self.coordinator.scheduler
        for job_id in sorted(changed_ids | set(self._running)):
            job = scheduler.jobs.get(job_id)
            if job is None:
                continue
            row = self._live_job_row(job_id, job, now)
            if row is None:
                continue
            key = tuple(row.values())
            if self._sent_jobs.get(job_id) != key:
                self._sent_jobs[job_id] = key
                rows.append(row)
            if row["state"] != "running":  # it changes no more (unless tasks are added)
                self._sent_jobs.pop(job_id, None)
                self._ended_at.pop(job_id, None)
        return rows

    def _live_job_row(
        self, job_id: int, job: Job, now: float, ended_at: float | None = None
    ) -> Row | None:
        """The job as the scheduler has it now; ``ended_at``: when the store says it ended."""
        info = self.coordinator.job_infos.get(job_id)
        if info is None:
            return None
        counts = job.counts
        finished = counts[TaskState.DONE] + counts[TaskState.FAILED]
        ended = job.cancelled or job.finished
        if ended:
            self._running.pop(job_id, None)
            end = self._ended_at.get(job_id) or ended_at
            if end is None:
                end = self._ended_at[job_id] = now
            elapsed = end - info.created_at
            rate = finished / elapsed if elapsed > 0 else 0.0
        else:
            self._ended_at.pop(job_id, None)
            samples = self._running.setdefault(job_id, deque())
            if not samples or samples[-1][0] < now:
                samples.append((now, finished))
            while len(samples) > 2 and samples[1][0] <= now - _JOB_RATE_WINDOW_S:
                samples.popleft()
            (t0, n0), (t1, n1) = samples[0], samples[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        remaining = counts[TaskState.QUEUED] + counts[TaskState.LEASED]
        state = "cancelled" if job.cancelled else "finished" if job.finished else "running"
        return _job_row(
            info,
            state=state,
            total=job.total,
            queued=counts[TaskState.QUEUED],
            leased=counts[TaskState.LEASED],
            done=counts[TaskState.DONE],
            failed=counts[TaskState.FAILED],
            cancelled=counts[TaskState.CANCELLED],
            finished_at=end if ended else None,
            rate=rate,
            eta_s=remaining / rate if rate > 0 and remaining and not ended else None,
        )

    def _stored_job_row(self, summary: JobSummary, now: float) -> Row:
        end = summary.finished_at or now
        elapsed = end - summary.info.created_at
        finished = summary.done + summary.failed
        return _job_row(
            summary.info,
            state=summary.state.value,
            total=summary.total,
            queued=summary.total - finished - summary.cancelled
            if summary.state is JobState.RUNNING
            else 0,
            leased=0,
            done=summary.done,
            failed=summary.failed,
            cancelled=summary.cancelled,
            finished_at=summary.finished_at if summary.state is not JobState.RUNNING else None,
            rate=finished / elapsed if elapsed > 0 else 0.0,
            eta_s=None,
        )

    # --- results and events ----------------------------------------------------------

    def _new_results(self) -> list[Row]:
        stats = self.coordinator.stats
        fresh = min(stats.results - self._results_sent, RECENT_RESULTS)
        self._results_sent = stats.results
        if fresh <= 0:
            return []
        recent = list(stats.recent)
        return [_result_row(r) for r in recent[len(recent) - fresh :]]

    def _new_events(self) -> tuple[list[Row], int]:
        stats = self.coordinator.stats
        fresh = stats.connections - self._events_sent
        self._events_sent = stats.connections
        if fresh <= 0:
            return [], 0
        shown = min(fresh, len(stats.worker_events))
        events = list(stats.worker_events)
        return [_event_row(e) for e in events[len(events) - shown :]], fresh - shown


def _job_row(info: JobInfo, *, rate: float, eta_s: float | None, **counts: Any) -> Row:
    return {
        "id": info.job_id,
        "name": info.name,
        "op": info.op,
        "state": counts.pop("state"),
        **counts,
        "created_at": info.created_at,
        "rate": round(rate, 1),
        "eta_s": None if eta_s is None else round(eta_s),
    }


def _history_row(record: WorkerRecord, *, connected: bool) -> Row:
    """A HistoryRow, from the store's record or a connected peer's ``record()``."""
    done = record.tasks_done
    return {
        "key": record.worker_key,
        "label": describe(record.agent).label,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "done": done,
        "failures": record.failures,
        "mean_ms": round(record.compute_ms / done, 3) if done else None,
        "connected": connected,
    }


def _result_row(result: RecentResult) -> Row:
    text = _encode(result.result).decode()
    if len(text) > _RESULT_CHARS:
        text = text[: _RESULT_CHARS - 1] + "…"
    return {
        "task_id": result.task_id,
        "job_id": result.job_id,
        "worker_id": result.worker_id,
        "op": result.op,
        "result": text,
        "duration_ms": result.duration_ms,
        "at": result.at,
    }


def _event_row(event: WorkerEvent) -> Row:
    return {
        "at": event.at,
        "kind": event.kind,
        "worker_id": event.worker_id,
        "address": event.address,
        "label": describe(event.agent, introduced=event.introduced).label,
    }


# --- the WebSocket endpoint and the clock ----------------------------------------------


async def serve_dashboard(feed: Feed, ws: WebSocket, access: Access) -> None:
    """One open dashboard: a snapshot, then the frames the clock offers, until it leaves. A
    coordinator with a dashboard token asks for it (or the admin token)."""
    await guarded(
        feed.coordinator, ws, lambda: _serve_viewer(feed, ws), access=access, role=Role.READ
    )


async def _serve_viewer(feed: Feed, ws: WebSocket) -> None:
    await ws.accept()
    budget = feed.coordinator.rate_limit()
    viewer = Viewer(ws)
    feed.viewers.add(viewer)
    sender = asyncio.ensure_future(_send_forever(viewer, ws))
    try:
        while True:  # viewers send nothing; this notices when they leave
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if not budget.allow(time.monotonic()):
                await ws.close(CLOSE_POLICY_VIOLATION, "rate_limited")
                break
    except WebSocketDisconnect:
        pass
    finally:
        feed.viewers.discard(viewer)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send_forever(viewer: Viewer, ws: WebSocket) -> None:
    while True:
        await viewer.wake.wait()
        viewer.wake.clear()
        frame, viewer.waiting = viewer.waiting, None
        if frame is None:
            continue
        viewer.sending = True
        try:
            await ws.send_text(frame.decode())
        except Exception:
            return  # the receive loop sees the disconnect
        finally:
            viewer.sending = False


async def close_all_viewers(feed: Feed, reason: str = "server shutting down") -> None:
    """Close every dashboard connection with 1001 (going away); pages reconnect later."""
    for viewer in list(feed.viewers):
        with contextlib.suppress(Exception):
            await viewer.ws.close(CLOSE_GOING_AWAY, reason)


async def run_feed(feed: Feed, save_every_s: float = 5.0) -> None:
    """Tick forever: offer each viewer the frame of differences; save throughput now and
    then. Cancel it to stop (the last seconds are saved)."""
    await feed.load()
    last_save = time.monotonic()
    try:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await feed.tick(time.time())
            except Exception:  # a bug here must not freeze the dashboard for good
                log.exception("dashboard: a tick failed; carrying on")
            if time.monotonic() - last_save >= save_every_s:
                last_save = time.monotonic()
                await feed.save()
    finally:
        await asyncio.shield(feed.save(final=True))
