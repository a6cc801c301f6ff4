"""Counters the coordinator keeps as work flows, read by ``/metrics`` and the dashboard.

Updating them costs about a microsecond per result (a histogram bucket, two counters, one
small record in a ring of 20): no locks, no labels, no per-viewer work.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final, Literal

LATENCY_BOUNDS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
"""Upper bounds (seconds) of the task latency histogram's buckets; the last is +Inf."""

ErrorKind = Literal[
    "report_rejected", "frame_rejected", "rate_limited", "store", "unauthorized", "quarantined"
]
"""Errors the coordinator counts; ``unauthorized`` is a request or upgrade refused for want of
a token, ``quarantined`` a worker identity put in quarantine. (Lost leases, error reports
among them, are counted by the scheduler: ``Scheduler.lost_leases``.)"""


class Histogram:
    """Counts per bucket (``bounds`` are upper bounds; one more bucket for +Inf) and a sum."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of values <= le)`` per bucket, ending with ``("+Inf", count)``, as
        Prometheus histograms expose them."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True, slots=True)
class RecentResult:
    """One of the latest results, kept for the dashboard."""

    at: float  # Unix time
    task_id: int
    job_id: int | None
    worker_id: int
    op: str
    result: Any
    duration_ms: float


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A worker connected or disconnected (the dashboard lists the latest)."""

    at: float  # Unix time
    kind: Literal["connected", "disconnected"]
    worker_id: int
    address: str
    agent: str | None
    introduced: bool


@dataclass(slots=True)
class Stats:
    """What happened since the coordinator started."""

    results: int = 0  # results accepted (welcome tasks included)
    failed: int = 0  # tasks that failed for good
    errors: Counter[ErrorKind] = field(default_factory=Counter)
    ended: Counter[str] = field(default_factory=Counter)  # final tasks of forgotten jobs, by state
    latency: Histogram = field(default_factory=Histogram)  # lease to result, seconds
    recent: deque[RecentResult] = field(default_factory=lambda: deque(maxlen=20))
    connections: int = 0  # connects and disconnects so far
    worker_events: deque[WorkerEvent] = field(default_factory=lambda: deque(maxlen=50))
    blobs_stored: int = 0  # blobs uploaded that were not held yet
    blob_fetches: int = 0  # GET /blobs answered with content (200 or 206)
    blob_bytes_served: int = 0  # the bytes those answers carried

    def worker_event(self, event: WorkerEvent) -> None:
        self.connections += 1
        self.worker_events.append(event)
