"""The text log escapes what peers put in it: a worker's agent, op names, error messages and
close reasons with line breaks or terminal escapes give one line per record, never a line
that passes for the coordinator's. First the format itself, then a real coordinator."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from browsergrid._console import _JsonFormatter, _TextFormatter, emit, one_line
from tests._support import Process, free_port, submit_job, wait_for

STAMP = re.compile(r"\d\d:\d\d:\d\d ")


def logged(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own (not in logging's registry) writing through ``formatter``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.Logger("test.console")
    logger.addHandler(handler)
    return logger, stream


def test_a_peers_value_in_a_record_stays_on_its_line() -> None:
    log, out = logged(_TextFormatter())
    agent = "evil\n12:00:00 worker #99 connected\x1b[2J\r\u2028"
    emit(log, "worker_connected", f"worker #1 connected agent={agent}", agent=agent)
    (line,) = out.getvalue().splitlines()
    assert line.endswith(r"agent=evil\n12:00:00 worker #99 connected\x1b[2J\r\u2028")


def test_values_in_list_fields_are_escaped_too() -> None:
    log, out = logged(_TextFormatter())
    reasons = ["boom\r\n12:00:00 forged", "\tquiet"]
    emit(log, "task_failed", "task 1 failed: " + "; ".join(reasons), reasons=reasons)
    assert out.getvalue().endswith("task 1 failed: boom\\r\\n12:00:00 forged; \\tquiet\n")


def test_the_codes_own_line_breaks_are_kept_where_they_are_indented() -> None:
    log, out = logged(_TextFormatter())
    emit(log, "result", "[#1] result task_id=7\n          result=1\n          agent=a", agent="a")
    emit(log, "workers", "connected workers (1):\n  - #1 10.0.0.1 a\nb")  # no field: escaped
    emit(log, "ready", "ready\nopen the page\ndashboard", lines=True)
    assert [STAMP.sub("", line, count=1) for line in out.getvalue().splitlines()] == [
        "[#1] result task_id=7",
        "          result=1",
        "          agent=a",
        "connected workers (1):",
        "  - #1 10.0.0.1 a\\nb",
        "ready",
        "open the page",
        "dashboard",
    ]


def test_records_of_others_are_escaped() -> None:
    log, out = logged(_TextFormatter())
    log.warning("refused %s", "x\ny")
    assert out.getvalue().endswith("warning: refused x\\ny\n")


def test_the_json_format_keeps_values_as_they_are() -> None:
    log, out = logged(_JsonFormatter())
    emit(log, "worker_connected", "worker #1 connected agent=a\nb", agent="a\nb")
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["agent"] == "a\nb"


def test_one_line() -> None:
    assert one_line("plain") == "plain"
    assert one_line("a\nb\x00\x7f\x85") == "a\\nb\\x00\\x7f\\x85"


# --- a real coordinator's text log ------------------------------------------------------------

AGENT = "evil\n12:00:00 FORGED-AGENT\x1b[2J"
OP = "odd\n12:00:00 FORGED-OP"
ERROR = "boom\r\n12:00:00 FORGED-ERROR"
REASON = "bye\n12:00:00 FORGED-REASON"


@pytest.fixture
def text_coordinator() -> Iterator[tuple[Process, int]]:
    port = free_port()
    args = [sys.executable, "-m", "browsergrid", "serve", "--port", str(port), "--memory"]
    process = Process([*args, "--no-welcome-task", "--log-format", "text"])
    try:
        process.wait_for_line(lambda line: "coordinator ready" in line)
        yield process, port
    finally:
        process.end()


def hello(agent: str, ops: list[str]) -> str:
    return json.dumps(
        {"type": "hello", "protocol": 1, "agent": agent, "ops": ops, "concurrency": 1}
    )


@pytest.mark.processes
def test_a_worker_cannot_forge_log_lines(text_coordinator: tuple[Process, int]) -> None:
    coordinator, port = text_coordinator
    url = f"ws://127.0.0.1:{port}/ws"
    with connect(url) as evil:
        evil.send(hello(AGENT, ["repeat_multiply", OP]))
        assert json.loads(evil.recv(timeout=5))["type"] == "welcome"
        with connect(url) as other:  # the list of connected workers holds the agent
            other.send(hello("honest", ["prime_count"]))
            other.recv(timeout=5)
        job = {"op": "repeat_multiply", "args": [{"initial": 1.0, "factor": 1.0, "times": 1}]}
        submit_job(port, {**job, "max_attempts": 1})
        task = json.loads(evil.recv(timeout=5))
        evil.send(json.dumps({"type": "error", "task_id": task["task_id"], "message": ERROR}))
        coordinator.wait_for_line(lambda line: "FORGED-ERROR" in line)
        evil.close(1000, REASON)
    coordinator.wait_for_line(lambda line: "FORGED-REASON" in line)
    time.sleep(0.2)  # the last listing of workers
    lines = coordinator.lines
    assert not any(line.startswith("12:00:00") or "\x1b" in line for line in lines)
    for forged in ("FORGED-AGENT", "FORGED-OP", "FORGED-ERROR", "FORGED-REASON"):
        holding = [line for line in lines if forged in line]
        assert holding, coordinator.output()
        for line in holding:  # one record, one line: its own, or an indented continuation
            assert STAMP.match(line) or line.startswith("  "), line
            assert re.search(r"\\n12:00:00 FORGED", line), line
    introduced = [line for line in lines if "introduced itself" in line and "evil" in line]
    assert len(introduced) == 1 and "FORGED-AGENT" in introduced[0]
    assert "FORGED-OP" in introduced[0]
    wait_for(lambda: any("disconnected" in line and "FORGED-REASON" in line for line in lines))
