"""A swarm of lightweight fake workers in one process, for tests and benchmarks at scale.

    async with Swarm("ws://127.0.0.1:8765/ws", 1_000) as swarm:
        ...  # 1,000 introduced workers answer every task
        counts = swarm.counts()  # tasks done per worker, welcome tasks included

Each fake worker is one WebSocket connection (``websockets``' asyncio client, no
compression, no proxy) that speaks protocol 1 as docs/protocol.md has it: it sends ``hello``
(a browser's User-Agent, mixed over a few browsers and systems; ops ``repeat_multiply``;
concurrency 1), answers the welcome task and every ``task``/``tasks`` frame with
``result``/``results``, and ignores ``ack``, ``cancel`` and anything else. Workers connect in
parallel batches, so a thousand are in within a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from browsergrid.ops import run_op

# Real User-Agent strings: mostly Chrome, a few other browsers and systems, so that the
# dashboard's browser/OS summary has something to show.
AGENTS: Final[tuple[str, ...]] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class FakeWorker:
    """One connection of the swarm."""

    def __init__(self, swarm: Swarm, index: int, key: str, agent: str) -> None:
        self.swarm = swarm
        self.index = index
        self.key = key
        self.agent = agent
        self.worker_id: int | None = None  # from welcome
        self.done = 0  # tasks answered, the welcome task included
        self.welcomed = asyncio.Event()
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self, url: str, prefetch: int) -> None:
        self.ws = await connect(
            url,
            compression=None,
            proxy=None,
            ping_interval=None,  # the coordinator pings; we answer
            open_timeout=60,
            close_timeout=5,
        )
        hello = {
            "type": "hello",
            "protocol": 1,
            "agent": self.agent,
            "ops": ["repeat_multiply"],
            "concurrency": 1,
            "prefetch": prefetch,
            "worker_key": self.key,
        }
        await self.ws.send(_encode(hello), text=True)
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                frame: dict[str, Any] = _decode(message)
                kind = frame.get("type")
                if kind == "task":
                    await ws.send(_encode(_answer(frame)), text=True)
                    self._count(1)
                elif kind == "tasks":
                    results = [_run(task) for task in frame["tasks"]]
                    await ws.send(_encode({"type": "results", "results": results}), text=True)
                    self._count(len(results))
                elif kind == "welcome":
                    self.worker_id = frame["worker_id"]
                    self.welcomed.set()
        except ConnectionClosed:
            pass

    def _count(self, n: int) -> None:
        self.done += n
        self.swarm.add(n)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


def _answer(task: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` frame for one ``task`` frame, or its ``error`` frame."""
    try:
        return {"type": "result", **_run(task)}
    except ValueError as exc:
        return {"type": "error", "task_id": task["task_id"], "message": str(exc)}


def _run(task: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    result = run_op(task["op"], task)
    return {
        "task_id": task["task_id"],
        "result": result,
        "duration_ms": round((time.perf_counter() - started) * 1000, 4),
    }


class Swarm:
    """``n`` fake workers connected to the coordinator at ``url`` (its ``/ws``)."""

    def __init__(
        self,
        url: str,
        n: int,
        *,
        batch: int = 100,
        prefetch: int = 1,
        agents: Sequence[str] = AGENTS,
    ) -> None:
        self.url = url
        self.batch = batch
        self.prefetch = prefetch
        self.workers: list[FakeWorker] = []
        self.total = 0  # tasks answered by all workers, welcome tasks included
        self._target = 0
        self._reached = asyncio.Event()
        self._initial = n
        self._agents = itertools.cycle(agents)
        self._prefix = f"swarm-{secrets.token_hex(3)}-"  # keys unique across swarms

    async def __aenter__(self) -> Swarm:
        try:
            await self.grow(self._initial)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def grow(self, n: int, *, batch: int | None = None) -> list[FakeWorker]:
        """Connect ``n`` more workers, ``batch`` at a time (default: the swarm's); returns
        them once all are welcomed. Fails after 60 s."""
        batch = batch or self.batch
        start = len(self.workers)
        new = [
            FakeWorker(self, i, f"{self._prefix}{i}", next(self._agents))
            for i in range(start, start + n)
        ]
        self.workers += new
        async with asyncio.timeout(60):
            for lo in range(0, n, batch):
                await asyncio.gather(
                    *(w.start(self.url, self.prefetch) for w in new[lo : lo + batch])
                )
            await asyncio.gather(*(w.welcomed.wait() for w in new))
        return new

    def counts(self) -> list[int]:
        """Tasks done so far, per worker (in connection order)."""
        return [w.done for w in self.workers]

    def add(self, n: int) -> None:
        self.total += n
        if self.total >= self._target:
            self._reached.set()

    async def wait_total(self, total: int) -> None:
        """Wait until the swarm has answered ``total`` tasks in all (wrap it in
        ``asyncio.timeout``)."""
        while self.total < total:
            self._target = total
            self._reached.clear()
            await self._reached.wait()

    async def close(self) -> None:
        """Close every connection, ``batch`` at a time."""
        for lo in range(0, len(self.workers), self.batch):
            await asyncio.gather(
                *(w.close() for w in self.workers[lo : lo + self.batch]), return_exceptions=True
            )
