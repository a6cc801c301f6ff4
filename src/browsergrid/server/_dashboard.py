"""The dashboard's live feed (``/dashboard/live``), as docs/dashboard.md specifies it.

``Feed.update`` runs every half second: it compares what the coordinator has with what
viewers were last sent and returns one frame of differences, sent as is to every viewer.
Nothing here runs per task; the cost of a tick grows with the number of connected workers
and running jobs only, and only while someone is watching.

In a grid (``serve --redis``) the feed shows the whole grid: the other coordinators and
their workers from the snapshots they renew every second (``_grid_snapshot.py``), jobs with
grid-wide counts read from the store (at most once a second, while someone watches), and
throughput summed per second over the coordinators.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any, Final

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from browsergrid._version import __version__
from browsergrid.core import Job, TaskState, WorkerState
from browsergrid.protocol import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION
from browsergrid.server._access import Access, Role
from browsergrid.server._agents import Agent, describe
from browsergrid.server._demo import DEMO
from browsergrid.server._grid_snapshot import (
    SHARED_SECONDS,
    Shared,
    SharedWorker,
    read_shared,
    worker_state,
)
from browsergrid.server._guard import guarded
from browsergrid.server._state import CoordinatorState, GridMembership, WorkerPeer
from browsergrid.server._stats import RecentResult, WorkerEvent
from browsergrid.server._websocket import StarletteConnection
from browsergrid.store import (
    JobInfo,
    JobState,
    JobSummary,
    StoreError,
    ThroughputSample,
    WorkerRecord,
)

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
GRID_JOBS: Final = 100  # in a grid: the newest jobs read for the jobs panel (running ones shown)
GRID_READ_S: Final = 1.0  # in a grid: how often jobs are read from the store while watched
_SECONDS_KEPT: Final = 3 * SHARED_SECONDS  # in a grid: seconds still summed up

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

    def __init__(self, coordinator: CoordinatorState) -> None:
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
        self._rows_from: object = None  # the scheduler whose changes the rows follow
        # (None: build every row again)
        self._marks_of: object = None  # the scheduler that ``_mark`` is a mark of
        self._mark = 0  # what the scheduler had changed when last read (changes_since)
        self._stored_jobs: list[JobSummary] = []  # read for snapshots
        self._stored_history: list[WorkerRecord] = []
        self._agents: dict[int, tuple[tuple[str | None, bool], Agent]] = {}
        self._throughput_sent = 0  # the last second sent
        self._sent_jobs: dict[int, tuple[Any, ...]] = {}
        self._forgotten: dict[int, Job] = {}  # jobs that left the scheduler: final rows
        self._forgotten_infos: dict[int, JobInfo] = {}
        self._running: dict[int, deque[tuple[float, int]]] = {}  # job -> (time, finished)
        self._ended_at: dict[int, float] = {}
        self._results_sent = 0
        self._events_sent = 0
        # in a grid (serve --redis): see "the grid" below
        self._in_grid = getattr(coordinator, "grid", None) is not None  # count() reads stats only
        self._own: deque[ThroughputSample] = deque()  # own closed seconds, for the snapshot
        self._views: dict[str, tuple[bytes, Shared, dict[int, Row]]] = {}  # by coordinator
        self._members_read: dict[str, bytes] | None = None
        self._views_changed = True
        self._sent_remote: dict[tuple[str, int], Row] = {}  # other coordinators' workers
        self._sent_coordinators: list[Row] | None = None
        self._grid_jobs: dict[int, Row] = {}  # job rows with grid-wide counts, last read
        self._grid_read_at = float("-inf")
        self._grid_progress: dict[int, deque[tuple[float, int]]] = {}  # job -> (time, finished)
        self._grid_seconds: dict[int, dict[str, tuple[int, int]]] = {}  # second -> by coordinator
        self._grid_sums: dict[int, tuple[int, int]] = {}
        self._changed_seconds: dict[int, ThroughputSample] = {}

    def forgotten(self, jobs: tuple[Job, ...]) -> None:
        """Jobs the scheduler let go of (ended, stored): their last row goes out at the
        next tick, and they stop counting as running."""
        for job in jobs:
            info = self.coordinator.job_infos.get(job.job_id)
            if (self.viewers or job.job_id in self._running) and info is not None:
                self._forgotten[job.job_id] = job
                self._forgotten_infos[job.job_id] = info

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
            if not self._in_grid:  # in a grid: summed with the others' seconds (_merge_seconds)
                self.throughput.append(sample)
            self._own.append(sample)
            self._unsaved.append(sample)
        self._second_done = self._second_failed = 0
        while self.throughput and self.throughput[0].at < self._second - WINDOW_S:
            self.throughput.popleft()
        while self._own and self._own[0].at < self._second - SHARED_SECONDS:
            self._own.popleft()

    def recent_seconds(self) -> list[ThroughputSample]:
        """This coordinator's seconds closed in the last ``SHARED_SECONDS`` (with activity)."""
        return [s for s in self._own if s.at >= self._second - SHARED_SECONDS]

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
        wanted = any(viewer.needs_snapshot for viewer in self.viewers)
        if wanted:
            await self._read_store()  # before the diff: nothing may run between it and a snapshot
        grid = self.coordinator.grid
        if (
            grid is not None
            and self.viewers
            and (wanted or now - self._grid_read_at >= GRID_READ_S)
        ):
            await self._read_grid_jobs(grid, now)
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
        grid = self.coordinator.grid
        if grid is not None:
            self._merge_seconds(grid, now)
        scheduler = self.coordinator.scheduler
        if self._marks_of is not scheduler:  # a new scheduler: its marks start again
            self._marks_of, self._mark = scheduler, 0
        changed = scheduler.changes_since(self._mark)
        self._mark = changed.mark
        changed_ids = set(changed.jobs)
        # rows of workers the scheduler changed are built again; all of them after a call
        # that did not finish (these changes would be lost) or with a new scheduler
        changed_workers: set[int] | None = set(changed.workers)
        if self._rows_from is not scheduler:
            changed_workers = None
        self._rows_from = None  # until the rows are built
        forgotten, self._forgotten = self._forgotten, {}
        if grid is not None:  # the scheduler holds only this coordinator's share of jobs
            changed_ids.clear()
        else:
            changed_ids.update(forgotten)
        for job_id in changed_ids:  # which jobs run, watched or not (totals need them)
            job = scheduler.jobs.get(job_id) or forgotten.get(job_id)
            if job is not None and not job.finished and not job.cancelled:
                self._running.setdefault(job_id, deque())
            elif not self.viewers:
                self._running.pop(job_id, None)
        if not self.viewers:
            self._sent_jobs.clear()
            self._sent_workers.clear()
            self._sent_peers.clear()
            self._sent_remote.clear()
            self._sent_coordinators = None
            self._views_changed = True
            self._grid_progress.clear()
            self._mark_sent()
            self._forgotten_infos.clear()
            return None
        frame: Row = {"type": "update", "now": now, "totals": self.totals()}
        workers, gone, history = self._worker_changes(changed_workers)
        if workers:
            frame["workers"] = workers
        if gone:
            frame["gone"] = gone
        if history:
            frame["history"] = history
        jobs = (
            self._job_changes(changed_ids, now, forgotten)
            if grid is None
            else self._grid_job_changes()
        )
        if jobs:
            frame["jobs"] = jobs
        if grid is None:
            closed = [s for s in self.throughput if s.at > self._throughput_sent]
        else:
            closed = [self._changed_seconds[at] for at in sorted(self._changed_seconds)]
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
        if grid is not None and (changes := self._grid_changes(grid)):
            frame["grid"] = changes
        self._mark_sent()
        self._forgotten_infos.clear()
        return frame

    def _mark_sent(self) -> None:
        """Results, events and seconds so far are held by viewers (or by nobody)."""
        stats = self.coordinator.stats
        self._results_sent, self._events_sent = stats.results, stats.connections
        if self.throughput:
            self._throughput_sent = self.throughput[-1].at
        self._changed_seconds.clear()

    async def _read_store(self) -> None:
        """Recent jobs and worker history for snapshots (the last good read is kept)."""
        store = self.coordinator.store
        try:
            if self.coordinator.grid is None:  # in a grid: read each second (_read_grid_jobs)
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
        grid = self.coordinator.grid
        if grid is not None:
            jobs = dict(self._grid_jobs)
        history = {r.worker_key: _history_row(r, connected=False) for r in self._stored_history}
        for peer in self._sent_peers.values():
            if (record := peer.record()) is not None:
                history[record.worker_key] = _history_row(record, connected=True)
        frame: Row = {
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
        if grid is not None:
            frame["grid"] = {
                "id": grid.coordinator_id,
                "coordinators": self._coordinator_rows(grid),
                "workers": list(self._sent_remote.values()),
            }
        return frame

    def totals(self) -> Row:
        coordinator = self.coordinator
        if coordinator.grid is not None:
            return self._grid_totals(coordinator.grid)
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
        state = worker_state(worker)
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

    def _worker_changes(
        self, changed_ids: set[int] | None
    ) -> tuple[list[Row], list[int], list[Row]]:
        """Rows of workers that joined (whole) or changed (``id`` and the fields that
        changed), ids of those gone, and history rows of workers whose lasting identity
        appeared or left.

        A row is built again only for a worker the scheduler changed since the last call
        (``changed_ids``; None: every worker) or whose own fields (key, agent, tasks over
        its history) moved: the others' rows are as sent (none is built for idle workers)."""
        changed: list[Row] = []
        history: list[Row] = []
        sent = self._sent_workers
        now_sent: dict[int, Row] = {}
        peers: dict[int, WorkerPeer] = {}
        workers = self.coordinator.scheduler.workers
        for peer in list(self.coordinator.workers.values()):
            worker_id = peer.worker_id
            before = sent.get(worker_id)
            if (
                before is not None
                and changed_ids is not None
                and worker_id not in changed_ids
                and before["key"] == peer.worker_key
                and before["agent"] == peer.agent
                and before["lifetime_done"] == peer.tasks_done
            ):  # the row as sent
                if worker_id in workers:
                    now_sent[worker_id] = before
                    peers[worker_id] = peer
                continue
            row = self._worker_row(peer)
            if row is None:
                continue
            now_sent[worker_id] = row
            peers[worker_id] = peer
            if before is None:
                changed.append(row)
            elif before != row:
                changed.append(
                    {"id": worker_id}
                    | {field: value for field, value in row.items() if before[field] != value}
                )
            key = peer.worker_key  # its history row when its key appears (record() costs more)
            if (
                key is not None
                and (before is None or before["key"] != key)
                and (record := peer.record()) is not None
            ):
                history.append(_history_row(record, connected=True))
        gone = [worker_id for worker_id in sent if worker_id not in now_sent]
        online = {p.worker_key for p in peers.values() if p.worker_key} if gone else set()
        left_rows = []
        for worker_id in gone:
            self._agents.pop(worker_id, None)
            left = self._sent_peers.get(worker_id)
            record = left.record() if left is not None else None
            if record is not None:  # back already on another connection?
                left_rows.append(_history_row(record, connected=record.worker_key in online))
        self._sent_workers, self._sent_peers = now_sent, peers
        self._rows_from = self.coordinator.scheduler
        return changed, gone, left_rows + history

    # --- jobs ------------------------------------------------------------------------

    def _job_changes(
        self, changed_ids: set[int], now: float, forgotten: dict[int, Job]
    ) -> list[Row]:
        rows: list[Row] = []
        scheduler = self.coordinator.scheduler
        for job_id in sorted(changed_ids | set(self._running)):
            job = scheduler.jobs.get(job_id) or forgotten.get(job_id)
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
        info = self.coordinator.job_infos.get(job_id) or self._forgotten_infos.get(job_id)
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

    # --- the grid (serve --redis) ----------------------------------------------------

    def _others(self, grid: GridMembership) -> list[tuple[str, Shared]]:
        """The other live coordinators' snapshots (decoded again only when they changed,
        that is at most once a second each)."""
        members = grid.members
        if members is not self._members_read:  # the beat replaces the dict every second
            self._members_read = members
            views: dict[str, tuple[bytes, Shared, dict[int, Row]]] = {}
            for coordinator_id, raw in members.items():
                if coordinator_id == grid.coordinator_id:
                    continue
                held = self._views.get(coordinator_id)
                if held is not None and held[0] == raw:
                    views[coordinator_id] = held
                    continue
                shared = read_shared(raw) or Shared()  # another version's: nothing known
                rows = {w.id: _remote_row(coordinator_id, w) for w in shared.rows}
                views[coordinator_id] = (raw, shared, rows)
                self._views_changed = True
            if views.keys() != self._views.keys():
                self._views_changed = True
            self._views = views
        return [(coordinator_id, view[1]) for coordinator_id, view in self._views.items()]

    def _coordinator_rows(self, grid: GridMembership) -> list[Row]:
        """A CoordinatorRow per live coordinator, oldest first: this one's live figures,
        the others' as their latest snapshots say."""
        coordinator = self.coordinator
        workers = coordinator.scheduler.workers
        rows: list[Row] = [
            {
                "id": grid.coordinator_id,
                "url": coordinator.public_url,
                "version": __version__,
                "started_at": coordinator.started_at,
                "workers": len(coordinator.workers),
                "listed": len(coordinator.workers),
                "busy": sum(1 for w in workers.values() if w.in_flight),
                "clients": len(coordinator.clients),
                "results": coordinator.stats.results,
                "failed": coordinator.stats.failed,
                "rate": self.rate(),
                "this": True,
            }
        ]
        for coordinator_id, shared in self._others(grid):
            rows.append(
                {
                    "id": coordinator_id,
                    "url": shared.url,
                    "version": shared.version,
                    "started_at": shared.started_at,
                    "workers": shared.workers,
                    "listed": len(shared.rows),
                    "busy": shared.busy,
                    "clients": shared.clients,
                    "results": shared.results,
                    "failed": shared.failed,
                    "rate": shared.rate,
                    "this": False,
                }
            )
        rows.sort(key=lambda row: (row["started_at"], row["id"]))
        return rows

    def _grid_totals(self, grid: GridMembership) -> Row:
        """Totals over every live coordinator; queued and leased over the running jobs read."""
        coordinators = self._coordinator_rows(grid)
        queued = leased = 0
        for row in self._grid_jobs.values():
            if row["state"] == "running":
                queued += row["queued"]
                leased += row["leased"]

        def total(field: str) -> int:
            return sum(int(row[field]) for row in coordinators)

        return {
            "workers": total("workers"),
            "busy": total("busy"),
            "queued": queued,
            "leased": leased,
            "done": total("results"),
            "failed": total("failed"),
            "rate": round(sum(float(row["rate"]) for row in coordinators), 1),
            "clients": total("clients"),
            "viewers": len(self.viewers),
            "store": self.coordinator.store_problem or "ok",
        }

    def _grid_changes(self, grid: GridMembership) -> Row:
        """The ``grid`` of an update: the coordinators (whole, when any changed), and the
        other coordinators' workers that joined, changed or left (as ``workers``/``gone``)."""
        changes: Row = {}
        coordinators = self._coordinator_rows(grid)
        if coordinators != self._sent_coordinators:
            self._sent_coordinators = coordinators
            changes["coordinators"] = coordinators
        if not self._views_changed:
            return changes
        self._views_changed = False
        current = {
            (coordinator_id, worker_id): row
            for coordinator_id, view in self._views.items()
            for worker_id, row in view[2].items()
        }
        sent = self._sent_remote
        workers: list[Row] = []
        for key, row in current.items():
            before = sent.get(key)
            if before is None:
                workers.append(row)
            elif before != row:
                workers.append(
                    {"coordinator": key[0], "id": key[1]}
                    | {field: value for field, value in row.items() if before.get(field) != value}
                )
        gone = [
            [coordinator_id, worker_id]
            for coordinator_id, worker_id in sent
            if (coordinator_id, worker_id) not in current
        ]
        self._sent_remote = current
        if workers:
            changes["workers"] = workers
        if gone:
            changes["gone"] = gone
        return changes

    async def _read_grid_jobs(self, grid: GridMembership, now: float) -> None:
        """Jobs with grid-wide counts: the ``GRID_JOBS`` newest from the store, of which the
        running ones and the ``RECENT_JOBS`` newest are shown, with the tasks coordinators
        hold now as ``leased``. Two reads, whatever the number of tasks; the last good
        read is kept."""
        self._grid_read_at = now
        try:
            summaries = await self.coordinator.store.jobs(limit=GRID_JOBS)
            running = [s.info.job_id for s in summaries if s.state is JobState.RUNNING]
            held = await grid.grid.pending(running)
        except StoreError as exc:
            log.warning("dashboard: jobs unavailable: %s", exc)
            return
        rows: dict[int, Row] = {}
        for rank, summary in enumerate(summaries):
            job_id = summary.info.job_id
            if summary.state is JobState.RUNNING:
                rows[job_id] = self._grid_job_row(summary, held.get(job_id, 0), now)
            elif rank < RECENT_JOBS or job_id in self._grid_progress:  # seen running: its end
                rows[job_id] = self._stored_job_row(summary, now)
        for job_id in [j for j in self._grid_progress if j not in rows or j not in running]:
            del self._grid_progress[job_id]
        self._grid_jobs = rows

    def _grid_job_row(self, summary: JobSummary, held: int, now: float) -> Row:
        """A running job: done, failed and cancelled as stored, ``leased`` the tasks the
        coordinators hold, ``queued`` the rest."""
        finished = summary.done + summary.failed
        left = max(0, summary.total - finished - summary.cancelled)
        leased = min(held, left)  # an outcome stored but not yet acknowledged counts once
        samples = self._grid_progress.setdefault(summary.info.job_id, deque())
        if not samples or samples[-1][0] < now:
            samples.append((now, finished))
        while len(samples) > 2 and samples[1][0] <= now - _JOB_RATE_WINDOW_S:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        return _job_row(
            summary.info,
            state="running",
            total=summary.total,
            queued=left - leased,
            leased=leased,
            done=summary.done,
            failed=summary.failed,
            cancelled=summary.cancelled,
            finished_at=None,
            rate=rate,
            eta_s=left / rate if rate > 0 and left else None,
        )

    def _grid_job_changes(self) -> list[Row]:
        rows: list[Row] = []
        for job_id in sorted(self._grid_jobs):
            row = self._grid_jobs[job_id]
            key = tuple(row.values())
            if self._sent_jobs.get(job_id) != key:
                self._sent_jobs[job_id] = key
                rows.append(row)
        for job_id in [j for j in self._sent_jobs if j not in self._grid_jobs]:
            del self._sent_jobs[job_id]
        return rows

    def _merge_seconds(self, grid: GridMembership, now: float) -> None:
        """Sum each recent second over the coordinators (this one's own seconds and those
        the others' snapshots carry); a second whose sum grew is held, and sent, anew."""
        seen = self._grid_seconds
        oldest = int(now) - _SECONDS_KEPT
        for own in self._own:
            seen.setdefault(own.at, {})[grid.coordinator_id] = (own.done, own.failed)
        for coordinator_id, shared in self._others(grid):
            for at, done, failed in shared.seconds:
                if at >= oldest:
                    seen.setdefault(at, {})[coordinator_id] = (done, failed)
        for at in [at for at in seen if at < oldest]:
            del seen[at]
            self._grid_sums.pop(at, None)
        for at, by in seen.items():
            sums = (sum(d for d, _ in by.values()), sum(f for _, f in by.values()))
            if self._grid_sums.get(at) != sums:
                self._grid_sums[at] = sums
                sample = self._hold_second(at, *sums)
                if sample is not None:
                    self._changed_seconds[at] = sample
        while self.throughput and self.throughput[0].at < int(now) - WINDOW_S:
            self.throughput.popleft()

    def _hold_second(self, at: int, done: int, failed: int) -> ThroughputSample | None:
        """Put a second's counts in ``throughput`` (in order; at least what it held, which
        may be the store's sum of it); returns what changed, if anything."""
        held = self.throughput
        i = len(held)
        while i > 0 and held[i - 1].at > at:
            i -= 1
        if i > 0 and held[i - 1].at == at:
            before = held[i - 1]
            sample = ThroughputSample(
                at=at, done=max(done, before.done), failed=max(failed, before.failed)
            )
            if sample == before:
                return None
            held[i - 1] = sample
            return sample
        sample = ThroughputSample(at=at, done=done, failed=failed)
        held.insert(i, sample)
        return sample

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


def _remote_row(coordinator_id: str, worker: SharedWorker) -> Row:
    """A RemoteWorkerRow: a WorkerRow of another coordinator's worker, from its snapshot."""
    return {
        "coordinator": coordinator_id,
        "id": worker.id,
        "key": worker.key,
        "kind": worker.kind,
        "browser": worker.browser,
        "os": worker.os,
        "agent": None,
        "address": worker.address,
        "connected_at": worker.connected_at,
        "state": worker.state,
        "in_flight": worker.in_flight,
        "concurrency": worker.concurrency,
        "done": worker.done,
        "failures": worker.failures,
        "lifetime_done": None,
        "mean_ms": worker.mean_ms,
        "speed_ms": worker.speed_ms,
    }


def _history_row(record: WorkerRecord, *, connected: bool) -> Row:
    """A HistoryRow, from the store's record or a connected peer's ``record()``."""
    done = record.tasks_done
    agent = describe(record.agent)
    return {
        "key": record.worker_key,
        "label": agent.label,
        "kind": agent.kind,
        "browser": agent.browser,
        "os": agent.os,
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
    agent = describe(event.agent, introduced=event.introduced)
    return {
        "at": event.at,
        "kind": event.kind,
        "worker_id": event.worker_id,
        "address": event.address,
        "label": agent.label,
        "worker_kind": agent.kind,
        "browser": agent.browser,
        "os": agent.os,
    }


# --- the WebSocket endpoint and the clock ----------------------------------------------


async def serve_dashboard(feed: Feed, ws: WebSocket, access: Access) -> None:
    """One open dashboard: a snapshot, then the frames the clock offers, until it leaves. A
    coordinator with a dashboard token asks for it (or the admin token)."""
    await guarded(
        feed.coordinator,
        StarletteConnection(ws),
        lambda: _serve_viewer(feed, ws),
        access=access,
        role=Role.READ,
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
