"""One WebSocket as the endpoints see it, whichever layer carries it: ``Connection``.

Two layers carry them. Worker and client sockets are served straight from the event loop
(``_ws_direct``); the dashboard's, and any socket of an app run by another ASGI server, come
through Starlette (``StarletteConnection``). The endpoints (``serve_worker``,
``serve_client``) and the upgrade checks (``guarded``) only use what is declared here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

log = logging.getLogger("browsergrid.server")


@dataclass(frozen=True, slots=True)
class Closed:
    """What ``Connection.receive`` returns once the connection has ended."""

    code: int = 1005
    reason: str = ""


class Connection(ABC):
    """A WebSocket upgrade request, then (once accepted) its connection.

    Sends never raise: a peer that vanished mid-send is not an error, because the receive
    loop sees it leave (``receive`` returns ``Closed``). ``close`` remembers the code and
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
    async def send(self, frame: str) -> None:
        """Send a text frame (nothing happens if the connection is closing)."""

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
    """A ``Connection`` over a Starlette WebSocket (an ASGI server's)."""

    __slots__ = ("close_code", "close_reason", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.close_code: int | None = None
        self.close_reason = ""

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
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return Closed(message.get("code", 1005), message.get("reason") or "")
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        return bytes(data) if data is not None else b""

    async def send(self, frame: str) -> None:
        try:
            await self.ws.send_text(frame)
        except Exception:
            log.debug("send failed; the peer is closing")

    async def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        try:
            await self.ws.close(code, reason[:120])
        except Exception:
            log.debug("close failed; the peer was already closed")
