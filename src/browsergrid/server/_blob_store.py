"""Blobs on the coordinator's disk: ``DATA_DIR/blobs/AB/ABCDEF...`` (named by SHA-256).

An upload streams to a temporary file while its SHA-256 is computed, and is renamed into
place only when it is whole, its hash is the one expected and (a client's JSON) it
parses: a blob on disk is always complete and right. Sizes are held in memory (read once at
``open``) so that a submit's refs are checked without touching the disk, and the total is
bounded (``max_total``): an upload that would pass it is refused instead of filling the
disk. ``prune`` removes blobs no live task refers to once unused for the retention period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from browsergrid.protocol import Format, Ref, is_digest

_WRITE_BYTES = 1024 * 1024  # chunks gathered before one write in a thread


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

    def __init__(self, root: Path, *, max_size: int, max_total: int) -> None:
        self.root = root
        self.max_size = max_size
        self.max_total = max_total
        self.sizes: dict[str, int] = {}
        self.total = 0  # bytes of all blobs kept
        self.used: dict[str, float] = {}  # when each was last uploaded, submitted or fetched
        self.reserved = 0  # bytes of uploads under way, counted against max_total
        self._tmp = root / "tmp"

    async def open(self) -> None:
        """Create the folder, drop what interrupted uploads left, and read the sizes."""
        self.sizes = await asyncio.to_thread(self._scan)
        self.used = dict.fromkeys(self.sizes, time.time())  # a restart renews their time
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
        """The size of a blob held, or None."""
        return self.sizes.get(digest)

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
        if digest not in self.sizes:
            self._check_room(len(content))
            self.reserved += len(content)
            try:
                await self._add(digest, len(content), lambda: self._write(digest, content))
            finally:
                self.reserved -= len(content)
        else:
            self.used[digest] = time.time()
        return Ref(digest, len(content), form)

    async def _add(self, digest: str, size: int, write: Callable[[], None]) -> bool:
        """Put a checked blob in place (``write``, in a thread) unless held: whether it was
        new. Counted once however many uploads of the same bytes race here."""
        self.used[digest] = time.time()
        if digest in self.sizes:
            return False
        await asyncio.to_thread(write)
        if digest in self.sizes:  # another upload of the same bytes finished first
            return False
        self.sizes[digest] = size
        self.total += size
        return True

    def _write(self, digest: str, content: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        temp.write_bytes(content)
        _place(temp, self.path(digest))

    def _check_room(self, size: int, uploading: int = 0) -> None:
        """Refuse a blob of ``size`` bytes, of which ``uploading`` are already counted in
        ``reserved`` (an upload under way)."""
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
            if digest in self.sizes:
                self.used[digest] = now

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
            self.used.pop(digest, None)
            gone += 1
        return gone


def _check_json(path: Path) -> None:
    try:
        msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise BlobRefused(400, "bad_json", f"the body is not UTF-8 JSON text: {exc}") from None


def _place(temp: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, target)
