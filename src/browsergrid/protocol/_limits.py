"""What one peer may take: messages per second (``RateLimit``) and connections per address
(``Connections``). Pure: time is passed in, nothing sleeps or reads a clock."""

from __future__ import annotations

from collections import Counter


class RateLimit:
    """A token bucket: ``rate`` messages per second on average, bursts up to ``burst``, plus
    the messages ``grant`` owes. Ask ``allow`` before using a message; refuse it when False.
    """

    __slots__ = ("at", "burst", "owed", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = now
        self.owed = 0  # messages granted beyond the rate (see ``grant``)

    def allow(self, now: float, cost: int = 1) -> bool:
        """Take ``cost`` messages (a frame of several items costs one per item): the owed
        ones first, the rest from the bucket. False, and nothing taken, when the bucket
        cannot pay the rest: the caller refuses the whole frame."""
        from_owed = min(self.owed, cost)
        rest = cost - from_owed
        if rest:
            tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            if tokens < rest:
                return False
            self.tokens, self.at = tokens - rest, now
        self.owed -= from_owed
        return True

    def grant(self, count: int) -> None:
        """``count`` more messages are owed (a worker was sent that many tasks, and may
        answer each in a frame of its own): they never count against the rate."""
        self.owed += count


class Connections:
    """Open WebSocket connections per address (``limit`` 0: no limit). ``take`` before
    accepting one (False: refuse it); ``give_back`` once it has ended."""

    __slots__ = ("limit", "open")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def take(self, host: str) -> bool:
        if self.limit and self.open[host] >= self.limit:
            return False
        self.open[host] += 1
        return True

    def give_back(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]
