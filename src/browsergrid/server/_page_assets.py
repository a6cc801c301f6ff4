"""What the worker page loads besides its own static files, and how it learns what there is.

- ``/vendor/pyodide/VERSION/…``: Pyodide's run-time files, from ``node_modules/pyodide``
  (``npm ci``); the version is in the URL, so they are cached for a year. With them, when
  ``npm ci`` made one for this very build (``scripts/pyodide-snapshot.mjs``),
  ``interpreter.snapshot``: a memory snapshot of the fresh interpreter, gzip-encoded, from
  which a tab starts Python in well under a second instead of CPython's 2-3 s;
- ``/py/python_function.py``: the ``python`` op's runner (``browsergrid.ops``), verbatim;
- ``/ops-module.js``: the file of ``serve --ops-module`` (custom JavaScript ops);
- ``/page-config.json``: which of these this coordinator has, as URLs relative to itself.
  ``python`` is null without Pyodide's files (the page then does not offer the op); its
  ``snapshot`` is null without a snapshot of this build (tabs then start Python afresh and
  each browser saves its own), else its URL; and
  ``ops_module`` null without ``--ops-module``; and what the page says of its coordinator:
  ``name`` (``serve --name``) and ``message`` (``--message``, null without it), which the
  page shows as text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from browsergrid._console import emit
from browsergrid.config import DEFAULT_NAME

log = logging.getLogger("browsergrid.server")

PYODIDE = "pyodide"
PYODIDE_FILES = {
    "pyodide.mjs": "text/javascript",
    "pyodide.asm.mjs": "text/javascript",
    "pyodide.asm.wasm": "application/wasm",
    "python_stdlib.zip": "application/zip",
    "pyodide-lock.json": "application/json",
}
"""The files ``loadPyodide`` fetches in a browser, and their types; nothing else is served
but the snapshot below."""
SNAPSHOT = "interpreter.snapshot"
SNAPSHOT_FILE = "interpreter.snapshot.gz"
SNAPSHOT_STAMP = "interpreter.snapshot.json"
"""The snapshot's URL (under Pyodide's), its file (gzip) and what names its build: the
SHA-256 of the ``pyodide.asm.wasm`` it was made with (``scripts/pyodide-snapshot.mjs``)."""
RUNNER = Path(__file__).resolve().parent.parent / "ops" / "_python_function.py"
RUNNER_PATH = "py/python_function.py"
OPS_MODULE_PATH = "ops-module.js"
CONFIG_PATH = "page-config.json"
IMMUTABLE = "public, max-age=31536000, immutable"
FRESH = "no-cache"  # kept, but asked again (304 when unchanged) each time it is used
_JS = "text/javascript; charset=utf-8"
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}")


@dataclass(frozen=True, slots=True)
class Pyodide:
    """Pyodide's files as ``npm ci`` installed them."""

    directory: Path
    version: str
    snapshot: Path | None = None  # the gzip file of a snapshot made with this build, if any

    @property
    def path(self) -> str:
        """Where they are served, relative to the site's root (with a trailing slash)."""
        return f"vendor/pyodide/{self.version}/"


def find_pyodide(node_modules: Path | None) -> Pyodide | None:
    """Pyodide in ``node_modules``; None (and one warning saying how to install it) when
    any file the page needs is missing: the page then does not offer the ``python`` op."""
    if node_modules is None:
        where = "no node_modules made by npm ci was found"
    else:
        directory = node_modules / PYODIDE
        missing = _missing(directory)
        version = None if missing else _version(directory)
        if version is not None:
            return Pyodide(directory, version, _snapshot(directory))
        where = f"{directory} lacks {missing or 'a version in package.json'}"
    fix = "run 'npm ci' in the browsergrid repository, then restart"
    emit(
        log,
        "pyodide_missing",
        f"browser workers will not offer the python op: Pyodide's files are missing ({where});"
        f" {fix}",
        level=logging.WARNING,
        where=where,
        fix=fix,
    )
    return None


def _missing(directory: Path) -> str:
    """The first file the page needs that is not in ``directory``; "" when none is."""
    for name in (*PYODIDE_FILES, "package.json"):
        if not (directory / name).is_file():
            return name
    return ""


def _snapshot(directory: Path) -> Path | None:
    """The snapshot's file when its stamp names the build in ``directory``; else None, and
    why in the log: tabs then start Python afresh."""
    try:
        stamp = json.loads((directory / SNAPSHOT_STAMP).read_text(encoding="utf-8"))
        made_with = stamp["wasm_sha256"]
        with (directory / "pyodide.asm.wasm").open("rb") as wasm:
            this_build = hashlib.file_digest(wasm, "sha256").hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        made_with = this_build = None
    file = directory / SNAPSHOT_FILE
    ours = made_with is not None and made_with == this_build
    if ours and file.is_file():
        return file
    why = "another build's" if made_with is not None and not ours else "none was made"
    fix = (
        "run 'npm ci' in the browsergrid repository (it makes one), then restart;"
        " an installed wheel carries none"
    )
    emit(
        log,
        "pyodide_snapshot_missing",
        "each browser's first Python start will take 2-3 s: no interpreter snapshot of this"
        f" Pyodide build ({why}); {fix}",
        why=why,
        fix=fix,
    )
    return None


def _version(directory: Path) -> str | None:
    """The installed version, from its package.json (the URL changes when it does)."""
    try:
        version = json.loads((directory / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) and _VERSION.fullmatch(version) else None


def page_config(
    pyodide: Pyodide | None,
    ops_module: Path | None,
    *,
    name: str = DEFAULT_NAME,
    message: str | None = None,
) -> dict[str, Any]:
    """The body of ``/page-config.json``."""
    python = None
    if pyodide is not None:
        snapshot = pyodide.path + SNAPSHOT if pyodide.snapshot else None
        python = {
            "pyodide": pyodide.path,
            "runner": RUNNER_PATH,
            "snapshot": snapshot,
        }
    return {
        "python": python,
        "ops_module": OPS_MODULE_PATH if ops_module else None,
        "name": name,
        "message": message,
    }


def _takes_gzip(accepted: str) -> bool:
    """Whether an Accept-Encoding header lets the response be gzip: named, or ``*``, with
    a weight above 0."""
    weights: dict[str, float] = {}
    for part in accepted.split(","):
        name, _, params = part.partition(";")
        weight = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[name.strip().lower()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def snapshot_file(request: Request, path: Path) -> Response:
    """The snapshot, gzip-encoded as stored (the browser unpacks it); a 406 that says so to
    a client that does not take gzip."""
    if not _takes_gzip(request.headers.get("accept-encoding", "")):
        detail = "the interpreter snapshot is served gzip-encoded only: send Accept-Encoding: gzip"
        return JSONResponse({"detail": detail}, status_code=406)
    if not path.is_file():
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    headers = {"Cache-Control": IMMUTABLE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)


def page_asset_routes(
    pyodide: Pyodide | None,
    ops_module: Path | None,
    *,
    name: str = DEFAULT_NAME,
    message: str | None = None,
) -> list[Route]:
    """The routes above, for ``create_app`` (and tests) to add to an application; ``name``
    and ``message`` are the coordinator's, as ``serve --name/--message`` set them."""
    config = page_config(pyodide, ops_module, name=name, message=message)

    async def config_json(request: Request) -> Response:
        return JSONResponse(config, headers={"Cache-Control": FRESH})

    async def runner(request: Request) -> Response:
        return FileResponse(
            RUNNER, media_type="text/x-python; charset=utf-8", headers={"Cache-Control": FRESH}
        )

    routes = [
        Route(f"/{CONFIG_PATH}", config_json, methods=["GET"]),
        Route(f"/{RUNNER_PATH}", runner, methods=["GET"]),
    ]
    if pyodide is not None:
        served = pyodide

        async def pyodide_file(request: Request) -> Response:
            name = request.path_params["name"]
            if name == SNAPSHOT and served.snapshot is not None:
                return snapshot_file(request, served.snapshot)
            media_type = PYODIDE_FILES.get(name)
            if media_type is None or not (served.directory / name).is_file():
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            return FileResponse(
                served.directory / name,
                media_type=media_type,
                headers={"Cache-Control": IMMUTABLE},
            )

        routes.append(Route(f"/{served.path}{{name}}", pyodide_file, methods=["GET"]))
    if ops_module is not None:
        module = ops_module.resolve()

        async def ops_module_file(request: Request) -> Response:
            if not module.is_file():
                return JSONResponse({"detail": "the ops module is gone"}, status_code=404)
            return FileResponse(module, media_type=_JS, headers={"Cache-Control": FRESH})

        routes.append(Route(f"/{OPS_MODULE_PATH}", ops_module_file, methods=["GET"]))
    return routes
