"""What a worker's ``hello`` says of the Python environments it runs (``environments``)
reaches the scheduler: native or not, and (``new`` false) the only env ids it runs. Driven
in process, with real hello frames read by the coordinator's own ``receive``."""

from __future__ import annotations

from typing import Any

import pytest

from browsergrid.config import ServeConfig
from browsergrid.protocol import encode_hello
from browsergrid.server._coordinator import Coordinator
from browsergrid.store import MemoryStore
from tests.server._fakes import connect

X, Y = "a" * 64, "b" * 64  # env ids


async def introduced(environments: dict[str, Any] | None) -> tuple[bool, frozenset[str] | None]:
    """The ``native`` and ``environments`` the scheduler keeps for a worker whose hello
    carries ``environments``."""
    coordinator = Coordinator(ServeConfig(memory=True, welcome=None), MemoryStore())
    await coordinator.start()
    try:
        hello = encode_hello("test", ["python"], 1, environments=environments)
        peer = await connect(coordinator, "", frame=hello)
        worker = coordinator.scheduler.workers[peer.worker_id]
        return worker.native, worker.environments
    finally:
        await coordinator.stop()


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        (None, (False, None)),  # a tab: no native environment, builds any other
        ({}, (False, None)),
        ({"native": True}, (True, None)),
        ({"native": True, "new": True, "ready": [X]}, (True, None)),  # builds others too
        ({"native": True, "new": False, "ready": [X, Y]}, (True, frozenset({X, Y}))),
        ({"new": False}, (False, frozenset())),  # builds none and has none
    ],
)
async def test_hello_environments_reach_the_scheduler(
    environments: dict[str, Any] | None, expected: tuple[bool, frozenset[str] | None]
) -> None:
    assert await introduced(environments) == expected
