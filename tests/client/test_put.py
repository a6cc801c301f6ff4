"""``Client.put`` and ``AsyncClient.put`` against a real coordinator and two real Python
workers: data uploaded once, refs in op arguments, bad data refused before anything is sent,
and a large result read back as its value."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from browsergrid import AsyncClient, BrowsergridError, Client, Ref, SubmitError
from tests._support import AUTH, Coordinator
from tests.conftest import Served

PRIMES = {"lo": 0, "hi": 1000}


def metric(served: Served, name: str) -> float:
    text = httpx.get(f"{served.url}/metrics", headers=AUTH).text
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_put_returns_a_ref_and_uploads_each_value_once(served: Served) -> None:
    data = b"\x00\x01" * 50_000
    with Client(served.url) as client:
        ref = client.put(data)
        assert ref == Ref(hashlib.sha256(data).hexdigest(), len(data), "bytes")
        assert client.put(bytearray(data)) == ref
        assert client.put(memoryview(data)) == ref
        value = client.put(PRIMES)
        assert value.format == "json"
        assert value.size == len(b'{"lo":0,"hi":1000}')
        # a ref may stand for a whole argument: the op receives the JSON value it holds
        assert client.submit("prime_count", lo=client.put(0), hi=client.put(1000)).result(30) == 168
    assert metric(served, "browsergrid_blobs_stored_total") == 4  # data, PRIMES, 0 and 1000


@pytest.mark.parametrize("bad", [{1, 2}, float("nan"), {"x": object()}])
def test_put_refuses_what_is_neither_bytes_nor_json(served: Served, bad: object) -> None:
    with Client(served.url) as client, pytest.raises(TypeError, match="bytes or a JSON value"):
        client.put(bad)


def test_a_ref_the_coordinator_does_not_hold_fails_the_submit(served: Served) -> None:
    with Client(served.url) as client:
        missing = Ref("0" * 64, 3)
        with pytest.raises(SubmitError, match="does not hold"):
            client.submit("prime_count", lo=missing, hi=10).result(30)


def test_an_oversized_upload_says_which_limit() -> None:
    small = Coordinator(0, ("--quiet", "--max-blob-size", "100"))
    try:
        with (
            Client(f"http://127.0.0.1:{small.port}") as client,
            pytest.raises(BrowsergridError, match="--max-blob-size"),
        ):
            client.put(b"x" * 101)
    finally:
        small.end()


async def test_the_async_client_puts_too(served: Served) -> None:
    async with AsyncClient(served.url) as client:
        hi = await client.put(100)
        assert await asyncio.wait_for(client.submit("prime_count", lo=0, hi=hi), 30) == 25
