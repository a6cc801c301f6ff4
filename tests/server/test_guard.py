"""Origin checks, connections per address and messages per second: the pure checks, then a
real coordinator refusing what goes beyond them while the rest of the grid carries on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from browsergrid import AsyncClient, SubmitError
from browsergrid.server._guard import is_loopback, origin_allowed
from tests._support import AUTH, Coordinator, Process

NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "loopback", "expected"),
    [
        (None, "127.0.0.1:8765", NONE, False, True),  # not a browser
        ("http://127.0.0.1:8765", "127.0.0.1:8765", NONE, False, True),  # its own page
        ("https://grid.example:443", "grid.example:443", NONE, False, True),
        ("http://evil.example", "127.0.0.1:8765", NONE, True, False),  # a foreign page
        ("http://127.0.0.1:9999", "127.0.0.1:8765", NONE, True, False),  # another port
        ("null", "127.0.0.1:8765", NONE, True, True),  # a file:// page on this machine
        ("null", "10.0.0.5:8765", NONE, False, False),  # ... elsewhere
        ("https://lab.example", "10.0.0.5:8765", frozenset({"https://lab.example"}), False, True),
        ("https://lab.example/", "10.0.0.5:8765", frozenset({"https://lab.example"}), False, True),
        ("https://any.example", "10.0.0.5:8765", frozenset({"*"}), False, True),
        ("ftp://127.0.0.1:8765", "127.0.0.1:8765", NONE, True, False),
        ("http://127.0.0.1:8765", None, NONE, True, False),  # no Host header
        ("http://GRID.lan", "grid.lan:80", NONE, False, True),  # case, default port
        ("https://grid.lan:443", "Grid.Lan", NONE, False, True),
        ("http://[::1]:8765", "[::1]:8765", NONE, True, True),
        (
            "https://lab.example",
            "10.0.0.5:8765",
            frozenset({"HTTPS://Lab.Example:443/"}),
            False,
            True,
        ),
        ("null", "10.0.0.5:8765", frozenset({"null"}), False, True),  # opted in
        ("http://[bad", "127.0.0.1:8765", NONE, True, False),
    ],
)
def test_origin_allowed(
    origin: str | None, host: str | None, allowed: frozenset[str], loopback: bool, expected: bool
) -> None:
    assert origin_allowed(origin, host, allowed, peer_loopback=loopback) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


async def test_a_foreign_page_is_refused_its_own_page_and_tools_are_not(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--allow-origin", "https://lab.example")
    base = f"ws://127.0.0.1:{coordinator.port}"
    for path in ("/ws", "/client", "/dashboard/live"):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(base + path, origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        assert b"may not connect" in refused.value.response.body
        for origin in (None, f"http://127.0.0.1:{coordinator.port}", "https://lab.example"):
            async with websockets.connect(
                base + path,
                origin=origin,  # type: ignore[arg-type]
                additional_headers=AUTH,
            ):
                pass
    assert coordinator.event("origin_refused", path="/ws")["detail"].startswith(
        "origin http://evil.example"
    )


async def test_one_connection_too_many_from_an_address_gets_429(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--max-connections-per-address", "3")
    url = f"ws://127.0.0.1:{coordinator.port}/ws"
    opened = [await websockets.connect(url) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url)
    assert refused.value.response.status_code == 429
    await opened.pop().close()
    await asyncio.sleep(0.2)
    again = await websockets.connect(url)  # a slot came free
    for ws in (*opened, again):
        await ws.close()


async def test_a_flooding_connection_is_closed_and_the_grid_carries_on(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--memory", "--max-messages-per-s", "200")
    base = f"http://127.0.0.1:{coordinator.port}"
    start_worker(coordinator.ws_url).wait_for_line(lambda line: "welcomed" in line)
    async with AsyncClient(base) as client:
        flood = await websockets.connect(f"ws://127.0.0.1:{coordinator.port}/ws")
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(5000):
                await flood.send('{"type": "nonsense"}')
            async for _ in flood:  # the error frames, then the close
                pass
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        event = coordinator.event("worker_refused", code="rate_limited")
        assert event["close_code"] == 1008
        # the coordinator and the other worker carry on
        results = [
            await client.submit("repeat_multiply", initial=1, factor=2, times=k) for k in range(5)
        ]
        assert results == [1, 2, 4, 8, 16]
        async with httpx.AsyncClient() as http:
            healthz = (await http.get(f"{base}/healthz")).json()
        assert healthz["status"] == "ok" and healthz["workers"] == 1


def test_size_limits_give_413_and_queue_nothing(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator(
        "--memory",
        "--max-tasks-per-job",
        "10",
        "--max-args-bytes",
        "100",
        "--max-body-bytes",
        "5000",
    )
    small = {"initial": 1, "factor": 2, "times": 3}
    with httpx.Client(headers=AUTH, base_url=f"http://127.0.0.1:{coordinator.port}") as http:
        many = http.post("/api/jobs", json={"op": "repeat_multiply", "args": [small] * 11})
        assert many.status_code == 413
        assert "at most 10 tasks" in many.json()["detail"]
        big = {**small, "note": "x" * 200}
        large = http.post("/api/jobs", json={"op": "repeat_multiply", "args": [small, big]})
        assert large.status_code == 413
        assert "task 1" in large.json()["detail"]
        body = http.post(
            "/api/jobs",
            content=json.dumps({"op": "repeat_multiply", "args": [small] * 300}),
            headers={"content-type": "application/json"},
        )
        assert body.status_code == 413
        assert "limited to 5000 bytes" in body.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it comes
            yield b'{"op": "repeat_multiply", "args": ['
            for _ in range(300):
                yield json.dumps(small).encode() + b","
            yield json.dumps(small).encode() + b"]}"

        streamed = http.post(
            "/api/jobs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert http.get("/api/jobs").json() == []  # nothing was queued
        ok = http.post("/api/jobs", json={"op": "repeat_multiply", "args": [small] * 10})
        assert ok.status_code == 201


async def test_a_client_past_the_job_limit_gets_an_error_and_keeps_its_connection(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--max-tasks-per-job", "3")
    task = {"initial": 1, "factor": 2, "times": 1}
    async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
        with pytest.raises(SubmitError, match="at most 3 tasks") as refused:
            await client.submit_job("repeat_multiply", [task] * 4).job_id()
        assert refused.value.code == "too_many_tasks"
        assert await client.submit_job("repeat_multiply", [task] * 3).job_id() >= 1


def test_a_foreign_page_cannot_change_anything_over_http(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory")
    own = f"http://127.0.0.1:{coordinator.port}"
    small = {"op": "repeat_multiply", "args": [{"initial": 1, "factor": 2, "times": 3}]}
    with httpx.Client(headers=AUTH, base_url=own) as http:
        job_id = http.post("/api/jobs", json=small).json()["job_id"]  # a tool: no Origin
        evil = {"origin": "http://evil.example"}
        for path in (f"/api/jobs/{job_id}/cancel", "/api/demo"):  # no body: a form could post
            refused = http.post(path, headers=evil)
            assert refused.status_code == 403
            assert "may not change anything" in refused.json()["detail"]
        assert http.get(f"/api/jobs/{job_id}", headers=evil).status_code == 200  # reading is fine
        assert http.post("/api/demo", headers={"origin": own}).status_code == 201  # the dashboard
    errors = [e for e in coordinator.events() if e.get("level") == "error"]
    assert errors == []


async def test_a_name_that_is_not_this_machine_is_refused_on_loopback(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1."""
    coordinator = start_coordinator("--memory")
    rebound = {"host": f"evil.example:{coordinator.port}"}
    async with httpx.AsyncClient(
        headers=AUTH, base_url=f"http://127.0.0.1:{coordinator.port}"
    ) as http:
        assert (await http.get("/api/jobs", headers=rebound)).status_code == 403
        assert (await http.get("/api/jobs", headers={"host": "localhost"})).status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            f"ws://127.0.0.1:{coordinator.port}/ws",
            additional_headers=rebound,
            origin=f"http://evil.example:{coordinator.port}",  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403
    assert not [e for e in coordinator.events() if e.get("level") == "error"]
