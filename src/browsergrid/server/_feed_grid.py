"""The dashboard's live feed in a grid (``serve --redis``): what the feed shows of the whole
grid rather than of this coordinator alone.

The other coordinators and their workers come from the snapshots they renew every second
(``_grid_snapshot.py``), jobs with grid-wide counts are read from the store (at most once a
second, while someone watches), and throughput is summed per second over the coordinators.

``Feed`` (``_feed.py``) owns one ``GridFeed`` and calls it only while ``coordinator.grid``
is set: ``read_jobs`` before a tick's diff when ``due`` (or a snapshot is wanted),
``merge_seconds`` on every ``advance``; then ``totals``, ``job_changes``,
``closed_seconds`` and ``changes`` for an ``update`` frame, or ``jobs`` and ``snapshot``
for a ``snapshot`` frame; ``mark_sent`` once the frame is taken, ``forget_sent`` while
nobody watches.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Final

from browsergrid._version import __version__
from browsergrid.server._feed_rows import (
    RECENT_JOBS,
    Row,
    job_rate,
    job_row,
    remote_row,
    stored_job_row,
)
from browsergrid.server._feed_throughput import ThroughputCounter
from browsergrid.server._grid_snapshot import SHARED_SECONDS, Shared, read_shared
from browsergrid.server._state import CoordinatorState, GridMembership
from browsergrid.store import JobState, JobSummary, StoreError, ThroughputSample

log = logging.getLogger("browsergrid.server")

GRID_JOBS: Final = 100  # the newest jobs read for the jobs panel (running ones shown)
GRID_READ_S: Final = 1.0  # how often jobs are read from the store while watched
_SECONDS_KEPT: Final = 3 * SHARED_SECONDS  # seconds still summed up


class GridFeed:
    """The grid-wide part of the feed: the others' snapshots as read, the jobs as last read
    from the store, the seconds summed over the coordinators, and what viewers hold of them."""

    def __init__(self, coordinator: CoordinatorState) -> None:
        self.coordinator = coordinator
        self._views: dict[str, tuple[bytes, Shared, dict[int, Row]]] = {}  # by coordinator
        self._members_read: dict[str, bytes] | None = None
        self._views_changed = True
        self._sent_remote: dict[tuple[str, int], Row] = {}  # other coordinators' workers
        self._sent_coordinators: list[Row] | None = None
        self.jobs: dict[int, Row] = {}  # job rows with grid-wide counts, last read
        self._read_at = float("-inf")
        self._progress: dict[int, deque[tuple[float, int]]] = {}  # job -> (time, finished)
        self._seconds: dict[int, dict[str, tuple[int, int]]] = {}  # second -> by coordinator
        self._sums: dict[int, tuple[int, int]] = {}
        self._changed_seconds: dict[int, ThroughputSample] = {}

    def due(self, now: float) -> bool:
        """Whether the jobs are to be read again (``read_jobs``) at ``now``."""
        return now - self._read_at >= GRID_READ_S

    def forget_sent(self) -> None:
        """Nobody watches: the next viewer is sent everything again."""
        self._sent_remote.clear()
        self._sent_coordinators = None
        self._views_changed = True
        self._progress.clear()

    def mark_sent(self) -> None:
        """The seconds that changed so far are held by viewers (or by nobody)."""
        self._changed_seconds.clear()

    def closed_seconds(self) -> list[ThroughputSample]:
        """The seconds whose sums changed since ``mark_sent``, oldest first."""
        return [self._changed_seconds[at] for at in sorted(self._changed_seconds)]

    def snapshot(self, grid: GridMembership, *, rate: float) -> Row:
        """The ``grid`` of a snapshot (``rate``: this coordinator's, ``Feed.rate()``)."""
        return {
            "id": grid.coordinator_id,
            "coordinators": self.coordinator_rows(grid, rate=rate),
            "workers": list(self._sent_remote.values()),
        }

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
                rows = {w.id: remote_row(coordinator_id, w) for w in shared.rows}
                views[coordinator_id] = (raw, shared, rows)
                self._views_changed = True
            if views.keys() != self._views.keys():
                self._views_changed = True
            self._views = views
        return [(coordinator_id, view[1]) for coordinator_id, view in self._views.items()]

    def coordinator_rows(self, grid: GridMembership, *, rate: float) -> list[Row]:
        """A CoordinatorRow per live coordinator, oldest first: this one's live figures
        (``rate``: ``Feed.rate()``), the others' as their latest snapshots say."""
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
                "rate": rate,
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

    def totals(self, grid: GridMembership, *, rate: float, viewers: int) -> Row:
        """Totals over every live coordinator; queued and leased over the running jobs read."""
        coordinators = self.coordinator_rows(grid, rate=rate)
        queued = leased = 0
        for row in self.jobs.values():
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
            "viewers": viewers,
            "store": self.coordinator.store_problem or "ok",
        }

    def changes(self, grid: GridMembership, *, rate: float) -> Row:
        """The ``grid`` of an update: the coordinators (whole, when any changed), and the
        other coordinators' workers that joined, changed or left (as ``workers``/``gone``)."""
        changes: Row = {}
        coordinators = self.coordinator_rows(grid, rate=rate)
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

    # --- jobs ------------------------------------------------------------------------

    async def read_jobs(self, grid: GridMembership, now: float) -> None:
        """Jobs with grid-wide counts: the ``GRID_JOBS`` newest from the store, of which the
        running ones and the ``RECENT_JOBS`` newest are shown, with the tasks coordinators
        hold now as ``leased``. Two reads, whatever the number of tasks; the last good
        read is kept."""
        self._read_at = now
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
                rows[job_id] = self._job_row(summary, held.get(job_id, 0), now)
            elif rank < RECENT_JOBS or job_id in self._progress:  # seen running: its end
                rows[job_id] = stored_job_row(summary, now)
        for job_id in [j for j in self._progress if j not in rows or j not in running]:
            del self._progress[job_id]
        self.jobs = rows

    def _job_row(self, summary: JobSummary, held: int, now: float) -> Row:
        """A running job: done, failed and cancelled as stored, ``leased`` the tasks the
        coordinators hold, ``queued`` the rest."""
        finished = summary.done + summary.failed
        left = max(0, summary.total - finished - summary.cancelled)
        leased = min(held, left)  # an outcome stored but not yet acknowledged counts once
        samples = self._progress.setdefault(summary.info.job_id, deque())
        rate = job_rate(samples, now, finished)
        return job_row(
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

    def job_changes(self, sent: dict[int, tuple[Any, ...]]) -> list[Row]:
        """The job rows that differ from what viewers hold (``sent``, the feed's, by job id;
        brought up to date here)."""
        rows: list[Row] = []
        for job_id in sorted(self.jobs):
            row = self.jobs[job_id]
            key = tuple(row.values())
            if sent.get(job_id) != key:
                sent[job_id] = key
                rows.append(row)
        for job_id in [j for j in sent if j not in self.jobs]:
            del sent[job_id]
        return rows

    # --- throughput ------------------------------------------------------------------

    def merge_seconds(self, grid: GridMembership, now: float, counter: ThroughputCounter) -> None:
        """Sum each recent second over the coordinators (this one's own seconds, from the
        feed's ``counter``, and those the others' snapshots carry); a second whose sum grew
        is held in the counter's ``throughput``, and sent, anew."""
        seen = self._seconds
        oldest = int(now) - _SECONDS_KEPT
        for own in counter.own:
            seen.setdefault(own.at, {})[grid.coordinator_id] = (own.done, own.failed)
        for coordinator_id, shared in self._others(grid):
            for at, done, failed in shared.seconds:
                if at >= oldest:
                    seen.setdefault(at, {})[coordinator_id] = (done, failed)
        for at in [at for at in seen if at < oldest]:
            del seen[at]
            self._sums.pop(at, None)
        for at, by in seen.items():
            sums = (sum(d for d, _ in by.values()), sum(f for _, f in by.values()))
            if self._sums.get(at) != sums:
                self._sums[at] = sums
                sample = counter.hold(at, *sums)
                if sample is not None:
                    self._changed_seconds[at] = sample
        counter.drop_old(now)
