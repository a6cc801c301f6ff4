"""``browsergrid serve --certfile --keyfile``: https and wss with a self-signed certificate,
trusted by clients through $SSL_CERT_FILE (the one rule for the CLI, Client and workers)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.sync.client import connect

from browsergrid import AsyncClient, Client
from tests._support import WELCOME_RESULT, Coordinator, Process, close_to

pytestmark = pytest.mark.processes  # openssl makes the certificates; coordinators, the CLI


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    other_key: Path  # the key of another certificate
    not_pem: Path


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid one day, and its key."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory, "grid")
    _, other_key = self_signed(directory, "other")
    not_pem = directory / "not.pem"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    return Tls(cert, key, other_key, not_pem)


@pytest.fixture
def secure(start_coordinator: Callable[..., Coordinator], tls: Tls) -> Coordinator:
    return start_coordinator("--certfile", str(tls.cert), "--keyfile", str(tls.key))


def cli(*args: str, cafile: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``browsergrid ARGS`` with $SSL_CERT_FILE set to ``cafile``, or unset."""
    env = {name: value for name, value in os.environ.items() if name != "SSL_CERT_FILE"}
    if cafile is not None:
        env["SSL_CERT_FILE"] = str(cafile)
    return subprocess.run(
        [sys.executable, "-m", "browsergrid", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_the_ready_line_names_https_and_wss(secure: Coordinator) -> None:
    port = secure.port
    assert secure.ws_url == f"wss://127.0.0.1:{port}/ws"
    assert secure.page_url == f"https://127.0.0.1:{port}/"
    assert any(f"wss://127.0.0.1:{port}/ws" in line for line in secure.lines)


def test_https_works_with_the_certificate_trusted_and_fails_without(
    secure: Coordinator, tls: Tls
) -> None:
    url = f"https://127.0.0.1:{secure.port}/healthz"
    trusted = ssl.create_default_context(cafile=tls.cert)
    assert httpx.get(url, verify=trusted).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=ssl.create_default_context())
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
        httpx.get(f"http://127.0.0.1:{secure.port}/healthz")


def test_the_cli_trusts_ssl_cert_file(secure: Coordinator, tls: Tls) -> None:
    server = f"https://127.0.0.1:{secure.port}"
    done = cli("status", "--server", server, "--format", "json", cafile=tls.cert)
    assert done.returncode == 0, done.stderr
    assert '"workers"' in done.stdout
    refused = cli("status", "--server", server)
    assert refused.returncode == 1
    assert "certificate verify failed" in refused.stderr and "Traceback" not in refused.stderr


def test_a_python_worker_joins_over_wss_and_a_client_job_completes_over_https(
    secure: Coordinator,
    tls: Tls,
    start_worker: Callable[..., Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))  # the worker's and this client's
    worker = start_worker(secure.ws_url, "--concurrency", "2")
    introduced = secure.event("worker_introduced")
    assert introduced["agent"].startswith("browsergrid-python/")
    worker.wait_for_line(lambda line: "welcomed as worker" in line)
    with Client(f"https://127.0.0.1:{secure.port}") as client:
        assert client.ws_url == f"wss://127.0.0.1:{secure.port}/client"
        job = client.submit_job("prime_count", [{"lo": 0, "hi": 10**k} for k in range(1, 6)])
        assert list(job.results(timeout=30)) == [4, 25, 168, 1229, 9592]
        assert client.job(job.job_id)["done"] == 5  # the HTTP API, over https
        assert [w["worker_id"] for w in client.workers()] == [introduced["worker_id"]]

    async def submit_async() -> list[Any]:
        async with AsyncClient(f"https://127.0.0.1:{secure.port}") as client:
            return [r async for r in client.map("prime_count", [{"lo": 0, "hi": 1000}] * 3)]

    assert asyncio.run(submit_async()) == [168] * 3


def test_a_worker_that_does_not_trust_the_certificate_says_so_and_retries(
    secure: Coordinator, start_worker: Callable[..., Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    worker = start_worker(secure.ws_url)
    worker.wait_for_line(lambda line: "certificate verify failed" in line)
    worker.wait_for_line(lambda line: "reconnecting in" in line)
    assert not [e for e in secure.events() if e["event"] == "worker_introduced"]


def test_plain_ws_to_the_tls_port_fails(secure: Coordinator, tls: Tls) -> None:
    with (
        pytest.raises((websockets.exceptions.WebSocketException, OSError)),
        connect(f"ws://127.0.0.1:{secure.port}/ws", open_timeout=5),
    ):
        pass
    trusted = ssl.create_default_context(cafile=tls.cert)
    with connect(secure.ws_url, ssl=trusted, open_timeout=5) as ws:  # wss works
        assert '"repeat_multiply"' in str(ws.recv(5))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("cert", "other_key"), "is not the key of the certificate"),
        (("cert", "missing"), "cannot read --keyfile"),
        (("missing", "key"), "cannot read --certfile"),
        (("not_pem", "key"), "holds no PEM certificate"),
        (("cert", "not_pem"), "holds no PEM private key"),
        (("cert", None), "--certfile and --keyfile go together"),
        ((None, "key"), "--certfile and --keyfile go together"),
    ],
)
def test_a_bad_certificate_or_key_is_a_one_line_error(
    tls: Tls, tmp_path: Path, files: tuple[str | None, str | None], message: str
) -> None:
    def path(name: str) -> str:
        return str(tmp_path / "missing.pem" if name == "missing" else getattr(tls, name))

    args = ["serve", "--port", "0", "--memory"]
    for option, name in zip(("--certfile", "--keyfile"), files, strict=True):
        if name is not None:
            args += [option, path(name)]
    done = cli(*args)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr
    assert done.stderr.startswith("browsergrid serve: error: ")
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.browser
def test_chromium_becomes_a_worker_over_wss(secure: Coordinator, browser: Any) -> None:
    context = browser.new_context(ignore_https_errors=True)  # the self-signed certificate
    try:
        page = context.new_page()
        page.goto(secure.page_url)
        introduced = secure.event("worker_introduced")
        assert "Chrome" in introduced["agent"]
        result = secure.event("result", worker_id=introduced["worker_id"])
        assert close_to(result["result"], WELCOME_RESULT)
        page.wait_for_function("window.browsergrid && window.browsergrid.tasksDone === 1")
        # the page redraws for results within 250 ms
        page.wait_for_function("document.querySelector('#state').dataset.state === 'connected'")
    finally:
        context.close()
