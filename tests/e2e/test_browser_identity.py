"""Real headless Chromium: a tab's worker_key is derived per coordinator origin from a
secret that never leaves the page, so a link whose ``?server=`` names a foreign server
gives that server a key worth nothing at the real coordinator (issue 21, item 4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from websockets.sync.client import connect

from browsergrid.protocol import encode_hello, public_worker_key
from tests._support import Coordinator

pytestmark = pytest.mark.browser

SECRET_SLOT = "browsergrid.tab_secret.0"


def expected_key(secret: str, port: int) -> str:
    """docs/security.md: 'tab-' + HMAC-SHA-256(secret, origin), 32 hex digits."""
    mac = hmac.new(secret.encode(), f"ws://127.0.0.1:{port}".encode(), hashlib.sha256)
    return "tab-" + mac.hexdigest()[:32]


class SentFrames:
    """Every text frame the pages it watches send over any WebSocket."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))
        return page

    def _sent(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, str) else payload.decode())

    def hello_keys(self) -> list[str]:
        hellos = [json.loads(f) for f in self.frames if '"type":"hello"' in f.replace(" ", "")]
        return [hello["worker_key"] for hello in hellos]


@pytest.mark.timeout(90)
def test_a_foreign_server_named_by_a_link_gets_a_key_of_its_own_not_the_tabs_secret(
    start_coordinator: Callable[..., Coordinator], page: Any
) -> None:
    a = start_coordinator("--memory")  # the volunteer's coordinator
    # the "attacker": another server, which takes WebSockets from pages of A's origin
    b = start_coordinator("--memory", "--allow-origin", f"http://127.0.0.1:{a.port}")
    sent = SentFrames()
    context = page.context

    sent.watch(page).goto(a.page_url)
    joined_a = a.event("worker_new")
    a.event("result", worker_id=joined_a["worker_id"])
    secret = page.evaluate(f"localStorage.getItem('{SECRET_SLOT}')")
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    page.close()  # its slot (Web Lock) is free again: the next tab has the same secret

    lured = sent.watch(context.new_page())
    lured.goto(f"{a.page_url}?server=ws://127.0.0.1:{b.port}/ws")
    joined_b = b.event("worker_new")
    b.event("result", worker_id=joined_b["worker_id"])
    assert lured.evaluate(f"localStorage.getItem('{SECRET_SLOT}')") == secret
    lured.close()

    back = sent.watch(context.new_page())  # the same tab back at A: the same identity
    back.goto(a.page_url)
    recognised = a.event("worker_recognised")
    back.close()

    key_a, key_b, key_a_again = sent.hello_keys()
    assert key_a == expected_key(secret, a.port) == key_a_again
    assert key_b == expected_key(secret, b.port) != key_a
    assert joined_a["worker_key"] == recognised["worker_key"] == public_worker_key(key_a)
    assert joined_b["worker_key"] == public_worker_key(key_b)
    assert all(secret not in frame for frame in sent.frames)

    # What B learnt, sent to A, is a stranger there: no history, no standing.
    with connect(a.ws_url) as stolen:
        stolen.send(encode_hello("thief", ["repeat_multiply"], 1, worker_key=key_b))
        stranger = a.event("worker_new", worker_key=public_worker_key(key_b))
    assert stranger["tasks_done"] == 0
