"""The open-files limit of a real coordinator: started with a low soft limit, it serves with
the hard limit (as /proc says), and says so once; with a low hard limit, it warns."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support import Process

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/limits"),
]


def hard_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def limits(pid: int) -> tuple[str, str]:
    """(soft, hard) open files of process ``pid``, as /proc shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no 'Max open files' line")


def coordinator_under(ulimit: str) -> Iterator[Process]:
    """``browsergrid serve`` exec'd by a shell that first ran ``ulimit``; ready."""
    script = f'{ulimit} && exec "$0" -m browsergrid serve --port 0 --memory --log-format json'
    process = Process(["sh", "-c", script, sys.executable])
    try:
        process.wait_for_line(lambda line: '"event":"ready"' in line)
        yield process
    finally:
        process.end()


def events_named(process: Process, name: str) -> list[dict[str, object]]:
    found = [json.loads(line) for line in process.lines if line.startswith("{")]
    return [event for event in found if event["event"] == name]


@pytest.fixture
def low_soft_limit() -> Iterator[Process]:
    if hard_limit() <= 512:
        pytest.skip("the hard limit is too low to lower the soft one below it")
    yield from coordinator_under("ulimit -Sn 512")


@pytest.fixture
def low_hard_limit() -> Iterator[Process]:
    if hard_limit() < 1024:
        pytest.skip("the hard limit is already below 1024")
    yield from coordinator_under("ulimit -n 1024")


def test_the_soft_limit_is_raised_to_the_hard_limit_and_logged_once(
    low_soft_limit: Process,
) -> None:
    soft, hard = limits(low_soft_limit.proc.pid)
    assert soft == hard != "512"  # Linux caps the hard limit: never "unlimited"
    (event,) = events_named(low_soft_limit, "open_files_limit")
    assert event["before"] == 512 and event["limit"] == int(soft)


def test_a_low_hard_limit_is_warned_about(low_hard_limit: Process) -> None:
    assert limits(low_hard_limit.proc.pid) == ("1024", "1024")
    (event,) = events_named(low_hard_limit, "open_files_limit")
    assert event["level"] == "warning" and event["limit"] == 1024
