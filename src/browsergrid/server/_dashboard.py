"""The dashboard's WebSocket endpoint (``/dashboard/live``) and the clock of its feed.

``serve_dashboard`` serves one open dashboard: it registers a ``Viewer`` with the ``Feed``
and sends it what the feed offers (a snapshot, then ``update`` frames), until it leaves.
``run_feed`` ticks the feed every ``TICK_S`` and saves its throughput now and then: the app
runs it as a task while it serves and cancels it when it stops; at shutdown,
``close_all_viewers`` closes the open dashboards first. What the frames hold is worked out
in ``_feed.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from browsergrid.protocol import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION
from browsergrid.server._access import Access, Role
from browsergrid.server._feed import Feed, Viewer
from browsergrid.server._guard import guarded
from browsergrid.server._websocket import StarletteConnection

log = logging.getLogger("browsergrid.server")

TICK_S: Final = 0.5  # at most two frames per second per viewer


async def serve_dashboard(feed: Feed, ws: WebSocket, access: Access) -> None:
    """One open dashboard: a snapshot, then the frames the clock offers, until it leaves. A
    coordinator with a dashboard token asks for it (or the admin token)."""
    await guarded(
        feed.coordinator,
        StarletteConnection(ws),
        lambda: _serve_viewer(feed, ws),
        access=access,
        role=Role.READ,
    )


async def _serve_viewer(feed: Feed, ws: WebSocket) -> None:
    await ws.accept()
    budget = feed.coordinator.rate_limit()
    viewer = Viewer(ws)
    feed.viewers.add(viewer)
    sender = asyncio.ensure_future(_send_forever(viewer, ws))
    try:
        while True:  # viewers send nothing; this notices when they leave
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if not budget.allow(time.monotonic()):
                await ws.close(CLOSE_POLICY_VIOLATION, "rate_limited")
                break
    except WebSocketDisconnect:
        pass
    finally:
        feed.viewers.discard(viewer)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send_forever(viewer: Viewer, ws: WebSocket) -> None:
    while True:
        await viewer.wake.wait()
        viewer.wake.clear()
        frame, viewer.waiting = viewer.waiting, None
        if frame is None:
            continue
        viewer.sending = True
        try:
            await ws.send_text(frame.decode())
        except Exception:
            return  # the receive loop sees the disconnect
        finally:
            viewer.sending = False


async def close_all_viewers(feed: Feed, reason: str = "server shutting down") -> None:
    """Close every dashboard connection with 1001 (going away); pages reconnect later."""
    for viewer in list(feed.viewers):
        with contextlib.suppress(Exception):
            await viewer.ws.close(CLOSE_GOING_AWAY, reason)


async def run_feed(feed: Feed, save_every_s: float = 5.0) -> None:
    """Tick forever: offer each viewer the frame of differences; save throughput now and
    then. Cancel it to stop (the last seconds are saved)."""
    await feed.load()
    last_save = time.monotonic()
    try:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await feed.tick(time.time())
            except Exception:  # a bug here must not freeze the dashboard for good
                log.exception("dashboard: a tick failed; carrying on")
            if time.monotonic() - last_save >= save_every_s:
                last_save = time.monotonic()
                await feed.save()
    finally:
        await asyncio.shield(feed.save(final=True))
