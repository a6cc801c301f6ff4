"""The client endpoint (``/client``): submissions in, ``accepted`` and results pushed out."""

from __future__ import annotations

import logging
import time

import msgspec

from browsergrid._console import emit
from browsergrid.errors import ProtocolError, SubmitError
from browsergrid.protocol import (
    CLOSE_POLICY_VIOLATION,
    CancelJob,
    ClientError,
    Submit,
    Watch,
    decode_client_message,
    encode_client_message,
)
from browsergrid.server._access import Access, Role
from browsergrid.server._coordinator import ClientPeer, Coordinator
from browsergrid.server._guard import guarded
from browsergrid.server._peers import Closed, Connection

events = logging.getLogger("browsergrid.server.events")


async def serve_client(coordinator: Coordinator, ws: Connection, access: Access) -> None:
    """Run one client connection until it closes; its jobs run on after it leaves. A client
    must present the admin token."""
    await guarded(
        coordinator, ws, lambda: _serve_client(coordinator, ws), access=access, role=Role.ADMIN
    )


async def _serve_client(coordinator: Coordinator, ws: Connection) -> None:
    await ws.accept()
    budget = coordinator.rate_limit()
    client = ClientPeer(client_id=coordinator.next_id(), address=ws.address, sender=ws)
    coordinator.clients[client.client_id] = client
    emit(
        events,
        "client_connected",
        f"client #{client.client_id} connected from {client.address}",
        client_id=client.client_id,
        address=client.address,
    )
    try:
        while True:
            message = await ws.receive()
            if isinstance(message, Closed):
                break
            if not budget.allow(time.monotonic()):
                coordinator.stats.errors["rate_limited"] += 1
                limit = coordinator.config.max_messages_per_s
                await _error(client, "rate_limited", f"more than {limit:g} messages per second")
                await ws.close(CLOSE_POLICY_VIOLATION, "rate_limited")
                break
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            await _on_frame(coordinator, client, text)
    finally:
        coordinator.forget_client(client)
        emit(
            events,
            "client_disconnected",
            f"client #{client.client_id} disconnected",
            client_id=client.client_id,
        )


async def _on_frame(coordinator: Coordinator, client: ClientPeer, text: str) -> None:
    try:
        message = decode_client_message(text)
    except ProtocolError as exc:
        await _error(client, exc.code, exc.message, _ref_of(text))
        return
    match message:
        case Submit():
            try:
                await coordinator.submit(
                    message.op,
                    message.args,
                    message.options,
                    client=client,
                    job_key=message.job_key,
                    ref=message.ref,
                    submitted_by=client.address,
                    client_id=message.client_id,
                )
            except SubmitError as exc:
                await _error(client, exc.code, str(exc), message.ref)
        case Watch():
            await coordinator.watch(client, message.job_ids, message.task_ids)
        case CancelJob():
            try:
                await coordinator.cancel(message.job_id, requested_by=client)
            except KeyError:
                await _error(client, "unknown_job", f"there is no job {message.job_id}")


def _ref_of(text: str) -> int | None:
    """The ``ref`` of a frame that did not decode, so the client can fail that submit."""
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    ref = value.get("ref") if isinstance(value, dict) else None
    return ref if isinstance(ref, int) and not isinstance(ref, bool) else None


async def _error(client: ClientPeer, code: str, message: str, ref: int | None = None) -> None:
    emit(
        events,
        "client_request_refused",
        f"client #{client.client_id}: {code}: {message}",
        level=logging.WARNING,
        client_id=client.client_id,
        code=code,
        detail=message,
    )
    await client.send(
        encode_client_message(ClientError(code=code, message=message, ref=ref)).decode()
    )
