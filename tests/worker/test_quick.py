"""Quick tasks (their op's ``quick`` says so) run on the Python worker's event loop, with no
hop to a thread and back; every other task runs in the worker's threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from browsergrid import AsyncClient
from browsergrid.errors import SubmitError
from browsergrid.ops import BUILT_IN_OPS, Op
from browsergrid.protocol import Task
from browsergrid.worker import PythonWorker
from browsergrid.worker._runner import _quick, worker_ops
from tests._support import Coordinator


def where(args: Mapping[str, Any]) -> str:
    """The name of the thread that runs the task."""
    return threading.current_thread().name


WHERE = Op("where", where, lambda args, result: True, quick=lambda args: args.get("quick") is True)


def tasks(*args: dict[str, Any], op: str = "where") -> list[Task]:
    return [Task(task_id=i, op=op, args=a) for i, a in enumerate(args)]


def test_a_batch_is_quick_only_when_every_task_is() -> None:
    ops = worker_ops(custom={"where": WHERE})
    assert _quick(ops, tasks({"quick": True}, {"quick": True}))
    assert not _quick(ops, tasks({"quick": True}, {"quick": False}))
    assert not _quick(ops, tasks({"quick": True}, op="unknown"))
    slow_op = Op("slow", where, lambda args, result: True)  # no quick: never on the loop
    assert not _quick({"slow": slow_op}, tasks({"quick": True}, op="slow"))


def test_the_built_in_quick_ops_bound_their_work() -> None:
    repeat = BUILT_IN_OPS["repeat_multiply"].quick
    pi = BUILT_IN_OPS["monte_carlo_pi"].quick
    assert repeat is not None and pi is not None
    assert repeat({"initial": 1.0, "factor": 2.0, "times": 2**50})  # one pow, whatever times
    assert repeat({"initial": 1.0, "factor": 2.0, "times": 10_000, "exact": True})
    assert not repeat({"initial": 1.0, "factor": 2.0, "times": 10_001, "exact": True})
    assert repeat({"initial": 1.0, "factor": 2.0, "times": "x", "exact": True})  # fails at once
    assert pi({"samples": 200, "seed": 1}) and not pi({"samples": 201, "seed": 1})
    for name in ("mandelbrot_tile", "prime_count", "hash_search", "python"):
        assert BUILT_IN_OPS[name].quick is None


async def test_quick_tasks_run_on_the_event_loop_and_others_in_a_thread(
    coordinator: Coordinator,
) -> None:
    worker = PythonWorker(coordinator.ws_url, custom_ops={"where": WHERE})
    running = asyncio.create_task(worker.run())
    try:
        async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
            for _ in range(100):  # "where" is known once the worker has said hello
                try:
                    quick = await asyncio.wait_for(client.submit("where", quick=True), 10)
                    break
                except SubmitError:
                    await asyncio.sleep(0.1)
            slow = await asyncio.wait_for(client.submit("where", quick=False), 10)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert quick == threading.current_thread().name  # this test's loop runs the worker
    assert slow.startswith("browsergrid-op")
