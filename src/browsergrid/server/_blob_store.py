"""Blobs on the coordinator's disk: ``DATA_DIR/blobs/AB/ABCDEF...`` (named by SHA-256).

An upload streams to a temporary file while its SHA-256 is computed, and is renamed into
place only when it is whole, its hash is the one expected and (a client's JSON) it
parses: a blob on disk is always complete and right. Sizes are held in memory (read once at
``open``) so that a submit's refs are checked without touching the disk, and the total is
bounded (``max_total``): an upload that would pass it is refused instead of filling the
disk. ``prune`` removes blobs no live task refers to once unused for the retention period.

With a shared store (``_shared_blobs.py``: an object store, or a grid's Redis), the disk is
a cache in front of it: a new blob is written to the shared store before it is
acknowledged, a blob held only there is found (``locate``) for a submit's refs and fetched
into the cache (``cached``) on the first request for it, checked against its SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from browsergrid.protocol import Format, Ref, is_digest
from browsergrid.server._shared_blobs import SharedBlobs, SharedBlobsError, SharedBlobsFull
from browsergrid.store import RedisStore, StoreError

log = logging.getLogger("browsergrid.server")

_WRITE_BYTES = 1024 * 1024  # chunks gathered before one write in a thread
_CONCURRENT_ASKS = 16  # requests to the shared store at once (a pool of connections)
_RECHECK_S = 300.0  # a blob held here is asked about in the shared store at most this often


@dataclass(frozen=True, slots=True)
class BlobRefused(Exception):
    """An upload not kept: ``status`` and ``code`` are the HTTP answer (docs/protocol.md)."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


class DiskBlobs:
    """The blobs of one coordinator, in ``root``. Call ``open()`` before use."""

    def __init__(
        self,
        root: Path,
        *,
        max_size: int,
        max_total: int,
        shared: SharedBlobs | None = None,
        grid: RedisStore | None = None,
    ) -> None:
        self.root = root
        self.shared = shared
        self.grid = grid  # a grid's Redis: when blobs were used, for every coordinator
        self._touched: dict[str, float] = {}  # uses not yet told the grid (flush_uses)
        self.max_size = max_size
        self.max_total = max_total
        self.sizes: dict[str, int] = {}
        self.found: dict[str, int] = {}  # blobs the shared store holds and this disk not yet
        self._fetching: dict[str, asyncio.Future[bool]] = {}
        self._adding: dict[str, asyncio.Future[None]] = {}  # one add of a blob at a time
        self._shared_seen: dict[str, float] = {}  # when the shared store last had a held blob
        self._asking = asyncio.Semaphore(_CONCURRENT_ASKS)  # of the shared store, at once
        self.total = 0  # bytes of all blobs kept
        self.used: dict[str, float] = {}  # when each was last uploaded, submitted or fetched
        self.reserved = 0  # bytes of uploads under way, counted against max_total
        self._tmp = root / "tmp"

    async def open(self) -> None:
        """Create the folder, drop what interrupted uploads left, and read the sizes; check
        that the shared store answers (SharedBlobsError, saying why, when it does not)."""
        if self.shared is not None:
            await self.shared.open()
        self.sizes = await asyncio.to_thread(self._scan)
        now = time.time()
        self.used = dict.fromkeys(self.sizes, now)  # a restart renews their time
        if self.grid is not None:  # ... for every coordinator of the grid (flush_uses)
            self._touched.update(self.used)
        self.total = sum(self.sizes.values())

    def _scan(self) -> dict[str, int]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        sizes: dict[str, int] = {}
        for folder in self.root.iterdir():
            if folder == self._tmp or not folder.is_dir():
                continue
            for path in folder.iterdir():
                if is_digest(path.name):
                    sizes[path.name] = path.stat().st_size
        return sizes

    def size(self, digest: str) -> int | None:
        """The size of a blob held (here, or found in the shared store), or None."""
        size = self.sizes.get(digest)
        return self.found.get(digest) if size is None else size

    async def locate(self, digests: Iterable[str]) -> None:
        """Look for these blobs in the shared store when this disk lacks them, so that
        ``size`` knows them; SharedBlobsError when the store cannot say."""
        if self.shared is None:
            return
        shared = self.shared
        missing = [d for d in set(digests) if d not in self.sizes and d not in self.found]

        async def ask(digest: str) -> int | None:
            async with self._asking:  # a few at once: a pool of connections is shared
                return await shared.size(digest)

        sizes = await asyncio.gather(*(ask(d) for d in missing))
        for digest, size in zip(missing, sizes, strict=True):
            if size is not None:
                self.found[digest] = size

    async def cached(self, digest: str) -> bool:
        """Whether the blob is on this disk now: fetched from the shared store (and checked
        against its SHA-256) when only that holds it. BlobRefused when there is no room
        here, SharedBlobsError when the store fails or holds bytes of another hash."""
        if digest in self.sizes:
            return True
        if self.shared is None:
            return False
        fetching = self._fetching.get(digest)
        if fetching is None:  # one download however many workers ask at once
            fetching = asyncio.ensure_future(self._fetch(digest))
            self._fetching[digest] = fetching
            fetching.add_done_callback(lambda _: self._fetching.pop(digest, None))
        return await asyncio.shield(fetching)

    async def _fetch(self, digest: str) -> bool:
        assert self.shared is not None
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        reserved = 0
        try:
            async with self._asking:
                announced = self.found.get(digest)
                if announced is None:
                    announced = await self.shared.size(digest)
                if announced is None:
                    return False
                self._check_room(announced)  # before the download, which counts meanwhile
                self.reserved += announced
                reserved = announced
                if not await self.shared.fetch(digest, temp):
                    self.found.pop(digest, None)
                    return False
            size, got = await asyncio.to_thread(_size_and_hash, temp)
            if got != digest:
                raise SharedBlobsError(
                    f"the shared store {self.shared.where} holds bytes of SHA-256 {got} as "
                    f"blob {digest}: not used"
                )
            self._check_room(size, uploading=reserved)
            await self._add(digest, size, lambda: _place(temp, self.path(digest)), share=False)
            self.found.pop(digest, None)
            return True
        except OSError as exc:  # this disk failed, not the store
            raise BlobRefused(
                507, "blob_store_full", f"could not cache blob {digest} here: {exc}"
            ) from None
        finally:
            self.reserved -= reserved
            with contextlib.suppress(OSError):
                await asyncio.to_thread(temp.unlink, missing_ok=True)

    def path(self, digest: str) -> Path:
        """Where a blob is (or would be) on disk; ``digest`` must be one (``is_digest``)."""
        return self.root / digest[:2] / digest

    async def receive(
        self,
        chunks: AsyncIterator[bytes],
        *,
        form: Format,
        expected: str | None = None,
        length: int | None = None,
        check_json: bool = True,
    ) -> tuple[Ref, bool]:
        """Keep the bytes of ``chunks`` as a blob: ``(ref, created)``, ``created`` False
        when it was held already (it is then marked used now). ``expected``: the SHA-256
        the bytes must have; ``length``: the announced Content-Length (checked before
        reading); ``check_json``: parse a ``json`` blob (a trusted client's: parsing builds
        the whole value in memory). Raises BlobRefused (blob_too_large, blob_store_full,
        hash_mismatch, bad_json, truncated) and keeps nothing then, nor when ``chunks``
        raises (the sender left)."""
        if length is not None:
            self._check_room(length)
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        sha = hashlib.sha256()
        seen = 0  # bytes received, and counted in ``reserved``
        pending: list[bytes] = []
        pending_bytes = 0
        handle = await asyncio.to_thread(open, temp, "wb")
        try:
            try:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    self._check_room(seen + len(chunk), uploading=seen)
                    seen += len(chunk)
                    self.reserved += len(chunk)
                    sha.update(chunk)
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= _WRITE_BYTES:
                        await asyncio.to_thread(handle.write, b"".join(pending))
                        pending, pending_bytes = [], 0
                if pending:
                    await asyncio.to_thread(handle.write, b"".join(pending))
            finally:
                await asyncio.to_thread(handle.close)
            if length is not None and seen != length:
                raise BlobRefused(400, "truncated", f"got {seen} of {length} bytes announced")
            digest = sha.hexdigest()
            if expected is not None and digest != expected:
                raise BlobRefused(
                    400,
                    "hash_mismatch",
                    f"the body's SHA-256 is {digest}, not {expected}: nothing was kept",
                )
            if form == "json" and check_json:
                await asyncio.to_thread(_check_json, temp)
            created = await self._add(digest, seen, lambda: _place(temp, self.path(digest)))
            return Ref(digest, seen, form), created
        finally:
            self.reserved -= seen
            with contextlib.suppress(OSError):
                await asyncio.to_thread(temp.unlink, missing_ok=True)

    async def keep(self, content: bytes, form: Format) -> Ref:
        """Keep bytes the coordinator has in hand (a small blob: hashed here, written in a
        thread only when not held); BlobRefused when there is no room."""
        digest = hashlib.sha256(content).hexdigest()
        held = digest in self.sizes
        if not held:
            self._check_room(len(content))
            self.reserved += len(content)
        try:
            await self._add(digest, len(content), lambda: self._write(digest, content))
        finally:
            if not held:
                self.reserved -= len(content)
        return Ref(digest, len(content), form)

    def _use(self, digest: str, now: float) -> None:
        self.used[digest] = now
        if self.grid is not None:
            self._touched[digest] = now

    async def _add(
        self, digest: str, size: int, write: Callable[[], None], *, share: bool = True
    ) -> bool:
        """Put a checked blob in place (``write``, in a thread) unless held: whether it was
        new. One add of a blob at a time: uploads of the same bytes wait for each other. A
        blob goes to the shared store too (``share``) before it counts as held, and one held
        here is put there again if the store lost it (pruned while this coordinator slept):
        BlobRefused (503 ``blob_store_unavailable``, 507 ``blob_store_full``) when it
        cannot, and nothing new is kept."""
        self._use(digest, time.time())
        while (adding := self._adding.get(digest)) is not None:
            await asyncio.shield(adding)
        if digest in self.sizes:
            if share:
                await self._share(digest, check=True)
            return False
        self._adding[digest] = done = asyncio.get_running_loop().create_future()
        try:
            await asyncio.to_thread(write)
            if share:
                try:
                    await self._share(digest, check=False)
                except BlobRefused:
                    with contextlib.suppress(OSError):
                        await asyncio.to_thread(self.path(digest).unlink, missing_ok=True)
                    raise
            self.sizes[digest] = size
            self.total += size
            self.found.pop(digest, None)
            return True
        finally:
            del self._adding[digest]
            done.set_result(None)

    async def _share(self, digest: str, *, check: bool) -> None:
        """Make sure the shared store holds the blob (put it from this disk); ``check``:
        ask first (a blob held here, confirmed at most ``_RECHECK_S`` ago, is not asked
        about again). Records the use for the grid at once."""
        if self.shared is None:
            return
        now = time.time()
        if check and now - self._shared_seen.get(digest, 0.0) < _RECHECK_S:
            return
        try:
            if not check or await self.shared.size(digest) is None:
                await self.shared.put(digest, self.path(digest))
        except SharedBlobsFull as exc:
            raise BlobRefused(507, "blob_store_full", str(exc)) from None
        except SharedBlobsError as exc:
            raise BlobRefused(503, "blob_store_unavailable", str(exc)) from None
        self._shared_seen[digest] = now
        await self.flush_uses()  # now: a prune elsewhere must see it used

    def _write(self, digest: str, content: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        temp.write_bytes(content)
        _place(temp, self.path(digest))

    def _check_room(self, size: int, uploading: int = 0) -> None:
        """Refuse a blob of ``size`` bytes, of which ``uploading`` are already counted in
        ``reserved`` (an upload under way)."""
        shared_max = self.shared.max_size if self.shared is not None else None
        if shared_max is not None and shared_max < self.max_size and size > shared_max:
            raise BlobRefused(
                413,
                "blob_too_large",
                f"a blob kept in the grid's Redis may hold at most {shared_max} bytes: give "
                "the coordinators an object store for larger ones (--blob-store s3://...)",
            )
        if size > self.max_size:
            raise BlobRefused(
                413,
                "blob_too_large",
                f"a blob may hold at most {self.max_size} bytes (--max-blob-size)",
            )
        if self.total + self.reserved - uploading + size > self.max_total:
            raise BlobRefused(
                507,
                "blob_store_full",
                f"the coordinator keeps at most {self.max_total} bytes of blobs "
                "(--max-blob-bytes) and has no room for this one; blobs no task needs go "
                "after --retain",
            )

    def touch(self, digests: Iterable[str]) -> None:
        """Mark blobs as used now: ``prune`` keeps them for the retention period."""
        now = time.time()
        for digest in digests:
            if digest in self.sizes or digest in self.found:
                self._use(digest, now)

    async def flush_uses(self) -> None:
        """Tell the grid's Redis when this coordinator last used blobs (``P blobs:used``),
        so that no coordinator removes from the shared store a blob another one uses. Call
        it now and then (every minute) and before ``prune_shared``; a store failure is
        logged and the uses are told next time."""
        if self.grid is None or not self._touched:
            return
        touched, self._touched = self._touched, {}
        try:
            with self.grid.errors():
                await self.grid.client().zadd(f"{self.grid.prefix}blobs:used", touched, gt=True)
        except StoreError as exc:
            log.warning("could not record when blobs were used: %s", exc)
            self._touched = {**touched, **self._touched}

    async def _grid_uses(self, digests: list[str]) -> dict[str, float]:
        if self.grid is None or not digests:
            return {}
        key = f"{self.grid.prefix}blobs:used"
        found: dict[str, float] = {}
        with self.grid.errors():
            for start in range(0, len(digests), 1000):
                page = digests[start : start + 1000]
                scores = await self.grid.client().zmscore(key, page)
                found.update((d, float(t)) for d, t in zip(page, scores, strict=True) if t)
        return found

    def prune(self, unused_since: float, needed: Callable[[str], bool]) -> int:
        """Remove the blobs last used before ``unused_since`` (Unix time) for which
        ``needed(digest)`` is false; how many went. Runs on the event loop, without a
        pause, so no upload or submit of the same blob comes between the choice and the
        removal (unlinking a file is quick); a file that cannot be removed is kept."""
        gone = 0
        for digest in [d for d in self.sizes if self.used.get(d, 0.0) < unused_since]:
            if needed(digest):
                continue
            try:
                self.path(digest).unlink(missing_ok=True)
            except OSError:
                continue
            self.total -= self.sizes.pop(digest)
            if self.shared is None:  # else its time of use counts for the shared store's
                self.used.pop(digest, None)
            gone += 1
        self.found.clear()  # looked up again when a submit or a worker asks
        return gone

    async def prune_shared(
        self, unused_since: float, needs: Callable[[], Awaitable[Callable[[str], bool]]]
    ) -> int:
        """Remove from the shared store the blobs stored and last used, here and (in a grid)
        on any coordinator, before ``unused_since``, that no task needs (``needs()``: asked
        once there are such blobs, after the listing, so a task submitted meanwhile is
        seen); how many went. SharedBlobsError when the store fails."""
        if self.shared is None:
            return 0
        await self.flush_uses()
        old = [
            digest
            async for digest, _, stored_at in self.shared.listing()
            if max(stored_at, self.used.get(digest, 0.0)) < unused_since
            and digest not in self.sizes  # pruned here first: it was unused here too
        ]
        if not old:
            return 0
        try:
            elsewhere = await self._grid_uses(old)  # the other coordinators' uses
        except StoreError as exc:
            raise SharedBlobsError(f"could not read when blobs were used: {exc}") from None
        needed = await needs()
        doomed = [d for d in old if elsewhere.get(d, 0.0) < unused_since and not needed(d)]
        await self.shared.delete(doomed)
        for digest in doomed:
            self.used.pop(digest, None)
            self._shared_seen.pop(digest, None)
        if self.grid is not None and doomed:
            with contextlib.suppress(StoreError), self.grid.errors():
                await self.grid.client().zrem(f"{self.grid.prefix}blobs:used", *doomed)
        return len(doomed)


def _check_json(path: Path) -> None:
    try:
        msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise BlobRefused(400, "bad_json", f"the body is not UTF-8 JSON text: {exc}") from None


def _size_and_hash(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_WRITE_BYTES):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _place(temp: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, target)
