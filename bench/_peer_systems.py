"""The peers bench/throughput.py measures browsergrid against, all in one shape.

Each peer is a context manager, ``start(timeout)``, that starts the system on this machine
with 2 worker processes and yields two functions: ``batch(n)`` runs ``inc(x) = x + 1`` for
``x`` in ``range(n)`` and returns the results in order; ``one(x)`` runs a single ``inc(x)``
and waits for it. Leaving the context stops everything it started. ``measure`` times them
all alike (a warm-up, one timed batch, single tasks one after another), and
``run_peer`` also checks that no process the peer started outlives it.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 2_000
ONE_TIMEOUT = 10  # seconds for one single task

Batch = Callable[[int], list[int]]
One = Callable[[int], int]
Start = Callable[[float], AbstractContextManager[tuple[Batch, One]]]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stop(procs: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM the processes this script started, then SIGKILL any still alive after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def inc(x: int) -> int:
    return x + 1


def measure(batch: Batch, one: One, tasks: int, latency_n: int) -> dict[str, float]:
    """A warm-up batch, then ``tasks`` tasks timed from submission to the last result (all
    checked), then ``latency_n`` single tasks one after another."""
    assert batch(WARM_UP) == [inc(x) for x in range(WARM_UP)]
    started = time.perf_counter()
    results = batch(tasks)
    elapsed = time.perf_counter() - started
    assert results == [inc(x) for x in range(tasks)]
    samples = []
    for x in range(latency_n):
        t0 = time.perf_counter()
        assert one(x) == x + 1
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "tasks_per_s": tasks / elapsed,
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
    }


def run_peer(
    start: Start, tasks: int, latency_n: int, timeout: float, notes: list[str], name: str
) -> dict[str, float]:
    """``measure`` one fresh instance of a peer. The new processes below this one just before
    the peer stops, or after (if it failed to start), are its own; any still alive 10 s after
    it stopped is noted and ended by its PID."""
    before = set(descendants(os.getpid()))

    def started() -> dict[int, str]:
        return {
            pid: since
            for pid, since in descendants(os.getpid()).items()
            if pid not in before and not _python_helper(pid)
        }

    children: dict[int, str] = {}
    try:
        with start(timeout) as (batch, one):
            try:
                return measure(batch, one, tasks, latency_n)
            finally:
                children = started()
    finally:
        left = reap({**children, **started()})
        if left:
            notes.append(f"{name}: ended {len(left)} process(es) it left behind: {left}")
            print(notes[-1], file=sys.stderr)


# --- processes (Linux /proc; elsewhere no check) ---------------------------------------------


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent PID, state, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], fields[19]


def _python_helper(pid: int) -> bool:
    """multiprocessing's resource tracker (or forkserver): started by the first peer that
    needs it, it serves this process until it exits, like Python's other helpers."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"from multiprocessing." in cmdline


def descendants(root: int) -> dict[int, str]:
    """PID and start time of every live process below ``root``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    stats = {
        int(entry.name): stat
        for entry in proc.iterdir()
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None
    }
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, state, since) in stats.items():
            if ppid == parent and pid not in found and state != "Z":
                found[pid] = since
                frontier.append(pid)
    return found


def reap(processes: dict[int, str], grace: float = 10) -> list[str]:
    """Wait up to ``grace`` seconds for ``processes`` (PID: start time) to end; SIGTERM, then
    SIGKILL, those still alive. Returns their command lines."""

    def alive() -> list[int]:
        out = []
        for pid, since in processes.items():
            stat = _stat(pid)
            if stat is not None and stat[2] == since and stat[1] != "Z":
                out.append(pid)
        return out

    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive()
    names = []
    for pid in left:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        names.append(f"{pid} {cmd.strip()[:80]}")
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 1.0)):
        for pid in alive():
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    return names


# --- Dask distributed --------------------------------------------------------------------------


def dask_cluster(saturation: str | None) -> Start:
    """``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``; ``saturation``
    sets ``distributed.scheduler.worker-saturation`` (None: Dask's default)."""

    @contextmanager
    def start(timeout: float) -> Iterator[tuple[Batch, One]]:
        import dask
        from distributed import Client, LocalCluster, wait

        config: dict[str, Any] = {"distributed.worker.daemon": True}
        if saturation:
            config["distributed.scheduler.worker-saturation"] = saturation
        with (
            dask.config.set(config),
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                timeout=60,
            ) as cluster,
            Client(cluster, timeout=60) as client,  # type: ignore[no-untyped-call]
        ):
            client.wait_for_workers(2, timeout=60)

            def batch(n: int) -> list[int]:
                futures = client.map(inc, range(n), pure=False)
                wait(futures, timeout=timeout)  # type: ignore[no-untyped-call]
                results: list[int] = client.gather(futures)
                return results

            def one(x: int) -> int:
                result: int = client.submit(inc, x, pure=False).result(timeout=ONE_TIMEOUT)
                return result

            yield batch, one

    return start


# --- Ray -----------------------------------------------------------------------------------------


@contextmanager
def ray_local(timeout: float) -> Iterator[tuple[Batch, One]]:
    """A new local Ray instance, ``ray.init(num_cpus=2, include_dashboard=False)``, with its
    session files in a temporary directory (deleted afterwards); ``ray.shutdown()`` at the
    end (``run_peer`` checks that its raylet, GCS and workers are gone)."""
    import ray

    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray puts its sockets in it
    try:
        ray.init(
            address="local",  # always a new instance, never a running cluster
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=256 * 1024**2,  # plenty for ints; the default is 30% of RAM
            _temp_dir=temp,
        )
        try:
            remote_inc = ray.remote(num_cpus=1)(inc)

            def batch(n: int) -> list[int]:
                results: list[int] = ray.get(
                    [remote_inc.remote(x) for x in range(n)], timeout=timeout
                )
                return results

            def one(x: int) -> int:
                result: int = ray.get(remote_inc.remote(x), timeout=ONE_TIMEOUT)
                return result

            yield batch, one
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# --- Celery with Redis ---------------------------------------------------------------------------

CELERY_TASK = "bench._celery_app.inc"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Redis:
    """Its own ``redis-server`` on 127.0.0.1, a free port, nothing written to disk."""

    proc: subprocess.Popen[bytes]
    url: str


@contextmanager
def redis_server(directory: str) -> Iterator[_Redis]:
    import redis

    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(executable, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", directory, "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        client.close()
        yield _Redis(proc, f"redis://127.0.0.1:{port}/0")
    finally:
        stop([proc])


@contextmanager
def celery_redis(timeout: float) -> Iterator[tuple[Batch, One]]:
    """Its own ``redis-server`` as broker and result backend, 2 Celery worker processes
    (``celery -A bench._celery_app worker --pool solo``, each 1 task at a time, Celery's
    defaults otherwise), all stopped by PID afterwards. A batch is one ``group``."""
    from celery import Celery, group  # type: ignore[import-untyped]

    with (
        tempfile.TemporaryDirectory(prefix="bench-celery-") as directory,
        redis_server(directory) as server,
    ):
        env = {
            **os.environ,
            "BENCH_CELERY_REDIS": server.url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        paths = [Path(directory, f"worker{i}.log") for i in (1, 2)]
        logs = [path.open("wb") for path in paths]
        workers = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "bench._celery_app", "worker"),
                    *("--pool", "solo", "--concurrency", "1", "--loglevel", "WARNING"),
                    *("--hostname", f"bench{i}@%h"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            for i, log in ((1, logs[0]), (2, logs[1]))
        ]
        apps: list[Any] = []

        def client() -> Any:
            """A new Celery client. After a group, a client's first single result waits while
            it unsubscribes from every result of the group (16-19 s after 20,000 tasks here),
            so the batches share one client and the single tasks have another. (A new client
            for each batch made the batches slower.)"""
            app = Celery("bench-client", broker=server.url, backend=server.url)
            app.conf.broker_connection_retry_on_startup = True
            apps.append(app)
            return app

        try:
            control = client()
            deadline = time.monotonic() + 60
            while len(control.control.ping(timeout=0.5) or []) < 2:
                if any(w.poll() is not None for w in workers):
                    tails = [path.read_text(errors="replace")[-2000:] for path in paths]
                    raise RuntimeError(f"a Celery worker exited during start-up: {tails}")
                if time.monotonic() > deadline:
                    raise TimeoutError("the 2 Celery workers did not answer within 60 s")
            single = client()
            single.send_task(CELERY_TASK, args=(0,)).get(timeout=ONE_TIMEOUT)  # connect

            task = control.signature(CELERY_TASK)  # the batches' client

            def batch(n: int) -> list[int]:
                result = group(task.clone(args=(x,)) for x in range(n)).apply_async()
                results: list[int] = result.get(timeout=timeout)
                return results

            def one(x: int) -> int:
                result: int = single.send_task(CELERY_TASK, args=(x,)).get(timeout=ONE_TIMEOUT)
                return result

            yield batch, one
        finally:
            gc.collect()  # results left in cycles unsubscribe now, while Redis still runs
            for app in apps:
                app.close()
            stop(workers)
            for log in logs:
                log.close()
