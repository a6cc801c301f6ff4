"""The coordinator's counters, and how a dashboard viewer takes frames."""

from __future__ import annotations

from typing import Any, cast

from browsergrid.server._feed import Feed, Viewer
from browsergrid.server._stats import Histogram, Stats, WorkerEvent
from browsergrid.store import ThroughputSample


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
    assert v.needs_snapshot and v.ready_for_snapshot
    v.offer(b"update")
    assert v.waiting is None  # the snapshot it will get covers it
    v.give_snapshot(b"snapshot")
    assert (v.waiting, v.needs_snapshot, v.wake.is_set()) == (b"snapshot", False, True)


def test_a_viewer_that_keeps_up_gets_each_frame() -> None:
    v = viewer()
    v.give_snapshot(b"snapshot")
    v.waiting = None
    v.wake.clear()
    v.offer(b"one")
    assert (v.waiting, v.needs_snapshot, v.wake.is_set()) == (b"one", False, True)


def test_one_frame_may_wait_behind_the_one_being_sent() -> None:
    v = viewer()
    v.give_snapshot(b"snapshot")
    v.waiting, v.sending = None, True
    v.offer(b"one")
    assert (v.waiting, v.needs_snapshot) == (b"one", False)


def test_a_viewer_that_falls_behind_gets_a_snapshot_instead_of_a_queue() -> None:
    v = viewer()
    v.give_snapshot(b"snapshot")
    v.waiting = None
    v.offer(b"one")
    v.offer(b"two")  # "one" was not taken yet
    assert (v.waiting, v.needs_snapshot) == (None, True)
    v.sending = True
    assert not v.ready_for_snapshot  # not while it is still sending
    v.sending = False
    assert v.ready_for_snapshot


class _Counted:
    """Just what ``Feed.count`` reads from a coordinator."""

    def __init__(self) -> None:
        self.stats = Stats()


def test_throughput_is_shared_between_seconds_in_proportion_to_time() -> None:
    coordinator = _Counted()
    feed = Feed(cast(Any, coordinator))
    feed.count(100.2)
    coordinator.stats.results = 100
    feed.count(101.2)  # 0.8 s of the interval in second 100, 0.2 s in 101
    coordinator.stats.results, coordinator.stats.failed = 200, 14
    feed.count(102.6)  # 101.2 .. 102.6: 0.8/1.4 in second 101, the rest in 102
    assert list(feed.throughput) == [
        ThroughputSample(at=100, done=80, failed=0),
        ThroughputSample(at=101, done=20 + 57, failed=8),
    ]
    feed.count(104.0)  # nothing new: second 102 closes with what it had
    assert feed.throughput[-1] == ThroughputSample(at=102, done=43, failed=6)
    assert feed.rate() == round(214 / (104.0 - 100.2), 1)
