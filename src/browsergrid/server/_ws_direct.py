"""Worker and client WebSockets served straight from the event loop, without ASGI.

uvicorn serves every HTTP request and hands each WebSocket upgrade to the protocol class
its ``ws`` setting names. ``direct_websockets`` makes that class. Upgrades to the paths it
routes (``/``, ``/ws``, ``/client``) become a ``DirectWebSocket``: ``websockets``' sans-I/O
``ServerProtocol`` on the transport, and one task running the endpoint. Any other path
(``/dashboard/live``) goes on to uvicorn's own protocol and the ASGI app, as before.

Why: an idle worker held through ASGI cost 37 KiB (uvicorn's queue, events and task, the
scope, and a coroutine for each of the app's middleware and routing layers) and every
frame went through them. A direct one costs a fraction of that (bench/README.md,
``idle.py``). Frames written in one pass of the event loop leave in one write, and one
timer pings every connection (``_keepalive``) instead of one timer each.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, cast

import msgspec
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.utils import get_remote_addr, is_ssl
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from browsergrid.server._forwarded import forwarded_client, trusted_proxy
from browsergrid.server._keepalive import Keepalive
from browsergrid.server._websocket import (
    CLOSE_NOT_READING,
    MAX_UNSENT,
    Closed,
    Connection,
    unsent_reason,
)

log = logging.getLogger("browsergrid.server")
_quiet = logging.getLogger("browsergrid.server.ws")  # websockets' own per-connection logs
_quiet.setLevel(logging.WARNING)
_quiet.propagate = False

Endpoint = Callable[[Connection], Awaitable[None]]

_CLOSE_TIMEOUT_S = 10.0  # after our close frame, how long the peer has to answer it
_PAUSE_READING_AT = 64  # messages queued and not yet received: stop reading the socket
_GOING_AWAY = 1001
_SERVICE_RESTART = 1012
_KEEPALIVE_FAILED = 1011


class DirectWebSocket(asyncio.Protocol, Connection):
    """One upgraded connection: the ``asyncio.Protocol`` uvicorn hands the transport to,
    and the ``Connection`` its endpoint uses. Built by the class ``direct_websockets``
    returns, never directly."""

    routes: ClassVar[Mapping[str, Endpoint]] = {}
    keepalive: ClassVar[Keepalive] = Keepalive(None, None)
    proxy: ClassVar[ProxyHeadersMiddleware | None] = None
    max_unsent: ClassVar[int] = MAX_UNSENT

    __slots__ = (
        "__weakref__",
        "_app_state",
        "_client",
        "_close_timer",
        "_config",
        "_delegate",
        "_ended",
        "_flushing",
        "_headers",
        "_inbox",
        "_parts",
        "_path",
        "_query",
        "_queued",
        "_read_paused",
        "_response",
        "_state",
        "_text",
        "_transport",
        "_waiter",
        "_writable",
        "_ws",
        "close_code",
        "close_reason",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._state = server_state
        self._app_state = app_state
        self._transport: asyncio.Transport | None = None
        self._delegate: asyncio.Protocol | None = None
        self._ws: ServerProtocol | None = None
        self._response: Response | None = None  # the 101 to send once the endpoint accepts
        self._path = ""
        self._query = b""
        self._client: tuple[str, int] | None = None
        self._headers: dict[str, str] = {}
        self._inbox: deque[str | bytes | Closed] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._parts: list[bytes] = []
        self._text = True
        self._flushing = False
        self._writable: asyncio.Future[None] | None = None
        self._queued = 0  # bytes given to websockets and not yet to the transport
        self._read_paused = False
        self._ended = False
        self._close_timer: asyncio.TimerHandle | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._state.connections.add(self)  # type: ignore[arg-type]
        self._client = get_remote_addr(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        ws = self._ws
        if ws is None:
            if not self._route(data):
                return
            ws = self._ws
            assert ws is not None
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        if ws.parser_exc is not None or ws.state is State.CLOSED:
            self._flush()
            self._end(ws.close_sent.code if ws.close_sent else 1006, "")
            self._close_transport()
        elif ws.writes:
            self._flush()

    def eof_received(self) -> bool | None:
        if self._delegate is not None:
            return self._delegate.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
            return
        self._state.connections.discard(self)
        self.keepalive.remove(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        ws = self._ws
        received = ws.close_rcvd if ws is not None else None
        self._end(received.code if received else 1006, received.reason if received else "")
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()
            return
        loop = asyncio.get_running_loop()
        if self._writable is None or self._writable.done():
            self._writable = loop.create_future()
        self.keepalive.stuck(self, loop.time())

    def resume_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.resume_writing()
            return
        self.keepalive.moving(self)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def shutdown(self) -> None:
        """uvicorn's server is stopping: say so (1012) and close."""
        if self._delegate is not None:
            self._delegate.shutdown()  # type: ignore[attr-defined]
            return
        ws = self._ws
        if ws is not None and ws.state is State.OPEN:
            self._end(_SERVICE_RESTART, "")
            ws.send_close(_SERVICE_RESTART)
            self._flush()
        self._close_transport()

    # --- the handshake -------------------------------------------------------------------

    def _route(self, data: bytes) -> bool:
        """First bytes: uvicorn's copy of the upgrade request. Keep it (True), or hand the
        connection on to uvicorn's protocol and the ASGI app (False)."""
        target = data.split(b" ", 2)[1] if data.count(b" ", 0, 2048) >= 2 else b""
        path = target.partition(b"?")[0].decode("latin-1")
        if path not in self.routes:
            delegate = WebSocketsSansIOProtocol(
                config=self._config, server_state=self._state, app_state=self._app_state
            )
            self._delegate = delegate
            self._state.connections.discard(self)
            transport = self._transport
            assert transport is not None
            delegate.connection_made(transport)
            delegate.data_received(data)
            # uvicorn sets this object as the transport's protocol right after this call;
            # until the delegate replaces it, this one passes every event on.
            asyncio.get_running_loop().call_soon(transport.set_protocol, delegate)
            return False
        self._ws = ServerProtocol(max_size=self._config.ws_max_size, logger=_quiet)
        return True

    def _on_request(self, request: Request) -> None:
        ws = self._ws
        assert ws is not None
        response = ws.accept(request)
        if response.status_code != 101:  # not a valid WebSocket handshake
            ws.send_response(response)
            self._end(1006, "")
            self._flush()
            self._close_transport()
            return
        raw_path, _, query = request.path.partition("?")
        self._path = raw_path
        self._query = query.encode("latin-1")
        self._headers = {}
        for name, value in request.headers.raw_items():
            self._headers.setdefault(name.lower(), value)
        self._response = response
        endpoint = self.routes[raw_path]
        task = asyncio.get_running_loop().create_task(self._run(endpoint))
        self._state.tasks.add(task)  # uvicorn waits for these at shutdown
        task.add_done_callback(self._state.tasks.discard)

    async def _run(self, endpoint: Endpoint) -> None:
        try:
            if self.proxy is not None:
                secure = self._transport is not None and is_ssl(self._transport)
                self._client = await forwarded_client(
                    self.proxy, self._headers, self._client, secure=secure
                )
            await endpoint(self)
        except Exception:
            log.exception("a WebSocket endpoint failed; closing its connection")
            if self._response is not None:  # not accepted yet
                await self.deny(500, {"detail": "internal error", "code": "internal_error"})
        finally:
            ws = self._ws
            if self._response is not None:  # neither accepted nor denied
                await self.deny(403, {"detail": "refused", "code": "refused"})
            elif ws is not None and ws.state is State.OPEN:
                await self.close(1000, "")
            if self._close_timer is None:
                self._close_transport()

    # --- Connection ----------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    @property
    def query_string(self) -> bytes:
        return self._query

    @property
    def client(self) -> tuple[str, int] | None:
        return self._client

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    async def accept(self) -> None:
        ws, response = self._ws, self._response
        if ws is None or response is None or self._ended:
            return
        self._response = None
        ws.send_response(response)
        self._flush()
        agent = self._headers.get("user-agent")  # all the endpoints read once accepted
        self._headers = {"user-agent": agent} if agent is not None else {}
        self.keepalive.add(self, asyncio.get_running_loop().time())

    async def deny(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        ws = self._ws
        if ws is None or self._response is None:
            return
        self._response = None
        content = msgspec.json.encode(body)
        fields = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(content))),
                ("Content-Type", "application/json"),
            ]
        )
        for name, value in (headers or {}).items():
            fields[name] = value
        ws.send_response(Response(status, http.HTTPStatus(status).phrase, fields, content))
        self._end(1006, "")
        self._flush()
        self._close_transport()

    async def receive(self) -> str | bytes | Closed:
        while not self._inbox:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = self._inbox.popleft()
        if self._read_paused and len(self._inbox) < _PAUSE_READING_AT // 2:
            self._read_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()
        if isinstance(message, Closed):
            self._inbox.append(message)  # every later receive sees it too
        return message

    @property
    def unsent(self) -> int:
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued + buffered

    def send(self, frame: str) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN or self._ended:
            return
        if self.unsent > self.max_unsent:  # what it was sent before still waits
            self.give_up(unsent_reason(self.max_unsent))
            return
        data = frame.encode()
        try:
            ws.send_text(data)
        except InvalidState:
            return
        self._queued += len(data)
        self._write_soon()

    async def drained(self) -> None:
        self._flush()
        writable = self._writable
        if writable is not None and not writable.done():
            await writable

    def give_up(self, reason: str) -> None:
        """The peer does not read: end the connection now (1008), dropping what it was
        not sent, so its endpoint sees ``Closed`` and its work goes elsewhere."""
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        self.close_code, self.close_reason = CLOSE_NOT_READING, reason
        ws.fail(CLOSE_NOT_READING, reason[:120])
        self._end(CLOSE_NOT_READING, reason)
        self._queued = 0
        ws.data_to_send()  # the close frame would sit behind what it does not read
        if self._transport is not None:
            self._transport.abort()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    async def close(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        self.close_code, self.close_reason = code, reason
        self._end(code, reason)
        ws.send_close(code, reason[:120])
        self._flush()
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(_CLOSE_TIMEOUT_S, self._close_transport)

    # --- frames in, bytes out ------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._text = opcode is Opcode.TEXT
            if frame.fin:
                self._deliver(bytes(frame.data))
            else:
                self._parts = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._parts.append(bytes(frame.data))
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                self._deliver(data)
        elif opcode is Opcode.PONG:
            self.keepalive.answered(self)
        elif opcode is Opcode.CLOSE:
            ws = self._ws
            assert ws is not None
            received = ws.close_rcvd
            self._end(received.code if received else 1005, received.reason if received else "")
            self._flush()  # the close frame websockets answers with
            self._close_transport()
        # PING: websockets queued the pong; data_received flushes it

    def _deliver(self, data: bytes) -> None:
        if self._ended:
            return
        if self._text:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError:
                ws = self._ws
                assert ws is not None
                ws.fail(1007, "invalid UTF-8")
                self._end(1007, "invalid UTF-8")
                self._flush()
                self._close_transport()
                return
        else:
            message = data
        self._put(message)
        if len(self._inbox) >= _PAUSE_READING_AT and not self._read_paused:
            self._read_paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def _put(self, message: str | bytes | Closed) -> None:
        self._inbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, code: int, reason: str) -> None:
        """The connection is over for the endpoint: its next receive gets ``Closed``."""
        if not self._ended:
            self._ended = True
            self._put(Closed(code, reason))

    def ping(self) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        ws.send_ping(b"")
        self._write_soon()

    def keepalive_failed(self) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        ws.fail(_KEEPALIVE_FAILED, "keepalive ping timeout")
        self._end(_KEEPALIVE_FAILED, "keepalive ping timeout")
        self._flush()
        self._close_transport()

    def _write_soon(self) -> None:
        """Frames sent in one pass of the event loop leave in one write."""
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        ws, transport = self._ws, self._transport
        if ws is None or transport is None:
            return
        writes = ws.data_to_send()
        self._queued = 0
        if writes and not transport.is_closing():
            transport.write(b"".join(writes) if len(writes) > 1 else writes[0])

    def _close_transport(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


def direct_websockets(
    routes: Mapping[str, Endpoint],
    *,
    heartbeat_interval_s: float | None,
    heartbeat_timeout_s: float | None,
    proxy_headers: bool,
    forwarded_allow_ips: list[str] | str | None,
    max_unsent: int = MAX_UNSENT,
) -> type[asyncio.Protocol]:
    """The class to give uvicorn as ``Config(ws=...)``: upgrades to a path of ``routes``
    run that endpoint directly; others go to uvicorn's websockets-sansio protocol."""

    class RoutedWebSocket(DirectWebSocket):
        __slots__ = ()

    RoutedWebSocket.routes = dict(routes)
    RoutedWebSocket.keepalive = Keepalive(heartbeat_interval_s, heartbeat_timeout_s)
    RoutedWebSocket.proxy = trusted_proxy(proxy_headers, forwarded_allow_ips)
    RoutedWebSocket.max_unsent = max_unsent
    return RoutedWebSocket
