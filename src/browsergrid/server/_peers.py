"""Sending frames on a Starlette WebSocket without caring whether the peer already left."""

from __future__ import annotations

import logging

from starlette.websockets import WebSocket

log = logging.getLogger("browsergrid.server")


class WebSocketSender:
    """Sends text frames; a peer that vanished mid-send is not an error (its disconnect is
    handled by the receive loop). ``close`` remembers the code it closed with."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.close_code: int | None = None
        self.close_reason = ""

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


def host_of(ws: WebSocket) -> str:
    """The peer's IP address (what per-address limits count)."""
    return ws.client.host if ws.client else "unknown"


def address_of(ws: WebSocket) -> str:
    client = ws.client
    return f"{client.host}:{client.port}" if client else "unknown"
