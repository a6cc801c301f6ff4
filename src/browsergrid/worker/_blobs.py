"""The Python worker's blobs (docs/protocol.md, "Blobs"): the contents a task's refs name,
fetched from the coordinator and kept on disk; a large result uploaded as a blob.

``BlobCache`` keeps blobs in a folder of the worker's data directory, at most ``max_bytes``,
least recently used first out, and checks each one's SHA-256 whenever it reads it back.
``Blobs`` is one connection's access: the coordinator's HTTP base and ``blob_key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from browsergrid.config import DEFAULT_BLOB_CACHE_BYTES
from browsergrid.ops import substitute_blobs
from browsergrid.protocol import LOCALITY_BYTES, MAX_HOLDS, Ref, is_digest, refs_in

INLINE_RESULT_BYTES: Final = 65536
"""A result whose JSON is longer goes as a blob (the page's threshold too)."""
_TIMEOUT = httpx.Timeout(30, read=300, write=300)
_MEMORY_BYTES = 128 * 1024 * 1024  # blobs kept in memory too, the last used, this much at most


class BlobError(Exception):
    """A blob could not be had (or a result not uploaded). ``hand_back``: not the task's
    fault (the network, this connection's key, the coordinator's trouble): the worker hands
    the task back, for another worker, rather than fail it; else the task fails with this
    message (no such blob, a wrong hash, a result too large)."""

    def __init__(self, message: str, *, hand_back: bool = False) -> None:
        super().__init__(message)
        self.hand_back = hand_back


class BlobCache:
    """Blobs kept on disk in ``folder`` (created when needed), ``max_bytes`` at most."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_BLOB_CACHE_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def get(self, digest: str) -> bytes | None:
        """The blob's bytes when kept and still right (a bad copy is removed); blocking."""
        path = self.folder / digest
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go
        return data

    def put(self, digest: str, data: bytes) -> tuple[bool, list[str]]:
        """Keep a blob (checked by the caller), making room by removing the least recently
        used; a blob over ``max_bytes`` is not kept. Blocking; a full disk keeps nothing.
        Returns whether it was kept, and the blobs removed to make room."""
        removed: list[str] = []
        if len(data) > self.max_bytes:
            return False, removed
        temp = self.folder / f".{secrets.token_hex(8)}.part"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            removed = self._make_room(len(data))
            temp.write_bytes(data)
            os.replace(temp, self.folder / digest)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
            return False, removed
        return True, removed

    def held(self, min_size: int = 0) -> list[str]:
        """The blobs kept of ``min_size`` bytes or more, the most recently used first."""
        found = []
        with contextlib.suppress(OSError):
            for path in self.folder.iterdir():
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    if is_digest(path.name) and stat.st_size >= min_size:
                        found.append((stat.st_mtime, path.name))
        return [name for _, name in sorted(found, reverse=True)]

    def _make_room(self, size: int) -> list[str]:
        kept = []
        for path in self.folder.iterdir():
            with contextlib.suppress(OSError):
                stat = path.stat()
                kept.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in kept)
        removed = []
        for _, old_size, path in sorted(kept):
            if total + size <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= old_size
                if is_digest(path.name):  # not a leftover part of an interrupted write
                    removed.append(path.name)
        return removed


def http_base(ws_url: str) -> str:
    """The coordinator's HTTP origin for a WebSocket URL: ``ws://H:P/ws?token=T`` ->
    ``http://H:P``."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


class Blobs:
    """One connection's blobs: fetch what tasks refer to, upload large results."""

    def __init__(
        self, base: str, key: str | None, cache: BlobCache | None, http: httpx.AsyncClient
    ) -> None:
        self.base = base
        self.key = key
        self.cache = cache
        self.http = http
        self._loading: dict[str, asyncio.Future[bytes]] = {}
        # the blobs used last (a function's source, a job's input) in memory too: a task then
        # costs no disk read and no hashing; bytes are immutable, so they are shared as is
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_bytes = 0
        self.added: dict[str, None] = {}  # large blobs kept since the coordinator was told
        self.dropped: dict[str, None] = {}  # ... and those removed (see ``holds_news``)

    async def resolve(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` with each ref replaced by its content; BlobError when one cannot be had."""
        try:
            refs = {ref.sha256: ref for ref in refs_in(args)}
        except ValueError as exc:
            raise BlobError(str(exc)) from None
        contents = {digest: await self._content(ref) for digest, ref in refs.items()}
        try:
            resolved: dict[str, Any] = substitute_blobs(args, contents)
        except (ValueError, RecursionError) as exc:  # a json ref to bytes that are not JSON
            raise BlobError(f"a blob of format json does not hold JSON: {exc}") from None
        return resolved

    async def content(self, ref: Ref) -> bytes:
        """The blob's bytes, checked against its SHA-256: from memory, the cache, or the
        coordinator; BlobError when it cannot be had."""
        return await self._content(ref)

    async def _content(self, ref: Ref) -> bytes:
        data = self._memory.get(ref.sha256)
        if data is None:
            data = await self._shared_load(ref)
            self._remember(ref.sha256, data)
        else:
            self._memory.move_to_end(ref.sha256)
        if len(data) != ref.size:
            raise BlobError(f"blob {ref.sha256[:12]}: it has {len(data)} bytes, not {ref.size}")
        return data

    def _remember(self, digest: str, data: bytes) -> None:
        if len(data) > _MEMORY_BYTES or digest in self._memory:
            return
        self._memory[digest] = data
        self._memory_bytes += len(data)
        while self._memory_bytes > _MEMORY_BYTES:
            self._memory_bytes -= len(self._memory.popitem(last=False)[1])

    async def _shared_load(self, ref: Ref) -> bytes:
        loading = self._loading.get(ref.sha256)
        if loading is None:  # tasks needing one blob share its fetch
            loading = asyncio.ensure_future(self._load(ref))
            self._loading[ref.sha256] = loading
            loading.add_done_callback(lambda _: self._loading.pop(ref.sha256, None))
        return await asyncio.shield(loading)

    async def _load(self, ref: Ref) -> bytes:
        if self.cache is not None:
            kept = await asyncio.to_thread(self.cache.get, ref.sha256)
            if kept is not None:
                return kept
        try:
            response = await self.http.get(
                f"{self.base}/blobs/{ref.sha256}",
                params={"key": self.key} if self.key else None,
                timeout=_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise BlobError(f"blob {ref.sha256[:12]}: GET failed: {exc}", hand_back=True) from None
        if response.status_code != 200:  # 404: no such blob, wherever the task goes
            raise BlobError(
                f"blob {ref.sha256[:12]}: GET answered {_problem(response)}",
                hand_back=response.status_code != 404,
            )
        data = response.content
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if digest != ref.sha256:
            raise BlobError(
                f"blob {ref.sha256[:12]}: fetched {len(data)} bytes whose SHA-256 is "
                f"{digest[:12]}, not the ref's"
            )
        if self.cache is not None:
            stored, removed = await asyncio.to_thread(self.cache.put, ref.sha256, data)
            for digest in removed:  # the last word on each blob is the one that counts
                self.added.pop(digest, None)
                self.dropped[digest] = None
            if stored and ref.size >= LOCALITY_BYTES:
                self.dropped.pop(ref.sha256, None)
                self.added[ref.sha256] = None
        return data

    def holds_news(self) -> tuple[list[str], list[str]] | None:
        """What the coordinator should hear of the blobs kept since it last did (``holds``:
        added, dropped), or None when nothing changed; the news are then cleared."""
        if not self.added and not self.dropped:
            return None
        news = list(self.added)[-MAX_HOLDS:], list(self.dropped)[-MAX_HOLDS:]
        self.added, self.dropped = {}, {}
        return news

    async def upload(self, task_id: int | str, result: Any) -> Any:
        """``result``, or the ref of the blob it was uploaded as when its JSON passes
        ``INLINE_RESULT_BYTES``; BlobError when the upload fails."""
        if self.key is None or isinstance(result, int | float | bool) or result is None:
            return result
        if isinstance(result, str) and len(result) * 3 <= INLINE_RESULT_BYTES:
            return result
        text = msgspec.json.encode(result)
        if len(text) <= INLINE_RESULT_BYTES:
            return result
        digest = hashlib.sha256(text).hexdigest()
        try:
            response = await self.http.put(
                f"{self.base}/blobs/{digest}",
                params={"key": self.key, "task_id": str(task_id)},
                content=text,
                headers={"Content-Type": "application/octet-stream"},
                timeout=_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise BlobError(
                f"the result ({len(text)} bytes) could not be uploaded: {exc}", hand_back=True
            ) from None
        if response.status_code not in (200, 201):  # too large or no room: wherever it runs
            raise BlobError(
                f"the result ({len(text)} bytes) could not be uploaded: PUT answered "
                f"{_problem(response)}",
                hand_back=response.status_code not in (413, 507),
            )
        return Ref(digest, len(text), "json").to_json()


def may_hold_refs(args: Mapping[str, Any]) -> bool:
    """Whether a task's arguments may hold a ref: they have an object or an array to look
    into (a cheap test, so that tasks of plain numbers are not walked)."""
    return any(isinstance(value, dict | list) for value in args.values())


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return f"HTTP {response.status_code} {body.get('code', '')}: {body.get('detail', '')}"
    return f"HTTP {response.status_code}"


def cache_folder(data_dir: Path) -> Path:
    """Where a worker with data directory ``data_dir`` keeps blobs."""
    return data_dir / "blobs"
