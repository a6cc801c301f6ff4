"""Blobs on a real coordinator (docs/protocol.md, "Blobs"): uploads, fetches with their cache
headers and ranges, refs checked at submit, a worker's large result uploaded under its
lease, and every bad upload refused with nothing kept."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests._support import AUTH, Coordinator, job_results, job_state, submit_job

pytestmark = pytest.mark.processes

WORKER_TOKEN = "blob-test-join-token"
DATA = bytes(range(256)) * 1000  # 256,000 bytes: more than one chunk of a stream


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    data_dir = tmp_path_factory.mktemp("blobs")
    started = Coordinator(
        0,
        (
            "--quiet",
            "--data-dir",
            str(data_dir),
            "--worker-token",
            WORKER_TOKEN,
            "--max-blob-size",
            "1000000",
            "--max-blob-bytes",
            "3000000",
            "--welcome-times",
            "0",
        ),
    )
    started.data_dir = data_dir  # type: ignore[attr-defined]
    try:
        yield started
    finally:
        started.end()


@pytest.fixture(scope="module")
def api(coordinator: Coordinator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{coordinator.port}", headers=AUTH, timeout=30
    ) as client:
        yield client


def put(api: httpx.Client, data: bytes, form: str = "bytes") -> httpx.Response:
    return api.post("/api/blobs", params={"format": form}, content=data)


def test_an_upload_answers_its_ref_and_is_served_immutable(api: httpx.Client) -> None:
    first = put(api, DATA)
    assert first.status_code == 201, first.text
    assert first.json() == {"$blob": sha(DATA), "size": len(DATA), "format": "bytes"}
    again = put(api, DATA)
    assert again.status_code == 200
    assert again.json() == first.json()

    got = api.get(f"/blobs/{sha(DATA)}")
    assert got.status_code == 200
    assert got.content == DATA
    assert got.headers["etag"] == f'"{sha(DATA)}"'
    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["access-control-allow-origin"] == "*"

    part = api.get(f"/blobs/{sha(DATA)}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == DATA[10:20]
    head = api.head(f"/blobs/{sha(DATA)}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(DATA))


def test_uploading_needs_the_admin_token(coordinator: Coordinator) -> None:
    response = httpx.post(f"http://127.0.0.1:{coordinator.port}/api/blobs", content=b"x")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_fetching_needs_a_token_or_a_leased_key_where_a_join_token_is_set(
    coordinator: Coordinator, api: httpx.Client
) -> None:
    put(api, b"secret stuff")
    url = f"http://127.0.0.1:{coordinator.port}/blobs/{sha(b'secret stuff')}"
    for headers, params in (
        ({}, {}),
        ({"Authorization": f"Bearer {WORKER_TOKEN}"}, {}),  # the join token is no read token
        ({"Authorization": "Bearer nonsense"}, {}),
        ({}, {"key": "nonsense"}),
    ):
        refused = httpx.get(url, headers=headers, params=params)
        assert refused.status_code == 403, (headers, params)
        assert refused.json()["code"] == "blob_not_leased"


@pytest.mark.parametrize("name", ["0" * 64, "nothex", "A" * 64])
def test_a_blob_not_held_is_404(api: httpx.Client, name: str) -> None:
    response = api.get(f"/blobs/{name}")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_blob"


def test_bad_uploads_keep_nothing(coordinator: Coordinator, api: httpx.Client) -> None:
    not_json = b'{"half": '
    response = put(api, not_json, "json")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_json"
    assert api.get(f"/blobs/{sha(not_json)}").status_code == 404

    too_large = b"x" * 1_000_001
    response = put(api, too_large)
    assert response.status_code == 413
    assert response.json()["code"] == "blob_too_large"
    assert "--max-blob-size" in response.json()["detail"]

    json_value = json.dumps({"a": [1, 2, 3]}).encode()
    assert put(api, json_value, "json").json()["format"] == "json"

    tmp = coordinator.data_dir / "blobs" / "tmp"  # type: ignore[attr-defined]
    assert list(tmp.iterdir()) == []


def test_an_upload_cut_short_keeps_nothing(coordinator: Coordinator) -> None:
    body = b"y" * 50_000
    with socket.create_connection(("127.0.0.1", coordinator.port)) as raw:
        raw.sendall(
            b"POST /api/blobs HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {AUTH['Authorization']}\r\n".encode()
            + b"Content-Length: 100000\r\n\r\n"
            + body
        )
        time.sleep(0.3)
    tmp = coordinator.data_dir / "blobs" / "tmp"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    with httpx.Client(headers=AUTH) as client:
        url = f"http://127.0.0.1:{coordinator.port}/blobs/{sha(body)}"
        assert client.get(url).status_code == 404


def test_the_store_refuses_uploads_past_its_total(tmp_path: Path) -> None:
    small = Coordinator(0, ("--quiet", "--data-dir", str(tmp_path), "--max-blob-bytes", "1000"))
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{small.port}", headers=AUTH, timeout=30
        ) as api:
            assert put(api, b"a" * 600).status_code == 201
            full = put(api, b"b" * 600)
            assert full.status_code == 507
            assert full.json()["code"] == "blob_store_full"
    finally:
        small.end()


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ({"$blob": "0" * 64, "size": 3}, "does not hold"),
        ({"$blob": "0" * 63, "size": 3}, "64 lowercase hex"),
        ({"$blob": "0" * 64}, "'size'"),
    ],
)
def test_a_submit_with_a_bad_ref_queues_nothing(
    api: httpx.Client, ref: dict[str, Any], words: str
) -> None:
    response = api.post("/api/jobs", json={"op": "prime_count", "args": [{"lo": ref}]})
    assert response.status_code in (400, 422), response.text
    assert words in response.text


def test_a_submit_with_a_ref_of_the_wrong_size_is_refused(api: httpx.Client) -> None:
    put(api, DATA)
    response = api.post(
        "/api/jobs",
        json={"op": "prime_count", "args": [{"lo": {"$blob": sha(DATA), "size": 5}}]},
    )
    assert response.status_code == 400
    assert f"holds {len(DATA)} bytes" in response.text


@contextlib.contextmanager
def hello(
    coordinator: Coordinator, ops: list[str], holds: tuple[str, ...] = ()
) -> Iterator[tuple[ClientConnection, str]]:
    """A raw worker that said hello with ``ops`` (holding the blobs ``holds``), and its
    blob key."""
    with connect(f"ws://127.0.0.1:{coordinator.port}/ws?token={WORKER_TOKEN}") as ws:
        said = {"type": "hello", "protocol": 1, "agent": "test", "ops": ops, "concurrency": 1}
        ws.send(json.dumps({**said, "holds": list(holds)}))
        while True:
            frame = json.loads(ws.recv(10))
            if frame["type"] == "welcome":
                yield ws, frame["blob_key"]
                return


def wait_finished(coordinator: Coordinator, job_id: int) -> None:
    deadline = time.monotonic() + 10
    while job_state(coordinator.port, job_id)["state"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def next_task(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.recv(10))
        if frame["type"] == "task":
            return frame
        if frame["type"] == "tasks":
            return frame["tasks"][0]


def test_a_worker_fetches_what_its_task_refers_to_and_uploads_its_large_result(
    coordinator: Coordinator, api: httpx.Client
) -> None:
    ref = put(api, DATA).json()
    other = put(api, b"not for this task").json()
    with (
        hello(coordinator, ["blob_echo"]) as (ws, key),
        hello(coordinator, ["nothing_at_all"]) as (_intruder, intruder_key),
    ):
        job_id = submit_job(
            coordinator.port, {"op": "blob_echo", "args": [{"data": ref}], "max_attempts": 1}
        )
        task = next_task(ws)
        assert task["data"] == ref
        base = f"http://127.0.0.1:{coordinator.port}"
        fetched = httpx.get(f"{base}/blobs/{ref['$blob']}", params={"key": key})
        assert fetched.status_code == 200
        assert fetched.content == DATA
        for digest, who in ((other["$blob"], key), (ref["$blob"], intruder_key)):
            refused = httpx.get(f"{base}/blobs/{digest}", params={"key": who})
            assert refused.status_code == 403

        result = json.dumps({"echo": DATA.hex()[:200_000]}).encode()
        url = f"{base}/blobs/{sha(result)}"
        task_id = str(task["task_id"])
        refused = httpx.put(url, params={"key": intruder_key, "task_id": task_id}, content=result)
        assert refused.status_code == 403
        assert refused.json()["code"] == "not_leased"
        wrong = httpx.put(
            f"{base}/blobs/{sha(b'other')}", params={"key": key, "task_id": task_id}, content=result
        )
        assert wrong.status_code == 400
        assert wrong.json()["code"] == "hash_mismatch"
        stored = httpx.put(url, params={"key": key, "task_id": task_id}, content=result)
        assert stored.status_code == 201, stored.text
        result_ref = stored.json()
        assert result_ref == {"$blob": sha(result), "size": len(result), "format": "json"}
        again = httpx.put(url, params={"key": key, "task_id": task_id}, content=result)
        assert again.status_code == 409  # one upload per lease: a lease cannot fill the disk
        assert again.json()["code"] == "already_uploaded"

        ws.send(
            json.dumps(
                {
                    "type": "result",
                    "task_id": task["task_id"],
                    "result": result_ref,
                    "duration_ms": 1,
                }
            )
        )
        wait_finished(coordinator, job_id)
        outcome = job_results(coordinator.port, job_id)[0]
        assert outcome["result"] == result_ref
        assert api.get(f"/blobs/{sha(result)}").content == result  # a client reads it


def test_a_result_that_names_a_blob_never_uploaded_is_the_workers_error(
    coordinator: Coordinator,
) -> None:
    with hello(coordinator, ["liar_op"]) as (ws, _key):
        job_id = submit_job(
            coordinator.port, {"op": "liar_op", "args": [{"n": 1}], "max_attempts": 1}
        )
        task = next_task(ws)
        fake = {"$blob": "1" * 64, "size": 10, "format": "json"}
        ws.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": fake, "duration_ms": 1}
            )
        )
        wait_finished(coordinator, job_id)
        outcome = job_results(coordinator.port, job_id)[0]
        assert "did not upload" in " ".join(outcome["reasons"])


def test_the_cli_uploads_a_file_and_prints_its_ref(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    data_file = tmp_path / "values.json"
    data_file.write_text('{"values": [1, 2, 3]}', encoding="utf-8")
    server = f"http://127.0.0.1:{coordinator.port}"
    printed = subprocess.run(
        [sys.executable, "-m", "browsergrid", "put", str(data_file), "--json", "--server", server],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    content = data_file.read_bytes()
    assert json.loads(printed) == {"$blob": sha(content), "size": len(content), "format": "json"}
    missing = subprocess.run(
        [sys.executable, "-m", "browsergrid", "put", str(tmp_path / "nope"), "--server", server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "is not a file" in missing.stderr


@pytest.mark.redis
def test_a_coordinator_on_redis_keeps_blobs_in_the_grids_redis(
    redis_url: str, tmp_path: Path
) -> None:
    grid = Coordinator(0, ("--quiet", "--data-dir", str(tmp_path), "--redis", redis_url))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{grid.port}", headers=AUTH) as api:
            stored = put(api, b"data")
            assert stored.status_code == 201, stored.text
            too_large = put(api, b"x" * (8 * 1024 * 1024 + 1))
            assert too_large.status_code == 413 and "--blob-store" in too_large.text
        with connect(f"ws://127.0.0.1:{grid.port}/ws") as ws:
            ws.send(
                json.dumps(
                    {"type": "hello", "protocol": 1, "agent": "t", "ops": ["x"], "concurrency": 1}
                )
            )
            frames = [json.loads(ws.recv(10)) for _ in range(2)]
        [welcome] = [frame for frame in frames if frame["type"] == "welcome"]
        assert welcome["blob_key"]  # its large results go up as blobs, as anywhere
    finally:
        grid.end()


def test_a_python_functions_source_travels_once_as_a_blob(coordinator: Coordinator) -> None:
    source = "def twice(x):\n    return 2 * x\n"
    function = {"name": "twice", "source": source, "sha256": sha(source.encode())}
    with hello(coordinator, ["python"]) as (ws, key):
        submit_job(
            coordinator.port,
            {"op": "python", "args": [{"function": function, "args": [k]} for k in range(3)]},
        )
        sent = next_task(ws)["function"]
        assert (sent["name"], sent["sha256"]) == ("twice", function["sha256"])
        text = json.dumps(source, separators=(",", ":")).encode()
        assert sent["source"] == {"$blob": sha(text), "size": len(text), "format": "json"}
        url = f"http://127.0.0.1:{coordinator.port}/blobs/{sha(text)}"
        fetched = httpx.get(url, params={"key": key})
        assert fetched.status_code == 200  # the worker holding the task may fetch its source
        assert json.loads(fetched.content) == source
    assert httpx.get(url, params={"key": key}).status_code == 403  # its connection is gone


def test_a_result_may_name_only_the_blob_its_lease_uploaded(
    coordinator: Coordinator, api: httpx.Client
) -> None:
    ref = put(api, DATA).json()  # a blob the coordinator holds, but not this task's result
    with hello(coordinator, ["borrower"]) as (ws, _key):
        job_id = submit_job(
            coordinator.port, {"op": "borrower", "args": [{"data": ref}], "max_attempts": 1}
        )
        task = next_task(ws)
        borrowed = {**ref, "format": "json"}
        ws.send(
            json.dumps(
                {"type": "result", "task_id": task["task_id"], "result": borrowed, "duration_ms": 1}
            )
        )
        wait_finished(coordinator, job_id)
    [outcome] = job_results(coordinator.port, job_id)
    assert "did not upload for this task" in " ".join(outcome["reasons"])


def test_a_stranger_learns_nothing_of_which_blobs_exist(
    coordinator: Coordinator, api: httpx.Client
) -> None:
    held = put(api, b"exists").json()["$blob"]
    base = f"http://127.0.0.1:{coordinator.port}/blobs"
    answers = {httpx.get(f"{base}/{digest}").status_code for digest in (held, "9" * 64)}
    assert answers == {403}


def test_a_task_goes_to_the_worker_that_holds_its_large_input(
    coordinator: Coordinator, api: httpx.Client
) -> None:
    ref = put(api, DATA).json()  # 256,000 bytes: worth sending the task where it is
    with (
        hello(coordinator, ["locality_op"]) as (first, _),  # first in line, holds nothing
        hello(coordinator, ["locality_op"], holds=(ref["$blob"],)) as (holder, _),
    ):
        submit_job(coordinator.port, {"op": "locality_op", "args": [{"data": ref}]})
        assert next_task(holder)["data"] == ref
        with pytest.raises(TimeoutError):
            while True:  # the first worker gets nothing but its welcome task
                frame = json.loads(first.recv(0.5))
                assert frame["type"] not in ("tasks",), frame
                assert frame["type"] != "task" or frame["op"] == "repeat_multiply", frame
