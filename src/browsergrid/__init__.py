"""browsergrid: a self-hosted browser compute grid.

Start a coordinator with ``browsergrid serve`` and open its URL in any browser: the tab
becomes a worker. ``browsergrid worker URL`` runs a headless Python worker. Submit work
with ``Client`` (futures) or ``AsyncClient`` (asyncio), the HTTP API, or the CLI.
"""

from browsergrid._version import __version__
from browsergrid.client import AsyncClient, Client
from browsergrid.errors import (
    AuthError,
    BrowsergridError,
    ConfigError,
    ConnectionLost,
    ProtocolError,
    SubmitError,
    TaskError,
)
from browsergrid.protocol import Ref

__all__ = [
    "AsyncClient",
    "AuthError",
    "BrowsergridError",
    "Client",
    "ConfigError",
    "ConnectionLost",
    "ProtocolError",
    "Ref",
    "SubmitError",
    "TaskError",
    "__version__",
]
