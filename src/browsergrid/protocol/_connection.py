"""The connection rules of ``/ws`` (workers) and ``/client`` (submitters), without I/O.

A ``WorkerConnection`` or ``ClientConnection`` holds what one connection may do: hello
first and the protocol version, what an exercise-style worker (one that never says hello)
may send, the rate limit, binary frames and frames that do not decode. It has no socket
and no event loop, and reads no clock: frames and the time go in; the messages to act on,
the frames to send back and the decision to close come out (the design of
python-websockets' ``protocol.py``). The endpoint (the shell) moves frames between the
socket and this object, acts on the messages it returns, and logs::

    conn = WorkerConnection(worker_id, server=server, limits=limits,
                            rate=rate, burst=2 * rate, now=time.monotonic())
    while conn.state is not ConnectionState.CLOSING:
        frame = await ws.receive()
        if isinstance(frame, Closed):  # the peer closed first
            conn.closed(frame.code, frame.reason)
            break
        now = time.monotonic()
        if isinstance(frame, str):
            messages = conn.receive_text(frame, now)
        else:
            messages = conn.receive_binary(now)
        for out in conn.data_to_send():  # the answers first: ``welcome`` before any task
            peer.send(out)
        if conn.rejected is not None:  # a frame it refused: log it
            log(conn.rejected.code, conn.rejected.message)
        for message in messages:  # allowed by the rules: act on it
            await act(message, now)
    if conn.state is ConnectionState.CLOSING:  # it decided: its error frame is queued
        await ws.close(conn.close_code, conn.close_reason)
        conn.closed(conn.close_code, conn.close_reason)

Each ``receive_*`` call handles one frame: it returns at most one message and replaces
``rejected``. A decision to close (``close_code``) is final: from then on frames are
ignored and nothing more is queued.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from browsergrid.errors import IllegalTransition, ProtocolError
from browsergrid.protocol._client import (
    ClientError,
    ClientMessage,
    decode_client_message,
    encode_client_message,
)
from browsergrid.protocol._limits import RateLimit
from browsergrid.protocol._messages import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    PROTOCOL_VERSION,
    Capacity,
    HandBack,
    Hello,
    Holds,
    Limits,
    Results,
    TaskId,
    WorkerMessage,
    decode_worker_message,
    encode_server_error,
    encode_welcome,
)

_LISTED_TASKS: Final = 5  # task ids named in one coalesced ``unknown_task`` message
_QUOTED_CHARS: Final = 40  # of each, at most


class ConnectionState(enum.Enum):
    """Where a connection is in its life. Moves: NOT_INTRODUCED -> INTRODUCED;
    NOT_INTRODUCED or INTRODUCED -> CLOSING; any but CLOSED -> CLOSED. Any other move raises
    IllegalTransition (a bug)."""

    NOT_INTRODUCED = "not_introduced"  # open; a worker has not said hello (may never: legacy)
    INTRODUCED = "introduced"  # open; a worker was welcomed (a client: from the start)
    CLOSING = "closing"  # it decided to close: send data_to_send(), then close with close_code
    CLOSED = "closed"  # the socket has closed; frames are ignored, nothing more is sent


_MOVES: Final[dict[ConnectionState, frozenset[ConnectionState]]] = {
    ConnectionState.NOT_INTRODUCED: frozenset(
        {ConnectionState.INTRODUCED, ConnectionState.CLOSING, ConnectionState.CLOSED}
    ),
    ConnectionState.INTRODUCED: frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED}),
    ConnectionState.CLOSING: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}
_OPEN: Final = frozenset({ConnectionState.NOT_INTRODUCED, ConnectionState.INTRODUCED})


class _Connection:
    """What both kinds share: the state, the rate limit, the outgoing frames and the
    decision to close."""

    __slots__ = ("_budget", "_outgoing", "_state", "close_code", "close_reason", "rejected")

    def __init__(self, state: ConnectionState, rate: float, burst: float, now: float) -> None:
        self._state = state
        self._budget = RateLimit(rate, burst, now)
        self._outgoing: list[str] | None = None  # None while empty: idle connections are many
        self.close_code: int | None = None
        """The close code decided (by a refusal, ``close`` or, failing those, ``closed``)."""
        self.close_reason = ""
        self.rejected: ProtocolError | None = None
        """Why the last frame received was refused (its ``code`` is the error frame's),
        None when it was used. Replaced by each ``receive_*`` call: read it right after."""

    @property
    def state(self) -> ConnectionState:
        return self._state

    def data_to_send(self) -> list[str]:
        """The text frames queued since the last call, in order; send them all, before
        anything else for this peer."""
        frames, self._outgoing = self._outgoing or [], None
        return frames

    def close(self, code: int, reason: str) -> None:
        """The shell decided to close (e.g. 1001, shutting down): move to CLOSING and
        keep ``code`` and ``reason``, unless a decision was already made (that one stands)."""
        if self._state in _OPEN:
            self._decide(code, reason)

    def closed(self, code: int, reason: str) -> None:
        """The socket has closed, with ``code`` and ``reason`` (kept as ``close_code`` when
        no close was decided here: the peer closed first). Call it once."""
        self._move(ConnectionState.CLOSED)
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason

    def _move(self, to: ConnectionState) -> None:
        if to not in _MOVES[self._state]:
            raise IllegalTransition(f"connection: {self._state.value} -> {to.value}")
        self._state = to

    def _decide(self, code: int, reason: str) -> None:
        self._move(ConnectionState.CLOSING)
        self.close_code, self.close_reason = code, reason

    def _send(self, frame: str) -> None:
        if self._outgoing is None:
            self._outgoing = [frame]
        else:
            self._outgoing.append(frame)

    def _exhausted(self, now: float, cost: int) -> str | None:
        """Take ``cost`` messages from the budget; when it cannot pay, the refusal's message
        (the caller sends ``rate_limited`` and closes 1008)."""
        if self._budget.allow(now, cost):
            return None
        return f"more than {self._budget.rate:g} messages per second"


class WorkerConnection(_Connection):
    """One worker's connection to ``/ws`` (docs/protocol.md, "Worker to coordinator").

    - ``hello`` introduces the worker: ``welcome`` is queued at once and the Hello
      returned. A ``protocol`` other than PROTOCOL_VERSION is refused (``unsupported_protocol``,
      close 1002), even after a welcome; a second hello gets ``already_introduced``.
    - ``result``, ``results`` and ``error`` are returned whether or not the worker said
      hello (an exercise-style worker never does: ``legacy``); ``capacity`` and
      ``hand_back`` before hello get ``not_introduced``.
    - A frame that does not decode gets an error frame (``bad_json``, ``bad_message``,
      ``unknown_type``; with the frame's integer ``task_id`` when it has one) and the
      connection goes on. A binary frame is refused (``binary_frame``, close 1003).
    - Rate: each result counts (a ``results`` frame of n items costs n, any other frame 1)
      against ``rate`` per second with bursts of ``burst``, plus one per task sent
      (``tasks_sent``); past that the frame is refused (``rate_limited``, close 1008).
    - ``reject``: the reports of one frame that the coordinator could not use get one
      ``unknown_task`` between them.

    The shell sends a legacy worker ``task`` frames one by one, never ``tasks``, ``ack``
    or ``cancel``.
    """

    __slots__ = ("_limits", "_server", "_welcomed", "blob_key", "worker_id")

    def __init__(
        self,
        worker_id: int,
        *,
        server: str,
        limits: Limits,
        rate: float,
        burst: float,
        now: float,
        blob_key: str | None = None,
    ) -> None:
        super().__init__(ConnectionState.NOT_INTRODUCED, rate, burst, now)
        self.worker_id = worker_id
        self.blob_key = blob_key  # sent in ``welcome``: the worker's key for blob requests
        self._server = server  # for ``welcome``: shared by every connection, encoded on hello
        self._limits = limits
        self._welcomed = False  # said hello: still True once closing

    @property
    def introduced(self) -> bool:
        """It said hello and was welcomed (it stays so while closing)."""
        return self._welcomed

    @property
    def legacy(self) -> bool:
        """It never said hello: an exercise-style worker (or one that has not yet)."""
        return not self._welcomed

    def receive_text(self, text: str, now: float) -> list[WorkerMessage]:
        """One text frame received at ``now``: the message to act on, if the rules allow
        it; then send ``data_to_send()`` and read ``rejected`` and ``close_code``."""
        self.rejected = None
        if self._state not in _OPEN:
            return []
        try:
            message = decode_worker_message(text)
        except ProtocolError as exc:
            if self._allow(now, 1):
                self._refuse_frame(exc.code, exc.message, exc.about)
            return []
        if not self._allow(now, len(message.results) if isinstance(message, Results) else 1):
            return []
        match message:
            case Hello():
                return self._hello(message)
            case Capacity() | HandBack() | Holds() if not self._welcomed:
                kind = {Capacity: "capacity", HandBack: "hand_back", Holds: "holds"}[type(message)]
                self._refuse_frame("not_introduced", f"send hello before {kind}")
                return []
        return [message]

    def receive_binary(self, now: float) -> list[WorkerMessage]:
        """A binary frame received at ``now``: refused (close 1003, or 1008 when over the
        rate). Returns nothing; send ``data_to_send()``, then close."""
        self.rejected = None
        if self._state in _OPEN and self._allow(now, 1):
            self._refuse(
                "binary_frame",
                "binary frames are not accepted; send JSON text",
                CLOSE_UNSUPPORTED_DATA,
            )
        return []

    def tasks_sent(self, count: int) -> None:
        """``count`` tasks were sent to this worker: it may answer each in a frame of its
        own beyond the rate."""
        self._budget.grant(count)

    def reject(self, reports: Sequence[tuple[TaskId | None, str]]) -> None:
        """The coordinator could not use these reports of one frame (``task_id``, reason):
        queue one ``unknown_task`` for them all, about the first (a worker that sends a
        thousand stale results in one frame gets one error frame, not a thousand)."""
        if not reports or self._state not in _OPEN:
            return
        task_id, reason = reports[0]
        if len(reports) > 1:
            ids = ", ".join(_quoted(t) for t, _ in reports[:_LISTED_TASKS])
            more = ", ..." if len(reports) > _LISTED_TASKS else ""
            reason = f"{len(reports)} reports ignored (task_ids {ids}{more}); the first: {reason}"
        self._send(encode_server_error("unknown_task", reason, task_id))

    def _hello(self, hello: Hello) -> list[WorkerMessage]:
        if hello.protocol != PROTOCOL_VERSION:
            self._refuse(
                "unsupported_protocol",
                f"this coordinator speaks protocol {PROTOCOL_VERSION}, not {hello.protocol}",
                CLOSE_PROTOCOL_ERROR,
            )
            return []
        if self._welcomed:
            self._refuse_frame("already_introduced", "hello was already received")
            return []
        self._move(ConnectionState.INTRODUCED)
        self._welcomed = True
        self._send(encode_welcome(self.worker_id, self._server, self._limits, self.blob_key))
        return [hello]

    def _allow(self, now: float, cost: int) -> bool:
        """Take ``cost`` from the budget; False (refused, closing 1008) when over it."""
        message = self._exhausted(now, cost)
        if message is not None:
            self._refuse("rate_limited", message, CLOSE_POLICY_VIOLATION)
        return message is None

    def _refuse(self, code: str, message: str, close_code: int) -> None:
        """Tell the worker what was wrong, then close with ``close_code``."""
        self._refuse_frame(code, message)
        self._decide(close_code, message)

    def _refuse_frame(self, code: str, message: str, task_id: int | None = None) -> None:
        """Answer an error frame (about ``task_id``) and go on."""
        self.rejected = ProtocolError(code, message)
        self._send(encode_server_error(code, message, task_id))


class ClientConnection(_Connection):
    """One client's connection to ``/client`` (docs/protocol.md, "Client protocol").

    A client is introduced by its token at the upgrade, so it starts INTRODUCED. Every
    frame costs one message against ``rate`` per second, bursts of ``burst``; past that
    it gets ``rate_limited`` and the connection closes (1008). A frame that does not decode
    gets an ``error`` (``bad_json``, ``bad_message``, ``unknown_type``) carrying its ``ref``
    when one can be read, so the client can fail that submit; the connection goes on. A
    binary frame is read as UTF-8 text (bad bytes replaced).
    """

    __slots__ = ()

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        super().__init__(ConnectionState.INTRODUCED, rate, burst, now)

    def receive_text(self, text: str, now: float) -> list[ClientMessage]:
        """One frame received at ``now``: the request to carry out, if any; then send
        ``data_to_send()`` and read ``rejected`` and ``close_code``."""
        self.rejected = None
        if self._state not in _OPEN:
            return []
        message = self._exhausted(now, 1)
        if message is not None:
            self._refuse_frame("rate_limited", message, None)
            self._decide(CLOSE_POLICY_VIOLATION, "rate_limited")
            return []
        try:
            return [decode_client_message(text)]
        except ProtocolError as exc:
            self._refuse_frame(exc.code, exc.message, exc.about)
            return []

    def receive_binary(self, data: bytes, now: float) -> list[ClientMessage]:
        """A binary frame: as ``receive_text`` of its UTF-8 text."""
        return self.receive_text(data.decode("utf-8", "replace"), now)

    def _refuse_frame(self, code: str, message: str, ref: int | None) -> None:
        """Answer an error frame (about submit ``ref``) and go on."""
        self.rejected = ProtocolError(code, message)
        self._send(encode_client_message(ClientError(code=code, message=message, ref=ref)).decode())


def _quoted(task_id: TaskId | None) -> str:
    """A task id for a message: a worker's string ids may be long, and the frame it gets
    back should not grow with them."""
    text = repr(task_id)
    return text if len(text) <= _QUOTED_CHARS else text[:_QUOTED_CHARS] + "..."
