"""Hatch build hook: a wheel (and an sdist) carries the front-end files the coordinator serves.

Those files come from ``node_modules`` (``npm ci``): only the ones listed in
``src/browsergrid/_front_end.py``, never whole packages. A wheel holds them under
``browsergrid/_vendor/``; an sdist under ``node_modules/``, so a wheel built from the sdist
finds them where a wheel built from the repository does. An editable install needs none (it
serves the repository's ``node_modules``).

Without them the build fails and says what to do, unless BROWSERGRID_SLIM_WHEEL=1 asks for a
slim wheel (no /docs page, no dashboard chart, no python op in tabs).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SLIM = "BROWSERGRID_SLIM_WHEEL"


def _wheel_files(root: Path) -> list[str]:
    """``browsergrid._front_end.wheel_files()``, loaded by path (nothing is installed yet)."""
    path = root / "src" / "browsergrid" / "_front_end.py"
    spec = importlib.util.spec_from_file_location("_browsergrid_front_end", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files: list[str] = module.wheel_files()
    return files


class FrontEndFiles(BuildHookInterface[BuilderConfig]):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            return
        root = Path(self.root)
        node_modules = root / "node_modules"
        files = _wheel_files(root)
        missing = [name for name in files if not (node_modules / name).is_file()]
        if missing:
            if os.environ.get(SLIM) == "1":
                self.app.display_warning(
                    f"{SLIM}=1: a slim {self.target_name} without the front-end files "
                    "(no /docs page, no dashboard chart, no python op in browser tabs)"
                )
                return
            raise RuntimeError(
                f"browsergrid's {self.target_name} needs the front-end files the coordinator "
                f"serves, and node_modules lacks {len(missing)} of them ({missing[0]}, ...): "
                f"run 'npm ci' in {root} first, or set {SLIM}=1 for a slim {self.target_name} "
                "without them"
            )
        prefix = "browsergrid/_vendor" if self.target_name == "wheel" else "node_modules"
        for name in files:
            build_data["force_include"][str(node_modules / name)] = f"{prefix}/{name}"
