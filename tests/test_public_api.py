"""Each package's ``__all__`` is sorted, complete and importable; the version is in one place."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

import browsergrid

PACKAGES = [
    "browsergrid",
    "browsergrid.protocol",
    "browsergrid.core",
    "browsergrid.ops",
    "browsergrid.worker",
    "browsergrid.server",
]


def isort_key(name: str) -> tuple[int, str]:
    """The order of ruff's RUF022: CONSTANTS, then Classes, then everything else."""
    if len(name) > 1 and name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_unique(package: str) -> None:
    names = importlib.import_module(package).__all__
    assert len(set(names)) == len(names)
    assert list(names) == sorted(names, key=isort_key)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_in_all(package: str) -> None:
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public - set(module.__all__) == set()


def test_version_matches_pyproject() -> None:
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    with pyproject.open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert browsergrid.__version__ == version
