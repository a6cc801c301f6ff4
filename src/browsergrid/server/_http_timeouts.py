"""HTTP requests must arrive in time: a peer that sends them too slowly is closed with 408.

uvicorn closes a keep-alive connection that stays idle after a response, but a request it
has begun to read may take forever: a peer that opens a connection and sends nothing, or
half a request line, or one header every few seconds, holds a connection and an open file
for good. A thousand of them (slowloris) exhaust the open-files limit and lock everyone out.

``timed_http`` makes the class given to uvicorn as ``Config(http=...)``: uvicorn's httptools
protocol, with one deadline per request being read.

- The headers: within ``timeout_s`` of the connection opening, or of the first byte of a
  later request on a kept-alive connection.
- The body: within ``timeout_s`` of the headers, plus one second for each
  ``MIN_BODY_BYTES_PER_S`` received (a large job on a slow link arrives; a trickle does not).

Past its deadline the peer gets ``408 Request Timeout`` (unless a response to it has begun)
and the connection is closed. While the server itself stops reading (flow control: the app
has not taken the body yet, or pipelined requests wait), the clock starts again. Nothing is
timed once the request is read: a slow answer is the server's own business. WebSocket
upgrades leave this class when their headers are complete (``handle_websocket_upgrade``),
and from then on the WebSocket layer watches them with pings.

One timer per connection at most: set once a pass of reading ends in the middle of a
request (or when the connection opens), checked when it fires, and moved on then if the
body's deadline has moved; a request read in one pass of the event loop (most are) on a
kept-alive connection sets none.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import ClassVar

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from browsergrid._console import emit

events = logging.getLogger("browsergrid.server.events")

MIN_BODY_BYTES_PER_S = 1024
"""Each KiB of a request's body received extends its deadline by a second."""


class _Phase(enum.Enum):
    IDLE = "idle"  # no request being read: the server answers one, or waits for the next
    HEADERS = "headers"  # reading a request's line and headers
    BODY = "body"  # reading a request's body
    DONE = "done"  # upgraded to a WebSocket, or closed: nothing more to time


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request deadlines. Built by the class
    ``timed_http`` returns, never directly."""

    timeout_s: ClassVar[float] = 10.0

    _phase = _Phase.IDLE
    _since = 0.0  # loop time at which the phase began (or its clock restarted)
    _received = 0  # body bytes received in this phase
    _timer: asyncio.TimerHandle | None = None

    # --- the phases ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin(_Phase.HEADERS)
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.IDLE:
            self._begin(_Phase.HEADERS)  # a new request, or stray bytes before one
        super().data_received(data)
        self._watch()

    def on_message_begin(self) -> None:
        if self._phase is not _Phase.HEADERS:  # the next of pipelined requests
            self._begin(_Phase.HEADERS)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._phase is not _Phase.DONE:
            self._begin(_Phase.BODY)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._received += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._phase is not _Phase.DONE:
            self._begin(_Phase.IDLE)
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._end()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        super().connection_lost(exc)

    def _begin(self, phase: _Phase) -> None:
        """A new phase, with a clock of its own (``_watch`` sets its timer)."""
        self._phase = phase
        self._since = self.loop.time()
        self._received = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self) -> None:
        self._phase = _Phase.DONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- the clock -----------------------------------------------------------------------

    def _deadline(self) -> float:
        allowed = self.timeout_s
        if self._phase is _Phase.BODY:
            allowed += self._received / MIN_BODY_BYTES_PER_S
        return self._since + allowed

    def _watch(self) -> None:
        """After a pass of reading: a timer while a request is being read, none otherwise."""
        timing = self._phase in (_Phase.HEADERS, _Phase.BODY)
        if timing and self._timer is None:
            self._timer = self.loop.call_at(self._deadline(), self._check)
        elif not timing and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._phase not in (_Phase.HEADERS, _Phase.BODY) or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is not reading, so the peer cannot send
            self._since, self._received = self.loop.time(), 0
        elif self.loop.time() >= self._deadline():
            self._time_out()
            return
        self._watch()

    def _time_out(self) -> None:
        what = "headers" if self._phase is _Phase.HEADERS else "body"
        address = self.client[0] if self.client else "unknown"
        emit(
            events,
            "request_too_slow",
            f"closed a connection from {address}: its request {what} did not arrive within "
            f"--request-timeout ({self.timeout_s:g} s, plus 1 s per KiB of body)",
            level=logging.WARNING,
            address=address,
            phase=what,
        )
        cycle = self.cycle
        if self._phase is _Phase.HEADERS:  # an answer to an earlier request may be under way
            busy = cycle is not None and not cycle.response_complete
        else:  # the app may have answered this one already
            busy = cycle is not None and cycle.response_started
            if cycle is not None:  # the app still reading the body hears that the peer left
                cycle.disconnected = True
                cycle.message_event.set()
        self._end()
        if not busy:
            self.transport.write(_response_408(what))
        self.transport.close()


def _response_408(what: str) -> bytes:
    detail = f"the request's {what} did not arrive in time: send requests without pausing"
    body = msgspec.json.encode({"detail": detail, "code": "request_timeout"})
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def timed_http(timeout_s: float) -> type[TimedHttpProtocol]:
    """The class to give uvicorn as ``Config(http=...)``: requests whose headers do not
    arrive within ``timeout_s``, or whose body trickles (see the module's docstring), get
    408 and are closed."""

    class TimedHttp(TimedHttpProtocol):
        pass

    TimedHttp.timeout_s = timeout_s
    return TimedHttp
