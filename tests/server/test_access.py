"""Access tokens: the pure checks, then real coordinators that create, print and ask for
their admin, join and dashboard tokens, and the clients, workers and CLI that present them."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from browsergrid import AsyncClient, AuthError, Client
from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError
from browsergrid.server._access import (
    Access,
    Role,
    document_access,
    http_role,
    load_admin_token,
    presented_token,
    query_token,
)
from browsergrid.server._run import network_warning
from tests._support import AUTH, Coordinator, Process

ADMIN, JOIN, DASH = "admin-token", "join-token", "dash-token"


# --- the pure checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "presented", "expected"),
    [
        (Role.ADMIN, None, False),
        (Role.ADMIN, ADMIN, True),
        (Role.ADMIN, JOIN, False),
        (Role.ADMIN, DASH, False),
        (Role.WORKER, None, False),
        (Role.WORKER, JOIN, True),
        (Role.WORKER, ADMIN, True),
        (Role.WORKER, DASH, False),
        (Role.READ, None, False),
        (Role.READ, DASH, True),
        (Role.READ, ADMIN, True),
        (Role.READ, JOIN, False),
    ],
)
def test_each_token_opens_its_own_door_and_the_admin_token_every_door(
    role: Role, presented: str | None, expected: bool
) -> None:
    assert Access(ADMIN, JOIN, DASH).allows(role, presented) is expected


def test_a_door_without_a_token_is_open() -> None:
    open_all = Access()
    assert all(open_all.allows(role, None) for role in Role)
    assert not any(open_all.closed(role) for role in Role)
    admin_only = Access(admin=ADMIN)
    assert admin_only.allows(Role.WORKER, None) and admin_only.allows(Role.READ, "anything")
    assert not admin_only.allows(Role.ADMIN, None)
    dash_without_admin = Access(dashboard=DASH)  # --no-token --dashboard-token
    assert dash_without_admin.allows(Role.READ, DASH)
    assert not dash_without_admin.allows(Role.READ, "wrong")


def test_a_refusal_says_what_is_missing_and_where_to_find_it() -> None:
    access = Access(ADMIN, JOIN, DASH)
    admin = access.refusal(Role.ADMIN, None)
    assert "admin token (no token was sent)" in admin
    assert "'token' in its data directory" in admin and "BROWSERGRID_TOKEN" in admin
    assert "not valid" in access.refusal(Role.ADMIN, "x")
    assert "/?token=TOKEN" in access.refusal(Role.WORKER, None)
    assert "--token TOKEN" in access.refusal(Role.WORKER, None)
    assert "/dashboard?token=TOKEN" in access.refusal(Role.READ, None)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/jobs", Role.ADMIN),
        ("POST", "/api/jobs/3/cancel", Role.ADMIN),
        ("POST", "/api/demo", Role.ADMIN),
        ("DELETE", "/api/jobs/3", Role.ADMIN),
        ("PUT", "/api", Role.ADMIN),
        ("GET", "/api/jobs", Role.READ),
        ("head", "/api/jobs/3/results", Role.READ),
        ("OPTIONS", "/api/workers", Role.READ),
        ("GET", "/metrics", Role.READ),
        ("GET", "/healthz", None),
        ("GET", "/", None),
        ("GET", "/dashboard", None),
        ("GET", "/static/js/page.js", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("GET", "/apiary", None),
    ],
)
def test_what_each_http_request_needs(method: str, path: str, expected: Role | None) -> None:
    assert http_role(method, path) is expected


def test_a_token_is_presented_in_the_authorization_header_or_the_query() -> None:
    assert presented_token("Bearer a", "b") == "a"
    assert presented_token(None, "b") == "b"
    assert presented_token("Basic x", None) is None
    assert presented_token(None, "") is None
    assert query_token(b"workers=2&token=a%2Bb") == "a+b"
    assert query_token(b"token=") is None
    assert query_token(b"") is None


def test_the_openapi_schema_declares_the_bearer_scheme() -> None:
    def schema() -> dict[str, Any]:
        def ok() -> dict[str, Any]:
            return {"responses": {"200": {}}}

        return {
            "paths": {
                "/api/jobs": {"post": ok(), "get": ok()},
                "/metrics": {"get": ok()},
                "/healthz": {"get": ok()},
            }
        }

    closed = document_access(schema(), Access(ADMIN, None, DASH))
    assert closed["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = closed["paths"]
    guarded = (paths["/api/jobs"]["post"], paths["/api/jobs"]["get"], paths["/metrics"]["get"])
    for operation in guarded:
        assert operation["security"] == [{"bearer": []}]
        assert "401" in operation["responses"]
    assert "security" not in paths["/healthz"]["get"]
    reads_open = document_access(schema(), Access(ADMIN))["paths"]
    assert reads_open["/api/jobs"]["get"]["security"] == [{"bearer": []}, {}]  # optional
    assert "401" not in reads_open["/api/jobs"]["get"]["responses"]
    assert reads_open["/api/jobs"]["post"]["security"] == [{"bearer": []}]


def test_the_admin_token_comes_from_the_option_else_the_file_created_once(
    tmp_path: Path,
) -> None:
    assert load_admin_token(ServeConfig(data_dir=tmp_path, no_token=True, token="x")).value is None
    given = load_admin_token(ServeConfig(data_dir=tmp_path, token="given"))
    assert (given.value, given.source) == ("given", "option")
    assert not (tmp_path / "token").exists()
    config = ServeConfig(data_dir=tmp_path / "new", token=None)
    created = load_admin_token(config)
    assert created.source == "created" and created.path == tmp_path / "new" / "token"
    assert stat.S_IMODE(created.path.stat().st_mode) == 0o600
    again = load_admin_token(config)
    assert (again.value, again.source, again.readable_by_others) == (created.value, "file", False)
    os.chmod(created.path, 0o640)
    assert load_admin_token(config).readable_by_others
    created.path.write_text(" \n")
    with pytest.raises(ConfigError, match="holds no token"):
        load_admin_token(config)


def test_listening_on_loopback_warns_of_nothing() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert network_warning(ServeConfig(host=host, no_token=True)) is None


def test_listening_beyond_this_machine_warns_of_each_open_door(tmp_path: Path) -> None:
    warning = network_warning(ServeConfig(host="0.0.0.0", no_token=True))
    assert warning is not None and warning.startswith("listening on 0.0.0.0, beyond this machine")
    lines = warning.splitlines()[1:-1]
    assert lines == [
        "  - anyone who can reach this port can submit work and cancel jobs (--no-token)",
        "  - anyone who can reach this port can join as a worker (no --worker-token)",
        "  - anyone who can reach this port can watch the dashboard and read every job's "
        "results (no --dashboard-token)",
        "  - traffic travels in clear, tokens included (no --certfile/--keyfile)",
    ]
    assert warning.endswith("see docs/security.md")
    tokens = {"worker_token": JOIN, "dashboard_token": DASH}
    only_tls = network_warning(ServeConfig(host="0.0.0.0", token=ADMIN, **tokens))
    assert only_tls is not None and len(only_tls.splitlines()) == 3 and "in clear" in only_tls
    tls = {"certfile": tmp_path / "c.pem", "keyfile": tmp_path / "k.pem"}
    assert network_warning(ServeConfig(host="0.0.0.0", token=ADMIN, **tokens, **tls)) is None
    only_workers = network_warning(ServeConfig(host="10.0.0.1", dashboard_token=DASH, **tls))
    assert only_workers is not None and "join as a worker" in only_workers
    assert "submit" not in only_workers and "dashboard" not in only_workers


# --- the admin token on a real coordinator ---------------------------------------------------


def serve_text(data_dir: Path) -> Process:
    """``browsergrid serve`` printing for people, once it is ready."""
    process = Process(
        [sys.executable, "-m", "browsergrid", "serve", "--port", "0", "--data-dir", str(data_dir)]
    )
    process.wait_for_line(lambda line: "coordinator ready" in line)
    return process


def test_the_token_file_is_created_0600_and_printed_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
) -> None:
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    data = tmp_path / "grid"
    first = serve_text(data)
    first.end()
    path = data / "token"
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = first.output()
    assert f"created the admin token and saved it in {path}" in shown
    assert f"  {token}" in shown.splitlines()
    assert "'browsergrid token' prints it again" in shown
    assert f"/dashboard?token={token}" in shown  # the link that runs the demo
    assert f"need the admin token in {path}" in shown  # the ready message says where it is

    second = start_coordinator("--data-dir", str(data))
    assert not [e for e in second.events() if e["event"] == "token_created"]
    assert token not in second.output()  # printed once, at creation
    assert path.read_text().strip() == token
    with Client(f"http://127.0.0.1:{second.port}", token=token) as client:
        assert client.jobs() == []


def test_a_created_token_is_in_the_json_event(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
) -> None:
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    coordinator = start_coordinator("--memory", "--data-dir", str(tmp_path))
    created = coordinator.event("token_created")
    assert created["token"] == (tmp_path / "token").read_text().strip()
    assert created["path"] == str(tmp_path / "token")


def test_a_token_file_others_may_read_is_warned_about(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
) -> None:
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    path = tmp_path / "token"
    path.write_text("a-token-others-can-read\n")
    os.chmod(path, 0o644)
    coordinator = start_coordinator("--memory", "--data-dir", str(tmp_path))
    warned = coordinator.event("token_file_readable")
    assert warned["level"] == "warning" and warned["path"] == str(path)
    text = serve_text(tmp_path)
    text.end()
    assert f"chmod 600 {path}" in text.output()


def test_the_option_or_the_environment_overrides_the_file(
    tmp_path: Path, start_coordinator: Callable[..., Coordinator]
) -> None:
    coordinator = start_coordinator("--data-dir", str(tmp_path), "--token", ADMIN)
    url = f"http://127.0.0.1:{coordinator.port}"
    with httpx.Client(base_url=url) as http:
        assert http.post("/api/demo", headers=AUTH).status_code == 401  # the env's token
        demo = http.post("/api/demo", headers={"Authorization": f"Bearer {ADMIN}"})
        assert demo.status_code == 201
    assert not (tmp_path / "token").exists()  # a given token makes no file
    with pytest.raises(AuthError):
        Client(url)  # sends $BROWSERGRID_TOKEN
    coordinator.end()
    env_only = start_coordinator("--data-dir", str(tmp_path))  # $BROWSERGRID_TOKEN
    assert not (tmp_path / "token").exists()
    with Client(f"http://127.0.0.1:{env_only.port}") as client:
        assert [job["name"] for job in client.jobs()] == ["demo"]  # the same store


def test_changes_need_the_admin_token_and_get_401_without_it(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory")
    small = {"op": "repeat_multiply", "args": [{"initial": 1, "factor": 2, "times": 3}]}
    requests: list[tuple[str, dict[str, Any] | None]] = [
        ("/api/jobs", small),
        ("/api/jobs/1/cancel", None),
        ("/api/demo", None),
    ]
    with httpx.Client(base_url=f"http://127.0.0.1:{coordinator.port}") as http:
        for path, body in requests:
            for headers, error in (({}, None), ({"Authorization": "Bearer wrong"}, "invalid")):
                refused = http.post(path, json=body, headers=headers)
                assert refused.status_code == 401, (path, refused.text)
                answer = refused.json()
                assert answer["code"] == "unauthorized"
                assert "admin token" in answer["detail"] and "BROWSERGRID_TOKEN" in answer["detail"]
                challenge = refused.headers["www-authenticate"]
                assert challenge.startswith("Bearer") and (error is None) is (
                    "invalid_token" not in challenge
                )
        assert http.post("/api/jobs", json=small, headers=AUTH).status_code == 201
        assert http.post("/api/jobs/1/cancel", headers=AUTH).status_code == 200
        assert http.post("/api/demo", headers=AUTH).status_code == 201
        # reads stay open without a dashboard token; a bad body is still 401 first
        assert http.get("/api/jobs").status_code == 200
        assert http.get("/api/jobs/1/results").status_code == 200
        assert http.post("/api/jobs", content=b"{not json").status_code == 401
        metrics = http.get("/metrics").text
    assert 'browsergrid_errors_total{kind="unauthorized"} 7.0' in metrics
    refused = coordinator.event("unauthorized", path="/api/demo")
    assert refused["level"] == "warning" and refused["method"] == "POST"


def test_the_dashboard_token_guards_every_read_and_nothing_else(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--dashboard-token", DASH)
    dash = {"Authorization": f"Bearer {DASH}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{coordinator.port}") as http:
        for path in ("/api/jobs", "/api/workers", "/api/workers/history", "/metrics"):
            refused = http.get(path)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            assert "dashboard token" in refused.json()["detail"]
            assert http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert http.get(path, headers=dash).status_code == 200
            assert http.get(path, headers=AUTH).status_code == 200  # the admin token reads too
        for path in ("/healthz", "/", "/dashboard", "/openapi.json", "/static/js/page.js"):
            assert http.get(path).status_code == 200, path
        assert http.post("/api/demo", headers=dash).status_code == 401  # reading is not changing
        schema = http.get("/openapi.json").json()
    assert schema["paths"]["/api/jobs"]["get"]["security"] == [{"bearer": []}]
    assert "bearer" in schema["components"]["securitySchemes"]
    live = f"ws://127.0.0.1:{coordinator.port}/dashboard/live"
    wrong = {"Authorization": "Bearer wrong"}
    for refused_url, headers in ((live, {}), (f"{live}?token=wrong", {}), (live, wrong)):
        with pytest.raises(InvalidStatus) as refused:
            connect(refused_url, additional_headers=headers, open_timeout=5)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["code"] == "unauthorized"
    for url, headers in ((f"{live}?token={DASH}", {}), (live, AUTH)):
        with connect(url, additional_headers=headers, open_timeout=5) as viewer:
            assert json.loads(viewer.recv(timeout=5))["type"] == "snapshot"


def test_without_a_dashboard_token_the_live_feed_is_open(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory")
    with connect(f"ws://127.0.0.1:{coordinator.port}/dashboard/live", open_timeout=5) as viewer:
        assert json.loads(viewer.recv(timeout=5))["type"] == "snapshot"


def test_a_client_without_the_admin_token_gets_a_clear_error_at_once(
    start_coordinator: Callable[..., Coordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator = start_coordinator("--memory", "--token", ADMIN)
    url = f"http://127.0.0.1:{coordinator.port}"
    started = time.monotonic()
    with pytest.raises(AuthError) as wrong:
        Client(url, token="wrong")
    assert "pass the right admin token" in str(wrong.value)
    assert "the token sent is not valid" in str(wrong.value)
    monkeypatch.delenv("BROWSERGRID_TOKEN")  # and no token file in the default data dir
    with pytest.raises(AuthError) as missing:
        asyncio.run(AsyncClient(url).connect())
    assert "none was found to send" in str(missing.value)
    assert "Client(url, token=...)" in str(missing.value)
    assert time.monotonic() - started < 5  # refused, not retried
    with pytest.raises(InvalidStatus) as raw:
        connect(f"ws://127.0.0.1:{coordinator.port}/client", open_timeout=5)
    assert raw.value.response.status_code == 401
    assert raw.value.response.headers["WWW-Authenticate"].startswith("Bearer")
    with connect(f"ws://127.0.0.1:{coordinator.port}/client?token={ADMIN}", open_timeout=5):
        pass  # ?token= works too

    async def list_jobs() -> list[dict[str, Any]]:
        async with AsyncClient(url, token=ADMIN) as client:
            return await client.jobs()

    assert asyncio.run(list_jobs()) == []
    assert len(coordinator.events_named("unauthorized", 3)) >= 3


def test_a_client_on_this_machine_reads_the_token_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
) -> None:
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    monkeypatch.setenv("BROWSERGRID_DATA_DIR", str(tmp_path))  # where clients look
    coordinator = start_coordinator("--data-dir", str(tmp_path))
    assert (tmp_path / "token").exists()
    start_worker(coordinator.ws_url).wait_for_line(lambda line: "welcomed" in line)
    with Client(f"http://127.0.0.1:{coordinator.port}") as client:
        assert client.submit("prime_count", lo=0, hi=100).result(30) == 25
    with Client(f"http://localhost:{coordinator.port}") as client:
        assert client.submit("prime_count", lo=0, hi=10).result(30) == 4


# --- workers and the join token --------------------------------------------------------------


def test_a_worker_without_the_join_token_is_refused_and_with_it_admitted(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coordinator = start_coordinator("--memory", "--worker-token", JOIN)
    port = coordinator.port
    assert coordinator.page_url == f"http://127.0.0.1:{port}/?token={JOIN}"  # the join link
    assert coordinator.ws_url == f"ws://127.0.0.1:{port}/ws?token={JOIN}"
    plain = f"ws://127.0.0.1:{port}/ws"
    for path in ("/", "/ws"):
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5)
        assert refused.value.response.status_code == 401
        assert "join token" in json.loads(refused.value.response.body)["detail"]
    with pytest.raises(InvalidStatus):
        connect(plain, additional_headers={"Authorization": f"Bearer {DASH}"}, open_timeout=5)

    refused_worker = start_worker(plain)
    assert refused_worker.wait() == 1  # a worker without the token stops: retrying cannot help
    assert "join token" in refused_worker.output()
    assert "pass it with --token TOKEN" in refused_worker.output()
    wrong = start_worker(plain, "--token", "wrong")
    assert wrong.wait() == 1 and "pass the right one" in wrong.output()

    start_worker(plain, "--token", JOIN).wait_for_line(lambda line: "welcomed" in line)
    in_url = start_worker(coordinator.ws_url)  # ?token= in the URL
    in_url.wait_for_line(lambda line: "welcomed" in line)
    assert JOIN not in in_url.output()  # the log hides it
    monkeypatch.setenv("BROWSERGRID_WORKER_TOKEN", JOIN)
    start_worker(plain).wait_for_line(lambda line: "welcomed" in line)
    with connect(plain, additional_headers=AUTH, open_timeout=5) as ws:  # the admin token too
        assert json.loads(ws.recv(timeout=5))["type"] == "task"
    assert len(coordinator.events_named("worker_introduced", 3)) == 3


def test_no_token_opens_every_change_and_is_warned_about_beyond_loopback(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--no-token")
    url = f"http://127.0.0.1:{coordinator.port}"
    assert httpx.post(f"{url}/api/demo").status_code == 201
    assert not [e for e in coordinator.events() if e["event"] == "open_to_the_network"]
    with Client(url, token="anything") as client:
        assert [job["name"] for job in client.jobs()] == ["demo"]
    exposed = start_coordinator("--memory", "--no-token", "--host", "0.0.0.0")
    warned = exposed.event("open_to_the_network")
    assert warned["level"] == "warning"
    assert any("--no-token" in door for door in warned["open"])
    assert len(warned["open"]) == 4


@pytest.mark.processes
def test_token_and_no_token_do_not_go_together() -> None:
    both = subprocess.run(
        [sys.executable, "-m", "browsergrid", "serve", "--token", "a", "--no-token"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


# --- browsergrid token -----------------------------------------------------------------------


def browsergrid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "browsergrid", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_browsergrid_token_prints_the_token_and_the_dashboard_link(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_coordinator: Callable[..., Coordinator],
) -> None:
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    missing = browsergrid("token", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and missing.stdout == ""
    assert f"no token file at {tmp_path / 'token'}" in missing.stderr
    start_coordinator("--memory", "--data-dir", str(tmp_path)).end()
    token = (tmp_path / "token").read_text().strip()
    shown = browsergrid("token", "--data-dir", str(tmp_path), "--server", "127.0.0.1:9999")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"{token}\n"
    assert f"http://127.0.0.1:9999/dashboard?token={token}" in shown.stderr
    monkeypatch.setenv("BROWSERGRID_DATA_DIR", str(tmp_path))
    assert browsergrid("token").stdout == f"{token}\n"


def test_the_cli_sends_the_token_and_says_how_to_fix_a_401(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--memory", "--token", ADMIN)
    server = f"http://127.0.0.1:{coordinator.port}"
    refused = browsergrid("demo", "--no-wait", "--server", server)
    assert refused.returncode == 1
    assert "pass the right admin token" in refused.stderr and "--token TOKEN" in refused.stderr
    refused = browsergrid("submit", "prime_count", "lo=0", "hi=9", "--server", server)
    assert refused.returncode == 1 and "admin token" in refused.stderr
    done = browsergrid("demo", "--no-wait", "--server", server, "--token", ADMIN)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    cancelled = browsergrid("cancel", job_id, "--server", server, "--token", ADMIN)
    assert cancelled.returncode == 0, cancelled.stderr
    assert browsergrid("status", "--server", server).returncode == 0  # reads are open
