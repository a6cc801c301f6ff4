"""A new user's first hour, as README.md tells it, in a fresh copy of the repository.

The copy holds the files ``git ls-files --cached --others --exclude-standard`` names (the
tracked files as they are in the working tree, and the new ones not ignored), so it is what
a clone will hold once the work in progress is committed; ``git clone`` of this repository
would test the last commit instead, without what is being written now. Nothing installed
comes along: no node_modules, no .venv.

The README's first shell command is run as written in that copy (parsed out of its first
``sh`` block, so that this test follows the README when it changes), with two additions:
``--port N`` (a free port; the command passes its arguments on to ``browsergrid serve``),
and ``exec`` before it, so that the process this test started becomes the coordinator itself
(``scripts/serve`` ends by exec'ing it), stopped at the end by its PID (SIGINT, as Ctrl-C).
It runs with this machine's uv and npm caches, without any $BROWSERGRID_*
variable, and with a fresh $XDG_DATA_HOME: the coordinator creates its admin token there,
as on a new machine, and the clients find it by themselves. It takes about a minute.

Then, as the README says: the coordinator prints the page's address and the dashboard link
with its token; the page (in headless Chromium) becomes a worker; the dashboard's Run demo
paints its 80 tiles; and the first example, examples/pi.py, run with the new virtual
environment's Python, prints its estimate, computed by the page alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._support import ROOT, Process, free_port
from tests.examples._examples import arguments, assert_prints_what_its_docstring_shows, run

pytestmark = [pytest.mark.browser, pytest.mark.processes]

README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme(pattern: str) -> str:
    """The first group of ``pattern``'s first match in README.md."""
    found = re.search(pattern, README, re.DOTALL)
    assert found is not None, f"README.md no longer matches {pattern!r}"
    return found[1]


def fresh_copy(destination: Path) -> None:
    """The repository's files as a clone would hold them once committed (see above)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def new_users_environment(monkeypatch: pytest.MonkeyPatch, data_home: Path) -> None:
    """No $BROWSERGRID_* variable, a fresh data directory, and no virtual environment of the
    tests' on $PATH (``python3`` is the machine's)."""
    for name in list(os.environ):
        if name.startswith("BROWSERGRID_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))


@pytest.mark.timeout(420)
def test_the_first_hour_as_the_readme_tells_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any, artifacts: Path
) -> None:
    command = readme(r"```sh\n(.+?)\n```")
    assert command == "scripts/serve", command
    port = free_port()
    page_url = readme(r"open\s+\*\*(http://127\.0\.0\.1:8765/)\*\*").replace("8765", str(port))
    dashboard_link = readme(r"\*\*(http://127\.0\.0\.1:8765/dashboard\?token=)…\*\*")
    dashboard_link = dashboard_link.replace("8765", str(port))

    copy = tmp_path / "browsergrid"
    fresh_copy(copy)
    new_users_environment(monkeypatch, tmp_path / "data")
    serve = Process(["sh", "-c", f"exec {command} --port {port}"], cwd=copy)
    contexts: list[Any] = []
    try:
        serve.wait_for_line(lambda line: "browsergrid coordinator ready" in line, timeout=300)
        assert page_url in serve.output()
        link = serve.wait_for_line(lambda line: dashboard_link in line)
        token = link.split("token=", 1)[1].strip()
        shown = subprocess.run(
            [copy / ".venv/bin/browsergrid", "token"], capture_output=True, text=True, timeout=30
        )
        assert shown.stdout == f"{token}\n", shown.stderr  # "prints it again"

        # open the page in a browser: that tab is now a worker
        contexts.append(browser.new_context())
        tab = contexts[-1].new_page()
        tab.goto(page_url)
        tab.wait_for_function("document.querySelector('#worker-id').textContent !== '—'")
        tab.wait_for_function("document.querySelector('#tasks-done').textContent === '1'")

        # watch the grid at the dashboard link serve printed, and press Run demo
        contexts.append(browser.new_context(viewport={"width": 1366, "height": 900}))
        dashboard = contexts[-1].new_page()
        dashboard.goto(f"{dashboard_link}{token}")
        dashboard.wait_for_function(
            "document.querySelector('#conn-state').dataset.state === 'live'"
        )
        dashboard.wait_for_function("document.querySelector('#total-workers').textContent === '1'")
        dashboard.locator("#demo-button").click()
        dashboard.wait_for_function(
            "document.querySelector('#demo-canvas').dataset.tiles === '80'", timeout=60_000
        )

        # the first example, with the new environment's Python; the page is the only worker
        before = tab.evaluate("window.browsergrid.tasksDone")  # the page redraws within 250 ms
        pi = [str(copy / ".venv/bin/python"), "examples/pi.py"]
        output = run([*pi, *arguments("pi.py", 0, f"http://127.0.0.1:{port}")], copy)
        assert_prints_what_its_docstring_shows("pi.py", output)
        tab.wait_for_function(f"window.browsergrid.tasksDone === {before + 40}")
        tab.wait_for_function(
            f"document.querySelector('#tasks-done').textContent === '{before + 40}'"
        )
        assert dashboard.locator("#total-workers").inner_text() == "1"
        tab.screenshot(path=str(artifacts / "first-hour-page.png"), full_page=True)
        dashboard.screenshot(path=str(artifacts / "first-hour-dashboard.png"))

        # Ctrl-C stops it gracefully
        serve.signal(signal.SIGINT)
        assert serve.wait(15) == 0
        assert "Traceback" not in serve.output()
    finally:
        for context in contexts:
            context.close()
        if serve.proc.poll() is None:
            serve.signal(signal.SIGKILL)
            serve.wait(15)
