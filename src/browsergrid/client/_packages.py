"""PyPI packages for a client's functions (``client.options(packages=[...])``).

``resolve_packages(requirements)`` asks pip, the ordinary tool, for the wheels of the
requirements and of everything they depend on (``pip download --only-binary=:all:``, for
this machine's Python and platform; pip's own cache spares a second download). The
wheels found are the environment: their names and SHA-256s make its id
(docs/protocol.md, "Environments"), so the same set, resolved again, is the same
environment on every worker. Each wheel is uploaded once as a blob; a task carries their
refs. A wheel with compiled code (ABI other than ``none``) makes the environment native:
only Python workers run it (a browser's Pyodide loads pure-Python wheels only), and only
on a platform that wheel is for.

Requirements that pip cannot satisfy (a misspelt or missing package, pins that conflict)
raise ValueError with pip's own explanation, before anything is submitted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from browsergrid.ops._python_function import environment_id, is_pure_wheel

_TIMEOUT_S = 600  # a resolution that takes longer than this has gone wrong


@dataclass(frozen=True, slots=True)
class Wheel:
    """One wheel of an environment: its file name, bytes and SHA-256."""

    filename: str
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """The wheels requirements resolved to, the top-level import names they install
    (``provided``), the environment's id and whether it is native (compiled code)."""

    wheels: tuple[Wheel, ...]
    provided: frozenset[str]
    env_id: str
    native: bool


def resolve_packages(requirements: Sequence[str]) -> Resolved:
    """The wheels of ``requirements`` (PEP 508 strings, as pip takes them) and their
    dependencies; ValueError saying why pip could not resolve them (its last lines),
    TypeError for requirements that are not a list of strings."""
    if isinstance(requirements, str) or not all(isinstance(r, str) for r in requirements):
        raise TypeError('packages= takes a list of requirement strings, as ["sympy==1.13.3"]')
    wanted = tuple(r.strip() for r in requirements if r.strip())
    if not wanted:
        raise ValueError("packages= names no package")
    for requirement in wanted:
        if requirement.startswith("-"):
            raise ValueError(f"packages=: {requirement!r} is an option, not a requirement")
    with tempfile.TemporaryDirectory(prefix="browsergrid-wheels-") as folder:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--dest",
            folder,
            "--",
            *wanted,
        ]
        try:
            done = subprocess.run(  # pip of this very Python, with fixed options
                command,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                env={**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ValueError(f"packages={list(wanted)}: pip took over {_TIMEOUT_S} s") from None
        if done.returncode != 0:
            said = _last_lines(done.stderr or done.stdout)
            if "No module named pip" in said:
                said = "this Python has no pip (python -m ensurepip installs it)"
            raise ValueError(f"packages={list(wanted)} cannot be resolved: {said}")
        paths = sorted(Path(folder).glob("*.whl"))
        wheels = tuple(_wheel(path) for path in paths)
    if not wheels:
        raise ValueError(f"packages={list(wanted)}: pip found no wheel")
    env_id = environment_id({wheel.filename: wheel.sha256 for wheel in wheels})
    return Resolved(
        wheels=wheels,
        provided=frozenset(name for wheel in wheels for name in _top_level(wheel)),
        env_id=env_id,
        native=not all(is_pure_wheel(wheel.filename) for wheel in wheels),
    )


def _wheel(path: Path) -> Wheel:
    data = path.read_bytes()
    return Wheel(path.name, data, hashlib.sha256(data).hexdigest())


def _top_level(wheel: Wheel) -> set[str]:
    """The top-level modules and packages a wheel installs (from its file list)."""
    import io

    names = set()
    with zipfile.ZipFile(io.BytesIO(wheel.data)) as archive:
        for name in archive.namelist():
            top = name.split("/", 1)[0]
            if top.endswith((".dist-info", ".data")):
                continue
            module = top.removesuffix(".py").split(".", 1)[0]  # a module, or an extension
            if module.isidentifier():
                names.add(module)
    return names


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "pip failed without a word"
