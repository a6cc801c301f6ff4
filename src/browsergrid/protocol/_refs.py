"""Refs to blobs (docs/protocol.md, "Blobs"): ``{"$blob": SHA256, "size": N, "format": F}``.

A ref may stand anywhere in a task's arguments, and a worker's result may be one (a large
result it uploaded). ``Ref`` is the typed form (it encodes to that JSON object);
``refs_in`` finds the refs of a JSON value and ``result_ref`` reads a result that is one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal

import msgspec

LOCALITY_BYTES: Final = 65536
"""Blobs this large or larger are worth sending tasks to the workers that hold them."""
BLOB: Final = "$blob"
"""The member that makes a JSON object a ref (reserved: a user's object must not use it)."""
Format = Literal["bytes", "json"]
_HEX: Final = frozenset("0123456789abcdef")


class Ref(msgspec.Struct, frozen=True, rename={"sha256": BLOB}):
    """A blob the coordinator holds: its SHA-256 (hex), its size in bytes, and whether the
    op receives the bytes (``bytes``) or the JSON value they hold (``json``). Pass it
    anywhere in a task's arguments; ``Client.put`` makes one."""

    sha256: str
    size: int
    format: Format = "bytes"

    def to_json(self) -> dict[str, Any]:
        """The ref as a JSON object (what travels in a task)."""
        return {BLOB: self.sha256, "size": self.size, "format": self.format}


def is_digest(text: object) -> bool:
    """Whether ``text`` is a SHA-256 as refs spell it: 64 lowercase hex digits."""
    return isinstance(text, str) and len(text) == 64 and _HEX.issuperset(text)


def as_ref(value: dict[str, Any]) -> Ref:
    """The ref an object with a ``$blob`` member stands for; ValueError saying what is wrong
    with a malformed one."""
    digest, size, form = value.get(BLOB), value.get("size"), value.get("format", "bytes")
    if not is_digest(digest):
        raise ValueError(f"a ref's {BLOB!r} must be a SHA-256 as 64 lowercase hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"the ref to blob {digest} needs a 'size': an integer >= 0")
    if form not in ("bytes", "json"):
        raise ValueError(f"the ref to blob {digest} has 'format' {form!r}: 'bytes' or 'json'")
    assert isinstance(digest, str)
    return Ref(digest, size, form)


def refs_in(value: Any) -> Iterator[Ref]:
    """Every ref in a JSON value (objects and arrays at any depth), in document order;
    raises ValueError for a malformed one."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if BLOB in item:
                yield as_ref(item)
            else:
                stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def result_ref(result: Any) -> Ref | None:
    """The ref a worker's result is (an object with ``$blob`` at its top), or None for an
    ordinary result; ValueError for a malformed ref."""
    if isinstance(result, dict) and BLOB in result:
        return as_ref(result)
    return None


def large_inputs(args: Mapping[str, Any]) -> frozenset[str]:
    """The SHA-256s of the blobs of at least ``LOCALITY_BYTES`` a task's arguments refer
    to (malformed refs are none): a worker that holds them should get the task first.
    Arguments of plain values are not walked."""
    if not any(isinstance(value, dict | list) for value in args.values()):
        return frozenset()
    try:
        return frozenset(ref.sha256 for ref in refs_in(args) if ref.size >= LOCALITY_BYTES)
    except ValueError:
        return frozenset()
