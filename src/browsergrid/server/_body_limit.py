"""An ASGI middleware that refuses HTTP request bodies over a size, before the app reads them."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """413 for a request whose Content-Length passes ``max_bytes``. A body sent without
    Content-Length (chunked) is read here, at most ``max_bytes`` of it, and handed on."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, exempt: Callable[[str], bool] = lambda path: False
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt  # paths that stream their bodies and bound them themselves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request bodies are limited to {self.max_bytes} bytes (--max-body-bytes)"},
            status_code=413,
        )
        await response(scope, receive, send)
