"""The coordinator shell: worker frames in, scheduler events out, its commands carried out."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from starlette.websockets import WebSocket

from browsergrid._console import emit
from browsergrid._version import __version__
from browsergrid.config import ServeConfig
from browsergrid.core import (
    ClockTicked,
    Command,
    Event,
    RejectReport,
    ResultReported,
    Scheduler,
    SendTask,
    TaskDone,
    TaskErrorReported,
    TaskFailed,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.errors import ProtocolError
from browsergrid.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    PROTOCOL_VERSION,
    Hello,
    Limits,
    Result,
    TaskError,
    decode_worker_message,
    encode_server_error,
    encode_task,
    encode_welcome,
)

log = logging.getLogger("browsergrid.server")
events = logging.getLogger("browsergrid.server.events")

_LISTED_WORKERS = 20  # longer worker lists are cut, so a big grid's log stays readable


@dataclass(slots=True)
class _Connection:
    worker_id: int
    ws: WebSocket
    address: str
    path: str
    agent: str | None
    introduced: bool = False
    close_code: int | None = None  # set when the coordinator closes it
    close_reason: str = ""


class Coordinator:
    """Serves worker connections; one per ``browsergrid serve`` process.

    Mount ``serve_worker`` as a WebSocket endpoint, run ``tick_forever`` in the background,
    and call ``close_all`` when shutting down.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.scheduler = Scheduler(
            welcome=config.welcome,
            lease_timeout_s=config.lease_timeout_s,
            max_attempts=config.max_attempts,
        )
        self.connections: dict[int, _Connection] = {}
        self.limits = Limits(
            max_frame_bytes=config.max_frame_bytes,
            heartbeat_interval_s=config.heartbeat_interval_s,
            heartbeat_timeout_s=config.heartbeat_timeout_s,
        )
        self._worker_ids = itertools.count(1)
        self._stimuli = itertools.count(1)
        self._closing = False

    # --- connections -----------------------------------------------------------------

    async def serve_worker(self, ws: WebSocket) -> None:
        """Run one worker connection from accept to close."""
        if self._closing:
            await ws.close(CLOSE_GOING_AWAY)
            return
        await ws.accept()
        client = ws.client
        conn = _Connection(
            worker_id=next(self._worker_ids),
            ws=ws,
            address=f"{client.host}:{client.port}" if client else "unknown",
            path=ws.url.path,
            agent=ws.headers.get("user-agent"),
        )
        self.connections[conn.worker_id] = conn
        emit(
            events,
            "worker_connected",
            f"worker #{conn.worker_id} connected from {conn.address} path={conn.path}"
            + (f" agent={conn.agent}" if conn.agent else ""),
            worker_id=conn.worker_id,
            address=conn.address,
            path=conn.path,
            agent=conn.agent,
        )
        self._list_workers()
        code, reason = 1005, ""
        try:
            await self._apply(
                WorkerJoined(
                    worker_id=conn.worker_id,
                    now=time.monotonic(),
                    stimulus_id=self._stimulus("join"),
                )
            )
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    code, reason = message.get("code", 1005), message.get("reason") or ""
                    break
                text = message.get("text")
                if text is None:
                    await self._refuse(
                        conn,
                        "binary_frame",
                        "binary frames are not accepted; send JSON text",
                        CLOSE_UNSUPPORTED_DATA,
                    )
                    break
                if not await self._on_frame(conn, text):
                    break
        finally:
            del self.connections[conn.worker_id]
            if conn.close_code is not None:
                code, reason = conn.close_code, conn.close_reason
            emit(
                events,
                "worker_disconnected",
                f"worker #{conn.worker_id} disconnected: code={code}"
                + (f" reason={reason}" if reason else ""),
                worker_id=conn.worker_id,
                code=code,
                reason=reason,
            )
            self._list_workers()
            await self._apply(
                WorkerLeft(
                    worker_id=conn.worker_id,
                    now=time.monotonic(),
                    stimulus_id=self._stimulus("leave"),
                )
            )

    async def _on_frame(self, conn: _Connection, text: str) -> bool:
        """Handle one text frame; False when the connection must end."""
        try:
            message = decode_worker_message(text)
        except ProtocolError as exc:
            emit(
                events,
                "frame_ignored",
                f"[#{conn.worker_id}] ignored frame ({exc.code}): {exc.message}; "
                f"frame={_preview(text)}",
                level=logging.WARNING,
                worker_id=conn.worker_id,
                code=exc.code,
                detail=exc.message,
                frame=_preview(text),
            )
            await self._send(conn, encode_server_error(exc.code, exc.message))
            return True
        now = time.monotonic()
        match message:
            case Result():
                if message.agent:
                    conn.agent = message.agent
                await self._apply(
                    ResultReported(
                        worker_id=conn.worker_id,
                        task_id=message.task_id,
                        result=message.result,
                        duration_ms=message.duration_ms,
                        now=now,
                        stimulus_id=self._stimulus("result"),
                    )
                )
            case TaskError():
                await self._apply(
                    TaskErrorReported(
                        worker_id=conn.worker_id,
                        task_id=message.task_id,
                        message=message.message,
                        now=now,
                        stimulus_id=self._stimulus("error"),
                    )
                )
            case Hello():
                return await self._on_hello(conn, message, now)
        return True

    async def _on_hello(self, conn: _Connection, hello: Hello, now: float) -> bool:
        if hello.protocol != PROTOCOL_VERSION:
            await self._refuse(
                conn,
                "unsupported_protocol",
                f"this coordinator speaks protocol {PROTOCOL_VERSION}, not {hello.protocol}",
                CLOSE_PROTOCOL_ERROR,
            )
            return False
        if conn.introduced:
            await self._send(
                conn, encode_server_error("already_introduced", "hello was already received")
            )
            return True
        conn.introduced = True
        conn.agent = hello.agent
        await self._send(
            conn, encode_welcome(conn.worker_id, f"browsergrid {__version__}", self.limits)
        )
        emit(
            events,
            "worker_introduced",
            f"worker #{conn.worker_id} introduced itself: ops={','.join(hello.ops)} "
            f"concurrency={hello.concurrency} agent={hello.agent}",
            worker_id=conn.worker_id,
            ops=hello.ops,
            concurrency=hello.concurrency,
            agent=hello.agent,
        )
        await self._apply(
            WorkerIntroduced(
                worker_id=conn.worker_id,
                ops=frozenset(hello.ops),
                concurrency=hello.concurrency,
                now=now,
                stimulus_id=self._stimulus("hello"),
            )
        )
        return True

    async def _refuse(self, conn: _Connection, code: str, message: str, close_code: int) -> None:
        """Tell the worker what was wrong, then close with ``close_code``."""
        emit(
            events,
            "worker_refused",
            f"[#{conn.worker_id}] closing: {message}",
            level=logging.WARNING,
            worker_id=conn.worker_id,
            code=code,
            close_code=close_code,
        )
        await self._send(conn, encode_server_error(code, message))
        await self._close(conn, close_code, message)

    # --- the core ----------------------------------------------------------------------

    async def _apply(self, event: Event) -> None:
        """Feed one event to the scheduler and carry out what it asks, in order."""
        for command in self.scheduler.handle(event):
            await self._execute(command)

    async def _execute(self, command: Command) -> None:
        match command:
            case SendTask():
                conn = self.connections.get(command.worker_id)
                if conn is None:
                    return  # it left; its WorkerLeft event takes the lease back
                await self._send(conn, encode_task(command.task_id, command.op, command.args))
                emit(
                    events,
                    "task_sent",
                    f"[#{command.worker_id}] task sent task_id={command.task_id} op={command.op}"
                    + (" (welcome task)" if command.welcome else ""),
                    worker_id=command.worker_id,
                    task_id=command.task_id,
                    op=command.op,
                    welcome=command.welcome,
                )
            case TaskDone():
                conn = self.connections.get(command.worker_id)
                agent = conn.agent if conn else None
                emit(
                    events,
                    "result",
                    f"[#{command.worker_id}] result task_id={command.task_id}\n"
                    f"          result={command.result!r}\n"
                    f"          duration_ms={command.duration_ms:g}"
                    + (f"\n          agent={agent}" if agent else ""),
                    worker_id=command.worker_id,
                    task_id=command.task_id,
                    op=command.op,
                    result=command.result,
                    duration_ms=command.duration_ms,
                    agent=agent,
                    welcome=command.welcome,
                )
            case TaskFailed():
                emit(
                    log,
                    "task_failed",
                    f"task {command.task_id} ({command.op}) failed: " + "; ".join(command.reasons),
                    level=logging.WARNING,
                    task_id=command.task_id,
                    op=command.op,
                    reasons=list(command.reasons),
                )
            case RejectReport():
                emit(
                    events,
                    "report_ignored",
                    f"[#{command.worker_id}] ignored report for task_id={command.task_id!r}: "
                    f"{command.reason}",
                    level=logging.WARNING,
                    worker_id=command.worker_id,
                    task_id=command.task_id,
                )
                conn = self.connections.get(command.worker_id)
                if conn is not None:
                    await self._send(
                        conn, encode_server_error("unknown_task", command.reason, command.task_id)
                    )

    async def tick_forever(self, interval_s: float = 1.0) -> None:
        """Feed the clock to the scheduler so that expired leases end; run as a background task."""
        while True:
            await asyncio.sleep(interval_s)
            await self._apply(ClockTicked(now=time.monotonic(), stimulus_id=self._stimulus("tick")))

    # --- I/O helpers -------------------------------------------------------------------

    async def _send(self, conn: _Connection, frame: str) -> None:
        try:
            await conn.ws.send_text(frame)
        except Exception:
            log.debug("send to worker #%s failed; it is closing", conn.worker_id)

    async def _close(self, conn: _Connection, code: int, reason: str) -> None:
        conn.close_code, conn.close_reason = code, reason
        try:
            await conn.ws.close(code, reason[:120])
        except Exception:
            log.debug("close of worker #%s failed; it was already closed", conn.worker_id)

    async def close_all(self, reason: str = "server shutting down") -> None:
        """Refuse new workers and close every connection with 1001 (going away)."""
        self._closing = True
        await asyncio.gather(
            *(
                self._close(conn, CLOSE_GOING_AWAY, reason)
                for conn in list(self.connections.values())
            )
        )

    def _list_workers(self) -> None:
        if not events.isEnabledFor(logging.INFO):
            return
        conns = list(self.connections.values())
        lines = [f"connected workers ({len(conns)}):"] if conns else ["no workers connected"]
        lines += [
            f"  - #{c.worker_id} {c.address} {c.agent or ''}".rstrip()
            for c in conns[:_LISTED_WORKERS]
        ]
        if len(conns) > _LISTED_WORKERS:
            lines.append(f"  ... and {len(conns) - _LISTED_WORKERS} more")
        emit(
            events,
            "workers",
            "\n".join(lines),
            count=len(conns),
            worker_ids=[c.worker_id for c in conns[:_LISTED_WORKERS]],
        )

    def _stimulus(self, kind: str) -> str:
        return f"{kind}-{next(self._stimuli)}"


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
