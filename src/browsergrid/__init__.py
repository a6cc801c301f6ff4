"""browsergrid: a self-hosted browser compute grid.

Start a coordinator with ``browsergrid serve`` and open its URL in any browser: the tab
becomes a worker. ``browsergrid worker URL`` runs a headless Python worker.
"""

from browsergrid._version import __version__
from browsergrid.errors import BrowsergridError, ConfigError, ProtocolError

__all__ = ["BrowsergridError", "ConfigError", "ProtocolError", "__version__"]
