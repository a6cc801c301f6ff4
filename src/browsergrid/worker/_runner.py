"""The headless Python worker: connects, introduces itself, runs tasks, reconnects (to the
next coordinator of its list, when it has several)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import shutil
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from browsergrid._console import emit
from browsergrid._tokens import auth_headers, hide_token, refusal_detail
from browsergrid._version import __version__
from browsergrid.config import WORKER_TOKEN_ENV
from browsergrid.errors import AuthError, ProtocolError
from browsergrid.ops import BUILT_IN_OPS, PYTHON_OP, FunctionError, Op, run_op
from browsergrid.protocol import (
    LOCALITY_BYTES,
    MAX_FRAME_BYTES,
    MAX_HOLDS,
    Ack,
    Cancel,
    ServerError,
    Task,
    TaskId,
    Tasks,
    Welcome,
    decode_server_message,
    encode_hand_back,
    encode_hello,
    encode_holds,
    encode_result,
    encode_results,
    encode_task_error,
)
from browsergrid.worker._backoff import Backoff
from browsergrid.worker._blobs import BlobCache, BlobError, Blobs, http_base, may_hold_refs
from browsergrid.worker._environments import (
    Environments,
    EnvironmentUnavailable,
    Prepared,
    needs_child,
)

log = logging.getLogger("browsergrid.worker")
events = logging.getLogger("browsergrid.worker.events")

AGENT = (
    f"browsergrid-python/{__version__} "
    f"(Python {platform.python_version()}; {platform.system() or 'unknown OS'})"
)
_BATCH = 64  # tasks one thread runs before reporting (when that many are waiting)

_Outcome = tuple[int | str, bool, Any, float]  # task id, succeeded, result or message, ms


def worker_ops(
    *, python_functions: bool = False, custom: Mapping[str, Op] | None = None
) -> dict[str, Op]:
    """The ops a Python worker runs and announces: the built-in ones, ``python`` (a client's
    function, run on this machine) only with ``python_functions``, and ``custom`` ones
    (``load_ops_module``). Raises ValueError for a custom op named like a built-in one."""
    ops = {name: op for name, op in BUILT_IN_OPS.items() if name != PYTHON_OP}
    if python_functions:
        ops[PYTHON_OP] = BUILT_IN_OPS[PYTHON_OP]
    for name, op in (custom or {}).items():
        if name in BUILT_IN_OPS:
            raise ValueError(f"op {name!r} is a built-in op; give the custom one another name")
        ops[name] = op
    return ops


def _quick(ops: Mapping[str, Op], tasks: list[Task]) -> bool:
    """Whether every task surely runs in well under a millisecond (its op's ``quick``)."""
    for task in tasks:
        op = ops.get(task.op)
        if op is None or op.quick is None or not op.quick(task.args):
            return False
    return True


def _run_batch(
    ops: Mapping[str, Op],
    tasks: list[Task],
    prepared: Mapping[TaskId, Prepared] | None = None,
    environments: Environments | None = None,
) -> list[_Outcome]:
    """Run tasks one after the other, in a pool thread (one thread hop for many small
    tasks) or, when they are all quick, on the event loop (no hop at all). The tasks of
    ``prepared`` run in a child process (``environments``)."""
    outcomes: list[_Outcome] = []
    for task in tasks:
        started = time.perf_counter()
        child = prepared.get(task.task_id) if prepared else None
        if child is not None and environments is not None:
            ok, value = environments.run(child)
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3) if ok else 0.0
            outcomes.append((task.task_id, ok, value, elapsed_ms))
            continue
        try:
            result = run_op(task.op, task.args, ops=ops)
        except FunctionError as exc:  # the client's function failed: its traceback, as is
            outcomes.append((task.task_id, False, str(exc), 0.0))
        except Exception as exc:
            outcomes.append((task.task_id, False, f"{type(exc).__name__}: {exc}", 0.0))
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000
            outcomes.append((task.task_id, True, result, round(elapsed_ms, 3)))
    return outcomes


class PythonWorker:
    """A worker that runs ops in ``concurrency`` threads; ``await run()`` until ``stop()``.

    It runs the built-in ops, plus ``python`` (a client's function, run on this machine with
    this process's rights) only if ``python_functions`` is true, plus the ``custom_ops``
    (``load_ops_module``); it announces those and refuses any other task with an error.

    It works with a browsergrid coordinator (hello/welcome, batches, cancel) and with a
    server that speaks only the exercise's protocol (a task on connect, no welcome). On any
    disconnect it waits per ``Backoff`` and connects again, until ``stop()`` is called.

    ``url`` is one coordinator's WebSocket URL or a list of them (coordinators of one grid).
    It connects to the first; each time a connection fails or drops, the next attempt goes
    to the next URL of the list, round robin, with the same ``worker_key``. After losing a
    connection that had been open at least ``backoff.first_s`` it tries the next coordinator
    at once; other attempts wait per ``Backoff`` (docs/protocol.md, "Failover").

    ``token`` is the coordinator's join token (``serve --worker-token``), sent as
    ``Authorization: Bearer``; a ``?token=`` in ``url`` works too. A coordinator that
    refuses it (HTTP 401) makes ``run()`` raise AuthError: a wrong token does not get right
    by trying again (nor by moving to another coordinator).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        concurrency: int = 1,
        prefetch: int = 64,
        agent: str = AGENT,
        backoff: Backoff | None = None,
        worker_key: str | None = None,
        token: str | None = None,
        python_functions: bool = False,
        custom_ops: Mapping[str, Op] | None = None,
        blob_cache: BlobCache | None = None,
        environments: Environments | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if prefetch < 0:
            raise ValueError("prefetch must be at least 0")
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("at least one coordinator URL is needed")
        self._at = 0  # index in urls of the coordinator to connect to next
        self.token = token
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.agent = agent
        self.worker_key = worker_key
        self.backoff = backoff or Backoff()
        self.ops = worker_ops(python_functions=python_functions, custom=custom_ops)
        self.blob_cache = blob_cache  # where fetched blobs are kept (None: fetched each time)
        self._own_folder: Path | None = None  # environments in a temporary folder of its own
        if environments is None and python_functions:
            self._own_folder = Path(tempfile.mkdtemp(prefix="browsergrid-environments-"))
            environments = Environments(self._own_folder)
        self.environments = environments if python_functions else None
        self.worker_id: int | None = None
        self.tasks_done = 0
        self.tasks_acknowledged = 0  # results the coordinator confirmed it stored
        self.connects = 0
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Future[None] | None = None

    @property
    def url(self) -> str:
        """The coordinator it is connected to, or will try next."""
        return self.urls[self._at]

    @property
    def shown_url(self) -> str:
        """``url`` with its token hidden, for the log."""
        return hide_token(self.url)

    def stop(self) -> None:
        """Finish soon: close the connection and do not reconnect."""
        self._stop.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close(1000, "worker stopping"))

    async def run(self) -> None:
        """Connect, work and reconnect until ``stop()``; raises AuthError if the coordinator
        refuses the join token (or its absence)."""
        custom = sorted(set(self.ops) - set(BUILT_IN_OPS))
        if custom:
            emit(log, "custom_ops", f"custom ops: {', '.join(custom)}", ops=custom)
        if PYTHON_OP in self.ops:
            emit(
                log,
                "python_functions",
                "this worker runs the Python functions clients submit (op python), with "
                "this process's rights",
            )
        try:
            async with httpx.AsyncClient(verify=ssl.create_default_context()) as http:
                await self._work(http)
        finally:
            if self.environments is not None:
                self.environments.close()
            if self._own_folder is not None:
                shutil.rmtree(self._own_folder, ignore_errors=True)
        emit(log, "stopped", "worker stopped")

    async def _work(self, http: httpx.AsyncClient) -> None:
        """Connect, work and reconnect until ``stop()`` (``http``: for blobs)."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="browsergrid-op") as pool:
            while not self._stop.is_set():
                opened_at: float | None = None
                try:
                    async with websockets.connect(
                        self.url,
                        compression=None,
                        max_size=MAX_FRAME_BYTES,
                        user_agent_header=self.agent,
                        open_timeout=10,
                        additional_headers=auth_headers(self.token),
                    ) as ws:
                        self._ws = ws
                        opened_at = loop.time()
                        self.backoff.connected(opened_at)
                        self.connects += 1
                        emit(log, "connected", f"connected to {self.shown_url}", url=self.shown_url)
                        held = (
                            await asyncio.to_thread(self.blob_cache.held, LOCALITY_BYTES)
                            if self.blob_cache is not None
                            else []
                        )
                        hello = encode_hello(
                            self.agent,
                            sorted(self.ops),
                            self.concurrency,
                            self.prefetch,
                            self.worker_key,
                            holds=held[:MAX_HOLDS],
                            environments=await self._environments_hello(),
                        )
                        await ws.send(hello)
                        await _Session(self, ws, pool, http).serve()
                        code = ws.close_code
                        emit(
                            log,
                            "closed",
                            f"connection closed: code={code} {ws.close_reason or ''}".rstrip(),
                            code=code,
                            reason=ws.close_reason,
                        )
                except websockets.InvalidStatus as exc:
                    if exc.response.status_code == 401:
                        raise self._refused(exc.response.body) from None
                    self._connect_failed(exc)
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    self._connect_failed(exc)
                finally:
                    self._ws = None
                if self._stop.is_set():
                    break
                delay = self._next_attempt(loop.time(), opened_at)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def _environments_hello(self) -> dict[str, Any] | None:
        """What ``hello`` says of environments (docs/protocol.md, "Environments"): this
        worker runs compiled wheels, and makes new environments unless told not to."""
        if self.environments is None:
            return None
        ready = await asyncio.to_thread(self.environments.ready)
        return {"native": True, "new": self.environments.new, "ready": ready[:MAX_HOLDS]}

    def _next_attempt(self, now: float, opened_at: float | None) -> float:
        """After a connection to ``url`` failed or dropped at ``now`` (``opened_at``: when it
        opened; None if it never did): move to the next URL; seconds to wait."""
        delay = self.backoff.disconnected(now)
        if len(self.urls) == 1:
            emit(log, "reconnecting", f"reconnecting in {delay:.1f} s", delay_s=delay)
            return delay
        self._at = (self._at + 1) % len(self.urls)
        if opened_at is not None and now - opened_at >= self.backoff.first_s:
            delay = 0.0  # it was up, so it died or left: the next one may be up, try it now
        emit(
            log,
            "reconnecting",
            f"reconnecting to {self.shown_url} in {delay:.1f} s",
            delay_s=delay,
            url=self.shown_url,
        )
        return delay

    def _connect_failed(self, exc: Exception) -> None:
        emit(
            log,
            "connect_failed",
            f"cannot reach {self.shown_url}: {exc}",
            level=logging.WARNING,
            url=self.shown_url,
            error=str(exc),
        )

    def _refused(self, body: bytes | bytearray) -> AuthError:
        """The error for a 401: the coordinator wants a join token."""
        detail = refusal_detail(body)
        sent = self.token is not None or "token=" in self.url
        fix = "pass the right one" if sent else "pass it with --token TOKEN"
        message = (
            f"{self.shown_url} refused this worker: {detail or 'HTTP 401'}. "
            f"The coordinator wants a join token: {fix} (or {WORKER_TOKEN_ENV}=TOKEN)"
        )
        emit(log, "unauthorized", message, level=logging.ERROR, url=self.shown_url)
        return AuthError(message)


class _Session:
    """One connection: tasks wait in ``queue``; ``concurrency`` runners take them in batches."""

    def __init__(
        self,
        worker: PythonWorker,
        ws: ClientConnection,
        pool: ThreadPoolExecutor,
        http: httpx.AsyncClient,
    ):
        self.worker = worker
        self.ws = ws
        self.pool = pool
        self.blobs = Blobs(http_base(worker.url), None, worker.blob_cache, http)
        self.queue: deque[Task] = deque()
        self.ready = asyncio.Event()
        self.welcomed = False  # a server that never welcomes knows only single results

    async def serve(self) -> None:
        runners = [asyncio.create_task(self._runner()) for _ in range(self.worker.concurrency)]
        try:
            async for frame in self.ws:
                self._on_frame(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            for runner in runners:
                runner.cancel()  # the coordinator re-issues what this connection held
            await asyncio.gather(*runners, return_exceptions=True)

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = decode_server_message(frame)
        except ProtocolError as exc:
            emit(log, "frame_ignored", f"ignored frame: {exc.message}", level=logging.WARNING)
            return
        match message:
            case Task():
                self._add([message])
            case Tasks():
                self._add(message.tasks)
            case Cancel():
                self.queue = deque(t for t in self.queue if t.task_id != message.task_id)
            case Ack():
                self.worker.tasks_acknowledged += len(message.task_ids)
            case Welcome():
                self.welcomed = True
                self.blobs.key = message.blob_key
                self.worker.worker_id = message.worker_id
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

    def _add(self, tasks: list[Task]) -> None:
        if events.isEnabledFor(logging.INFO):  # off with --quiet: no line to build per task
            for task in tasks:
                emit(
                    events,
                    "task_received",
                    f"task received task_id={task.task_id} op={task.op}",
                    task_id=task.task_id,
                    op=task.op,
                )
        self.queue.extend(tasks)
        self.ready.set()

    async def _runner(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.ready.wait()
            if not self.queue:
                self.ready.clear()
                continue
            share = max(1, min(_BATCH, len(self.queue) // self.worker.concurrency))
            batch = [self.queue.popleft() for _ in range(min(share, len(self.queue)))]
            handed_back: list[TaskId] = []
            prepared: dict[TaskId, Prepared] = {}
            batch, unresolved = await self._resolve(batch, handed_back, prepared)
            await self._tell_holds()
            if not batch:
                outcomes = []
            elif not prepared and _quick(self.worker.ops, batch):  # no thread hops: cheaper
                outcomes = _run_batch(self.worker.ops, batch)
            else:
                outcomes = await loop.run_in_executor(
                    self.pool,
                    _run_batch,
                    self.worker.ops,
                    batch,
                    prepared,
                    self.worker.environments,
                )
            await self._report(await self._upload(outcomes, handed_back) + unresolved)
            await self._hand_back(handed_back)

    async def _resolve(
        self, batch: list[Task], handed_back: list[TaskId], prepared: dict[TaskId, Prepared]
    ) -> tuple[list[Task], list[_Outcome]]:
        """The tasks with their refs replaced by the blobs' contents, and the failures of
        those whose blobs could not be had by the task's fault (the others are added to
        ``handed_back``). A function bringing its own code is made ready for a child
        process instead (added to ``prepared``)."""
        ready: list[Task] = []
        failed: list[_Outcome] = []
        environments = self.worker.environments
        for task in batch:
            if task.op == PYTHON_OP and environments is not None and needs_child(task.args):
                try:
                    prepared[task.task_id] = await environments.prepare(task.args, self.blobs)
                except (BlobError, EnvironmentUnavailable) as exc:
                    if exc.hand_back:
                        handed_back.append(task.task_id)
                    else:
                        failed.append((task.task_id, False, str(exc), 0.0))
                    continue
                except ValueError as exc:
                    failed.append((task.task_id, False, str(exc), 0.0))
                    continue
                except Exception as exc:  # this machine's fault (a disk error): not the task's
                    emit(
                        log,
                        "environment_failed",
                        f"task {task.task_id}: its environment could not be made here: {exc}",
                        level=logging.WARNING,
                        task_id=task.task_id,
                        error=str(exc),
                    )
                    handed_back.append(task.task_id)
                    continue
                ready.append(task)
                continue
            if not may_hold_refs(task.args):
                ready.append(task)
                continue
            try:
                args = await self.blobs.resolve(task.args)
            except BlobError as exc:
                if exc.hand_back:
                    handed_back.append(task.task_id)
                else:
                    failed.append((task.task_id, False, str(exc), 0.0))
                continue
            ready.append(task if args is task.args else msgspec.structs.replace(task, args=args))
        return ready, failed

    async def _tell_holds(self) -> None:
        """Tell the coordinator which large blobs this worker keeps now (docs/protocol.md,
        ``holds``), so that tasks reading them come here first."""
        news = self.blobs.holds_news()
        if news is None or not self.welcomed:
            return
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(encode_holds(*news))

    async def _upload(self, outcomes: list[_Outcome], handed_back: list[TaskId]) -> list[_Outcome]:
        """The outcomes with each large result uploaded and replaced by its ref (those whose
        upload failed by no fault of the task are added to ``handed_back``)."""
        uploaded: list[_Outcome] = []
        for task_id, ok, value, ms in outcomes:
            if ok:
                try:
                    value = await self.blobs.upload(task_id, value)
                except BlobError as exc:
                    if exc.hand_back:
                        handed_back.append(task_id)
                        continue
                    ok, value = False, str(exc)
            uploaded.append((task_id, ok, value, ms))
        return uploaded

    async def _hand_back(self, task_ids: list[TaskId]) -> None:
        """Give tasks back (docs/protocol.md, ``hand_back``): another worker may do better."""
        if not task_ids:
            return
        emit(
            log,
            "handed_back",
            f"handed back {len(task_ids)} task(s) whose blobs could not be moved",
            level=logging.WARNING,
            task_ids=task_ids,
        )
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send(encode_hand_back(task_ids))

    async def _report(self, outcomes: list[_Outcome]) -> None:
        results = [(task_id, value, ms) for task_id, ok, value, ms in outcomes if ok]
        frames = [encode_task_error(t, v) for t, ok, v, _ in outcomes if not ok]
        agent = self.worker.agent
        if self.welcomed and len(results) > 1:
            frames.insert(0, encode_results(results, agent))
        else:
            frames[:0] = [encode_result(t, v, ms, agent) for t, v, ms in results]
        try:
            for frame in frames:
                await self.ws.send(frame)
        except websockets.ConnectionClosed:
            return
        self.worker.tasks_done += len(results)
        if not events.isEnabledFor(logging.INFO):
            return
        for task_id, ok, value, ms in outcomes:
            outcome = f"result={_short(value)} duration_ms={ms}" if ok else f"error {value}"
            emit(
                events,
                "result_sent",
                f"result sent task_id={task_id} {outcome}",
                task_id=task_id,
            )


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
