"""Validation of untrusted results, end to end: a real coordinator, three honest Python
workers and a saboteur that answers wrongly 30% of the time, at ``redundancy=2``."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from browsergrid import Client
from browsergrid._tokens import auth_headers, client_token
from browsergrid.ops import run_op
from browsergrid.protocol import public_worker_key
from tests._saboteur import KEY as SECRET_KEY
from tests._support import Coordinator, Process, free_port

KEY = public_worker_key(SECRET_KEY)  # what the coordinator shows: never the key itself
TASKS = [{"lo": i * 500, "hi": (i + 1) * 500} for i in range(300)]


def test_no_wrong_result_is_accepted_and_the_saboteur_ends_in_quarantine(
    tmp_path: Path,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    data = ("--data-dir", str(tmp_path / "grid"))
    coordinator = start_coordinator(*data, port=free_port())
    honest = [start_worker(coordinator.ws_url, "--max-backoff", "1") for _ in range(3)]
    saboteur = Process([sys.executable, "-m", "tests._saboteur", coordinator.ws_url, "0.3"])
    try:
        introduced = coordinator.events_named("worker_introduced", 4)
        saboteur_id = next(
            e["worker_id"]
            for e in coordinator.events_named("worker_new", 4)
            if e["worker_key"] == KEY
        )
        with Client(coordinator.ws_url) as client:
            job = client.options(name="checked", redundancy=2).submit_job("prime_count", TASKS)
            values = list(job.results(timeout=120))
            job_id = job.job_id
        assert len(introduced) == 4
        assert values == [run_op("prime_count", args) for args in TASKS]  # none is wrong

        base = coordinator.page_url.split("?")[0].rstrip("/")
        headers = auth_headers(client_token(None, base))
        lines = httpx.get(f"{base}/api/jobs/{job_id}/results", headers=headers).text
        records = [json.loads(line) for line in lines.splitlines()]
        assert len(records) == len(TASKS) and all(r["status"] == "done" for r in records)
        dissents = 0
        for record in records:
            assert record["verdict"] == "quorum"
            agreed = [r for r in record["replicas"] if r["agreed"]]
            assert len({r["worker_key"] for r in agreed}) == 2  # two distinct identities
            for replica in record["replicas"]:
                if not replica["agreed"]:
                    assert replica["worker_key"] == KEY and replica["result"] < 0
                    dissents += 1
        assert dissents >= 3  # the saboteur was caught lying, then stopped

        quarantined = coordinator.event("worker_quarantined")
        assert quarantined["worker_key"] == KEY and quarantined["worker_ids"] == [saboteur_id]
        after = coordinator.events()
        after = after[after.index(quarantined) :]
        assert not [
            e for e in after if e.get("event") == "task_sent" and e["worker_id"] == saboteur_id
        ]
        history_text = httpx.get(f"{base}/api/workers/history", headers=headers).text
        for shown in (history_text, lines, coordinator.output()):
            assert SECRET_KEY not in shown  # nobody can read the key and claim its identity
        history = json.loads(history_text)
        standing = {w["worker_key"]: w for w in history}
        assert standing[KEY]["quarantined"] and standing[KEY]["invalid"] >= 3
        assert all(not w["quarantined"] for key, w in standing.items() if key != KEY)
        workers = httpx.get(f"{base}/api/workers", headers=headers).json()
        assert [w["quarantined"] for w in workers if w["worker_id"] == saboteur_id] == [True]

        # the quarantine outlives a restart: the saboteur comes back and still gets nothing
        # (but the welcome task, sent before it says who it is)
        coordinator.signal(signal.SIGTERM)
        assert coordinator.wait() == 0
        again = start_coordinator(*data, port=coordinator.port)
        back = again.event("worker_recognised", worker_key=KEY, timeout=20)["worker_id"]
        again.events_named("worker_introduced", 4, timeout=20)
        with Client(again.ws_url) as client:
            more = client.options(redundancy=2).map("prime_count", TASKS[:40])
            assert list(more) == values[:40]
        assert not [
            e
            for e in again.events()
            if e.get("event") == "task_sent" and e["worker_id"] == back and not e["welcome"]
        ]
    finally:
        saboteur.end()
        for worker in honest:
            worker.end()
