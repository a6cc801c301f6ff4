"""What the worker page loads besides its static files: Pyodide from node_modules (right
types, cached for a year under its version), the python op's runner verbatim, the
--ops-module file, and /page-config.json, which says which of them there are."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from browsergrid._front_end import front_end_packages
from browsergrid.server._page_assets import (
    IMMUTABLE,
    PYODIDE_FILES,
    RUNNER,
    SNAPSHOT_FILE,
    SNAPSHOT_STAMP,
    Pyodide,
    find_pyodide,
    page_asset_routes,
    page_config,
)

VERSION = json.loads((Path(__file__).parents[2] / "package.json").read_text())["dependencies"][
    "pyodide"
]


def fake_pyodide(root: Path, version: str = "1.2.3", leave_out: str = "") -> Path:
    """A node_modules holding a Pyodide of ``version`` whose files are their own names."""
    directory = root / "pyodide"
    directory.mkdir(parents=True)
    for name in (*PYODIDE_FILES, "package.json", "pyodide.js.map", "console.html"):
        if name != leave_out:
            (directory / name).write_text(name, encoding="utf-8")
    if leave_out != "package.json":
        (directory / "package.json").write_text(json.dumps({"version": version}))
    return root


def client(pyodide: Pyodide | None, ops_module: Path | None = None) -> httpx.AsyncClient:
    """An HTTP client of an application holding only these routes (use with ``async with``)."""
    app = Starlette(routes=page_asset_routes(pyodide, ops_module))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_installed_pyodide_is_the_pinned_one_and_its_files_are_served() -> None:
    pyodide = find_pyodide(front_end_packages())
    assert pyodide is not None, "run 'npm ci' in the repository"
    assert pyodide.version == VERSION
    assert pyodide.path == f"vendor/pyodide/{VERSION}/"
    async with client(pyodide) as http:
        wasm = await http.get(f"/vendor/pyodide/{VERSION}/pyodide.asm.wasm")
    assert wasm.status_code == 200
    assert wasm.content[:4] == b"\0asm"
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["cache-control"] == IMMUTABLE


def stamp(root: Path, wasm_sha256: str | None = None) -> Path:
    """Give the fake Pyodide in ``root`` a snapshot (gzip) and its stamp, naming its own
    build unless ``wasm_sha256`` says another; ``root`` back."""
    directory = root / "pyodide"
    (directory / SNAPSHOT_FILE).write_bytes(gzip.compress(b"a fresh interpreter"))
    own = hashlib.sha256((directory / "pyodide.asm.wasm").read_bytes()).hexdigest()
    made_with = {
        "pyodide": "1.2.3",
        "wasm_sha256": wasm_sha256 or own,
        "snapshot_sha256": hashlib.sha256(b"a fresh interpreter").hexdigest(),
    }
    (directory / SNAPSHOT_STAMP).write_text(json.dumps(made_with))
    return root


async def test_the_installed_pyodide_has_the_snapshot_npm_ci_made_of_it() -> None:
    pyodide = find_pyodide(front_end_packages())
    assert pyodide is not None and pyodide.snapshot is not None, "run 'npm ci' in the repository"
    url = page_config(pyodide, None)["python"]["snapshot"]
    assert url == f"vendor/pyodide/{VERSION}/interpreter.snapshot"
    async with client(pyodide) as http:
        response = await http.get(f"/{url}", headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.content) > 10_000_000  # unpacked by httpx as by a browser: ~31 MB


async def test_a_snapshot_of_this_build_is_served_gzip_encoded_for_a_year(tmp_path: Path) -> None:
    pyodide = find_pyodide(stamp(fake_pyodide(tmp_path)))
    assert pyodide is not None and pyodide.snapshot == tmp_path / "pyodide" / SNAPSHOT_FILE
    assert page_config(pyodide, None)["python"] == {
        "pyodide": "vendor/pyodide/1.2.3/",
        "runner": "py/python_function.py",
        "snapshot": "vendor/pyodide/1.2.3/interpreter.snapshot",
    }
    async with client(pyodide) as http:
        response = await http.get("/vendor/pyodide/1.2.3/interpreter.snapshot")
        assert response.status_code == 200
        assert response.content == b"a fresh interpreter"
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["cache-control"] == IMMUTABLE
        assert response.headers["content-type"] == "application/octet-stream"
        for path in (SNAPSHOT_FILE, SNAPSHOT_STAMP):  # only under the snapshot's own name
            assert (await http.get(f"/vendor/pyodide/1.2.3/{path}")).status_code == 404
        for accepted, status in [
            ("identity", 406),
            ("gzip;q=0, identity", 406),
            ("", 406),
            ("*", 200),
            ("br, GZIP;q=0.5", 200),
            ("gzip;q=oops", 406),
        ]:
            answer = await http.get(
                "/vendor/pyodide/1.2.3/interpreter.snapshot", headers={"Accept-Encoding": accepted}
            )
            assert answer.status_code == status, accepted
            if status == 406:
                assert "send Accept-Encoding: gzip" in answer.json()["detail"]


@pytest.mark.parametrize("made_with", ["another build", "none", "a stamp without a build"])
async def test_without_a_snapshot_of_this_build_tabs_start_afresh_and_the_log_says_how_to_fix_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, made_with: str
) -> None:
    root = fake_pyodide(tmp_path)
    if made_with == "another build":
        stamp(root, wasm_sha256="0" * 64)
    elif made_with == "a stamp without a build":
        stamp(root)
        (root / "pyodide" / SNAPSHOT_STAMP).write_text(json.dumps(["not", "a", "stamp"]))
    with caplog.at_level(logging.INFO, logger="browsergrid.server"):
        pyodide = find_pyodide(root)
    assert pyodide is not None and pyodide.snapshot is None
    assert page_config(pyodide, None)["python"]["snapshot"] is None
    [record] = [r for r in caplog.records if r.__dict__["event"] == "pyodide_snapshot_missing"]
    assert "each browser's first Python start will take 2-3 s" in record.getMessage()
    assert record.__dict__["fields"]["why"] == (
        "another build's" if made_with == "another build" else "none was made"
    )
    assert "run 'npm ci' in the browsergrid repository" in record.getMessage()
    async with client(pyodide) as http:
        assert (await http.get("/vendor/pyodide/1.2.3/interpreter.snapshot")).status_code == 404


async def test_each_pyodide_file_has_its_type_and_a_year_of_cache(tmp_path: Path) -> None:
    pyodide = find_pyodide(fake_pyodide(tmp_path))
    assert pyodide == Pyodide(tmp_path / "pyodide", "1.2.3")
    types = {
        "pyodide.mjs": "text/javascript; charset=utf-8",
        "pyodide.asm.mjs": "text/javascript; charset=utf-8",
        "pyodide.asm.wasm": "application/wasm",
        "python_stdlib.zip": "application/zip",
        "pyodide-lock.json": "application/json",
    }
    assert set(types) == set(PYODIDE_FILES)
    async with client(pyodide) as http:
        for name, media_type in types.items():
            response = await http.get(f"/vendor/pyodide/1.2.3/{name}")
            assert response.status_code == 200, name
            assert response.text == name
            assert response.headers["content-type"] == media_type, name
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert (await http.head(f"/vendor/pyodide/1.2.3/{name}")).status_code == 200


async def test_only_the_files_pyodide_needs_are_served_and_only_under_its_version(
    tmp_path: Path,
) -> None:
    async with client(find_pyodide(fake_pyodide(tmp_path))) as http:
        for path in (
            "/vendor/pyodide/1.2.3/package.json",
            "/vendor/pyodide/1.2.3/pyodide.js.map",
            "/vendor/pyodide/1.2.3/console.html",
            "/vendor/pyodide/1.2.3/..%2Fpyodide%2Fpyodide.mjs",
            "/vendor/pyodide/1.2.2/pyodide.mjs",
            "/vendor/pyodide/pyodide.mjs",
        ):
            assert (await http.get(path)).status_code == 404, path


async def test_a_file_removed_after_start_is_a_404(tmp_path: Path) -> None:
    async with client(find_pyodide(fake_pyodide(tmp_path))) as http:
        (tmp_path / "pyodide" / "pyodide.mjs").unlink()
        assert (await http.get("/vendor/pyodide/1.2.3/pyodide.mjs")).status_code == 404


@pytest.mark.parametrize(
    ("leave_out", "said"),
    [
        ("pyodide.asm.wasm", "lacks pyodide.asm.wasm"),
        ("package.json", "lacks package.json"),
    ],
)
def test_missing_pyodide_files_are_told_once_with_how_to_install_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, leave_out: str, said: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="browsergrid.server"):
        assert find_pyodide(fake_pyodide(tmp_path, leave_out=leave_out)) is None
    [record] = caplog.records
    assert said in record.getMessage()
    assert "run 'npm ci' in the browsergrid repository" in record.getMessage()
    assert record.__dict__["event"] == "pyodide_missing"


def test_no_node_modules_or_a_strange_version_is_no_pyodide(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="browsergrid.server"):
        assert find_pyodide(None) is None
        assert find_pyodide(fake_pyodide(tmp_path / "a", version="../../etc")) is None
        assert find_pyodide(fake_pyodide(tmp_path / "b", version="")) is None
    assert [r.__dict__["event"] for r in caplog.records] == ["pyodide_missing"] * 3
    assert "no node_modules made by npm ci" in caplog.records[0].getMessage()
    assert "a version in package.json" in caplog.records[1].getMessage()
    assert find_pyodide(fake_pyodide(tmp_path / "c", version="0.28.0a2+local")) is not None


async def test_page_config_says_what_there_is(tmp_path: Path) -> None:
    pyodide = Pyodide(tmp_path, "314.0.7")
    assert page_config(None, None) == {
        "python": None,
        "ops_module": None,
        "name": "browsergrid",
        "message": None,
    }
    assert page_config(pyodide, tmp_path / "my_ops.js", name="Aula 3", message="¡Gracias!") == {
        "python": {
            "pyodide": "vendor/pyodide/314.0.7/",
            "runner": "py/python_function.py",
            "snapshot": None,
        },
        "ops_module": "ops-module.js",
        "name": "Aula 3",
        "message": "¡Gracias!",
    }
    async with client(pyodide) as http:
        response = await http.get("/page-config.json")
    assert response.headers["cache-control"] == "no-cache"
    assert response.json() == page_config(pyodide, None)


async def test_page_config_carries_the_coordinators_name_and_message_as_given() -> None:
    message = "<b>Thanks</b> & welcome,\nroom 3"  # the page shows it as text, not HTML
    app = Starlette(routes=page_asset_routes(None, None, name="Físicas <3>", message=message))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        config = (await http.get("/page-config.json")).json()
    assert (config["name"], config["message"]) == ("Físicas <3>", message)


async def test_the_runner_is_served_verbatim_and_asked_for_again_each_time() -> None:
    async with client(None) as http:
        response = await http.get("/py/python_function.py")
    assert response.status_code == 200
    assert response.content == RUNNER.read_bytes()
    assert response.headers["content-type"] == "text/x-python; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "etag" in response.headers  # so the next fetch is a 304


async def test_the_ops_module_is_served_as_javascript_without_caching(tmp_path: Path) -> None:
    module = tmp_path / "my_ops.js"
    module.write_text("export const double = ({ x }) => 2 * x;\n", encoding="utf-8")
    async with client(None, module) as http:
        response = await http.get("/ops-module.js")
        assert response.text == module.read_text(encoding="utf-8")
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        module.unlink()
        assert (await http.get("/ops-module.js")).status_code == 404
    async with client(None) as http:
        assert (await http.get("/ops-module.js")).status_code == 404  # no --ops-module


@pytest.mark.processes
def test_serve_refuses_an_ops_module_that_is_not_a_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.js")
    done = subprocess.run(
        [sys.executable, "-m", "browsergrid", "serve", "--memory", "--ops-module", missing],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"browsergrid serve: error: --ops-module {tmp_path / 'missing.js'} is not a file: give "
        "the path of a JavaScript module that exports functions (see examples/ops/my_ops.js)\n"
    )
