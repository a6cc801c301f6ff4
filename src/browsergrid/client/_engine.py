"""The client's connection engine: runs on one event loop, batches submissions into few
frames, and resolves futures as the coordinator pushes results."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from browsergrid.errors import ConfigError, ConnectionLost, SubmitError, TaskError
from browsergrid.protocol import (
    Accepted,
    CancelJob,
    Cancelled,
    ClientError,
    Done,
    SubmitOptions,
    check_arg_names,
    decode_coordinator_message,
    encode_client_message,
)

log = logging.getLogger("browsergrid.client")

DEFAULT_SERVER = "http://127.0.0.1:8765"
SERVER_ENV = "BROWSERGRID_SERVER"
_FRAME_BUDGET = 900_000  # bytes of arguments per submit frame (the limit is 1 MiB)
_encoder = msgspec.json.Encoder()


def server_urls(url: str | None = None) -> tuple[str, str]:
    """(http base URL, client WebSocket URL) for ``url`` or $BROWSERGRID_SERVER or the
    default; accepts ``http://``, ``https://``, ``ws://``, ``wss://`` or ``HOST:PORT``."""
    raw = url or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.netloc:
        raise ConfigError(f"not a coordinator URL: {raw!r} (use http://HOST:PORT)")
    secure = parts.scheme in {"https", "wss"}
    http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, "/client", "", ""))
    return http, ws


class FutureLike(Protocol):
    """What the engine needs of a future: asyncio's and concurrent.futures' both fit."""

    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


@dataclass(slots=True)
class _Item:
    op: str
    args: dict[str, Any]
    encoded: bytes
    future: FutureLike


@dataclass(slots=True)
class _Request:
    """Items of one job that go together, and who wants the job id."""

    job_key: str
    op: str
    options: SubmitOptions
    items: list[_Item]
    job_id: FutureLike | None


@dataclass(slots=True)
class _Pending:
    job_key: str
    items: list[_Item]
    job_id: FutureLike | None


class Engine:
    """One connection to a coordinator's ``/client`` endpoint, living on ``loop``.

    ``request`` may be called from any thread; everything else runs on the loop.
    """

    def __init__(self, ws_url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.ws_url = ws_url
        self.loop = loop
        self.jobs: dict[str, int] = {}  # job key -> job id, once accepted
        self._sessions: dict[SubmitOptions, str] = {}
        self._ws: ClientConnection | None = None
        self._refs = itertools.count(1)
        self._keys = itertools.count(1)
        self._buffer: deque[_Request] = deque()
        self._buffer_lock = threading.Lock()
        self._flush_scheduled = False
        self._pending: dict[int, _Pending] = {}  # ref -> submitted, not yet accepted
        self._tasks: dict[int, _Item] = {}  # task id -> accepted, not yet finished
        self._job_tasks: dict[int, set[int]] = {}
        self._receiver: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None

    def new_job_key(self) -> str:
        """A key for a new job of its own (``submit_job``, ``map``)."""
        return f"job-{next(self._keys)}"

    def session_key(self, options: SubmitOptions) -> str:
        """The key of the job that single ``submit`` calls with ``options`` go into."""
        key = self._sessions.get(options)
        if key is None:
            key = self._sessions[options] = f"session-{len(self._sessions) + 1}"
        return key

    async def connect(self) -> None:
        """Open the connection; raises ConnectionLost if the coordinator cannot be reached."""
        try:
            self._ws = await websockets.connect(
                self.ws_url, compression=None, max_size=None, open_timeout=10
            )
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise ConnectionLost(f"cannot reach the coordinator at {self.ws_url}: {exc}") from None
        self._receiver = self.loop.create_task(self._receive())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._receiver is not None:
            await asyncio.gather(self._receiver, return_exceptions=True)

    # --- submitting (any thread) ---------------------------------------------------------

    def request(
        self,
        job_key: str,
        op: str,
        args: Iterable[dict[str, Any]],
        options: SubmitOptions,
        make_future: Callable[[], FutureLike],
        job_id: FutureLike | None = None,
    ) -> list[FutureLike]:
        """Queue ``op`` once per ``args`` item in job ``job_key``; returns one future per
        item. Arguments are checked and encoded here, in the caller's thread."""
        if self._lost is not None:
            raise ConnectionLost(f"the connection to the coordinator is closed: {self._lost}")
        items = []
        for item in args:
            if not isinstance(item, dict):
                raise TypeError(f"task arguments must be a dict, not {type(item).__name__}")
            check_arg_names(item)
            try:
                encoded = _encoder.encode(item)
            except (TypeError, msgspec.EncodeError) as exc:
                raise TypeError(f"task arguments must be JSON values: {exc}") from None
            if len(encoded) > _FRAME_BUDGET:
                raise ValueError(
                    f"task arguments of {len(encoded)} bytes are over the 900 kB limit"
                )
            items.append(_Item(op, item, encoded, make_future()))
        request = _Request(job_key, op, options, items, job_id)
        with self._buffer_lock:
            self._buffer.append(request)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self.loop.call_soon_threadsafe(self._flush)
        return [item.future for item in items]

    def _flush(self) -> None:
        """Turn everything requested since the last flush into as few frames as fit."""
        with self._buffer_lock:
            requests = list(self._buffer)
            self._buffer.clear()
            self._flush_scheduled = False
        frames: list[bytes] = []
        merged: list[_Request] = []
        for request in requests:  # consecutive requests for the same job and op go together
            last = merged[-1] if merged else None
            if last and (last.job_key, last.op, last.options) == (
                request.job_key,
                request.op,
                request.options,
            ):
                last.items.extend(request.items)
                last.job_id = last.job_id or request.job_id
            else:
                merged.append(request)
        for request in merged:
            chunk: list[_Item] = []
            size = 0
            for item in request.items:
                if chunk and size + len(item.encoded) > _FRAME_BUDGET:
                    frames.append(self._frame(request, chunk))
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item.encoded) + 1
            if chunk:
                frames.append(self._frame(request, chunk))
        self.loop.create_task(self._send_all(frames))

    def _frame(self, request: _Request, items: list[_Item]) -> bytes:
        ref = next(self._refs)
        self._pending[ref] = _Pending(request.job_key, items, request.job_id)
        head = _encoder.encode(
            {
                "type": "submit",
                "ref": ref,
                "job_key": request.job_key,
                "op": request.op,
                "options": request.options,
            }
        )
        return head[:-1] + b',"args":[' + b",".join(i.encoded for i in items) + b"]}"

    async def _send_all(self, frames: list[bytes]) -> None:
        assert self._ws is not None
        try:
            for frame in frames:
                await self._ws.send(frame.decode())
        except websockets.ConnectionClosed as exc:
            self._fail_all(exc)

    async def cancel(self, job_id: int) -> None:
        """Ask the coordinator to cancel job ``job_id``."""
        assert self._ws is not None
        await self._ws.send(encode_client_message(CancelJob(job_id=job_id)).decode())

    # --- receiving (loop) ----------------------------------------------------------------

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                message = decode_coordinator_message(frame)
                match message:
                    case Accepted():
                        self._accepted(message)
                    case Done():
                        self._done(message)
                    case Cancelled():
                        self._cancelled(message)
                    case ClientError():
                        self._refused(message)
            self._fail_all(ConnectionLost("the coordinator closed the connection"))
        except websockets.ConnectionClosed as exc:
            self._fail_all(exc)

    def _accepted(self, message: Accepted) -> None:
        pending = self._pending.pop(message.ref)
        self.jobs[pending.job_key] = message.job_id
        ids = self._job_tasks.setdefault(message.job_id, set())
        for offset, item in enumerate(pending.items):
            task_id = message.first_task_id + offset
            self._tasks[task_id] = item
            ids.add(task_id)
        if pending.job_id is not None and not pending.job_id.done():
            pending.job_id.set_result(message.job_id)

    def _done(self, message: Done) -> None:
        for record in message.results:
            item = self._finished(record.job_id, record.task_id)
            if item is not None and not item.future.done():
                item.future.set_result(record.result)
        for failure in message.failures:
            item = self._finished(failure.job_id, failure.task_id)
            if item is not None and not item.future.done():
                error = TaskError(
                    item.op, item.args, failure.reasons, failure.task_id, failure.job_id
                )
                item.future.set_exception(error)

    def _finished(self, job_id: int, task_id: int) -> _Item | None:
        self._job_tasks.get(job_id, set()).discard(task_id)
        return self._tasks.pop(task_id, None)

    def _cancelled(self, message: Cancelled) -> None:
        for task_id in message.task_ids:
            item = self._finished(message.job_id, task_id)
            if item is not None:
                item.future.cancel()

    def _refused(self, message: ClientError) -> None:
        pending = self._pending.pop(message.ref, None) if message.ref is not None else None
        if pending is None:
            log.warning("coordinator says %s: %s", message.code, message.message)
            return
        error = SubmitError(message.code, message.message)
        for item in pending.items:
            if not item.future.done():
                item.future.set_exception(error)
        if pending.job_id is not None and not pending.job_id.done():
            pending.job_id.set_exception(error)

    def _fail_all(self, cause: BaseException) -> None:
        if self._lost is not None:
            return
        self._lost = cause
        error = ConnectionLost(f"lost the coordinator at {self.ws_url} ({cause}); its jobs go on")
        waiting = [item for p in self._pending.values() for item in p.items]
        waiting += list(self._tasks.values())
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(error)
        for pending in self._pending.values():
            if pending.job_id is not None and not pending.job_id.done():
                pending.job_id.set_exception(error)
        self._pending.clear()
        self._tasks.clear()
