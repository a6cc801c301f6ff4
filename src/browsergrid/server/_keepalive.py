"""Pings for every direct WebSocket, and their "not reading" deadline, on one timer.

A ``DirectWebSocket`` (``_ws_direct``) has no timer of its own: the class
``direct_websockets`` builds holds one ``Keepalive`` for all its connections, made from the
heartbeat interval and timeout. A connection calls ``add`` once its endpoint accepts it and
``remove`` when its transport is lost, ``answered`` on any pong, ``stuck`` when its
transport pauses writing and ``moving`` when it resumes. The keepalive calls back what
``KeptAlive`` declares: ``ping`` each interval, ``keepalive_failed`` (1011) when a ping
goes unanswered for the timeout, ``give_up`` (1008) when the outbox has not drained for
the timeout. Without an interval it does nothing; without a timeout it only pings.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from browsergrid.server._websocket import stalled_reason


class KeptAlive(Protocol):
    """What ``Keepalive`` calls on a connection. ``keepalive_failed`` and ``give_up`` end
    it; the connection then calls ``remove`` itself, when its transport is lost."""

    def ping(self) -> None: ...

    def keepalive_failed(self) -> None: ...

    def give_up(self, reason: str) -> None: ...


class Keepalive:
    """Pings every connection each ``interval`` seconds and closes the ones that do not
    answer within ``timeout``: one timer for all of them, not one per connection. Closes
    too (1008) the ones whose outbox has not drained for ``timeout``: a peer that answers
    pings but reads nothing else is not alive for us.

    Connections wait in three insertion-ordered dicts (next ping due, pong deadline, stuck
    since); each order is the deadlines' order, so each sweep stops at the first one not
    yet due.
    """

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self.interval = interval if interval and interval > 0 else None
        self.timeout = timeout if timeout and timeout > 0 else None
        self._due: dict[KeptAlive, float] = {}
        self._waiting: dict[KeptAlive, float] = {}
        self._stuck: dict[KeptAlive, float] = {}  # writing paused since (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._step = min(1.0, self.interval / 4, (self.timeout or 4.0) / 4) if self.interval else 0

    def add(self, conn: KeptAlive, now: float) -> None:
        if self.interval is None:
            return
        self._due[conn] = now + self.interval
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._step, self._sweep)

    def remove(self, conn: KeptAlive) -> None:
        self._due.pop(conn, None)
        self._waiting.pop(conn, None)
        self._stuck.pop(conn, None)
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def answered(self, conn: KeptAlive) -> None:
        """Any pong counts: the peer is alive."""
        self._waiting.pop(conn, None)

    def stuck(self, conn: KeptAlive, now: float) -> None:
        """Its transport stopped taking bytes (over the high-water mark)."""
        if conn in self._due:
            self._stuck.setdefault(conn, now)

    def moving(self, conn: KeptAlive) -> None:
        """Its transport takes bytes again."""
        self._stuck.pop(conn, None)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        late = []
        for conn, deadline in self._waiting.items():
            if deadline > now:
                break
            late.append(conn)
        for conn in late:
            del self._waiting[conn]
            conn.keepalive_failed()
        if self.timeout is not None:
            stalled = []
            for conn, since in self._stuck.items():
                if since + self.timeout > now:
                    break
                stalled.append(conn)
            for conn in stalled:
                del self._stuck[conn]
                conn.give_up(stalled_reason(self.timeout))
        due = []
        for conn, when in self._due.items():
            if when > now:
                break
            due.append(conn)
        assert self.interval is not None
        for conn in due:
            del self._due[conn]
            self._due[conn] = now + self.interval
            if self.timeout is not None and conn not in self._waiting:
                self._waiting[conn] = now + self.timeout
            conn.ping()
        self._timer = loop.call_later(self._step, self._sweep) if self._due else None
