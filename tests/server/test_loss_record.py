"""A worker identity's loss record (``Standing.lost`` and ``loss_rate``, with ``done`` kept
as the history's ``job_tasks_done``) is stored with its history and read back at hello, so a
restart of the coordinator does not wipe it: in process on an SQLite file, then with a real
coordinator and a worker on a raw WebSocket."""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from browsergrid.config import ServeConfig
from browsergrid.core import ResultReported, Standing
from browsergrid.protocol import SubmitOptions, public_worker_key
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._state import WorkerPeer
from browsergrid.store import SqliteStore, WorkerRecord
from tests import _support
from tests._support import AUTH, free_port, job_state, submit_job, wait_for
from tests.server._fakes import connect as connect_peer
from tests.server._fakes import leave

OP = "repeat_multiply"
SECRET = "losing-5b1f0c9e2d7a4c3b8e6f1a2d3c4b5a69"
NAME = public_worker_key(SECRET)


async def started(path: Path, *, welcome: bool = False) -> Coordinator:
    config = ServeConfig(memory=True) if welcome else ServeConfig(memory=True, welcome=None)
    coordinator = Coordinator(config, SqliteStore(path))
    await coordinator.start()
    return coordinator


async def answer_held(coordinator: Coordinator, peer: WorkerPeer) -> None:
    """``peer`` reports a result for the one task it holds."""
    (task_id,) = coordinator.scheduler.workers[peer.worker_id].in_flight
    await coordinator.apply(
        ResultReported(
            worker_id=peer.worker_id,
            task_id=task_id,
            result=2.0,
            duration_ms=1.0,
            now=time.monotonic(),
            stimulus_id="result",
        )
    )


async def stored(coordinator: Coordinator) -> WorkerRecord:
    record = await coordinator.store.worker(NAME)
    assert record is not None
    return record


async def test_a_dropped_connection_is_stored_as_a_loss_and_read_back_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "grid.db"
    args = {"initial": 1.0, "factor": 2.0, "times": 1}
    coordinator = await started(path)
    try:
        peer = await connect_peer(coordinator, SECRET)
        await coordinator.submit(OP, [args] * 5, SubmitOptions())
        for _ in range(3):
            await answer_held(coordinator, peer)
        assert coordinator.scheduler.standing(NAME).established  # its drop counts
        assert coordinator.scheduler.workers[peer.worker_id].in_flight  # the 4th, in hand
        await leave(coordinator, peer)
        record = await stored(coordinator)  # written as it left: with the loss it made
        assert (record.tasks_done, record.lost, record.loss_rate) == (3, 1, 0.25)
        assert record.job_tasks_done == 3
    finally:
        await coordinator.stop()

    again = await started(path)
    try:
        back = await connect_peer(again, SECRET)
        # done is its job_tasks_done (no welcome task this run: the same as tasks_done)
        assert again.scheduler.standing(NAME) == Standing(done=3, lost=1, loss_rate=0.25)
        await again.remember_workers()  # the periodic write keeps the record it was given
        record = await stored(again)
        assert (record.tasks_done, record.lost, record.loss_rate) == (3, 1, 0.25)
        await answer_held(again, back)  # a task left from before the restart
        await leave(again, back)  # holding the last one: a second loss
        record = await stored(again)
        assert (record.tasks_done, record.lost, record.job_tasks_done) == (4, 2, 4)
        assert record.loss_rate == pytest.approx(0.25 * 0.9 + (1 - 0.25 * 0.9) * 0.25)
    finally:
        await again.stop()


async def test_an_answered_welcome_task_is_no_record_after_a_restart(tmp_path: Path) -> None:
    """Any identity minted for the purpose answers its welcome task: it counts in the
    history's ``tasks_done`` (the dashboard shows it) but never as job work, before or
    after a restart."""
    path = tmp_path / "grid.db"
    coordinator = await started(path, welcome=True)
    try:
        peer = await connect_peer(coordinator, SECRET)
        await answer_held(coordinator, peer)  # its welcome task
        assert not coordinator.scheduler.standing(NAME).reliable
        await leave(coordinator, peer)
        record = await stored(coordinator)
        assert (record.tasks_done, record.job_tasks_done) == (1, 0)
    finally:
        await coordinator.stop()
    again = await started(path, welcome=True)
    try:
        await connect_peer(again, SECRET)
        standing = again.scheduler.standing(NAME)
        assert (standing.done, standing.reliable) == (0, False)
    finally:
        await again.stop()


# --- a real coordinator and a worker on a raw WebSocket ------------------------------------


class RawWorker:
    """A worker on a raw WebSocket that runs one task at a time."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []  # tasks received before they were asked for

    def introduce(self, key: str) -> None:
        """Say hello with ``key`` and wait for the welcome. A connection is sent tasks as soon
        as it opens (an exercise-style page never says hello), so a task may come first."""
        hello = {
            "type": "hello",
            "protocol": 1,
            "agent": "loss-record-test",
            "ops": [OP],
            "concurrency": 1,
            "prefetch": 0,
            "worker_key": key,
        }
        self.ws.send(json.dumps(hello))
        while (frame := self._frame())["type"] != "welcome":
            assert frame["type"] == "task", frame
            self.pending.append(frame)

    def next_task(self) -> dict[str, Any]:
        """The next task sent (acks and other frames skipped)."""
        if self.pending:
            return self.pending.pop(0)
        while True:
            frame = self._frame()
            if frame["type"] == "task":
                return frame
            if frame["type"] == "tasks":
                (task,) = frame["tasks"]  # one at a time: concurrency 1, no prefetch
                return dict(task)

    def finish(self, task: dict[str, Any]) -> None:
        value = task["initial"] * task["factor"] ** task["times"]  # its args are its members
        result = {"type": "result", "task_id": task["task_id"], "result": value, "duration_ms": 1}
        self.ws.send(json.dumps(result))

    def _frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.ws.recv(timeout=10))
        return frame


def history(port: int, name: str) -> dict[str, Any]:
    """The identity's row of /api/workers/history; empty before its first write."""
    url = f"http://127.0.0.1:{port}/api/workers/history"
    rows = httpx.get(url, headers=AUTH, timeout=10).json()
    found = [dict(r) for r in rows if r["worker_key"] == name]
    assert len(found) <= 1, rows
    return found[0] if found else {}


def test_a_worker_identitys_loss_record_survives_a_coordinator_restart(
    tmp_path: Path, start_coordinator: Callable[..., _support.Coordinator]
) -> None:
    """A worker that finished 3 tasks (an established identity) drops its connection with a
    task in hand: one loss, stored when it leaves. After a restart the same key carries on
    from that record, and what it stores next keeps the loss."""
    data = ["--data-dir", str(tmp_path / "grid"), "--no-welcome-task"]
    port = free_port()
    key = "loss-" + secrets.token_hex(16)
    name = public_worker_key(key)
    first = start_coordinator(*data, port=port)
    with connect(first.ws_url) as ws:
        worker = RawWorker(ws)
        worker.introduce(key)
        args = [{"initial": float(i), "factor": 2.0, "times": 1} for i in range(5)]
        job_id = submit_job(port, {"op": OP, "args": args})
        for _ in range(3):
            worker.finish(worker.next_task())
        worker.next_task()  # the 4th: held as the connection drops
    wait_for(lambda: history(port, name).get("lost", 0) >= 1)
    before = history(port, name)
    assert (before["tasks_done"], before["lost"], before["loss_rate"]) == (3, 1, 0.25)
    first.signal(signal.SIGTERM)
    assert first.wait() == 0

    second = start_coordinator(*data, port=port)
    assert history(port, name) == before  # as stored
    with connect(second.ws_url) as ws:
        worker = RawWorker(ws)
        worker.introduce(key)
        second.event("worker_recognised", worker_key=name)
        for _ in range(2):  # the two tasks left from before the restart
            worker.finish(worker.next_task())
        wait_for(lambda: job_state(port, job_id)["state"] == "finished")
    wait_for(lambda: history(port, name)["tasks_done"] == 5)  # written as it left
    after = history(port, name)
    assert after["lost"] == 1 and after["connected"] is False
    assert after["loss_rate"] == pytest.approx(0.25 * 0.9 * 0.9, abs=1e-4)  # decayed, not reset
