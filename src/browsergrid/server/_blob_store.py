"""Blobs on the coordinator's disk: ``DATA_DIR/blobs/AB/ABCDEF...`` (named by SHA-256).

An upload streams to a temporary file while its SHA-256 is computed, and is renamed into
place only when it is whole, its hash is the one expected and (for JSON) it parses: a
blob on disk is always complete and right. Sizes are held in memory (read once at
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
        self.reserved = 0  # bytes of uploads under way, counted against max_total
        self._tmp = root / "tmp"

    async def open(self) -> None:
        """Create the folder, drop what interrupted uploads left, and read the sizes."""
        self.sizes = await asyncio.to_thread(self._scan)
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
    ) -> tuple[Ref, bool]:
        """Keep the bytes of ``chunks`` as a blob: ``(ref, created)``, ``created`` False
        when it was held already. ``expected``: the SHA-256 the bytes must have; ``length``:
        the announced Content-Length (checked before reading). Raises BlobRefused
        (blob_too_large, blob_store_full, hash_mismatch, bad_json, truncated) and keeps
        nothing then, nor when ``chunks`` raises (the sender left)."""
        if expected is not None and expected in self.sizes:  # the same bytes, by their name
            return Ref(expected, self.sizes[expected], form), False
        if length is not None:
            self._check_room(length)
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        sha = hashlib.sha256()
        seen = 0
        pending: list[bytes] = []
        pending_bytes = 0
        handle = await asyncio.to_thread(open, temp, "wb")
        try:
            try:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    seen += len(chunk)
                    self._check_room(seen)
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
            if form == "json":
                await asyncio.to_thread(_check_json, temp)
            ref = Ref(digest, seen, form)
            if digest in self.sizes:
                return ref, False
            target = self.path(digest)
            await asyncio.to_thread(_place, temp, target)
            self.sizes[digest] = seen
            self.total += seen
            return ref, True
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
                await asyncio.to_thread(self._write, digest, content)
            finally:
                self.reserved -= len(content)
            if digest not in self.sizes:  # another keep of the same bytes may have won
                self.sizes[digest] = len(content)
                self.total += len(content)
        return Ref(digest, len(content), form)

    def _write(self, digest: str, content: bytes) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        temp = self._tmp / secrets.token_hex(8)
        temp.write_bytes(content)
        _place(temp, self.path(digest))

    def _check_room(self, size: int) -> None:
        if size > self.max_size:
            raise BlobRefused(
                413,
                "blob_too_large",
                f"a blob may hold at most {self.max_size} bytes (--max-blob-size)",
            )
        if self.total + self.reserved + size > self.max_total:
            raise BlobRefused(
                507,
                "blob_store_full",
                f"the coordinator keeps at most {self.max_total} bytes of blobs "
                "(--max-blob-bytes) and has no room for this one; blobs no task needs go "
                "after --retain",
            )

    async def touch(self, digests: Iterable[str]) -> None:
        """Mark blobs as used now (``prune`` keeps them for the retention period)."""
        paths = [self.path(d) for d in set(digests) if d in self.sizes]
        if paths:
            await asyncio.to_thread(_touch, paths)

    async def prune(self, unused_since: float, needed: Callable[[str], bool]) -> int:
        """Remove the blobs last used before ``unused_since`` (Unix time) for which
        ``needed(digest)`` is false; how many went."""
        old = await asyncio.to_thread(self._unused_since, unused_since)
        gone = [digest for digest in old if not needed(digest)]
        for digest in gone:
            self.total -= self.sizes.pop(digest, 0)
        await asyncio.to_thread(_remove, [self.path(d) for d in gone])
        return len(gone)

    def _unused_since(self, cutoff: float) -> list[str]:
        old = []
        for digest in list(self.sizes):
            try:
                if self.path(digest).stat().st_mtime < cutoff:
                    old.append(digest)
            except FileNotFoundError:  # removed by hand: forget it
                self.total -= self.sizes.pop(digest, 0)
        return old


def _check_json(path: Path) -> None:
    try:
        msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise BlobRefused(400, "bad_json", f"the body is not UTF-8 JSON text: {exc}") from None


def _place(temp: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, target)


def _touch(paths: list[Path]) -> None:
    now = time.time()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (now, now))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
