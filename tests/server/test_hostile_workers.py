"""Issue 21's hostile workers, one finding per test: a real coordinator (in memory unless the
finding needs SQLite), raw-socket workers written here that misbehave, and one honest
``browsergrid worker`` process connected throughout. Each test checks that every future of
the honest job resolves with the right value (computed here from the op's definition in
docs/protocol.md, not by the reference ops), and each runs in well under 30 s.

The hostile workers are ``websockets`` asyncio clients in the test's own event loop; the
honest job goes through ``AsyncClient``. Waits on the coordinator's log run in a thread, so
the hostile workers keep going meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from browsergrid import AsyncClient
from tests._support import (
    AUTH,
    WELCOME_RESULT,
    Coordinator,
    Process,
    close_to,
    connected_workers,
    free_port,
    job_results,
)

pytestmark = pytest.mark.processes

WELCOME_TIMES: Final = 1_000_000  # the welcome task's ``times``: no job task here uses it

# --- raw-socket workers ----------------------------------------------------------------------


def fresh_key(prefix: str = "evil") -> str:
    """A new lasting identity (a ``worker_key`` nobody used before)."""
    return f"{prefix}-{secrets.token_hex(16)}"


def hello(
    ops: list[str], *, key: str | None = None, concurrency: int = 1, prefetch: int = 0
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "hello",
        "protocol": 1,
        "agent": "hostile/1.0",
        "ops": ops,
        "concurrency": concurrency,
        "prefetch": prefetch,
    }
    if key is not None:
        frame["worker_key"] = key
    return frame


def is_welcome(task: dict[str, Any]) -> bool:
    return task.get("op") == "repeat_multiply" and task.get("times") == WELCOME_TIMES


class Raw:
    """A worker on a raw WebSocket: it sends what the test tells it and reads every frame.
    ``task()`` returns the tasks it was sent one by one (``task`` and ``tasks`` frames);
    the other frames it meets on the way are kept in ``others``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: deque[dict[str, Any]] = deque()
        self.others: list[dict[str, Any]] = []
        self.worker_id: int | None = None

    @classmethod
    async def open(cls, url: str, introduce: dict[str, Any] | None = None) -> Raw:
        ws = await connect(
            url,
            compression=None,
            proxy=None,
            open_timeout=10,
            close_timeout=2,
            ping_interval=None,  # the coordinator pings; the library answers
            max_size=None,
        )
        raw = cls(ws)
        if introduce is not None:
            await raw.send(introduce)
        return raw

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def frame(self, wait_s: float = 10) -> dict[str, Any]:
        """The next frame from the coordinator, whatever it is."""
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))
        if frame.get("type") == "welcome":
            self.worker_id = frame["worker_id"]
        return frame

    async def task(self, wait_s: float = 10) -> dict[str, Any]:
        """The next task it was sent."""
        while not self.pending:
            frame = await self.frame(wait_s)
            if frame.get("type") == "task":
                self.pending.append(frame)
            elif frame.get("type") == "tasks":
                self.pending.extend(frame["tasks"])
            else:
                self.others.append(frame)
        return self.pending.popleft()

    async def answer(self, task: dict[str, Any], result: Any, duration_ms: float = 1.0) -> None:
        await self.send(
            {
                "type": "result",
                "task_id": task["task_id"],
                "result": result,
                "duration_ms": duration_ms,
            }
        )

    async def close(self) -> None:
        await self.ws.close()


# --- right answers, from the ops' definitions ------------------------------------------------


def multiply(args: dict[str, Any]) -> float:
    """``repeat_multiply`` without ``exact``: ``initial * pow(factor, times)``."""
    return float(args["initial"] * math.pow(args["factor"], args["times"]))


def right_answer(task: dict[str, Any]) -> Any:
    """What an honest worker answers to a task of this file's jobs."""
    if task["op"] == "repeat_multiply":
        return multiply(task)
    return prime_count(task["lo"], task["hi"])


def prime_count(lo: int, hi: int) -> int:
    """The primes p with lo <= p < hi, by a plain sieve of Eratosthenes."""
    if hi <= 2:
        return 0
    sieve = bytearray([1]) * hi
    sieve[0:2] = b"\x00\x00"
    for n in range(2, math.isqrt(hi - 1) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, hi, n)))
    return sum(sieve[lo:hi])


def multiply_args(count: int) -> list[dict[str, Any]]:
    return [
        {"initial": float(i + 1), "factor": 1.0 + (i % 7 + 1) * 1e-6, "times": 1_000 + i}
        for i in range(count)
    ]


def assert_multiplied(args: list[dict[str, Any]], results: list[Any]) -> None:
    assert len(results) == len(args)
    wrong = [(a, r) for a, r in zip(args, results, strict=True) if not close_to(r, multiply(a))]
    assert not wrong, f"{len(wrong)} wrong results, the first: {wrong[:3]}"


async def gathered(futures: list[asyncio.Future[Any]], wait_s: float) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*futures), wait_s))


async def lost_leases(port: int) -> dict[str, float]:
    """The coordinator's ``browsergrid_errors_total`` by kind, from ``/metrics``."""
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('browsergrid_errors_total{kind="'):
            kind = line.split('"')[1]
            found[kind] = float(line.rsplit(" ", 1)[1])
    return found


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking wait (on the coordinator's log), without stopping the hostile workers."""
    return await asyncio.to_thread(call, *args, **kwargs)


def honest_worker(
    coordinator: Coordinator, start_worker: Callable[..., Process], *extra: str
) -> int:
    """Start ``browsergrid worker`` and wait until it has answered its welcome task (its
    speed is known; a welcome task earns no record); its worker id."""
    before = {w["worker_id"] for w in connected_workers(coordinator)}
    start_worker(coordinator.ws_url, "--quiet", *extra)
    deadline = time.monotonic() + 15
    while True:
        welcomed = [
            w["worker_id"]
            for w in connected_workers(coordinator)
            if w["worker_id"] not in before and w["speed_ms"] is not None
        ]
        if welcomed:
            worker_id: int = welcomed[0]
            return worker_id
        assert time.monotonic() < deadline, coordinator.output()
        time.sleep(0.05)


# --- 1. churn --------------------------------------------------------------------------------

CHURNERS = 30
CHURN_S = 10.0


async def churn(url: str, rng: random.Random, until: float, taken: list[int]) -> None:
    """One churning tab, over and over until ``until``: a fresh identity says hello, takes
    what it is sent, answers nothing (its welcome task neither) and leaves after 0.05 to
    0.4 s; ``taken`` counts the job tasks it held."""
    while time.monotonic() < until:
        try:
            raw = await Raw.open(
                url, hello(["repeat_multiply"], key=fresh_key("churn"), concurrency=4, prefetch=4)
            )
        except (OSError, TimeoutError, InvalidHandshake):
            await asyncio.sleep(0.05)
            continue
        leave_at = time.monotonic() + rng.uniform(0.05, 0.4)
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while (left := leave_at - time.monotonic()) > 0:
                task = await raw.task(wait_s=left)
                taken[0] += not is_welcome(task)
        if rng.random() < 0.5:
            await raw.close()
        else:
            raw.ws.transport.abort()  # the tab is gone without a word


async def test_churning_tabs_with_fresh_identities_fail_no_task(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    # --quiet: a line per connection, read by this busy process, would slow the coordinator
    coordinator = start_coordinator("--memory", "--quiet")
    honest_worker(coordinator, start_worker, "--prefetch", "2")
    rng = random.Random(21)
    taken = [0]
    until = time.monotonic() + CHURN_S
    args = multiply_args(2_000)
    async with asyncio.TaskGroup() as group:
        for _ in range(CHURNERS):
            group.create_task(churn(coordinator.ws_url, random.Random(rng.random()), until, taken))
        await asyncio.sleep(1.5)  # the churn is in full swing
        async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
            job = client.options(max_attempts=3).submit_job("repeat_multiply", args)
            results = await gathered(job.futures, CHURN_S + 10)
            job_id = await job.job_id()
    assert_multiplied(args, results)
    lost = await lost_leases(coordinator.port)
    assert taken[0] >= 200, taken  # the churners held many of the job's tasks...
    assert lost["worker_lost"] >= taken[0], lost  # ... and dropped every one
    outcomes = await in_thread(job_results, coordinator.port, job_id)
    assert [o["status"] for o in outcomes] == ["done"] * len(args)
    assert sum(o["attempts"] > 1 for o in outcomes) >= 200  # re-issued, never failed


async def test_exercise_style_drive_bys_cost_an_honest_job_nothing(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--memory")
    honest_worker(coordinator, start_worker)
    args = multiply_args(300)

    async def drive_by(n: int) -> None:
        raw = await Raw.open(f"ws://127.0.0.1:{coordinator.port}/")  # no hello
        await raw.task()  # its welcome task
        await raw.send('["junk", "frame"]' if n % 2 else "}{ not json")
        assert (await raw.frame())["code"] == "bad_json"
        await raw.close()

    async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
        job = client.options(max_attempts=3).submit_job("repeat_multiply", args)
        await asyncio.gather(*(drive_by(n) for n in range(6)))
        results = await gathered(job.futures, 20)
        job_id = await job.job_id()
    assert_multiplied(args, results)
    outcomes = await in_thread(job_results, coordinator.port, job_id)
    assert [o["status"] for o in outcomes] == ["done"] * len(args)
    assert {o["attempts"] for o in outcomes} == {1}  # no task of the job lost a lease
    gone = await in_thread(coordinator.events_named, "worker_disconnected", 6)
    assert len(gone) == 6


# --- 2. error spam ---------------------------------------------------------------------------


async def test_error_spam_fails_no_task_of_an_honest_job(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--memory")
    honest_worker(coordinator, start_worker, "--prefetch", "1")  # idle until the job comes
    spams = [0]

    async def spam(raw: Raw) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                task = await raw.task(wait_s=60)
                await raw.send({"type": "error", "task_id": task["task_id"], "message": "nope"})
                spams[0] += not is_welcome(task)

    ops = ["prime_count", "repeat_multiply"]
    spammers = [
        await Raw.open(coordinator.ws_url, hello(ops, key=fresh_key(), concurrency=4, prefetch=4))
        for _ in range(3)
    ]
    ranges = [(k * 5_000, (k + 1) * 5_000 + k) for k in range(40)]
    async with asyncio.TaskGroup() as group:
        spinning = [group.create_task(spam(raw)) for raw in spammers]
        async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
            futures = [
                client.options(max_attempts=3).submit("prime_count", lo=lo, hi=hi)
                for lo, hi in ranges
            ]
            results = await gathered(futures, 20)
        for task in spinning:
            task.cancel()
    for raw in spammers:
        await raw.close()
    assert results == [prime_count(lo, hi) for lo, hi in ranges]
    assert spams[0] > 0  # the spammers were sent tasks of the job and errored them


async def mint_and_err(url: str, stop: asyncio.Event, errors: list[int]) -> None:
    """One saboteur, over and over until ``stop`` is set: a fresh identity says hello,
    answers its welcome task right (which costs it nothing), reports an error for the first
    job task it is sent and leaves (within 0.5 s at most); ``errors`` counts the errors."""
    ops = ["prime_count", "repeat_multiply"]
    while not stop.is_set():
        raw = await Raw.open(url, hello(ops, key=fresh_key("mint"), concurrency=2, prefetch=2))
        leave_at = time.monotonic() + 0.5
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while (left := leave_at - time.monotonic()) > 0:
                task = await raw.task(wait_s=left)
                if is_welcome(task):
                    await raw.answer(task, right_answer(task))
                    continue
                await raw.send({"type": "error", "task_id": task["task_id"], "message": "nope"})
                errors[0] += 1
                break
        await raw.close()


async def test_identities_that_answer_their_welcome_then_err_fail_no_task(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    """A fresh grid (no record anywhere): the honest worker is as new as the saboteurs,
    which mint an identity per connection and answer its welcome task right."""
    coordinator = start_coordinator("--memory", "--quiet")
    honest_worker(coordinator, start_worker, "--prefetch", "1")
    errors = [0]
    ranges = [(k * 20_000, (k + 1) * 20_000 + k) for k in range(200)]
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        for _ in range(6):
            group.create_task(mint_and_err(coordinator.ws_url, stop, errors))
        try:
            async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
                futures = [
                    client.options(max_attempts=3).submit("prime_count", lo=lo, hi=hi)
                    for lo, hi in ranges
                ]
                results = await gathered(futures, 60)
        finally:
            stop.set()  # each saboteur leaves within 0.5 s
    assert results == [prime_count(lo, hi) for lo, hi in ranges]
    assert errors[0] >= 50, errors  # they were sent tasks of the job and errored them


# --- 3. a poisoned running mean --------------------------------------------------------------


async def test_a_huge_duration_then_a_share_loses_no_task(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator()  # SQLite: each result is stored with its duration
    honest_worker(coordinator, start_worker, "--prefetch", "0")
    poisoner = await Raw.open(
        coordinator.ws_url, hello(["repeat_multiply"], key=fresh_key(), concurrency=3, prefetch=3)
    )
    welcome = await poisoner.task()
    await poisoner.answer(welcome, WELCOME_RESULT, duration_ms=1e308)
    await in_thread(coordinator.event, "result", task_id=welcome["task_id"])
    args = multiply_args(6)
    poisoned: list[int] = []

    async def poison() -> None:
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while True:
                task = await poisoner.task(wait_s=3)
                await poisoner.answer(task, right_answer(task), duration_ms=1e308)
                if not poisoned:  # its running mean is now huge: and its share halves
                    share = {"type": "capacity", "concurrency": 3, "prefetch": 3, "share": 0.5}
                    await poisoner.send(share)
                poisoned.append(task["task_id"])

    async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
        job = client.submit_job("repeat_multiply", args)
        poisoning = asyncio.create_task(poison())
        results = await gathered(job.futures, 20)
        job_id = await job.job_id()
        await poisoning
    assert_multiplied(args, results)
    assert len(poisoned) >= 2  # the poisoner did some of the job, before and after its share
    outcomes = await in_thread(job_results, coordinator.port, job_id)
    assert sorted(o["index"] for o in outcomes) == list(range(6))
    assert all(o["status"] == "done" for o in outcomes)
    assert all(0 <= o["duration_ms"] <= 86_400_000 for o in outcomes)
    theirs = [o for o in outcomes if o["worker_id"] == poisoner.worker_id]
    assert theirs and all(o["duration_ms"] == 86_400_000 for o in theirs)
    await poisoner.close()


# --- 4. a result nested 985 deep (and less, but deeper than 64) ------------------------------


@pytest.fixture
def text_coordinator() -> Iterator[tuple[Process, int]]:
    """A coordinator in memory with its text log (not --quiet), and its port; ended by its
    PID."""
    port = free_port()
    args = [sys.executable, "-m", "browsergrid", "serve", "--port", str(port), "--memory"]
    process = Process([*args, "--log-format", "text"])
    try:
        process.wait_for_line(lambda line: "coordinator ready" in line)
        yield process, port
    finally:
        process.end()


async def test_a_result_nested_985_deep_is_refused_and_its_task_is_done_elsewhere(
    text_coordinator: tuple[Process, int], start_worker: Callable[..., Process]
) -> None:
    coordinator, port = text_coordinator
    url = f"ws://127.0.0.1:{port}/ws"
    start_worker(url, "--quiet", "--prefetch", "0")
    await in_thread(coordinator.wait_for_line, lambda line: "introduced itself" in line)
    nester = await Raw.open(url, hello(["prime_count", "repeat_multiply"], key=fresh_key()))
    welcome = await nester.task()
    await nester.answer(welcome, WELCOME_RESULT)
    ranges = [(0, 300_000 + k) for k in range(4)]  # long enough to keep the honest one busy
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:
        futures = [client.submit("prime_count", lo=lo, hi=hi) for lo, hi in ranges]
        task = await nester.task()
        task_id = json.dumps(task["task_id"])
        for depth in (985, 900, 500, 64):  # the frame's own object makes one level more
            deep = "[" * depth + "]" * depth
            await nester.send(
                f'{{"type": "result", "task_id": {task_id}, "result": {deep}, "duration_ms": 1}}'
            )
            refusal = await nester.frame()
            assert refusal["type"] == "error" and refusal["code"] == "bad_json", (depth, refusal)
        await nester.close()  # its lease goes back: the task is re-issued
        results = await gathered(futures, 20)
    assert results == [prime_count(lo, hi) for lo, hi in ranges]
    await in_thread(coordinator.wait_for_line, lambda line: "job" in line and "finished" in line)
    assert not any("Traceback" in line for line in coordinator.lines), coordinator.output()
    assert not any("RecursionError" in line for line in coordinator.lines)


# --- 6. minted identities --------------------------------------------------------------------


async def test_identities_minted_by_one_process_do_not_outvote_established_workers(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--memory")
    honest_worker(coordinator, start_worker)
    honest_worker(coordinator, start_worker)
    async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
        warm_up = multiply_args(30)  # each honest identity: 30 valid results in a row
        results = await gathered(
            client.options(redundancy=2).submit_job("repeat_multiply", warm_up).futures, 20
        )
        assert_multiplied(warm_up, results)
        minted = [
            await Raw.open(
                coordinator.ws_url,
                hello(["repeat_multiply"], key=fresh_key("mint"), concurrency=8, prefetch=8),
            )
            for _ in range(2)
        ]

        lies = [0]

        async def lie(raw: Raw) -> None:  # both the same lie: they agree with each other
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                while True:
                    task = await raw.task(wait_s=5)
                    truth = right_answer(task)
                    await raw.answer(task, truth if is_welcome(task) else truth * 2)
                    lies[0] += not is_welcome(task)

        lying = [asyncio.create_task(lie(raw)) for raw in minted]
        args = multiply_args(200)
        results = await gathered(
            client.options(redundancy=2).submit_job("repeat_multiply", args).futures, 25
        )
        for task in lying:
            task.cancel()
        for raw in minted:
            await raw.close()
    assert lies[0] > 0  # the minted identities were sent replicas, and lied
    assert_multiplied(args, results)


# --- 7. a flood of reports for unknown tasks -------------------------------------------------

RATE = 100  # --max-messages-per-s: bursts of 200
ITEMS = 10  # unknown reports per results frame


def unknown_results(first: int) -> dict[str, Any]:
    items = [{"task_id": first + i, "result": 0, "duration_ms": 1} for i in range(ITEMS)]
    return {"type": "results", "results": items}


async def test_a_flood_of_unknown_reports_gets_one_answer_per_frame_and_is_rate_limited(
    start_coordinator: Callable[..., Coordinator], start_worker: Callable[..., Process]
) -> None:
    coordinator = start_coordinator("--memory", "--max-messages-per-s", str(RATE))
    honest_worker(coordinator, start_worker)
    flooder = await Raw.open(coordinator.ws_url, hello(["prime_count"], key=fresh_key()))
    await flooder.task()  # its welcome task, never answered
    assert (await flooder.frame())["type"] == "welcome"
    ranges = [(k * 10_000, (k + 1) * 10_000) for k in range(20)]
    async with AsyncClient(f"http://127.0.0.1:{coordinator.port}") as client:
        futures = [client.submit("prime_count", lo=lo, hi=hi) for lo, hi in ranges]
        # within the rate: each frame of ITEMS unknown reports gets one error frame
        for n in range(5):
            await flooder.send(unknown_results(10**9 + n * ITEMS))
            error = await flooder.frame()
            assert error["code"] == "unknown_task", error
            assert error["task_id"] == 10**9 + n * ITEMS
            assert f"{ITEMS} " in error["message"], error["message"]
        with pytest.raises(TimeoutError):
            await flooder.frame(wait_s=0.3)  # and nothing more
        # then a flood: refused whole once past the rate, and closed
        sent = 5
        with contextlib.suppress(ConnectionClosed):
            for n in range(5, 400):
                await flooder.send(unknown_results(10**9 + n * ITEMS))
                sent += 1
        answers = [await flooder.frame()]
        while answers[-1]["code"] != "rate_limited":
            answers.append(await flooder.frame())
        flooder.ws.transport.abort()  # it is closed: no need to wait for the close handshake
        results = await gathered(futures, 20)
    assert results == [prime_count(lo, hi) for lo, hi in ranges]
    assert all(a["code"] == "unknown_task" for a in answers[:-1])
    assert len(answers) - 1 < sent - 5  # refused long before the flood's end
    refused = await in_thread(coordinator.event, "worker_refused", worker_id=flooder.worker_id)
    assert refused["code"] == "rate_limited" and refused["close_code"] == 1008
    logged = [
        e
        for e in coordinator.events()
        if e.get("event") == "report_ignored" and e["worker_id"] == flooder.worker_id
    ]
    assert len(logged) == 5 + len(answers) - 1  # one line per frame answered, no more
    assert all(e["count"] == ITEMS for e in logged)
