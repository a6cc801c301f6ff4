"""What a coordinator tells the others of itself in a grid (``serve --redis``): a small
JSON snapshot, renewed every second with its presence in Redis (``GridLink.beat``).

The other coordinators' dashboards show the whole grid from these snapshots
(docs/dashboard.md, "Several coordinators"): counts, the rate, the seconds that just
closed (for the throughput chart), and a row per connected worker, at most
``SHARED_WORKERS`` of them (every coordinator reads every snapshot every second).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from browsergrid._version import __version__
from browsergrid.core import Worker, WorkerState
from browsergrid.server._agents import describe
from browsergrid.server._state import CoordinatorState

SHARED_WORKERS: Final = 250
"""Worker rows a snapshot carries at most (the first connected); its counts stay exact."""

SHARED_SECONDS: Final = 10
"""A snapshot carries this coordinator's throughput of the seconds closed this long ago at
most: the other dashboards, which read it every second, add them up per second."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class SharedWorker(msgspec.Struct, frozen=True, array_like=True):
    """A connected worker as the other coordinators' dashboards show it: a WorkerRow of
    docs/dashboard.md without ``agent`` and ``lifetime_done``, sent as a JSON array (a
    coordinator of a later version may add fields at the end)."""

    id: int
    key: str | None
    kind: str
    browser: str | None
    os: str | None
    address: str
    connected_at: float
    state: str
    in_flight: int
    concurrency: int
    done: int
    failures: int
    mean_ms: float | None
    speed_ms: float | None


class Shared(msgspec.Struct, frozen=True):
    """A coordinator's snapshot (fields a coordinator of an earlier version lacks read as
    their defaults)."""

    started_at: float = 0.0
    workers: int = 0  # connected now
    ops: list[str] = []
    results: int = 0  # results accepted since it started
    version: str | None = None
    url: str | None = None  # where it serves (http(s)://HOST:PORT), once known
    busy: int = 0  # workers holding tasks
    failed: int = 0  # tasks failed for good since it started
    rate: float = 0.0  # tasks finished per second over the last 5 seconds
    clients: int = 0  # submitting clients connected
    seconds: list[tuple[int, int, int]] = []  # [second, done, failed], recently closed
    rows: list[SharedWorker] = []  # at most SHARED_WORKERS


_read = msgspec.json.Decoder(Shared).decode


def snapshot(coordinator: CoordinatorState) -> bytes:
    """This coordinator now: when it started, its workers and the ops they run, and what
    the other dashboards show of it."""
    ops: set[str] = set()
    scheduler_workers = coordinator.scheduler.workers
    for worker in scheduler_workers.values():
        ops.update(worker.ops)
    feed = coordinator.feed
    return _encode(
        Shared(
            started_at=coordinator.started_at,
            workers=len(coordinator.workers),
            ops=sorted(ops),
            results=coordinator.stats.results,
            version=__version__,
            url=coordinator.public_url,  # set by _Server.startup
            busy=sum(1 for w in scheduler_workers.values() if w.in_flight),
            failed=coordinator.stats.failed,
            rate=feed.rate(),
            clients=len(coordinator.clients),
            seconds=[(s.at, s.done, s.failed) for s in feed.recent_seconds()],
            rows=shared_workers(coordinator),
        )
    )


def shared_workers(
    coordinator: CoordinatorState, limit: int = SHARED_WORKERS
) -> list[SharedWorker]:
    """Rows of the first ``limit`` workers connected (by connection id)."""
    rows: list[SharedWorker] = []
    scheduler_workers = coordinator.scheduler.workers
    for worker_id in sorted(coordinator.workers):
        if len(rows) >= limit:
            break
        peer = coordinator.workers.get(worker_id)
        worker = scheduler_workers.get(worker_id)
        if peer is None or worker is None:
            continue  # joining or leaving right now
        agent = describe(peer.agent, introduced=worker.state is WorkerState.INTRODUCED)
        rows.append(
            SharedWorker(
                id=worker_id,
                key=peer.worker_key,
                kind=agent.kind,
                browser=agent.browser,
                os=agent.os,
                address=peer.address,
                connected_at=peer.connected_at,
                state=worker_state(worker),
                in_flight=len(worker.in_flight),
                concurrency=worker.concurrency,
                done=worker.tasks_done,
                failures=worker.failures,
                mean_ms=None if worker.mean_ms is None else round(worker.mean_ms, 3),
                speed_ms=worker.speed_ms,
            )
        )
    return rows


def worker_state(worker: Worker) -> str:
    """A WorkerRow's ``state``: quarantined, new (no hello yet), busy or idle."""
    if worker.quarantined:
        return "quarantined"
    if worker.state is not WorkerState.INTRODUCED:
        return "busy" if worker.in_flight and worker.tasks_done else "new"
    return "busy" if worker.in_flight else "idle"


def read_shared(raw: bytes) -> Shared | None:
    """A coordinator's snapshot, or None when it cannot be read (another version's)."""
    try:
        return _read(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def grid_ops(snapshots: Iterable[bytes]) -> set[str]:
    """The ops the workers of the coordinators with these snapshots run."""
    ops: set[str] = set()
    for raw in snapshots:
        try:
            ops.update(str(op) for op in _decode(raw).get("ops", ()))
        except (msgspec.DecodeError, TypeError):
            continue  # a coordinator of another version: its ops are unknown here
    return ops
