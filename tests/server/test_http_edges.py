"""Numbers out of range in the HTTP API of a real coordinator (SQLite, which cannot even look
up an id past 64 bits): in a path, a query or a JSON body, they get 400 with a ``detail``
that says what is wrong, never 500; and the OpenAPI schema says which ids are allowed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests._support import AUTH, Coordinator

pytestmark = pytest.mark.processes  # a coordinator for the module

TOO_BIG = str(2**63)  # 9223372036854775808
LARGEST = str(2**63 - 1)
JOB = '{"op": "prime_count", "args": [{"lo": 0, "hi": 10}]'


@pytest.fixture(scope="module")
def coordinator() -> Iterator[Coordinator]:
    started = Coordinator(0, ("--quiet",))
    try:
        yield started
    finally:
        started.end()


@pytest.fixture(scope="module")
def api(coordinator: Coordinator) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{coordinator.port}"
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("get", f"/api/jobs/{TOO_BIG}", f"job_id must be from 1 to {LARGEST}, not {TOO_BIG}"),
        ("get", f"/api/jobs/-{TOO_BIG}1", "job_id must be from 1 to"),
        ("get", "/api/jobs/0", "job_id must be from 1 to"),
        ("get", f"/api/jobs/{TOO_BIG}/results", "job_id must be from 1 to"),
        ("post", f"/api/jobs/{TOO_BIG}/cancel", "job_id must be from 1 to"),
        ("get", "/api/jobs?before=99999999999999999999", "before must be from 1 to"),
        ("get", "/api/jobs?before=-1", "before must be from 1 to"),
    ],
)
def test_ids_out_of_range_get_400(api: httpx.Client, method: str, path: str, detail: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


def test_the_largest_id_is_looked_up(api: httpx.Client) -> None:
    assert api.get(f"/api/jobs/{LARGEST}").status_code == 404
    assert api.get("/api/jobs", params={"before": LARGEST}).status_code == 200


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (JOB + ', "priority": 1e400}', "the number 1e400 in the body is out of range"),
        (JOB + ', "lease_timeout": NaN}', "the body holds NaN"),
        (JOB + ', "lease_timeout": Infinity}', "the body holds Infinity"),
        (JOB + ', "priority": -Infinity}', "the body holds -Infinity"),
        (JOB + ', "max_replicas": -1e999}', "the number -1e999 in the body is out of range"),
        ('{"op": "prime_count", "args": [{"lo": NaN, "hi": 10}]}', "the body holds NaN"),
        ('{"op": "prime_count", "args": [{"lo": 0, "hi": 1e400}]}', "out of range"),
        (JOB + ', "priority": ' + "9" * 5000 + "}", "integers may have at most"),
        (
            '{"op": "prime_count", "args": [{"lo": 0, "hi": 10, "x": '
            + "[" * 5000
            + "]" * 5000
            + "}]}",
            "the body nests arrays and objects too deep",
        ),
    ],
)
def test_numbers_out_of_range_in_a_body_get_400(api: httpx.Client, body: str, detail: str) -> None:
    response = api.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


def test_finite_numbers_are_read_as_before(api: httpx.Client) -> None:
    response = api.post(
        "/api/jobs",
        content=JOB + ', "priority": 5, "lease_timeout": 1.5e1}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    status = api.get(f"/api/jobs/{response.json()['job_id']}").json()
    assert status["priority"] == 5
    api.post(f"/api/jobs/{status['job_id']}/cancel")
    out_of_bounds = api.post(
        "/api/jobs",
        content=JOB + ', "priority": 5000.0}',
        headers={"content-type": "application/json"},
    )
    assert out_of_bounds.status_code == 422  # finite, past the schema's bound: as before
    assert "less than or equal to 1000" in out_of_bounds.text


def test_none_of_it_made_the_coordinator_fail(coordinator: Coordinator) -> None:
    """After the tests above (pytest runs a module's tests in order)."""
    assert not [e for e in coordinator.events() if e["level"] == "error"], coordinator.output()


def test_the_schema_gives_the_range_of_ids_and_the_400(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [
        ("/api/jobs/{job_id}", "get"),
        ("/api/jobs/{job_id}/results", "get"),
        ("/api/jobs/{job_id}/cancel", "post"),
    ]:
        operation = paths[path][method]
        (job_id,) = [p for p in operation["parameters"] if p["name"] == "job_id"]
        assert (job_id["schema"]["minimum"], job_id["schema"]["maximum"]) == (1, 2**63 - 1)
        assert "400" in operation["responses"]
    listing = paths["/api/jobs"]["get"]
    (before,) = [p for p in listing["parameters"] if p["name"] == "before"]
    assert (before["schema"]["minimum"], before["schema"]["maximum"]) == (1, 2**63 - 1)
    assert "400" in listing["responses"]
    assert "400" in paths["/api/jobs"]["post"]["responses"]
