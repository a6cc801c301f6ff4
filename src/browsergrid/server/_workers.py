"""The worker endpoint: one WebSocket per worker, from accept to close."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from browsergrid._console import emit, one_line
from browsergrid.core import (
    ResultReported,
    Standing,
    TaskErrorReported,
    TasksHandedBack,
    WorkerCapacityChanged,
    WorkerHoldsChanged,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.protocol import (
    BLOB,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY_VIOLATION,
    Capacity,
    ConnectionState,
    HandBack,
    Hello,
    Holds,
    Ref,
    Result,
    ResultItem,
    Results,
    TaskError,
    TaskId,
    WorkerMessage,
    encode_server_error,
    public_worker_key,
    result_ref,
)
from browsergrid.server._access import Access, Role
from browsergrid.server._agents import MAX_AGENT_CHARS
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._guard import guarded
from browsergrid.server._state import QUARANTINED, WorkerPeer, standing_of
from browsergrid.server._stats import WorkerEvent
from browsergrid.server._websocket import Closed, Connection
from browsergrid.store import StoreError

events = logging.getLogger("browsergrid.server.events")

_LISTED_WORKERS = 20  # longer worker lists are cut, so a big grid's log stays readable


async def serve_worker(coordinator: Coordinator, ws: Connection, access: Access) -> None:
    """Run one worker connection: welcome task, hello/welcome, results, disconnect."""
    await guarded(
        coordinator, ws, lambda: _serve_worker(coordinator, ws), access=access, role=Role.WORKER
    )


async def _serve_worker(coordinator: Coordinator, ws: Connection) -> None:
    await ws.accept()
    worker_id = coordinator.next_id()
    peer = WorkerPeer(
        worker_id=worker_id,
        address=ws.address,
        path=ws.path,
        agent=_cut(ws.header("user-agent")),
        connected_at=time.time(),
        sender=ws,
        rules=coordinator.worker_rules(worker_id),
    )
    rules = peer.rules
    coordinator.workers[peer.worker_id] = peer
    if rules.blob_key is not None:
        coordinator.blob_keys[rules.blob_key] = peer.worker_id
    _tell_viewers(coordinator, peer, "connected")
    emit(
        events,
        "worker_connected",
        f"worker #{peer.worker_id} connected from {peer.address} path={peer.path}"
        + (f" agent={peer.agent}" if peer.agent else ""),
        worker_id=peer.worker_id,
        address=peer.address,
        path=peer.path,
        agent=peer.agent,
    )
    _list_workers(coordinator)
    try:
        await coordinator.apply(
            WorkerJoined(
                worker_id=peer.worker_id,
                now=time.monotonic(),
                address=ws.client[0] if ws.client else None,
                stimulus_id=coordinator.stimulus("join"),
            )
        )
        while rules.state in _OPEN:
            frame = await ws.receive()
            if isinstance(frame, Closed):
                rules.closed(frame.code, frame.reason)
                break
            await receive(coordinator, peer, frame, time.monotonic())
        if rules.state is ConnectionState.CLOSING:
            code, reason = rules.close_code or CLOSE_POLICY_VIOLATION, rules.close_reason
            await ws.close(code, reason)
            rules.closed(code, reason)
    finally:
        peer.left_at = time.time()
        del coordinator.workers[peer.worker_id]
        if rules.blob_key is not None:
            coordinator.blob_keys.pop(rules.blob_key, None)
            uploads = coordinator.lease_uploads
            for lease in [lease for lease in uploads if lease[0] == peer.worker_id]:
                del uploads[lease]
        _tell_viewers(coordinator, peer, "disconnected")
        code, reason = rules.close_code or 1005, rules.close_reason
        if ws.close_code is not None:  # closed from here (not reading, shutting down)
            code, reason = ws.close_code, ws.close_reason
        emit(
            events,
            "worker_disconnected",
            f"worker #{peer.worker_id} disconnected: code={code}"
            + (f" reason={reason}" if reason else ""),
            worker_id=peer.worker_id,
            code=code,
            reason=reason,
        )
        _list_workers(coordinator)
        await coordinator.apply(
            WorkerLeft(
                worker_id=peer.worker_id,
                now=time.monotonic(),
                stimulus_id=coordinator.stimulus("leave"),
            )
        )
        await coordinator.remember_workers([peer])  # after: with the loss of what it held


_OPEN = (ConnectionState.NOT_INTRODUCED, ConnectionState.INTRODUCED)


def _log_refusal(coordinator: Coordinator, peer: WorkerPeer, frame: str | bytes) -> None:
    """A frame the connection's rules refused: an ignored frame, or a reason to close."""
    refused = peer.rules.rejected
    assert refused is not None
    if peer.rules.state is ConnectionState.CLOSING:
        if refused.code == "rate_limited":
            coordinator.stats.errors["rate_limited"] += 1
        emit(
            events,
            "worker_refused",
            f"[#{peer.worker_id}] closing: {one_line(refused.message)}",
            level=logging.WARNING,
            worker_id=peer.worker_id,
            code=refused.code,
            close_code=peer.rules.close_code,
        )
        return
    if refused.code in ("not_introduced", "already_introduced"):
        return
    coordinator.stats.errors["frame_rejected"] += 1
    text = frame if isinstance(frame, str) else ""
    emit(
        events,
        "frame_ignored",
        f"[#{peer.worker_id}] ignored frame ({refused.code}): {refused.message}; "
        f"frame={_preview(text)}",
        level=logging.WARNING,
        worker_id=peer.worker_id,
        code=refused.code,
        detail=refused.message,
        frame=_preview(text),
    )


async def _act(
    coordinator: Coordinator, peer: WorkerPeer, message: WorkerMessage, now: float
) -> None:
    """Carry out a message the connection's rules let through."""
    match message:
        case Result() | Results():
            if message.agent:
                peer.agent = message.agent
            items: Sequence[ResultItem | Result] = (
                message.results if isinstance(message, Results) else [message]
            )
            if any(isinstance(item.result, dict) and BLOB in item.result for item in items):
                items = await _with_blobs_held(coordinator, peer, items, now)
            stimulus_id = coordinator.stimulus("result")
            await coordinator.apply(  # read the next frame while the store commits these
                *(
                    ResultReported(
                        worker_id=peer.worker_id,
                        task_id=item.task_id,
                        result=item.result,
                        duration_ms=item.duration_ms,
                        now=now,
                        stimulus_id=stimulus_id,
                    )
                    for item in items
                ),
                wait_stored=False,
            )
        case TaskError():
            peer.failures += 1
            if isinstance(message.task_id, int):
                peer.leases.pop(message.task_id, None)
            await coordinator.apply(
                TaskErrorReported(
                    worker_id=peer.worker_id,
                    task_id=message.task_id,
                    message=message.message,
                    now=now,
                    stimulus_id=coordinator.stimulus("error"),
                )
            )
        case Hello():
            await _on_hello(coordinator, peer, message, now)
        case Capacity():
            emit(
                events,
                "worker_capacity",
                f"worker #{peer.worker_id} now gives concurrency={message.concurrency}"
                f"{' (paused)' if message.concurrency == 0 else ''} share={message.share:g}",
                worker_id=peer.worker_id,
                concurrency=message.concurrency,
                prefetch=message.prefetch,
                share=message.share,
            )
            await coordinator.apply(
                WorkerCapacityChanged(
                    worker_id=peer.worker_id,
                    concurrency=message.concurrency,
                    prefetch=message.prefetch,
                    share=message.share,
                    now=now,
                    stimulus_id=coordinator.stimulus("capacity"),
                )
            )
        case Holds():
            await coordinator.apply(
                WorkerHoldsChanged(
                    worker_id=peer.worker_id,
                    added=frozenset(message.add),
                    dropped=frozenset(message.drop),
                    now=now,
                    stimulus_id=coordinator.stimulus("holds"),
                )
            )
        case HandBack():
            for task_id in message.task_ids:
                if isinstance(task_id, int):
                    peer.leases.pop(task_id, None)
            await coordinator.apply(
                TasksHandedBack(
                    worker_id=peer.worker_id,
                    task_ids=message.task_ids,
                    now=now,
                    stimulus_id=coordinator.stimulus("hand_back"),
                )
            )


async def _with_blobs_held(
    coordinator: Coordinator, peer: WorkerPeer, items: Sequence[ResultItem | Result], now: float
) -> list[ResultItem | Result]:
    """The results whose refs name a blob the coordinator holds, with that size (touched,
    so kept for the retention period); each other one is taken as the worker's error
    report: it reported a large result it did not upload (docs/protocol.md, "Blobs")."""
    kept: list[ResultItem | Result] = []
    for item in items:
        try:
            ref = result_ref(item.result)
        except ValueError as exc:
            problem: str | None = f"its result is a malformed ref: {exc}"
        else:
            problem = None if ref is None else _unheld(coordinator, peer, item.task_id, ref)
        if problem is None:
            kept.append(item)
            continue
        emit(
            events,
            "result_blob_missing",
            f"[#{peer.worker_id}] task {item.task_id}: {problem}",
            level=logging.WARNING,
            worker_id=peer.worker_id,
            task_id=item.task_id,
        )
        await _act(
            coordinator,
            peer,
            TaskError(task_id=item.task_id, message=f"the worker failed the task: {problem}"),
            now,
        )
    return kept


def _unheld(coordinator: Coordinator, peer: WorkerPeer, task_id: TaskId, ref: Ref) -> str | None:
    """What is wrong with a result that is ``ref``, or None: it must name, as JSON, the blob
    this worker uploaded for this very task (``PUT /blobs``), with its size."""
    uploaded = (
        coordinator.lease_uploads.pop((peer.worker_id, task_id), None)
        if isinstance(task_id, int)
        else None
    )
    if uploaded != ref.sha256:
        return f"its result refers to blob {ref.sha256}, which it did not upload for this task"
    if ref.format != "json" or coordinator.blobs.size(ref.sha256) != ref.size:
        return f"its result refers to blob {ref.sha256} as {ref.size} bytes of {ref.format}"
    coordinator.blobs.touch([ref.sha256])
    task = coordinator.scheduler.tasks.get(task_id) if isinstance(task_id, int) else None
    if task is not None and task.job_id is not None:  # kept as long as its job's results
        coordinator.result_blobs.setdefault(task.job_id, set()).add(ref.sha256)
    return None


async def receive(
    coordinator: Coordinator, peer: WorkerPeer, frame: str | bytes, now: float
) -> None:
    """One frame from ``peer``'s socket, as its endpoint handles it: through its rules,
    then the answers sent, the refusal logged and the messages carried out."""
    rules = peer.rules
    messages = (
        rules.receive_text(frame, now) if isinstance(frame, str) else rules.receive_binary(now)
    )
    peer.answer()  # refusals, and welcome before anything the coordinator sends
    if rules.rejected is not None:
        _log_refusal(coordinator, peer, frame)
    for message in messages:
        await _act(coordinator, peer, message, now)


async def _on_hello(coordinator: Coordinator, peer: WorkerPeer, hello: Hello, now: float) -> None:
    """A hello the rules accepted (its welcome is sent): take up the worker's identity and
    tell the scheduler."""
    peer.agent = hello.agent
    standing = None
    key = public_worker_key(hello.worker_key) if hello.worker_key is not None else None
    if key is not None:
        try:
            standing = await _recall(coordinator, peer, key)
        except StoreError as exc:  # its reputation is unknown: no identity this time
            emit(
                events,
                "worker_unrecognised",
                f"worker #{peer.worker_id}: its history cannot be read ({exc}); it works "
                "without a lasting identity on this connection",
                level=logging.WARNING,
                worker_id=peer.worker_id,
            )
            key = None
    emit(
        events,
        "worker_introduced",
        f"worker #{peer.worker_id} introduced itself: ops={','.join(hello.ops)} "
        f"concurrency={hello.concurrency} agent={hello.agent}",
        worker_id=peer.worker_id,
        ops=hello.ops,
        concurrency=hello.concurrency,
        prefetch=hello.prefetch,
        agent=hello.agent,
    )
    envs = hello.environments  # None: a tab's, no native one, builds any other
    await coordinator.apply(
        WorkerIntroduced(
            worker_id=peer.worker_id,
            ops=frozenset(hello.ops),
            cold=frozenset(hello.cold),
            concurrency=hello.concurrency,
            prefetch=hello.prefetch,
            key=key,
            standing=standing,
            holds=frozenset(hello.holds),
            native=envs is not None and envs.native,
            environments=None if envs is None or envs.new else frozenset(envs.ready),
            now=now,
            stimulus_id=coordinator.stimulus("hello"),
        )
    )
    if key is not None:  # both at once: a history write never sees one without the other
        peer.worker_key, peer.standing = key, coordinator.scheduler.standing(key)
    if coordinator.scheduler.workers[peer.worker_id].quarantined:
        peer.send(encode_server_error("quarantined", QUARANTINED))


async def _recall(coordinator: Coordinator, peer: WorkerPeer, worker_key: str) -> Standing | None:
    """A worker with a lasting identity: carry on its history (tasks, failures, speed);
    returns the reputation the store remembers for it, if any. Raises StoreError when the
    history cannot be read (the caller must not write over it)."""
    known = await coordinator.store.worker(worker_key)
    if known is not None:
        peer.first_seen = known.first_seen
        peer.tasks_done = known.tasks_done
        peer.failures = known.failures
        peer.compute_ms = known.compute_ms
    emit(
        events,
        "worker_recognised" if known else "worker_new",
        f"worker #{peer.worker_id} is "
        + (
            f"{worker_key}, seen since {time.ctime(known.first_seen)}"
            if known
            else f"new: {worker_key}"
        ),
        worker_id=peer.worker_id,
        worker_key=worker_key,
        tasks_done=peer.tasks_done,
    )
    if known is None:
        return None
    return standing_of(known)


async def close_all_workers(coordinator: Coordinator, reason: str = "server shutting down") -> None:
    """Close every worker connection with 1001 (going away)."""
    for peer in list(coordinator.workers.values()):
        if isinstance(peer.sender, Connection):
            await peer.sender.close(CLOSE_GOING_AWAY, reason)


def _tell_viewers(
    coordinator: Coordinator, peer: WorkerPeer, kind: Literal["connected", "disconnected"]
) -> None:
    coordinator.stats.worker_event(
        WorkerEvent(
            at=time.time(),
            kind=kind,
            worker_id=peer.worker_id,
            address=peer.address,
            agent=peer.agent,
            introduced=peer.introduced,
        )
    )


def _list_workers(coordinator: Coordinator) -> None:
    if not events.isEnabledFor(logging.INFO):
        return
    peers = list(coordinator.workers.values())
    lines = [f"connected workers ({len(peers)}):"] if peers else ["no workers connected"]
    lines += [
        f"  - #{p.worker_id} {p.address} {one_line(p.agent or '')}".rstrip()
        for p in peers[:_LISTED_WORKERS]
    ]
    if len(peers) > _LISTED_WORKERS:
        lines.append(f"  ... and {len(peers) - _LISTED_WORKERS} more")
    emit(
        events,
        "workers",
        "\n".join(lines),
        count=len(peers),
        worker_ids=[p.worker_id for p in peers[:_LISTED_WORKERS]],
    )


def _cut(agent: str | None) -> str | None:
    """A User-Agent as kept and shown: its first ``MAX_AGENT_CHARS`` characters."""
    return agent if agent is None or len(agent) <= MAX_AGENT_CHARS else agent[:MAX_AGENT_CHARS]


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
