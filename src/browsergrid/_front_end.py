"""The front-end packages' files the coordinator serves, and where it finds them.

``npm ci`` installs three packages (package.json pins them): swagger-ui-dist for ``/docs``,
uPlot for the dashboard's chart, Pyodide for the ``python`` op in tabs. The coordinator
serves a few files of each, listed in ``SERVED``; a wheel carries exactly those (and each
package's licence) under ``browsergrid/_vendor/``, laid out as in ``node_modules``, so that
``pip install browsergrid`` then ``browsergrid serve`` is the whole product.

The build hook (``hatch_build.py`` at the repository's root) loads this file by its path:
keep it to the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

SERVED: Final[dict[str, tuple[str, ...]]] = {
    "swagger-ui-dist": ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"),
    "uplot": ("dist/uPlot.esm.js", "dist/uPlot.min.css"),
    "pyodide": (
        "pyodide.mjs",
        "pyodide.asm.mjs",
        "pyodide.asm.wasm",
        "python_stdlib.zip",
        "pyodide-lock.json",
    ),
}
"""Per package, the files the coordinator serves (paths relative to the package)."""

SHIPPED: Final[dict[str, tuple[str, ...]]] = {
    "swagger-ui-dist": ("package.json", "LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"),
    "uplot": ("package.json", "LICENSE"),
    "pyodide": ("package.json",),  # its licence (MPL-2.0) is named there; it has no file
}
"""Per package, the files a wheel carries beside ``SERVED``: its version and its licence."""

VENDORED: Final = Path(__file__).resolve().parent / "_vendor"
"""Where an installed wheel keeps them; absent in an editable install from the repository."""

_MARKER: Final = "swagger-ui-dist"


def wheel_files() -> list[str]:
    """Every file a full wheel carries, as paths relative to ``node_modules``."""
    return [
        f"{package}/{name}" for package in SERVED for name in (*SERVED[package], *SHIPPED[package])
    ]


def front_end_packages() -> Path | None:
    """The folder holding the front-end packages: the installed package's own copy first,
    then $BROWSERGRID_NODE_MODULES when it is set, else the repository's ``node_modules``
    (an editable install after ``npm ci``). None when none holds them: run ``npm ci`` in
    the repository, or install a full wheel."""
    configured = os.environ.get("BROWSERGRID_NODE_MODULES")
    repository = Path(__file__).resolve().parents[2] / "node_modules"
    candidates = [VENDORED, Path(configured) if configured else repository]
    return next((path for path in candidates if (path / _MARKER).is_dir()), None)
