"""Trivial-task throughput of a grid of 1, 2 and 4 coordinators sharing one Redis.

    python bench/grid.py [--coordinators 1,2,4] [--workers 2] [--tasks 20000] [--latency 1000]
                         [--repeat 3] [--quick] [--results NAME] [--logs DIR]

Runs on this machine only (127.0.0.1). It starts its own ``redis-server`` on a free port (no
persistence: ``--save "" --appendonly no``), stopped by its PID at the end. For each number
N of coordinators, each run starts from scratch: N ``browsergrid serve --redis URL`` under a
fresh key prefix, ``--workers`` Python workers spread over them round robin (each worker
given one coordinator's URL), and this process as the client, connected to coordinator 1
only. A run submits 2,000 tasks to warm up, then ``--tasks`` trivial tasks in one ``map``
(``repeat_multiply``, ``times=1``, as bench/throughput.py), timed from submission until the
last result; then ``--latency`` single tasks one after another (submit-to-result p50, p99).
During the timed batch it reads the CPU time of every process (``/proc``): the coordinators,
the workers, ``redis-server``, this client, and the whole machine; and Redis's own
``INFO commandstats`` (reset before the batch), from which it reports the Lua scripts run
per task and the mean size of a take from the shared queue. Runs go round robin over N (1,
2, 4, 1, 2, 4, ...) so that a change in the machine's load touches every N alike. When N
is more than --workers, that N runs with N workers (each coordinator needs one).

A batch that stalls (no result within --timeout) skips its run with a diagnosis in the
notes: results the client had, each coordinator's view of the job and its workers, and the
shared queue's streams; the logs of a failed run are kept. Warnings, errors and the
grid's hand-backs and claims in the coordinators' and workers' logs are noted too.

Prints markdown tables and writes bench/results/grid.json and .md (grid-quick.* with
--quick: 5,000 tasks, 200 single tasks, 1 repeat, well under a minute; --results NAME for
other names). Linux only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._report import write_results  # noqa: E402
from bench.dashboard import TICKS_PER_S, cpu_seconds  # noqa: E402
from bench.throughput import TOKEN, percentile, stop  # noqa: E402

WARM_UP = 2_000
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSERGRID_TOKEN": TOKEN}
NOTABLE_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
NOTABLE_EVENTS = {
    "tasks_handed_back",
    "tasks_claimed",
    "store_failed",
    "store_recovered",
    "report_ignored",
    "task_failed",
}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Debian's ``redis-server`` on 127.0.0.1, any free port, nothing written to disk;
    ``stop`` ends it by its PID (SIGTERM, SIGKILL after 10 s)."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("redis-server not found: apt-get install redis-server")
        self.port = free_port()
        self.log = directory / "redis.log"
        with self.log.open("ab") as output:
            self.proc = subprocess.Popen(
                [
                    *(executable, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(directory)),
                    *("--daemonize", "no"),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 15
        while True:
            try:
                if self.client.ping():
                    break
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.version = str(self.client.info("server")["redis_version"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command_stats(self) -> dict[str, dict[str, float]]:
        """``INFO commandstats``: per command, its calls and µs spent since the last reset."""
        info = self.client.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): {"calls": v["calls"], "usec": v["usec"]}
            for name, v in info.items()
        }

    def stop(self) -> None:
        self.client.close()
        stop([self.proc])


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return user + nice + system + irq + softirq, steal


@dataclass
class Grid:
    """The processes of one run: coordinators (and their HTTP URLs), workers, logs."""

    prefix: str
    urls: list[str] = field(default_factory=list)
    coordinators: list[subprocess.Popen[Any]] = field(default_factory=list)
    workers: list[subprocess.Popen[Any]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)


def wait_ready(proc: subprocess.Popen[Any], path: Path, timeout: float = 30) -> str:
    """The coordinator's HTTP URL, once its JSON log (in ``path``) says ``ready``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if '"ready"' in line:
                entry = json.loads(line)
                if entry.get("event") == "ready":
                    url: str = entry["ws_url"]
                    return url.replace("ws://", "http://").removesuffix("/ws")
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"browsergrid serve not ready ({proc.poll()}):\n{path.read_text()}")


@contextmanager
def grid(redis_url: str, n: int, workers: int, prefetch: int, logs: Path) -> Iterator[Grid]:
    """``n`` coordinators on ``redis_url`` under a fresh prefix, and ``workers`` workers
    spread over them round robin; stopped (workers first) by their PIDs afterwards."""
    prefix = f"bench-grid-{secrets.token_hex(4)}:"
    g = Grid(prefix)
    with tempfile.TemporaryDirectory(prefix="browsergrid-bench-") as data_dir:
        try:
            for i in range(n):
                path = logs / f"coordinator-{i + 1}.log"
                with path.open("w") as output:
                    g.coordinators.append(
                        subprocess.Popen(
                            [
                                *(sys.executable, "-m", "browsergrid", "serve", "--port", "0"),
                                *("--quiet", "--log-format", "json", "--no-welcome-task"),
                                *(
                                    "--data-dir",
                                    data_dir,
                                    "--redis",
                                    f"{redis_url}?prefix={prefix}",
                                ),
                            ],
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            env=ENV,
                        )
                    )
                g.logs.append(path)
            g.urls = [wait_ready(p, path) for p, path in zip(g.coordinators, g.logs, strict=True)]
            for i in range(workers):
                path = logs / f"worker-{i + 1}.log"
                ws = g.urls[i % n].replace("http://", "ws://") + "/ws"
                with path.open("w") as output:
                    g.workers.append(
                        subprocess.Popen(
                            [
                                *(sys.executable, "-m", "browsergrid", "worker", ws, "--quiet"),
                                *("--log-format", "json", "--prefetch", str(prefetch)),
                                *("--data-dir", data_dir),
                            ],
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            env=ENV,
                        )
                    )
                g.logs.append(path)
            deadline = time.monotonic() + 30
            for i, url in enumerate(g.urls):
                share = len(range(i, workers, n))
                while len(connected(url)) < share:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the workers of {url} did not connect within 30 s")
                    time.sleep(0.1)
            yield g
        finally:
            stop(g.workers)
            stop(g.coordinators)


def connected(url: str) -> list[dict[str, Any]]:
    """The workers connected to the coordinator at ``url`` (its own, not the grid's)."""
    workers: list[dict[str, Any]] = httpx.get(f"{url}/api/workers", headers=AUTH, timeout=5).json()
    return workers


def tasks_done(url: str) -> int:
    return sum(w["tasks_done"] for w in connected(url))


class Stuck(Exception):
    """Some results did not come within --timeout; the message says what each part held."""


def batch(
    client: Any,
    g: Grid,
    server: RedisServer,
    what: str,
    tasks: list[dict[str, Any]],
    timeout: float,
) -> list[Any]:
    """The results of one job of ``tasks``; Stuck (with a diagnosis) if it stalls."""
    job = client.submit_job("repeat_multiply", tasks)
    try:
        return list(job.results(timeout))
    except TimeoutError:
        raise Stuck(diagnose(g, server, what, job.futures)) from None


def diagnose(g: Grid, server: RedisServer, what: str, futures: list[Any]) -> str:
    """Where a stalled job is: results the client has, the newest jobs as each coordinator
    reports them, its workers, and the shared queue's streams in Redis."""
    done = sum(f.done() for f in futures)
    parts = [f"{what} stalled: the client had {done:,} of {len(futures):,} results"]
    for i, url in enumerate(g.urls):
        try:
            jobs = httpx.get(f"{url}/api/jobs", params={"limit": 2}, headers=AUTH, timeout=5)
            held = ", ".join(
                f"job {j['job_id']} {j['state']} total {j['total']} queued {j['queued']} "
                f"leased {j['leased']} done {j['done']} failed {j['failed']}"
                for j in jobs.json()
            )
            workers = "; ".join(
                f"worker {w['worker_id']} {w['state']} in flight {w['in_flight']} "
                f"done {w['tasks_done']}"
                for w in connected(url)
            )
            parts.append(f"coordinator {i + 1}: {held}; {workers}")
        except (httpx.HTTPError, ValueError) as exc:
            parts.append(f"coordinator {i + 1}: no answer ({exc})")
    for key in sorted(server.client.scan_iter(f"{g.prefix}q:*", count=1000)):
        if server.client.type(key) != b"stream":
            continue
        groups = [
            {k: v for k, v in group.items() if k in ("pending", "lag", "entries-read")}
            for group in server.client.xinfo_groups(key)
        ]
        parts.append(
            f"stream {key.decode()[len(g.prefix) :]}: length {server.client.xlen(key)}, "
            f"groups {groups}"
        )
    return "; ".join(parts)


def run_once(server: RedisServer, n: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """One run of ``n`` coordinators: tasks/s, latency, CPU by role, Redis commands."""
    from browsergrid import Client

    workers = max(args.workers, n)
    with grid(server.url, n, workers, args.prefetch, logs) as g:
        with Client(g.urls[0], token=TOKEN) as client:
            tasks = [{"initial": float(i), "factor": 1.0, "times": 1} for i in range(args.tasks)]
            batch(client, g, server, "warm-up", tasks[:WARM_UP], args.timeout)
            roles = {
                "coordinators": [p.pid for p in g.coordinators],
                "workers": [p.pid for p in g.workers],
                "redis-server": [server.pid],
                "client": [os.getpid()],
            }
            done_before = [tasks_done(url) for url in g.urls]
            server.client.config_resetstat()
            cpu_before = {pid: cpu_seconds(pid) for pids in roles.values() for pid in pids}
            machine_before = machine_ticks()
            started = time.perf_counter()
            results = batch(client, g, server, "timed batch", tasks, args.timeout)
            elapsed = time.perf_counter() - started
            machine_after = machine_ticks()
            cpu_after = {pid: cpu_seconds(pid) for pids in roles.values() for pid in pids}
            commands = server.command_stats()
            done = [tasks_done(url) - done_before[i] for i, url in enumerate(g.urls)]
            assert results == [float(i) for i in range(args.tasks)], "wrong results"
            samples = []
            for i in range(args.latency):
                t0 = time.perf_counter()
                future = client.submit("repeat_multiply", initial=float(i), factor=1.0, times=1)
                try:
                    future.result(10)
                except TimeoutError:
                    raise Stuck(diagnose(g, server, f"single task {i + 1}", [future])) from None
                samples.append((time.perf_counter() - t0) * 1000)
        cpu = {
            role: sum(cpu_after[pid] - cpu_before[pid] for pid in pids)
            for role, pids in roles.items()
        }
        busy = (machine_after[0] - machine_before[0]) / TICKS_PER_S
        steal = (machine_after[1] - machine_before[1]) / TICKS_PER_S
        cpu["machine"] = busy
        cpu["other"] = busy - sum(cpu[role] for role in roles)
        cpu["steal"] = steal
    run: dict[str, Any] = {
        "workers": workers,
        "tasks": args.tasks,
        "tasks_per_s": args.tasks / elapsed,
        "seconds": elapsed,
        "p50_ms": percentile(samples, 0.5) if samples else None,
        "p99_ms": percentile(samples, 0.99) if samples else None,
        "cpu_percent": {role: 100 * s / elapsed for role, s in cpu.items()},
        "cpu_us_per_task": {role: 1e6 * s / args.tasks for role, s in cpu.items()},
        "tasks_by_coordinator": done,
        "redis_commands": {
            name: {**v, "us_per_task": v["usec"] / args.tasks}
            for name, v in sorted(commands.items(), key=lambda kv: -kv[1]["usec"])
        },
    }
    run["log_findings"] = scan_logs(g.logs)
    return run


def scan_logs(paths: list[Path]) -> dict[str, Any]:
    """What the coordinators' and workers' logs hold beyond routine lines: warnings,
    errors, lines that are not JSON (tracebacks), and events of the grid worth a look."""
    events: Counter[str] = Counter()
    notable: list[str] = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                if line.strip():
                    notable.append(f"{path.name}: {line.strip()[:300]}")
                continue
            event = str(entry.get("event", ""))
            events[event] += 1
            level = str(entry.get("level", "")).upper()
            if level in NOTABLE_LEVELS or event in NOTABLE_EVENTS:
                notable.append(f"{path.name}: {line[:500]}")
    return {"events": dict(events), "notable": notable}


def calls(run: dict[str, Any], command: str) -> float:
    """Calls of a Redis command per task of the timed batch. ``evalsha`` counts the Lua
    scripts (take, ack, store outcomes...); ``xreadgroup`` is called once per take (one
    job, one op: one queue), so 1 / its calls per task is the mean size of a take."""
    stats = run["redis_commands"].get(command)
    return float(stats["calls"]) / run["tasks"] if stats else 0.0


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["tasks_per_s"] for r in runs]
    latencies = [r for r in runs if r["p50_ms"] is not None]

    def med(key: str, sub: str) -> float:
        return statistics.median(float(r[key][sub]) for r in runs)

    roles = runs[0]["cpu_percent"].keys()
    shares = [
        statistics.median(
            100 * r["tasks_by_coordinator"][i] / max(1, sum(r["tasks_by_coordinator"]))
            for r in runs
        )
        for i in range(len(runs[0]["tasks_by_coordinator"]))
    ]
    return {
        "runs": len(runs),
        "workers": runs[0]["workers"],
        "tasks_per_s_best": max(rates),
        "tasks_per_s_median": statistics.median(rates),
        "p50_ms": statistics.median(r["p50_ms"] for r in latencies) if latencies else None,
        "p99_ms": statistics.median(r["p99_ms"] for r in latencies) if latencies else None,
        "cpu_percent": {role: med("cpu_percent", role) for role in roles},
        "cpu_us_per_task": {role: med("cpu_us_per_task", role) for role in roles},
        "task_share_percent": shares,
        "scripts_per_task": statistics.median(calls(r, "evalsha") for r in runs),
        "tasks_per_take": statistics.median(1 / max(calls(r, "xreadgroup"), 1e-9) for r in runs),
    }


def top_commands(runs: list[dict[str, Any]], tasks: int, k: int = 6) -> str:
    """Redis's busiest commands in the median run (by tasks/s): µs per task (calls per
    task)."""
    ordered = sorted(runs, key=lambda r: r["tasks_per_s"])
    commands = ordered[len(ordered) // 2]["redis_commands"]
    return ", ".join(
        f"{name} {v['us_per_task']:.1f} µs ({v['calls'] / tasks:.2f})"
        for name, v in list(commands.items())[:k]
    )


def source_state() -> dict[str, str]:
    """The commit, and a digest of the source tree as it is now (working tree included):
    the processes of a run import what is on disk when they start."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "browsergrid").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {"commit": commit + (" + working tree" if dirty else ""), "src": digest.hexdigest()[:12]}


def kept_logs(name: str) -> str:
    """A directory that outlives the run, for the logs of a failed run."""
    return str(Path(tempfile.mkdtemp(prefix="browsergrid-bench-grid-failed-")) / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--coordinators", default="1,2,4", help="numbers of coordinators to compare (1,2,4)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Python workers in all (2)")
    parser.add_argument("--tasks", type=int, help="tasks per timed batch (20,000; --quick 5,000)")
    parser.add_argument("--latency", type=int, help="sequential single tasks (1,000; --quick 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per number of coordinators")
    parser.add_argument("--prefetch", type=int, default=64, help="browsergrid worker --prefetch")
    parser.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for one batch before skipping"
    )
    parser.add_argument(
        "--results", help="name of the results files (default grid, grid-quick with --quick)"
    )
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    parser.add_argument(
        "--quick", action="store_true", help="5,000 tasks, 200 single tasks, 1 repeat"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    if args.tasks is None:
        args.tasks = 5_000 if args.quick else 20_000
    if args.latency is None:
        args.latency = 200 if args.quick else 1_000
    counts = [int(x) for x in args.coordinators.split(",") if x.strip()]
    notes: list[str] = []
    for n in counts:
        if n > args.workers:
            notes.append(
                f"{n} coordinators run with {n} workers, not --workers {args.workers}: "
                "each coordinator needs a worker of its own"
            )
            print(f"note: {notes[-1]}", file=sys.stderr)

    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    failures: list[dict[str, Any]] = []
    source = source_state()
    with tempfile.TemporaryDirectory(prefix="browsergrid-bench-grid-") as scratch:
        logs = args.logs or Path(scratch)
        logs.mkdir(parents=True, exist_ok=True)
        server = RedisServer(Path(scratch))
        try:
            for r in range(args.repeat):
                for n in counts:
                    where = f"{n} coordinator(s), run {r + 1}"
                    run_logs = logs / f"{n}-coordinators-run-{r + 1}"
                    run_logs.mkdir(parents=True, exist_ok=True)
                    loads = os.getloadavg()
                    try:
                        run = run_once(server, n, args, run_logs)
                    except Exception as exc:  # one failed run is a skip, not a crash
                        why = f"{type(exc).__name__}: {exc}"
                        if args.logs is None:  # keep the logs of a failed run
                            run_logs = Path(shutil.copytree(run_logs, kept_logs(run_logs.name)))
                        notes.append(f"{where}: skipped: {why} (logs in {run_logs})")
                        print(f"note: {notes[-1]}", file=sys.stderr)
                        findings = scan_logs(sorted(run_logs.iterdir()))
                        failures.append({"where": where, "why": why, **findings})
                        for line in findings["notable"]:
                            notes.append(f"{where}: {line}")
                            print(f"note: {notes[-1]}", file=sys.stderr)
                        continue
                    finally:
                        server.client.flushall()
                    run["load_average_before"] = loads
                    runs[n].append(run)
                    evalsha = run["redis_commands"].get("evalsha", {"calls": 0})["calls"]
                    log(
                        f"{where}: {run['tasks_per_s']:,.0f} tasks/s, "
                        f"p50 {run['p50_ms'] or 0:.2f} ms, "
                        f"tasks by coordinator {run['tasks_by_coordinator']}, Redis scripts "
                        f"{evalsha / args.tasks:.2f} per task, CPU % "
                        + ", ".join(f"{k} {v:.0f}" for k, v in run["cpu_percent"].items())
                    )
                    for line in run["log_findings"]["notable"]:
                        notes.append(f"{n} coordinator(s), run {r + 1}: {line}")
                        print(f"note: {notes[-1]}", file=sys.stderr)
        finally:
            version = server.version
            server.stop()

    source_after = source_state()
    if source_after["src"] != source["src"]:
        notes.append(
            f"the source tree changed during the run (src digest {source['src']} at the start, "
            f"{source_after['src']} at the end): later runs ran other code"
        )
    rows = {n: summarize(rs) for n, rs in runs.items() if rs}
    cpus = os.cpu_count() or 0
    lines = [
        f"{args.tasks:,} trivial tasks per run (after {WARM_UP:,} to warm up), "
        f"{args.latency:,} sequential single tasks, {args.workers} Python workers "
        f"(N if N > {args.workers}; --prefetch {args.prefetch}) spread round robin over the "
        "N coordinators, the client "
        f"on coordinator 1; best and median of {args.repeat} run(s); Python "
        f"{platform.python_version()}, redis-server {version}, {cpus} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, commit {source['commit']} (src digest "
        f"{source['src']})",
        "",
        "| coordinators | workers | tasks/s best | tasks/s median | submit-to-result p50 ms "
        "| p99 ms | tasks run by each coordinator, % | Redis scripts per task "
        "| tasks per take |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in counts:
        if n not in rows:
            lines.append(f"| {n} | {max(n, args.workers)} | skipped | | | | | | |")
            continue
        row = rows[n]
        p50 = f"{row['p50_ms']:.2f}" if row["p50_ms"] is not None else "—"
        p99 = f"{row['p99_ms']:.2f}" if row["p99_ms"] is not None else "—"
        share = " / ".join(f"{s:.0f}" for s in row["task_share_percent"])
        lines.append(
            f"| {n} | {row['workers']} | {row['tasks_per_s_best']:,.0f} "
            f"| {row['tasks_per_s_median']:,.0f} "
            f"| {p50} | {p99} | {share} | {row['scripts_per_task']:.2f} "
            f"| {row['tasks_per_take']:.1f} |"
        )
    lines += [
        "",
        f"CPU during the timed batch (median of the runs), in % of one core (the machine has "
        f"{cpus * 100}), and in µs per task; *other* is the rest of the machine's load:",
        "",
        "| coordinators | coordinators (sum) | workers (sum) | redis-server | client "
        "| machine busy | other | steal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, row in rows.items():
        pct, per = row["cpu_percent"], row["cpu_us_per_task"]
        cells = [
            f"{pct[role]:.0f}% ({per[role]:.0f} µs)"
            for role in ("coordinators", "workers", "redis-server", "client", "machine", "other")
        ]
        lines.append(f"| {n} | {' | '.join(cells)} | {pct['steal']:.0f}% |")
    lines += [
        "",
        "Redis's busiest commands in the median run, µs per task "
        "(commands inside Lua scripts count both on their own and in EVALSHA):",
        "",
    ]
    for n, rs in runs.items():
        if rs:
            lines.append(f"- {n} coordinator(s): {top_commands(rs, args.tasks)}")
    lines += [f"note: {note}" for note in notes]
    text = "\n".join(lines).rstrip() + "\n"
    write_results(
        args.results or ("grid-quick" if args.quick else "grid"),
        text,
        {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "redis_version": version,
            "source": {"start": source, "end": source_after},
            "rows": {str(n): row for n, row in rows.items()},
            "notes": notes,
            "failures": failures,
            "runs": {str(n): rs for n, rs in runs.items()},
        },
    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop our processes on SIGTERM
    main()
