"""Data that moves once: a job over one large input, put as a blob, on 4 Chromium tabs and
2 Python workers; how many times the input was served, and how long the job took.

    python bench/blobs.py            # about 1 minute
    python bench/blobs.py --mb 20 --tasks 200

Each tab is a browser of its own (its own Cache Storage), so each worker must fetch the
input once; the coordinator's ``/metrics`` count the fetches and bytes served. Then
locality: ``--spread`` inputs, the job's tasks interleaved over them; how many times each
input was served (a worker that holds an input gets its tasks first; without that, every
worker would end up fetching every input). The inline
comparison uses the largest input a task's arguments may carry inline (a frame is 1 MiB:
the coordinator runs with ``--max-args-bytes 1000000``): the same job with a 512 KiB string
sent inline in every task, against the same string put once as a blob.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_results
from bench.browsers import CHROMIUM_ARGS
from bench.throughput import TOKEN, browsergrid_grid
from browsergrid import Client


def checksum(data, i):  # type: ignore[no-untyped-def]
    """A little work over the input: every 4096th byte from offset i."""
    return sum(data[i % 4096 :: 4096]) + i


def length(text, i):  # type: ignore[no-untyped-def]
    """Nearly no work: what is measured is the input's way to the worker."""
    return len(text) + i


def metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    wanted = ("browsergrid_blob_fetches_total", "browsergrid_blob_bytes_served_total")
    return {
        name: float(line.split()[1])
        for line in text.splitlines()
        for name in wanted
        if line.startswith(name + " ")
    }


def timed(client: Client, fn: Any, *iterables: Any) -> float:
    started = time.perf_counter()
    results = list(client.map(fn, *iterables, timeout=600))
    assert len(results) == len(iterables[0])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="size of the large input, MB")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--tabs", type=int, default=4)
    parser.add_argument("--python-workers", type=int, default=2)
    parser.add_argument("--spread", type=int, default=10, help="inputs of the locality job")
    parser.add_argument("--spread-mb", type=float, default=2, help="size of each of them, MB")
    parser.add_argument("--name", default="blobs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("BROWSERGRID_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium not found: install Debian's 'chromium' package")
    workers = args.tabs + args.python_workers
    with ExitStack() as stack:
        url = stack.enter_context(browsergrid_grid(0, 64, ["--max-args-bytes", "1000000"]))
        ws_url = url.replace("http://", "ws://") + "/ws"
        for _ in range(args.python_workers):
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "browsergrid",
                    "worker",
                    ws_url,
                    "--quiet",
                    "--python-functions",
                    "--data-dir",
                    folder,
                ],
            )
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        stack.callback(browser.close)
        for _ in range(args.tabs):  # one browser context each: its own Cache Storage
            browser.new_context().new_page().goto(f"{url}/?workers=1")
        client = stack.enter_context(Client(url, token=TOKEN))
        deadline = time.monotonic() + 60
        while len(client.workers()) < workers:
            assert time.monotonic() < deadline, "the workers did not all connect"
            time.sleep(0.2)
        timed(client, length, ["warm up"] * workers * 4, range(workers * 4))  # Pyodide loads

        big = os.urandom(int(args.mb * 1e6))
        before = metrics(url)
        started = time.perf_counter()
        ref = client.put(big)
        put_s = time.perf_counter() - started
        job_s = timed(client, checksum, [ref] * args.tasks, range(args.tasks))
        after = metrics(url)
        fetches = after["browsergrid_blob_fetches_total"] - before["browsergrid_blob_fetches_total"]
        served = (
            after["browsergrid_blob_bytes_served_total"]
            - before["browsergrid_blob_bytes_served_total"]
        )

        # locality: several inputs, each read by many tasks, the tasks interleaved
        inputs = [client.put(os.urandom(int(args.spread_mb * 1e6))) for _ in range(args.spread)]
        spread_before = metrics(url)["browsergrid_blob_bytes_served_total"]
        picks = [inputs[k % args.spread] for k in range(args.tasks)]
        spread_s = timed(client, checksum, picks, range(args.tasks))
        between = metrics(url)["browsergrid_blob_bytes_served_total"]
        copies = (between - spread_before) / sum(ref.size for ref in inputs)
        # the same again: now workers hold some inputs, and tasks may go where they are
        again_s = timed(client, checksum, picks, range(args.tasks, 2 * args.tasks))
        again = (metrics(url)["browsergrid_blob_bytes_served_total"] - between) / sum(
            ref.size for ref in inputs
        )

        text = "x" * 512 * 1024
        inline_s = timed(client, length, [text] * args.tasks, range(args.tasks))
        as_blob = client.put(text)
        blob_s = timed(client, length, [as_blob] * args.tasks, range(args.tasks))

    rows = [
        "| measure | value |",
        "|---|---|",
        f"| workers | {args.tabs} Chromium tabs (one browser each) + {args.python_workers} "
        "Python workers |",
        f"| large input | {len(big) / 1e6:.1f} MB, put in {put_s:.2f} s |",
        f"| job over it | {args.tasks} tasks in {job_s:.2f} s |",
        f"| times it was served | {served / len(big):.2f} ({served / 1e6:.1f} MB; at most "
        f"once per worker: {workers}; blob downloads in all, the function's source "
        f"included: {fetches:.0f}) |",
        f"| {args.spread} inputs of {args.spread_mb:g} MB, {args.tasks} tasks interleaved over "
        f"them | {spread_s:.2f} s; each input served {copies:.2f} times on average (every "
        f"worker fetching every input: {workers}) |",
        f"| the same job again | {again_s:.2f} s; each input served {again:.2f} more times |",
        f"| 512 KiB string inline in every task | {args.tasks} tasks in {inline_s:.2f} s |",
        f"| the same string as one blob | {args.tasks} tasks in {blob_s:.2f} s |",
    ]
    data = {
        "args": vars(args),
        "bytes": len(big),
        "put_s": put_s,
        "job_s": job_s,
        "fetches": fetches,
        "times_served": served / len(big),
        "bytes_served": served,
        "workers": workers,
        "spread_s": spread_s,
        "spread_copies": copies,
        "again_s": again_s,
        "again_copies": again,
        "inline_512k_s": inline_s,
        "blob_512k_s": blob_s,
    }
    write_results(args.name, "\n".join(rows) + "\n", data)


if __name__ == "__main__":
    main()
