"""The client endpoint (``/client``): submissions in, ``accepted`` and results pushed out."""

from __future__ import annotations

import logging
import time

from browsergrid._console import emit
from browsergrid.errors import ProtocolError, SubmitError
from browsergrid.protocol import (
    CLOSE_POLICY_VIOLATION,
    CancelJob,
    ClientConnection,
    ClientError,
    ClientMessage,
    ConnectionState,
    Submit,
    Watch,
    encode_client_message,
)
from browsergrid.server._access import Access, Role
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._guard import guarded
from browsergrid.server._state import ClientPeer
from browsergrid.server._websocket import Closed, Connection
from browsergrid.store import StoreError

events = logging.getLogger("browsergrid.server.events")


async def serve_client(coordinator: Coordinator, ws: Connection, access: Access) -> None:
    """Run one client connection until it closes; its jobs run on after it leaves. A client
    must present the admin token."""
    await guarded(
        coordinator, ws, lambda: _serve_client(coordinator, ws), access=access, role=Role.ADMIN
    )


async def _serve_client(coordinator: Coordinator, ws: Connection) -> None:
    await ws.accept()
    rate = coordinator.config.max_messages_per_s
    rules = ClientConnection(rate=rate, burst=2 * rate, now=time.monotonic())
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
        while rules.state is ConnectionState.INTRODUCED:
            frame = await ws.receive()
            if isinstance(frame, Closed):
                rules.closed(frame.code, frame.reason)
                break
            now = time.monotonic()
            if isinstance(frame, str):
                messages = rules.receive_text(frame, now)
            else:
                messages = rules.receive_binary(frame, now)
            for out in rules.data_to_send():
                client.send(out)
            if rules.rejected is not None:
                _log_refusal(client, rules.rejected)
                if rules.rejected.code == "rate_limited":
                    coordinator.stats.errors["rate_limited"] += 1
            for message in messages:
                await _act(coordinator, client, message)
        if rules.state is ConnectionState.CLOSING:
            code = rules.close_code or CLOSE_POLICY_VIOLATION
            await ws.close(code, rules.close_reason)
            rules.closed(code, rules.close_reason)
    finally:
        coordinator.forget_client(client)
        code, reason = rules.close_code or 1005, rules.close_reason
        if ws.close_code is not None:  # closed from here (not reading, shutting down)
            code, reason = ws.close_code, ws.close_reason
        emit(
            events,
            "client_disconnected",
            f"client #{client.client_id} disconnected: code={code}"
            + (f" reason={reason}" if reason else ""),
            client_id=client.client_id,
            code=code,
            reason=reason,
        )


async def _act(coordinator: Coordinator, client: ClientPeer, message: ClientMessage) -> None:
    """Carry out a request the connection's rules let through."""
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
                _error(client, exc.code, str(exc), message.ref)
        case Watch():
            await coordinator.watch(client, message.job_ids, message.task_ids)
        case CancelJob():
            try:
                await coordinator.cancel(message.job_id, requested_by=client)
            except KeyError:
                _error(client, "unknown_job", f"there is no job {message.job_id}")
            except StoreError as exc:
                _error(client, "store_unavailable", f"the job could not be read: {exc}")


def _log_refusal(client: ClientPeer, refused: ProtocolError) -> None:
    emit(
        events,
        "client_request_refused",
        f"client #{client.client_id}: {refused.code}: {refused.message}",
        level=logging.WARNING,
        client_id=client.client_id,
        code=refused.code,
        detail=refused.message,
    )


def _error(client: ClientPeer, code: str, message: str, ref: int | None = None) -> None:
    _log_refusal(client, ProtocolError(code, message))
    client.send(encode_client_message(ClientError(code=code, message=message, ref=ref)).decode())
