"""The headless Python worker: connects, introduces itself, runs tasks, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from browsergrid._console import emit
from browsergrid._version import __version__
from browsergrid.errors import ProtocolError
from browsergrid.ops import OPS, run_op
from browsergrid.protocol import (
    MAX_FRAME_BYTES,
    ServerError,
    Task,
    Welcome,
    decode_server_message,
    encode_hello,
    encode_result,
    encode_task_error,
)
from browsergrid.worker._backoff import Backoff

log = logging.getLogger("browsergrid.worker")
events = logging.getLogger("browsergrid.worker.events")

AGENT = f"browsergrid-python/{__version__}"


class PythonWorker:
    """A worker that runs built-in ops in threads; ``await run()`` until ``stop()``.

    It works with a browsergrid coordinator (hello/welcome) and with a server that speaks
    only the exercise's protocol (a task on connect, no welcome). On any disconnect it
    waits per ``Backoff`` and connects again, until ``stop()`` is called.
    """

    def __init__(
        self, url: str, *, concurrency: int = 1, agent: str = AGENT, backoff: Backoff | None = None
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url = url
        self.concurrency = concurrency
        self.agent = agent
        self.backoff = backoff or Backoff()
        self.worker_id: int | None = None
        self.tasks_done = 0
        self.connects = 0
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Finish soon: close the connection and do not reconnect."""
        self._stop.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close(1000, "worker stopping"))

    async def run(self) -> None:
        """Connect, work and reconnect until ``stop()``."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="browsergrid-op") as pool:
            while not self._stop.is_set():
                try:
                    async with websockets.connect(
                        self.url,
                        compression=None,
                        max_size=MAX_FRAME_BYTES,
                        user_agent_header=self.agent,
                        open_timeout=10,
                    ) as ws:
                        self._ws = ws
                        self.backoff.connected(loop.time())
                        self.connects += 1
                        emit(log, "connected", f"connected to {self.url}", url=self.url)
                        await ws.send(encode_hello(self.agent, sorted(OPS), self.concurrency))
                        await self._serve(ws, pool)
                        code = ws.close_code
                        emit(
                            log,
                            "closed",
                            f"connection closed: code={code} {ws.close_reason or ''}".rstrip(),
                            code=code,
                            reason=ws.close_reason,
                        )
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    emit(
                        log,
                        "connect_failed",
                        f"cannot reach {self.url}: {exc}",
                        level=logging.WARNING,
                        url=self.url,
                        error=str(exc),
                    )
                finally:
                    self._ws = None
                if self._stop.is_set():
                    break
                delay = self.backoff.disconnected(loop.time())
                emit(log, "reconnecting", f"reconnecting in {delay:.1f} s", delay_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        emit(log, "stopped", "worker stopped")

    async def _serve(self, ws: ClientConnection, pool: ThreadPoolExecutor) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            async for frame in ws:
                try:
                    message = decode_server_message(frame)
                except ProtocolError as exc:
                    emit(
                        log, "frame_ignored", f"ignored frame: {exc.message}", level=logging.WARNING
                    )
                    continue
                match message:
                    case Task():
                        task = asyncio.create_task(self._run_task(ws, message, pool))
                        running.add(task)
                        task.add_done_callback(running.discard)
                    case Welcome():
                        self.worker_id = message.worker_id
                        emit(
                            log,
                            "welcome",
                            f"welcomed as worker #{message.worker_id}",
                            worker_id=message.worker_id,
                            server=message.server,
                        )
                    case ServerError():
                        emit(
                            log,
                            "server_error",
                            f"coordinator says {message.code}: {message.message}",
                            level=logging.WARNING,
                            code=message.code,
                            detail=message.message,
                        )
        except websockets.ConnectionClosed:
            pass
        finally:
            for task in running:
                task.cancel()  # the coordinator re-issues what this connection held

    async def _run_task(self, ws: ClientConnection, task: Task, pool: ThreadPoolExecutor) -> None:
        emit(
            events,
            "task_received",
            f"task received task_id={task.task_id} op={task.op}",
            task_id=task.task_id,
            op=task.op,
        )
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result: Any = await loop.run_in_executor(pool, run_op, task.op, task.args)
        except Exception as exc:
            frame = encode_task_error(task.task_id, f"{type(exc).__name__}: {exc}")
            outcome = f"error {type(exc).__name__}: {exc}"
            succeeded = False
        else:
            duration_ms = (time.perf_counter() - started) * 1000
            frame = encode_result(task.task_id, result, round(duration_ms, 3), self.agent)
            outcome = f"result={result!r} duration_ms={duration_ms:.3f}"
            succeeded = True
        try:
            await ws.send(frame)
        except websockets.ConnectionClosed:
            return
        self.tasks_done += succeeded
        emit(
            events,
            "result_sent",
            f"result sent task_id={task.task_id} {outcome}",
            task_id=task.task_id,
        )
