"""The ASGI application: the worker page, /healthz, and the WebSocket endpoints, on one port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from browsergrid._version import __version__
from browsergrid.server._coordinator import Coordinator

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def create_app(coordinator: Coordinator) -> Starlette:
    """Build the application around ``coordinator``; serve it with uvicorn (see ``serve``)."""

    async def worker_page(request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "workers": len(coordinator.connections)}
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(coordinator.tick_forever(), name="browsergrid-ticker")
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    return Starlette(
        routes=[
            Route("/", worker_page),
            Route("/healthz", healthz),
            WebSocketRoute("/", coordinator.serve_worker),
            WebSocketRoute("/ws", coordinator.serve_worker),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
        ],
        lifespan=lifespan,
    )
