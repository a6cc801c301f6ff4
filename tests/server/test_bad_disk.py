"""A full disk: the coordinator refuses what it cannot store, then recovers (real SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browsergrid.config import ServeConfig
from browsergrid.errors import SubmitError
from browsergrid.protocol import SubmitOptions
from browsergrid.server import Coordinator
from browsergrid.store import SqliteStore


async def pragma(store: SqliteStore, statement: str) -> int:
    """Run a PRAGMA on the writer connection (the store's test hook)."""
    value: int = await store._write(lambda c, _: c.execute(f"PRAGMA {statement}").fetchone()[0])
    return value


async def test_a_full_disk_refuses_submissions_then_recovers(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "browsergrid.db")
    coordinator = Coordinator(ServeConfig(data_dir=tmp_path, welcome=None), store)
    await coordinator.start()
    try:
        args = [
            {"initial": float(i), "factor": 1.0, "times": 1, "pad": "x" * 200} for i in range(2000)
        ]
        pages = await pragma(store, "page_count")
        await pragma(store, f"max_page_count = {pages}")  # the disk is full
        with pytest.raises(SubmitError) as caught:
            await coordinator.submit("repeat_multiply", args, SubmitOptions())
        assert caught.value.code == "store_unavailable" and "full" in str(caught.value)
        assert not coordinator.healthy
        assert await store.jobs() == []  # nothing was acknowledged, nothing half-stored
        assert all(job.cancelled for job in coordinator.scheduler.jobs.values())
        await pragma(store, "max_page_count = 1000000")  # space again
        ack = await coordinator.submit("repeat_multiply", args, SubmitOptions())
        assert coordinator.healthy
        summary = await store.job(ack.job_id)
        assert summary is not None and summary.total == 2000
    finally:
        await coordinator.stop()
