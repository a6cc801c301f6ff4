"""The blob doors (docs/protocol.md, "Blobs"): ``GET``/``HEAD /blobs/<sha256>`` for workers
and clients, ``PUT /blobs/<sha256>`` for a worker's large result, ``POST /api/blobs`` for a
client's upload. Bodies stream to disk (``DiskBlobs``), never whole into memory."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response

from browsergrid._console import emit
from browsergrid._tokens import bearer_token, same_token
from browsergrid.protocol import Format, is_digest, refs_in
from browsergrid.server._access import Access
from browsergrid.server._blob_store import BlobRefused
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._page_assets import IMMUTABLE
from browsergrid.server._shared_blobs import SharedBlobsError

events = logging.getLogger("browsergrid.server.events")

_OCTETS = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "required": True,
}


def _served(digest: str) -> dict[str, str]:
    return {
        "ETag": f'"{digest}"',
        "Cache-Control": IMMUTABLE,
        "Access-Control-Allow-Origin": "*",
        "Content-Type": "application/octet-stream",
    }


def blob_exempt(path: str) -> bool:
    """Whether a request path is a blob upload, which bounds its own body (``BodyLimit``
    leaves it alone)."""
    return path.startswith("/blobs/") or path == "/api/blobs"


def create_blob_router(coordinator: Coordinator, access: Access) -> APIRouter:
    """The blob routes of ``coordinator``; ``access`` says whether fetching needs a token."""
    router = APIRouter()
    blobs = coordinator.blobs

    @router.api_route(
        "/blobs/{digest}",
        methods=["GET", "HEAD"],
        tags=["blobs"],
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the blob"},
            206: {"description": "the range asked for"},
            403: {"description": "a token is needed, and the key holds no task that needs it"},
            404: {"description": "no such blob"},
        },
    )
    async def get_blob(
        request: Request,
        digest: str,
        key: Annotated[str | None, Query(description="the worker's blob_key (welcome)")] = None,
    ) -> Response:
        """A blob's bytes (immutable: cache them by their SHA-256). Where the coordinator
        has a join or read token, a worker presents the ``key`` of its connection, which must
        hold a task that refers to the blob; a client, the admin or read token."""
        if (access.worker is not None or access.dashboard is not None) and not (
            _reader(access, request) or _fetch_allowed(coordinator, key, digest)
        ):  # before looking: no answer tells a stranger which blobs exist
            return _refusal(
                403,
                "blob_not_leased",
                "fetching blobs here needs the admin or read token, or the key of a worker "
                "connection holding a task that refers to this blob",
            )
        if not is_digest(digest):
            return _refusal(404, "unknown_blob", f"this coordinator holds no blob {digest[:64]}")
        try:  # in a grid, a blob another coordinator took is fetched into this one's cache
            if request.method == "HEAD" and blobs.size(digest) is None:
                await blobs.locate([digest])  # a HEAD asks, and downloads nothing
            if request.method == "HEAD" and digest not in blobs.sizes:
                size = blobs.size(digest)
                if size is None:
                    return _refusal(404, "unknown_blob", f"this coordinator holds no blob {digest}")
                length = {"Content-Length": str(size), "Accept-Ranges": "bytes"}
                return Response(headers={**_served(digest), **length})
            held = await blobs.cached(digest)
        except BlobRefused as exc:
            return _refusal(exc.status, exc.code, exc.message)
        except SharedBlobsError as exc:
            return _refusal(503, "blob_store_unavailable", str(exc))
        if not held:
            return _refusal(404, "unknown_blob", f"this coordinator holds no blob {digest[:64]}")
        blobs.touch([digest])
        if request.method == "GET":
            _count_fetch(coordinator, blobs.size(digest) or 0, request.headers.get("range"))
        return FileResponse(
            blobs.path(digest), media_type="application/octet-stream", headers=_served(digest)
        )

    @router.put(
        "/blobs/{digest}",
        tags=["blobs"],
        status_code=201,
        openapi_extra={"requestBody": _OCTETS},
        responses={
            200: {"description": "held already"},
            400: {"description": "hash_mismatch or truncated"},
            403: {"description": "not_leased"},
            409: {"description": "already_uploaded: one upload per lease"},
            413: {"description": "blob_too_large"},
            503: {"description": "blob_store_unavailable: the shared blob store failed"},
            507: {"description": "blob_store_full"},
        },
    )
    async def put_result(
        request: Request,
        digest: str,
        key: Annotated[str, Query(description="the worker's blob_key (welcome)")],
        task_id: Annotated[
            int, Query(ge=0, le=2**63 - 1, description="the task whose result this is")
        ],
    ) -> Response:
        """A worker's large result, as UTF-8 JSON text; its ``result`` is then the ref this
        returns. Only the connection holding the task's lease may upload it, once."""
        worker_id = coordinator.blob_keys.get(key)
        task = coordinator.scheduler.tasks.get(task_id)
        if worker_id is None or task is None or worker_id not in task.leases:
            return _refusal(403, "not_leased", f"this connection does not hold task {task_id}")
        lease = (worker_id, task_id)
        if lease in coordinator.lease_uploads:
            return _refusal(
                409, "already_uploaded", f"this connection uploaded a result of task {task_id}"
            )
        if not is_digest(digest):
            return _refusal(400, "hash_mismatch", "the path must be the body's SHA-256")
        coordinator.lease_uploads[lease] = ""  # taken: a second upload meanwhile is refused
        answer = await _receive(coordinator, request, "json", digest, f"worker #{worker_id}")
        if answer.status_code in (200, 201) and worker_id in coordinator.workers:
            coordinator.lease_uploads[lease] = digest
        else:  # refused, or the worker left meanwhile: it may try again on a new lease
            coordinator.lease_uploads.pop(lease, None)
        return answer

    @router.post(
        "/api/blobs",
        tags=["blobs"],
        status_code=201,
        openapi_extra={"requestBody": _OCTETS},
        responses={
            200: {"description": "held already"},
            400: {"description": "bad_json or truncated"},
            413: {"description": "blob_too_large"},
            503: {"description": "blob_store_unavailable: the shared blob store failed"},
            507: {"description": "blob_store_full"},
        },
    )
    async def post_blob(
        request: Request,
        format: Annotated[
            Format, Query(description="json: the body is JSON text, checked")
        ] = "bytes",
    ) -> Response:
        """Upload a blob (streamed); the answer is its ref, to pass in tasks' arguments:
        ``{"$blob": SHA256, "size": N, "format": F}``. In a grid it is kept in the shared
        store, for the workers of every coordinator."""
        return await _receive(coordinator, request, format, None, "a client")

    return router


async def _receive(
    coordinator: Coordinator, request: Request, form: Format, expected: str | None, who: str
) -> Response:
    """Keep the request's body as a blob; its ref, or the refusal. A worker's body
    (``expected`` given) is not parsed: JSON of hundreds of MiB built in memory would hold
    the event loop, and a result that is not JSON fails where it is read, by its client."""
    length = request.headers.get("content-length")
    try:
        ref, created = await coordinator.blobs.receive(
            request.stream(),
            form=form,
            expected=expected,
            length=int(length) if length is not None and length.isdigit() else None,
            check_json=expected is None,
        )
    except BlobRefused as exc:
        emit(
            events,
            "blob_refused",
            f"refused a blob from {who}: {exc.message}",
            level=logging.WARNING,
            code=exc.code,
        )
        return _refusal(exc.status, exc.code, exc.message)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody reads it; nothing was kept
    if created:
        coordinator.stats.blobs_stored += 1
        emit(
            events,
            "blob_stored",
            f"stored blob {ref.sha256[:12]} ({ref.size} bytes) from {who}",
            sha256=ref.sha256,
            size=ref.size,
        )
    return JSONResponse(ref.to_json(), status_code=201 if created else 200)


def _count_fetch(coordinator: Coordinator, size: int, ranges: str | None) -> None:
    """Count a download and its bytes: the whole blob, or the length of a single range
    (several ranges, or one that cannot be read, count as the whole blob)."""
    sent = size
    if ranges is not None and ranges.startswith("bytes=") and "," not in ranges:
        first, _, last = ranges[6:].strip().partition("-")
        if first.isdigit():
            end = min(int(last), size - 1) if last.isdigit() else size - 1
            sent = max(0, end - int(first) + 1)
        elif last.isdigit():  # a suffix: the last N bytes
            sent = min(int(last), size)
    coordinator.stats.blob_fetches += 1
    coordinator.stats.blob_bytes_served += sent


def _reader(access: Access, request: Request) -> bool:
    """Whether the request presents the admin or the read token (not merely any token)."""
    presented = bearer_token(request.headers.get("authorization"))
    return any(
        token is not None and same_token(presented, token)
        for token in (access.admin, access.dashboard)
    )


def _fetch_allowed(coordinator: Coordinator, key: str | None, digest: str) -> bool:
    """Whether the connection of ``key`` holds a task whose arguments refer to ``digest``."""
    worker_id = coordinator.blob_keys.get(key) if key else None
    peer = coordinator.workers.get(worker_id) if worker_id is not None else None
    if peer is None:
        return False
    tasks = coordinator.scheduler.tasks
    for task_id in peer.leases:
        task = tasks.get(task_id)
        if task is not None and worker_id in task.leases and _refers(task.args, digest):
            return True
    return False


def _refers(args: dict[str, Any], digest: str) -> bool:
    try:
        return any(ref.sha256 == digest for ref in refs_in(args))
    except ValueError:
        return False


def _refusal(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)
