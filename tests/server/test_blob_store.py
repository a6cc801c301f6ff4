"""The coordinator's blob store on a real disk: accounting that holds under refusals and
races, and a prune that keeps what is used or needed."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from browsergrid.server._blob_store import BlobRefused, DiskBlobs


async def chunks(parts: Iterable[bytes], pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(pause)
        yield part


async def opened(root: Path, *, max_size: int = 10_000, max_total: int = 1_000) -> DiskBlobs:
    blobs = DiskBlobs(root, max_size=max_size, max_total=max_total)
    await blobs.open()
    return blobs


async def test_refused_uploads_leave_the_accounts_as_they_were(tmp_path: Path) -> None:
    blobs = await opened(tmp_path)
    for _ in range(3):
        with pytest.raises(BlobRefused) as refused:
            await blobs.receive(chunks([b"x" * 400] * 3), form="bytes")
        assert refused.value.code == "blob_store_full"
        assert (blobs.reserved, blobs.total) == (0, 0)
    ref, created = await blobs.receive(chunks([b"y" * 500, b"y" * 500]), form="bytes")
    assert created and ref.size == 1000  # exactly the room there is: it fits
    assert (blobs.reserved, blobs.total) == (0, 1000)
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_the_same_bytes_uploaded_at_once_count_once(tmp_path: Path) -> None:
    blobs = await opened(tmp_path)
    data = [b"z" * 100, b"z" * 100]
    results = await asyncio.gather(
        *(blobs.receive(chunks(data, pause=0.01), form="bytes") for _ in range(3))
    )
    assert sorted(created for _, created in results) == [False, False, True]
    assert blobs.total == 200
    assert blobs.path(hashlib.sha256(b"z" * 200).hexdigest()).read_bytes() == b"z" * 200


async def test_a_sender_that_leaves_keeps_nothing(tmp_path: Path) -> None:
    blobs = await opened(tmp_path)

    async def leaving() -> AsyncIterator[bytes]:
        yield b"a" * 300
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await blobs.receive(leaving(), form="bytes")
    assert (blobs.reserved, blobs.total, blobs.sizes) == (0, 0, {})
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_prune_keeps_what_was_used_lately_or_is_needed(tmp_path: Path) -> None:
    blobs = await opened(tmp_path)
    old, needed, recent = [
        await blobs.keep(name.encode(), "bytes") for name in ("old", "needed", "recent")
    ]
    an_hour_ago = time.time() - 3600
    blobs.used[old.sha256] = blobs.used[needed.sha256] = an_hour_ago - 1
    gone = blobs.prune(an_hour_ago, lambda digest: digest == needed.sha256)
    assert gone == 1
    assert set(blobs.sizes) == {needed.sha256, recent.sha256}
    assert not blobs.path(old.sha256).exists()
    assert blobs.total == len("needed") + len("recent")
    reopened = await opened(tmp_path)  # a restart finds them, and renews their time
    assert reopened.sizes == blobs.sizes
    assert reopened.prune(an_hour_ago, lambda digest: False) == 0
