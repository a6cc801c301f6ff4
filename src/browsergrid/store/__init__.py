"""Persistence behind one interface: ``Store``. ``MemoryStore`` keeps everything in memory."""

from browsergrid.store._base import JobInfo, Outcome, Store
from browsergrid.store._memory import MemoryStore

__all__ = ["JobInfo", "MemoryStore", "Outcome", "Store"]
