"""A client's blobs (docs/protocol.md, "Blobs"): ``put_blob`` uploads data once and returns
the ``Ref`` to pass in tasks' arguments; ``fetch_blob`` reads one back (a large result).

Both are plain blocking HTTP calls (httpx); ``AsyncClient`` runs them in a thread.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import msgspec

from browsergrid._tokens import auth_headers
from browsergrid.client._engine import Endpoint, raise_for_refusal, tls_context
from browsergrid.errors import BrowsergridError, ConnectionLost
from browsergrid.protocol import Format, Ref

_TIMEOUT = httpx.Timeout(30, read=300, write=300)


def blob_bytes(data: Any) -> tuple[bytes, Format]:
    """The bytes a value is kept as: bytes-like as they are (``bytes``), anything else as
    compact JSON text (``json``); TypeError for what JSON cannot carry."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), "bytes"
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"put() takes bytes or a JSON value: {exc}") from None
    return text.encode(), "json"


def put_blob(endpoint: Endpoint, data: Any) -> Ref:
    """Upload ``data`` (bytes, or any JSON value) unless the coordinator holds it already;
    its ``Ref``. Raises TypeError for data that is neither, BrowsergridError when the
    coordinator refuses it (too large, store full: the message says which limit)."""
    content, form = blob_bytes(data)
    digest = hashlib.sha256(content).hexdigest()
    headers = auth_headers(endpoint.token)
    try:
        with httpx.Client(verify=tls_context(), timeout=_TIMEOUT, headers=headers) as http:
            held = http.head(f"{endpoint.http}/blobs/{digest}")
            if held.status_code == 200 and held.headers.get("content-length") == str(len(content)):
                return Ref(digest, len(content), form)
            response = http.post(
                f"{endpoint.http}/api/blobs", params={"format": form}, content=content
            )
    except httpx.HTTPError as exc:
        raise ConnectionLost(f"cannot reach the coordinator at {endpoint.http}: {exc}") from None
    raise_for_refusal(response, endpoint.http, sent=endpoint.token is not None)
    ref = msgspec.convert(response.json(), Ref)
    if ref.sha256 != digest:
        raise BrowsergridError(f"the coordinator kept blob {ref.sha256}, not {digest}")
    return ref


def fetch_blob(endpoint: Endpoint, ref: Ref) -> Any:
    """The content of ``ref``: its bytes, or the JSON value they hold (``format`` json),
    checked against its SHA-256."""
    try:
        response = httpx.get(
            f"{endpoint.http}/blobs/{ref.sha256}",
            headers=auth_headers(endpoint.token),
            verify=tls_context(),
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise ConnectionLost(f"cannot reach the coordinator at {endpoint.http}: {exc}") from None
    raise_for_refusal(response, endpoint.http, sent=endpoint.token is not None)
    content = response.content
    if hashlib.sha256(content).hexdigest() != ref.sha256:
        raise BrowsergridError(f"blob {ref.sha256} came with other bytes than its SHA-256")
    return msgspec.json.decode(content) if ref.format == "json" else content
