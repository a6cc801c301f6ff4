"""Where the coordinator finds the front-end files: the installed package's own copy, then
$BROWSERGRID_NODE_MODULES when set, else the repository's node_modules; and what a wheel
carries of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from browsergrid import _front_end
from browsergrid._front_end import SERVED, SHIPPED, front_end_packages, wheel_files
from browsergrid.server._page_assets import PYODIDE_FILES
from tests._support import ROOT


def packages_in(root: Path) -> Path:
    (root / "swagger-ui-dist").mkdir(parents=True)
    return root


def test_the_repository_node_modules_serves_an_editable_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BROWSERGRID_NODE_MODULES", raising=False)
    assert not _front_end.VENDORED.exists()  # files are added to a wheel, never to src/
    assert front_end_packages() == ROOT / "node_modules", "run 'npm ci' in the repository"


def test_the_variable_replaces_the_repository_node_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BROWSERGRID_NODE_MODULES", str(packages_in(tmp_path / "elsewhere")))
    assert front_end_packages() == tmp_path / "elsewhere"
    monkeypatch.setenv("BROWSERGRID_NODE_MODULES", str(tmp_path / "empty"))
    assert front_end_packages() is None  # not the repository's: the variable said where


def test_the_installed_package_own_copy_comes_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vendored = packages_in(tmp_path / "site-packages" / "browsergrid" / "_vendor")
    monkeypatch.setattr(_front_end, "VENDORED", vendored)
    monkeypatch.setenv("BROWSERGRID_NODE_MODULES", str(packages_in(tmp_path / "elsewhere")))
    assert front_end_packages() == vendored
    monkeypatch.delenv("BROWSERGRID_NODE_MODULES")
    assert front_end_packages() == vendored


def test_a_wheel_carries_what_is_served_and_each_licence_and_nothing_else() -> None:
    files = wheel_files()
    assert len(files) == len(set(files))
    assert set(SERVED) == set(SHIPPED) == {"swagger-ui-dist", "uplot", "pyodide"}
    assert {f"pyodide/{name}" for name in PYODIDE_FILES} <= set(files)
    assert set(SERVED["pyodide"]) == set(PYODIDE_FILES)  # the page asset routes serve these
    for package in SERVED:
        assert f"{package}/package.json" in files  # its version and licence
    missing = [name for name in files if not (ROOT / "node_modules" / name).is_file()]
    assert missing == [], "run 'npm ci': node_modules lacks files a wheel carries"
