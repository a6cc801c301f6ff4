"""Fuzzing the four decoders of docs/protocol.md with arbitrary and mutated frames.

Every decoder either returns a message or raises ProtocolError (with a code and a message):
never another exception. Decoding is deterministic, text and its UTF-8 bytes decode alike,
and a decoded message encodes to a frame that decodes to the same message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from browsergrid.errors import ProtocolError
from browsergrid.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Accepted,
    Ack,
    Cancel,
    CancelJob,
    Cancelled,
    Capacity,
    ClientError,
    Done,
    HandBack,
    Hello,
    Holds,
    Result,
    Results,
    ServerError,
    Submit,
    Task,
    TaskError,
    Tasks,
    Watch,
    Welcome,
    decode_client_message,
    decode_coordinator_message,
    decode_server_message,
    decode_worker_message,
    encode_ack,
    encode_cancel,
    encode_capacity,
    encode_client_message,
    encode_hand_back,
    encode_hello,
    encode_holds,
    encode_result,
    encode_results,
    encode_server_error,
    encode_task,
    encode_task_error,
    encode_tasks,
    encode_welcome,
)
from tests.protocol._strategies import json_values

FIXTURES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "messages.json").read_text(encoding="utf-8")
)
GROUPS = ["worker_to_server", "server_to_worker", "client_to_server", "server_to_client"]


def fixture_frames(*groups: str, kinds: tuple[str, ...] = ("valid",)) -> list[str]:
    """The frames of tests/fixtures/messages.json in ``groups``, of the given kinds."""
    return [
        case["frame"]
        for group in groups
        for kind in kinds
        for case in FIXTURES[group].get(kind, [])
    ]


# --- mutating valid frames ---------------------------------------------------------------

# Values at the edges of what the decoders check: types, integer widths, lengths, nesting.
TRICKY = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -0.0,
    0.5,
    1e308,
    -1e308,
    5e-324,
    float("inf"),  # json.dumps writes Infinity: not JSON
    float("nan"),  # json.dumps writes NaN: not JSON
    "",
    "x" * 64,
    "x" * 65,
    "x" * 513,
    "\x00",
    "\u2028",
    "\U0001f600",
    [],
    {},
    [None],
    {"type": "task"},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]
# Member names of every message, so that mutations add members the decoders look at.
MEMBERS = sorted(
    {
        key
        for group in GROUPS
        for case in FIXTURES[group]["valid"]
        for key in json.loads(case["frame"])
    }
    | {"options", "client_id", "worker_key", "prefetch", "ref", "results", "failures"}
)
OPTIONAL_MEMBERS = [name for name in MEMBERS if name != "type"]
leaf_values = st.sampled_from(TRICKY) | json_values


@st.composite
def _mutated_value(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with one change somewhere inside it."""
    if isinstance(value, dict) and value and depth < 4:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["recurse", "replace", "delete", "add"]))
        changed = dict(value)
        if action == "recurse":
            changed[key] = draw(_mutated_value(value[key], depth + 1))
        elif action == "replace":
            changed[key] = draw(leaf_values)
        elif action == "delete":
            del changed[key]
        else:
            changed[draw(st.sampled_from(MEMBERS) | st.text(max_size=8))] = draw(leaf_values)
        return changed
    if isinstance(value, list) and value and depth < 4:
        index = draw(st.integers(0, len(value) - 1))
        action = draw(st.sampled_from(["recurse", "replace", "delete", "append", "repeat"]))
        changed_list = list(value)
        if action == "recurse":
            changed_list[index] = draw(_mutated_value(value[index], depth + 1))
        elif action == "replace":
            changed_list[index] = draw(leaf_values)
        elif action == "delete":
            del changed_list[index]
        elif action == "append":
            changed_list.append(draw(leaf_values))
        else:
            changed_list.extend([value[index]] * draw(st.integers(1, 50)))
        return changed_list
    return draw(leaf_values)


@st.composite
def _mutated_text(draw: st.DrawFn, text: str) -> str:
    """``text`` cut, with a character in or out, or duplicated."""
    at = draw(st.integers(0, len(text)))
    action = draw(st.sampled_from(["cut", "insert", "delete", "double", "wrap"]))
    if action == "cut":
        return text[:at]
    if action == "insert":
        return text[:at] + draw(st.sampled_from('{}[]",:0-.eE\\ ') | st.characters()) + text[at:]
    if action == "delete":
        return text[:at] + text[at + 1 :]
    if action == "double":
        return text + text
    return "[" + text + "]"


@st.composite
def mutated_frames(draw: st.DrawFn, frames: list[str]) -> str | bytes:
    """A valid frame of ``frames`` with a few changes to its JSON, and maybe to its text."""
    value = json.loads(draw(st.sampled_from(frames)))
    for _ in range(draw(st.integers(1, 3))):
        value = draw(_mutated_value(value))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:
        text = draw(_mutated_text(text))
    return text.encode() if draw(st.booleans()) else text


# Objects shaped like messages: every type of both directions and any member.
TYPES = sorted(
    {json.loads(case["frame"]).get("type") for group in GROUPS for case in FIXTURES[group]["valid"]}
    | {"x", "", "TASK"}
)
typed_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | leaf_values},
    optional={name: leaf_values for name in OPTIONAL_MEMBERS},
).map(json.dumps)

ALL_VALID = fixture_frames(*GROUPS)
ALL_FRAMES = fixture_frames(*GROUPS, kinds=("valid", "invalid", "ignored"))


def padded(frame: str, size: int) -> str:
    """``frame`` (a JSON object) with a member ``pad`` that makes it ``size`` bytes of UTF-8."""
    head = frame.rstrip()[:-1] + ',"pad":"'
    return head + "x" * (size - len(head.encode()) - 2) + '"}'


def frames_around_the_limit(valid: list[str]) -> st.SearchStrategy[str | bytes]:
    """Frames of ``valid`` padded to just under, at and just over MAX_FRAME_BYTES."""
    sizes = st.sampled_from([MAX_FRAME_BYTES - 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1])
    frames = st.builds(padded, st.sampled_from(valid), sizes)
    return frames | frames.map(str.encode)


def any_frames(valid: list[str]) -> st.SearchStrategy[str | bytes]:
    """Text, bytes, any JSON value, message-shaped objects and mutations of ``valid``."""
    return st.one_of(
        st.text(),
        st.binary(),
        json_values.map(json.dumps),
        typed_objects,
        st.sampled_from(ALL_FRAMES),
        mutated_frames(ALL_VALID),
        mutated_frames(valid),
        mutated_frames(valid),
    )


# --- the decoders ------------------------------------------------------------------------

Decoder = Callable[[str | bytes], Any]
DECODERS: dict[str, tuple[Decoder, tuple[type, ...], frozenset[str], str]] = {
    # name: (decoder, what it returns, the codes of its ProtocolError, its own fixtures)
    "worker": (
        decode_worker_message,
        (Hello, Result, Results, TaskError, Capacity, HandBack, Holds),
        frozenset({"bad_json", "bad_message", "unknown_type"}),
        "worker_to_server",
    ),
    "server": (
        decode_server_message,
        (Task, Tasks, Cancel, Ack, Welcome, ServerError, type(None)),
        frozenset({"bad_json", "bad_message"}),
        "server_to_worker",
    ),
    "client": (
        decode_client_message,
        (Submit, Watch, CancelJob),
        frozenset({"bad_json", "bad_message", "unknown_type"}),
        "client_to_server",
    ),
    "coordinator": (
        decode_coordinator_message,
        (Accepted, Done, Cancelled, ClientError, type(None)),
        frozenset({"bad_json", "bad_message"}),
        "server_to_client",
    ),
}


def outcome(decode: Decoder, frame: str | bytes) -> tuple[str, Any]:
    """What decoding ``frame`` gives: ("message", it) or ("error", (code, message)).
    Any other exception propagates, and fails the test."""
    try:
        return "message", decode(frame)
    except ProtocolError as exc:
        return "error", (exc.code, exc.message)


def check_outcome(name: str, frame: str | bytes) -> tuple[str, Any]:
    decode, returns, codes, _ = DECODERS[name]
    kind, value = outcome(decode, frame)
    if kind == "message":
        assert isinstance(value, returns), value
    else:
        code, message = value
        assert code in codes, value
        assert isinstance(message, str) and message, value
    assert outcome(decode, frame) == (kind, value), "decoding is not deterministic"
    if isinstance(frame, str) and not _LONE_SURROGATE.search(frame):  # no UTF-8 form
        assert outcome(decode, frame.encode()) == (kind, value), "text and bytes differ"
    return kind, value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# --- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DECODERS))
@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_any_frame_decodes_or_raises_protocol_error(name: str, data: st.DataObject) -> None:
    frame = data.draw(any_frames(fixture_frames(DECODERS[name][3])), label="frame")
    check_outcome(name, frame)


@pytest.mark.parametrize("name", list(DECODERS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_decoded_message_survives_a_round_trip(name: str, data: st.DataObject) -> None:
    """Frames near the valid ones decode often; each message re-encodes to itself."""
    frame = data.draw(
        mutated_frames(fixture_frames(DECODERS[name][3])) | st.sampled_from(ALL_VALID),
        label="frame",
    )
    kind, message = check_outcome(name, frame)
    if kind == "message" and message is not None:
        again = DECODERS[name][0](reencode(message))
        assert again == expected_after_round_trip(message)


def reencode(message: Any) -> str | bytes:
    """The frame the module's own encoder makes of ``message``."""
    match message:
        case Hello():
            return encode_hello(
                message.agent,
                message.ops,
                message.concurrency,
                message.prefetch,
                message.worker_key,
                message.cold,
                message.holds,
                environments=None
                if message.environments is None
                else msgspec.to_builtins(message.environments),
            )
        case Result():
            return encode_result(
                message.task_id, message.result, message.duration_ms, message.agent
            )
        case Results():
            items = [(item.task_id, item.result, item.duration_ms) for item in message.results]
            return encode_results(items, message.agent)
        case TaskError():
            return encode_task_error(message.task_id, message.message)
        case Capacity():
            return encode_capacity(message.concurrency, message.prefetch, message.share)
        case HandBack():
            return encode_hand_back(message.task_ids)
        case Holds():
            return encode_holds(message.add, message.drop)
        case Task():
            return encode_task(message.task_id, message.op, message.args)
        case Tasks():
            return encode_tasks([(task.task_id, task.op, task.args) for task in message.tasks])
        case Cancel():
            return encode_cancel(message.task_id)
        case Ack():
            return encode_ack(message.task_ids)
        case Welcome():
            return encode_welcome(
                message.worker_id, message.server, message.limits, message.blob_key
            )
        case ServerError():
            return encode_server_error(message.code, message.message, message.task_id)
    return encode_client_message(message)


def expected_after_round_trip(message: Any) -> Any:
    """encode_hello and encode_welcome always write this version's protocol number."""
    if isinstance(message, Hello | Welcome):
        return msgspec.structs.replace(message, protocol=PROTOCOL_VERSION)
    return message


@pytest.mark.parametrize("name", list(DECODERS))
@settings(max_examples=50, deadline=None)
@given(frame=frames_around_the_limit(ALL_VALID))
def test_frames_around_the_size_limit(name: str, frame: str | bytes) -> None:
    """The size limit is the transport's (close 1009): the decoders decode big frames."""
    assert abs(len(frame if isinstance(frame, bytes) else frame.encode()) - MAX_FRAME_BYTES) <= 1
    kind, message = check_outcome(name, frame)
    if kind == "message" and message is not None:
        assert DECODERS[name][0](reencode(message)) == expected_after_round_trip(message)


@pytest.mark.parametrize("name", list(DECODERS))
def test_text_that_is_not_unicode_is_bad_json(name: str) -> None:
    """A Python str may hold a lone surrogate, which has no UTF-8 form (a WebSocket text
    frame cannot carry one: the bug is reachable only by calling a decoder with such a str)."""
    with pytest.raises(ProtocolError) as caught:
        DECODERS[name][0]('{"type":"x","note":"\ud800"}')
    assert caught.value.code == "bad_json"
