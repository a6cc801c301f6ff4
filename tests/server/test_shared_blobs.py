"""Blobs shared by the coordinators of a grid: the same tests against an S3-compatible
server (moto's, started by the fixture, over HTTP) and against the grid's Redis; then two
disk caches in front of one shared store, as two coordinators use it; then real grids of
two coordinators, with and without ``--blob-store``, and a ``kill -9``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from browsergrid import Client
from browsergrid.server._blob_store import BlobRefused, DiskBlobs
from browsergrid.server._shared_blobs import (
    REDIS_BLOB_MAX,
    RedisBlobs,
    S3Blobs,
    SharedBlobs,
    SharedBlobsError,
)
from browsergrid.store import RedisStore
from tests._support import AUTH, Coordinator, Process
from tests.e2e._blob_functions import blob_digest, counting

MB = 1024 * 1024


@pytest.fixture(params=["s3", "redis"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[SharedBlobs]:
    store: RedisStore | None = None
    backend: SharedBlobs
    if request.param == "s3":
        backend = S3Blobs(request.getfixturevalue("s3_store"))
    else:
        store = RedisStore(request.getfixturevalue("redis_url"))
        await store.open()
        backend = RedisBlobs(store)
    await backend.open()
    yield backend
    await backend.close()
    if store is not None:
        await store.close()


def file_of(tmp_path: Path, content: bytes) -> tuple[str, Path]:
    path = tmp_path / hashlib.sha256(content).hexdigest()
    path.write_bytes(content)
    return path.name, path


async def chunks(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), 65536):
        yield content[start : start + 65536]


def disk(root: Path, shared: SharedBlobs, grid: RedisStore | None = None) -> DiskBlobs:
    return DiskBlobs(root, max_size=256 * MB, max_total=1024 * MB, shared=shared, grid=grid)


# --- each backend --------------------------------------------------------------------------


async def test_a_blob_put_is_there_whole(shared: SharedBlobs, tmp_path: Path) -> None:
    content = os.urandom(300_000)
    digest, path = file_of(tmp_path, content)
    assert await shared.size(digest) is None
    assert not await shared.fetch(digest, tmp_path / "nothing")
    await shared.put(digest, path)
    await shared.put(digest, path)  # again: harmless
    assert await shared.size(digest) == len(content)
    assert await shared.fetch(digest, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == content
    listed = [entry async for entry in shared.listing()]
    assert [(d, size) for d, size, _ in listed] == [(digest, len(content))]
    assert abs(listed[0][2] - time.time()) < 120  # when it was stored
    await shared.delete([digest])
    assert await shared.size(digest) is None
    assert [entry async for entry in shared.listing()] == []


# --- two coordinators' caches in front of one store ------------------------------------------


async def test_a_blob_one_coordinator_took_reaches_the_other(
    shared: SharedBlobs, tmp_path: Path
) -> None:
    first, second = disk(tmp_path / "a", shared), disk(tmp_path / "b", shared)
    await first.open()
    await second.open()
    content = os.urandom(2 * MB)
    ref, created = await first.receive(chunks(content), form="bytes")
    assert created and await shared.size(ref.sha256) == len(content)  # stored before the ack
    assert second.size(ref.sha256) is None
    await second.locate([ref.sha256, "0" * 64])  # as a submit's refs are checked
    assert second.size(ref.sha256) == len(content) and second.size("0" * 64) is None
    assert await second.cached(ref.sha256)  # as a worker's GET asks
    assert second.path(ref.sha256).read_bytes() == content
    assert not await second.cached("0" * 64)


async def test_bytes_of_another_hash_in_the_store_are_never_served(
    shared: SharedBlobs, tmp_path: Path
) -> None:
    claimed = hashlib.sha256(b"what the blob should be").hexdigest()
    _, wrong = file_of(tmp_path, b"something else")
    await shared.put(claimed, wrong)
    cache = disk(tmp_path / "cache", shared)
    await cache.open()
    with pytest.raises(SharedBlobsError, match="bytes of SHA-256"):
        await cache.cached(claimed)
    assert cache.size(claimed) is None and not cache.path(claimed).exists()


async def test_an_upload_the_store_cannot_keep_is_refused_and_not_kept(
    s3_store: str, tmp_path: Path
) -> None:
    missing = S3Blobs(s3_store.replace("s3://", "s3://no-such-bucket-") + "x")
    cache = disk(tmp_path, missing)
    with pytest.raises(BlobRefused) as refused:
        await cache.receive(chunks(b"lost"), form="bytes")
    assert (refused.value.status, refused.value.code) == (503, "blob_store_unavailable")
    assert cache.sizes == {} and not any(cache.root.glob("??/*"))


async def test_the_grids_redis_takes_small_blobs_only(redis_url: str, tmp_path: Path) -> None:
    store = RedisStore(redis_url)
    await store.open()
    try:
        cache = disk(tmp_path, RedisBlobs(store))
        await cache.open()
        with pytest.raises(BlobRefused, match="--blob-store") as refused:
            await cache.receive(chunks(b"x" * (REDIS_BLOB_MAX + 1)), form="bytes")
        assert refused.value.status == 413
    finally:
        await store.close()


async def test_prune_keeps_what_another_coordinator_used_lately(
    redis_url: str, tmp_path: Path
) -> None:
    store = RedisStore(redis_url)
    await store.open()
    try:
        shared = RedisBlobs(store)
        first = disk(tmp_path / "a", shared, grid=store)
        second = disk(tmp_path / "b", shared, grid=store)
        await first.open()
        await second.open()
        kept, _ = await first.receive(chunks(b"used on b"), form="bytes")
        gone, _ = await first.receive(chunks(b"used by nobody"), form="bytes")
        later = time.time() + 3600  # as if an hour had passed with no use on the first ...
        await second.locate([kept.sha256])
        second.touch([kept.sha256])
        second._touched[kept.sha256] = later + 60  # ... but one on the second, since
        await second.flush_uses()
        assert first.prune(later, lambda digest: False) == 2  # its own copies: a cache
        assert await first.prune_shared(later, nothing_needed) == 1
        assert await shared.size(gone.sha256) is None
        assert await shared.size(kept.sha256) == len(b"used on b")

        async def needs_kept() -> Callable[[str], bool]:
            return {kept.sha256}.__contains__

        assert await first.prune_shared(later + 7200, needs_kept) == 0  # a task needs it
        fresh = disk(tmp_path / "c", shared, grid=store)  # just started: prunes all the same
        await fresh.open()
        assert await fresh.prune_shared(later + 7200, nothing_needed) == 1
    finally:
        await store.close()


async def nothing_needed() -> Callable[[str], bool]:
    return lambda digest: False


class FailsOnce:
    """A shared store whose first put fails (a hiccup), the real one behind it."""

    def __init__(self, real: SharedBlobs) -> None:
        self.real = real
        self.where = real.where
        self.max_size = real.max_size
        self.failed = False

    async def put(self, digest: str, path: Path) -> None:
        if not self.failed:
            self.failed = True
            await asyncio.sleep(0.05)  # the other upload of the same bytes is under way
            raise SharedBlobsError("a hiccup")
        await self.real.put(digest, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_two_uploads_of_the_same_bytes_while_the_store_hiccups(
    shared: SharedBlobs, tmp_path: Path
) -> None:
    cache = disk(tmp_path, FailsOnce(shared))
    content = os.urandom(100_000)
    first, second = await asyncio.gather(
        cache.receive(chunks(content), form="bytes"),
        cache.receive(chunks(content), form="bytes"),
        return_exceptions=True,
    )
    [refused] = [r for r in (first, second) if isinstance(r, BaseException)]
    [kept] = [r for r in (first, second) if not isinstance(r, BaseException)]
    assert isinstance(refused, BlobRefused) and refused.status == 503  # the one that hiccupped
    assert kept[1]  # the other one kept it: counted, on disk, in the shared store
    digest = kept[0].sha256
    assert cache.path(digest).read_bytes() == content
    assert await shared.size(digest) == len(content)


async def test_a_blob_the_shared_store_lost_is_put_again(
    shared: SharedBlobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = disk(tmp_path, shared)
    await cache.open()
    ref = await cache.keep(b"a function's source", "json")
    await shared.delete([ref.sha256])  # pruned by another coordinator while this one slept
    monkeypatch.setattr("browsergrid.server._blob_store._RECHECK_S", 0.0)
    assert await cache.keep(b"a function's source", "json") == ref  # held here: checked there
    assert await shared.size(ref.sha256) == ref.size


async def test_many_refs_are_looked_up_a_few_at_a_time(shared: SharedBlobs, tmp_path: Path) -> None:
    cache = disk(tmp_path / "a", shared)
    await cache.open()
    refs = [await cache.keep(b"blob %d" % k, "bytes") for k in range(300)]
    other = disk(tmp_path / "b", shared)
    await other.open()
    await other.locate(ref.sha256 for ref in refs)  # 300 at once would drain a pool
    assert all(other.size(ref.sha256) == ref.size for ref in refs)


async def test_the_grids_redis_keeps_so_many_bytes_of_blobs(redis_url: str, tmp_path: Path) -> None:
    store = RedisStore(redis_url)
    await store.open()
    try:
        cache = disk(tmp_path, RedisBlobs(store, max_total=1000))
        await cache.open()
        await cache.receive(chunks(b"x" * 600), form="bytes")
        with pytest.raises(BlobRefused, match="at most 1000 bytes") as refused:
            await cache.receive(chunks(b"y" * 600), form="bytes")
        assert refused.value.status == 507
        [(digest, _, _)] = [entry async for entry in RedisBlobs(store).listing()]
        await RedisBlobs(store).delete([digest])  # room again
        await cache.receive(chunks(b"z" * 600), form="bytes")
    finally:
        await store.close()


# --- real grids ------------------------------------------------------------------------------


def function_worker(start_worker: Callable[..., Process], url: str, data: Path) -> None:
    worker = start_worker(url, "--python-functions", "--quiet", "--data-dir", str(data))
    worker.wait_for_line(lambda line: "runs the Python functions clients submit" in line)


def test_blobs_and_large_results_cross_a_grid_on_redis(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    redis_url: str,
    tmp_path: Path,
) -> None:
    first = start_coordinator("--redis", redis_url, "--no-welcome-task")
    second = start_coordinator(
        "--redis", redis_url, "--no-welcome-task", "--data-dir", str(tmp_path / "second")
    )
    function_worker(start_worker, second.ws_url, tmp_path / "worker")
    data = os.urandom(3 * MB)
    with Client(f"http://127.0.0.1:{first.port}") as client:
        ref = client.put(data)  # through the first: its worker is on the second
    url = f"http://127.0.0.1:{second.port}/blobs/{ref.sha256}"
    head = httpx.head(url, headers=AUTH, timeout=10)  # answered from the store: no download
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))
    assert not list((tmp_path / "second").glob("blobs/??/*"))
    with Client(f"http://127.0.0.1:{first.port}") as client:
        meta = client.put(list(range(100)))
        got: dict[str, Any] = client.submit(blob_digest, ref, meta).result(timeout=60)
        assert got == {"len": len(data), "sha": ref.sha256, "total": 4950}
        # a result of ~1 MB: uploaded to the second, read back through the first
        assert client.submit(counting, 250_000).result(timeout=60) == [
            i % 1000 for i in range(250_000)
        ]


def test_an_object_store_keeps_blobs_for_the_grid_when_a_coordinator_dies(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    redis_url: str,
    s3_store: str,
    tmp_path: Path,
) -> None:
    options = ("--redis", redis_url, "--blob-store", s3_store, "--no-welcome-task")
    first = start_coordinator(*options)
    second = start_coordinator(*options)
    data = os.urandom(20 * MB)  # larger than the grid's Redis would take
    with Client(f"http://127.0.0.1:{first.port}") as client:
        ref = client.put(data)
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    function_worker(start_worker, second.ws_url, tmp_path / "worker")
    with Client(f"http://127.0.0.1:{second.port}") as client:
        got = client.submit(blob_digest, ref, []).result(timeout=90)
    assert got == {"len": len(data), "sha": ref.sha256, "total": 0}
