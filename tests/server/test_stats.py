"""The coordinator's counters, and how a dashboard viewer takes frames."""

from __future__ import annotations

from typing import Any, cast

from browsergrid.server._dashboard import Viewer
from browsergrid.server._stats import Histogram, Stats, WorkerEvent


def test_histogram_buckets_are_upper_bounds_and_cumulative() -> None:
    histogram = Histogram((0.001, 0.01, 0.1))
    for value in (0.0005, 0.001, 0.002, 0.05, 5.0):
        histogram.observe(value)
    assert histogram.counts == [2, 1, 1, 1]
    assert histogram.count == 5
    assert abs(histogram.sum - 5.0535) < 1e-12
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("0.1", 4), ("+Inf", 5)]


def test_worker_events_keep_the_latest_fifty_and_count_all() -> None:
    stats = Stats()
    for worker_id in range(60):
        stats.worker_event(WorkerEvent(0.0, "connected", worker_id, "a:1", None, False))
    assert stats.connections == 60
    assert [e.worker_id for e in stats.worker_events] == list(range(10, 60))


def viewer() -> Viewer:
    return Viewer(cast(Any, None))


def test_a_new_viewer_wants_a_snapshot_first() -> None:
    v = viewer()
    assert v.needs_snapshot and v.wake.is_set()
    v.offer(b"update")
    assert v.waiting is None  # the snapshot it will get covers it


def test_a_viewer_that_keeps_up_gets_each_frame() -> None:
    v = viewer()
    v.needs_snapshot = False
    v.wake.clear()
    v.offer(b"one")
    assert (v.waiting, v.needs_snapshot, v.wake.is_set()) == (b"one", False, True)


def test_a_viewer_that_falls_behind_gets_a_snapshot_instead_of_a_queue() -> None:
    v = viewer()
    v.needs_snapshot = False
    v.offer(b"one")
    v.offer(b"two")  # "one" was not taken yet
    assert (v.waiting, v.needs_snapshot) == (None, True)
    v = viewer()
    v.needs_snapshot = False
    v.sending = True  # still sending the previous frame
    v.offer(b"one")
    assert (v.waiting, v.needs_snapshot) == (None, True)
