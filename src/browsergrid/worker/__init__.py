"""The headless Python worker: ``browsergrid worker URL`` or ``run_worker(url)``."""

from browsergrid.worker._backoff import Backoff
from browsergrid.worker._runner import PythonWorker

__all__ = ["Backoff", "PythonWorker"]
