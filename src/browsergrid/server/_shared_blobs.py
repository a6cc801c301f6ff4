"""Where the blobs of a grid live, for every coordinator: an S3-compatible object store
(``serve --blob-store s3://BUCKET/PREFIX``: AWS S3, MinIO, R2, ...), or, for a grid on
Redis without one, the grid's Redis itself (small blobs only: ``REDIS_BLOB_MAX``).

Each coordinator keeps its own copies on disk as a cache (``DiskBlobs``): an upload is
written there and to the shared store before it is acknowledged, so a coordinator's death
loses no blob; a blob another coordinator took is fetched from the shared store, checked
against its SHA-256, and cached on the first request for it.

Both backends implement ``SharedBlobs``; ``tests/server/test_shared_blobs.py`` runs the
same tests against each (S3 through moto's standalone server).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, cast
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from browsergrid.errors import ConfigError
from browsergrid.protocol import is_digest
from browsergrid.store import RedisStore, StoreError

if TYPE_CHECKING:
    from obstore.store import RetryConfig

REDIS_BLOB_MAX: Final = 8 * 1024 * 1024
"""The largest blob a grid keeps in its Redis (without an object store): Redis holds its
data in memory, so large data belongs in an object store."""
REDIS_BLOBS_TOTAL: Final = 1024**3
"""All the blobs a grid keeps in its Redis, at most (less when ``--max-blob-bytes`` says
so): untrusted workers upload results there, and the grid's jobs share that memory."""
_CHUNK: Final = 1024 * 1024


class SharedBlobsError(Exception):
    """The shared store could not be reached or refused a request; the message says which
    and why."""


class SharedBlobsFull(SharedBlobsError):
    """The shared store has no room for one more blob (the grid's Redis: ``max_total``)."""


class SharedBlobs(Protocol):
    """Blobs kept for every coordinator of a grid, by SHA-256 (checked by the caller)."""

    where: str  # for the log and errors: "s3://bucket/prefix" or "redis"
    max_size: int | None  # the largest blob it takes (None: only the coordinator's limit)

    async def open(self) -> None:
        """Check that the store answers; SharedBlobsError, saying why, when it does not."""

    async def close(self) -> None: ...

    async def put(self, digest: str, path: Path) -> None:
        """Keep the file at ``path`` as blob ``digest`` (again is harmless)."""

    async def size(self, digest: str) -> int | None:
        """The size of the blob, or None when it holds none."""

    async def fetch(self, digest: str, into: Path) -> bool:
        """Write the blob's bytes to the file ``into``; False when it holds none."""

    async def delete(self, digests: Sequence[str]) -> None: ...

    def listing(self) -> AsyncIterator[tuple[str, int, float]]:
        """Every blob held: (SHA-256, size, Unix time it was stored)."""


def shared_blobs(url: str | None, store: object, max_total: int) -> SharedBlobs | None:
    """The shared store ``serve`` was given (``--blob-store URL``), else the grid's Redis
    when the store is one (at most ``max_total`` bytes there, and ``REDIS_BLOBS_TOTAL``),
    else None (blobs stay on this coordinator's disk)."""
    if url:
        return S3Blobs(url)
    if isinstance(store, RedisStore):
        return RedisBlobs(store, min(max_total, REDIS_BLOBS_TOTAL))
    return None


class S3Blobs:
    """Blobs in an S3-compatible bucket, as ``PREFIX/AB/ABCDEF...``, through obstore. The
    endpoint, region and credentials come from the standard settings
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``; ``AWS_ALLOW_HTTP=true`` for an
    endpoint without TLS)."""

    max_size: int | None = None

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"--blob-store takes s3://BUCKET[/PREFIX], not {url!r}")
        self.where = url
        prefix = parts.path.strip("/")
        retry: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=15)}
        try:
            self._store = S3Store(parts.netloc, prefix=prefix or None, retry_config=retry)
        except Exception as exc:  # obstore raises its own for a bad setting
            raise ConfigError(f"--blob-store {url}: {exc}") from None

    @staticmethod
    def _key(digest: str) -> str:
        return f"{digest[:2]}/{digest}"

    def _failed(self, what: str, exc: Exception) -> SharedBlobsError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return SharedBlobsError(f"{what} ({self.where}): {first}")

    async def open(self) -> None:
        try:
            async for _ in obstore.list(self._store, chunk_size=1):
                break
        except Exception as exc:
            raise self._failed("the blob store does not answer", exc) from None

    async def close(self) -> None:
        pass

    async def put(self, digest: str, path: Path) -> None:
        try:
            await obstore.put_async(self._store, self._key(digest), path)
        except Exception as exc:
            raise SharedBlobsError(
                f"could not store blob {digest} in {self.where}: {exc}"
            ) from None

    async def size(self, digest: str) -> int | None:
        try:
            meta = await obstore.head_async(self._store, self._key(digest))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise SharedBlobsError(
                f"could not look up blob {digest} in {self.where}: {exc}"
            ) from None
        return int(meta["size"])

    async def fetch(self, digest: str, into: Path) -> bool:
        try:
            got = await obstore.get_async(self._store, self._key(digest))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._failed(f"could not read blob {digest}", exc) from None
        chunks = got.stream(min_chunk_size=_CHUNK)
        with into.open("wb") as handle:  # an OSError here is this disk's, not the store's
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return True
                except Exception as exc:
                    raise self._failed(f"could not read blob {digest}", exc) from None
                await asyncio.to_thread(handle.write, chunk)

    async def delete(self, digests: Sequence[str]) -> None:
        if digests:
            try:
                await obstore.delete_async(self._store, [self._key(d) for d in digests])
            except Exception as exc:
                raise self._failed("could not remove blobs", exc) from None

    async def listing(self) -> AsyncIterator[tuple[str, int, float]]:
        try:
            async for batch in obstore.list(self._store):
                for meta in batch:
                    name = str(meta["path"]).rsplit("/", 1)[-1]
                    if is_digest(name):
                        yield name, int(meta["size"]), meta["last_modified"].timestamp()
        except Exception as exc:
            raise self._failed("could not list the blobs", exc) from None


_REDIS_PUT: Final = """
-- KEYS: the blob's key, the index, the byte count; ARGV: bytes, SHA-256, now, most bytes
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local size = string.len(ARGV[1])
if redis.call('INCRBY', KEYS[3], size) > tonumber(ARGV[4]) then
  redis.call('DECRBY', KEYS[3], size)
  return -1
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
return 1
"""
_REDIS_DELETE: Final = """
-- KEYS: the index, the byte count; ARGV: prefix, then SHA-256s
local freed = 0
for i = 2, #ARGV do
  local key = ARGV[1] .. 'blob:' .. ARGV[i]
  freed = freed + redis.call('STRLEN', key)
  redis.call('UNLINK', key)
  redis.call('ZREM', KEYS[1], ARGV[i])
end
if freed > 0 then redis.call('DECRBY', KEYS[2], freed) end
return freed
"""


class RedisBlobs:
    """Small blobs (``REDIS_BLOB_MAX`` each, ``max_total`` in all) in the grid's Redis:
    ``P blob:D`` holds the bytes of blob D, ``P blobs`` (a sorted set) each blob's SHA-256
    scored by when it was stored, ``P blobs:bytes`` their total size."""

    where = "redis"
    max_size: int | None = REDIS_BLOB_MAX

    def __init__(self, store: RedisStore, max_total: int = REDIS_BLOBS_TOTAL) -> None:
        self.store = store
        self.max_total = max_total

    def _key(self, digest: str) -> str:
        return f"{self.store.prefix}blob:{digest}"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            with self.store.errors():
                yield
        except StoreError as exc:
            raise SharedBlobsError(f"the grid's Redis, where its blobs are: {exc}") from None

    @property
    def _index(self) -> str:
        return f"{self.store.prefix}blobs"

    async def open(self) -> None:
        pass  # the store was opened first

    async def close(self) -> None:
        pass

    async def put(self, digest: str, path: Path) -> None:
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise SharedBlobsError(f"could not read blob {digest} to store it: {exc}") from None
        keys = [self._key(digest), self._index, f"{self._index}:bytes"]
        with self._errors():
            stored = await self.store.client().eval(
                _REDIS_PUT, 3, *keys, content, digest, time.time(), self.max_total
            )
        if stored == -1:
            raise SharedBlobsFull(
                f"the grid's Redis keeps at most {self.max_total} bytes of blobs and has no "
                "room for this one; blobs no task needs go after --retain (an object store, "
                "--blob-store s3://..., takes more)"
            )

    async def size(self, digest: str) -> int | None:
        with self._errors():
            client = self.store.client()
            async with client.pipeline(transaction=True) as pipe:
                pipe.exists(self._key(digest))
                pipe.strlen(self._key(digest))
                exists, size = await pipe.execute()
        return int(size) if exists else None

    async def fetch(self, digest: str, into: Path) -> bool:
        with self._errors():
            content = cast(bytes | None, await self.store.client().get(self._key(digest)))
        if content is None:
            return False
        await asyncio.to_thread(into.write_bytes, content)
        return True

    async def delete(self, digests: Sequence[str]) -> None:
        for start in range(0, len(digests), 1000):
            page = digests[start : start + 1000]
            with self._errors():
                await self.store.client().eval(
                    _REDIS_DELETE, 2, self._index, f"{self._index}:bytes", self.store.prefix, *page
                )

    async def listing(self) -> AsyncIterator[tuple[str, int, float]]:
        with self._errors():
            client = self.store.client()
            entries = cast(
                list[tuple[bytes, float]],
                await client.zrange(self._index, 0, -1, withscores=True),
            )
        for start in range(0, len(entries), 1000):
            page = entries[start : start + 1000]
            digests = [m.decode() if isinstance(m, bytes) else str(m) for m, _ in page]
            with self._errors():
                async with client.pipeline(transaction=False) as pipe:
                    for digest in digests:
                        pipe.strlen(self._key(digest))
                    sizes = await pipe.execute()
            for digest, (_, stored_at), size in zip(digests, page, sizes, strict=True):
                yield digest, int(size), float(stored_at)
