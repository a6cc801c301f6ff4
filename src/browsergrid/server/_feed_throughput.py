"""The dashboard's throughput: results and failures counted per Unix second, the last 15
minutes of them kept (and saved to the store, read back after a restart), and the rate of
the last few seconds.

``Feed`` (``_feed.py``) owns one ``ThroughputCounter``: it calls ``count`` on every tick,
``save`` every few seconds and ``save(final=True)`` at exit, and sends ``throughput``. In a
grid (``serve --redis``) the seconds shown are the sums over the coordinators: this
coordinator's own closed seconds (``own``, shared in its grid snapshot through
``recent_seconds``) go to ``GridFeed.merge_seconds`` (``_feed_grid.py``), which puts the
sums back with ``hold``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Final

from browsergrid.server._grid_snapshot import SHARED_SECONDS
from browsergrid.server._state import CoordinatorState
from browsergrid.store import StoreError, ThroughputSample

log = logging.getLogger("browsergrid.server")

WINDOW_S: Final = 15 * 60  # throughput kept and shown
_RATE_WINDOW_S: Final = 5.0


class ThroughputCounter:
    """This coordinator's results and failures, counted into seconds as they come.

    ``in_grid``: the seconds it closes go to ``own`` only, and ``throughput`` holds what
    ``hold`` puts there (the grid's sums); else they go to both."""

    def __init__(self, coordinator: CoordinatorState, *, in_grid: bool) -> None:
        self.coordinator = coordinator
        self.throughput: deque[ThroughputSample] = deque()  # the seconds shown, in order
        self.own: deque[ThroughputSample] = deque()  # own closed seconds, for the grid
        self._in_grid = in_grid
        self._unsaved: list[ThroughputSample] = []
        self._second = 0  # the Unix second being counted
        self._second_done = 0
        self._second_failed = 0
        self._counted = (0, 0)  # (results, failed) already put into seconds
        self._counted_at: float | None = None
        self._finished: deque[tuple[float, int]] = deque()  # (time, results + failed)

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
            if not self._in_grid:  # in a grid: summed with the others' seconds (hold)
                self.throughput.append(sample)
            self.own.append(sample)
            self._unsaved.append(sample)
        self._second_done = self._second_failed = 0
        while self.throughput and self.throughput[0].at < self._second - WINDOW_S:
            self.throughput.popleft()
        while self.own and self.own[0].at < self._second - SHARED_SECONDS:
            self.own.popleft()

    def recent_seconds(self) -> list[ThroughputSample]:
        """This coordinator's seconds closed in the last ``SHARED_SECONDS`` (with activity)."""
        return [s for s in self.own if s.at >= self._second - SHARED_SECONDS]

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

    # --- in a grid -------------------------------------------------------------------

    def hold(self, at: int, done: int, failed: int) -> ThroughputSample | None:
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

    def drop_old(self, now: float) -> None:
        """Let go of the seconds older than ``WINDOW_S`` before ``now``."""
        while self.throughput and self.throughput[0].at < int(now) - WINDOW_S:
            self.throughput.popleft()
