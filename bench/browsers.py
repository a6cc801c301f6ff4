"""Browser tabs and Python workers against their own raw speed: how much of a worker's compute
reaches the client through the grid, by task length.

    python bench/browsers.py            # 2 then 4 pages, then 2 Python workers: about 105 s
    python bench/browsers.py --quick    # 2 pages at 1 and 5 ms, Python at 1 and 20 ms: ~30 s
    python bench/browsers.py --quick --sizes 5 --python-sizes 20   # regress.py's: ~20 s
    python bench/browsers.py --sizes '' --python-sizes '' # Pyodide's start only: ~15 s

One op, ``monte_carlo_pi``, in tasks of about 1, 5, 20 and 100 ms in a Web Worker (``--sizes``)
and 1, 5, 20, 40 and 100 ms in CPython (``--python-sizes``). For each size it measures two
rates in the same run, one after the other:

- raw: the op in a loop, no grid. In Chromium: the same worker pages, each with one more
  dedicated Web Worker (a module made in the page, importing the coordinator's own
  ``/static/js/ops.js`` and calling ``runOp`` as ``compute-worker.js`` does), all pages
  looping at once for ``--seconds``; the rate is the sum of each Web Worker's points over its
  own time. In Python: ``multiprocessing.Pool(2).map`` of the worker's own ``run_op`` on the
  same arguments as the grid's job.
- grid: one job (``Client.map``) through one coordinator (``serve --memory``) to the same pages
  (``?workers=1``: one compute Web Worker each, 16 tasks waiting) or to 2 ``browsergrid worker``
  processes (``--concurrency 1``, default prefetch), timed from the submit to the last result.
  Its size: for tabs, what a short job of the same tasks (0.1 s of the raw rate) shows the grid
  does in ``--seconds``; for Python, the Pool's tasks, the same args. At least 8 tasks per
  worker.

Every Web Worker, raw or compute, first runs ``WARM_UP_TASKS`` tasks (V8 gives the op its
fastest code only after about a hundred calls). A size whose raw loop or grid job met other
work on the machine (over ``BUSY_OUTSIDE`` %) is measured once more, and the quieter kept.

Efficiency is grid points/s / raw points/s. A task's length is what it takes alone: one Web
Worker (or this Python process) timing tasks of that size with nothing else running, at the
start; the points per task are set from the op's speed measured there. The length at which
efficiency reaches 50% for good (interpolated on a log scale between the sizes around the
last one below 50%) is the grid's granularity. During each raw loop and grid job the CPU time
of each part is read from /proc: Web Workers, the pages' main threads, the rest of Chromium,
the coordinator, Python workers or Pool processes, this script (with Playwright's driver),
and the rest of the machine.

Then Pyodide's start (``--pyodide-visits``, 3; 2 with ``--quick``; 0: none): one Chromium
profile, new to the coordinator's origin, and one page after the other in it (each a visit:
a new page, its own compute Web Worker and Pyodide), idle after its welcome task, is sent a
one-task ``python`` job; the time from the submit to the result, and what the page's log says
of Python's start (the first visit saves a snapshot, later ones start from it).

Chromium is Debian's (``$BROWSERGRID_CHROMIUM`` or ``chromium``
on the PATH), driven by Playwright with ``executable_path``; it is never downloaded.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._report import write_results
from bench.throughput import TOKEN, browsergrid_grid, settle
from browsergrid import Client
from browsergrid.ops import run_op

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OP = "monte_carlo_pi"
TAB_SIZES_MS = (1, 5, 20, 100)
PYTHON_SIZES_MS = (1, 5, 20, 40, 100)
QUICK_TAB_SIZES_MS = (1, 5)
QUICK_PYTHON_SIZES_MS = (1, 20)
# Warm-up, per Web Worker: V8 optimizes monte_carlo_pi in tiers (about 11 ns a point, then 7
# here) and takes the last step only after about a hundred calls of it, whatever their size.
WARM_UP_SAMPLES = 250_000
WARM_UP_TASKS = 200
BUSY_OUTSIDE = 10  # % of the machine: other work this busy during a run, and it is run again
WAIT_QUIET_S = [20.0]  # longest wait for quiet CPUs before a run (main sets it: 5 with --quick)
HALF = 0.5  # the efficiency whose task length is the grid's granularity
TIMED_ALONE_MS = 250  # about how long each size is timed alone, at the start

# The raw loop, made in each page as a module Web Worker. It imports the op from the
# coordinator, so it runs the very code compute-worker.js runs (runOp: checks, then the op).
# {count}: that many tasks, each timed; {startAt, seconds}: tasks back to back from startAt
# (ms since the epoch, the same instant in every page) until `seconds` later.
RAW_WORKER = """
import { runOp } from '%(origin)s/static/js/ops.js';

self.onmessage = ({ data: { samples, seed, count, startAt, seconds } }) => {
  if (count !== undefined) {
    const ms = [];
    for (let i = 0; i < count; i += 1) {
      const t0 = performance.now();
      runOp('monte_carlo_pi', { samples, seed: seed + i });
      ms.push(performance.now() - t0);
    }
    self.postMessage({ ms });
    return;
  }
  setTimeout(() => {
    const start = performance.now();
    const end = start + startAt + seconds * 1000 - Date.now();
    let tasks = 0;
    let hits = 0;
    let now = start;
    while (now < end) {
      hits += runOp('monte_carlo_pi', { samples, seed: seed + tasks }).hits;
      tasks += 1;
      now = performance.now();
    }
    self.postMessage({ tasks, ms: now - start, hits });
  }, Math.max(0, startAt - Date.now()));
};
"""
MAKE_RAW_JS = """(source) => {
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  window.__raw = new Worker(url, { type: 'module' });
}"""
ASK_RAW_JS = """(message) => {
  window.__rawDone = new Promise((resolve, reject) => {
    window.__raw.onmessage = (event) => resolve(event.data);
    window.__raw.onerror = (event) => reject(new Error(`raw Web Worker: ${event.message}`));
  });
  window.__raw.postMessage(message);
}"""
RAW_DONE_JS = "() => window.__rawDone"

# Where the CPU goes, as read from /proc (parts of this benchmark, then the machine)
WEB_WORKERS = "Web Workers"
PAGE_MAIN = "pages' main threads"
CHROMIUM = "rest of Chromium"
COORDINATOR = "coordinator"
PYTHON_WORKERS = "Python workers"
POOL = "Pool processes"
CLIENT = "this script"
OUTSIDE = "outside this benchmark"
STEAL = "stolen by the hypervisor"
IDLE = "idle"
TAB_PARTS = (WEB_WORKERS, PAGE_MAIN, CHROMIUM, COORDINATOR, CLIENT, OUTSIDE, STEAL, IDLE)
PYTHON_PARTS = (POOL, PYTHON_WORKERS, COORDINATOR, CLIENT, OUTSIDE, STEAL, IDLE)
_TICKS = os.sysconf("SC_CLK_TCK")
_CPUS = os.cpu_count() or 1
_MY_ARGV = Path(f"/proc/{os.getpid()}/cmdline").read_text().replace("\0", " ").split()


def _stat(path: Path) -> tuple[int, int]:
    """(parent pid, user + system clock ticks) of a /proc process or thread."""
    text = path.read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _part(argv: list[str], ppid: int) -> str:
    if argv[1:4] == ["-m", "browsergrid", "serve"]:
        return COORDINATOR
    if argv[1:4] == ["-m", "browsergrid", "worker"]:
        return PYTHON_WORKERS
    if argv and "chromium" in Path(argv[0]).name:
        return CHROMIUM
    if ppid == os.getpid() and argv == _MY_ARGV:
        return POOL  # a forked multiprocessing child
    return CLIENT  # this process, Playwright's driver


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of this benchmark (this process and every process
    it started; Chromium's renderers split by thread) and by the machine, with the time."""
    procs: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                procs[int(entry.name)] = _stat(entry / "stat")
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in procs.items():
        children[ppid].append(pid)
    ticks: Counter[str] = Counter()
    mine = [os.getpid()]
    for pid in mine:  # grows as it goes: every descendant
        mine += children[pid]
        with suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").split()
            part, total = _part(argv, procs[pid][0]), procs[pid][1]
            if part == CHROMIUM and "--type=renderer" in argv:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    name = (task / "comm").read_text().strip()
                    if name == "DedicatedWorker" or task.name == str(pid):
                        thread = _stat(task / "stat")[1]
                        ticks[WEB_WORKERS if name == "DedicatedWorker" else PAGE_MAIN] += thread
                        total -= thread
            ticks[part] += total
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    seconds = {part: n / _TICKS for part, n in ticks.items()}
    seconds["machine"] = (cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]) / _TICKS
    seconds[STEAL] = cpu[7] / _TICKS if len(cpu) > 7 else 0.0
    seconds["wall"] = time.monotonic()
    return seconds


def cpu_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each part's CPU between two ``cpu_seconds()``, in % of the machine's cores."""
    capacity = (after["wall"] - before["wall"]) * _CPUS / 100
    used = {k: (after.get(k, 0) - before.get(k, 0)) / capacity for k in after if k != "wall"}
    machine = used.pop("machine")
    ours = sum(v for k, v in used.items() if k != STEAL)
    used[OUTSIDE] = machine - ours
    used[IDLE] = 100 - machine - used[STEAL]
    return {k: round(v, 1) for k, v in used.items()}


def wait_for_workers(url: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` workers that run ``monte_carlo_pi`` are connected."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while True:
        workers = httpx.get(f"{url}/api/workers", headers=headers, timeout=10).json()
        if sum(1 for w in workers if OP in (w.get("ops") or [])) >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(workers)} of {count} workers joined in {timeout:g} s")
        time.sleep(0.2)


def half_length(points: Iterable[tuple[float, float]]) -> tuple[str, float]:
    """Where efficiency reaches ``HALF`` for good, from (task ms, efficiency) points: ("=", ms)
    interpolated on a log scale after the last point below it; ("<", the smallest ms) when no
    point is below; (">", the largest ms) when the largest is."""
    ordered = sorted(points)
    below = [i for i, (_, efficiency) in enumerate(ordered) if efficiency < HALF]
    if not below:
        return "<", ordered[0][0]
    if below[-1] == len(ordered) - 1:
        return ">", ordered[-1][0]
    (x0, e0), (x1, e1) = ordered[below[-1]], ordered[below[-1] + 1]
    share = (HALF - e0) / (e1 - e0)
    return "=", math.exp(math.log(x0) + share * (math.log(x1) - math.log(x0)))


def half_text(relation: str, ms: float) -> str:
    if relation == "<":
        return f"below the smallest measured ({ms:.2f} ms)"
    if relation == ">":
        return f"above the largest measured ({ms:.1f} ms)"
    return f"{ms:.2f} ms"


def quiet() -> None:
    """Wait until the machine's CPUs are quiet (``settle``), at most ``WAIT_QUIET_S[0]``."""
    settle(most_s=WAIT_QUIET_S[0])


def usage(
    before: dict[str, float], after: dict[str, float], points: int, part: str
) -> dict[str, Any]:
    """The CPU shares of a run, and the CPU its workers (``part``) spent per point, in ns: the
    op's speed in the run, the protocol's work in the workers included."""
    cpu = cpu_shares(before, after)
    spent = cpu.get(part, 0.0) / 100 * (after["wall"] - before["wall"]) * _CPUS
    return {"cpu": cpu, "worker_ns_per_point": spent / points * 1e9}


def grid_job(client: Client, samples: int, count: int, part: str) -> dict[str, Any]:
    """One job of ``count`` tasks, timed from the submit to the last result (all checked)."""
    args = [{"samples": samples, "seed": seed} for seed in range(count)]
    before = cpu_seconds()
    started = time.perf_counter()
    results = list(client.map(OP, args))
    seconds = time.perf_counter() - started
    after = cpu_seconds()
    assert all(r["samples"] == samples and 0 < r["hits"] <= samples for r in results)
    return {
        "tasks": count,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(count / seconds, 2),
        "mpoints_per_s": count * samples / seconds / 1e6,
        **usage(before, after, count * samples, part),
    }


def steady(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A row from ``measure()``; measured once more when other work on the machine took more
    than ``BUSY_OUTSIDE`` % of it during its raw run or grid job: then the quieter of the two."""

    def busy(row: dict[str, Any]) -> float:
        return max(float(row[run]["cpu"].get(OUTSIDE, 0.0)) for run in ("raw", "grid"))

    first = measure()
    if busy(first) <= BUSY_OUTSIDE:
        return first
    print(f"the machine was busy ({busy(first):.0f}%): measured again", file=sys.stderr)
    quiet()
    second = measure()
    quieter = min(first, second, key=busy)
    quieter["busy_first"] = busy(first)
    return quieter


def make_row(
    size: int, calibration: dict[str, Any], raw: dict[str, Any], grid: dict[str, Any]
) -> dict[str, Any]:
    return {
        "size_ms": size,
        "samples": calibration["samples"][size],
        "ms_alone": calibration["ms_alone"][size],
        "raw": raw,
        "grid": grid,
        "efficiency": grid["mpoints_per_s"] / raw["mpoints_per_s"],
    }


def say(what: str, row: dict[str, Any]) -> None:
    raw, grid = row["raw"], row["grid"]
    print(
        f"{time.strftime('%H:%M:%S')} {what}, {row['size_ms']} ms: raw {raw['tasks_per_s']:,.1f}, "
        f"grid {grid['tasks_per_s']:,.1f} tasks/s ({row['efficiency']:.0%})",
        file=sys.stderr,
        flush=True,
    )


def tasks_for(size_ms: float, speed_ns: float) -> int:
    """Points per task for a task of about ``size_ms``, at ``speed_ns`` per point."""
    return max(1, round(size_ms * 1e6 / speed_ns))


def ask_raw(page: Any, message: dict[str, Any]) -> Any:
    page.evaluate(ASK_RAW_JS, message)
    return page.evaluate(RAW_DONE_JS)


def calibrate_tab(page: Any, sizes: list[int]) -> dict[str, Any]:
    """The op's ns per point in one Web Worker, alone (its warm-up done), the points per
    task of each size, and what such a task takes alone (median)."""
    # rounds of 20 tasks of 500,000 points until two agree within 3% (should V8 still be
    # moving the op to its fastest code)
    speed = math.inf
    for _ in range(15):
        timed = ask_raw(page, {"samples": 500_000, "seed": 0, "count": 20})["ms"]
        speed, before = statistics.median(timed) * 1e6 / 500_000, speed
        if abs(speed - before) <= 0.03 * speed:
            break
    calibration: dict[str, Any] = {"ns_per_point": speed, "samples": {}, "ms_alone": {}}
    for size in sizes:
        samples = tasks_for(size, speed)
        count = max(3, min(25, round(TIMED_ALONE_MS / size)))
        timed = ask_raw(page, {"samples": samples, "seed": 0, "count": count})["ms"]
        calibration["samples"][size] = samples
        calibration["ms_alone"][size] = statistics.median(timed)
    return calibration


def raw_tabs(pages: list[Any], samples: int, seconds: float) -> dict[str, Any]:
    """Every page's raw Web Worker in its loop at once, for ``seconds``."""
    start_at = time.time() * 1000 + 150 + 10 * len(pages)
    for page in pages:
        page.evaluate(
            ASK_RAW_JS, {"samples": samples, "seed": 0, "startAt": start_at, "seconds": seconds}
        )
    time.sleep(max(0.0, start_at / 1000 - time.time()))
    before = cpu_seconds()
    done = [page.evaluate(RAW_DONE_JS) for page in pages]
    after = cpu_seconds()
    tasks = sum(d["tasks"] for d in done)
    points_per_s = sum(d["tasks"] * samples / d["ms"] * 1000 for d in done)
    return {
        "tasks": tasks,
        "seconds": seconds,
        "ms_per_task": sum(d["ms"] for d in done) / tasks,
        "tasks_per_s": round(points_per_s / samples, 2),
        "mpoints_per_s": points_per_s / 1e6,
        **usage(before, after, tasks * samples, WEB_WORKERS),
    }


def tab_stage(
    client: Client, pages: list[Any], calibration: dict[str, Any], sizes: list[int], seconds: float
) -> dict[str, Any]:
    """Raw then grid, size by size, on ``pages``, after a warm-up job for their compute Web
    Workers: V8 optimizes the op fully only after about a hundred calls (``WARM_UP_TASKS``)."""
    n = len(pages)
    grid_job(client, WARM_UP_SAMPLES, WARM_UP_TASKS * n, WEB_WORKERS)

    def measure(size: int) -> dict[str, Any]:
        samples = calibration["samples"][size]
        quiet()
        raw = raw_tabs(pages, samples, seconds)
        # a short job first, to size the timed one: the grid may be far slower than raw
        probe = grid_job(client, samples, max(4 * n, round(0.1 * raw["tasks_per_s"])), WEB_WORKERS)
        count = math.ceil(max(seconds * probe["tasks_per_s"], 8 * n) / n) * n
        return make_row(size, calibration, raw, grid_job(client, samples, count, WEB_WORKERS))

    rows = []
    for size in sizes:
        rows.append(steady(partial(measure, size)))
        say(f"{n} pages", rows[-1])
    return {
        "kind": "tabs",
        "label": f"Chromium, {n} pages",
        "workers": n,
        "ns_per_point": calibration["ns_per_point"],
        "rows": rows,
    }


@contextmanager
def grid_and_chromium(*, welcome: bool = False) -> Iterator[tuple[str, Client, Any]]:
    """A coordinator (``serve --memory``; ``welcome``: with its welcome task), a client of it,
    and Debian's Chromium with a new profile: yields (its URL, the client, the browser)."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("BROWSERGRID_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium not found: install Debian's 'chromium' package")
    with (
        browsergrid_grid(0, 64, ["--memory"], welcome=welcome) as url,
        Client(url, token=TOKEN) as client,
        sync_playwright() as playwright,
        tempfile.TemporaryDirectory(prefix="browsergrid-chromium-") as profile,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield url, client, context
        finally:
            context.close()


def bench_tabs(page_counts: list[int], sizes: list[int], seconds: float) -> list[dict[str, Any]]:
    """One coordinator and one Chromium; for each count of pages (growing), raw and grid."""
    stages = []
    with grid_and_chromium() as (url, client, context):
        pages: list[Any] = []
        calibration = None
        for count in sorted(page_counts):
            while len(pages) < count:
                page = context.new_page()
                page.goto(f"{url}/?workers=1")
                page.evaluate(MAKE_RAW_JS, RAW_WORKER % {"origin": url})
                ask_raw(page, {"samples": WARM_UP_SAMPLES, "seed": 0, "count": WARM_UP_TASKS})
                pages.append(page)
            wait_for_workers(url, count)
            if calibration is None:
                quiet()
                calibration = calibrate_tab(pages[0], sizes)
            stages.append(tab_stage(client, pages, calibration, sizes, seconds))
    return stages


def square(x: int) -> int:
    """The function of the ``python`` job that times Pyodide's start: nothing else to do."""
    return x * x


def bench_pyodide(visits: int) -> list[dict[str, Any]]:
    """A tab's first python task, visit after visit in one new Chromium profile: the time
    from the submit to the result, and the page's line on how Python started."""
    found = []
    with grid_and_chromium(welcome=True) as (url, client, context):
        for visit in range(1, visits + 1):
            page = context.new_page()
            lines: list[str] = []
            page.on("console", lambda message, lines=lines: lines.append(message.text))
            page.goto(f"{url}/?workers=1")
            page.wait_for_function("window.browsergrid.tasksDone >= 1", timeout=60_000)
            page.wait_for_timeout(500)  # idle, as a tab waiting for work is
            quiet()
            started = time.perf_counter()
            future = client.submit(square, visit)
            while not future.done():  # Playwright runs its handlers inside its own calls
                page.wait_for_timeout(5)
            ms = (time.perf_counter() - started) * 1000
            assert future.result() == visit * visit
            start = "; ".join(
                line for line in lines if line.startswith(("Python started", "Python's"))
            )
            found.append({"visit": visit, "ms": round(ms, 1), "python_start": start})
            print(f"  Pyodide, visit {visit}: {ms:,.0f} ms ({start})", flush=True)
            page.close()
    return found


def render_pyodide(visits: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### Pyodide's start: a tab's first `python` task, from the submit to the result",
        "",
        "One Chromium profile, one visit after the other (a new page each time).",
        "",
        "| visit | submit to result | the page's log |",
        "|---|---|---|",
    ]
    for row in visits:
        lines.append(f"| {row['visit']} | {row['ms']:,.0f} ms | {row['python_start']} |")
    return lines


def _run(args: dict[str, Any]) -> Any:
    return run_op(OP, args)


def calibrate_python(sizes: list[int]) -> dict[str, Any]:
    """As ``calibrate_tab``, in this process: the same function the workers and Pool run."""
    each = []
    for seed in range(10):
        started = time.perf_counter()
        _run({"samples": 20_000, "seed": seed})
        each.append((time.perf_counter() - started) * 1e9 / 20_000)
    speed = statistics.median(each)
    calibration: dict[str, Any] = {"ns_per_point": speed, "samples": {}, "ms_alone": {}}
    for size in sizes:
        samples = tasks_for(size, speed)
        timed = []
        for seed in range(max(3, min(25, round(TIMED_ALONE_MS / size)))):
            started = time.perf_counter()
            _run({"samples": samples, "seed": seed})
            timed.append((time.perf_counter() - started) * 1000)
        calibration["samples"][size] = samples
        calibration["ms_alone"][size] = statistics.median(timed)
    return calibration


def bench_python(workers: int, sizes: list[int], seconds: float) -> dict[str, Any]:
    """``workers`` Pool processes, then as many ``browsergrid worker`` processes, on the same
    tasks (the count the Pool does in about ``seconds``), size by size."""
    quiet()
    calibration = calibrate_python(sizes)
    rows = []
    # the Pool forks before this process has other threads (the client's)
    with (
        multiprocessing.get_context("fork").Pool(workers) as pool,
        browsergrid_grid(workers, 64, ["--memory"]) as url,
        Client(url, token=TOKEN) as client,
    ):
        wait_for_workers(url, workers)
        warm = {"samples": calibration["samples"][sizes[0]], "seed": 0}
        pool.map(_run, [warm] * 4 * workers)
        grid_job(client, warm["samples"], 4 * workers, PYTHON_WORKERS)

        def measure(size: int) -> dict[str, Any]:
            samples = calibration["samples"][size]
            count = math.ceil(seconds * 1000 / calibration["ms_alone"][size]) * workers
            args = [{"samples": samples, "seed": seed} for seed in range(count)]
            quiet()
            before = cpu_seconds()
            started = time.perf_counter()
            done = pool.map(_run, args)
            elapsed = time.perf_counter() - started
            after = cpu_seconds()
            assert all(r["samples"] == samples for r in done)
            raw = {
                "tasks": count,
                "seconds": round(elapsed, 3),
                "ms_per_task": elapsed * 1000 * workers / count,
                "tasks_per_s": round(count / elapsed, 2),
                "mpoints_per_s": count * samples / elapsed / 1e6,
                **usage(before, after, count * samples, POOL),
            }
            grid = grid_job(client, samples, count, PYTHON_WORKERS)
            return make_row(size, calibration, raw, grid)

        for size in sizes:
            rows.append(steady(partial(measure, size)))
            say("Python", rows[-1])
    return {
        "kind": "python",
        "label": f"Python, {workers} workers",
        "workers": workers,
        "ns_per_point": calibration["ns_per_point"],
        "rows": rows,
    }


def render(stage: dict[str, Any]) -> list[str]:
    """The markdown of one kind of worker: rates and efficiency, granularity, CPU."""
    tabs = stage["kind"] == "tabs"
    n = stage["workers"]
    unit = "Web Workers" if tabs else "processes"
    lines = [
        f"### {stage['label']}"
        + (
            " (`?workers=1`: one compute Web Worker each); raw: one more Web Worker per page"
            " looping on `runOp` from `/static/js/ops.js`"
            if tabs
            else f" (`browsergrid worker --concurrency 1`); raw: `multiprocessing.Pool({n}).map`"
        ),
        "",
        f"The op alone: {stage['ns_per_point']:.2f} ns per point.",
        "",
        f"| task size | points per task | ms per task alone | ms per task, raw ({n} {unit}) "
        "| raw Mpoints/s (tasks/s) | grid Mpoints/s (tasks/s) | grid tasks, s | efficiency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    digits = 1 if tabs else 3
    for row in stage["rows"]:
        raw, grid = row["raw"], row["grid"]
        lines.append(
            f"| {row['size_ms']} ms | {row['samples']:,} | {row['ms_alone']:.2f} "
            f"| {raw['ms_per_task']:.2f} | {raw['mpoints_per_s']:.{digits}f} "
            f"({raw['tasks_per_s']:,.1f}) | {grid['mpoints_per_s']:.{digits}f} "
            f"({grid['tasks_per_s']:,.1f}) | {grid['tasks']:,}, {grid['seconds']:.2f} "
            f"| **{row['efficiency']:.1%}** |"
        )
    relation, ms = half_length((r["ms_alone"], r["efficiency"]) for r in stage["rows"])
    parts = TAB_PARTS if tabs else PYTHON_PARTS
    lines += [
        "",
        f"Efficiency reaches 50% at: **{half_text(relation, ms)}** of a task alone.",
        "",
        f"CPU during each run, % of the machine's {_CPUS} cores, and the CPU its "
        f"{'Web Workers' if tabs else 'workers'} spent per point:",
        "",
        "| task size | run | ns per point | " + " | ".join(parts) + " |",
        "|---|---|---|" + "---|" * len(parts),
    ]
    for row in stage["rows"]:
        for run in ("raw", "grid"):
            cpu = row[run]["cpu"]
            lines.append(
                f"| {row['size_ms']} ms | {run} | {row[run]['worker_ns_per_point']:,.1f} | "
                + " | ".join(f"{cpu.get(part, 0.0):.1f}" for part in parts)
                + " |"
            )
    again = [
        f"{r['size_ms']} ms ({r['busy_first']:.0f}%)" for r in stage["rows"] if "busy_first" in r
    ]
    if again:
        lines += [
            "",
            f"Measured twice, as other work took over {BUSY_OUTSIDE}% of the machine the first "
            f"time: {', '.join(again)}; the quieter run is shown.",
        ]
    return lines


def chromium_version() -> str:
    executable = os.environ.get("BROWSERGRID_CHROMIUM") or shutil.which("chromium") or "chromium"
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    return "unknown"


def sizes_arg(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", help="counts of Chromium pages, e.g. 2,4 (--quick: 2)")
    parser.add_argument("--sizes", help="tab task sizes, ms (default 1,5,20,100; --quick 1,5)")
    parser.add_argument(
        "--python-sizes", help="Python task sizes, ms (default 1,5,20,40,100; --quick 1,20)"
    )
    parser.add_argument("--python-workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, help="per raw loop and grid job (3; --quick 2)")
    parser.add_argument(
        "--pyodide-visits", type=int, help="visits timing Pyodide's start (3; --quick 2; 0: none)"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run: about 30 s")
    parser.add_argument("--name", help="results name (default: browsers, or browsers-quick)")
    args = parser.parse_args()
    if args.pages is None:
        args.pages = "2" if args.quick else "2,4"
    if args.sizes is None:
        args.sizes = ",".join(map(str, QUICK_TAB_SIZES_MS if args.quick else TAB_SIZES_MS))
    if args.python_sizes is None:
        sizes = QUICK_PYTHON_SIZES_MS if args.quick else PYTHON_SIZES_MS
        args.python_sizes = ",".join(map(str, sizes))
    args.seconds = args.seconds or (2.0 if args.quick else 3.0)
    if args.pyodide_visits is None:
        args.pyodide_visits = 2 if args.quick else 3
    WAIT_QUIET_S[0] = 5.0 if args.quick else 20.0
    started = time.monotonic()
    load = os.getloadavg()[0]
    stages = []
    if sizes_arg(args.sizes) and sizes_arg(args.pages):
        stages += bench_tabs(sizes_arg(args.pages), sizes_arg(args.sizes), args.seconds)
    if sizes_arg(args.python_sizes) and args.python_workers > 0:
        stages.append(bench_python(args.python_workers, sizes_arg(args.python_sizes), args.seconds))
    pyodide = bench_pyodide(args.pyodide_visits) if args.pyodide_visits > 0 else []
    for stage in stages:
        relation, ms = half_length((r["ms_alone"], r["efficiency"]) for r in stage["rows"])
        stage["half"] = {"relation": relation, "ms": ms}
    seconds = time.monotonic() - started
    lines = [
        f"`monte_carlo_pi`: the grid's rate against the raw rate of the same workers, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {_CPUS} CPUs, 1-min load {load:.2f} at the start, "
        f"{chromium_version()}, Python {platform.python_version()}; "
        f"{args.seconds:g} s per raw loop and grid job; the run took {seconds:.0f} s",
    ]
    for stage in stages:
        lines += ["", *render(stage)]
    if pyodide:
        lines += ["", *render_pyodide(pyodide)]
    write_results(
        args.name or ("browsers-quick" if args.quick else "browsers"),
        "\n".join(lines) + "\n",
        {
            "args": vars(args),
            "seconds": round(seconds, 1),
            "load": load,
            "stages": stages,
            "pyodide": pyodide,
        },
    )


if __name__ == "__main__":
    main()
