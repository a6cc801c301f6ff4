"""The reconnect policy of docs/protocol.md, shared in spirit with web/js/backoff.js."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Waits before reconnecting: 1 s doubling to 30 s, times a jitter factor in [0.5, 1.5].

    Call ``connected(now)`` when a connection opens and ``disconnected(now)`` when it
    closes or fails; the latter returns how many seconds to wait before the next attempt.
    A connection that stayed open ``stable_s`` resets the wait to ``first_s``.
    """

    def __init__(
        self,
        *,
        first_s: float = 1.0,
        cap_s: float = 30.0,
        stable_s: float = 60.0,
        random_: Callable[[], float] = random.random,
    ) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.stable_s = stable_s
        self._random = random_
        self._next_s = first_s
        self._opened_at: float | None = None

    def connected(self, now: float) -> None:
        """A connection opened at ``now`` (seconds, any monotonic clock)."""
        self._opened_at = now

    def disconnected(self, now: float) -> float:
        """A connection closed, or an attempt failed, at ``now``: seconds to wait."""
        if self._opened_at is not None and now - self._opened_at >= self.stable_s:
            self._next_s = self.first_s
        self._opened_at = None
        base = self._next_s
        self._next_s = min(self.cap_s, base * 2)
        return base * (0.5 + self._random())
