"""``browsergrid submit | status | results | cancel``: the submitter's side of the CLI."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import httpx
import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from browsergrid._tokens import auth_headers, with_token
from browsergrid.client import Client
from browsergrid.client._engine import endpoints, raise_for_refusal, tls_context
from browsergrid.errors import BrowsergridError, ConfigError, ConnectionLost, TaskError
from browsergrid.protocol import submit_options

log = logging.getLogger("browsergrid.client")

_CSV_COLUMNS = (
    "task_id",
    "index",
    "status",
    "result",
    "worker_id",
    "attempts",
    "duration_ms",
    "reasons",
    "verdict",
)


def add_job_commands(commands: Any, add_server: Any) -> None:
    """Add the submitter's subcommands to the ``browsergrid`` parser."""
    submit = commands.add_parser(
        "submit",
        help="submit a job",
        description="Submit a job: OP once with key=value arguments (values are JSON when "
        "they parse as JSON, else strings), --count times, or once per line of --args-file.",
    )
    submit.add_argument("op", help="the op to run, e.g. monte_carlo_pi")
    submit.add_argument("args", nargs="*", metavar="key=value", help="the op's arguments")
    source = submit.add_mutually_exclusive_group()
    source.add_argument("--count", type=int, default=1, help="run the same arguments N times")
    source.add_argument("--args-file", type=Path, help="a JSONL file: one argument object a line")
    submit.add_argument("--wait", action="store_true", help="show progress until the job ends")
    submit.add_argument("--name", default="", help="a label for the job")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first")
    submit.add_argument("--lease-timeout", type=float, help="seconds a worker has per task")
    submit.add_argument("--max-attempts", type=int, help="leases a task gets before it fails")
    submit.add_argument(
        "--redundancy",
        type=int,
        default=1,
        help="workers that must agree on each result (2 or more checks untrusted workers)",
    )
    submit.add_argument(
        "--max-replicas", type=int, help="results gathered per task at most (default 2k+1)"
    )
    submit.add_argument(
        "--adaptive",
        action="store_true",
        help="with --redundancy: one result is enough from an established worker, spot-checked",
    )
    add_server(submit)

    status = commands.add_parser("status", help="show workers and jobs")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.add_argument(
        "--history", action="store_true", help="every worker ever seen, not only connected ones"
    )
    add_server(status)

    results = commands.add_parser(
        "results", help="export a job's results", description="Stream a job's results."
    )
    results.add_argument("job_id", type=int, metavar="JOB")
    results.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    results.add_argument("--follow", action="store_true", help="wait for the job to finish")
    add_server(results)

    cancel = commands.add_parser("cancel", help="cancel a job's unfinished tasks")
    cancel.add_argument("job_id", type=int, metavar="JOB")
    add_server(cancel)

    put = commands.add_parser(
        "put",
        help="upload a file as a blob and print its ref",
        description="Upload a file once (streamed) and print its ref, "
        '{"$blob": SHA256, "size": N, "format": F}: put it in any task\'s arguments '
        "(browsergrid submit OP data='REF', or in --args-file) and the worker's op "
        "receives the file's bytes, or with --json the JSON value the file holds.",
    )
    put.add_argument("file", type=Path, metavar="FILE")
    put.add_argument(
        "--json", action="store_true", help="the file is JSON text: ops receive its value"
    )
    add_server(put)

    demo = commands.add_parser(
        "demo",
        help="run the demo: a Mandelbrot image the dashboard paints tile by tile",
        description="Submit the demo job (80 mandelbrot_tile tasks) and show its progress; "
        "open the coordinator's /dashboard to watch the image appear.",
    )
    demo.add_argument("--no-wait", action="store_true", help="print the job id and return")
    add_server(demo)


def run_job_command(args: argparse.Namespace) -> int:
    """Run one of the submitter's subcommands; returns the exit code."""
    try:
        match args.command:
            case "submit":
                return _submit(args)
            case "status":
                return _status(args)
            case "results":
                return _results(args, sys.stdout)
            case "demo":
                return _demo(args)
            case "put":
                return _put(args)
            case _:
                return _cancel(args)
    except httpx.HTTPError as exc:
        raise BrowsergridError(f"cannot reach the coordinator: {exc}") from None


# --- submit ------------------------------------------------------------------------------


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["times=3", "name=x"]`` -> ``{"times": 3, "name": "x"}`` (JSON values when valid)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"arguments are key=value, not {pair!r}")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _read_args_file(path: Path) -> list[dict[str, Any]]:
    items = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None
                if not isinstance(item, dict):
                    raise ConfigError(f"{path}:{number}: each line must be a JSON object")
                items.append(item)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if not items:
        raise ConfigError(f"{path} holds no arguments")
    return items


def _submit(args: argparse.Namespace) -> int:
    if args.args_file is not None:
        if args.args:
            raise ConfigError("give key=value arguments or --args-file, not both")
        items = _read_args_file(args.args_file)
    else:
        if args.count < 1:
            raise ConfigError("--count must be at least 1")
        items = [parse_assignments(args.args)] * args.count
    err = Console(stderr=True)
    try:
        options = submit_options(
            name=args.name,
            priority=args.priority,
            lease_timeout=args.lease_timeout,
            max_attempts=args.max_attempts,
            redundancy=args.redundancy,
            max_replicas=args.max_replicas,
            adaptive=args.adaptive,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with Client(args.server, token=args.token) as client:
        submitter = client.options(**msgspec.structs.asdict(options))
        job = submitter.submit_job(args.op, items)
        job_id = job.job_id
        if not args.wait:
            print(job_id)
            err.print(f"job {job_id}: {len(items)} x {args.op} queued")
            return 0
        return _follow(job.futures, job_id, args.op, err)


def _follow(futures: list[Any], job_id: int, op: str, err: Console) -> int:
    started = time.monotonic()
    failures: list[TaskError] = []
    cancelled = 0
    with Progress(
        TextColumn(f"job {job_id} {op}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9.1f} tasks/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        bar = progress.add_task("tasks", total=len(futures), rate=0.0)
        for count, future in enumerate(Client.as_completed(futures), 1):
            error = None if future.cancelled() else future.exception()
            if future.cancelled():
                cancelled += 1
            elif isinstance(error, TaskError):
                failures.append(error)
            elif error is not None:
                raise error  # the connection was lost
            rate = count / max(time.monotonic() - started, 1e-9)
            progress.update(bar, completed=count, rate=rate)
    elapsed = time.monotonic() - started
    done = len(futures) - len(failures) - cancelled
    err.print(
        f"job {job_id}: {done} done, {len(failures)} failed, {cancelled} cancelled "
        f"in {elapsed:.1f} s ({len(futures) / max(elapsed, 1e-9):.0f} tasks/s)"
    )
    for error in failures[:5]:
        err.print(f"[red]{error}[/red]", markup=True, highlight=False)
    if len(failures) > 5:
        err.print(f"... and {len(failures) - 5} more failures: browsergrid results {job_id}")
    print(job_id)
    return 1 if failures or cancelled else 0


# --- status, results, cancel -------------------------------------------------------------


_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)
"""What ``httpx`` raises when a request could not be sent at all: then it goes to the next
coordinator (a request that was sent is never sent again: it may have done its work)."""


class _Coordinators:
    """The HTTP API of the coordinators of ``--server`` (one, or several separated by commas),
    sending each its admin token (``--token``, else as ``Client`` finds it). A request goes
    to the coordinator that answered last; when it cannot be reached, to the next in turn."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.coordinators = endpoints(args.server, args.token)
        self.current = 0
        self._http = httpx.Client(timeout=httpx.Timeout(10, read=None), verify=tls_context())

    def __enter__(self) -> _Coordinators:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """``httpx.Client.stream`` on the first coordinator that can be reached."""
        count = len(self.coordinators)
        errors: list[str] = []
        for step in range(count):
            index = (self.current + step) % count
            endpoint = self.coordinators[index]
            url = endpoint.http + path
            with ExitStack() as stack:
                try:
                    response = stack.enter_context(
                        self._http.stream(
                            method, url, headers=auth_headers(endpoint.token), **kwargs
                        )
                    )
                except _UNREACHABLE as exc:
                    if count == 1:
                        raise
                    log.warning("cannot reach the coordinator at %s: %s", endpoint.http, exc)
                    errors.append(f"{endpoint.http} ({exc})")
                    continue
                self.current = index
                yield response
                return
        raise ConnectionLost("cannot reach the coordinator at any of " + "; ".join(errors))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method path`` on the first coordinator that can be reached, read whole."""
        with self.stream(method, path, **kwargs) as response:
            response.read()
            return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def dashboard_link(self) -> str:
        """The dashboard of the coordinator that answered last, with the token this command
        sends it (so that its Run demo button works too)."""
        endpoint = self.coordinators[self.current]
        return with_token(endpoint.http + "/dashboard", endpoint.token)


def _http(args: argparse.Namespace) -> _Coordinators:
    return _Coordinators(args)


def _checked(response: httpx.Response) -> Any:
    sent = "authorization" in response.request.headers
    raise_for_refusal(response, str(response.request.url), sent=sent)
    return response.json()


def _status(args: argparse.Namespace) -> int:
    with _http(args) as http:
        workers = _checked(http.get("/api/workers"))
        jobs = _checked(http.get("/api/jobs"))
        history = _checked(http.get("/api/workers/history")) if args.history else None
    if args.format == "json":
        document = {"workers": workers, "jobs": jobs}
        if history is not None:
            document["history"] = history
        print(json.dumps(document, indent=2))
        return 0
    out = Console(width=None if sys.stdout.isatty() else 160)  # pipes get whole ids
    if history is not None:
        _print_history(out, history)
    table = Table(title=f"workers ({len(workers)})")
    for column in ("id", "kind", "agent", "ops", "in flight", "done", "failures", "speed ms"):
        table.add_column(column, justify="right" if column in {"in flight", "done"} else "left")
    for w in workers:
        speed = "" if w["speed_ms"] is None else f"{w['speed_ms']:.1f}"
        agent = (w["agent"] or "")[:40]
        table.add_row(
            str(w["worker_id"]),
            w["kind"],
            agent,
            ",".join(w["ops"]),
            f"{w['in_flight']}/{w['concurrency']}",
            str(w["tasks_done"]),
            str(w["failures"]),
            speed,
        )
    out.print(table)
    table = Table(title=f"jobs ({len(jobs)})")
    for column in (
        "id",
        "name",
        "op",
        "state",
        "done",
        "failed",
        "queued",
        "leased",
        "rate/s",
        "ETA s",
    ):
        table.add_column(column)
    for j in jobs:
        table.add_row(
            str(j["job_id"]),
            j["name"],
            j["op"],
            j["state"],
            f"{j['done']}/{j['total']}",
            str(j["failed"]),
            str(j["queued"]),
            str(j["leased"]),
            f"{j['rate']:.1f}",
            "" if j["eta_s"] is None else f"{j['eta_s']:.0f}",
        )
    out.print(table)
    return 0


def _print_history(out: Console, history: list[dict[str, Any]]) -> None:
    table = Table(title=f"worker history ({len(history)})")
    table.add_column("key", no_wrap=True)
    for column in ("agent", "first seen", "last seen", "done", "failures", "mean ms", ""):
        table.add_column(column)
    for w in history:
        mean = "" if w["mean_ms"] is None else f"{w['mean_ms']:.1f}"
        table.add_row(
            w["worker_key"],
            (w["agent"] or "")[:30],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(w["first_seen"])),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(w["last_seen"])),
            str(w["tasks_done"]),
            str(w["failures"]),
            mean,
            "connected" if w["connected"] else "",
        )
    out.print(table)


def _results(args: argparse.Namespace, out: TextIO) -> int:
    """Stream the results to ``out`` without holding them all in memory."""
    params = {"follow": "true"} if args.follow else {}
    with (
        _http(args) as http,
        http.stream("GET", f"/api/jobs/{args.job_id}/results", params=params) as response,
    ):
        if response.status_code >= 400:
            response.read()
            _checked(response)
        lines = (line for line in response.iter_lines() if line)
        if args.format == "jsonl":
            for line in lines:
                out.write(line + "\n")
        else:
            _write_csv(lines, out)
    return 0


def _write_csv(lines: Iterator[str], out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    while batch := list(islice(lines, 1000)):
        for line in batch:
            row = json.loads(line)
            result = row.get("result")
            if row["status"] == "failed":
                row["result"] = ""
            elif not isinstance(result, int | float | str):
                row["result"] = json.dumps(result)
            row["reasons"] = "; ".join(row.get("reasons", []))
            writer.writerow([row.get(column, "") for column in _CSV_COLUMNS])


def _demo(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    with _http(args) as http:
        accepted = _checked(http.post("/api/demo"))
        job_id, count = accepted["job_id"], accepted["count"]
        err.print(
            f"demo job {job_id}: {count} tiles of a Mandelbrot image; "
            f"watch it paint at {http.dashboard_link()}",
            highlight=False,
        )
        if args.no_wait:
            print(job_id)
            return 0
        done = 0
        with Progress(
            TextColumn(f"job {job_id} demo"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            bar = progress.add_task("tiles", total=count)
            url = f"/api/jobs/{job_id}/results"
            with http.stream("GET", url, params={"follow": "true"}) as stream:
                for line in stream.iter_lines():
                    if line:
                        done += json.loads(line)["status"] == "done"
                        progress.advance(bar)
    missing = count - done  # failed, or cancelled before they ran
    err.print(
        f"demo job {job_id}: {done} tiles painted"
        + (f", {missing} not painted (failed or cancelled)" if missing else "")
    )
    print(job_id)
    return 1 if missing else 0


def _put(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise BrowsergridError(f"{args.file} is not a file")
    params = {"format": "json" if args.json else "bytes"}
    with _http(args) as http, args.file.open("rb") as handle:
        ref = _checked(http.post("/api/blobs", params=params, content=handle))
    print(json.dumps(ref))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with _http(args) as http:
        job = _checked(http.post(f"/api/jobs/{args.job_id}/cancel"))
    print(
        f"job {job['job_id']}: cancelled {job['cancelled']} task(s); "
        f"{job['done']} done, {job['failed']} failed"
    )
    return 0
