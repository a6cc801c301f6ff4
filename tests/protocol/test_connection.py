"""The connection rules of ``/ws`` and ``/client``, without a socket: frames and time in,
messages, frames to send and the close decision out."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from browsergrid.errors import IllegalTransition
from browsergrid.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    CancelJob,
    Capacity,
    ClientConnection,
    ClientError,
    ConnectionState,
    HandBack,
    Hello,
    Holds,
    Limits,
    Result,
    Results,
    ServerError,
    Submit,
    TaskError,
    Watch,
    Welcome,
    WorkerConnection,
    decode_coordinator_message,
    decode_server_message,
    encode_capacity,
    encode_hand_back,
    encode_hello,
    encode_holds,
    encode_result,
    encode_results,
    encode_task_error,
    encode_welcome,
)

S = ConnectionState
SERVER = "browsergrid test"
LIMITS = Limits()
HELLO = encode_hello("agent", ["repeat_multiply"], 2)
HELLO_2 = json.dumps(
    {"type": "hello", "protocol": 2, "agent": "a", "ops": ["repeat_multiply"], "concurrency": 1}
)
RESULT = encode_result(1, 2.0, 3.0, None)
SUBMIT = '{"type": "submit", "ref": 3, "job_key": "j", "op": "repeat_multiply", "args": [{}]}'
DOCS = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def worker(rate: float = 100.0, burst: float = 10.0) -> WorkerConnection:
    return WorkerConnection(7, server=SERVER, limits=LIMITS, rate=rate, burst=burst, now=0.0)


def client(rate: float = 100.0, burst: float = 10.0) -> ClientConnection:
    return ClientConnection(rate=rate, burst=burst, now=0.0)


def errors(conn: WorkerConnection) -> list[ServerError]:
    """The error frames sent to a worker (drains ``data_to_send``)."""
    frames = [decode_server_message(frame) for frame in conn.data_to_send()]
    assert all(isinstance(f, ServerError) for f in frames), frames
    return [f for f in frames if isinstance(f, ServerError)]


def client_errors(conn: ClientConnection) -> list[ClientError]:
    frames = [decode_coordinator_message(frame) for frame in conn.data_to_send()]
    assert all(isinstance(f, ClientError) for f in frames), frames
    return [f for f in frames if isinstance(f, ClientError)]


def results(count: int) -> str:
    return encode_results([(i, 2.0, 3.0) for i in range(count)], None)


# --- states ----------------------------------------------------------------------------

LEGAL = {
    (S.NOT_INTRODUCED, S.INTRODUCED),
    (S.NOT_INTRODUCED, S.CLOSING),
    (S.INTRODUCED, S.CLOSING),
    (S.NOT_INTRODUCED, S.CLOSED),
    (S.INTRODUCED, S.CLOSED),
    (S.CLOSING, S.CLOSED),
}
MOVES = [(a, b) for a in S for b in S]


@pytest.mark.parametrize(("start", "to"), [m for m in MOVES if m in LEGAL])
def test_a_legal_move(start: ConnectionState, to: ConnectionState) -> None:
    conn = worker()
    conn._state = start
    conn._move(to)
    assert conn.state is to


@pytest.mark.parametrize(("start", "to"), [m for m in MOVES if m not in LEGAL])
def test_an_illegal_move_raises(start: ConnectionState, to: ConnectionState) -> None:
    conn = worker()
    conn._state = start
    with pytest.raises(IllegalTransition, match=f"connection: {start.value} -> {to.value}"):
        conn._move(to)
    assert conn.state is start


def test_closed_twice_is_a_bug() -> None:
    conn = worker()
    conn.closed(1000, "")
    with pytest.raises(IllegalTransition):
        conn.closed(1000, "")


def test_the_peer_closing_first_gives_the_close_code() -> None:
    conn = worker()
    assert (conn.close_code, conn.close_reason) == (None, "")
    conn.closed(1006, "gone")
    assert conn.state is S.CLOSED
    assert (conn.close_code, conn.close_reason) == (1006, "gone")


def test_a_decided_close_code_stands_when_the_socket_closes() -> None:
    conn = worker()
    conn.receive_binary(0.0)
    conn.closed(1005, "")
    assert (conn.close_code, conn.state) == (CLOSE_UNSUPPORTED_DATA, S.CLOSED)


def test_the_shell_may_decide_to_close_once() -> None:
    conn = worker()
    conn.close(CLOSE_GOING_AWAY, "server shutting down")
    assert conn.state is S.CLOSING
    conn.close(1000, "again")  # the first decision stands
    assert (conn.close_code, conn.close_reason) == (CLOSE_GOING_AWAY, "server shutting down")
    conn.closed(1001, "")
    conn.close(1000, "too late")
    assert (conn.state, conn.close_code) == (S.CLOSED, CLOSE_GOING_AWAY)
    assert conn.data_to_send() == []


# --- hello and welcome -----------------------------------------------------------------


def test_hello_is_welcomed_at_once() -> None:
    conn = worker()
    assert (conn.state, conn.introduced, conn.legacy) == (S.NOT_INTRODUCED, False, True)
    [hello] = conn.receive_text(HELLO, 1.0)
    assert isinstance(hello, Hello) and hello.concurrency == 2
    assert conn.data_to_send() == [encode_welcome(7, SERVER, LIMITS)]
    assert conn.data_to_send() == []  # drained
    assert (conn.state, conn.introduced, conn.legacy) == (S.INTRODUCED, True, False)
    assert conn.rejected is None and conn.close_code is None


def test_welcome_comes_before_anything_queued_after_hello() -> None:
    conn = worker()
    conn.receive_text(HELLO, 1.0)
    conn.reject([(5, "no task 5 is leased to this worker")])
    welcome, error = (decode_server_message(f) for f in conn.data_to_send())
    assert isinstance(welcome, Welcome) and welcome.worker_id == 7 and welcome.server == SERVER
    assert isinstance(error, ServerError) and error.code == "unknown_task"


def test_a_second_hello_is_refused_and_the_connection_goes_on() -> None:
    conn = worker()
    conn.receive_text(HELLO, 1.0)
    conn.data_to_send()
    assert conn.receive_text(HELLO, 1.0) == []
    assert errors(conn) == [ServerError("already_introduced", "hello was already received")]
    assert conn.rejected is not None and conn.rejected.code == "already_introduced"
    assert (conn.state, conn.close_code) == (S.INTRODUCED, None)
    assert conn.receive_text(RESULT, 1.0) != []


@pytest.mark.parametrize("welcomed", [False, True])
def test_another_protocol_version_is_refused_and_closes(welcomed: bool) -> None:
    conn = worker()
    if welcomed:
        conn.receive_text(HELLO, 1.0)
        conn.data_to_send()
    assert conn.receive_text(HELLO_2, 1.0) == []
    message = "this coordinator speaks protocol 1, not 2"
    assert errors(conn) == [ServerError("unsupported_protocol", message)]
    assert (conn.state, conn.close_code, conn.close_reason) == (
        S.CLOSING,
        CLOSE_PROTOCOL_ERROR,
        message,
    )
    assert conn.introduced is welcomed


def test_a_hello_that_did_not_decode_does_not_stop_a_later_one() -> None:
    conn = worker()
    assert conn.receive_text(HELLO.replace('"concurrency":2', '"concurrency":0'), 1.0) == []
    [error] = errors(conn)
    assert error.code == "bad_message" and "concurrency" in error.message
    assert [type(m) for m in conn.receive_text(HELLO, 1.0)] == [Hello]
    assert conn.introduced


# --- the exercise-style worker ---------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "kind"),
    [(RESULT, Result), (results(2), Results), (encode_task_error(1, "boom"), TaskError)],
)
def test_reports_are_taken_from_a_worker_that_never_said_hello(frame: str, kind: type) -> None:
    conn = worker()
    [message] = conn.receive_text(frame, 1.0)
    assert isinstance(message, kind)
    assert conn.data_to_send() == [] and conn.rejected is None
    assert (conn.state, conn.legacy) == (S.NOT_INTRODUCED, True)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (encode_capacity(0), "capacity"),
        (encode_hand_back([1]), "hand_back"),
        (encode_holds(["a" * 64], []), "holds"),
    ],
)
def test_capacity_and_hand_back_need_hello_first(frame: str, kind: str) -> None:
    conn = worker()
    assert conn.receive_text(frame, 1.0) == []
    assert errors(conn) == [ServerError("not_introduced", f"send hello before {kind}")]
    assert (conn.state, conn.close_code) == (S.NOT_INTRODUCED, None)
    conn.receive_text(HELLO, 1.0)
    conn.data_to_send()
    [message] = conn.receive_text(frame, 1.0)
    assert isinstance(message, Capacity | HandBack | Holds)
    assert conn.data_to_send() == []


# --- frames that do not decode ---------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code", "task_id"),
    [
        ("nope", "bad_json", None),
        ("[1, 2]", "bad_json", None),
        ("\ud800", "bad_json", None),  # a lone surrogate: no text frame holds one
        ("[" * 100_000, "bad_json", None),  # nested too deeply
        ('{"task_id": 4}', "bad_message", 4),  # no type
        ('{"type": "result", "task_id": 5}', "bad_message", 5),
        ('{"type": "result", "task_id": true}', "bad_message", None),
        ('{"type": "result", "task_id": "t-5"}', "bad_message", None),
        ('{"type": "results", "results": [{"task_id": 6}]}', "bad_message", None),
        ('{"type": "nope", "task_id": 3}', "unknown_type", 3),
    ],
)
def test_a_frame_that_does_not_decode_gets_an_error_and_the_connection_goes_on(
    frame: str, code: str, task_id: int | None
) -> None:
    conn = worker()
    assert conn.receive_text(frame, 1.0) == []
    [error] = errors(conn)
    assert (error.code, error.task_id) == (code, task_id)
    assert conn.rejected is not None
    assert (conn.rejected.code, conn.rejected.message) == (code, error.message)
    assert (conn.state, conn.close_code) == (S.NOT_INTRODUCED, None)
    assert conn.receive_text(RESULT, 1.0) != [] and conn.rejected is None


def test_a_binary_frame_is_refused_and_closes() -> None:
    conn = worker()
    assert conn.receive_binary(1.0) == []
    message = "binary frames are not accepted; send JSON text"
    assert errors(conn) == [ServerError("binary_frame", message)]
    assert (conn.state, conn.close_code, conn.close_reason) == (
        S.CLOSING,
        CLOSE_UNSUPPORTED_DATA,
        message,
    )


# --- the rate ----------------------------------------------------------------------------


def test_past_the_rate_a_frame_is_refused_and_the_connection_closes() -> None:
    conn = worker(rate=1, burst=3)
    assert all(conn.receive_text(RESULT, 0.0) for _ in range(3))
    assert conn.receive_text(RESULT, 0.5) == []  # half a message came back
    message = "more than 1 messages per second"
    assert errors(conn) == [ServerError("rate_limited", message)]
    assert conn.rejected is not None and conn.rejected.code == "rate_limited"
    assert (conn.state, conn.close_code, conn.close_reason) == (
        S.CLOSING,
        CLOSE_POLICY_VIOLATION,
        message,
    )


def test_each_result_of_a_results_frame_counts() -> None:
    conn = worker(rate=1, burst=10)
    [batch] = conn.receive_text(results(10), 0.0)
    assert isinstance(batch, Results) and len(batch.results) == 10
    assert conn.receive_text(RESULT, 0.0) == []  # the 11th result
    assert [e.code for e in errors(conn)] == ["rate_limited"]


def test_a_results_frame_over_the_budget_is_refused_whole() -> None:
    conn = worker(rate=1, burst=10)
    assert conn.receive_text(results(11), 0.0) == []
    assert [e.code for e in errors(conn)] == ["rate_limited"]
    assert conn.close_code == CLOSE_POLICY_VIOLATION


def test_tasks_sent_may_each_be_answered_beyond_the_rate() -> None:
    conn = worker(rate=1, burst=10)
    conn.tasks_sent(5)
    assert conn.receive_text(results(15), 0.0) != []  # 5 owed, 10 from the burst
    conn.tasks_sent(2)
    assert conn.receive_text(RESULT, 0.0) and conn.receive_text(RESULT, 0.0)
    assert conn.receive_text(RESULT, 0.0) == []
    assert conn.close_code == CLOSE_POLICY_VIOLATION


def test_frames_that_do_not_decode_count_too() -> None:
    conn = worker(rate=1, burst=2)
    conn.receive_text("nope", 0.0)
    conn.receive_text("nope", 0.0)
    assert [e.code for e in errors(conn)] == ["bad_json", "bad_json"]
    assert conn.receive_text("nope", 0.0) == []
    assert [e.code for e in errors(conn)] == ["rate_limited"]  # not bad_json


def test_a_binary_frame_past_the_rate_is_rate_limited() -> None:
    conn = worker(rate=1, burst=1)
    conn.receive_text(RESULT, 0.0)
    conn.receive_binary(0.0)
    assert [e.code for e in errors(conn)] == ["rate_limited"]
    assert conn.close_code == CLOSE_POLICY_VIOLATION


# --- after the decision to close -------------------------------------------------------


@pytest.mark.parametrize("closed", [False, True])
def test_once_closing_frames_are_ignored_and_nothing_is_sent(closed: bool) -> None:
    conn = worker()
    conn.receive_binary(0.0)
    conn.data_to_send()
    if closed:
        conn.closed(CLOSE_UNSUPPORTED_DATA, "")
    assert conn.receive_text(HELLO, 0.0) == []
    assert conn.receive_text("nope", 0.0) == []
    assert conn.receive_binary(0.0) == []
    conn.reject([(1, "no task 1 is leased to this worker")])
    assert conn.data_to_send() == [] and conn.rejected is None
    assert conn.close_code == CLOSE_UNSUPPORTED_DATA and not conn.introduced


# --- reports the coordinator could not use ---------------------------------------------


def test_one_unknown_report_gets_its_reason() -> None:
    conn = worker()
    conn.reject([])
    assert conn.data_to_send() == []
    conn.reject([(5, "no task 5 is leased to this worker")])
    assert errors(conn) == [ServerError("unknown_task", "no task 5 is leased to this worker", 5)]


def test_the_unknown_reports_of_one_frame_get_one_error() -> None:
    conn = worker()
    conn.reject([(i, f"no task {i} is leased to this worker") for i in range(1, 8)])
    assert errors(conn) == [
        ServerError(
            "unknown_task",
            "7 reports ignored (task_ids 1, 2, 3, 4, 5, ...); "
            "the first: no task 1 is leased to this worker",
            1,
        )
    ]
    conn.reject([("t-1", "no task 't-1' is leased"), (None, "no task None is leased")])
    assert errors(conn) == [
        ServerError(
            "unknown_task",
            "2 reports ignored (task_ids 't-1', None); the first: no task 't-1' is leased",
            "t-1",
        )
    ]


def test_long_task_ids_are_cut_in_the_list_of_a_coalesced_error() -> None:
    conn = worker()
    long_id = "x" * 100
    conn.reject([(long_id, "stale"), (2, "stale")])
    [error] = errors(conn)
    assert error.message == f"2 reports ignored (task_ids '{'x' * 39}..., 2); the first: stale"
    assert error.task_id == long_id  # echoed as the worker sent it


# --- small when idle ---------------------------------------------------------------------


def test_an_idle_connection_is_small() -> None:
    conn = worker()
    conn.receive_text(HELLO, 0.0)
    conn.data_to_send()
    assert not hasattr(conn, "__dict__") and conn._outgoing is None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        idle = [worker() for _ in range(1000)]
        size = (tracemalloc.get_traced_memory()[0] - before) / len(idle)
    finally:
        tracemalloc.stop()
    assert size < 1024  # bytes each, with its rate limit


# --- the client connection -------------------------------------------------------------


def test_a_client_is_introduced_by_its_token() -> None:
    assert client().state is S.INTRODUCED


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (SUBMIT, Submit),
        ('{"type": "watch", "job_ids": [1], "task_ids": []}', Watch),
        ('{"type": "cancel", "job_id": 4}', CancelJob),
    ],
)
def test_a_client_request_is_returned(frame: str, kind: type) -> None:
    conn = client()
    [message] = conn.receive_text(frame, 0.0)
    assert isinstance(message, kind)
    assert conn.data_to_send() == [] and conn.rejected is None
    [again] = conn.receive_binary(frame.encode(), 0.0)  # a binary frame is read as text
    assert again == message


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ("nope", "bad_json", None),
        (b"\xff\xfe", "bad_json", None),  # not UTF-8: replaced, then not JSON
        ("[3]", "bad_json", None),
        (SUBMIT.replace('"args": [{}]', '"args": []'), "bad_message", 3),
        (SUBMIT.replace('"ref": 3', '"ref": true'), "bad_message", None),
        ('{"type": "nope", "ref": 9}', "unknown_type", 9),
    ],
)
def test_a_client_frame_that_does_not_decode_gets_an_error_with_its_ref(
    frame: str | bytes, code: str, ref: int | None
) -> None:
    conn = client()
    received = (
        conn.receive_text(frame, 0.0) if isinstance(frame, str) else conn.receive_binary(frame, 0.0)
    )
    assert received == []
    [error] = client_errors(conn)
    assert (error.code, error.ref) == (code, ref)
    assert conn.rejected is not None and conn.rejected.code == code
    assert (conn.state, conn.close_code) == (S.INTRODUCED, None)


def test_a_client_past_the_rate_is_refused_and_closed() -> None:
    conn = client(rate=1, burst=2)
    assert conn.receive_text(SUBMIT, 0.0) and conn.receive_text("nope", 0.0) == []
    client_errors(conn)
    assert conn.receive_text(SUBMIT, 0.0) == []  # not decoded
    message = "more than 1 messages per second"
    assert client_errors(conn) == [ClientError("rate_limited", message, None)]
    assert conn.rejected is not None and conn.rejected.code == "rate_limited"
    assert (conn.state, conn.close_code, conn.close_reason) == (
        S.CLOSING,
        CLOSE_POLICY_VIOLATION,
        "rate_limited",
    )
    assert conn.receive_text(SUBMIT, 9.0) == [] and conn.data_to_send() == []
    conn.closed(1000, "")
    assert conn.receive_binary(SUBMIT.encode(), 9.0) == [] and conn.state is S.CLOSED


# --- docs/protocol.md and the objects agree ----------------------------------------------


def _section(text: str, heading: str, end: str = "\n## ") -> str:
    start = text.index(heading)
    stop = text.find(end, start + len(heading))
    return text[start : stop if stop >= 0 else len(text)]


def _worker_producing(code: str) -> WorkerConnection:
    """A worker connection driven to send ``code``."""
    conn = worker(rate=1, burst=2)
    drive: dict[str, Callable[[], object]] = {
        "bad_json": lambda: conn.receive_text("nope", 0.0),
        "bad_message": lambda: conn.receive_text('{"type": "result"}', 0.0),
        "unknown_type": lambda: conn.receive_text('{"type": "nope"}', 0.0),
        "unknown_task": lambda: conn.reject([(5, "no task 5 is leased to this worker")]),
        "already_introduced": lambda: (
            conn.receive_text(HELLO, 0.0),
            conn.receive_text(HELLO, 0.0),
        ),
        "not_introduced": lambda: conn.receive_text(encode_capacity(1), 0.0),
        "unsupported_protocol": lambda: conn.receive_text(HELLO_2, 0.0),
        "binary_frame": lambda: conn.receive_binary(0.0),
        "rate_limited": lambda: [conn.receive_text(RESULT, 0.0) for _ in range(3)],
    }
    drive[code]()
    return conn


WORKER_DECIDED = [
    "bad_json",
    "bad_message",
    "unknown_type",
    "unknown_task",  # many of one frame coalesced by ``reject``
    "already_introduced",
    "not_introduced",
    "unsupported_protocol",
    "binary_frame",
    "rate_limited",
]
WORKER_DECIDED_ELSEWHERE = {"quarantined": "the scheduler quarantines an identity"}


def _worker_error_table() -> dict[str, str]:
    section = _section(_section(DOCS, "## Coordinator to worker"), "### `error`", "\n### ")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| .+? \| (.+?) \|$", section, re.MULTILINE))
    assert rows.pop("code") == "then"  # the header
    return rows


def test_the_worker_error_table_lists_what_the_connection_decides() -> None:
    table = _worker_error_table()
    assert set(table) == set(WORKER_DECIDED) | set(WORKER_DECIDED_ELSEWHERE)


@pytest.mark.parametrize("code", WORKER_DECIDED)
def test_each_worker_error_is_sent_and_closes_as_the_table_says(code: str) -> None:
    then = _worker_error_table()[code]
    conn = _worker_producing(code)
    frames = [decode_server_message(f) for f in conn.data_to_send()]
    assert isinstance(frames[-1], ServerError) and frames[-1].code == code
    if then == "connection goes on":
        assert conn.close_code is None and conn.state not in (S.CLOSING, S.CLOSED)
    else:
        close = re.fullmatch(r"close (\d+)", then)
        assert close is not None, then
        assert (conn.state, conn.close_code) == (S.CLOSING, int(close.group(1)))


def test_the_close_code_table_names_every_close_a_connection_decides() -> None:
    rows = dict(
        re.findall(r"^\| (\d{4}) \| (.+?) \|$", _section(DOCS, "## Close codes"), re.MULTILINE)
    )
    decided = {c: _worker_producing(c).close_code for c in WORKER_DECIDED}
    closes = {code: close for code, close in decided.items() if close is not None}
    assert {str(close) for close in closes.values()} <= set(rows)
    named = {  # rows that name an error code: the connection closes with that row's code
        code: int(close)
        for close, when in rows.items()
        for code in re.findall(r"`([a-z_]+)`", when)
        if code in decided
    }
    assert named == {"unsupported_protocol": 1002, "rate_limited": 1008}
    assert all(closes[code] == close for code, close in named.items())
    assert "binary frame" in rows[str(CLOSE_UNSUPPORTED_DATA)]


CLIENT_DECIDED = {  # the rest of the client table is decided by the coordinator
    "bad_json": "nope",
    "bad_message": '{"type": "cancel"}',
    "unknown_type": '{"type": "nope"}',
    "rate_limited": SUBMIT,  # the second frame of a burst of 1
}


def test_the_client_error_table_lists_what_the_connection_decides() -> None:
    section = _section(_section(DOCS, "## Coordinator to client"), "### `error`")
    table = dict(re.findall(r"^\| `([a-z_]+)` \| (.+?) \|$", section, re.MULTILINE))
    assert table.pop("code") == "cause"  # the header
    assert set(CLIENT_DECIDED) <= set(table)
    assert "closed with 1008" in table["rate_limited"]
    assert "The connection goes on after every error but `rate_limited`." in section


@pytest.mark.parametrize("code", CLIENT_DECIDED)
def test_each_client_error_is_sent_and_only_rate_limited_closes(code: str) -> None:
    conn = client(rate=1, burst=1)
    if code == "rate_limited":
        conn.receive_text(SUBMIT, 0.0)
    conn.receive_text(CLIENT_DECIDED[code], 0.0)
    assert [e.code for e in client_errors(conn)] == [code]
    closes = code == "rate_limited"
    assert conn.close_code == (CLOSE_POLICY_VIOLATION if closes else None)


def test_a_frame_nested_deeper_than_max_depth_is_refused_before_decoding() -> None:
    from browsergrid.errors import ProtocolError
    from browsergrid.protocol import MAX_DEPTH, decode_worker_message
    from browsergrid.protocol._client import decode_client_message
    from browsergrid.protocol._messages import nested_too_deep

    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # the frame's object is one more level
    frame = '{"type": "result", "task_id": 1, "duration_ms": 1, "result": %s}'
    assert decode_worker_message(frame % ("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)))
    for decode in (decode_worker_message, decode_client_message):
        with pytest.raises(ProtocolError) as refused:
            decode(frame % deep)
        assert refused.value.code == "bad_json" and str(MAX_DEPTH) in refused.value.message
    assert nested_too_deep((frame % deep).encode())
    strings = '{"type": "error", "task_id": 1, "message": "%s"}' % ('[{\\"' * 200)
    assert not nested_too_deep(strings) and not nested_too_deep(strings.encode())
    flat = "[" + ",".join(["[1]"] * 500) + "]"  # many brackets, two levels
    assert not nested_too_deep(flat) and not nested_too_deep(flat.encode())
