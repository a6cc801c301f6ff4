"""``browsergrid submit | status | results | cancel`` as a user runs them, against a real
coordinator with two Python workers (conftest's ``served``)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from browsergrid._cli_jobs import parse_assignments
from browsergrid.errors import ConfigError
from tests.conftest import Served


def cli(served: Served | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BROWSERGRID_SERVER": served.url if served else "http://127.0.0.1:1"}
    return subprocess.run(
        [sys.executable, "-m", "browsergrid", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_submit_wait_shows_progress_and_a_summary(served: Served) -> None:
    done = cli(
        served,
        "submit",
        "monte_carlo_pi",
        "samples=1000",
        "seed=3",
        "--count",
        "20",
        "--wait",
        "--name",
        "pi",
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())
    assert "20/20" in done.stderr and "tasks/s" in done.stderr
    assert f"job {job_id}: 20 done, 0 failed, 0 cancelled" in done.stderr
    lines = [json.loads(line) for line in cli(served, "results", str(job_id)).stdout.splitlines()]
    assert len(lines) == 20 and {line["status"] for line in lines} == {"done"}
    assert {json.dumps(line["result"]) for line in lines} == {
        '{"hits": 783, "samples": 1000}'
    }  # one seed, one answer


def test_args_file_and_csv_export(served: Served, tmp_path: Path) -> None:
    args_file = tmp_path / "args.jsonl"
    args_file.write_text("\n".join(json.dumps({"lo": 0, "hi": 10**k}) for k in range(1, 4)))
    done = cli(served, "submit", "prime_count", "--args-file", str(args_file), "--wait")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    exported = cli(served, "results", job_id, "--format", "csv", "--follow").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted((int(r["index"]), int(r["result"])) for r in rows) == [(0, 4), (1, 25), (2, 168)]
    assert {r["verdict"] for r in rows} == {"unchecked"}


def test_submit_with_redundancy_has_each_result_checked(served: Served) -> None:
    done = cli(served, "submit", "prime_count", "lo=0", "hi=1000", "--redundancy", "2", "--wait")
    assert done.returncode == 0, done.stderr
    [line] = cli(served, "results", done.stdout.strip()).stdout.splitlines()
    record = json.loads(line)
    assert (record["result"], record["verdict"]) == (168, "quorum")
    assert [replica["agreed"] for replica in record["replicas"]] == [True, True]


def test_a_failed_task_makes_submit_wait_exit_1_with_its_reasons(served: Served) -> None:
    done = cli(
        served,
        "submit",
        "repeat_multiply",
        "initial=oops",
        "factor=2",
        "times=1",
        "--wait",
        "--max-attempts",
        "1",
    )
    assert done.returncode == 1
    assert "0 done, 1 failed" in done.stderr and "'initial'" in done.stderr


def test_submit_without_wait_prints_the_job_id(served: Served) -> None:
    done = cli(served, "submit", "repeat_multiply", "initial=1", "factor=2", "times=3")
    assert done.returncode == 0 and done.stdout.strip().isdigit()


def test_status_as_tables_and_json(served: Served) -> None:
    table = cli(served, "status")
    assert table.returncode == 0 and "workers (2)" in table.stdout and "jobs" in table.stdout
    data = json.loads(cli(served, "status", "--format", "json").stdout)
    assert len(data["workers"]) == 2 and {w["kind"] for w in data["workers"]} == {"python"}


def test_cancel(served: Served) -> None:
    job_id = cli(served, "submit", "prime_count", "lo=0", "hi=10000000", "--count", "300").stdout
    done = cli(served, "cancel", job_id.strip())
    assert done.returncode == 0 and "cancelled" in done.stdout


def test_demo_shows_progress_and_where_to_watch(served: Served) -> None:
    run = cli(served, "demo")
    assert run.returncode == 0, run.stderr
    job_id = int(run.stdout.strip())
    assert f"demo job {job_id}: 80 tiles" in run.stderr
    assert f"{served.url}/dashboard?token=" in run.stderr  # its Run demo button works too
    assert f"demo job {job_id}: 80 tiles painted\n" in run.stderr
    lines = cli(served, "results", str(job_id)).stdout.splitlines()
    assert len(lines) == 80


def test_demo_without_wait_prints_the_job_id(served: Served) -> None:
    run = cli(served, "demo", "--no-wait")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().isdigit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "nosuch", "a=1"), "no worker runs op 'nosuch'"),
        (("submit", "prime_count", "oops"), "key=value"),
        (("results", "99999"), "there is no job 99999"),
        (("cancel", "99999"), "there is no job 99999"),
        (("submit", "prime_count", "--args-file", "/nonexistent/a.jsonl"), "cannot read"),
        (("submit", "prime_count", "hi=9", "--redundancy", "0"), "redundancy"),
        (("submit", "prime_count", "hi=9", "--adaptive"), "needs redundancy of at least 2"),
    ],
)
def test_mistakes_are_one_line_errors(served: Served, args: tuple[str, ...], message: str) -> None:
    done = cli(served, *args)
    assert done.returncode in (1, 2)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0


@pytest.mark.processes
def test_an_unreachable_coordinator_is_a_one_line_error() -> None:
    done = cli(None, "status")
    assert done.returncode == 1 and "cannot reach the coordinator" in done.stderr
    assert "Traceback" not in done.stderr


def test_assignments_parse_json_values_else_strings() -> None:
    assert parse_assignments(["a=1", "b=[1, 2]", "c=x", "d=", 'e="1"']) == {
        "a": 1,
        "b": [1, 2],
        "c": "x",
        "d": "",
        "e": "1",
    }
    with pytest.raises(ConfigError):
        parse_assignments(["=1"])
