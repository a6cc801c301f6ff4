"""A peer that stops reading stalls nobody but itself: a real coordinator, a raw-socket worker
(or client) that fills its side then reads nothing more, and an honest job beside it.

The staller's socket has a tiny receive buffer, so the coordinator's sends to it back up fast;
it answers the coordinator's pings with unsolicited pongs, so heartbeats alone would keep it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from browsergrid import Client
from tests._support import AUTH, Coordinator, Process, submit_job

pytestmark = pytest.mark.processes

HONEST = 20
LEASE_S = 5.0


class Staller:
    """A WebSocket peer on a raw socket that sends what it is told and never reads, but for
    the handshake. ``pong()`` sends an unsolicited pong (a "still alive")."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        uri = parse_uri(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((uri.host, uri.port))
        self.protocol = ClientProtocol(uri, max_size=None)
        request = self.protocol.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._write()
        response = None
        while response is None:
            data = self.sock.recv(65536)
            assert data, "the coordinator closed during the handshake"
            self.protocol.receive_data(data)
            response = next((e for e in self._events() if isinstance(e, Response)), None)
        assert response.status_code == 101, (response.status_code, response.body)
        self.lock = threading.Lock()

    def _events(self) -> list[Any]:
        return list(self.protocol.events_received())

    def _write(self) -> None:
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)

    def send(self, message: dict[str, Any] | str) -> None:
        """Send a text frame; once the coordinator has closed the socket, do nothing."""
        text = message if isinstance(message, str) else json.dumps(message)
        with self.lock:
            self.protocol.send_text(text.encode())
            try:
                self._write()
            except OSError:
                self.protocol.data_to_send()

    def pong(self) -> None:
        with self.lock:
            self.protocol.send_pong(b"")
            try:
                self._write()
            except OSError:
                self.protocol.data_to_send()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stallers() -> Iterator[Callable[..., Staller]]:
    made: list[Staller] = []

    def make(url: str, headers: dict[str, str] | None = None) -> Staller:
        staller = Staller(url, headers)
        made.append(staller)
        return staller

    yield make
    for staller in made:
        staller.close()


def keep_ponging(staller: Staller, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.wait(0.5):
            try:
                staller.pong()
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_worker_that_stops_reading_stalls_nobody_and_is_closed(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    stallers: Callable[..., Staller],
) -> None:
    coordinator = start_coordinator(
        "--memory", "--heartbeat-interval", "1", "--heartbeat-timeout", "2"
    )
    staller = stallers(coordinator.ws_url)
    staller.send(
        {
            "type": "hello",
            "protocol": 1,
            "ops": ["prime_count", "sink"],
            "concurrency": 32,
            "prefetch": 32,
            "agent": "staller",
        }
    )
    joined = coordinator.event("worker_introduced", agent="staller")
    # reports for tasks it does not hold, and frames that do not decode, within its rate:
    # each frame earns an error frame it never reads
    unknown = [{"task_id": i, "result": 0, "duration_ms": 1} for i in range(10**6, 10**6 + 2000)]
    for _ in range(3):
        staller.send({"type": "results", "results": unknown})
    for _ in range(1000):
        staller.send("not json" * 8)
    # and tasks of its own op, with large arguments, that it will never read
    submit_job(coordinator.port, {"op": "sink", "args": [{"pad": "x" * 60_000}] * 64})
    stop = threading.Event()
    keep_ponging(staller, stop)
    try:
        start_worker(coordinator.ws_url, "--concurrency", "2")
        coordinator.events_named("worker_introduced", 2)
        started = time.monotonic()
        with Client(f"http://127.0.0.1:{coordinator.port}") as client:
            futures = [
                client.options(lease_timeout=LEASE_S).submit("prime_count", lo=0, hi=20_000)
                for _ in range(HONEST)
            ]
            answered = httpx.get(
                f"http://127.0.0.1:{coordinator.port}/api/jobs", headers=AUTH, timeout=2
            )
            assert answered.status_code == 200
            results = [f.result(timeout=LEASE_S) for f in futures]
        assert results == [2262] * HONEST  # primes below 20,000
        assert time.monotonic() - started < LEASE_S
    finally:
        stop.set()
    gone = coordinator.event("worker_disconnected", worker_id=joined["worker_id"], timeout=5)
    assert gone["code"] == 1008
    assert "not reading" in gone["reason"]


def test_a_client_that_stops_reading_is_closed_and_the_grid_goes_on(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    stallers: Callable[..., Staller],
) -> None:
    coordinator = start_coordinator(
        "--memory", "--heartbeat-interval", "1", "--heartbeat-timeout", "2"
    )
    start_worker(coordinator.ws_url, "--concurrency", "2")
    coordinator.event("worker_introduced")
    url = coordinator.ws_url.rstrip("/").rsplit("/", 1)[0] + "/client"
    staller = stallers(url, AUTH)
    stop = threading.Event()
    keep_ponging(staller, stop)
    try:
        args = [{"initial": 1.0, "factor": 1.0, "times": 1} for _ in range(10_000)]
        for ref in range(5):  # 50,000 results pushed to a client that reads none of them
            staller.send(
                {
                    "type": "submit",
                    "ref": ref,
                    "job_key": "j",
                    "op": "repeat_multiply",
                    "args": args,
                }
            )
        client_gone = coordinator.event("client_disconnected", timeout=60)
        with Client(f"http://127.0.0.1:{coordinator.port}") as client:
            honest = client.submit("repeat_multiply", initial=2.0, factor=3.0, times=2)
            assert honest.result(timeout=10) == 18.0
    finally:
        stop.set()
    assert client_gone["code"] == 1008
    jobs = httpx.get(f"http://127.0.0.1:{coordinator.port}/api/jobs", headers=AUTH, timeout=5)
    assert jobs.status_code == 200
