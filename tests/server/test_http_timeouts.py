"""Slow HTTP senders (slowloris) against a real coordinator, over raw sockets: a request's
headers or body that do not arrive within ``--request-timeout`` get 408 and a closed
connection, while requests sent at once, slow answers and WebSockets are left alone."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError
from tests._support import AUTH, TEST_TOKEN, Coordinator

pytestmark = pytest.mark.processes  # a coordinator for the module

TIMEOUT_S = 1.0
SLACK_S = 2.0  # a loaded machine's delay before the coordinator's timer fires


@pytest.fixture(scope="module")
def coordinator() -> Iterator[Coordinator]:
    started = Coordinator(0, ("--memory", "--request-timeout", str(TIMEOUT_S)))
    try:
        yield started
    finally:
        started.end()


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_the_timeout_must_be_a_positive_number_of_seconds(seconds: float) -> None:
    with pytest.raises(ConfigError, match="--request-timeout"):
        ServeConfig(request_timeout_s=seconds)


def opened(coordinator: Coordinator) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", coordinator.port))
    sock.settimeout(TIMEOUT_S + SLACK_S + 5)
    return sock


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the coordinator sends until it closes the connection, and how long that
    took; fails if it keeps the connection open past the socket's timeout."""
    started = time.monotonic()
    received = b""
    with sock:
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return received, time.monotonic() - started


def one_response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, read whole."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def assert_408(received: bytes, what: str) -> None:
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert b"connection: close" in head.lower()
    answer = json.loads(body)
    assert answer["code"] == "request_timeout" and what in answer["detail"]


def test_nothing_or_half_a_request_line_is_closed_within_the_timeout(
    coordinator: Coordinator,
) -> None:
    silent, half = opened(coordinator), opened(coordinator)
    half.sendall(b"GET /heal")
    for sock in (silent, half):
        received, took = until_closed(sock)
        assert_408(received, "headers")
        assert took < TIMEOUT_S + SLACK_S


def test_headers_sent_one_by_one_are_closed_at_the_deadline_not_at_each_pause(
    coordinator: Coordinator,
) -> None:
    sock = opened(coordinator)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    try:  # a header every 0.3 s: each byte is on time, the whole is not
        for k in range(20):
            sock.sendall(f"X-Slow-{k}: 1\r\n".encode())
            time.sleep(0.3)
    except OSError:
        pass  # closed while sending: what the test wants
    received, _ = until_closed(sock)
    assert_408(received, "headers")
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S + 0.3


def test_a_kept_alive_connection_is_timed_again_from_its_next_request(
    coordinator: Coordinator,
) -> None:
    sock = opened(coordinator)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with sock:
        for _ in range(2):  # each answered, though the connection outlives the timeout
            sock.sendall(request)
            assert one_response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(TIMEOUT_S * 0.7)
        sock.sendall(b"GET /hea")
        received, took = until_closed(sock)
    assert_408(received, "headers")
    assert took < TIMEOUT_S + SLACK_S


def test_a_trickling_body_gets_408_and_the_job_is_not_queued(
    coordinator: Coordinator,
) -> None:
    jobs_url = f"http://127.0.0.1:{coordinator.port}/api/jobs"
    jobs_before = httpx.get(jobs_url, headers=AUTH).json()
    body = json.dumps({"op": "prime_count", "args": [{"lo": 0, "hi": 10}] * 2000}).encode()
    sock = opened(coordinator)
    sock.sendall(
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {TEST_TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    started = time.monotonic()
    try:  # 100 bytes a second: far below 1 KiB/s
        for offset in range(0, len(body), 10):
            sock.sendall(body[offset : offset + 10])
            time.sleep(0.1)
    except OSError:
        pass
    received, _ = until_closed(sock)
    assert_408(received, "body")
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S + 1
    assert httpx.get(jobs_url, headers=AUTH).json() == jobs_before
    coordinator.event("request_too_slow", phase="body")


def test_requests_sent_in_pieces_in_time_are_answered(coordinator: Coordinator) -> None:
    body = json.dumps({"op": "prime_count", "args": [{"lo": 0, "hi": 10}]}).encode()
    sock = opened(coordinator)
    parts = [
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        f"Authorization: Bearer {TEST_TOKEN}\r\nContent-Type: application/json\r\n".encode(),
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10],
        body[10:],
    ]
    with sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(TIMEOUT_S / 5)
        assert one_response(sock).startswith(b"HTTP/1.1 201 ")


def test_a_large_body_on_a_fast_link_is_accepted(coordinator: Coordinator) -> None:
    args = [{"lo": 0, "hi": 10, "pad": "x" * 100}] * 20_000  # about 2.5 MB
    response = httpx.post(
        f"http://127.0.0.1:{coordinator.port}/api/jobs",
        json={"op": "prime_count", "args": args},
        headers=AUTH,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    httpx.post(
        f"http://127.0.0.1:{coordinator.port}/api/jobs/{response.json()['job_id']}/cancel",
        headers=AUTH,
    )


def test_a_slow_answer_is_not_cut(coordinator: Coordinator) -> None:
    """Once a request is read, the clock stops: a followed results stream stays open for
    longer than the timeout, until its job ends."""
    base = f"http://127.0.0.1:{coordinator.port}"
    job = httpx.post(
        f"{base}/api/jobs", json={"op": "prime_count", "args": [{"lo": 0, "hi": 10}]}, headers=AUTH
    ).json()["job_id"]  # no worker here: it waits
    threading.Timer(
        TIMEOUT_S * 2.5, lambda: httpx.post(f"{base}/api/jobs/{job}/cancel", headers=AUTH)
    ).start()
    started = time.monotonic()
    with httpx.stream(
        "GET", f"{base}/api/jobs/{job}/results", params={"follow": "true"}, timeout=30
    ) as response:
        assert response.status_code == 200
        assert list(response.iter_lines()) == []  # cancelled: no results, the stream ends
    assert time.monotonic() - started >= TIMEOUT_S * 2.5


def test_websockets_outlive_the_timeout(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url, open_timeout=5) as ws:
        time.sleep(TIMEOUT_S * 2.5)
        ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "protocol": 1,
                    "agent": "test",
                    "ops": ["prime_count"],
                    "concurrency": 1,
                }
            )
        )
        kinds = [json.loads(ws.recv(timeout=5))["type"] for _ in range(2)]
        assert "welcome" in kinds  # and the welcome task, sent on connect


def test_many_slow_connections_are_all_closed(coordinator: Coordinator) -> None:
    socks = [opened(coordinator) for _ in range(50)]
    for sock in socks[::2]:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends its headers
    for sock in socks:
        received, _ = until_closed(sock)
        assert_408(received, "headers")
    assert httpx.get(f"http://127.0.0.1:{coordinator.port}/healthz").status_code == 200
