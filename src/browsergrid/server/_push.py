"""What clients and workers are told once outcomes are stored: ``Push``.

Each client has an outbox (``ClientPeer.outbox``) of what it will be told, in order: an
``accepted`` (held in place until its tasks are stored) before the outcomes of its tasks.
``push`` adds to it and returns; the client's own writer task (started when there is
something to send, ended when there is not) encodes consecutive outcomes together in
``done`` frames and sends one batch at a time, each once the previous one has left, so a
slow client is paced and a client that stops reading is closed by its connection; nobody
else waits. Workers hear ``ack`` for their stored results after the clients' frames of the
same pass, so a result reaches its client first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Final

from browsergrid.protocol import (
    Done,
    FailureRecord,
    ResultRecord,
    encode_ack,
    encode_client_message,
)
from browsergrid.server._state import AcceptedSlot, ClientPeer, Pushed, WorkerPeer

PUSH_BATCH: Final = 2000  # outcomes per pushed frame (clients accept frames of any size)


class Push:
    """The outboxes of ``clients`` and the acks of ``workers`` (both the coordinator's
    registries, read here, never changed)."""

    def __init__(
        self,
        clients: Mapping[int, ClientPeer],
        workers: Mapping[int, WorkerPeer],
        *,
        drain_timeout_s: float,
    ) -> None:
        self.clients = clients
        self.workers = workers
        self.drain_timeout_s = drain_timeout_s
        self._scheduled = False
        self._acks: dict[int, list[int]] = {}  # worker id -> stored results to acknowledge

    def push(self, client: ClientPeer, message: Pushed) -> None:
        """Add ``message`` to ``client``'s outbox; it leaves at the next flush."""
        client.outbox.append(message)
        self.schedule()

    def acknowledge(self, outcomes: Iterable[ResultRecord | FailureRecord]) -> None:
        """Tell each browsergrid worker that its results are stored (``ack``), after the
        clients' frames of the same flush; a replicated task's to every replica's worker."""
        for outcome in outcomes:
            if isinstance(outcome, ResultRecord):
                for worker_id in [r.worker_id for r in outcome.replicas] or [outcome.worker_id]:
                    self._acks.setdefault(worker_id, []).append(outcome.task_id)
        self.schedule()

    def schedule(self) -> None:
        """Flush once this pass of the event loop is over: everything pushed in it goes
        out together."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Start the writer of every client with something to send, then send the acks."""
        self._scheduled = False
        loop = asyncio.get_running_loop()
        for client in list(self.clients.values()):
            if client.outbox and client.writer is None:
                client.writer = loop.create_task(self._write(client))
        if self._acks:  # after the writers' first step: a result reaches its client first
            loop.call_soon(self._send_acks)

    def _send_acks(self) -> None:
        acks, self._acks = self._acks, {}
        for worker_id, task_ids in acks.items():
            peer = self.workers.get(worker_id)
            if peer is not None and peer.introduced:  # the exercise's page knows no ack
                peer.send(encode_ack(task_ids))

    async def _write(self, client: ClientPeer) -> None:
        """A client's own writer: encode and send what may go now, a batch at a time, each
        once the previous one has left; ends when nothing is left to send."""
        try:
            while client.client_id in self.clients:
                ready = client.ready(PUSH_BATCH)
                if not ready:
                    return
                for frame in frames(ready):
                    client.send(frame)
                await client.sender.drained()
        finally:
            client.writer = None

    async def drain(self) -> None:
        """Send what is pending: returns once every client that still reads was sent its
        outbox (at most ``drain_timeout_s``), and the acks are out."""
        if self._scheduled:
            self._flush()
        writers = [c.writer for c in self.clients.values() if c.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=self.drain_timeout_s)
        self._send_acks()


def frames(outbox: list[Pushed]) -> list[str]:
    """The frames that tell ``outbox``, in order: consecutive outcomes in ``done`` frames of
    at most ``PUSH_BATCH``; the outbox holds no unfilled ``AcceptedSlot``."""
    sent: list[str] = []
    results: list[ResultRecord] = []
    failures: list[FailureRecord] = []

    def close_batch() -> None:
        if results or failures:
            done = Done(results=results[:], failures=failures[:])
            sent.append(encode_client_message(done).decode())
            results.clear()
            failures.clear()

    for message in outbox:
        if isinstance(message, ResultRecord):
            results.append(message)
        elif isinstance(message, FailureRecord):
            failures.append(message)
        else:
            close_batch()
            told = message.message if isinstance(message, AcceptedSlot) else message
            assert told is not None  # ClientPeer.ready stops before an unfilled slot
            sent.append(encode_client_message(told).decode())
        if len(results) + len(failures) >= PUSH_BATCH:
            close_batch()
    close_batch()
    return sent
