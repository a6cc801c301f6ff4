"""``browsergrid serve`` as a real process, driven over real WebSockets on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests._support import (
    AUTH,
    WELCOME_RESULT,
    Coordinator,
    close_to,
    job_results,
    job_state,
    slow_tasks,
    submit_job,
    wait_for,
)


def recv_json(ws: ClientConnection, timeout: float = 5) -> dict[str, object]:
    message = json.loads(ws.recv(timeout))
    assert isinstance(message, dict)
    return message


def welcome_task(ws: ClientConnection) -> dict[str, object]:
    task = recv_json(ws)
    assert task["type"] == "task" and task["op"] == "repeat_multiply"
    return task


def test_exercise_style_client_gets_the_welcome_task_and_its_result_is_logged(
    coordinator: Coordinator,
) -> None:
    with connect(f"ws://127.0.0.1:{coordinator.port}", compression=None) as ws:  # path "/"
        task = welcome_task(ws)
        assert {k: task[k] for k in ("initial", "factor", "times")} == {
            "initial": 1.0000054,
            "factor": 1.00000043,
            "times": 1_000_000,
        }
        ws.send(
            json.dumps(
                {
                    "type": "result",
                    "task_id": task["task_id"],
                    "result": WELCOME_RESULT,
                    "duration_ms": 3,
                    "agent": "exercise",
                }
            )
        )
        result = coordinator.event("result", task_id=task["task_id"])
    assert result["agent"] == "exercise" and result["welcome"] is True
    assert close_to(result["result"], WELCOME_RESULT)
    connected = coordinator.event("worker_connected", worker_id=result["worker_id"])
    assert connected["path"] == "/"
    gone = coordinator.event("worker_disconnected", worker_id=result["worker_id"])
    assert gone["code"] == 1000


def test_hello_gets_welcome_with_worker_id_and_limits(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url, compression=None) as ws:
        task = welcome_task(ws)  # sent on connect, before hello can arrive
        ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "protocol": 1,
                    "agent": "t",
                    "ops": ["repeat_multiply"],
                    "concurrency": 2,
                }
            )
        )
        welcome = recv_json(ws)
        assert welcome["type"] == "welcome" and welcome["protocol"] == 1
        assert welcome["limits"] == {
            "max_frame_bytes": 1048576,
            "heartbeat_interval_s": 20.0,
            "heartbeat_timeout_s": 20.0,
        }
        ws.send(
            json.dumps(
                {"type": "hello", "protocol": 1, "agent": "t", "ops": ["x"], "concurrency": 1}
            )
        )
        assert recv_json(ws)["code"] == "already_introduced"
        ws.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": 1.0, "duration_ms": 0.5}
            )
        )
        coordinator.event("result", task_id=task["task_id"], worker_id=welcome["worker_id"])
    coordinator.event("worker_introduced", worker_id=welcome["worker_id"], concurrency=2)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("hello there", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "gossip"}', "unknown_type"),
        ('{"type": "result", "task_id": 1}', "bad_message"),
        ('{"type": "result", "task_id": 999, "result": 1, "duration_ms": 1}', "unknown_task"),
        ('{"type": "error", "task_id": 999, "message": "boom"}', "unknown_task"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_and_the_connection_goes_on(
    coordinator: Coordinator, frame: str, code: str
) -> None:
    with connect(coordinator.ws_url, compression=None) as ws:
        task = welcome_task(ws)
        ws.send(frame)
        error = recv_json(ws)
        assert error["type"] == "error" and error["code"] == code and error["message"]
        # still usable: the welcome task can be answered afterwards
        ws.send(
            json.dumps(
                {
                    "type": "result",
                    "task_id": task["task_id"],
                    "result": WELCOME_RESULT,
                    "duration_ms": 1,
                }
            )
        )
        coordinator.event("result", task_id=task["task_id"])


def test_a_result_for_someone_elses_task_is_refused(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url) as first, connect(coordinator.ws_url) as second:
        task = welcome_task(first)
        welcome_task(second)
        second.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": 0, "duration_ms": 1}
            )
        )
        assert recv_json(second)["code"] == "unknown_task"
        first.send(
            json.dumps(
                {
                    "type": "result",
                    "task_id": task["task_id"],
                    "result": WELCOME_RESULT,
                    "duration_ms": 1,
                }
            )
        )
        result = coordinator.event("result", task_id=task["task_id"])
        first.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": 2, "duration_ms": 1}
            )
        )  # a duplicate
        assert recv_json(first)["code"] == "unknown_task"
    assert close_to(result["result"], WELCOME_RESULT)


@pytest.mark.parametrize(
    ("send", "close_code"),
    [
        (lambda ws: ws.send(b"\x00\x01"), 1003),
        (
            lambda ws: ws.send(
                json.dumps(
                    {"type": "hello", "protocol": 2, "agent": "x", "ops": ["a"], "concurrency": 1}
                )
            ),
            1002,
        ),
        (lambda ws: ws.send("x" * (1024 * 1024 + 1)), 1009),
    ],
    ids=["binary", "protocol-2", "too-big"],
)
def test_frames_that_end_the_connection_get_the_documented_close_code(
    coordinator: Coordinator, send: Callable[[ClientConnection], None], close_code: int
) -> None:
    with connect(coordinator.ws_url, compression=None, max_size=None) as ws:
        welcome_task(ws)
        send(ws)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(5)
        assert ws.close_code == close_code
    # the coordinator carries on
    with connect(coordinator.ws_url) as ws:
        welcome_task(ws)


def test_a_silent_peer_is_dropped_by_the_heartbeat(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--heartbeat-interval", "0.3", "--heartbeat-timeout", "0.3")
    with socket.create_connection(("127.0.0.1", coordinator.port)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert b" 101 " in sock.recv(4096)
        connected = coordinator.event("worker_connected")
        # never answer the pings: the coordinator must notice within interval + timeout
        coordinator.event("worker_disconnected", timeout=5, worker_id=connected["worker_id"])


def test_sigterm_closes_workers_with_1001_and_exits_0(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url) as ws:
        welcome_task(ws)
        coordinator.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        assert ws.close_code == 1001
    assert coordinator.wait() == 0
    coordinator.event("stopped")
    assert "Traceback" not in coordinator.output()


def test_ctrl_c_exits_0_without_traceback(coordinator: Coordinator) -> None:
    coordinator.signal(signal.SIGINT)
    assert coordinator.wait() == 0
    assert "Traceback" not in coordinator.output()


def test_healthz_page_and_static_assets_share_the_port(coordinator: Coordinator) -> None:
    base = f"http://127.0.0.1:{coordinator.port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        health = json.load(response)
    assert health["status"] == "ok" and health["workers"] == 0
    with urllib.request.urlopen(f"{base}/", timeout=5) as response:
        assert "browsergrid worker" in response.read().decode()
    with urllib.request.urlopen(f"{base}/static/js/page.js", timeout=5) as response:
        assert "javascript" in response.headers["Content-Type"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "browsergrid", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.processes
def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_cli("serve", "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "cannot listen" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.processes
@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "abc"),
        ("serve", "--port", "70000"),
        ("serve", "--bogus"),
        ("worker", "http://x"),
        ("worker", "ws://127.0.0.1:1", "--concurrency", "0"),
    ],
)
def test_bad_options_are_a_one_line_error(args: tuple[str, ...]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "error" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_welcome_task_and_quiet(start_coordinator: Callable[..., Coordinator]) -> None:
    coordinator = start_coordinator("--no-welcome-task", "--quiet")
    with connect(coordinator.ws_url) as ws, pytest.raises(TimeoutError):
        ws.recv(0.5)
    time.sleep(0.2)
    names = {entry["event"] for entry in coordinator.events()}
    assert "worker_connected" not in names and "ready" in names


def test_a_result_is_acknowledged_once_it_is_stored(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url) as ws:
        welcome = welcome_task(ws)  # answered first: it holds the one slot
        ws.send(
            json.dumps(
                {
                    "type": "result",
                    "task_id": welcome["task_id"],
                    "result": WELCOME_RESULT,
                    "duration_ms": 1,
                }
            )
        )
        hello = {
            "type": "hello",
            "protocol": 1,
            "agent": "t",
            "ops": ["prime_count"],
            "concurrency": 1,
            "prefetch": 0,
        }
        ws.send(json.dumps(hello))
        assert recv_json(ws)["type"] == "welcome"
        body = json.dumps({"op": "prime_count", "args": [{"lo": 0, "hi": 100}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{coordinator.port}/api/jobs",
            data=body,
            headers={"content-type": "application/json", **AUTH},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            first_task_id = json.load(response)["first_task_id"]
        task = recv_json(ws)
        assert task["type"] == "task" and task["task_id"] == first_task_id
        ws.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": 25, "duration_ms": 1}
            )
        )
        assert recv_json(ws) == {"type": "ack", "task_ids": [first_task_id]}


def tasks_in(frame: dict[str, object]) -> list[dict[str, object]]:
    """The tasks of a ``task`` or ``tasks`` frame."""
    if frame["type"] == "tasks":
        listed = frame["tasks"]
        assert isinstance(listed, list)
        return listed
    assert frame["type"] == "task"
    return [frame]


def test_a_paused_worker_hands_its_tasks_back_and_another_runs_them_at_once(
    coordinator: Coordinator,
) -> None:
    hello = {"type": "hello", "protocol": 1, "agent": "volunteer", "ops": ["repeat_multiply"]}
    with connect(coordinator.ws_url, compression=None) as tab:
        welcome_task(tab)  # never answered: it is handed back too
        tab.send(json.dumps({**hello, "concurrency": 2, "prefetch": 0}))
        assert recv_json(tab)["type"] == "welcome"
        job_id = submit_job(coordinator.port, {"op": "repeat_multiply", "args": slow_tasks(2)})
        held: list[dict[str, object]] = []
        while len(held) < 1:
            held += [t for t in tasks_in(recv_json(tab)) if t["op"] == "repeat_multiply"]
        tab.send(json.dumps({"type": "capacity", "concurrency": 0}))
        tab.send(json.dumps({"type": "hand_back", "task_ids": [t["task_id"] for t in held]}))
        coordinator.event("worker_capacity", concurrency=0)
        with connect(coordinator.ws_url, compression=None) as other:
            welcome_task(other)
            other.send(json.dumps({**hello, "concurrency": 2, "prefetch": 2}))
            answered = 0
            while answered < 2:
                frame = recv_json(other)
                for task in tasks_in(frame) if frame["type"] in ("task", "tasks") else []:
                    if task.get("exact"):
                        result = {"task_id": task["task_id"], "result": task["initial"]}
                        tab_frame = {"type": "result", **result, "duration_ms": 1}
                        other.send(json.dumps(tab_frame))
                        answered += 1
            wait_for(lambda: job_state(coordinator.port, job_id)["state"] == "finished")
        outcomes = job_results(coordinator.port, job_id)
    assert sorted(o["result"] for o in outcomes) == [0.0, 1.0]
    assert all(o["attempts"] == 1 for o in outcomes)  # a task handed back was no attempt


def test_capacity_and_hand_back_before_hello_are_refused(coordinator: Coordinator) -> None:
    with connect(coordinator.ws_url, compression=None) as ws:
        welcome_task(ws)
        ws.send(json.dumps({"type": "capacity", "concurrency": 0}))
        assert recv_json(ws)["code"] == "not_introduced"
        ws.send(json.dumps({"type": "hand_back", "task_ids": [1]}))
        assert recv_json(ws)["code"] == "not_introduced"
        ws.send(json.dumps({"type": "capacity", "concurrency": 1, "share": 0}))
        assert recv_json(ws)["code"] == "bad_message"
