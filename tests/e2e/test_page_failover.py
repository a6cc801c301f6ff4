"""Real headless Chromium: a worker page given ``?coordinators=A,B`` moves to B when A is
killed with SIGKILL (each coordinator with its own SQLite and the same join token)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests._support import Coordinator, connected_workers, wait_for

pytestmark = pytest.mark.browser

JOIN = "page-failover-join"


@pytest.mark.timeout(90)
def test_worker_page_moves_to_the_next_coordinator_when_its_own_is_killed(
    start_coordinator: Callable[..., Coordinator], page: Any
) -> None:
    a = start_coordinator("--worker-token", JOIN)
    # A page served by A has A's origin: B must be told to take WebSockets from it.
    b = start_coordinator("--worker-token", JOIN, "--allow-origin", f"http://127.0.0.1:{a.port}")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    # A as its http:// address (the page makes it ws://.../ws), B as a WebSocket URL; the
    # page's ?token= goes to both.
    listed = f"http://127.0.0.1:{a.port},ws://127.0.0.1:{b.port}/ws"
    page.goto(f"http://127.0.0.1:{a.port}/?coordinators={listed}&token={JOIN}")

    introduced = a.event("worker_introduced")
    assert "Chrome" in introduced["agent"]
    page.wait_for_function("window.browsergrid.tasksDone === 1", timeout=15_000)
    assert page.text_content("#server-url") == f"ws://127.0.0.1:{a.port}/ws?token=***"
    assert [w["kind"] for w in connected_workers(a)] == ["browser"]
    assert connected_workers(b) == []

    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    b.event("worker_introduced", timeout=30)
    wait_for(lambda: [w["kind"] for w in connected_workers(b)] == ["browser"])
    page.wait_for_function("window.browsergrid.connects === 2", timeout=15_000)
    page.wait_for_function("window.browsergrid.state !== 'disconnected'", timeout=15_000)
    page.wait_for_function("window.browsergrid.tasksDone === 2", timeout=15_000)  # B's welcome
    shown = f"ws://127.0.0.1:{b.port}/ws?token=***"
    assert page.text_content("#server-url") == shown
    assert page.evaluate("window.browsergrid.coordinator") == shown
    assert any(line.startswith(f"Reconnecting to {shown}") for line in console), console
    assert not any(JOIN in line for line in console)


def test_another_coordinators_page_is_refused_without_allow_origin(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    """Why the test above starts B with --allow-origin: by default a coordinator takes
    WebSockets only from pages of its own origin, and another port is another origin."""
    b = start_coordinator("--memory")
    origin = Origin(f"http://127.0.0.1:{b.port + 1}")  # a page of a coordinator on another port
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(f"ws://127.0.0.1:{b.port}/ws", origin=origin),
    ):
        pass
    assert refused.value.response.status_code == 403
    assert b"origin_refused" in refused.value.response.body
