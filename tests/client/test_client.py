"""``Client`` (futures) against a real coordinator and two real Python workers."""

from __future__ import annotations

import concurrent.futures
import math
import signal

import pytest

import browsergrid
from browsergrid import Client, ConnectionLost, SubmitError, TaskError
from tests._support import Coordinator
from tests.conftest import Served

RM = "repeat_multiply"


def rm(initial: float) -> dict[str, float | int]:
    return {"initial": initial, "factor": 2.0, "times": 3}


def test_submit_returns_a_future_with_the_result(served: Served) -> None:
    with Client(served.url) as client:
        future = client.submit(RM, initial=1.5, factor=2.0, times=3)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=10) == 12.0


def test_map_keeps_input_order_and_map_unordered_gives_everything(served: Served) -> None:
    with Client(served.url) as client:
        assert list(client.map(RM, [rm(i) for i in range(500)], timeout=30)) == [
            8.0 * i for i in range(500)
        ]
        assert sorted(client.map_unordered(RM, [rm(i) for i in range(200)], timeout=30)) == [
            8.0 * i for i in range(200)
        ]


def test_gather_as_completed_and_the_job_handle(served: Served) -> None:
    with Client(served.url) as client:
        job = client.submit_job("prime_count", [{"lo": 0, "hi": 10**k} for k in range(1, 6)])
        assert client.gather(job.futures, timeout=30) == [4, 25, 168, 1229, 9592]
        assert isinstance(job.job_id, int)
        finished = list(client.as_completed(job.futures, timeout=30))
        assert sorted(f.result() for f in finished) == [4, 25, 168, 1229, 9592]


def test_a_failing_task_raises_task_error_with_op_args_and_every_attempt(served: Served) -> None:
    with Client(served.url) as client:
        future = client.options(max_attempts=2).submit(RM, initial="x", factor=2.0, times=3)
        with pytest.raises(TaskError) as caught:
            future.result(timeout=30)
    error = caught.value
    assert error.op == RM and error.task_args == {"initial": "x", "factor": 2.0, "times": 3}
    assert error.attempts == 2 and len(error.reasons) == 2
    assert all("'initial'" in reason for reason in error.reasons)
    # a re-issued task goes to the other worker first
    assert error.reasons[0].split()[1] != error.reasons[1].split()[1]


def test_map_raises_task_error_at_the_failing_item(served: Served) -> None:
    with Client(served.url) as client:
        results = client.options(max_attempts=1).map(RM, [rm(1), {"initial": 1.0}, rm(3)])
        assert next(results) == 8.0
        with pytest.raises(TaskError, match="'factor'"):
            next(results)


def test_unknown_op_is_refused_by_the_coordinator(served: Served) -> None:
    with Client(served.url) as client:
        with pytest.raises(SubmitError, match="no worker runs op 'nope'") as caught:
            client.submit("nope", x=1).result(timeout=10)
        assert caught.value.code == "unknown_op"
        assert client.submit(RM, **rm(1)).result(timeout=10) == 8.0  # the connection goes on


def test_bad_arguments_are_refused_before_sending(served: Served) -> None:
    with Client(served.url) as client:
        with pytest.raises(ValueError, match="reserved"):
            client.submit_job(RM, [{"op": 1}])
        with pytest.raises(TypeError, match="JSON"):
            client.submit(RM, initial=object())
        with pytest.raises(TypeError, match="must be a dict"):
            client.submit_job(RM, [[1, 2]])  # type: ignore[list-item]


def test_cancel_a_job_cancels_its_futures(served: Served) -> None:
    with Client(served.url) as client:
        job = client.submit_job("prime_count", [{"lo": 0, "hi": 3 * 10**6}] * 300)
        first = next(iter(client.as_completed(job.futures, timeout=30)))
        client.cancel(job)
        concurrent.futures.wait(job.futures, timeout=30)
        cancelled = sum(f.cancelled() for f in job.futures)
        done = sum(not f.cancelled() for f in job.futures)
    assert first.result() == 216816
    assert cancelled > 0 and done >= 1 and cancelled + done == 300


def test_100k_tasks_do_not_take_100k_frames(served: Served) -> None:
    """Submissions are pipelined (no round trip each) and batched into shared frames."""
    with Client(served.url) as client:
        refs = client.engine._refs  # white box: one ref per submit frame
        job = client.submit_job(
            RM, ({"initial": float(i), "factor": 1.0, "times": 1} for i in range(100_000))
        )
        assert job.job_id  # accepted: every frame of the job was built
        assert next(refs) - 1 < 20  # ~60 bytes a task: about 7 frames of 900 kB
        quick = client.options(name="many", priority=5)
        futures = [quick.submit(RM, initial=float(i), factor=1.0, times=1) for i in range(100_000)]
        assert futures[-1].result(timeout=60) == 99_999.0
        frames = next(refs) - 1
        assert frames < 100_000 / 20, frames  # one frame per flush of the loop, not per call
        assert [f.result(timeout=60) for f in futures[:3]] == [0.0, 1.0, 2.0]
        assert job.futures[-1].result(timeout=60) == 99_999.0


def test_pending_futures_fail_with_connection_lost_when_the_coordinator_dies(
    coordinator: Coordinator,
) -> None:
    with Client(f"http://127.0.0.1:{coordinator.port}", reconnect_timeout=1) as client:
        future = client.submit(RM, **rm(1))  # no worker runs it
        coordinator.signal(signal.SIGKILL)
        with pytest.raises(ConnectionLost, match="gave up after 1 s"):
            future.result(timeout=10)
        with pytest.raises(ConnectionLost):
            client.submit(RM, **rm(2))


def test_an_unreachable_coordinator_is_a_clear_error() -> None:
    with pytest.raises(ConnectionLost, match="cannot reach the coordinator"):
        Client("http://127.0.0.1:1", timeout=5)


def test_server_urls_accept_every_spelling() -> None:
    urls = browsergrid.client.server_urls
    assert urls("127.0.0.1:9") == ("http://127.0.0.1:9", "ws://127.0.0.1:9/client")
    assert urls("https://h:1/x") == ("https://h:1", "wss://h:1/client")
    assert urls("ws://h:2") == ("http://h:2", "ws://h:2/client")
    with pytest.raises(browsergrid.ConfigError):
        urls("ftp://h")


def test_results_are_floats_not_approximations(served: Served) -> None:
    with Client(served.url) as client:
        result = client.submit(RM, initial=1.0000054, factor=1.00000043, times=1_000_000).result(10)
    assert math.isclose(result, 1.5372656826974733, rel_tol=1e-12)
