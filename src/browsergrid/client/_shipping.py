"""What a client uploads so that its functions run elsewhere: their bundles and the wheels
of their environments, each once per client (``put_blob`` skips what the coordinator
holds already), and the ``Code`` each submitter passes to ``function_task``."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from browsergrid.client._blobs import put_blob
from browsergrid.client._bundle import Bundle
from browsergrid.client._engine import Endpoint
from browsergrid.client._function import Code
from browsergrid.client._packages import resolve_packages


class Shipping:
    """One client's uploads of code; ``endpoint()`` is the coordinator to upload to."""

    def __init__(self, endpoint: Callable[[], Endpoint]) -> None:
        self._endpoint = endpoint
        self._bundles: dict[str, dict[str, Any]] = {}  # SHA-256 -> the bundle's ref (JSON)
        self._environments: dict[tuple[str, ...], tuple[frozenset[str], dict[str, Any]]] = {}
        self._lock = threading.Lock()  # one resolution of a package set at a time
        self.plain = Code(upload=self.upload)

    def upload(self, bundle: Bundle) -> dict[str, Any]:
        """The ref (JSON) of ``bundle``, uploaded at its first use by this client."""
        ref = self._bundles.get(bundle.sha256)
        if ref is None:
            ref = self._bundles[bundle.sha256] = put_blob(self._endpoint(), bundle.data).to_json()
        return ref

    def code(self, modules: Iterable[types.ModuleType | str], packages: Iterable[str]) -> Code:
        """The ``Code`` of ``options(modules=..., packages=...)``: with packages, they are
        resolved (pip) and their wheels uploaded now, once per set per client. Raises
        ValueError when pip cannot resolve them, BrowsergridError when the coordinator
        refuses a wheel (its message names the limit)."""
        extra = tuple(modules)
        if isinstance(packages, str):
            raise TypeError('packages= takes a list of requirement strings, as ["sympy==1.13.3"]')
        wanted = tuple(packages)
        if not extra and not wanted:
            return self.plain
        provided: frozenset[str] = frozenset()
        environment: dict[str, Any] | None = None
        if wanted:
            provided, environment = self._environment(wanted)
        return Code(extra, provided, environment, self.upload)

    def _environment(self, wanted: tuple[str, ...]) -> tuple[frozenset[str], dict[str, Any]]:
        with self._lock:
            known = self._environments.get(wanted)
            if known is None:
                resolved = resolve_packages(wanted)
                endpoint = self._endpoint()
                wheels = {
                    wheel.filename: put_blob(endpoint, wheel.data).to_json()
                    for wheel in resolved.wheels
                }
                known = self._environments[wanted] = (resolved.provided, {"wheels": wheels})
            return known
