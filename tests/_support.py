"""Helpers for tests that run real processes: output collection, the coordinator's JSON log."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"
WELCOME_RESULT = 1.5372656826974733
TEST_TOKEN = "browsergrid-test-admin-token"
"""The admin token of every coordinator the tests start: tests/conftest.py puts it in
$BROWSERGRID_TOKEN for the whole session, so coordinators and clients both find it."""
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
"""Headers that present the admin token, for raw HTTP requests and WebSocket upgrades."""

# As root, Chromium needs these; Playwright adds --headless and a fresh --user-data-dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A port nothing listens on right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def close_to(value: Any, expected: float, rel: float = 1e-12) -> bool:
    return isinstance(value, float) and abs(value - expected) <= rel * abs(expected)


class Process:
    """A child process whose output lines are collected by a thread; ended by its PID."""

    def __init__(self, args: list[str], *, cwd: Path | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)
        self._new.put(None)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 15) -> str:
        """The first output line (past or future) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            new = self.lines[seen:]  # the reader thread appends meanwhile: count what was read
            for line in new:
                if predicate(line):
                    return line
            seen += len(new)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; output of {self.args}:\n" + self.output())
            try:
                ended = self._new.get(timeout=min(remaining, 0.2)) is None
            except queue.Empty:
                continue
            if ended and not any(predicate(line) for line in self.lines[seen:]):
                raise AssertionError(
                    f"process exited ({self.proc.wait()}); output:\n" + self.output()
                )

    def output(self) -> str:
        return "\n".join(self.lines)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        self._finish()
        return code

    def end(self) -> None:
        """Stop it if still running: SIGTERM, then SIGKILL after 5 s."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        self._finish()

    def _finish(self) -> None:
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Coordinator(Process):
    """``browsergrid serve --log-format json`` on 127.0.0.1; ``events`` are its log objects."""

    def __init__(self, port: int = 0, extra: tuple[str, ...] = ()) -> None:
        self._own_dir: str | None = None
        if "--data-dir" not in extra and "--memory" not in extra:
            # a database of its own: no test sees another's jobs
            self._own_dir = tempfile.mkdtemp(prefix="browsergrid-test-")
            extra = (*extra, "--data-dir", self._own_dir)
        super().__init__(
            [
                sys.executable,
                "-m",
                "browsergrid",
                "serve",
                "--port",
                str(port),
                "--log-format",
                "json",
                *extra,
            ]
        )
        try:
            ready = self.event("ready")
        except BaseException:
            self.end()  # never reported ready: no fixture knows of it yet
            raise
        self.port: int = ready["port"]
        self.ws_url: str = ready["ws_url"]
        self.page_url: str = ready["page_url"]

    def end(self) -> None:
        super().end()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def event(self, name: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        """The first log object with ``event == name`` whose fields equal ``match``."""

        def wanted(line: str) -> bool:
            if not line.startswith("{"):
                return False
            entry = json.loads(line)
            return entry.get("event") == name and all(entry.get(k) == v for k, v in match.items())

        found: dict[str, Any] = json.loads(self.wait_for_line(wanted, timeout))
        return found

    def events_named(self, name: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """Wait until at least ``count`` log objects named ``name`` were written."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events() if e.get("event") == name]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} {name} events, wanted {count}:\n{self.output()}"
                )
            time.sleep(0.05)


class RedisServer:
    """Debian's ``redis-server`` on 127.0.0.1, keeping its files in ``directory``; ended by
    its PID. ``appendonly``: every write goes to an append-only file, so data survives a
    restart of the server (``stop()`` then ``start()``)."""

    def __init__(self, directory: Path, *, port: int | None = None, appendonly: bool = False):
        executable = shutil.which("redis-server")
        if executable is None:
            raise FileNotFoundError(
                "redis-server not found: install Debian's 'redis-server' package "
                "(apt-get install redis-server; scripts/test does it)"
            )
        self.executable = executable
        self.directory = directory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        """Start it and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.directory), "--daemonize", "no"]
        args += ["--appendonly", "yes" if self.appendonly else "no"]
        with (self.directory / "redis.log").open("ab") as output:
            self.proc = subprocess.Popen(
                args, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (Redis saves its append-only file and exits), SIGKILL after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def exercise_page(tmp_path: Path, port: int) -> str:
    """A ``file://`` URL of the exercise's ``cliente.html``, unchanged but for its port."""
    source = (FIXTURES / "exercise" / "cliente.html").read_text(encoding="utf-8")
    page = tmp_path / "cliente.html"
    page.write_text(source.replace("ws://127.0.0.1:8765", f"ws://127.0.0.1:{port}"), "utf-8")
    return page.as_uri()


def wait_until(page: Any, condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let the page's events arrive until ``condition()`` holds (Playwright delivers console
    messages asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(50)


# --- a coordinator's jobs over HTTP, and SIGKILL in the middle of one --------------------

SLOW_TASK = 400_000
"""``times`` of an exact repeat_multiply that takes about 10 ms of Python (its answer is
``initial``): jobs of these run long enough to be killed in the middle."""


def slow_tasks(count: int) -> list[dict[str, Any]]:
    """``count`` exact repeat_multiply tasks of about 10 ms each; task k answers ``k``."""
    return [
        {"initial": float(k), "factor": 1.0, "times": SLOW_TASK, "exact": True}
        for k in range(count)
    ]


def submit_job(port: int, body: dict[str, Any]) -> int:
    """POST a job (with the admin token); returns its id."""
    import httpx

    response = httpx.post(f"http://127.0.0.1:{port}/api/jobs", json=body, headers=AUTH, timeout=30)
    assert response.status_code == 201, response.text
    job_id: int = response.json()["job_id"]
    return job_id


def job_results(port: int, job_id: int) -> list[dict[str, Any]]:
    """The job's outcomes as the HTTP API streams them."""
    import httpx

    url = f"http://127.0.0.1:{port}/api/jobs/{job_id}/results"
    with httpx.stream("GET", url, timeout=60) as response:
        return [json.loads(line) for line in response.iter_lines() if line]


def job_state(port: int, job_id: int) -> dict[str, Any]:
    """The job's status as the HTTP API gives it."""
    import httpx

    status: dict[str, Any] = httpx.get(
        f"http://127.0.0.1:{port}/api/jobs/{job_id}", timeout=10
    ).json()
    return status


def steady_workers(
    start_worker: Callable[..., Process], url: str, data_dir: Path, count: int = 2
) -> None:
    """``count`` quiet Python workers that reconnect within a second of a coordinator's
    restart, their identities kept in ``data_dir``."""
    for _ in range(count):
        start_worker(url, "--quiet", "--max-backoff", "1", "--data-dir", str(data_dir))


def kill_9_during(
    start: Callable[..., Coordinator],
    coordinator: Coordinator,
    options: tuple[str, ...],
    job_id: int,
    *,
    kills: int,
    seed: int,
    ready: str = "restored",
) -> Coordinator:
    """SIGKILL ``coordinator`` ``kills`` times at random moments while job ``job_id`` runs,
    each time starting another with ``options`` on the same port, and waiting for its log
    event ``ready``; returns the one running once the job has finished (within 120 s)."""
    port = coordinator.port
    rng = random.Random(seed)
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 0.9))
        assert job_state(port, job_id)["state"] == "running"  # the kill lands mid-job
        coordinator.signal(signal.SIGKILL)
        assert coordinator.wait() == -signal.SIGKILL
        coordinator = start(*options, port=port)
        coordinator.event(ready)
    deadline = time.monotonic() + 120
    while job_state(port, job_id)["state"] != "finished":
        assert time.monotonic() < deadline, job_state(port, job_id)
        time.sleep(0.2)
    return coordinator


def assert_each_task_done_once(port: int, job_id: int, count: int) -> None:
    """Every task of a job of ``slow_tasks(count)`` has exactly one right result."""
    results = job_results(port, job_id)
    assert len(results) == count
    assert sorted(r["index"] for r in results) == list(range(count))  # each exactly once
    assert all(r["status"] == "done" and r["result"] == float(r["index"]) for r in results)
    assert len({r["task_id"] for r in results}) == count


def wait_until_answers(url: str, timeout: float = 30) -> None:
    """Wait until an HTTP server answers at ``url`` (any status)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing answers at {url}"
            time.sleep(0.1)


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Poll ``condition`` every 0.1 s until it holds; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def connected_workers(coordinator: Coordinator) -> list[dict[str, Any]]:
    """``GET /api/workers`` of a running coordinator."""
    import httpx

    response = httpx.get(f"http://127.0.0.1:{coordinator.port}/api/workers", headers=AUTH)
    response.raise_for_status()
    workers: list[dict[str, Any]] = response.json()
    return workers
