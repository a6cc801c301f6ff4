"""Fixtures that run the real parts: coordinator and worker processes, the exercise's server
and page, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._support import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    FIXTURES,
    TEST_TOKEN,
    Coordinator,
    Process,
    RedisServer,
    free_port,
    wait_until_answers,
)


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Processes the tests start keep their data (worker identities) here, not in $HOME."""
    path = tmp_path_factory.mktemp("data")
    before = os.environ.get("BROWSERGRID_DATA_DIR")
    os.environ["BROWSERGRID_DATA_DIR"] = str(path)
    yield path
    if before is None:
        del os.environ["BROWSERGRID_DATA_DIR"]
    else:
        os.environ["BROWSERGRID_DATA_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def admin_token() -> Iterator[str]:
    """Every coordinator the tests start takes its admin token from $BROWSERGRID_TOKEN (no
    token file is made), and every client and CLI command sends it. Tests of the token file
    remove the variable with ``monkeypatch.delenv``."""
    saved = {name: os.environ.pop(name, None) for name in _TOKEN_VARIABLES}
    os.environ["BROWSERGRID_TOKEN"] = TEST_TOKEN
    yield TEST_TOKEN
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def no_redis_from_the_environment() -> Iterator[None]:
    """Coordinators the tests start use SQLite unless a test gives --redis, even when the
    shell running the tests has BROWSERGRID_REDIS set."""
    saved = os.environ.pop("BROWSERGRID_REDIS", None)
    yield
    if saved is not None:
        os.environ["BROWSERGRID_REDIS"] = saved


_TOKEN_VARIABLES = ("BROWSERGRID_TOKEN", "BROWSERGRID_WORKER_TOKEN", "BROWSERGRID_DASHBOARD_TOKEN")

_FIXTURE_MARKS = {
    "redis_server": "redis",  # and redis_url, which uses it
    "s3_server": "processes",  # and s3_store, which uses it
    "browser": "browser",  # and page
    "start_coordinator": "processes",  # and coordinator
    "start_worker": "processes",
    "exercise_server": "processes",
    "served": "processes",
}
"""The marker of every test that uses one of these fixtures of this file, directly or through
other fixtures. A test that starts processes itself, or through a fixture of its module,
carries the marker in its module."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures of this file they use, so that ``-m "not browser and not
    redis and not processes"`` selects the tests that run in this process alone."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in item.fixturenames:
            mark = _FIXTURE_MARKS.get(name)
            if mark is None or item.get_closest_marker(mark) is not None:
                continue
            if _is_ours(info.name2fixturedefs.get(name, ()), name):
                item.add_marker(mark)


def _is_ours(definitions: Sequence[pytest.FixtureDef[Any]], name: str) -> bool:
    """Whether the test gets this file's fixture ``name``, not only a test module's fixture
    of the same name (test_wheel.py's ``served`` serves an installed wheel instead)."""
    for definition in reversed(definitions):  # the closest first
        if definition.func.__module__ == __name__:
            return True
        if name not in definition.argnames:
            return False  # overridden, and the override does not ask for this one
    return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free port of 127.0.0.1 for the whole session (no
    persistence); its URL. Tests keep apart by key prefix: use ``redis_url``."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3-compatible server on a free port of 127.0.0.1 for the whole
    session (in memory); its endpoint URL. Tests keep apart by bucket: use ``s3_store``."""
    port = free_port()
    server = Process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(endpoint)
        yield endpoint
    finally:
        server.end()


@pytest.fixture
def s3_store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket of the session's S3 server, as ``--blob-store`` takes it
    (``s3://BUCKET/blobs``), with the standard AWS settings in the environment for it (a
    coordinator started by the test inherits them)."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    httpx.put(f"{s3_server}/{bucket}", timeout=10).raise_for_status()
    for name, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    return f"s3://{bucket}/blobs"


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis with a key prefix of this test's own: it sees no other's data."""
    return f"{redis_server}?prefix=test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def start_coordinator() -> Iterator[Callable[..., Coordinator]]:
    """Start coordinators (``start_coordinator(port=0, *extra_args)``); all end after the test."""
    started: list[Coordinator] = []

    def start(*extra: str, port: int = 0) -> Coordinator:
        coordinator = Coordinator(port, extra)
        started.append(coordinator)
        return coordinator

    yield start
    for coordinator in started:
        coordinator.end()


@pytest.fixture
def coordinator(start_coordinator: Callable[..., Coordinator]) -> Coordinator:
    return start_coordinator()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Process]]:
    """Start ``browsergrid worker URL`` processes; all end after the test."""
    started: list[Process] = []

    def start(url: str, *extra: str) -> Process:
        worker = Process([sys.executable, "-m", "browsergrid", "worker", url, *extra])
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.end()


@pytest.fixture
def exercise_server(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    """The exercise's ``servidor.py``, unchanged but for its port."""
    port = free_port()
    source = (FIXTURES / "exercise" / "servidor.py").read_text(encoding="utf-8")
    script = tmp_path / "servidor.py"
    script.write_text(source.replace("8765", str(port)), encoding="utf-8")
    server = Process([sys.executable, str(script)])
    server.wait_for_line(lambda line: "listo" in line)
    yield server, port
    server.end()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (never a downloaded browser). Module
    scope: Playwright's sync API keeps an event loop running, which async tests elsewhere
    must not find."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("BROWSERGRID_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium not found: install Debian's 'chromium' package (scripts/test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (own storage), closed after the test."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests keep screenshots for people to look at (not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class Served:
    """A coordinator with two Python workers connected."""

    coordinator: Coordinator
    workers: list[Process]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator.port}"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    coordinator = Coordinator(0, ("--quiet",))
    workers = [
        Process([sys.executable, "-m", "browsergrid", "worker", coordinator.ws_url, "--quiet"])
        for _ in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_for_line(lambda line: "connected to" in line)
        yield Served(coordinator, workers)
    finally:
        for worker in workers:
            worker.end()
        coordinator.end()
