"""The Python worker's blob cache on a real disk: bounded, least recently used first out,
and a copy whose bytes changed is never read back."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from browsergrid.worker import BlobCache
from browsergrid.worker._blobs import http_base


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_least_recently_used_go_first_when_room_is_needed(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "blobs", max_bytes=250)
    a, b, c = b"a" * 100, b"b" * 100, b"c" * 100
    assert cache.put(sha(a), a) == (True, [])
    cache.put(sha(b), b)
    past = time.time() - 60
    os.utime(tmp_path / "blobs" / sha(a), (past, past))
    os.utime(tmp_path / "blobs" / sha(b), (past - 60, past - 60))  # b is the older
    assert cache.get(sha(a)) == a  # and reading a makes it the newest
    (tmp_path / "blobs" / ".crashed.part").write_bytes(b"")  # a write a crash cut short
    assert cache.put(sha(c), c) == (True, [sha(b)])  # what the coordinator is told: digests
    assert cache.get(sha(b)) is None
    assert (cache.get(sha(a)), cache.get(sha(c))) == (a, c)
    assert cache.put(sha(b"x" * 300), b"x" * 300) == (False, [])  # larger than the cache
    assert cache.get(sha(b"x" * 300)) is None
    kept = {p.name for p in (tmp_path / "blobs").iterdir()} - {".crashed.part"}
    assert kept == {sha(a), sha(c)}


def test_a_tampered_copy_is_removed_not_read(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "blobs")
    data = b"honest bytes"
    cache.put(sha(data), data)
    (tmp_path / "blobs" / sha(data)).write_bytes(b"other bytes!")
    assert cache.get(sha(data)) is None
    assert not (tmp_path / "blobs" / sha(data)).exists()


def test_a_websocket_url_names_its_http_origin() -> None:
    assert http_base("ws://127.0.0.1:8765/ws?token=T") == "http://127.0.0.1:8765"
    assert http_base("wss://grid.example:443/") == "https://grid.example:443"
