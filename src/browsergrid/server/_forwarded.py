"""The peer's address as a trusted proxy forwards it (``X-Forwarded-For``/``-Proto``).

``DirectWebSocket`` serves upgrades outside ASGI, so uvicorn's ``ProxyHeadersMiddleware``
never sees them. ``trusted_proxy`` builds that middleware once; ``forwarded_client`` runs
it over one upgrade's headers and returns the client address it settles on, exactly as
uvicorn would have put it in an ASGI scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


async def _unused_app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _never_receive() -> dict[str, Any]:
    raise RuntimeError("not used")


async def _never_send(message: Any) -> None:
    raise RuntimeError("not used")


def trusted_proxy(
    proxy_headers: bool, forwarded_allow_ips: list[str] | str | None
) -> ProxyHeadersMiddleware | None:
    """The middleware to pass to ``forwarded_client``, or None when proxy headers are off."""
    if not proxy_headers:
        return None
    return ProxyHeadersMiddleware(_unused_app, trusted_hosts=forwarded_allow_ips or "127.0.0.1")


async def forwarded_client(
    proxy: ProxyHeadersMiddleware,
    headers: Mapping[str, str],
    client: tuple[str, int] | None,
    *,
    secure: bool,
) -> tuple[str, int] | None:
    """The client address after ``proxy`` applied the forwarded headers of ``headers``;
    ``client`` unchanged when the request carries none."""
    if "x-forwarded-for" not in headers and "x-forwarded-proto" not in headers:
        return client
    scope: dict[str, Any] = {
        "type": "websocket",
        "client": client,
        "scheme": "wss" if secure else "ws",
        "headers": [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ],
    }
    await proxy(scope, _never_receive, _never_send)  # type: ignore[arg-type]  # sets "client"
    forwarded = scope.get("client")
    return (str(forwarded[0]), int(forwarded[1] or 0)) if forwarded else None
