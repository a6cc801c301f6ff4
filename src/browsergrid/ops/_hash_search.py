"""``hash_search``: the first nonce whose SHA-256 of ``prefix + str(nonce)`` starts with
``difficulty`` zero bits (a proof-of-work search over one range of nonces)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from browsergrid.ops._args import MAX_SAFE, fail, integer

NAME: Final = "hash_search"
MAX_PREFIX: Final = 256  # characters (Unicode code points)
MAX_COUNT: Final = 10**7
_HEX: Final = re.compile(r"[0-9a-f]{64}")
_NOT_FOUND: Final = {"nonce": None, "hash": None}


def run(args: Mapping[str, Any]) -> dict[str, Any]:
    """``{"nonce": n, "hash": "<64 lowercase hex>"}`` for the first qualifying nonce of
    ``[start, start + count)``, or ``{"nonce": None, "hash": None}`` when none qualifies."""
    prefix, difficulty, start, count = _parse(args)
    found = search(prefix, difficulty, start, start + count)
    if found is None:
        return dict(_NOT_FOUND)
    return {"nonce": found, "hash": digest(prefix, found).hex()}


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """A found nonce is in range, its hash is right and meets the difficulty, and no smaller
    nonce of the range does (that part of the range is searched again); a ``null`` answer is
    checked by searching the whole range. Cheap checks come first."""
    prefix, difficulty, start, count = _parse(args)
    if not isinstance(result, dict) or result.keys() != _NOT_FOUND.keys():
        return False
    nonce, claimed = result["nonce"], result["hash"]
    if nonce is None:
        return claimed is None and search(prefix, difficulty, start, start + count) is None
    if isinstance(nonce, bool) or not isinstance(nonce, int):
        return False
    if not start <= nonce < start + count or not isinstance(claimed, str):
        return False
    if _HEX.fullmatch(claimed) is None:
        return False
    hashed = digest(prefix, nonce)
    if hashed.hex() != claimed or not _meets(hashed, difficulty):
        return False
    return search(prefix, difficulty, start, nonce) is None


def digest(prefix: str, nonce: int) -> bytes:
    """SHA-256 of the UTF-8 bytes of ``prefix + str(nonce)``."""
    return hashlib.sha256(f"{prefix}{nonce}".encode()).digest()


def search(prefix: str, difficulty: int, start: int, stop: int) -> int | None:
    """The first nonce in ``[start, stop)`` whose hash has ``difficulty`` leading zero bits."""
    if start >= stop:
        return None
    if difficulty == 0:
        return start
    head = hashlib.sha256(prefix.encode())  # hashed once; each nonce continues a copy
    shift = 64 - difficulty
    from_bytes = int.from_bytes
    for nonce in range(start, stop):
        hasher = head.copy()
        hasher.update(b"%d" % nonce)
        if from_bytes(hasher.digest()[:8]) >> shift == 0:
            return nonce
    return None


def _meets(hashed: bytes, difficulty: int) -> bool:
    return int.from_bytes(hashed[:8]) >> (64 - difficulty) == 0


def _parse(args: Mapping[str, Any]) -> tuple[str, int, int, int]:
    prefix = args.get("prefix")
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX or not _well_formed(prefix):
        raise fail(NAME, "prefix", "a string of at most 256 characters (no lone surrogates)")
    difficulty = integer(args, NAME, "difficulty", 0, 64, "0 to 64")
    start = integer(args, NAME, "start", 0, MAX_SAFE, "0 to 2**53 - 1")
    count = integer(args, NAME, "count", 1, MAX_COUNT, "1 to 10**7")
    if start + count - 1 > MAX_SAFE:
        raise fail(NAME, "count", "at most 2**53 - start (the last nonce is below 2**53)")
    return prefix, difficulty, start, count


def _well_formed(text: str) -> bool:
    """No lone surrogate (JSON's ``"\\ud800"``): it has no UTF-8 encoding."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
