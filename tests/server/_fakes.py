"""In-memory stand-ins for the connections of an in-process ``Coordinator``: a ``Sink``
that keeps the frames sent to a peer, and ``join`` and ``leave`` for a fake browser worker."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from browsergrid.core import WorkerIntroduced, WorkerJoined, WorkerLeft
from browsergrid.protocol import PROTOCOL_VERSION, Hello, Limits, WorkerConnection
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import WorkerPeer
from browsergrid.server._workers import receive

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0 Safari/537.36"


class Sink:
    """A peer's socket: every frame sent to it, decoded."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    async def drained(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    def tasks(self) -> list[dict[str, Any]]:
        """The tasks sent, in order (one per ``task`` frame, several per ``tasks`` frame)."""
        out: list[dict[str, Any]] = []
        for frame in self.frames:
            if frame.get("type") == "task":
                out.append(frame)
            elif frame.get("type") == "tasks":
                out.extend(frame["tasks"])
        return out

    def results(self) -> list[dict[str, Any]]:
        """The results pushed to a client, in order."""
        return [r for f in self.frames if f.get("type") == "done" for r in f["results"]]


def rules(worker_id: int, *, hello: bool = False) -> WorkerConnection:
    """A worker connection's rules as ``serve_worker`` makes them; after a hello with
    ``hello`` (its welcome frame is dropped)."""
    made = WorkerConnection(
        worker_id, server="test", limits=Limits(), rate=5000.0, burst=10_000.0, now=0.0
    )
    if hello:
        hello = {"type": "hello", "protocol": 1, "agent": "test", "ops": ["x"], "concurrency": 1}
        assert made.receive_text(json.dumps(hello), 0.0)
        made.data_to_send()
    return made


async def join(
    coordinator: Coordinator, key: str | None = None, *, concurrency: int = 1
) -> WorkerPeer:
    """A Chrome worker that joined and said hello (running repeat_multiply only)."""
    peer = WorkerPeer(
        worker_id=coordinator.next_id(),
        address="127.0.0.1:1",
        path="/ws",
        agent=CHROME,
        connected_at=time.time(),
        sender=Sink(),
        rules=rules(0, hello=True),
        worker_key=key,
    )
    coordinator.workers[peer.worker_id] = peer
    now = time.monotonic()
    await coordinator.apply(
        WorkerJoined(worker_id=peer.worker_id, now=now, stimulus_id="join"),
        WorkerIntroduced(
            worker_id=peer.worker_id,
            ops=frozenset({"repeat_multiply"}),
            concurrency=concurrency,
            prefetch=0,
            now=now,
            stimulus_id="hello",
        ),
    )
    return peer


async def connect(
    coordinator: Coordinator, key: str, op: str = "repeat_multiply", *, frame: str | None = None
) -> WorkerPeer:
    """As serve_worker does: join, then a real ``hello`` frame with ``key`` (one ``op``, one
    task at a time; or ``frame``, a hello of the caller's), read by the coordinator's own
    ``receive``."""
    peer = WorkerPeer(
        worker_id=coordinator.next_id(),
        address="127.0.0.1:1",
        path="/ws",
        agent="test",
        connected_at=time.time(),
        sender=Sink(),
        rules=rules(0),
    )
    coordinator.workers[peer.worker_id] = peer
    now = time.monotonic()
    await coordinator.apply(WorkerJoined(worker_id=peer.worker_id, now=now, stimulus_id="join"))
    hello = Hello(
        protocol=PROTOCOL_VERSION, agent="test", ops=[op], concurrency=1, prefetch=0, worker_key=key
    )
    await receive(coordinator, peer, frame or msgspec.json.encode(hello).decode(), now)
    assert peer.introduced
    return peer


async def leave(coordinator: Coordinator, peer: WorkerPeer) -> None:
    """As serve_worker does when a connection ends."""
    peer.left_at = time.time()
    del coordinator.workers[peer.worker_id]
    await coordinator.apply(
        WorkerLeft(worker_id=peer.worker_id, now=time.monotonic(), stimulus_id="leave")
    )
    await coordinator.remember_workers([peer])
