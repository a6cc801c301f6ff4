"""The wire format against docs/protocol.md and the shared fixtures (tests/js checks them too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from browsergrid.errors import ProtocolError
from browsergrid.protocol import (
    MAX_FRAME_BYTES,
    MAX_HOLDS,
    PROTOCOL_VERSION,
    Ack,
    Cancel,
    Hello,
    Limits,
    Result,
    ResultItem,
    Results,
    ServerError,
    Task,
    TaskError,
    Tasks,
    Welcome,
    WorkerEnvironments,
    decode_server_message,
    decode_worker_message,
    encode_ack,
    encode_cancel,
    encode_capacity,
    encode_hand_back,
    encode_hello,
    encode_result,
    encode_results,
    encode_server_error,
    encode_task,
    encode_task_error,
    encode_tasks,
    encode_welcome,
)
from tests.protocol._strategies import json_values, raw_frames

FIXTURES = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "messages.json").read_text(encoding="utf-8")
)
WORKER = FIXTURES["worker_to_server"]
SERVER = FIXTURES["server_to_worker"]
WELCOME_ARGS = {"initial": 1.0000054, "factor": 1.00000043, "times": 1000000}


def cases(group: list[dict[str, Any]]) -> pytest.MarkDecorator:
    params = [pytest.param(case, id=case["name"]) for case in group]
    return pytest.mark.parametrize("case", params)


def as_fixture(message: Any) -> dict[str, Any]:
    """A decoded message in the shape of the fixtures' ``decodes_to``."""
    match message:
        case Task():
            return {
                "type": "task",
                "task_id": message.task_id,
                "op": message.op,
                "args": message.args,
            }
        case Tasks():
            return {"type": "tasks", "tasks": [as_fixture(task) for task in message.tasks]}
        case Cancel():
            return {"type": "cancel", "task_id": message.task_id}
        case Ack():
            return {"type": "ack", "task_ids": message.task_ids}
    fixture: dict[str, Any] = msgspec.to_builtins(message)  # tagged: "type" comes first
    return fixture


def frame_by_name(group: list[dict[str, Any]], name: str) -> str:
    (frame,) = [case["frame"] for case in group if case["name"] == name]
    return str(frame)


# --- the shared fixtures -----------------------------------------------------------------


@cases(WORKER["valid"])
def test_valid_worker_frame_decodes(case: dict[str, Any]) -> None:
    assert as_fixture(decode_worker_message(case["frame"])) == case["decodes_to"]


@cases(WORKER["valid"])
def test_valid_worker_frame_decodes_from_bytes(case: dict[str, Any]) -> None:
    assert decode_worker_message(case["frame"].encode()) == decode_worker_message(case["frame"])


@cases(WORKER["invalid"])
def test_invalid_worker_frame_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_worker_message(case["frame"])
    assert caught.value.code == case["error_code"]
    assert caught.value.message
    assert str(caught.value) == caught.value.message


@cases(SERVER["valid"])
def test_valid_server_frame_decodes(case: dict[str, Any]) -> None:
    assert as_fixture(decode_server_message(case["frame"])) == case["decodes_to"]


@cases(SERVER["ignored"])
def test_unknown_server_frame_is_ignored(case: dict[str, Any]) -> None:
    assert decode_server_message(case["frame"]) is None


@cases(SERVER["invalid"])
def test_invalid_server_frame_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(case["frame"])
    assert caught.value.code == case["error_code"]
    assert caught.value.message


# --- more frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("null", "bad_json"),
        ('"result"', "bad_json"),
        (b"\xff", "bad_json"),
        ('{"type":7}', "bad_message"),
        ('{"type":"result","task_id":1.5,"result":1,"duration_ms":1}', "bad_message"),
        ('{"type":"hello","protocol":1,"agent":"x","ops":[""],"concurrency":1}', "bad_message"),
        ('{"type":"hello","protocol":1,"agent":"x","ops":["a"],"concurrency":1025}', "bad_message"),
        (
            '{"type":"hello","protocol":1,"agent":"' + "x" * 513 + '","ops":["a"],"concurrency":1}',
            "bad_message",
        ),
        ('{"type":"task","op":"x","task_id":1}', "unknown_type"),
        ('{"type":"welcome"}', "unknown_type"),
        ('{"type":"tasks","tasks":[]}', "unknown_type"),
        ('{"type":"cancel","task_id":1}', "unknown_type"),
        (
            '{"type":"hello","protocol":1,"agent":"x","ops":["a"],"concurrency":1,"prefetch":1.5}',
            "bad_message",
        ),
        (
            '{"type":"results","results":[{"task_id":1.5,"result":1,"duration_ms":1}]}',
            "bad_message",
        ),
        (
            '{"type":"results","results":[{"task_id":1,"result":1,"duration_ms":"1"}]}',
            "bad_message",
        ),
        (
            '{"type":"results","results":[{"task_id":1,"result":1,"duration_ms":1}],"agent":"'
            + "x" * 513
            + '"}',
            "bad_message",
        ),
    ],
)
def test_more_worker_frames_are_refused(frame: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_worker_message(frame)
    assert caught.value.code == code


def test_bad_message_names_the_member() -> None:
    with pytest.raises(ProtocolError, match=r"bad 'result' message: .*duration_ms"):
        decode_worker_message('{"type":"result","task_id":1,"result":1,"duration_ms":-5}')


def test_bad_results_message_names_the_item() -> None:
    frame = '{"type":"results","results":[{"task_id":1,"result":1,"duration_ms":1},{"task_id":2}]}'
    with pytest.raises(ProtocolError, match=r"bad 'results' message: .*results\[1\]"):
        decode_worker_message(frame)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("null", "bad_json"),
        ('"task"', "bad_json"),
        ("[]", "bad_json"),
        ('{"type":"task","op":"x","task_id":true}', "bad_message"),
        ('{"type":"task","op":"x","task_id":1.5}', "bad_message"),
        ('{"type":"task","op":3,"task_id":1}', "bad_message"),
        ('{"type":"welcome","protocol":1,"server":"s","limits":{}}', "bad_message"),
        ('{"type":"error","message":"no code"}', "bad_message"),
        ('{"type":"error","code":"bad_json"}', "bad_message"),
        ('{"type":"error","code":"c","message":"m","task_id":true}', "bad_message"),
        ('{"type":"tasks","tasks":null}', "bad_message"),
        ('{"type":"tasks","tasks":"task"}', "bad_message"),
        ('{"type":"tasks","tasks":[null]}', "bad_message"),
        ('{"type":"tasks","tasks":[[]]}', "bad_message"),
        ('{"type":"tasks","tasks":[{"type":"task","op":3,"task_id":1}]}', "bad_message"),
        ('{"type":"tasks","tasks":[{"type":"task","op":"x","task_id":1.5}]}', "bad_message"),
        ('{"type":"cancel","task_id":null}', "bad_message"),
        ('{"type":"cancel","task_id":[1]}', "bad_message"),
    ],
)
def test_more_server_frames_are_refused(frame: str, code: str) -> None:
    """The same cases as tests/js/protocol.test.mjs checks for the JavaScript twin."""
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(frame)
    assert caught.value.code == code


@pytest.mark.parametrize("frame", ["{}", '{"type":7}', '{"type":null}'])
def test_server_frame_without_a_string_type_is_refused(frame: str) -> None:
    """protocol.md: every object has a string member ``type``; web/js/protocol.js answers
    ``bad_message`` for these, as decode_worker_message does."""
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(frame)
    assert caught.value.code == "bad_message"


def test_task_arguments_keep_every_other_member() -> None:
    frame = '{"type":"task","op":"o","task_id":2,"constructor":1,"x":[1],"args":{"a":1}}'
    assert decode_server_message(frame) == Task(
        task_id=2, op="o", args={"constructor": 1, "x": [1], "args": {"a": 1}}
    )


def test_every_element_of_tasks_is_decoded_like_a_task_frame() -> None:
    frame = (
        '{"type":"tasks","tasks":[{"type":"task","op":"o","task_id":2,"constructor":1},'
        '{"type":"task","op":"p","task_id":"b"}]}'
    )
    assert decode_server_message(frame) == Tasks(
        [Task(task_id=2, op="o", args={"constructor": 1}), Task(task_id="b", op="p", args={})]
    )


def test_welcome_without_limits_is_a_bad_message_as_in_javascript() -> None:
    frame = '{"type":"welcome","protocol":1,"worker_id":3,"server":"s","future":1}'
    with pytest.raises(ProtocolError) as caught:
        decode_server_message(frame)
    assert caught.value.code == "bad_message"
    assert Limits() == Limits(
        max_frame_bytes=MAX_FRAME_BYTES, heartbeat_interval_s=20.0, heartbeat_timeout_s=20.0
    )


DECODERS = pytest.mark.parametrize(
    "decode", [decode_worker_message, decode_server_message], ids=["worker", "server"]
)


@DECODERS
@pytest.mark.parametrize(
    "frame",
    [
        "1e400",
        '{"type":"result","task_id":1,"result":1e400,"duration_ms":1}',
        '{"type":"task","op":"x","task_id":1,"initial":-1e400}',
    ],
)
def test_numbers_out_of_range_are_refused(decode: Any, frame: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frame)
    assert caught.value.code == "bad_json"


@DECODERS
@pytest.mark.parametrize(
    "frame",
    ['{"type":"gossip",', '{"type":"result","task_id":true,', '{"type":"result"} x', "[1] x"],
)
def test_malformed_json_is_bad_json_even_after_a_type_error(decode: Any, frame: str) -> None:
    """msgspec may report a wrong type before it reaches the syntax error further on."""
    with pytest.raises(ProtocolError) as caught:
        decode(frame)
    assert caught.value.code == "bad_json"


@DECODERS
@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_frames_are_refused(decode: Any, depth: int) -> None:
    frame = (
        '{"type":"result","task_id":1,"duration_ms":1,"result":' + "[" * depth + "]" * depth + "}"
    )
    assert len(frame) < MAX_FRAME_BYTES
    with pytest.raises(ProtocolError) as caught:
        decode(frame)
    assert caught.value.code == "bad_json"


# --- encoders ----------------------------------------------------------------------------


def test_encode_task_is_the_exercise_frame() -> None:
    assert encode_task(1, "repeat_multiply", WELCOME_ARGS) == frame_by_name(
        SERVER["valid"], "exercise task"
    )


@pytest.mark.parametrize("name", ["type", "task_id", "op"])
def test_encode_task_refuses_reserved_argument_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"argument names \['{name}'\] are reserved"):
        encode_task(1, "x", {"a": 1, name: 2})


@pytest.mark.parametrize("task_id", [1, "t-9", 2**70])
def test_task_round_trip(task_id: int | str) -> None:
    frame = encode_task(task_id, "repeat_multiply", {"times": 0, "nested": {"op": [1, None]}})
    assert decode_server_message(frame) == Task(
        task_id=task_id, op="repeat_multiply", args={"times": 0, "nested": {"op": [1, None]}}
    )


def test_hello_round_trip() -> None:
    frame = encode_hello("browsergrid-python/0.1.0", ["repeat_multiply"], 2, 4)
    assert frame == frame_by_name(WORKER["valid"], "hello with prefetch")
    assert decode_worker_message(frame) == Hello(
        protocol=PROTOCOL_VERSION,
        agent="browsergrid-python/0.1.0",
        ops=["repeat_multiply"],
        concurrency=2,
        prefetch=4,
    )


def test_hello_prefetch_defaults_to_1_when_absent() -> None:
    """protocol.md: ``prefetch`` is optional, default 1; encode_hello sends it always."""
    without = decode_worker_message(frame_by_name(WORKER["valid"], "hello"))
    assert isinstance(without, Hello)
    assert without.prefetch == 1
    frame = encode_hello("browsergrid-python/0.1.0", ["repeat_multiply"], 2)
    assert json.loads(frame)["prefetch"] == 1
    assert decode_worker_message(frame) == without


@pytest.mark.parametrize(
    ("task_id", "result", "agent"),
    [(1, 1.5372656826974733, "Mozilla/5.0"), ("t-9", [1, 2, {"a": None}], None), (3, None, "x")],
)
def test_result_round_trip(task_id: int | str, result: Any, agent: str | None) -> None:
    frame = encode_result(task_id, result, 3.25, agent)
    assert decode_worker_message(frame) == Result(
        task_id=task_id, result=result, duration_ms=3.25, agent=agent
    )


def test_results_round_trip() -> None:
    items = [(1, 1.5372656826974733, 3), ("t-2", {"hits": 785, "samples": 1000}, 0.5)]
    frame = encode_results(items, "browsergrid-python/0.1.0")
    assert frame == frame_by_name(WORKER["valid"], "results")
    assert decode_worker_message(frame) == Results(
        results=[ResultItem(task_id=t, result=r, duration_ms=d) for t, r, d in items],
        agent="browsergrid-python/0.1.0",
    )
    without_agent = encode_results([(5, None, 0.0)], None)
    assert json.loads(without_agent)["agent"] is None
    assert decode_worker_message(without_agent) == Results([ResultItem(5, None, 0.0)])


def test_tasks_round_trip() -> None:
    batch = [(1, "repeat_multiply", WELCOME_ARGS), ("t-2", "prime_count", {"lo": 2, "hi": 100})]
    frame = encode_tasks(batch)
    assert frame == frame_by_name(SERVER["valid"], "tasks")
    assert decode_server_message(frame) == Tasks(
        [Task(task_id=t, op=op, args=args) for t, op, args in batch]
    )
    assert all(item["type"] == "task" for item in json.loads(frame)["tasks"])


@pytest.mark.parametrize("name", ["type", "task_id", "op"])
def test_encode_tasks_refuses_reserved_argument_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"argument names \['{name}'\] are reserved"):
        encode_tasks([(1, "x", {"a": 1}), (2, "x", {name: 2})])


@pytest.mark.parametrize("task_id", [7, "t-2", 2**70])
def test_cancel_round_trip(task_id: int | str) -> None:
    frame = encode_cancel(task_id)
    assert decode_server_message(frame) == Cancel(task_id)
    if task_id == 7:
        assert frame == frame_by_name(SERVER["valid"], "cancel")


def test_task_error_round_trip() -> None:
    frame = encode_task_error(7, "RangeError: invalid array length")
    assert frame == frame_by_name(WORKER["valid"], "task error")
    assert decode_worker_message(frame) == TaskError(
        task_id=7, message="RangeError: invalid array length"
    )


def test_welcome_round_trip() -> None:
    limits = Limits(max_frame_bytes=1000, heartbeat_interval_s=5.0, heartbeat_timeout_s=7.5)
    frame = encode_welcome(3, "browsergrid 0.1.0", limits)
    assert decode_server_message(frame) == Welcome(
        protocol=PROTOCOL_VERSION, worker_id=3, server="browsergrid 0.1.0", limits=limits
    )
    assert encode_welcome(3, "browsergrid 0.1.0", Limits()) == frame_by_name(
        SERVER["valid"], "welcome"
    )


@pytest.mark.parametrize("task_id", [None, 9, "t-1"])
def test_server_error_round_trip(task_id: int | str | None) -> None:
    frame = encode_server_error("unknown_task", "no such task", task_id)
    assert decode_server_message(frame) == ServerError(
        code="unknown_task", message="no such task", task_id=task_id
    )


def test_server_error_without_task_id_encodes_null() -> None:
    assert json.loads(encode_server_error("bad_json", "frame is not valid JSON")) == {
        "type": "error",
        "code": "bad_json",
        "message": "frame is not valid JSON",
        "task_id": None,
    }


# --- arbitrary input ---------------------------------------------------------------------

MEMBERS = [
    "task_id",
    "op",
    "result",
    "duration_ms",
    "agent",
    "protocol",
    "ops",
    "concurrency",
    "message",
    "code",
    "worker_id",
    "server",
    "limits",
    "prefetch",
    "results",
    "tasks",
]
TYPES = ["hello", "result", "results", "error", "task", "tasks", "cancel", "welcome", "x"]
items = st.fixed_dictionaries(
    {}, optional={name: json_values for name in ["type", "task_id", "op", "result", "duration_ms"]}
)
typed_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | json_values},
    optional={
        **{name: json_values for name in MEMBERS},
        "results": st.lists(items, max_size=3) | json_values,
        "tasks": st.lists(items, max_size=3) | json_values,
    },
)
frames = raw_frames(typed_objects)


@settings(max_examples=300, deadline=None)
@given(frames)
@example('{"type":"result"} x')
def test_decoders_return_a_message_or_raise_protocol_error(frame: str | bytes) -> None:
    try:
        worker_message = decode_worker_message(frame)
    except ProtocolError as exc:
        assert exc.code in ("bad_json", "bad_message", "unknown_type")
    else:
        assert isinstance(worker_message, Hello | Result | Results | TaskError)
    try:
        server_message = decode_server_message(frame)
    except ProtocolError as exc:
        assert exc.code in ("bad_json", "bad_message")
    else:
        assert server_message is None or isinstance(
            server_message, Task | Tasks | Cancel | Welcome | ServerError
        )


def test_deep_nesting_after_a_type_error_is_refused_too() -> None:
    """The typed decoder stops at task_id; naming the error must not recurse forever."""
    frame = '{"type":"result","task_id":true,"result":' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(ProtocolError) as caught:
        decode_worker_message(frame)
    assert caught.value.code == "bad_json"


def test_ack_lists_the_stored_task_ids() -> None:
    frame = encode_ack([3, 4])
    assert decode_server_message(frame) == Ack([3, 4])
    with pytest.raises(ProtocolError) as caught:
        decode_server_message('{"type":"ack","task_ids":[true]}')
    assert caught.value.code == "bad_message"


def test_hello_carries_a_worker_key_only_when_there_is_one() -> None:
    message = decode_worker_message(encode_hello("x", ["repeat_multiply"], 1, 1, "py-abc"))
    assert isinstance(message, Hello) and message.worker_key == "py-abc"
    assert "worker_key" not in encode_hello("x", ["repeat_multiply"], 1)


def test_hello_carries_cold_ops_only_when_there_are_some() -> None:
    frame = encode_hello("x", ["repeat_multiply", "python"], 1, cold=["python"])
    assert decode_worker_message(frame) == decode_worker_message(
        frame_by_name(WORKER["valid"], "hello with a cold op")
    )
    assert "cold" not in encode_hello("x", ["repeat_multiply"], 1, cold=[])


def test_hello_carries_environments_only_when_given() -> None:
    """protocol.md: a hello without ``environments`` is a worker that runs no native
    environment and builds any other (a tab)."""
    ready = frame_by_name(WORKER["valid"], "hello with the environments it runs")
    expected = decode_worker_message(ready)
    assert isinstance(expected, Hello) and expected.environments is not None
    environments = {"native": True, "new": False, "ready": expected.environments.ready}
    frame = encode_hello("browsergrid-python/0.1.0", ["python"], 2, environments=environments)
    assert frame == ready
    assert decode_worker_message(frame) == expected
    assert expected.environments == WorkerEnvironments(
        native=True, new=False, ready=environments["ready"]
    )
    assert "environments" not in encode_hello("x", ["python"], 1)
    plain = decode_worker_message(encode_hello("x", ["python"], 1))
    assert isinstance(plain, Hello) and plain.environments is None
    assert WorkerEnvironments() == WorkerEnvironments(native=False, new=True, ready=[])


def test_hello_names_at_most_max_holds_ready_environments() -> None:
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    most = encode_hello("x", ["python"], 1, environments={"ready": [digest] * MAX_HOLDS})
    hello = decode_worker_message(most)
    assert isinstance(hello, Hello) and hello.environments is not None
    assert len(hello.environments.ready) == MAX_HOLDS
    too_many = encode_hello("x", ["python"], 1, environments={"ready": [digest] * (MAX_HOLDS + 1)})
    with pytest.raises(ProtocolError) as caught:
        decode_worker_message(too_many)
    assert caught.value.code == "bad_message"
    assert "environments.ready" in caught.value.message


def test_capacity_sends_prefetch_and_share_only_when_given() -> None:
    assert encode_capacity(0) == frame_by_name(WORKER["valid"], "capacity: paused")
    assert encode_capacity(3, prefetch=3, share=0.5) == frame_by_name(
        WORKER["valid"], "capacity with prefetch and share"
    )


def test_hand_back_is_the_fixture_frame() -> None:
    assert encode_hand_back([12, 13]) == frame_by_name(WORKER["valid"], "hand_back")


def test_a_worker_key_is_shown_by_a_digest_that_keeps_its_prefix() -> None:
    from browsergrid.protocol import public_worker_key

    shown = public_worker_key("tab-6f1e2d3c4b5a69788796a5b4c3d2e1f0")
    assert shown.startswith("tab-") and len(shown) == len("tab-") + 16
    assert "6f1e2d3c" not in shown
    assert shown == public_worker_key("tab-6f1e2d3c4b5a69788796a5b4c3d2e1f0")  # stable
    assert public_worker_key("tab-other") != shown
    assert len(public_worker_key("nodash")) == 16  # no prefix to keep
    assert public_worker_key("averylongprefix-x").count("-") == 0
