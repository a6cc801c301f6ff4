"""A job's large results are kept as blobs for as long as its results are: the blob of an
early result is not pruned while its job still runs, and its time starts again when the
job finishes (an in-process coordinator, a real disk, the worker's real message path)."""

from __future__ import annotations

import time
from pathlib import Path

from browsergrid.config import ServeConfig
from browsergrid.protocol import Result, SubmitOptions
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._workers import _act
from browsergrid.store import MemoryStore
from tests.server._fakes import join

OP = "repeat_multiply"
ARGS = {"initial": 1.0, "factor": 2.0, "times": 3}


async def test_a_result_blob_lives_as_long_as_its_jobs_results(tmp_path: Path) -> None:
    config = ServeConfig(memory=True, welcome=None, data_dir=tmp_path)
    coordinator = Coordinator(config, MemoryStore())
    await coordinator.start()
    peer = await join(coordinator)
    await coordinator.submit(OP, [ARGS, ARGS], SubmitOptions())
    [first] = coordinator.scheduler.workers[peer.worker_id].in_flight
    ref = await coordinator.blobs.keep(b'{"large": "result"}', "json")
    coordinator.lease_uploads[(peer.worker_id, first)] = ref.sha256  # as PUT /blobs does
    report = Result(task_id=first, result=ref.to_json(), duration_ms=1.0)
    await _act(coordinator, peer, report, time.monotonic())
    await coordinator.drain()
    a_while_ago = time.time() - 3600
    coordinator.blobs.used[ref.sha256] = a_while_ago - 1  # its last use is long past ...
    needed = coordinator.blobs.prune  # ... but its job still runs (its second task)
    [second] = coordinator.scheduler.workers[peer.worker_id].in_flight
    plain = Result(task_id=second, result=8.0, duration_ms=1.0)
    await _act(coordinator, peer, plain, time.monotonic())
    await coordinator.drain()
    assert coordinator.blobs.used[ref.sha256] > a_while_ago  # renewed when the job finished
    assert needed(a_while_ago, lambda digest: False) == 0
    assert coordinator.result_blobs == {}
    await coordinator.stop()
