"""Blobs end to end (docs/protocol.md, "Blobs"): data put once by a client reaches the ops of
real Chromium tabs (JavaScript and Pyodide) and of the Python worker as the same bytes; a
large result goes back as a blob, under redundancy too, and the client reads the value."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from browsergrid import Client
from tests._support import Coordinator, job_results
from tests.e2e._blob_functions import blob_digest, counting

OPS = """
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
export async function js_blob_digest({ data, meta }) {
  const sha = hex(new Uint8Array(await crypto.subtle.digest('SHA-256', data)));
  return { len: data.length, sha, total: meta.reduce((a, b) => a + b, 0) };
}
export function js_counting({ n }) {
  return Array.from({ length: n }, (_, i) => i % 1000);
}
"""
BIG = 20 * 1024 * 1024
META = list(range(100))


def expected(data: bytes) -> dict[str, Any]:
    return {"len": len(data), "sha": hashlib.sha256(data).hexdigest(), "total": sum(META)}


@pytest.fixture
def with_ops(start_coordinator: Callable[..., Coordinator], tmp_path: Path) -> Coordinator:
    module = tmp_path / "ops.js"
    module.write_text(OPS, encoding="utf-8")
    return start_coordinator("--ops-module", str(module))


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_a_20_mb_blob_reaches_a_tabs_js_op_and_pyodide_as_the_same_bytes(
    with_ops: Coordinator, page: Any
) -> None:
    data = os.urandom(BIG)
    page.goto(f"{with_ops.page_url}?workers=2")
    with_ops.event("worker_introduced")
    with Client(f"http://127.0.0.1:{with_ops.port}") as client:
        ref = client.put(data)
        assert (ref.size, ref.format) == (BIG, "bytes")
        meta = client.put(META)
        assert meta.format == "json"
        js = client.submit("js_blob_digest", data=ref, meta=meta)
        py = client.submit(blob_digest, ref, meta)
        assert js.result(timeout=150) == expected(data)
        assert py.result(timeout=150) == expected(data)
    kept = page.evaluate(
        "async () => (await (await caches.open('browsergrid-blobs-v1')).keys()).map((r) => r.url)"
    )
    assert f"{with_ops.page_url.rstrip('/')}/blobs/{ref.sha256}" in kept  # for the next task


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_a_5_mb_result_of_two_tabs_agreeing_comes_back_as_a_blob(
    with_ops: Coordinator, browser: Any
) -> None:
    contexts = [browser.new_context() for _ in range(2)]  # two identities
    try:
        for context in contexts:
            context.new_page().goto(f"{with_ops.page_url}?workers=1")
        with_ops.events_named("worker_introduced", 2)
        n = 1_300_000  # about 4.9 MB of JSON
        with Client(f"http://127.0.0.1:{with_ops.port}") as client:
            job = client.options(redundancy=2).submit_job("js_counting", [{"n": n}])
            [result] = list(job.results(timeout=150))
            assert result == [i % 1000 for i in range(n)]
        [record] = job_results(with_ops.port, job.job_id)
    finally:
        for context in contexts:
            context.close()
    assert record["verdict"] == "quorum"
    assert record["result"]["format"] == "json"
    assert record["result"]["size"] > 4_000_000
    assert all(replica["agreed"] for replica in record["replicas"])


@pytest.mark.processes
@pytest.mark.timeout(120)
def test_the_python_worker_reads_blobs_and_uploads_large_results(
    coordinator: Coordinator, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    for _ in range(2):
        start_worker(
            coordinator.ws_url, "--python-functions", "--quiet", "--data-dir", str(tmp_path)
        )
    data = os.urandom(BIG)
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        wait_until_workers(client, 2)
        ref = client.put(data)
        meta = client.put(META)
        futures = [client.submit(blob_digest, ref, meta) for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == [expected(data)] * 4
        large = client.options(redundancy=2).submit(counting, 300_000)
        assert large.result(timeout=60) == [i % 1000 for i in range(300_000)]
    kept = list((tmp_path / "blobs").iterdir())
    assert ref.sha256 in {path.name for path in kept}  # cached on disk for the next task


def wait_until_workers(client: Client, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(client.workers()) < count:
        assert time.monotonic() < deadline, "the workers did not connect"
        time.sleep(0.1)
