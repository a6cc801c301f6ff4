"""A built wheel is the whole product: installed into a fresh virtual environment outside the
repository, with no node_modules anywhere, ``browsergrid serve`` has its /docs page, the
dashboard's chart and the python op in browser tabs, from the files the wheel carries.

The wheel is built as a user would from a clone after ``npm ci`` (the build hook,
hatch_build.py, takes the served files from node_modules), with the locked build backend
(``uv build --no-build-isolation``); the fresh environment gets the locked run-time
dependencies (requirements/serve.txt), then the wheel. uv is the one scripts/test installs
in .tools/uv. A build without the front-end files fails and says what to do, unless a slim
wheel is asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browsergrid import Client
from browsergrid._front_end import SERVED, wheel_files
from tests._support import ROOT, TEST_TOKEN, Process, wait_until

pytestmark = pytest.mark.processes

UV = ROOT / ".tools" / "uv" / "bin" / "uv"
VENDOR = "browsergrid/_vendor/"


def uv(*args: str | Path, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """The locked uv (scripts/test installs it), never a Python it would download."""
    if not UV.is_file():
        pytest.fail(f"{UV} is missing: scripts/test installs it (requirements/uv.txt)")
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", **env}
    return subprocess.run(
        [str(UV), *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_wheel(source: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return uv(
        "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "-o", out,
        source, cwd=source, **env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = build_wheel(ROOT, out)
    assert built.returncode == 0, built.stderr
    [path] = out.glob("browsergrid-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the repository, holding the wheel: its bin/."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    assert made.returncode == 0
    python = venv / "bin" / "python"
    synced = uv("pip", "sync", "--python", python, "--require-hashes", "requirements/serve.txt")
    assert synced.returncode == 0, synced.stderr
    added = uv("pip", "install", "--python", python, "--no-deps", wheel)
    assert added.returncode == 0, added.stderr
    return venv / "bin"


def test_the_wheel_carries_only_the_served_front_end_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        vendored = sorted(n[len(VENDOR) :] for n in archive.namelist() if n.startswith(VENDOR))
        pyodide = json.loads(archive.read(f"{VENDOR}pyodide/package.json"))
    assert vendored == sorted(wheel_files())
    assert not [name for name in vendored if name.endswith(".map")]
    locked = json.loads((ROOT / "package.json").read_text())["dependencies"]["pyodide"]
    assert pyodide["version"] == locked
    assert wheel.stat().st_size < 12_000_000  # README: about 7 MB, Pyodide most of it


def test_a_build_without_node_modules_fails_and_says_what_to_do_unless_slim(
    tmp_path: Path,
) -> None:
    source = tmp_path / "clone"  # the project's files, and no node_modules
    source.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))

    failed = build_wheel(source, tmp_path / "out")
    assert failed.returncode != 0
    assert "run 'npm ci' in" in failed.stderr
    assert "BROWSERGRID_SLIM_WHEEL=1" in failed.stderr
    assert not list((tmp_path / "out").glob("*.whl"))

    slim = build_wheel(source, tmp_path / "slim", BROWSERGRID_SLIM_WHEEL="1")
    assert slim.returncode == 0, slim.stderr
    [path] = (tmp_path / "slim").glob("browsergrid-*.whl")
    with zipfile.ZipFile(path) as archive:
        assert not [n for n in archive.namelist() if n.startswith(VENDOR)]
        assert "browsergrid/web/index.html" in archive.namelist()


@pytest.fixture
def served(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Process, str]]:
    """``browsergrid serve`` of the fresh environment, run from an empty folder with no
    $BROWSERGRID_NODE_MODULES: its process and base URL."""
    monkeypatch.delenv("BROWSERGRID_NODE_MODULES", raising=False)
    where = subprocess.run(
        [installed / "python", "-c", "import browsergrid._front_end as f; "
         "print(f.front_end_packages())"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    found = Path(where.stdout.strip())  # the wheel's own copy, inside the fresh environment
    assert found.is_relative_to(installed.parent), where
    assert found.parts[-3:] == ("site-packages", "browsergrid", "_vendor"), where
    serve = Process(
        [str(installed / "browsergrid"), "serve", "--port", "0", "--log-format", "json",
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        line = serve.wait_for_line(lambda text: '"event":"ready"' in text, timeout=60)
        yield serve, f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        serve.end()
    assert "pyodide_missing" not in serve.output()
    assert "Traceback" not in serve.output()


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_an_installed_wheel_serves_docs_chart_and_python_in_chromium(
    served: tuple[Process, str], installed: Path, page: Any
) -> None:
    from tests.client._functions import sieve  # a module-level function using import math

    serve, base = served
    assert str(ROOT) not in serve.output()  # nothing is served from the repository
    config = httpx.get(f"{base}/page-config.json").json()
    version = json.loads((ROOT / "package.json").read_text())["dependencies"]["pyodide"]
    assert config["python"]["pyodide"] == f"vendor/pyodide/{version}/"
    for package, names in SERVED.items():
        prefix = {"swagger-ui-dist": "swagger-ui/", "uplot": "uplot/"}.get(package)
        for name in names if prefix else ():
            url = f"{base}/vendor/{prefix}{name.removeprefix('dist/')}"
            assert httpx.get(url).status_code == 200, url

    page.goto(f"{base}/docs")  # Swagger UI draws the API from /openapi.json
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "browsergrid" in page.locator(".swagger-ui .info .title").inner_text()

    page.goto(f"{base}/dashboard?token={TEST_TOKEN}")
    page.wait_for_selector("#throughput-chart .uplot", timeout=30_000)
    assert "unavailable" not in (page.locator("#throughput-chart").get_attribute("class") or "")

    page.goto(f"{base}/?workers=1")  # the only worker: it runs the function under Pyodide
    page.wait_for_function("document.querySelector('#worker-id').textContent !== '—'")
    with Client(base) as client:
        future = client.options(max_attempts=1).submit(sieve, 20_000)
        wait_until(page, future.done, timeout=120)
        assert future.result() == sieve(20_000)
