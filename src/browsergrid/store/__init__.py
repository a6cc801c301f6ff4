"""Persistence behind one interface, ``Store``: ``SqliteStore`` (the default, one file),
``RedisStore`` (``serve --redis URL``) and ``MemoryStore`` (tests and ``serve --memory``).
``tests/store/test_contract.py`` runs the same tests against all three."""

from browsergrid.store._base import (
    JobInfo,
    JobState,
    JobSummary,
    Outcome,
    Store,
    StoreError,
    TaskRecord,
    ThroughputSample,
    WorkerRecord,
)
from browsergrid.store._memory import MemoryStore
from browsergrid.store._redis import RedisStore
from browsergrid.store._sqlite import SqliteStore

__all__ = [
    "JobInfo",
    "JobState",
    "JobSummary",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "TaskRecord",
    "ThroughputSample",
    "WorkerRecord",
]
