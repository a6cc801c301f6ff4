"""The headless Python worker: ``browsergrid worker URL`` or ``PythonWorker(url).run()``."""

from browsergrid.worker._backoff import Backoff
from browsergrid.worker._blobs import BlobCache
from browsergrid.worker._environments import Environments
from browsergrid.worker._identity import Identity, claim_identity
from browsergrid.worker._runner import PythonWorker

__all__ = ["Backoff", "BlobCache", "Environments", "Identity", "PythonWorker", "claim_identity"]
