"""The client protocol (``/client``) against docs/protocol.md and the shared fixtures."""

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
    Accepted,
    CancelJob,
    Cancelled,
    ClientError,
    Done,
    FailureRecord,
    ResultRecord,
    Submit,
    SubmitOptions,
    decode_client_message,
    decode_coordinator_message,
    encode_client_message,
    submit_options,
)
from tests.protocol._strategies import json_values, raw_frames

FIXTURES = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "messages.json").read_text(encoding="utf-8")
)
CLIENT = FIXTURES["client_to_server"]
COORDINATOR = FIXTURES["server_to_client"]


def cases(group: str, kind: str) -> pytest.MarkDecorator:
    params = [pytest.param(case, id=case["name"]) for case in FIXTURES[group][kind]]
    return pytest.mark.parametrize("case", params)


def as_fixture(message: Any) -> Any:
    """A decoded message in the shape of the fixtures' ``decodes_to`` (tag first)."""
    return msgspec.to_builtins(message)


# --- client to coordinator ---------------------------------------------------------------


@cases("client_to_server", "valid")
def test_valid_client_frame_decodes(case: dict[str, Any]) -> None:
    assert as_fixture(decode_client_message(case["frame"])) == case["decodes_to"]


@cases("client_to_server", "valid")
def test_valid_client_frame_decodes_from_bytes(case: dict[str, Any]) -> None:
    assert decode_client_message(case["frame"].encode()) == decode_client_message(case["frame"])


@cases("client_to_server", "valid")
def test_client_message_round_trip(case: dict[str, Any]) -> None:
    message = decode_client_message(case["frame"])
    frame = encode_client_message(message)
    assert isinstance(frame, bytes)
    assert json.loads(frame) == case["decodes_to"]
    assert decode_client_message(frame) == message


@cases("client_to_server", "invalid")
def test_invalid_client_frame_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(case["frame"])
    assert caught.value.code == case["error_code"]
    assert caught.value.message


def test_submit_defaults() -> None:
    message = decode_client_message('{"type":"submit","ref":0,"job_key":"k","op":"o","args":[{}]}')
    assert message == Submit(ref=0, job_key="k", op="o", args=[{}], options=SubmitOptions())
    assert SubmitOptions() == SubmitOptions(
        name="", priority=0, lease_timeout=None, max_attempts=None
    )


def test_submit_arguments_are_not_checked_by_the_decoder() -> None:
    """Reserved argument names are the coordinator's ``bad_args``, not a decoding error."""
    message = decode_client_message(
        '{"type":"submit","ref":1,"job_key":"k","op":"o","args":[{"task_id":1,"x":[1e5]}]}'
    )
    assert isinstance(message, Submit)
    assert message.args == [{"task_id": 1, "x": [100000.0]}]


@pytest.mark.parametrize(
    ("options", "member"),
    [
        ('{"name":"' + "n" * 201 + '"}', "name"),
        ('{"priority":-1001}', "priority"),
        ('{"priority":1.5}', "priority"),
        ('{"lease_timeout":86401}', "lease_timeout"),
        ('{"lease_timeout":-1}', "lease_timeout"),
        ('{"max_attempts":101}', "max_attempts"),
        ('{"max_attempts":true}', "max_attempts"),
        ("[]", "options"),
    ],
)
def test_bad_submit_options_are_refused_naming_the_member(options: str, member: str) -> None:
    frame = '{"type":"submit","ref":1,"job_key":"k","op":"o","args":[{}],"options":' + options + "}"
    with pytest.raises(ProtocolError, match=rf"bad 'submit' message: .*{member}") as caught:
        decode_client_message(frame)
    assert caught.value.code == "bad_message"


def test_submit_accepts_the_extreme_options() -> None:
    frame = (
        '{"type":"submit","ref":-5,"job_key":"' + "k" * 64 + '","op":"' + "o" * 64 + '",'
        '"args":[{}],"options":{"name":"' + "n" * 200 + '","priority":-1000,'
        '"lease_timeout":86400,"max_attempts":100}}'
    )
    message = decode_client_message(frame)
    assert isinstance(message, Submit)
    assert message.options == SubmitOptions(
        name="n" * 200, priority=-1000, lease_timeout=86400.0, max_attempts=100
    )


def test_submit_options_are_checked_as_the_coordinator_checks_them() -> None:
    assert submit_options() == SubmitOptions()
    assert submit_options(name="n", redundancy=2, max_replicas=2, adaptive=True) == SubmitOptions(
        name="n", redundancy=2, max_replicas=2, adaptive=True
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"redundancy": 0}, r"bad job option: .*\$\.redundancy"),
        ({"priority": "high"}, r"bad job option: .*\$\.priority"),
        ({"colour": "red"}, r"bad job option: .*unknown field `colour`"),
        ({"redundancy": 3, "max_replicas": 2}, "max_replicas must be at least redundancy"),
        ({"adaptive": True}, "adaptive replication needs redundancy of at least 2"),
    ],
)
def test_a_bad_submit_option_is_a_value_error_naming_it(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        submit_options(**fields)


def test_op_over_64_characters_is_refused() -> None:
    frame = '{"type":"submit","ref":1,"job_key":"k","op":"' + "o" * 65 + '","args":[{}]}'
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.code == "bad_message"


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff",
        "",
        '{"type":"submit","ref":1,"job_key":"k","op":"o","args":[{"x":1e400}]}',
        '{"type":"gossip",',
        '{"type":"cancel","job_id":1} x',
    ],
)
def test_client_frames_that_are_not_json_are_bad_json(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.code == "bad_json"


@pytest.mark.parametrize("depth", [10_000, 200_000])
@pytest.mark.parametrize("head", ['{"type":"submit","ref":1,', '{"type":"submit","ref":true,'])
def test_deeply_nested_client_frames_are_refused(head: str, depth: int) -> None:
    frame = head + '"job_key":"k","op":"o","args":[{"x":' + "[" * depth + "]" * depth + "}]}"
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame)
    assert caught.value.code == "bad_json"


def test_cancel_job_round_trip() -> None:
    frame = encode_client_message(CancelJob(job_id=4))
    assert frame == b'{"type":"cancel","job_id":4}'
    assert decode_client_message(frame) == CancelJob(job_id=4)


# --- coordinator to client ---------------------------------------------------------------


@cases("server_to_client", "valid")
def test_valid_coordinator_frame_decodes(case: dict[str, Any]) -> None:
    assert as_fixture(decode_coordinator_message(case["frame"])) == case["decodes_to"]


@cases("server_to_client", "valid")
def test_coordinator_message_round_trip(case: dict[str, Any]) -> None:
    message = decode_coordinator_message(case["frame"])
    assert message is not None
    frame = encode_client_message(message)
    assert json.loads(frame) == case["decodes_to"]
    assert decode_coordinator_message(frame) == message


@cases("server_to_client", "ignored")
def test_unknown_coordinator_frame_is_ignored(case: dict[str, Any]) -> None:
    assert decode_coordinator_message(case["frame"]) is None


@cases("server_to_client", "invalid")
def test_invalid_coordinator_frame_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_coordinator_message(case["frame"])
    assert caught.value.code == case["error_code"]
    assert caught.value.message


def test_done_lists_default_to_empty() -> None:
    assert Done() == Done(results=[], failures=[])
    assert encode_client_message(Done()) == b'{"type":"done","results":[],"failures":[]}'
    assert decode_coordinator_message('{"type":"done"}') == Done()


def test_coordinator_messages_round_trip_from_python_objects() -> None:
    record = ResultRecord(
        task_id=17, job_id=4, index=0, result=[1, None], worker_id=3, attempts=2, duration_ms=1.5
    )
    failure = FailureRecord(task_id=18, job_id=4, index=1, reasons=["worker 3 disconnected"])
    messages = [
        Accepted(ref=1, job_id=4, first_task_id=17, count=2),
        Done(results=[record], failures=[failure]),
        Cancelled(job_id=4, task_ids=[]),
        ClientError(code="job_cancelled", message="job 4 was cancelled", ref=7),
        ClientError(code="bad_json", message="frame is not valid JSON"),
    ]
    for message in messages:
        assert decode_coordinator_message(encode_client_message(message)) == message


def test_error_without_ref_encodes_null() -> None:
    assert json.loads(encode_client_message(ClientError(code="unknown_job", message="m"))) == {
        "type": "error",
        "code": "unknown_job",
        "message": "m",
        "ref": None,
    }


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff",
        '{"type":"done","x":' + "[" * 200_000 + "]" * 200_000 + "}",
        pytest.param(
            '{"type":"progress","done":1e400}',
            id="number out of range in an unknown type",
        ),
        pytest.param(
            '{"type":"accepted","ref":1,"job_id":4,"first_task_id":17,"count":1e400}',
            id="number out of range in a typed member",
        ),
        pytest.param(
            '{"type":"done","results":' + "[" * 200_000 + "]" * 200_000 + "}",
            id="deep nesting in a typed member",
        ),
    ],
)
def test_coordinator_frames_that_are_not_json_are_bad_json(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_coordinator_message(frame)
    assert caught.value.code == "bad_json"


def test_deep_nesting_after_a_type_error_is_refused_by_the_client_too() -> None:
    frame = '{"type":"accepted","ref":true,"x":' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(ProtocolError) as caught:
        decode_coordinator_message(frame)
    assert caught.value.code == "bad_json"


# --- arbitrary input ---------------------------------------------------------------------

MEMBERS = [
    "ref",
    "job_key",
    "op",
    "args",
    "options",
    "job_id",
    "first_task_id",
    "count",
    "results",
    "failures",
    "task_ids",
    "code",
    "message",
]
TYPES = ["submit", "cancel", "accepted", "done", "cancelled", "error", "x"]
typed_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={name: json_values for name in MEMBERS},
)
frames = raw_frames(typed_objects)


@settings(max_examples=300, deadline=None)
@given(frames)
@example('{"type":"submit","ref":true,')
def test_client_decoder_returns_a_message_or_raises_protocol_error(frame: str | bytes) -> None:
    try:
        message = decode_client_message(frame)
    except ProtocolError as exc:
        assert exc.code in ("bad_json", "bad_message", "unknown_type")
    else:
        assert isinstance(message, Submit | CancelJob)


@settings(max_examples=300, deadline=None)
@given(frames)
@example('{"type":"accepted","ref":true,')
def test_coordinator_decoder_returns_a_message_or_raises_protocol_error(
    frame: str | bytes,
) -> None:
    try:
        message = decode_coordinator_message(frame)
    except ProtocolError as exc:
        assert exc.code in ("bad_json", "bad_message")
    else:
        assert message is None or isinstance(message, Accepted | Done | Cancelled | ClientError)


job_args = st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), min_size=1)


@settings(max_examples=100, deadline=None)
@given(
    ref=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    job_key=st.text(min_size=1, max_size=64),
    op=st.text(min_size=1, max_size=64),
    args=job_args,
    priority=st.integers(min_value=-1000, max_value=1000),
)
def test_submit_round_trip(
    ref: int, job_key: str, op: str, args: list[dict[str, Any]], priority: int
) -> None:
    message = Submit(
        ref=ref, job_key=job_key, op=op, args=args, options=SubmitOptions(priority=priority)
    )
    assert decode_client_message(encode_client_message(message)) == message
