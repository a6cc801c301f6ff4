"""10,000 idle workers on one coordinator: time to accept them, memory per connection, and
the coordinator's CPU while they sit idle with heartbeats on.

    python bench/idle.py [--connections 10000] [--idle-seconds 30] [--viewer-seconds 30]
                         [--clients 2] [--window 100] [--per-address 250]
                         [--heartbeat-interval 20] [--store memory|sqlite] [--no-baselines]
                         [--profile SECONDS] [--tracemalloc] [--gc-stats] [--quick]
                         [--name NAME]

Runs on this machine only (127.0.0.1). One coordinator, ``browsergrid serve --port 0 --quiet
--log-format json --memory --no-welcome-task``, otherwise at its defaults (a WebSocket ping
to each worker every 20 s, 20 s to answer; at most 256 connections per address).
``--clients`` client processes (asyncio on uvloop, ``websockets``' client, no compression)
open ``--connections`` WebSocket connections to its ``/ws`` between them, at most
``--window`` handshakes in flight per process. Each sends the ``hello`` the Python worker
sends (its agent, every built-in op, concurrency 1, prefetch 64, a ``py-...`` worker key of
its own), waits for ``welcome``, then only answers pings (``websockets`` does so by itself).
The connections come from 127.0.0.2, 127.0.0.3, ... (all loopback on Linux),
``--per-address`` from each, so that the coordinator's per-address limit stays at its
default; ``--per-address 0`` uses 127.0.0.1 only and starts the coordinator with
``--max-connections-per-address 0`` instead. Every process raises its RLIMIT_NOFILE soft
limit to the hard one.

It measures:

- **accept**: from the first connection attempt to the last ``welcome`` received (the
  coordinator's ``/healthz`` must then count them all), and the coordinator's CPU meanwhile;
- **memory**: the coordinator's VmRSS before the first connection and 2 s after the last,
  per connection; and the slope over the second half of the ramp (without fixed costs);
- **idle CPU**: the coordinator's utime+stime over ``--idle-seconds`` while the connections
  sit idle and nobody watches the dashboard, from when the first ping is due (the pings the
  clients answered are counted); then again for ``--viewer-seconds`` with one dashboard
  viewer of ``/dashboard/live`` open.

Unless ``--no-baselines``, the same clients then measure two bare servers with the same
heartbeat, so that what browsergrid adds shows apart: uvicorn + Starlette (websockets-sansio,
no compression, as the coordinator configures it) and a plain ``websockets`` server; each
answers ``hello`` with a ``welcome``-sized frame and then only reads. ``--profile S`` runs
``py-spy record`` on the idle coordinator for S more seconds, after the timed windows, and
lists where its CPU goes; ``--tracemalloc`` then starts another coordinator under
tracemalloc (slower; no timing is kept from it) and lists what Python allocates per
connection, by package, by line and by type of object. ``--gc-stats`` starts the coordinator
through a small wrapper that times its garbage collections (``gc.callbacks``), while
accepting and while idle.

Prints a markdown table and writes bench/results/idle.json and .md (idle-quick.* with
--quick: 1,000 connections, 10 s idle, no viewer window, no baselines; about 35 s; NAME.*
with --name NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import ctypes
import dataclasses
import json
import math
import os
import platform
import queue
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench._report import RESULTS, write_results  # noqa: E402

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
TOKEN = secrets.token_urlsafe(16)  # the admin token of the coordinator started here
HEARTBEAT_S = 20.0  # the coordinator's default --heartbeat-interval
COORDINATOR = "browsergrid coordinator (--memory)"
BARE_UVICORN = "bare uvicorn + Starlette (websockets-sansio)"
BARE_WEBSOCKETS = "bare websockets server"
# The welcome frame the coordinator sends, give or take; the bare servers send one as long.
WELCOME = json.dumps(
    {
        "type": "welcome",
        "worker_id": 1,
        "server": "browsergrid 0.1.0",
        "limits": {"max_frame_bytes": 16777216, "max_messages_per_s": 5000.0},
    }
)

# Started with ``python -c`` in place of ``python -m browsergrid``, for --tracemalloc and
# --gc-stats. With IDLE_TRACE_FRAMES set it runs under tracemalloc, and on SIGUSR1 writes a
# snapshot and a census of its objects by type (N.snapshot, N.json in IDLE_DIR); with
# IDLE_GC set it times its garbage collections, and on SIGUSR2 writes what they cost so far
# (gc-N.json).
WRAPPED_COORDINATOR = """
import gc, json, os, signal, sys, time
from collections import Counter
where = os.environ["IDLE_DIR"]
def write(name, data):
    with open(os.path.join(where, name + ".part"), "w") as out:
        json.dump(data, out)
    os.rename(os.path.join(where, name + ".part"), os.path.join(where, name + ".json"))
if "IDLE_TRACE_FRAMES" in os.environ:
    import tracemalloc
    tracemalloc.start(int(os.environ["IDLE_TRACE_FRAMES"]))
    dumps = [0]
    def name(kind):
        module = getattr(kind, "__module__", None)
        return f"{module if isinstance(module, str) else 'builtins'}.{kind.__qualname__}"
    def dump(signum, frame):
        dumps[0] += 1
        try:
            gc.collect()
            tracemalloc.take_snapshot().dump(os.path.join(where, f"{dumps[0]}.snapshot"))
            census = Counter(name(type(o)) for o in gc.get_objects())
        except Exception as exc:
            census = {"error": repr(exc)}
        write(str(dumps[0]), census)
    signal.signal(signal.SIGUSR1, dump)
if "IDLE_GC" in os.environ:
    spent = {"0": [0, 0.0], "1": [0, 0.0], "2": [0, 0.0]}  # collections, CPU seconds
    began = [0.0]
    def timed(phase, info):
        if phase == "start":
            began[0] = time.process_time()
        else:
            entry = spent[str(info["generation"])]
            entry[0] += 1
            entry[1] += time.process_time() - began[0]
    gc.callbacks.append(timed)
    reports = [0]
    def report(signum, frame):
        reports[0] += 1
        write(f"gc-{reports[0]}", spent)
    signal.signal(signal.SIGUSR2, report)
from browsergrid.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Setup:
    """What one run measures, from the command line."""

    connections: int
    idle_seconds: float
    viewer_seconds: float
    clients: int  # client processes
    window: int  # handshakes in flight per client process
    per_address: int  # connections per source address; 0: all from 127.0.0.1
    heartbeat: float  # seconds between pings
    store: str  # the coordinator's: "memory" or "sqlite"
    profile: float  # seconds of py-spy after the timed windows; 0: none
    gc_stats: bool  # time the coordinator's garbage collections
    quick: bool
    name: str  # of the results


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def loadavg() -> float:
    with open("/proc/loadavg", encoding="ascii") as f:
        return float(f.read().split()[0])


# --- the client processes ----------------------------------------------------------------


def client_process(spec: dict[str, Any]) -> None:
    """One client process: connect ``spec["count"]`` workers when told, then hold them.

    It talks to the benchmark over stdin/stdout, one JSON object a line: it says ``ready``,
    waits for ``go``, connects, says ``connected`` (with its timings), then answers each
    ``report`` line with the pings its connections have answered so far; it exits at once
    when stdin closes (the kernel then closes the connections).
    """
    raise_nofile()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_client(spec))
    os._exit(0)


async def _client(spec: dict[str, Any]) -> None:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.frames import Frame, Opcode

    from browsergrid.ops import OPS
    from browsergrid.protocol import encode_hello
    from browsergrid.worker._runner import AGENT

    pings = 0
    extra: Counter[str] = Counter()  # frames after welcome, by type

    class Counting(ClientConnection):
        """Counts the pings it gets (the protocol answers them by itself)."""

        def process_event(self, event: Any) -> None:
            nonlocal pings
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                pings += 1
            super().process_event(event)

    def say(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    url, start, count = spec["url"], spec["start"], spec["count"]
    per_address, window = spec["per_address"], spec["window"]
    ops = sorted(OPS)
    connections: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    welcomed: list[float] = []
    errors: Counter[str] = Counter()
    gate = asyncio.Semaphore(window)

    async def drain(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                extra[json.loads(message).get("type", "?")] += 1

    async def one(i: int) -> None:
        local = None if per_address == 0 else (f"127.0.0.{2 + i // per_address}", 0)
        async with gate:
            try:
                ws = await connect(
                    url,
                    compression=None,
                    proxy=None,
                    ping_interval=None,  # the coordinator pings; the protocol answers
                    open_timeout=120,
                    close_timeout=1,
                    user_agent_header=AGENT,
                    create_connection=Counting,
                    local_addr=local,
                )
                await ws.send(encode_hello(AGENT, ops, 1, 64, f"py-{uuid.uuid4().hex}"))
                answer = json.loads(await asyncio.wait_for(ws.recv(), 120))
            except Exception as exc:
                errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                return
        if answer.get("type") != "welcome":
            errors[f"first frame {answer.get('type')!r}, not welcome"] += 1
        welcomed.append(time.monotonic())
        connections.append(ws)
        readers.append(asyncio.create_task(drain(ws)))

    say(event="ready")
    await asyncio.to_thread(sys.stdin.readline)  # go
    first = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    say(
        event="connected",
        first=first,
        last=max(welcomed, default=first),
        welcomed=welcomed,
        connected=len(connections),
        errors=dict(errors.most_common(5)),
    )
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            os._exit(0)
        say(
            event="report",
            pings=pings,
            open=sum(1 for ws in connections if ws.protocol.state.name == "OPEN"),
            extra=dict(extra),
        )


@dataclass
class Client:
    """The benchmark's end of one client process."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def start_reading(self) -> None:
        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.put(json.loads(line))
            self.lines.put({"event": "exited", "code": self.proc.wait()})

        threading.Thread(target=read, daemon=True).start()

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        message = self.lines.get(timeout=timeout)
        if message.get("event") != event:
            raise RuntimeError(f"client {self.proc.pid}: expected {event}, got {message}")
        return message


@contextmanager
def clients(url: str, setup: Setup) -> Iterator[list[Client]]:
    """``setup.clients`` client processes that will open ``setup.connections`` between
    them, ready to go."""
    started: list[Client] = []
    share, rest = divmod(setup.connections, setup.clients)
    start = 0
    try:
        for p in range(setup.clients):
            count = share + (p < rest)
            spec = {
                "url": url,
                "start": start,
                "count": count,
                "per_address": setup.per_address,
                "window": setup.window,
            }
            start += count
            proc = subprocess.Popen(
                [sys.executable, __file__, "--client-process", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            started.append(Client(proc))
            started[-1].start_reading()
        for client in started:
            client.expect("ready", 60)
        yield started
    finally:
        for client in started:
            with contextlib.suppress(OSError):
                assert client.proc.stdin is not None
                client.proc.stdin.close()  # the client exits at once
        for client in started:
            try:
                client.proc.wait(30)
            except subprocess.TimeoutExpired:
                client.proc.kill()
                client.proc.wait()


def report(fleet: list[Client]) -> dict[str, Any]:
    """Pings answered so far and connections still open, over every client process."""
    for client in fleet:
        client.tell("report")
    answers = [client.expect("report", 60) for client in fleet]
    extra: Counter[str] = Counter()
    for answer in answers:
        extra.update(answer["extra"])
    return {
        "pings": sum(a["pings"] for a in answers),
        "open": sum(a["open"] for a in answers),
        "extra_frames": dict(extra),
    }


# --- the servers ---------------------------------------------------------------------------


def bare_server_process(kind: str, heartbeat: float) -> None:
    """A bare WebSocket server on 127.0.0.1 (any free port) that pings every ``heartbeat``
    seconds, on uvloop: ``hello`` in, a ``welcome``-sized frame out, then it only reads."""
    import socket

    import uvloop

    raise_nofile()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(json.dumps({"event": "ready", "port": sock.getsockname()[1]}), flush=True)
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner:
        if kind == "uvicorn":
            runner.run(_bare_uvicorn(sock, heartbeat))
        else:
            runner.run(_bare_websockets(sock, heartbeat))


async def _bare_uvicorn(sock: Any, heartbeat: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        with contextlib.suppress(WebSocketDisconnect):
            await ws.receive_text()
            await ws.send_text(WELCOME)
            while True:
                await ws.receive_text()

    config = uvicorn.Config(
        Starlette(routes=[WebSocketRoute("/ws", endpoint)]),
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=heartbeat,
        ws_ping_timeout=HEARTBEAT_S,
        loop="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


async def _bare_websockets(sock: Any, heartbeat: float) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the clients go without closing
            await ws.recv()
            await ws.send(WELCOME)
            async for _ in ws:
                pass

    async with serve(
        handler, sock=sock, compression=None, ping_interval=heartbeat, ping_timeout=HEARTBEAT_S
    ) as server:
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop
        server.close()


@dataclass
class Server:
    kind: str  # "coordinator", "uvicorn" or "websockets"
    pid: int
    port: int
    wrapper_dir: Path | None = None  # where WRAPPED_COORDINATOR writes
    log_tail: list[str] = field(default_factory=list)
    reports: int = 0  # GC reports asked for

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def gc_spent(self) -> dict[str, list[float]] | None:
        """Collections and CPU seconds of the coordinator's garbage collector so far, by
        generation (None unless started with --gc-stats)."""
        if self.wrapper_dir is None:
            return None
        self.reports += 1
        os.kill(self.pid, signal.SIGUSR2)
        written = self.wrapper_dir / f"gc-{self.reports}.json"
        deadline = time.monotonic() + 60
        while not written.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the coordinator wrote no GC report")
            time.sleep(0.05)
        spent: dict[str, list[float]] = json.loads(written.read_text())
        return spent

    def healthz_workers(self) -> int | None:
        """The coordinator's count of connected workers (None for a bare server)."""
        if self.kind != "coordinator":
            return None
        import httpx

        answer = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=30, trust_env=False)
        return int(answer.json()["workers"])


def _server_preexec() -> None:
    """In a server process before it runs: raise RLIMIT_NOFILE, and have the kernel send
    it SIGTERM if the benchmark dies (prctl PR_SET_PDEATHSIG), so that none is left over."""
    raise_nofile()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


@contextmanager
def server(kind: str, setup: Setup, trace: bool = False) -> Iterator[Server]:
    """Start one server (``coordinator`` or a bare one), wait for its port; stop it after."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSERGRID_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory(prefix="browsergrid-idle-") as tmp:
        if kind == "coordinator":
            options = ["--port", "0", "--quiet", "--log-format", "json", "--no-welcome-task"]
            options += ["--data-dir", tmp, *(["--memory"] if setup.store == "memory" else [])]
            if setup.heartbeat != HEARTBEAT_S:
                options += ["--heartbeat-interval", str(setup.heartbeat)]
            if setup.per_address == 0:  # all from 127.0.0.1
                options += ["--max-connections-per-address", "0"]
            if trace or setup.gc_stats:
                env |= {"IDLE_DIR": tmp, **({"IDLE_TRACE_FRAMES": "8"} if trace else {})}
                env |= {"IDLE_GC": "1"} if setup.gc_stats and not trace else {}
                command = [sys.executable, "-c", WRAPPED_COORDINATOR, "serve", *options]
            else:
                command = [sys.executable, "-m", "browsergrid", "serve", *options]
        else:
            command = [sys.executable, __file__, "--bare-server", kind]
            command += ["--heartbeat-interval", str(setup.heartbeat)]
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env=env, preexec_fn=_server_preexec
        )
        try:
            assert proc.stdout is not None
            port = 0
            for line in proc.stdout:
                entry = json.loads(line)
                if entry.get("event") == "ready":
                    port = entry["port"]
                    break
            if not port:
                raise RuntimeError(f"{kind} exited ({proc.wait()}) before ready")
            wrapped = kind == "coordinator" and (trace or setup.gc_stats)
            found = Server(kind, proc.pid, port, Path(tmp) if wrapped else None)

            def drain() -> None:  # keep the pipe from filling; keep the last lines
                assert proc.stdout is not None
                for line in proc.stdout:
                    found.log_tail = [*found.log_tail[-19:], line.rstrip()]

            threading.Thread(target=drain, daemon=True).start()
            yield found
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- measuring -----------------------------------------------------------------------------


def settled_rss(pid: int, seconds: float = 2.0) -> int:
    """VmRSS after ``seconds`` of quiet, the median of 5 readings 0.1 s apart (KiB)."""
    time.sleep(seconds)
    readings = []
    for _ in range(5):
        readings.append(rss_kb(pid))
        time.sleep(0.1)
    return int(statistics.median(readings))


def ramp(srv: Server, fleet: list[Client], n: int) -> dict[str, Any]:
    """Tell every client to connect; sample the server's RSS until all are in. Returns the
    timings, the CPU spent meanwhile, and when each connection was welcomed."""
    cpu0 = cpu_seconds(srv.pid)
    clients_cpu0 = sum(cpu_seconds(c.proc.pid) for c in fleet)
    for client in fleet:
        client.tell("go")
    samples: list[tuple[float, int]] = []  # (time, RSS KiB)
    answers: list[dict[str, Any]] = []
    deadline = time.monotonic() + 600
    while len(answers) < len(fleet):
        samples.append((time.monotonic(), rss_kb(srv.pid)))
        for client in fleet:
            with contextlib.suppress(queue.Empty):
                answers.append(client.expect("connected", 0.05 / len(fleet)))
        if time.monotonic() > deadline:
            raise TimeoutError("the clients did not connect within 600 s")
        time.sleep(0.1)
    cpu = cpu_seconds(srv.pid) - cpu0
    clients_cpu = sum(cpu_seconds(c.proc.pid) for c in fleet) - clients_cpu0
    first = min(a["first"] for a in answers)
    last = max(a["last"] for a in answers)
    welcomed = sorted(t for a in answers for t in a["welcomed"])
    connected = sum(a["connected"] for a in answers)
    errors: Counter[str] = Counter()
    for answer in answers:
        errors.update(answer["errors"])
    seen = srv.healthz_workers()
    if connected != n or (seen is not None and seen != n):
        raise RuntimeError(
            f"{connected} of {n} connected ({seen} seen by /healthz); errors: {dict(errors)}"
        )
    # The slope of RSS over the second half of the ramp: KiB per connection, fixed costs out.
    half = [(t, kb) for t, kb in samples if welcomed[n // 2] <= t <= last]
    slope = None
    if len(half) >= 4:
        slope = _slope([bisect.bisect_right(welcomed, t) for t, _ in half], [kb for _, kb in half])
    seconds = last - first
    return {
        "accept_seconds": seconds,
        "accepts_per_s": n / seconds,
        "first_half_seconds": welcomed[n // 2 - 1] - first,
        "server_cpu_percent": 100 * cpu / seconds,
        "server_cpu_ms_per_accept": 1000 * cpu / n,
        "clients_cpu_percent": 100 * clients_cpu / seconds,
        "rss_slope_kb_per_connection": slope,
        "errors": dict(errors),
        "welcomed": welcomed,  # left out of the results
    }


def _slope(xs: list[int], ys: list[int]) -> float | None:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def cpu_window(
    pid: int, seconds: float, fleet: list[Client], welcomed: list[float], heartbeat: float
) -> dict[str, Any]:
    """The CPU of ``pid`` over ``seconds`` (mean and per-second peak, in % of one core),
    the clients' CPU meanwhile, and the pings the clients answered, beside those due (the
    server pings each connection every ``heartbeat`` seconds from its accept, about when
    it was ``welcomed``) and those of a steady state (every connection once a heartbeat)."""
    before = report(fleet)
    clients_cpu = sum(cpu_seconds(c.proc.pid) for c in fleet)
    wall, cpu = time.monotonic(), cpu_seconds(pid)
    per_second: list[float] = []
    last_wall, last_cpu = wall, cpu
    while (now := time.monotonic()) - wall < seconds:
        time.sleep(min(1.0, seconds - (now - wall)))
        now, used = time.monotonic(), cpu_seconds(pid)
        per_second.append(100 * (used - last_cpu) / (now - last_wall))
        last_wall, last_cpu = now, used
    elapsed = last_wall - wall
    after = report(fleet)
    due = sum(
        math.floor((last_wall - t) / heartbeat) - max(0, math.floor((wall - t) / heartbeat))
        for t in welcomed
    )
    return {
        "seconds": elapsed,
        "cpu_percent": 100 * (last_cpu - cpu) / elapsed,
        "cpu_percent_peak_1s": max(per_second),
        "cpu_percent_per_s": [round(p, 1) for p in per_second],
        "clients_cpu_percent": 100
        * (sum(cpu_seconds(c.proc.pid) for c in fleet) - clients_cpu)
        / elapsed,
        "pings_answered": after["pings"] - before["pings"],
        "pings_due": due,
        "pings_steady": round(len(welcomed) * elapsed / heartbeat),
        "open_after": after["open"],
        "extra_frames": after["extra_frames"],
    }


async def _watch(port: int, seconds: float) -> dict[str, Any]:
    """One dashboard viewer for ``seconds``: frames and bytes it got."""
    from websockets.asyncio.client import connect

    frames: list[tuple[str, int]] = []
    async with connect(
        f"ws://127.0.0.1:{port}/dashboard/live",
        compression=None,
        proxy=None,
        max_size=None,
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    ) as ws:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for message in ws:
                    frames.append((json.loads(message)["type"], len(message)))
    return {
        "frames": len(frames),
        "bytes": sum(size for _, size in frames),
        "snapshot_bytes": max((s for k, s in frames if k == "snapshot"), default=0),
        "by_type": dict(Counter(k for k, _ in frames)),
    }


def viewer_window(
    srv: Server, setup: Setup, fleet: list[Client], welcomed: list[float]
) -> dict[str, Any]:
    """``cpu_window`` with one dashboard viewer open (its first 2 s left out)."""
    seen: dict[str, Any] = {}

    def watch() -> None:
        seen.update(asyncio.run(_watch(srv.port, setup.viewer_seconds + 4)))

    viewer = threading.Thread(target=watch, daemon=True)
    viewer.start()
    time.sleep(2)  # connected, snapshot sent
    window = cpu_window(srv.pid, setup.viewer_seconds, fleet, welcomed, setup.heartbeat)
    viewer.join(60)
    return {**window, "viewer": seen}


def profile(pid: int, seconds: float, out: Path, rate: int = 200) -> dict[str, Any]:
    """``py-spy record`` on ``pid`` (without pausing it) for ``seconds``: the share of
    samples of the functions seen most, on their own and with what they call. Time in C
    (uvloop's loop, socket calls) counts for the Python function that called it, so the
    event loop's own work shows as ``Runner.run``."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(round(seconds))]
    command += ["--rate", str(rate), "--nonblocking", "--format", "raw", "--output", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_short_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    total = max(1, sum(own.values()))
    return {
        "samples": sum(own.values()),
        "cpu_percent_sampled": 100 * sum(own.values()) / (rate * seconds),
        "self_percent": [(name, round(100 * k / total, 1)) for name, k in own.most_common(25)],
        "inclusive_percent": [
            (name, round(100 * k / total, 1)) for name, k in inclusive.most_common(40)
        ],
        "raw": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
    }


def _short_path(path: str) -> str:
    """A source path from its package on (``.../site-packages/uvicorn/main.py`` ->
    ``uvicorn/main.py``)."""
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _short_frame(frame: str) -> str:
    """py-spy's ``function (path:line)`` as ``function (package/module.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({_short_path(where.rstrip(')').rsplit(':', 1)[0])})" if where else name


_LOOP_RUNNERS = ("browsergrid/server/_run.py", "browsergrid/cli.py", "browsergrid/__main__.py")


def _package(filename: str) -> str | None:
    """The third-party or browsergrid package a source file belongs to; None for the
    standard library, the ``-c`` wrapper and the frames that run the event loop (what C
    code allocates from a loop callback, uvloop's transports and timers, has no frame of
    its own)."""
    if filename.endswith(_LOOP_RUNNERS):
        return None
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/browsergrid/" in filename:
        return "browsergrid"
    return None


def traced(srv: Server, fleet: list[Client], n: int) -> dict[str, Any]:
    """Under tracemalloc: what Python allocated per connection, by package (of the
    innermost frame outside the standard library: an ``asyncio.Queue`` made by uvicorn is
    uvicorn's), by line, and by type of object (from the garbage collector's census)."""
    import tracemalloc

    trace_dir = srv.wrapper_dir
    assert trace_dir is not None

    def dump(number: int) -> tuple[tracemalloc.Snapshot, Counter[str]]:
        os.kill(srv.pid, signal.SIGUSR1)
        census = trace_dir / f"{number}.json"
        deadline = time.monotonic() + 300
        while not census.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the traced coordinator wrote no snapshot")
            time.sleep(0.2)
        counts = json.loads(census.read_text())
        if "error" in counts:
            raise RuntimeError(f"the traced coordinator failed to dump: {counts['error']}")
        snapshot = tracemalloc.Snapshot.load(str(census.with_suffix(".snapshot")))
        return snapshot, Counter(counts)

    time.sleep(1)
    before, census_before = dump(1)
    ramp(srv, fleet, n)
    time.sleep(2)
    after, census_after = dump(2)
    by_package: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # browsergrid's share, by its innermost line
    for stat in after.compare_to(before, "traceback"):
        # tracemalloc lists frames from the oldest to the most recent
        frames = list(reversed(stat.traceback))
        owner = next((f for f in frames if _package(f.filename)), None)
        package = _package(owner.filename) if owner else None
        by_package[package or "(event loop: uvloop objects; standard library)"] += stat.size_diff
        if owner is not None and package == "browsergrid":
            ours[f"{_short_path(owner.filename)}:{owner.lineno}"] += stat.size_diff
    by_line = after.compare_to(before, "lineno")
    types = census_after.copy()
    types.subtract(census_before)
    return {
        "python_bytes_per_connection": by_package.total() / n,
        "by_package": [
            (name, size / n) for name, size in by_package.most_common() if abs(size) >= n
        ],
        "browsergrid_by_line": [(where, size / n) for where, size in ours.most_common(20)],
        "by_line": [
            (
                f"{_short_path(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                s.size_diff / n,
                s.count_diff / n,
            )
            for s in by_line[:30]
        ],
        "objects_per_connection": [(name, k / n) for name, k in types.most_common(30)],
    }


# --- one run and the report ---------------------------------------------------------------


def run_server(kind: str, setup: Setup) -> dict[str, Any]:
    n = setup.connections
    log(f"{kind}: {n} connections from {setup.clients} client processes (load {loadavg():.2f})")
    with server(kind, setup) as srv:
        before = settled_rss(srv.pid, 1.0)
        with clients(srv.url, setup) as fleet:
            gc_start = srv.gc_spent()
            up = ramp(srv, fleet, n)
            gc_ramp = srv.gc_spent()
            welcomed = up.pop("welcomed")
            log(f"  {n} accepted in {up['accept_seconds']:.1f} s")
            after = settled_rss(srv.pid)
            row: dict[str, Any] = {
                "server": kind,
                "connections": n,
                "load_after_ramp": loadavg(),
                **up,
                "rss_before_mb": before / 1024,
                "rss_after_mb": after / 1024,
                "kb_per_connection": (after - before) / n,
            }
            if setup.heartbeat <= 120:  # else: a run without heartbeats, in effect
                time.sleep(max(0.0, welcomed[0] + setup.heartbeat - time.monotonic()))
            row["load_at_idle"] = loadavg()
            gc_idle = srv.gc_spent()
            row["idle"] = cpu_window(srv.pid, setup.idle_seconds, fleet, welcomed, setup.heartbeat)
            if gc_start is not None and gc_ramp is not None and gc_idle is not None:
                row["gc_ramp"] = _gc_between(gc_start, gc_ramp)
                row["idle"]["gc"] = _gc_between(gc_idle, srv.gc_spent() or gc_idle)
            row["rss_after_idle_mb"] = rss_kb(srv.pid) / 1024
            log(f"  idle: {row['idle']['cpu_percent']:.2f}% of one core")
            if kind == "coordinator" and setup.viewer_seconds > 0:
                row["watched"] = viewer_window(srv, setup, fleet, welcomed)
                log(f"  one viewer: {row['watched']['cpu_percent']:.2f}% of one core")
            if kind == "coordinator" and setup.profile > 0:
                out = RESULTS / f"{setup.name}-profile.txt"
                row["profile"] = profile(srv.pid, setup.profile, out)
            row["workers_seen_at_end"] = srv.healthz_workers()
            row["load_at_end"] = loadavg()
    return row


def _gc_between(start: dict[str, list[float]], end: dict[str, list[float]]) -> dict[str, Any]:
    """The collections and CPU seconds of the garbage collector between two reports."""
    return {
        "collections": {g: int(end[g][0] - start[g][0]) for g in end},
        "cpu_seconds": {g: round(end[g][1] - start[g][1], 3) for g in end},
        "cpu_seconds_total": round(sum(end[g][1] - start[g][1] for g in end), 3),
    }


def run_traced(setup: Setup) -> dict[str, Any]:
    n = setup.connections
    log(f"coordinator under tracemalloc: {n} connections (load {loadavg():.2f})")
    with server("coordinator", setup, trace=True) as srv, clients(srv.url, setup) as fleet:
        return traced(srv, fleet, n)


NAMES = {"coordinator": COORDINATOR, "uvicorn": BARE_UVICORN, "websockets": BARE_WEBSOCKETS}


def table(rows: list[dict[str, Any]], setup: Setup) -> str:
    lines = [
        "| server | connections | accept s | accepts/s | server CPU ms/accept"
        " | RSS before → after MB | KiB/connection (ramp slope) | idle CPU % of a core"
        " (peak 1 s) | pings answered / steady |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        idle = row["idle"]
        slope = row["rss_slope_kb_per_connection"]
        name = NAMES[row["server"]]
        if row["server"] == "coordinator" and setup.store != "memory":
            name = name.replace("--memory", "SQLite")
        lines.append(
            f"| {name} | {row['connections']:,} | {row['accept_seconds']:.1f}"
            f" | {row['accepts_per_s']:,.0f} | {row['server_cpu_ms_per_accept']:.2f}"
            f" | {row['rss_before_mb']:.0f} → {row['rss_after_mb']:.0f}"
            f" | {row['kb_per_connection']:.1f} ({'-' if slope is None else f'{slope:.1f}'})"
            f" | {idle['cpu_percent']:.2f} ({idle['cpu_percent_peak_1s']:.0f})"
            f" | {idle['pings_answered']:,} / {idle['pings_steady']:,} |"
        )
    coordinator = next(r for r in rows if r["server"] == "coordinator")
    if "gc_ramp" in coordinator:
        ramp_gc, idle_gc = coordinator["gc_ramp"], coordinator["idle"]["gc"]
        ramp_cpu = coordinator["server_cpu_ms_per_accept"] * coordinator["connections"] / 1000
        lines.append(
            f"\nThe coordinator's garbage collector: {ramp_gc['cpu_seconds_total']:.1f} s of CPU"
            f" while accepting ({100 * ramp_gc['cpu_seconds_total'] / ramp_cpu:.0f}% of its CPU"
            f" then; {ramp_gc['collections']['2']} full collections, together"
            f" {ramp_gc['cpu_seconds']['2']:.1f} s), {idle_gc['cpu_seconds_total']:.2f} s in"
            f" the idle window ({idle_gc['collections']['2']} full)."
        )
    if "watched" in coordinator:
        watched, viewer = coordinator["watched"], coordinator["watched"]["viewer"]
        lines.append(
            f"\nWith one dashboard viewer open: {watched['cpu_percent']:.2f}% of a core (peak"
            f" 1 s {watched['cpu_percent_peak_1s']:.0f}%) over {watched['seconds']:.0f} s;"
            f" the viewer got {viewer.get('frames', 0)} frames,"
            f" {viewer.get('bytes', 0) / 1024:,.0f} KiB (its first snapshot"
            f" {viewer.get('snapshot_bytes', 0) / 1024:,.0f} KiB, before the window)."
        )
    kb, cpu = coordinator["kb_per_connection"], coordinator["idle"]["cpu_percent"]
    lines.append(
        f"\nTarget for 10,000 idle workers: at most 20 KB each: {kb:.1f} KiB"
        f" ({kb * 1.024:.1f} kB), {'met' if kb * 1.024 <= 20 else 'not met'}; under 5% of one"
        f" core: {cpu:.2f}%, {'met' if cpu < 5 else 'not met'}"
        + ("" if coordinator["connections"] == 10_000 else " (at fewer connections)")
        + ("" if setup.heartbeat == HEARTBEAT_S else f" (pings every {setup.heartbeat:g} s)")
        + ("" if setup.store == "memory" else f" ({setup.store} store)")
        + "."
    )
    source = (
        "all from 127.0.0.1 (--max-connections-per-address 0)"
        if setup.per_address == 0
        else f"{setup.per_address} per source address 127.0.0.2, .3, ..."
    )
    lines.append(
        f"\nHeartbeat: a ping every {setup.heartbeat:g} s per connection"
        f"{' (the default --heartbeat-interval)' if setup.heartbeat == HEARTBEAT_S else ''},"
        f" the first {setup.heartbeat:g} s after its accept; each idle window"
        f" ({setup.idle_seconds:g} s) starts when the first is due. Steady: the pings of"
        f" {setup.idle_seconds:g} s once they are spread evenly. {setup.clients} client"
        f" processes, {setup.window} handshakes in flight each; connections {source}. Load"
        f" average (1 min) {coordinator['load_after_ramp']:.2f} after the ramp,"
        f" {coordinator['load_at_idle']:.2f} at the idle window. RSS is VmRSS; KiB/connection"
        " is (after - before) / connections, 2 s after the last welcome."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--viewer-seconds", type=float, default=None, help="default: idle's")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--window", type=int, default=100, help="handshakes in flight each")
    parser.add_argument(
        "--per-address", type=int, default=250, help="connections per source address; 0: one"
    )
    parser.add_argument("--heartbeat-interval", type=float, default=HEARTBEAT_S)
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds, after")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--gc-stats", action="store_true", help="time the coordinator's GC")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", help="results name (default: idle, or idle-quick)")
    parser.add_argument("--client-process", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_process:
        client_process(json.loads(args.client_process))
        return
    if args.bare_server:
        bare_server_process(args.bare_server, args.heartbeat_interval)
        return
    if args.quick:
        args.connections, args.idle_seconds, args.no_baselines = 1_000, 10.0, True
        args.viewer_seconds = 0.0 if args.viewer_seconds is None else args.viewer_seconds
    if args.per_address and args.connections > args.per_address * 250:
        parser.error("--per-address: more than 250 source addresses would be needed")
    setup = Setup(
        connections=args.connections,
        idle_seconds=args.idle_seconds,
        viewer_seconds=args.idle_seconds if args.viewer_seconds is None else args.viewer_seconds,
        clients=args.clients,
        window=args.window,
        per_address=args.per_address,
        heartbeat=args.heartbeat_interval,
        store=args.store,
        profile=args.profile,
        gc_stats=args.gc_stats,
        quick=args.quick,
        name=args.name or ("idle-quick" if args.quick else "idle"),
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what was started, then exit
    log(f"load average {loadavg():.2f}; RLIMIT_NOFILE {raise_nofile()}")
    rows = [run_server("coordinator", setup)]
    if not args.no_baselines:
        rows += [run_server("uvicorn", setup), run_server("websockets", setup)]
    data: dict[str, Any] = {
        "args": dataclasses.asdict(setup) | {"baselines": not args.no_baselines},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "versions": _versions(),
            "commit": _commit(),
        },
        "rows": rows,
    }
    if args.tracemalloc:
        data["tracemalloc"] = run_traced(setup)
    write_results(setup.name, table(rows, setup), data)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("uvicorn", "websockets", "uvloop", "starlette", "fastapi")}


def _commit() -> str:
    """The commit measured, ``-dirty`` when the tree has changes."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


if __name__ == "__main__":
    main()
