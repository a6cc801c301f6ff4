"""``hash_search``: the first nonce whose SHA-256 has ``difficulty`` leading zero bits."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from browsergrid.ops import run_op, verify_op
from browsergrid.ops._hash_search import digest, search

MAX_SAFE = 2**53 - 1


def zero_bits(data: bytes) -> int:
    return 256 - int.from_bytes(data).bit_length()


def first(prefix: str, difficulty: int, start: int, count: int) -> int | None:
    """The definition, written plainly."""
    for nonce in range(start, start + count):
        data = hashlib.sha256((prefix + str(nonce)).encode("utf-8")).digest()
        if zero_bits(data) >= difficulty:
            return nonce
    return None


def hs(prefix: Any = "p", difficulty: Any = 4, start: Any = 0, count: Any = 100) -> Any:
    args = {"prefix": prefix, "difficulty": difficulty, "start": start, "count": count}
    return run_op("hash_search", args)


def verify(
    result: Any, prefix: str = "p", difficulty: int = 4, start: int = 0, count: int = 100
) -> bool:
    args = {"prefix": prefix, "difficulty": difficulty, "start": start, "count": count}
    return verify_op("hash_search", args, result)


@pytest.mark.parametrize("difficulty", [0, 1, 2, 3, 7, 8, 9, 12, 16])
def test_finds_the_first_qualifying_nonce(difficulty: int) -> None:
    result = hs("abc", difficulty, 10, 100_000)
    nonce = first("abc", difficulty, 10, 100_000)
    assert nonce is not None
    assert result == {"nonce": nonce, "hash": digest("abc", nonce).hex()}
    assert zero_bits(bytes.fromhex(result["hash"])) >= difficulty


def test_difficulty_0_answers_start() -> None:
    assert hs("", 0, 12345, 1)["nonce"] == 12345


def test_none_found_is_null_null() -> None:
    assert hs("x", 40, 0, 1000) == {"nonce": None, "hash": None}


def test_the_nonce_is_decimal_and_the_prefix_utf8() -> None:
    assert digest("ñ→🙂", 1200) == hashlib.sha256("ñ→🙂1200".encode()).digest()
    assert digest("", 2**53 - 1) == hashlib.sha256(b"9007199254740991").digest()


def test_search_bounds() -> None:
    assert search("p", 4, 5, 5) is None
    nonce = first("p", 4, 0, 100)
    assert nonce is not None
    assert search("p", 4, 0, nonce) is None
    assert search("p", 4, 0, nonce + 1) == nonce


def test_the_last_safe_nonce_is_allowed() -> None:
    assert hs("", 0, MAX_SAFE, 1)["nonce"] == MAX_SAFE
    assert hs("", 0, MAX_SAFE - 9, 10)["nonce"] == MAX_SAFE - 9


PREFIX_MUST = "a string of at most 256 characters"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"prefix": None}, "prefix"),
        ({"prefix": 5}, "prefix"),
        ({"prefix": ["a"]}, "prefix"),
        ({"prefix": "a" * 257}, "prefix"),
        ({"prefix": "🙂" * 257}, "prefix"),
        ({"prefix": "a\ud800b"}, "prefix"),
        ({"prefix": "\udc00"}, "prefix"),
        ({"difficulty": -1}, "difficulty"),
        ({"difficulty": 65}, "difficulty"),
        ({"difficulty": 8.0}, "difficulty"),
        ({"difficulty": True}, "difficulty"),
        ({"start": -1}, "start"),
        ({"start": 2**53}, "start"),
        ({"start": 0.5}, "start"),
        ({"start": None}, "start"),
        ({"count": 0}, "count"),
        ({"count": 10**7 + 1}, "count"),
        ({"count": 1.0}, "count"),
        ({"start": MAX_SAFE, "count": 2}, "count"),
        ({"start": MAX_SAFE - 9, "count": 11}, "count"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(
    change: dict[str, Any], name: str
) -> None:
    args = {"prefix": "p", "difficulty": 4, "start": 0, "count": 100, **change}
    with pytest.raises(ValueError, match=f"^hash_search: '{name}' must be"):
        run_op("hash_search", args)
    with pytest.raises(ValueError, match=f"^hash_search: '{name}' must be"):
        verify_op("hash_search", args, {"nonce": None, "hash": None})


def test_a_prefix_counts_code_points() -> None:
    """256 characters, even outside the BMP (512 UTF-16 units in JavaScript), are allowed."""
    assert hs("🙂" * 256, 0, 0, 1)["nonce"] == 0
    assert hs("a" * 256, 0, 0, 1)["nonce"] == 0


# --- verify ---


def test_verify_accepts_the_right_answers() -> None:
    nonce = first("p", 4, 0, 100)
    assert nonce is not None
    assert verify({"nonce": nonce, "hash": digest("p", nonce).hex()})
    assert verify({"nonce": None, "hash": None}, "x", 40, 0, 1000)


def test_verify_refuses_a_later_qualifying_nonce() -> None:
    """Every nonce qualifies at difficulty 0, but only start is the first."""
    assert verify({"nonce": 3, "hash": digest("p", 3).hex()}, difficulty=0, start=3)
    assert not verify({"nonce": 4, "hash": digest("p", 4).hex()}, difficulty=0, start=3)
    second = first("p", 4, first("p", 4, 0, 100) + 1, 1000)  # type: ignore[operator]
    assert second is not None
    assert not verify({"nonce": second, "hash": digest("p", second).hex()}, count=2000)


def test_verify_refuses_a_nonce_out_of_range() -> None:
    nonce = first("p", 4, 0, 1000)
    assert nonce is not None and nonce > 0
    right = {"nonce": nonce, "hash": digest("p", nonce).hex()}
    assert not verify(right, start=nonce + 1)  # below start
    assert not verify(right, start=0, count=nonce)  # at start + count


def test_verify_refuses_a_hash_that_misses_the_difficulty() -> None:
    found = first("p", 1, 0, 100)
    assert found is not None and zero_bits(digest("p", found)) < 9
    assert not verify({"nonce": found, "hash": digest("p", found).hex()}, difficulty=9)


def test_verify_refuses_a_wrong_or_oddly_written_hash() -> None:
    nonce = first("p", 4, 0, 100)
    assert nonce is not None
    right = digest("p", nonce).hex()
    for wrong in (right.upper(), right[:-1], right + "0", f" {right}", "0" * 64, None, 5):
        assert not verify({"nonce": nonce, "hash": wrong})


def test_verify_refuses_null_when_a_nonce_exists() -> None:
    assert not verify({"nonce": None, "hash": None})
    assert not verify({"nonce": None, "hash": "0" * 64}, "x", 40, 0, 1000)


@pytest.mark.parametrize(
    "result",
    [
        None,
        [],
        "x",
        5,
        {},
        {"nonce": None},
        {"hash": None},
        {"nonce": None, "hash": None, "x": 1},
        {"nonce": True, "hash": None},
        {"nonce": 1.0, "hash": None},
        {"nonce": "1", "hash": None},
    ],
)
def test_verify_refuses_a_malformed_result(result: Any) -> None:
    assert verify(result, "x", 40, 0, 10) is False
