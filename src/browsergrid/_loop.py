"""The event loop every browsergrid process runs on: uvloop's when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when uvloop is installed (``uvicorn[standard]`` brings it
    on Linux and macOS), else None (asyncio's default loop); give it to ``asyncio.Runner``.
    uvloop wakes sooner from a socket or another thread, which is most of a small task's
    latency."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind ``loop_factory`` names."""
    factory = loop_factory()
    return factory() if factory is not None else asyncio.new_event_loop()
