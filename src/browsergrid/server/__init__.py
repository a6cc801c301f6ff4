"""The asyncio shell: owns the sockets, feeds the scheduler core, carries out its commands.

``serve(config)`` runs a coordinator until Ctrl-C or SIGTERM; ``create_app`` builds the
ASGI application for embedding or tests.
"""

from browsergrid.server._app import create_app
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._run import serve

__all__ = ["Coordinator", "create_app", "serve"]
