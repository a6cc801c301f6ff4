"""What keeps one connection from hurting the others: origin and token checks on WebSocket
upgrades, connections per address, and messages per second per connection.

The checks are plain functions and small classes with time passed in; ``admit`` applies the
upgrade checks to a ``Connection`` before it is accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from browsergrid._console import emit
from browsergrid._tokens import is_loopback
from browsergrid.protocol import CLOSE_GOING_AWAY
from browsergrid.protocol._limits import Connections as Connections  # re-exported
from browsergrid.protocol._limits import RateLimit as RateLimit  # re-exported
from browsergrid.server._access import (
    UNAUTHORIZED,
    Access,
    Role,
    challenge,
    presented_token,
    query_token,
)
from browsergrid.server._state import CoordinatorState
from browsergrid.server._websocket import Connection

events = logging.getLogger("browsergrid.server.events")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin: lower case, default port filled in."""
    try:
        parts = urlsplit(origin.strip().rstrip("/"))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _host_key(host: str, scheme: str) -> tuple[str, int] | None:
    """(host, port) of a Host header, as ``_origin_key`` has them."""
    try:
        parts = urlsplit(f"//{host}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def origin_allowed(
    origin: str | None, host: str | None, allowed: frozenset[str], *, peer_loopback: bool
) -> bool:
    """May a WebSocket upgrade with this ``Origin`` header go on?

    - no Origin: not a browser (the Python worker and client), so no page can be behind it;
    - the coordinator's own origin (the Origin's host:port is the request's Host);
    - ``null`` (a page opened from a file, such as the classroom exercise's) only from a
      loopback address;
    - an origin in ``allowed`` (``--allow-origin``; ``*`` allows any, ``null`` any page
      opened from a file).

    Origins compare without regard to case or a default port (``https://Grid.lan`` is
    ``https://grid.lan:443``).
    """
    if origin is None or "*" in allowed:
        return True
    if origin == "null":
        return peer_loopback or "null" in allowed
    key = _origin_key(origin)
    if key is None:
        return False
    if key in {_origin_key(entry) for entry in allowed}:
        return True
    return host is not None and _host_key(host, key[0]) == key[1:]


def host_allowed(host: str | None, *, loopback_only: bool) -> bool:
    """A coordinator that listens on loopback answers only to loopback names in the Host
    header: a web page whose own name was made to point at 127.0.0.1 (DNS rebinding) is
    refused. One that listens on the network answers to any name."""
    if not loopback_only:
        return True
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name)


class BrowserChecks:
    """ASGI middleware for HTTP requests: the Host check above, and a request that changes
    something (not GET, HEAD or OPTIONS) from a web page of a foreign origin gets 403 (a
    form or a no-cors fetch needs no CORS preflight)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str], *, loopback_only: bool) -> None:
        self.app = app
        self.allowed = allowed
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host"), headers.get("origin")
        if not host_allowed(host, loopback_only=self.loopback_only):
            detail = f"this coordinator answers to loopback names only, not {host!r}"
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(
            origin, host, self.allowed, peer_loopback=False
        ):
            detail = f"origin {origin} may not change anything here"
        else:
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)


async def guarded(
    coordinator: CoordinatorState,
    conn: Connection,
    serve: Callable[[], Awaitable[None]],
    *,
    access: Access,
    role: Role,
) -> None:
    """Run ``serve`` (which accepts ``conn``) if the upgrade passes the checks: not while the
    coordinator shuts down (1001), not from a foreign origin (403), not without the token
    ``role`` needs (401, counted as ``unauthorized``) nor past the connections of an address
    (429)."""
    if coordinator.closing:
        await conn.accept()
        await conn.close(CLOSE_GOING_AWAY, "server shutting down")
        return
    loopback_only = is_loopback(coordinator.config.host)
    refused = await admit(
        conn,
        coordinator.allowed_origins,
        coordinator.connections,
        loopback_only=loopback_only,
        access=access,
        role=role,
    )
    if refused is not None:
        if refused == UNAUTHORIZED:
            coordinator.stats.errors["unauthorized"] += 1
        return
    try:
        await serve()
    finally:
        coordinator.connections.give_back(conn.host)


async def admit(
    ws: Connection,
    allowed: frozenset[str],
    connections: Connections,
    *,
    loopback_only: bool,
    access: Access,
    role: Role,
) -> str | None:
    """Check an upgrade before accepting it: refuse a foreign origin (HTTP 403), a peer
    without the token ``role`` needs (401; ``Authorization: Bearer`` or ``?token=``) or one
    connection too many from an address (429). None when admitted: the caller must then
    call ``connections.give_back(host)`` when the connection ends; else the refusal's code
    (``host_refused``, ``origin_refused``, ``unauthorized``, ``too_many_connections``)."""
    host = ws.host
    origin = ws.header("origin")
    if not host_allowed(ws.header("host"), loopback_only=loopback_only):
        return await _deny(
            ws, 403, "host_refused", "this coordinator answers to loopback names only", host
        )
    if not origin_allowed(origin, ws.header("host"), allowed, peer_loopback=is_loopback(host)):
        return await _deny(ws, 403, "origin_refused", f"origin {origin} may not connect here", host)
    presented = presented_token(ws.header("authorization"), query_token(ws.query_string))
    if not access.allows(role, presented):
        detail = access.refusal(role, presented)
        return await _deny(ws, 401, UNAUTHORIZED, detail, host, challenge(presented))
    if not connections.take(host):
        return await _deny(
            ws,
            429,
            "too_many_connections",
            f"{host} already has {connections.limit} connections open",
            host,
        )
    return None


async def _deny(
    ws: Connection,
    status: int,
    code: str,
    detail: str,
    host: str,
    headers: dict[str, str] | None = None,
) -> str:
    emit(
        events,
        code,
        f"refused a connection from {host} to {ws.path}: {detail}",
        level=logging.WARNING,
        address=host,
        path=ws.path,
        detail=detail,
    )
    await ws.deny(status, {"detail": detail, "code": code}, headers)
    return code


def document_guard(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (OpenAPI) with the 403 that ``BrowserChecks`` may answer to any request
    declared on every operation: a Host that is not a loopback name (where the coordinator
    serves loopback only), or a change from a web page of a foreign origin."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.setdefault("responses", {})["403"] = {
                    "description": "refused before the request is read: its Host is not a "
                    "loopback name (this coordinator serves loopback only), or a web page of "
                    "another origin asked for a change",
                }
    return schema
