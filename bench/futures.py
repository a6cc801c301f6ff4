"""Tasks that depend on tasks: a reduction as a tree of futures, against the same
reduction driven level by level from the client, and a fan-out of many tasks on one.

    python bench/futures.py                  # about half a minute
    python bench/futures.py --leaves 4096 --fan-out 20000

On 2 Python workers (``--python-functions``) and a coordinator on its own store:

- tree: ``--leaves`` tasks, then ``leaves - 1`` additions in pairs, each taking two
  futures; the client waits only for the root. Against it, "levels": the same tasks, but
  the client waits for each level's results and submits the next level with them (what a
  user without futures does). The difference is the round trips the client no longer
  makes; the coordinator's own cost per dependency is what is left.
- fan-out: one task, then ``--fan-out`` tasks that each take its future, against as many
  tasks that take its value inline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_results
from bench.throughput import TOKEN, browsergrid_grid
from browsergrid import Client


def add(a, b):  # type: ignore[no-untyped-def]
    return a + b


def tree(client: Client, leaves: int) -> tuple[float, Any]:
    started = time.perf_counter()
    level = client.submit_job(add, range(leaves), [0] * leaves).futures
    while len(level) > 1:
        level = [client.submit(add, a, b) for a, b in zip(level[::2], level[1::2], strict=True)]
    total = level[0].result(timeout=600)
    return time.perf_counter() - started, total


def levels(client: Client, leaves: int) -> tuple[float, Any]:
    started = time.perf_counter()
    values = list(client.map(add, range(leaves), [0] * leaves, timeout=600))
    while len(values) > 1:
        values = list(client.map(add, values[::2], values[1::2], timeout=600))
    return time.perf_counter() - started, values[0]


def fan_out(client: Client, count: int, *, futures: bool) -> float:
    started = time.perf_counter()
    root = client.submit(add, 1, 2)
    value: Any = root if futures else root.result(timeout=600)
    job = client.submit_job(add, [value] * count, range(count))
    assert list(job.results(timeout=600)) == [3 + i for i in range(count)]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1024, help="a power of two")
    parser.add_argument("--fan-out", type=int, default=10_000)
    parser.add_argument("--name", default="futures")
    args = parser.parse_args()
    if args.leaves < 2 or args.leaves & (args.leaves - 1):
        raise SystemExit("--leaves must be a power of two, 2 or more")
    with ExitStack() as stack:
        url = stack.enter_context(browsergrid_grid(0, 64, ["--memory"]))
        for _ in range(2):
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            command = [sys.executable, "-m", "browsergrid", "worker", url.replace("http", "ws")]
            command += ["--quiet", "--python-functions", "--data-dir", folder]
            proc = subprocess.Popen(command)
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        client = stack.enter_context(Client(url, token=TOKEN))
        deadline = time.monotonic() + 60
        while len(client.workers()) < 2:
            assert time.monotonic() < deadline, "the workers did not connect"
            time.sleep(0.2)
        list(client.map(add, range(100), range(100)))  # warm up
        expected = sum(range(args.leaves))
        tree_s, tree_sum = tree(client, args.leaves)
        levels_s, levels_sum = levels(client, args.leaves)
        assert tree_sum == levels_sum == expected
        futures_s = fan_out(client, args.fan_out, futures=True)
        inline_s = fan_out(client, args.fan_out, futures=False)
    depth = args.leaves.bit_length() - 1
    tasks = 2 * args.leaves - 1
    table = "\n".join(
        [
            f"| {args.leaves} leaves, {tasks} tasks, depth {depth} | seconds |",
            "|---|---|",
            f"| tree of futures (the client waits for the root) | {tree_s:.2f} |",
            f"| level by level (the client waits for each level) | {levels_s:.2f} |",
            f"| fan-out: {args.fan_out} tasks on one future | {futures_s:.2f} |",
            f"| fan-out: {args.fan_out} tasks, its value inline | {inline_s:.2f} |",
        ]
    )
    write_results(
        args.name,
        table,
        {
            "args": vars(args),
            "tree_s": tree_s,
            "levels_s": levels_s,
            "fan_out_futures_s": futures_s,
            "fan_out_inline_s": inline_s,
        },
    )


if __name__ == "__main__":
    main()
