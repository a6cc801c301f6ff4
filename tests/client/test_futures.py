"""Futures as arguments from the Python clients, against a real coordinator and two real
Python workers that run functions: passed before their own submit is accepted, in ``map``,
in op arguments, with ``AsyncClient``; a failure, a refused dependency and a stranger's
future each end the dependent with an error that says why."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Iterator

import pytest

from browsergrid import AsyncClient, Client, SubmitError, TaskError
from tests._support import Coordinator, Process
from tests.client._functions import divide, echo, fails


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    coordinator = Coordinator(0, ("--quiet", "--no-welcome-task"))
    workers = [
        Process(
            [
                sys.executable,
                "-m",
                "browsergrid",
                "worker",
                coordinator.ws_url,
                "--quiet",
                "--python-functions",
            ]
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_for_line(lambda line: "connected to" in line)
        yield f"http://127.0.0.1:{coordinator.port}"
    finally:
        for worker in workers:
            worker.end()
        coordinator.end()


def test_a_future_stands_for_its_result_before_and_after_it_is_accepted(url: str) -> None:
    with Client(url) as client:
        a = client.submit(divide, 12, 3)  # not yet accepted when it is passed on
        b = client.submit(divide, a, b=a)
        c = client.submit(echo, "x", [a, {"b": b}])
        assert (a.result(30), b.result(30)) == (4.0, 1.0)
        assert c.result(30) == ["x", [4.0, {"b": 1.0}]]
        assert client.submit(divide, a, 8).result(30) == 0.5  # done long ago: from the store
        # in op form too, and in map over futures
        base = client.submit("repeat_multiply", initial=2.0, factor=3.0, times=2)
        assert client.submit("repeat_multiply", initial=base, factor=1.0, times=1).result(30) == 18
        parts = [client.submit(divide, n, 1) for n in range(5)]
        assert list(client.map(divide, parts, [2] * 5, timeout=30)) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_a_failure_ends_a_chain_with_reasons_that_name_each_task(url: str) -> None:
    with Client(url) as client:
        once = client.options(max_attempts=1)
        first = once.submit(fails, 1)
        second = client.submit(divide, first)  # in another job: futures cross jobs
        third = client.submit(divide, second)
        with pytest.raises(TaskError) as caught:
            third.result(60)
        [reason] = caught.value.reasons
        assert reason.startswith("task ") and reason.count("which it depends on, failed") == 2
        assert "ZeroDivisionError" in reason  # what went wrong at the start of the chain


def test_a_dependency_that_was_never_accepted_fails_its_dependents(url: str) -> None:
    with Client(url) as client:
        refused = client.submit("no_such_op", x=1)
        dependent = client.submit(divide, refused)
        next_one = client.submit(divide, dependent)  # fails with it, down the chain
        with pytest.raises(SubmitError, match=r"never accepted: .*no_such_op"):
            dependent.result(30)
        with pytest.raises(SubmitError, match="never accepted"):
            next_one.result(30)
        with pytest.raises(SubmitError, match="no_such_op"):
            refused.result(1)
        late = client.submit(divide, refused)  # the refusal came first: the same error
        with pytest.raises(SubmitError, match=r"never accepted: .*no_such_op"):
            late.result(30)


def test_only_this_clients_futures_may_be_arguments(url: str) -> None:
    with Client(url) as client, Client(url) as other:
        theirs = other.submit(divide, 1)
        theirs.result(30)
        with pytest.raises(TypeError, match="not one this client made"):
            client.submit(divide, theirs)
        with pytest.raises(TypeError, match="not one this client made"):
            client.submit(divide, concurrent.futures.Future())
        with pytest.raises(TypeError, match="JSON"):  # still refused: a set beside a future
            client.submit(echo, client.submit(divide, 1), {1, 2})


def test_the_async_client_passes_futures_too(url: str) -> None:
    async def main() -> list[float]:
        async with AsyncClient(url) as client:
            a = client.submit(divide, 9, 3)
            b = client.submit(divide, a, 3)
            job = client.submit_job(divide, [a, b], [1, 1])
            return [await b, *[r async for r in job.results()]]

    assert asyncio.run(main()) == [1.0, 3.0, 1.0]
