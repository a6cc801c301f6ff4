"""Worker and client sockets served straight from the event loop (``_ws_direct``): the parts
of WebSocket the ASGI layer used to do for them, against a real ``browsergrid serve``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from browsergrid.server._keepalive import Keepalive
from tests._support import AUTH, Coordinator, connected_workers

HELLO = {
    "type": "hello",
    "protocol": 1,
    "agent": "direct-test",
    "ops": ["repeat_multiply"],
    "concurrency": 1,
}


def recv_json(ws: ClientConnection, timeout: float = 5) -> dict[str, object]:
    message = json.loads(ws.recv(timeout))
    assert isinstance(message, dict)
    return message


def until_type(ws: ClientConnection, kind: str) -> dict[str, object]:
    while True:
        message = recv_json(ws)
        if message["type"] == kind:
            return message


def test_a_hello_sent_in_fragments_is_one_message(coordinator: Coordinator) -> None:
    text = json.dumps(HELLO)
    with connect(coordinator.ws_url, compression=None) as ws:
        ws.send([text[:10], text[10:30], text[30:]])  # a text message in 3 frames
        assert until_type(ws, "welcome")["worker_id"]


def test_invalid_utf8_in_a_text_frame_closes_with_1007(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url, compression=None) as ws:
        ws.send(b'{"type": "\xff"}', text=True)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(5)
        assert ws.close_code == 1007
    with connect(coordinator.ws_url) as ws:  # the coordinator carries on
        assert recv_json(ws)["type"] == "task"


def test_a_burst_of_frames_sent_without_reading_is_answered_in_full(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    """More frames than the coordinator queues before it stops reading the socket: it
    reads on as its endpoint catches up, and answers every one."""
    coordinator = start_coordinator("--memory", "--max-messages-per-s", "100000")
    count = 400
    with connect(coordinator.ws_url, compression=None) as ws:
        assert recv_json(ws)["type"] == "task"  # the welcome task
        for index in range(count):
            ws.send(
                json.dumps(
                    {"type": "result", "task_id": 10**9 + index, "result": 1, "duration_ms": 1}
                )
            )
        codes = [until_type(ws, "error")["code"] for _ in range(count)]
    assert codes == ["unknown_task"] * count


def test_a_trusted_proxy_names_the_worker_address(coordinator: Coordinator) -> None:
    """127.0.0.1 is trusted by default (FORWARDED_ALLOW_IPS, as uvicorn reads it)."""
    headers = {"X-Forwarded-For": "203.0.113.7"}
    with connect(coordinator.ws_url, compression=None, additional_headers=headers) as ws:
        ws.send(json.dumps(HELLO))
        until_type(ws, "welcome")
        connected = coordinator.event("worker_connected")
        assert connected["address"].startswith("203.0.113.7:")
        addresses = [worker["address"] for worker in connected_workers(coordinator)]
        assert [a for a in addresses if a.startswith("203.0.113.7:")] == addresses


def test_an_untrusted_proxy_header_is_ignored(
    start_coordinator: Callable[..., Coordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.9.9.9")
    coordinator = start_coordinator("--memory")
    headers = {"X-Forwarded-For": "203.0.113.7"}
    with connect(coordinator.ws_url, compression=None, additional_headers=headers) as ws:
        recv_json(ws)
        connected = coordinator.event("worker_connected")
    assert connected["address"].startswith("127.0.0.1:")


def test_the_per_address_limit_counts_the_forwarded_address(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--max-connections-per-address", "1")
    one = {"X-Forwarded-For": "203.0.113.7"}
    other = {"X-Forwarded-For": "203.0.113.8"}
    with connect(coordinator.ws_url, additional_headers=one) as first:
        recv_json(first)
        with pytest.raises(InvalidStatus) as refused:
            connect(coordinator.ws_url, additional_headers=one)
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body)["code"] == "too_many_connections"
        with connect(coordinator.ws_url, additional_headers=other) as second:
            recv_json(second)


def test_other_websocket_paths_still_reach_the_app(coordinator: Coordinator) -> None:
    """The dashboard's socket goes on to uvicorn's protocol and the ASGI app; an unknown
    path is refused there (403)."""
    live = f"ws://127.0.0.1:{coordinator.port}/dashboard/live"
    with connect(live, additional_headers=AUTH) as ws:
        assert "workers" in json.loads(ws.recv(5))
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{coordinator.port}/nowhere", additional_headers=AUTH)
    assert refused.value.response.status_code == 403


def test_a_worker_that_answers_pings_stays(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator(
        "--memory", "--heartbeat-interval", "0.2", "--heartbeat-timeout", "0.2"
    )
    with connect(coordinator.ws_url, compression=None) as ws:
        recv_json(ws)
        worker_id = coordinator.event("worker_connected")["worker_id"]
        time.sleep(1.5)  # several pings, each answered by the client library
        ws.send(json.dumps(HELLO))
        assert until_type(ws, "welcome")["worker_id"] == worker_id
        left = [e for e in coordinator.events() if e.get("event") == "worker_disconnected"]
        assert left == []


class _Peer:
    """What Keepalive calls on a connection; a failed one closes, so it leaves."""

    def __init__(self, keepalive: Keepalive) -> None:
        self.keepalive = keepalive
        self.pings = 0
        self.failed = False

    def ping(self) -> None:
        self.pings += 1

    def keepalive_failed(self) -> None:
        self.failed = True
        self.keepalive.remove(self)  # type: ignore[arg-type]


async def test_keepalive_pings_each_connection_and_fails_the_silent_ones() -> None:
    keepalive = Keepalive(0.1, 0.1)
    talker, mute = _Peer(keepalive), _Peer(keepalive)
    now = asyncio.get_running_loop().time()
    keepalive.add(talker, now)  # type: ignore[arg-type]
    keepalive.add(mute, now)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while not mute.failed and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        keepalive.answered(talker)  # type: ignore[arg-type]
    assert mute.failed and mute.pings == 1
    assert not talker.failed and talker.pings >= 2
    keepalive.remove(talker)  # type: ignore[arg-type]
    assert keepalive._timer is None  # nothing left to ping: no timer


async def test_keepalive_without_an_interval_does_nothing() -> None:
    keepalive = Keepalive(None, 20)
    peer = _Peer(keepalive)
    keepalive.add(peer, 0.0)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert peer.pings == 0 and keepalive._timer is None
