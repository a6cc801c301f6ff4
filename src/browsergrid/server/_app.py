"""The ASGI application: worker page, HTTP API and docs, WebSocket endpoints, on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.openapi.docs import get_swagger_ui_html
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.staticfiles import StaticFiles

from browsergrid._front_end import front_end_packages
from browsergrid._tokens import is_loopback
from browsergrid._version import __version__
from browsergrid.core import ClockTicked
from browsergrid.server._access import Access, AccessChecks, document_access, load_admin_token
from browsergrid.server._agents import describe
from browsergrid.server._api import create_api
from browsergrid.server._blob_routes import blob_exempt, create_blob_router
from browsergrid.server._body_limit import BodyLimit
from browsergrid.server._clients import serve_client
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._dashboard import run_feed, serve_dashboard
from browsergrid.server._guard import BrowserChecks, document_guard
from browsergrid.server._metrics import metrics_registry, render
from browsergrid.server._page_assets import find_pyodide, page_asset_routes
from browsergrid.server._websocket import StarletteConnection
from browsergrid.server._workers import serve_worker

log = logging.getLogger("browsergrid.server")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_SWAGGER = "swagger-ui-dist"
_UPLOT = "uplot"
_A_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36"


def create_app(coordinator: Coordinator, access: Access | None = None) -> FastAPI:
    """Build the application around ``coordinator``; serve it with uvicorn (see ``serve``).

    ``access`` holds the tokens asked for; None: as ``coordinator.config`` says, the admin
    token read from (or created in) the data directory as ``serve`` does.
    """
    config = coordinator.config
    tokens = access if access is not None else Access.of(config, load_admin_token(config).value)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(describe, _A_BROWSER)  # load the parser's rules off the loop
        ticker = asyncio.create_task(_tick_forever(coordinator), name="browsergrid-ticker")
        feed = asyncio.create_task(run_feed(coordinator.feed), name="browsergrid-dashboard")
        try:
            yield
        finally:
            for task in (ticker, feed):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="browsergrid",
        version=__version__,
        summary="Submit jobs to a browser compute grid, follow them, and fetch their results.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(create_api(coordinator))
    app.include_router(create_blob_router(coordinator, tokens))
    app.add_middleware(BodyLimit, max_bytes=coordinator.config.max_body_bytes, exempt=blob_exempt)

    def refused() -> None:
        coordinator.stats.errors["unauthorized"] += 1

    app.add_middleware(AccessChecks, access=tokens, refused=refused)  # before the body is read
    app.add_middleware(
        BrowserChecks,
        allowed=coordinator.allowed_origins,
        loopback_only=is_loopback(coordinator.config.host),
    )

    @app.get("/", include_in_schema=False)
    async def worker_page() -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """200 with the version and how many workers and clients are connected; 503 while
        the store fails (work that cannot be stored is refused)."""
        return JSONResponse(
            {
                "status": "ok" if coordinator.healthy else "store_failing",
                "store": coordinator.store_problem or "ok",
                "version": __version__,
                "workers": len(coordinator.workers),
                "clients": len(coordinator.clients),
            },
            status_code=200 if coordinator.healthy else 503,
        )

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> Response:
        return FileResponse(WEB_DIR / "dashboard.html", headers={"Cache-Control": "no-cache"})

    registry = metrics_registry(coordinator)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics() -> Response:
        """Prometheus metrics: workers, tasks by state, results, errors by kind, task
        latency, and the process's CPU and memory (docs/dashboard.md lists them)."""
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    vendor = front_end_packages()
    app.router.routes.extend(
        page_asset_routes(
            find_pyodide(vendor), config.ops_module, name=config.name, message=config.message
        )
    )
    if vendor is not None:
        app.mount("/vendor/swagger-ui", StaticFiles(directory=vendor / _SWAGGER), name="swagger")
        if (vendor / _UPLOT / "dist").is_dir():
            app.mount(
                "/vendor/uplot", StaticFiles(directory=vendor / _UPLOT / "dist"), name="uplot"
            )

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        if vendor is None:
            log.warning("front-end packages missing: run 'npm ci' in the repository for /docs")
            return HTMLResponse(
                "<h1>API docs need the front-end packages</h1><p>Run <code>npm ci</code> in "
                "the browsergrid repository (or set BROWSERGRID_NODE_MODULES, or install a "
                "full wheel), then restart. "
                'The schema itself is at <a href="/openapi.json">/openapi.json</a>.</p>',
                status_code=503,
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="browsergrid API",
            swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png",
        )

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The schema with the bearer scheme declared (made once, then cached by FastAPI)."""
        made = app.openapi_schema is not None
        schema = plain_openapi()
        return schema if made else document_guard(document_access(schema, tokens))

    app.openapi = openapi  # type: ignore[method-assign]

    # ``serve`` answers these upgrades itself (``direct_websockets``), and these routes serve
    # them under any other ASGI server.
    def connection(websocket: WebSocket) -> StarletteConnection:
        config = coordinator.config
        return StarletteConnection(
            websocket,
            max_unsent=config.max_outbox_bytes,
            stall_timeout=config.heartbeat_timeout_s,
        )

    async def worker_endpoint(websocket: WebSocket) -> None:
        await serve_worker(coordinator, connection(websocket), tokens)

    async def client_endpoint(websocket: WebSocket) -> None:
        await serve_client(coordinator, connection(websocket), tokens)

    async def dashboard_endpoint(websocket: WebSocket) -> None:
        await serve_dashboard(coordinator.feed, websocket, tokens)

    app.add_api_websocket_route("/", worker_endpoint)
    app.add_api_websocket_route("/ws", worker_endpoint)
    app.add_api_websocket_route("/client", client_endpoint)
    app.add_api_websocket_route("/dashboard/live", dashboard_endpoint)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


async def _tick_forever(coordinator: Coordinator, interval_s: float = 0.5) -> None:
    """Feed the clock to the scheduler (leases expire, stragglers are copied); now and then
    write worker history and remove jobs past retention."""
    ticks = 0
    while True:
        await asyncio.sleep(interval_s)
        ticks += 1
        await coordinator.apply(
            ClockTicked(now=time.monotonic(), stimulus_id=coordinator.stimulus("tick"))
        )
        if ticks % 20 == 0:  # every 10 s
            await coordinator.remember_workers()
        if ticks % 120 == 0:  # every minute: when blobs were used, for the grid
            await coordinator.blobs.flush_uses()
        if ticks % 7200 == 1:  # at start, then hourly, beside the ticks
            coordinator.prune_soon()
