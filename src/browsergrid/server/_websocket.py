"""One WebSocket as the endpoints see it, whichever layer carries it: ``Connection``.

Two layers carry them. Worker and client sockets are served straight from the event loop
(``_ws_direct``); the dashboard's, and any socket of an app run by another ASGI server, come
through Starlette (``StarletteConnection``). The endpoints (``serve_worker``,
``serve_client``) and the upgrade checks (``guarded``) only use what is declared here.

**Sending never waits.** ``send`` puts a frame in the connection's own outbox and returns;
the bytes leave as the peer reads them. Nothing that serves everyone (a submit, a flush of
results, the clock) ever waits on one peer's socket. A peer that does not read is closed
(1008) instead: when a frame is sent to it while more than ``max_unsent`` bytes still wait
(``--max-outbox-bytes``; one large frame alone never closes it), or when
its outbox has not drained for ``stall_timeout`` seconds (the heartbeat timeout; a pong is
no proof of reading). Its endpoint then sees ``Closed`` at once, so its leases go back to
the queue. Only a peer's own writer (``ClientPeer``'s, a viewer's) awaits ``drained``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, cast

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

log = logging.getLogger("browsergrid.server")

MAX_UNSENT: Final = 4 * 2**20
"""Default of ``--max-outbox-bytes``: a peer with more unsent bytes than this is closed."""
CLOSE_NOT_READING: Final = 1008


def unsent_reason(limit: int) -> str:
    """The close reason of a peer whose outbox passed ``limit`` bytes."""
    return f"not reading: over {limit} bytes unsent (--max-outbox-bytes)"


def stalled_reason(seconds: float) -> str:
    """The close reason of a peer whose outbox did not drain for ``seconds``."""
    return f"not reading: nothing drained for {seconds:g} s"


@dataclass(frozen=True, slots=True)
class Closed:
    """What ``Connection.receive`` returns once the connection has ended."""

    code: int = 1005
    reason: str = ""


class Connection(ABC):
    """A WebSocket upgrade request, then (once accepted) its connection.

    Sends never raise and never wait: a peer that vanished mid-send is not an error,
    because the receive loop sees it leave (``receive`` returns ``Closed``), and a peer that
    stops reading is closed (see the module docstring). ``close`` remembers the code and
    reason this side closed with.
    """

    __slots__ = ()

    close_code: int | None
    close_reason: str

    @property
    @abstractmethod
    def path(self) -> str:
        """The request's path, without the query string."""

    @property
    @abstractmethod
    def query_string(self) -> bytes: ...

    @property
    @abstractmethod
    def client(self) -> tuple[str, int] | None:
        """The peer's (IP address, port), as trusted proxy headers tell it."""

    @abstractmethod
    def header(self, name: str) -> str | None:
        """The value of the request header ``name`` (lower case), or None."""

    @abstractmethod
    async def accept(self) -> None:
        """Complete the handshake (101)."""

    @abstractmethod
    async def deny(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Refuse the upgrade with an HTTP response whose body is ``body`` as JSON."""

    @abstractmethod
    async def receive(self) -> str | bytes | Closed:
        """The next message (text or binary), or ``Closed`` once it has ended."""

    @abstractmethod
    def send(self, frame: str) -> None:
        """Queue a text frame in this peer's outbox and return at once (nothing happens if
        the connection is closing). Closes the connection (1008) when the peer has more
        unsent bytes than its limit."""

    @abstractmethod
    async def drained(self) -> None:
        """Return once the frames sent so far have left (or the connection ended). Only the
        peer's own writer may wait on this: it is how a writer paces itself."""

    @property
    @abstractmethod
    def unsent(self) -> int:
        """Bytes sent but not yet handed to the operating system."""

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code``; ``receive`` then returns ``Closed``."""

    @property
    def host(self) -> str:
        """The peer's IP address (what per-address limits count)."""
        client = self.client
        return client[0] if client else "unknown"

    @property
    def address(self) -> str:
        """The peer's ``host:port``."""
        client = self.client
        return f"{client[0]}:{client[1]}" if client else "unknown"


class StarletteConnection(Connection):
    """A ``Connection`` over a Starlette WebSocket (an ASGI server's). Its outbox is a
    queue emptied by a writer task of its own, started at the first ``send``."""

    __slots__ = (
        "_closer",
        "_drained",
        "_gone",
        "_outbox",
        "_unsent",
        "_writer",
        "close_code",
        "close_reason",
        "max_unsent",
        "stall_timeout",
        "ws",
    )

    def __init__(
        self, ws: WebSocket, *, max_unsent: int = MAX_UNSENT, stall_timeout: float = 20.0
    ) -> None:
        self.ws = ws
        self.close_code: int | None = None
        self.close_reason = ""
        self.max_unsent = max_unsent
        self.stall_timeout = stall_timeout
        self._outbox: deque[str] = deque()
        self._unsent = 0
        self._writer: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None
        self._gone: asyncio.Future[Closed] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self.ws.url.path

    @property
    def query_string(self) -> bytes:
        value = self.ws.scope.get("query_string", b"")
        return value if isinstance(value, bytes) else b""

    @property
    def client(self) -> tuple[str, int] | None:
        client = self.ws.client
        return (client.host, client.port) if client else None

    def header(self, name: str) -> str | None:
        return self.ws.headers.get(name)

    async def accept(self) -> None:
        await self.ws.accept()

    async def deny(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        response = JSONResponse(body, status_code=status, headers=headers)
        await self.ws.send_denial_response(response)

    async def receive(self) -> str | bytes | Closed:
        gone = self._gone
        if gone is None:
            gone = self._gone = asyncio.get_running_loop().create_future()
        if gone.done():
            return gone.result()
        receiving = asyncio.ensure_future(self.ws.receive())
        await asyncio.wait(
            [receiving, cast("asyncio.Future[Any]", gone)], return_when=asyncio.FIRST_COMPLETED
        )
        if not receiving.done():  # given up on while waiting: the peer does not read
            receiving.cancel()
            return gone.result()
        try:
            message = receiving.result()
        except RuntimeError:  # closed meanwhile
            return Closed(self.close_code or 1006, self.close_reason)
        if message["type"] == "websocket.disconnect":
            return Closed(message.get("code", 1005), message.get("reason") or "")
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        return bytes(data) if data is not None else b""

    @property
    def unsent(self) -> int:
        return self._unsent

    def send(self, frame: str) -> None:
        if self.close_code is not None:
            return
        if self._unsent > self.max_unsent:  # what it was sent before still waits
            self._give_up(unsent_reason(self.max_unsent))
            return
        self._outbox.append(frame)
        self._unsent += len(frame)
        if self._drained is not None:
            self._drained.clear()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def drained(self) -> None:
        if self._writer is None or self.close_code is not None:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        await self._drained.wait()

    async def _write(self) -> None:
        try:
            while self._outbox and self.close_code is None:
                frame = self._outbox[0]
                try:
                    await asyncio.wait_for(self.ws.send_text(frame), self.stall_timeout)
                except TimeoutError:
                    self._give_up(stalled_reason(self.stall_timeout))
                    return
                except Exception:
                    log.debug("send failed; the peer is closing")
                    return
                self._outbox.popleft()
                self._unsent -= len(frame)
        finally:
            self._writer = None
            if self._drained is not None:
                self._drained.set()

    def _give_up(self, reason: str) -> None:
        """The peer does not read: forget its outbox and close it (1008)."""
        self._outbox.clear()
        self._unsent = 0
        self.close_code, self.close_reason = CLOSE_NOT_READING, reason
        if self._drained is not None:
            self._drained.set()
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        if not self._gone.done():
            self._gone.set_result(Closed(CLOSE_NOT_READING, reason))
        self._closer = asyncio.get_running_loop().create_task(self._abort())

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.ws.close(CLOSE_NOT_READING, self.close_reason[:120]), self.stall_timeout
            )

    async def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        try:
            await self.ws.close(code, reason[:120])
        except Exception:
            log.debug("close failed; the peer was already closed")
