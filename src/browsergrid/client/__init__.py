"""Submitting work from Python: ``Client`` (futures for threads) and ``AsyncClient``."""

from browsergrid.client._async import AsyncClient, AsyncJob
from browsergrid.client._engine import DEFAULT_SERVER, SERVER_ENV, coordinator_urls, server_urls
from browsergrid.client._sync import Client, Job

__all__ = [
    "DEFAULT_SERVER",
    "SERVER_ENV",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "Job",
    "coordinator_urls",
    "server_urls",
]
