"""The dashboard's live feed (``/dashboard/live``), as docs/dashboard.md specifies it: what
viewers are sent, worked out from the coordinator's state.

``Feed.tick`` runs every half second: it compares what the coordinator has with what viewers
were last sent and offers every ``Viewer`` one frame of differences, the same for all; a
viewer that fell behind, or just came, is given a snapshot instead. Nothing here runs per
task; the cost of a tick grows with the number of connected workers and running jobs only,
and only while someone is watching.

The coordinator makes one ``Feed`` and tells it of the jobs the scheduler lets go of
(``forgotten``); ``_dashboard.py`` adds and removes viewers, sends what they are offered and
runs the clock (``run_feed``). Rows are built in ``_feed_rows.py``, throughput is counted in
``_feed_throughput.py``, and in a grid (``serve --redis``) ``_feed_grid.py`` makes the feed
show the whole grid.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import msgspec
from starlette.websockets import WebSocket

from browsergrid._version import __version__
from browsergrid.core import Job, TaskState, WorkerState
from browsergrid.server._agents import Agent, describe
from browsergrid.server._demo import DEMO
from browsergrid.server._feed_grid import GridFeed
from browsergrid.server._feed_rows import (
    HISTORY_ROWS,
    RECENT_JOBS,
    RECENT_RESULTS,
    Row,
    event_row,
    history_row,
    job_rate,
    job_row,
    result_row,
    stored_job_row,
    worker_row,
)
from browsergrid.server._feed_throughput import ThroughputCounter
from browsergrid.server._state import CoordinatorState, WorkerPeer
from browsergrid.store import JobInfo, JobSummary, StoreError, ThroughputSample, WorkerRecord

log = logging.getLogger("browsergrid.server")

_encode = msgspec.json.Encoder().encode


class Viewer:
    """One open dashboard. Besides the frame being sent it holds at most one frame waiting;
    a viewer that has not taken it by the next tick has fallen behind, and is given a
    snapshot once it has sent what it was sending: nothing queues up for a slow viewer.
    The feed fills it; its sender (``_dashboard.py``) sends ``waiting`` when ``wake`` is set."""

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
        # in a grid (serve --redis), the seconds shown are summed over the coordinators
        in_grid = getattr(coordinator, "grid", None) is not None  # count() reads stats only
        self._counter = ThroughputCounter(coordinator, in_grid=in_grid)
        self._grid = GridFeed(coordinator)  # used only in a grid
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

    def forgotten(self, jobs: tuple[Job, ...]) -> None:
        """Jobs the scheduler let go of (ended, stored): their last row goes out at the
        next tick, and they stop counting as running."""
        for job in jobs:
            info = self.coordinator.job_infos.get(job.job_id)
            if (self.viewers or job.job_id in self._running) and info is not None:
                self._forgotten[job.job_id] = job
                self._forgotten_infos[job.job_id] = info

    # --- throughput (_feed_throughput.py) ---------------------------------------------

    @property
    def throughput(self) -> deque[ThroughputSample]:
        """The seconds shown, oldest first (in a grid: summed over the coordinators)."""
        return self._counter.throughput

    async def load(self, now: float | None = None) -> None:
        """Read the last 15 minutes of throughput from the store (after a restart)."""
        await self._counter.load(now)

    def count(self, now: float) -> None:
        """Put the results and failures since the last call into their seconds."""
        self._counter.count(now)

    def recent_seconds(self) -> list[ThroughputSample]:
        """This coordinator's seconds closed in the last ``SHARED_SECONDS`` (with activity)."""
        return self._counter.recent_seconds()

    async def save(self, *, final: bool = False) -> None:
        """Write the seconds counted so far to the store: every few seconds, and with
        ``final`` (the second in progress too) at exit."""
        await self._counter.save(final=final)

    def rate(self) -> float:
        """Tasks finished per second over the last few seconds."""
        return self._counter.rate()

    # --- frames ----------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """One beat of the feed: count; offer every viewer that keeps up the ``update``
        frame; give viewers that need one a ``snapshot`` of the same moment, so that the
        next update applies to it exactly."""
        wanted = any(viewer.needs_snapshot for viewer in self.viewers)
        if wanted:
            await self._read_store()  # before the diff: nothing may run between it and a snapshot
        grid = self.coordinator.grid
        if grid is not None and self.viewers and (wanted or self._grid.due(now)):
            await self._grid.read_jobs(grid, now)
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
            self._grid.merge_seconds(grid, now, self._counter)
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
            self._grid.forget_sent()
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
            else self._grid.job_changes(self._sent_jobs)
        )
        if jobs:
            frame["jobs"] = jobs
        if grid is None:
            closed = [s for s in self.throughput if s.at > self._throughput_sent]
        else:
            closed = self._grid.closed_seconds()
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
        if grid is not None and (changes := self._grid.changes(grid, rate=self.rate())):
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
        self._grid.mark_sent()

    async def _read_store(self) -> None:
        """Recent jobs and worker history for snapshots (the last good read is kept)."""
        store = self.coordinator.store
        try:
            if self.coordinator.grid is None:  # in a grid: read each second (GridFeed.read_jobs)
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
            jobs[job_id] = row or stored_job_row(summary, now)
        for job_id in self._running:
            job = scheduler.jobs.get(job_id)
            row = self._live_job_row(job_id, job, now) if job else None
            if row is not None:
                jobs[job_id] = row
        grid = self.coordinator.grid
        if grid is not None:
            jobs = dict(self._grid.jobs)
        history = {r.worker_key: history_row(r, connected=False) for r in self._stored_history}
        for peer in self._sent_peers.values():
            if (record := peer.record()) is not None:
                history[record.worker_key] = history_row(record, connected=True)
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
            "results": [result_row(r) for r in self.coordinator.stats.recent],
            "events": [event_row(e) for e in self.coordinator.stats.worker_events],
            "history": sorted(history.values(), key=lambda row: row["last_seen"], reverse=True)[
                :HISTORY_ROWS
            ],
        }
        if grid is not None:
            frame["grid"] = self._grid.snapshot(grid, rate=self.rate())
        return frame

    def totals(self) -> Row:
        coordinator = self.coordinator
        if coordinator.grid is not None:
            return self._grid.totals(coordinator.grid, rate=self.rate(), viewers=len(self.viewers))
        queued = leased = 0
        for job_id in self._running:
            job = coordinator.scheduler.jobs.get(job_id)
            if job is not None:
                queued += job.counts[TaskState.QUEUED] + job.counts[TaskState.WAITING]
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
        return worker_row(peer, worker, seen[1])

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
                history.append(history_row(record, connected=True))
        gone = [worker_id for worker_id in sent if worker_id not in now_sent]
        online = {p.worker_key for p in peers.values() if p.worker_key} if gone else set()
        left_rows = []
        for worker_id in gone:
            self._agents.pop(worker_id, None)
            left = self._sent_peers.get(worker_id)
            record = left.record() if left is not None else None
            if record is not None:  # back already on another connection?
                left_rows.append(history_row(record, connected=record.worker_key in online))
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
            rate = job_rate(self._running.setdefault(job_id, deque()), now, finished)
        waiting = counts[TaskState.QUEUED] + counts[TaskState.WAITING]  # shown as queued
        remaining = waiting + counts[TaskState.LEASED]
        state = "cancelled" if job.cancelled else "finished" if job.finished else "running"
        return job_row(
            info,
            state=state,
            total=job.total,
            queued=waiting,
            leased=counts[TaskState.LEASED],
            done=counts[TaskState.DONE],
            failed=counts[TaskState.FAILED],
            cancelled=counts[TaskState.CANCELLED],
            finished_at=end if ended else None,
            rate=rate,
            eta_s=remaining / rate if rate > 0 and remaining and not ended else None,
        )

    # --- results and events ----------------------------------------------------------

    def _new_results(self) -> list[Row]:
        stats = self.coordinator.stats
        fresh = min(stats.results - self._results_sent, RECENT_RESULTS)
        self._results_sent = stats.results
        if fresh <= 0:
            return []
        recent = list(stats.recent)
        return [result_row(r) for r in recent[len(recent) - fresh :]]

    def _new_events(self) -> tuple[list[Row], int]:
        stats = self.coordinator.stats
        fresh = stats.connections - self._events_sent
        self._events_sent = stats.connections
        if fresh <= 0:
            return [], 0
        shown = min(fresh, len(stats.worker_events))
        events = list(stats.worker_events)
        return [event_row(e) for e in events[len(events) - shown :]], fresh - shown
