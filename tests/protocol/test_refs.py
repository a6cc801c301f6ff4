"""Refs to blobs: their JSON form, finding them in arguments, reading a result that is one."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from browsergrid.protocol import (
    BLOB,
    LOCALITY_BYTES,
    MAX_HOLDS,
    Hello,
    Holds,
    Ref,
    as_ref,
    decode_worker_message,
    encode_hello,
    encode_holds,
    is_digest,
    large_inputs,
    refs_in,
    result_ref,
)

DIGEST = hashlib.sha256(b"data").hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


def test_a_ref_encodes_to_the_json_object_of_the_protocol() -> None:
    ref = Ref(DIGEST, 4)
    assert msgspec.json.decode(msgspec.json.encode(ref)) == {
        BLOB: DIGEST,
        "size": 4,
        "format": "bytes",
    }
    assert ref.to_json() == {BLOB: DIGEST, "size": 4, "format": "bytes"}
    assert msgspec.json.decode(msgspec.json.encode({"x": [ref]}))["x"][0][BLOB] == DIGEST


def test_a_digest_is_64_lowercase_hex_digits() -> None:
    assert is_digest(DIGEST)
    assert not is_digest(DIGEST.upper())
    assert not is_digest(DIGEST[:-1])
    assert not is_digest(DIGEST[:-1] + "g")
    assert not is_digest(7)


def test_refs_are_found_at_any_depth_in_document_order() -> None:
    args = {
        "a": {BLOB: DIGEST, "size": 4},
        "b": [1, {"c": {BLOB: OTHER, "size": 5, "format": "json"}}],
        "d": "text",
    }
    assert list(refs_in(args)) == [Ref(DIGEST, 4), Ref(OTHER, 5, "json")]
    assert list(refs_in({"plain": [1, 2, {"x": None}]})) == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({BLOB: "nope", "size": 1}, "64 lowercase hex"),
        ({BLOB: DIGEST}, "'size'"),
        ({BLOB: DIGEST, "size": -1}, "'size'"),
        ({BLOB: DIGEST, "size": True}, "'size'"),
        ({BLOB: DIGEST, "size": 1.0}, "'size'"),
        ({BLOB: DIGEST, "size": 1, "format": "text"}, "'format'"),
    ],
)
def test_a_malformed_ref_says_what_is_wrong(value: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        as_ref(value)
    with pytest.raises(ValueError, match=words):
        list(refs_in([value]))


def test_a_result_is_a_ref_only_when_its_top_is_one() -> None:
    assert result_ref({BLOB: DIGEST, "size": 4, "format": "json"}) == Ref(DIGEST, 4, "json")
    assert result_ref({"inner": {BLOB: DIGEST, "size": 4}}) is None
    assert result_ref([1, 2]) is None
    with pytest.raises(ValueError):
        result_ref({BLOB: DIGEST})


def test_the_large_inputs_of_a_task_are_its_refs_of_64_kib_or_more() -> None:
    args = {
        "big": {BLOB: DIGEST, "size": LOCALITY_BYTES},
        "small": [{BLOB: OTHER, "size": LOCALITY_BYTES - 1}],
        "n": 3,
    }
    assert large_inputs(args) == {DIGEST}
    assert large_inputs({"n": 3, "s": "text"}) == frozenset()  # not walked
    assert large_inputs({"bad": {BLOB: "nope"}}) == frozenset()


def test_the_holds_encoder_and_a_hello_naming_what_it_holds() -> None:
    assert decode_worker_message(encode_holds([DIGEST], [])) == Holds(add=[DIGEST], drop=[])
    many = [DIGEST] * (MAX_HOLDS + 5)
    hello = decode_worker_message(encode_hello("x", ["python"], 1, holds=many))
    assert isinstance(hello, Hello)
    assert len(hello.holds) == MAX_HOLDS
