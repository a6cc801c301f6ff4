"""The HTTP/JSON API of a real coordinator (with one real Python worker), over httpx."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests._support import AUTH, Coordinator, Process

pytestmark = pytest.mark.processes  # a coordinator and a worker for the module


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    coordinator = Coordinator(0, ("--quiet",))
    worker = Process([sys.executable, "-m", "browsergrid", "worker", coordinator.ws_url])
    try:
        worker.wait_for_line(lambda line: "welcomed" in line)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{coordinator.port}", headers=AUTH, timeout=30
        ) as http:
            yield http
    finally:
        worker.end()
        coordinator.end()


def submit(api: httpx.Client, **body: object) -> dict[str, object]:
    response = api.post("/api/jobs", json=body)
    assert response.status_code == 201, response.text
    accepted: dict[str, object] = response.json()
    return accepted


def test_submit_follow_results_and_status(api: httpx.Client) -> None:
    args = [{"lo": 0, "hi": 10**k} for k in range(1, 5)]
    accepted = submit(api, op="prime_count", args=args, name="primes")
    assert accepted["count"] == 4
    job_id = accepted["job_id"]
    with api.stream("GET", f"/api/jobs/{job_id}/results", params={"follow": "true"}) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert sorted((line["index"], line["result"]) for line in lines) == [
        (0, 4),
        (1, 25),
        (2, 168),
        (3, 1229),
    ]
    assert all(line["status"] == "done" and line["attempts"] == 1 for line in lines)
    status = api.get(f"/api/jobs/{job_id}").json()
    assert status | {"created_at": 0, "rate": 0, "finished_at": 0} == {
        "job_id": job_id,
        "name": "primes",
        "op": "prime_count",
        "priority": 0,
        "state": "finished",
        "total": 4,
        "queued": 0,
        "leased": 0,
        "done": 4,
        "failed": 0,
        "cancelled": 0,
        "created_at": 0,
        "rate": 0,
        "eta_s": None,
        "finished_at": 0,
        "redundancy": 1,
        "adaptive": False,
        "waiting": 0,
    }
    assert status["finished_at"] >= status["created_at"]
    assert job_id in [job["job_id"] for job in api.get("/api/jobs").json()]


def test_failures_are_streamed_with_their_reasons(api: httpx.Client) -> None:
    job_id = submit(api, op="repeat_multiply", args=[{"initial": 1.0}], max_attempts=2)["job_id"]
    with api.stream("GET", f"/api/jobs/{job_id}/results", params={"follow": "true"}) as response:
        (line,) = [json.loads(line) for line in response.iter_lines() if line]
    assert line["status"] == "failed" and len(line["reasons"]) == 2
    assert "'factor'" in line["reasons"][0]


def test_cancel_stops_the_rest_of_a_job(api: httpx.Client) -> None:
    job_id = submit(api, op="prime_count", args=[{"lo": 0, "hi": 10**7}] * 200)["job_id"]
    status = api.post(f"/api/jobs/{job_id}/cancel").json()
    assert status["state"] == "cancelled" and status["cancelled"] > 0
    assert status["done"] + status["cancelled"] == 200
    with api.stream("GET", f"/api/jobs/{job_id}/results", params={"follow": "true"}) as response:
        done = [line for line in response.iter_lines() if line]  # ends: the job is closed
    assert len(done) == status["done"]


def test_workers_are_listed(api: httpx.Client) -> None:
    (worker,) = api.get("/api/workers").json()
    assert worker["kind"] == "python" and "prime_count" in worker["ops"]
    assert worker["speed_ms"] is not None and worker["tasks_done"] >= 1


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "detail"),
    [
        ("post", "/api/jobs", {"op": "nope", "args": [{}]}, 400, "no worker runs op"),
        ("post", "/api/jobs", {"op": "prime_count", "args": []}, 422, "at least 1"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [{"op": 1}]}, 400, "reserved"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [1]}, 422, "dictionary"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [{}], "x": 1}, 422, "Extra inputs"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [{}], "priority": 5000}, 422, "1000"),
        ("post", "/api/jobs", "not json", 422, "JSON"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [{}], "redundancy": 0}, 422, "1"),
        ("post", "/api/jobs", {"op": "prime_count", "args": [{}], "redundancy": 11}, 422, "10"),
        (
            "post",
            "/api/jobs",
            {"op": "prime_count", "args": [{}], "adaptive": True},
            400,
            "adaptive replication needs redundancy of at least 2",
        ),
        (
            "post",
            "/api/jobs",
            {"op": "prime_count", "args": [{}], "redundancy": 3, "max_replicas": 2},
            400,
            "max_replicas must be at least redundancy",
        ),
        ("get", "/api/jobs/999999", None, 404, "there is no job 999999"),
        ("get", "/api/jobs/abc", None, 422, "integer"),
        ("post", "/api/jobs/999999/cancel", None, 404, "there is no job"),
        ("get", "/api/jobs/999999/results", None, 404, "there is no job"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(
    api: httpx.Client, method: str, path: str, body: object, code: int, detail: str
) -> None:
    if isinstance(body, str):
        response = api.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
    else:
        response = api.request(method, path, json=body)
    assert response.status_code == code, response.text
    assert detail in response.text


def test_openapi_schema_and_docs(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/results",
        "/api/jobs/{job_id}/cancel",
        "/api/workers",
    } <= set(schema["paths"])
    docs = api.get("/docs")
    assert docs.status_code == 200 and "/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    bundle = api.get("/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_a_job_with_redundancy_reports_how_each_result_was_checked(api: httpx.Client) -> None:
    """One worker cannot make a quorum of two: the job waits for a second identity, then
    each result says which workers agreed."""
    accepted = submit(api, op="prime_count", args=[{"lo": 0, "hi": 100}], redundancy=2)
    job_id = accepted["job_id"]
    status = api.get(f"/api/jobs/{job_id}").json()
    assert (status["redundancy"], status["adaptive"]) == (2, False)
    second = Process([sys.executable, "-m", "browsergrid", "worker", _ws_url(api)])
    try:
        lines = api.get(f"/api/jobs/{job_id}/results", params={"follow": "true"}).text
    finally:
        second.end()
    [record] = [json.loads(line) for line in lines.splitlines()]
    assert record["result"] == 25 and record["verdict"] == "quorum"
    replicas = record["replicas"]
    assert [r["agreed"] for r in replicas] == [True, True]
    assert len({r["worker_key"] for r in replicas}) == 2
    assert all("result" not in r for r in replicas)  # only a dissent carries its result


def test_an_unchecked_result_says_so(api: httpx.Client) -> None:
    job_id = submit(api, op="prime_count", args=[{"lo": 0, "hi": 10}])["job_id"]
    lines = api.get(f"/api/jobs/{job_id}/results", params={"follow": "true"}).text
    [record] = [json.loads(line) for line in lines.splitlines()]
    assert (record["verdict"], record["replicas"]) == ("unchecked", [])


def _ws_url(api: httpx.Client) -> str:
    return str(api.base_url).replace("http://", "ws://").rstrip("/") + "/ws"
