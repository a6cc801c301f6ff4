"""The python op in real headless Chromium: Pyodide, served by the coordinator itself (no
request leaves the machine), runs the runner in the page's compute Web Worker; a raised
exception comes back as its traceback; Pyodide stays loaded for the next task. Without
Pyodide's files the page does not offer python, and the coordinator says how to get them."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest

from browsergrid import Client, TaskError
from browsergrid._front_end import front_end_packages
from browsergrid.server._page_assets import IMMUTABLE, PYODIDE_FILES, SNAPSHOT
from tests._support import Coordinator, wait_until

pytestmark = pytest.mark.browser

SOURCE = '''import math


def spread(values, scale=1):
    """Population standard deviation, times scale."""
    mean = sum(values) / len(values)
    return scale * math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
'''


def call(source: str, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments of a python task, built by hand (the raw op form)."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    function = {"name": name, "source": source, "sha256": digest}
    return {"function": function, "args": list(args), "kwargs": kwargs}


class PageWatch:
    """What a page sends on its WebSockets, and every request it (or its Web Workers) makes
    outside 127.0.0.1, refused."""

    def __init__(self, page: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outside: list[str] = []
        self.local: list[str] = []
        page.context.route("**/*", self._route)
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith("http://127.0.0.1:"):
            self.local.append(url)
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            self.sent.append(json.loads(payload))

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame.get("type") == kind]


def settled(page: Any, future: Future[Any], timeout: float) -> Future[Any]:
    """``future`` once done, while Playwright runs the page's route and frame handlers (its
    sync API runs them only inside its own calls: a plain wait would stall every request)."""
    deadline = time.monotonic() + timeout
    while not future.done():
        assert time.monotonic() < deadline, "the task did not finish in time"
        page.wait_for_timeout(50)
    return future


@pytest.mark.timeout(120)
def test_python_tasks_run_under_pyodide_served_by_the_coordinator(
    coordinator: Coordinator, page: Any
) -> None:
    watch = PageWatch(page)
    page.goto(f"{coordinator.page_url}?workers=1")  # one compute worker: one Pyodide
    wait_until(page, lambda: bool(watch.frames("hello")))
    [hello] = watch.frames("hello")
    assert "python" in hello["ops"] and "prime_count" in hello["ops"]
    assert hello["cold"] == ["python"]
    failing = "def ratio(a, b):\n    return a / b\n"
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        once = client.options(max_attempts=1)
        [first] = once.submit_job(
            "python", [call(SOURCE, "spread", [2, 4, 4, 4, 5, 5, 7, 9])]
        ).futures
        assert settled(page, first, 90).result() == 2.0
        [second] = once.submit_job("python", [call(SOURCE, "spread", [1, 3], scale=10)]).futures
        assert settled(page, second, 30).result() == 10.0
        [failed] = once.submit_job("python", [call(failing, "ratio", 1, 0)]).futures
        error = settled(page, failed, 30).exception()
    assert isinstance(error, TaskError)
    assert error.remote_traceback is not None
    lines = error.remote_traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == '  File "<browsergrid:ratio>", line 2, in ratio'
    assert lines[2] == "    return a / b"
    assert lines[-1] == "ZeroDivisionError: division by zero"
    # Playwright reports a sent frame asynchronously: the client may hear of it first
    wait_until(page, lambda: bool(watch.frames("error")) and len(watch.frames("result")) >= 3)
    [sent_error] = watch.frames("error")
    assert sent_error["message"] == error.remote_traceback  # as Python wrote it, unprefixed

    _welcome, cold, warm = watch.frames("result")
    assert (cold["result"], warm["result"]) == (2.0, 10.0)
    # the first python task loaded Pyodide (seconds); the next found it loaded
    assert warm["duration_ms"] < min(1000, cold["duration_ms"] / 5), (cold, warm)

    assert watch.outside == []  # nothing was asked of the network, so nothing was refused
    served = {url.rsplit("/", 1)[1] for url in watch.local if "/vendor/pyodide/" in url}
    types = {**PYODIDE_FILES, SNAPSHOT: "application/octet-stream"}  # npm ci made the snapshot
    assert served == set(types)
    for url in {url for url in watch.local if "/vendor/pyodide/" in url}:
        response = httpx.head(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == IMMUTABLE
        name = url.rsplit("/", 1)[1]
        assert response.headers["content-type"].split(";")[0] == types[name], url


@pytest.mark.timeout(150)
def test_a_plain_function_gives_the_same_result_in_chromium_and_on_the_python_worker(
    coordinator: Coordinator, page: Any, start_worker: Callable[..., Any]
) -> None:
    from tests.client._functions import sieve  # a module-level function using import math

    watch = PageWatch(page)
    page.goto(f"{coordinator.page_url}?workers=1")
    wait_until(page, lambda: bool(watch.frames("hello")))
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        in_chromium = settled(page, client.submit(sieve, 20_000), 90).result()
        # the client may hear of the result before Playwright reports the frame the tab sent
        wait_until(page, lambda: len(watch.frames("result")) == 2)
        assert [r["result"] for r in watch.frames("result")][1:] == [in_chromium]
        page.goto("about:blank")  # the tab leaves: the Python worker is the only one
        start_worker(coordinator.ws_url, "--python-functions", "--quiet")
        on_python_worker = client.submit(sieve, 20_000).result(30)
    assert in_chromium == on_python_worker == sieve(20_000)
    assert len(in_chromium) == 2262


@pytest.mark.timeout(60)
def test_without_pyodide_the_page_does_not_offer_python_and_the_log_says_how_to_fix_it(
    start_coordinator: Callable[..., Coordinator],
    page: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROWSERGRID_NODE_MODULES", str(tmp_path))  # an empty node_modules
    coordinator = start_coordinator()
    missing = coordinator.event("pyodide_missing")
    assert missing["level"] == "warning"
    assert missing["fix"] == "run 'npm ci' in the browsergrid repository, then restart"
    base = f"http://127.0.0.1:{coordinator.port}"
    config = httpx.get(f"{base}/page-config.json").json()
    assert (config["python"], config["ops_module"]) == (None, None)
    watch = PageWatch(page)
    page.goto(f"{coordinator.page_url}?workers=1")
    wait_until(page, lambda: bool(watch.frames("hello")))
    [hello] = watch.frames("hello")
    assert "python" not in hello["ops"] and "prime_count" in hello["ops"]
    assert "cold" not in hello
    assert "python" not in coordinator.event("worker_introduced")["ops"]
    assert not [url for url in watch.local if "/vendor/pyodide/" in url]


@pytest.fixture
def unsnapshotted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
) -> Coordinator:
    """A coordinator whose Pyodide has no interpreter snapshot (``npm ci`` made none): the
    repository's front-end packages, linked from a node_modules without it."""
    packages = front_end_packages()
    assert packages is not None, "run 'npm ci' in the repository"
    linked = tmp_path / "node_modules"
    for package in packages.iterdir():
        if package.is_dir() and package.name != "pyodide":
            (linked / package.name).parent.mkdir(parents=True, exist_ok=True)
            (linked / package.name).symlink_to(package)
    (linked / "pyodide").mkdir()
    for file in (packages / "pyodide").iterdir():
        if not file.name.startswith("interpreter.snapshot"):
            (linked / "pyodide" / file.name).symlink_to(file)
    monkeypatch.setenv("BROWSERGRID_NODE_MODULES", str(linked))
    coordinator = start_coordinator()
    assert coordinator.event("pyodide_snapshot_missing")["why"] == "none was made"
    return coordinator


DRAW = "import random\n\n\ndef draw():\n    return [random.random() for _ in range(3)]\n"


@pytest.mark.timeout(150)
def test_a_new_browser_starts_python_from_the_coordinators_snapshot_and_each_tab_draws_anew(
    coordinator: Coordinator, page: Any
) -> None:
    """With a snapshot ``npm ci`` made, a browser that never ran Python starts it from the
    coordinator's (about a second instead of 2-3: ``bench/browsers.py``), and so does the
    next tab, from the browser's HTTP cache; nothing is kept in Cache Storage, where a python
    task could replace it. Every interpreter started from those bytes holds the same state;
    each tab reseeds ``random``, so no two tabs draw the same numbers."""
    draws, starts = [], []
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        for tab in (page, page.context.new_page()):
            lines: list[str] = []
            tab.on("console", lambda message, lines=lines: lines.append(message.text))
            tab.goto(f"{coordinator.page_url}?workers=1")
            [drawn] = client.submit_job("python", [call(DRAW, "draw")]).futures
            draws.append(settled(tab, drawn, 60).result())
            starts += [line for line in lines if line.startswith("Python started in")]
            assert not [line for line in lines if "saved a snapshot" in line], lines
            kept = "caches.open('browsergrid-pyodide-snapshots').then((c) => c.keys())"
            assert tab.evaluate(kept) == []
            tab.goto("about:blank")  # the tab leaves; the next one starts its own Pyodide
    assert [line.endswith("from the coordinator's snapshot") for line in starts] == [True] * 2
    first, second = draws
    assert len(set(first) | set(second)) == 6, draws


@pytest.mark.timeout(150)
def test_a_later_tab_starts_python_from_the_snapshot_the_first_one_saved(
    unsnapshotted: Coordinator, page: Any
) -> None:
    """The first Python start in a browser saves a snapshot of the fresh interpreter in the
    origin's Cache Storage; a tab opened later (a new compute Web Worker, a new Pyodide)
    starts from it and computes the same. How much faster: ``bench/browsers.py``."""
    from tests.client._functions import sieve

    first_lines: list[str] = []
    page.on("console", lambda message: first_lines.append(message.text))
    page.goto(f"{unsnapshotted.page_url}?workers=1")
    with Client(f"http://127.0.0.1:{unsnapshotted.port}") as client:
        assert settled(page, client.submit(sieve, 1_000), 90).result() == sieve(1_000)
        assert any("saved a snapshot for the next start" in line for line in first_lines)
        kept = "caches.open('browsergrid-pyodide-snapshots').then((c) => c.keys())"
        assert len(page.evaluate(kept)) == 1
        page.goto("about:blank")  # the first tab leaves

        later = page.context.new_page()
        later_lines: list[str] = []
        later.on("console", lambda message: later_lines.append(message.text))
        later.goto(f"{unsnapshotted.page_url}?workers=1")
        assert settled(later, client.submit(sieve, 2_000), 60).result() == sieve(2_000)
    assert any(line.endswith("from this browser's snapshot") for line in later_lines), later_lines
