"""Fuzzing a real coordinator: schemathesis over the HTTP API (no 5xx, every answer as the
OpenAPI schema says), hypothesis over raw WebSocket frames to ``/ws`` and ``/client`` (an
``error`` frame or a documented close, never a crash). Afterwards nothing is lost: every
accepted job holds all its tasks, and a new worker runs a new job right."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import browsergrid
from browsergrid.errors import ProtocolError
from browsergrid.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Accepted,
    Capacity,
    ClientError,
    HandBack,
    Hello,
    Holds,
    ServerError,
    Submit,
    Welcome,
    decode_client_message,
    decode_coordinator_message,
    decode_server_message,
    decode_worker_message,
)
from tests._support import AUTH, ROOT, TEST_TOKEN, Coordinator, Process
from tests.protocol.test_fuzz import any_frames, fixture_frames, frames_around_the_limit

ANSWER_TIMEOUT_S = 10  # the coordinator answers a frame on loopback in milliseconds


# --- what docs/protocol.md documents -------------------------------------------------------

PROTOCOL_MD = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def documented_section(title: str) -> str:
    return PROTOCOL_MD.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def documented_error_codes(title: str) -> frozenset[str]:
    """The codes in the ``| `code` | cause ...`` table of a section."""
    codes, in_table = set(), False
    for line in documented_section(title).splitlines():
        if line.startswith("| `code` | cause"):
            in_table = True
        elif in_table and (found := re.match(r"\| `(\w+)` \|", line)):
            codes.add(found[1])
        elif not line.startswith("|"):
            in_table = False
    return frozenset(codes)


WORKER_ERROR_CODES = documented_error_codes("Coordinator to worker")
CLIENT_ERROR_CODES = documented_error_codes("Coordinator to client")
CLOSE_CODES = frozenset(
    int(code)
    for code in re.findall(
        r"^\| (\d{4}) \|", documented_section("Close codes used by the coordinator"), re.M
    )
)
DECODING_CODES = frozenset({"bad_json", "bad_message", "unknown_type"})
CLOSE_UNSUPPORTED_PROTOCOL, CLOSE_BINARY, CLOSE_TOO_BIG, CLOSE_ABNORMAL = 1002, 1003, 1009, 1006


def test_the_codes_are_read_from_the_protocol_document() -> None:
    assert {"bad_json", "unknown_task", "binary_frame"} <= WORKER_ERROR_CODES
    assert {"bad_json", "unknown_op", "unknown_job"} <= CLIENT_ERROR_CODES
    assert {1002, 1003, 1009} <= CLOSE_CODES


# --- a coordinator with one worker ---------------------------------------------------------


@dataclass
class Target:
    """A coordinator (in memory) with one Python worker; ``accepted`` adds up the tasks each
    ``accepted`` answer (HTTP 201 or client frame) reported, by job."""

    coordinator: Coordinator
    worker: Process
    accepted: Counter[int] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator.port}"


def start_worker(coordinator: Coordinator) -> Process:
    worker = Process([sys.executable, "-m", "browsergrid", "worker", coordinator.ws_url])
    try:
        worker.wait_for_line(lambda line: "welcomed" in line)
    except BaseException:
        worker.end()
        raise
    return worker


def running_target(*extra: str) -> Iterator[Target]:
    coordinator = Coordinator(0, ("--memory", "--quiet", *extra))
    try:
        target = Target(coordinator, start_worker(coordinator))
        try:
            yield target
        finally:
            target.worker.end()
    finally:
        coordinator.end()


def still_works(target: Target) -> None:
    """Nothing lost: the coordinator is up and healthy, every accepted job holds all its
    tasks, the worker is still connected, and a new worker runs a new job right."""
    assert target.coordinator.proc.poll() is None, target.coordinator.output()
    with httpx.Client(headers=AUTH, base_url=target.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        jobs = {job["job_id"]: job for job in http.get("/api/jobs", params={"limit": 1000}).json()}
        for job_id, count in target.accepted.items():
            assert job_id in jobs, f"job {job_id} was accepted, and is gone"
            job = jobs[job_id]
            assert job["total"] == count, job
            states = ("queued", "leased", "done", "failed", "cancelled")
            assert sum(job[state] for state in states) == job["total"], job
        deadline = time.monotonic() + ANSWER_TIMEOUT_S  # fuzzing connections leave
        while [worker["kind"] for worker in http.get("/api/workers").json()] != ["python"]:
            assert time.monotonic() < deadline, http.get("/api/workers").json()
            time.sleep(0.05)
        # The worker may be busy with a long fuzzed task (its thread cannot be stopped):
        # cancel every job, then run a new one on a new worker.
        for job_id, job in jobs.items():
            if job["state"] == "running":
                assert http.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        target.worker.end()
        target.worker = start_worker(target.coordinator)
        with browsergrid.Client(target.url) as client:
            job = client.submit_job("prime_count", [{"lo": 0, "hi": 10**k} for k in range(1, 5)])
            assert client.gather(job.futures, timeout=30) == [4, 25, 168, 1229]
        accepted = http.post("/api/jobs", json={"op": "prime_count", "args": [{"lo": 0, "hi": 30}]})
        assert accepted.status_code == 201, accepted.text
        path = f"/api/jobs/{accepted.json()['job_id']}/results"
        with http.stream("GET", path, params={"follow": "true"}) as response:
            (line,) = [json.loads(line) for line in response.iter_lines() if line]
        assert (line["status"], line["result"]) == ("done", 10)
    assert_no_errors_logged(target.coordinator)


def assert_no_errors_logged(coordinator: Coordinator) -> None:
    """An exception the coordinator caught (uvicorn's "Exception in ASGI application") is
    logged at level error: no 5xx or close told us, yet something broke."""
    bad = [
        line
        for line in coordinator.lines
        if "Traceback" in line
        or (line.startswith("{") and json.loads(line).get("level") in ("error", "critical"))
    ]
    assert not bad, "\n".join(bad)


# --- schemathesis over the HTTP API --------------------------------------------------------

RESULTS = "GET /api/jobs/{job_id}/results"
CONFIG = schemathesis.Config.from_dict(
    {
        # With the admin token, which opens every operation. The coordinator also has a dashboard
        # token, so every operation requires one: schemathesis' ignored_auth check then sends
        # each again without a token and with a wrong one, and wants a 401.
        "auth": {"openapi": {"bearer": {"bearer": TEST_TOKEN}}},
        "operations": [
            {
                # The schema cannot say which ops exist: an unknown op (or a reserved argument
                # name) is a documented 400, "a bad request: the detail says what is wrong".
                "include-name": "POST /api/jobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400"]}},
            },
            {
                # format=json takes only JSON text, which a binary body's schema cannot say.
                "include-name": "POST /api/blobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400"]}},
            },
            {
                # Only a worker connection's blob_key, never in the schema, opens the door;
                # a body whose SHA-256 is not the path's is a documented 400.
                "include-name": "PUT /blobs/{digest}",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "403"]}
                },
            },
            {
                # follow=true keeps the stream open until the job ends, which a fuzzed job
                # (low priority, long tasks) may not do soon: stop after 3 s without a line.
                "include-name": RESULTS,
                "request-timeout": 3,
            },
        ],
    }
)


@pytest.fixture(scope="module")
def api_target() -> Iterator[Target]:
    """A coordinator and a worker, with a cancelled job and a finished one for fuzzed job ids
    to find."""
    for target in running_target("--dashboard-token", "fuzz-dashboard-token"):
        seed_jobs(target)
        yield target


def seed_jobs(target: Target) -> None:
    with httpx.Client(headers=AUTH, base_url=target.url, timeout=30) as http:
        long, short = (
            http.post("/api/jobs", json=body).json()
            for body in (
                {"op": "monte_carlo_pi", "args": [{"samples": 10**6, "seed": 1}] * 20},
                {"op": "prime_count", "args": [{"lo": 0, "hi": 100}] * 3},
            )
        )
        cancelled = http.post(f"/api/jobs/{long['job_id']}/cancel").json()
        assert cancelled["state"] == "cancelled"
        path = f"/api/jobs/{short['job_id']}/results"
        with http.stream("GET", path, params={"follow": "true"}) as response:
            assert len([line for line in response.iter_lines() if line]) == 3
    for accepted in (long, short):
        target.accepted[accepted["job_id"]] += accepted["count"]


@pytest.mark.processes
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_the_api_answers_as_its_schema_says(
    api_target: Target, mode: schemathesis.GenerationMode
) -> None:
    """Every operation of /openapi.json with data that fits the schema (positive) and data
    that does not (negative), under schemathesis' default checks ("not a server error",
    status code, content type and response schema conformance, data acceptance)."""
    schema = schemathesis.openapi.from_url(f"{api_target.url}/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert RESULTS in [operation.label for operation in operations]
    for operation in operations:
        takes_input = bool(list(operation.body)) or any(
            len(location)
            for location in (operation.path_parameters, operation.query, operation.headers)
        )
        if mode.is_positive or takes_input:  # without input there is nothing to get wrong
            fuzz_operation(api_target, operation, mode)


def fuzz_operation(
    target: Target, operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode
) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        database=None,  # the coordinator's state differs from run to run: replays are moot
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(mode))
    def check(case: schemathesis.Case) -> None:
        started = time.time()
        try:
            response = case.call_and_validate()
        except requests.RequestException:
            if operation.label != RESULTS:
                raise
            still_following(target, case.path_parameters["job_id"], started)
            return
        if response.status_code == 201 and operation.label != "POST /api/blobs":
            accepted = response.json()
            target.accepted[accepted["job_id"]] += accepted["count"]

    check()


def still_following(target: Target, job_id: Any, started: float) -> None:
    """A results stream went quiet: right only while its job runs (``follow=true``)."""
    job = httpx.get(f"{target.url}/api/jobs/{job_id}", headers=AUTH, timeout=30).json()
    assert job["state"] == "running" or job["finished_at"] >= started, job


@pytest.mark.processes
def test_nothing_is_lost_after_the_api_fuzzing(api_target: Target) -> None:
    still_works(api_target)


# --- raw WebSocket frames -------------------------------------------------------------------


WORKER_FRAMES = fixture_frames("worker_to_server")
CLIENT_FRAMES = fixture_frames("client_to_server")
STORMS = {
    "/ws": st.one_of(any_frames(WORKER_FRAMES), frames_around_the_limit(WORKER_FRAMES)),
    "/client": st.one_of(any_frames(CLIENT_FRAMES), frames_around_the_limit(CLIENT_FRAMES)),
}


def size_of(frame: str | bytes) -> int:
    return len(frame) if isinstance(frame, bytes) else len(frame.encode())


class Storm:
    """One connection to ``endpoint``, opened again whenever the coordinator closes it.

    After each frame it sends a marker, ``{"type": "sync-N"}`` (an ``unknown_type``): the
    coordinator answers frames in order, so what arrives before the marker's error answers
    the frame (or was pushed meanwhile: tasks, results)."""

    def __init__(self, target: Target, endpoint: str) -> None:
        self.target = target
        self.endpoint = endpoint
        self.url = f"ws://127.0.0.1:{target.coordinator.port}{endpoint}"
        self.opened = ExitStack()
        self.ws: ClientConnection | None = None
        self.marks = 0
        self.introduced = False  # a hello was welcomed on this connection
        self.submits: Counter[int] = Counter()  # refs of the submits not answered yet

    def __enter__(self) -> Storm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.opened.close()

    def connection(self) -> ClientConnection:
        if self.ws is None:
            self.opened.close()
            self.ws = self.opened.enter_context(
                connect(
                    self.url,
                    max_size=None,
                    compression=None,
                    open_timeout=10,
                    additional_headers=AUTH,
                )
            )
            self.introduced = False
        return self.ws

    def exchange(self, frame: str | bytes) -> tuple[list[Any], int | None]:
        """Send ``frame``; the messages that came back before the marker's answer, and the
        close code if the coordinator closed the connection instead."""
        ws = self.connection()
        self.marks += 1
        mark = f"sync-{self.marks}"
        got: list[Any] = []
        try:
            ws.send(frame)
            if size_of(frame) > MAX_FRAME_BYTES:
                while True:  # until the close; more data would only race with it
                    got.append(self.receive(ws))
            ws.send(json.dumps({"type": mark}))
            while True:
                message = self.receive(ws)
                if isinstance(message, ServerError | ClientError) and mark in message.message:
                    assert message.code == "unknown_type", message
                    return got, None
                got.append(message)
        except ConnectionClosed as closed:
            got.extend(self.drain(ws))  # a send fails once the close is in: read what came
            self.ws = None
            self.submits.clear()  # no answer can come any more
            return got, closed.rcvd.code if closed.rcvd else CLOSE_ABNORMAL

    def drain(self, ws: ClientConnection) -> Iterator[Any]:
        while True:
            try:
                yield self.receive(ws)
            except ConnectionClosed:
                return

    def receive(self, ws: ClientConnection) -> Any:
        """The next message, checked: the coordinator's frames decode, with documented codes."""
        try:
            raw = ws.recv(timeout=ANSWER_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"no answer from {self.url} in {ANSWER_TIMEOUT_S} s")
        assert isinstance(raw, str), "the coordinator sends text frames only"
        if self.endpoint == "/ws":
            message = decode_server_message(raw)
            assert message is not None, raw
            if isinstance(message, ServerError):
                assert message.code in WORKER_ERROR_CODES, message
            return message
        message = decode_coordinator_message(raw)
        assert message is not None, raw
        if isinstance(message, ClientError):
            assert message.code in CLIENT_ERROR_CODES, message
            if message.ref is not None and message.code not in DECODING_CODES:
                self.answered(message.ref)
        elif isinstance(message, Accepted):
            self.answered(message.ref)
            self.target.accepted[message.job_id] += message.count
        return message

    def answered(self, ref: int) -> None:
        assert self.submits[ref] > 0, f"an answer to submit {ref}, which did not wait for one"
        self.submits[ref] -= 1
        self.submits += Counter()  # drops the zeros

    def settle(self) -> None:
        """Wait for the answers to every submit sent on this connection."""
        while self.ws is not None and self.submits:
            try:
                self.receive(self.ws)
            except ConnectionClosed:
                pytest.fail(f"{self.url} closed before answering the submits {self.submits}")


def oversized_frame_closed(closed: int | None) -> bool:
    """1009, as documented. Or no close frame at all (1006): uvicorn's websockets-sansio
    closes the socket right after its close frame while the rest of the big frame is still
    unread, and the TCP reset that follows may destroy the close frame before we read it."""
    return closed in (CLOSE_TOO_BIG, CLOSE_ABNORMAL)


def send_to_worker_endpoint(storm: Storm, frame: str | bytes) -> None:
    got, closed = storm.exchange(frame)
    errors = [message.code for message in got if isinstance(message, ServerError)]
    if size_of(frame) > MAX_FRAME_BYTES:
        assert oversized_frame_closed(closed), (closed, errors)
        return
    if isinstance(frame, bytes):
        assert (errors, closed) == (["binary_frame"], CLOSE_BINARY)
        return
    try:
        message = decode_worker_message(frame)
    except ProtocolError as exc:
        assert (errors, closed) == ([exc.code], None)
        return
    if isinstance(message, Hello) and message.protocol != PROTOCOL_VERSION:
        assert (errors, closed) == (["unsupported_protocol"], CLOSE_UNSUPPORTED_PROTOCOL)
    elif isinstance(message, Hello) and storm.introduced:
        assert (errors, closed) == (["already_introduced"], None)
    elif isinstance(message, Hello):
        assert closed is None and any(isinstance(m, Welcome) for m in got), got
        storm.introduced = True
    elif isinstance(message, Capacity | HandBack | Holds):  # controls and holds: after hello
        expected = [] if storm.introduced else ["not_introduced"]
        assert (errors, closed) == (expected, None), (errors, closed)
    else:  # result, results, error: about tasks this connection may not hold
        assert set(errors) <= {"unknown_task"} and closed is None, (errors, closed)


def send_to_client_endpoint(storm: Storm, frame: str | bytes) -> None:
    if size_of(frame) > MAX_FRAME_BYTES:
        storm.settle()  # the close must not take the answers to earlier submits with it
        assert oversized_frame_closed(storm.exchange(frame)[1])
        return
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    expected: str | None = None
    try:
        message = decode_client_message(text)
    except ProtocolError as exc:
        expected = exc.code
    else:
        if isinstance(message, Submit):
            storm.submits[message.ref] += 1  # answered by accepted or error, with its ref
    got, closed = storm.exchange(frame)
    assert closed is None, closed
    if expected is not None:
        assert expected in [m.code for m in got if isinstance(m, ClientError)], (expected, got)


SEND = {"/ws": send_to_worker_endpoint, "/client": send_to_client_endpoint}


@pytest.fixture(scope="module")
def storm_grid() -> Iterator[Target]:
    yield from running_target()


@pytest.mark.processes
@pytest.mark.parametrize("endpoint", list(STORMS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_storm_of_frames_gets_errors_and_documented_closes(
    storm_grid: Target, endpoint: str, data: st.DataObject
) -> None:
    """About 200 frames per endpoint: text, binary, any JSON, message-shaped objects,
    mutated valid frames, and frames just under, at and over the size limit."""
    frames = data.draw(st.lists(STORMS[endpoint], min_size=4, max_size=12), label="frames")
    with Storm(storm_grid, endpoint) as storm:
        for frame in frames:
            SEND[endpoint](storm, frame)
        storm.settle()


@pytest.mark.processes
def test_nothing_is_lost_after_the_storm(storm_grid: Target) -> None:
    still_works(storm_grid)


# --- found by the storm -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lone_coordinator() -> Iterator[Coordinator]:
    """A coordinator of their own for the tests below: their errors stay out of the target's log."""
    coordinator = Coordinator(0, ("--memory",))
    try:
        yield coordinator
    finally:
        coordinator.end()


NOT_UTF8 = [b"\xff", b'{"type":"hello","agent":"\xed\xa0\x80"}']  # a byte, a UTF-16 surrogate


def send_text_bytes(coordinator: Coordinator, endpoint: str, payload: bytes) -> int:
    """Send ``payload`` as a text frame as it is (no UTF-8 check); the close code."""
    url = f"ws://127.0.0.1:{coordinator.port}{endpoint}"
    with connect(url, compression=None, open_timeout=10, additional_headers=AUTH) as ws:
        ws.send(payload, text=True)
        try:
            while True:
                ws.recv(timeout=ANSWER_TIMEOUT_S)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else CLOSE_ABNORMAL


@pytest.mark.processes
@pytest.mark.parametrize("endpoint", ["/ws", "/client"])
def test_a_text_frame_that_is_not_utf8_closes_with_a_documented_code(
    lone_coordinator: Coordinator, endpoint: str
) -> None:
    assert {send_text_bytes(lone_coordinator, endpoint, p) for p in NOT_UTF8} <= CLOSE_CODES


@pytest.mark.processes
def test_a_text_frame_that_is_not_utf8_logs_no_error(lone_coordinator: Coordinator) -> None:
    """Any peer can write error lines into the coordinator's log, one per connection."""
    for endpoint in ("/ws", "/client"):
        send_text_bytes(lone_coordinator, endpoint, b"\xff")
    # A frame logged after those: once its line is out, theirs are too.
    marker = f"marker-{time.monotonic_ns()}"
    with connect(f"ws://127.0.0.1:{lone_coordinator.port}/ws", compression=None) as ws:
        ws.send(marker)
        while '"bad_json"' not in ws.recv(timeout=ANSWER_TIMEOUT_S):
            pass  # the welcome task
    lone_coordinator.wait_for_line(lambda line: marker in line)
    assert_no_errors_logged(lone_coordinator)
