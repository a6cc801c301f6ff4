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
_CHUNK: Final = 1024 * 1024


class SharedBlobsError(Exception):
    """The shared store could not be reached or refused a request; the message says which
    and why."""


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


def shared_blobs(url: str | None, store: object) -> SharedBlobs | None:
    """The shared store ``serve`` was given (``--blob-store URL``), else the grid's Redis
    when the store is one, else None (blobs stay on this coordinator's disk)."""
    if url:
        return S3Blobs(url)
    if isinstance(store, RedisStore):
        return RedisBlobs(store)
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
            with into.open("wb") as handle:
                async for chunk in got.stream(min_chunk_size=_CHUNK):
                    await asyncio.to_thread(handle.write, chunk)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise SharedBlobsError(
                f"could not read blob {digest} from {self.where}: {exc}"
            ) from None
        return True

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


class RedisBlobs:
    """Small blobs (``REDIS_BLOB_MAX``) in the grid's Redis: ``P blob:D`` holds the bytes
    of blob D, ``P blobs`` (a sorted set) each blob's SHA-256 scored by when it was
    stored."""

    where = "redis"
    max_size: int | None = REDIS_BLOB_MAX

    def __init__(self, store: RedisStore) -> None:
        self.store = store

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
        content = await asyncio.to_thread(path.read_bytes)
        with self._errors():
            client = self.store.client()
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(digest), content)
                pipe.zadd(self._index, {digest: time.time()}, nx=True)
                await pipe.execute()

    async def size(self, digest: str) -> int | None:
        with self._errors():
            size = await self.store.client().strlen(self._key(digest))
        if not size and not await self._exists(digest):
            return None
        return int(size)

    async def _exists(self, digest: str) -> bool:
        with self._errors():
            return bool(await self.store.client().exists(self._key(digest)))

    async def fetch(self, digest: str, into: Path) -> bool:
        with self._errors():
            content = cast(bytes | None, await self.store.client().get(self._key(digest)))
        if content is None:
            return False
        await asyncio.to_thread(into.write_bytes, content)
        return True

    async def delete(self, digests: Sequence[str]) -> None:
        if digests:
            with self._errors():
                client = self.store.client()
                await client.delete(*[self._key(d) for d in digests])
                await client.zrem(self._index, *digests)

    async def listing(self) -> AsyncIterator[tuple[str, int, float]]:
        with self._errors():
            entries = cast(
                list[tuple[bytes, float]],
                await self.store.client().zrange(self._index, 0, -1, withscores=True),
            )
        for member, stored_at in entries:
            digest = member.decode() if isinstance(member, bytes) else str(member)
            size = await self.size(digest)
            if size is not None:
                yield digest, size, float(stored_at)
