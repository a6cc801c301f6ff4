"""The client's connection engine: runs on one event loop, batches submissions into few
frames, and resolves futures as the coordinator pushes results."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from browsergrid._tokens import auth_headers, client_token, refusal_detail
from browsergrid.client._function import is_future
from browsergrid.config import TOKEN_ENV
from browsergrid.errors import (
    AuthError,
    BrowsergridError,
    ConfigError,
    ConnectionLost,
    SubmitError,
    TaskError,
)
from browsergrid.protocol import (
    FUTURE,
    Accepted,
    CancelJob,
    Cancelled,
    ClientError,
    Done,
    Ref,
    SubmitOptions,
    Watch,
    check_arg_names,
    decode_coordinator_message,
    encode_client_message,
    result_ref,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("browsergrid.client")

DEFAULT_SERVER = "http://127.0.0.1:8765"
SERVER_ENV = "BROWSERGRID_SERVER"
_FRAME_BUDGET = 900_000  # bytes of arguments per submit frame (the limit is 1 MiB)
_FIRST_SHARE = 1024  # tasks of a large request handed to the loop first; each next share doubles
_MAX_SHARE = 8192  # up to this: the coordinator takes in one submit frame at a time, unbroken
_encoder = msgspec.json.Encoder()
_MARK = "_browsergrid"
"""Set on each future a client makes (one attribute: it costs a future no more memory):
the engine that made it; once its submit is accepted, (that engine, its task id); if it
is never accepted (refused, or failed here), (that engine, the error)."""


def _futures_in(value: Any, found: list[Any]) -> None:
    if is_future(value):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _futures_in(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _futures_in(item, found)


def _with_markers(value: Any) -> Any:
    """``value`` with each future (accepted: see ``_MARK``) replaced by its marker."""
    if is_future(value):
        task_id: int = getattr(value, _MARK)[1]
        return {FUTURE: task_id}
    if isinstance(value, dict):
        return {key: _with_markers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_with_markers(item) for item in value]
    return value


def _placeholder(value: Any) -> Any:
    if is_future(value):
        return {FUTURE: 2**53}  # as long as a task id gets: the size is checked here
    raise NotImplementedError


_sizing_encoder = msgspec.json.Encoder(enc_hook=_placeholder)


Servers = str | Sequence[str]
"""One coordinator URL, several separated by commas, or a sequence of them."""


def coordinator_urls(url: Servers | None = None) -> list[tuple[str, str]]:
    """(http base URL, client WebSocket URL) of each coordinator named by ``url`` (one URL,
    several separated by commas, or a sequence of URLs), else by $BROWSERGRID_SERVER (which
    may hold several separated by commas), else the default; in order, without repeats.
    Each may be ``http://``, ``https://``, ``ws://``, ``wss://`` or ``HOST:PORT``; a URL
    that is none of these raises ConfigError."""
    if url is None or url == "":
        url = os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    given = [url] if isinstance(url, str) else list(url)
    for item in given:
        if not isinstance(item, str):
            raise TypeError(f"a coordinator URL must be a str, not {type(item).__name__}")
    entries = [part.strip() for item in given for part in item.split(",")]
    entries = [entry for entry in entries if entry]
    whole = ",".join(given)
    if not entries:
        raise ConfigError(
            f"no coordinator URL in {whole!r} (use http://HOST:PORT, several separated by commas)"
        )
    found: list[tuple[str, str]] = []
    for entry in entries:
        pair = _coordinator_url(entry, whole if len(entries) > 1 else None)
        if pair not in found:
            found.append(pair)
    return found


def _coordinator_url(raw: str, among: str | None) -> tuple[str, str]:
    if "://" not in raw:
        raw = f"http://{raw}"
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in {"http", "https", "ws", "wss"} and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        valid = False
    if not valid:
        hint = "; use http://HOST:PORT"
        if among is not None:
            hint = f" in {among!r}{hint}, several separated by commas"
        raise ConfigError(f"not a coordinator URL: {raw!r}{hint}")
    secure = parts.scheme in {"https", "wss"}
    http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, "/client", "", ""))
    return http, ws


def server_urls(url: Servers | None = None) -> tuple[str, str]:
    """(http base URL, client WebSocket URL) of the first coordinator of
    ``coordinator_urls(url)``: for ``url`` or $BROWSERGRID_SERVER or the default; accepts
    ``http://``, ``https://``, ``ws://``, ``wss://`` or ``HOST:PORT``."""
    return coordinator_urls(url)[0]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One coordinator a client may use: its HTTP base URL, its ``/client`` WebSocket URL,
    and the admin token sent to it (None: none)."""

    http: str
    ws: str
    token: str | None


def endpoints(url: Servers | None, token: str | None) -> list[Endpoint]:
    """The coordinators named by ``url`` (see ``coordinator_urls``), each with the token a
    client sends it (``client_token``, URL by URL: ``token``, else $BROWSERGRID_TOKEN, else
    this machine's token file, which only a loopback coordinator is sent)."""
    return [Endpoint(http, ws, client_token(token, http)) for http, ws in coordinator_urls(url)]


def tls_context() -> ssl.SSLContext:
    """The certificates trusted for https:// (httpx) as for wss:// (the websockets library's
    default context): the system's CA certificates, or those named by $SSL_CERT_FILE and
    $SSL_CERT_DIR (OpenSSL reads both), e.g. a coordinator's self-signed certificate. (httpx
    alone would trust certifi's bundle instead of the system's.)"""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)  # building one reads the CA store: about 20 ms
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()  # OpenSSL reads both variables itself


def auth_error(url: str, body: bytes | bytearray | str, *, sent: bool) -> AuthError:
    """The error for a 401 from ``url``: the coordinator's reason and what to do."""
    detail = refusal_detail(body)
    fix = "pass the right admin token" if sent else "pass the admin token (none was found to send)"
    return AuthError(
        f"the coordinator at {url} wants a token: {detail or 'HTTP 401'}. To fix it, {fix}: "
        f"Client(url, token=...), --token TOKEN or {TOKEN_ENV}=TOKEN"
    )


def http_get(
    base: str, path: str, params: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    """GET a JSON document of the coordinator's HTTP API; BrowsergridError says what failed
    (AuthError for a 401)."""
    import httpx

    try:
        response = httpx.get(
            base + path,
            params=params,
            headers=auth_headers(token),
            timeout=30,
            verify=tls_context(),
        )
    except httpx.HTTPError as exc:
        raise ConnectionLost(f"cannot reach the coordinator at {base}: {exc}") from None
    raise_for_refusal(response, base, sent=token is not None)
    return response.json()


def raise_for_refusal(response: httpx.Response, url: str, *, sent: bool) -> None:
    """Raise what a coordinator's refusal means: AuthError for a 401 (``sent``: a token
    was), BrowsergridError with its ``detail`` for any other 4xx or 5xx; nothing else."""
    if response.status_code == 401:
        raise auth_error(url, response.content, sent=sent)
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise BrowsergridError(f"{detail} (HTTP {response.status_code})")


def http_get_any(
    coordinators: Sequence[Endpoint],
    path: str,
    params: dict[str, Any] | None = None,
    first: int = 0,
) -> Any:
    """``http_get`` from the coordinators in turn, starting at index ``first``: when one
    cannot be reached (ConnectionLost), the next; an HTTP error status is raised at once."""
    errors: list[ConnectionLost] = []
    for step in range(len(coordinators)):
        endpoint = coordinators[(first + step) % len(coordinators)]
        try:
            return http_get(endpoint.http, path, params, endpoint.token)
        except ConnectionLost as exc:
            if step + 1 < len(coordinators):
                log.warning("%s; trying the next coordinator", exc)
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise ConnectionLost("cannot reach any coordinator: " + "; ".join(map(str, errors)))


class FutureLike(Protocol):
    """What the engine needs of a future: asyncio's and concurrent.futures' both fit."""

    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


@dataclass(slots=True)
class _Item:
    op: str
    args: dict[str, Any]
    encoded: bytes
    future: FutureLike
    job_id: int = -1  # set when accepted
    deps: tuple[Any, ...] = ()  # futures in its arguments, until they are markers


@dataclass(slots=True)
class _Request:
    """Items of one job that go together, and who wants the job id."""

    job_key: str
    op: str
    options: SubmitOptions
    items: list[_Item]
    job_id: FutureLike | None
    waits: bool = False  # some items' arguments hold futures not yet made markers


@dataclass(slots=True)
class _Pending:
    job_key: str
    items: list[_Item]
    job_id: FutureLike | None
    frame: str  # kept to send again after a reconnect, until accepted
    sent_on: int = -1  # the connection it was last sent on


class Engine:
    """One connection to the ``/client`` endpoint of one of ``coordinators``, living on
    ``loop``: the first that answers; when it is lost, the next that answers, in turn.

    ``request`` may be called from any thread; everything else runs on the loop.
    """

    def __init__(
        self,
        coordinators: Sequence[Endpoint],
        loop: asyncio.AbstractEventLoop,
        *,
        reconnect_timeout: float = 120,
        fetch: Callable[[Endpoint, Ref], Any] | None = None,
    ) -> None:
        if not coordinators:
            raise ValueError("no coordinator to connect to")
        self.fetch = fetch  # reads a result kept as a blob (blocking: run in a thread)
        self._fetches: set[asyncio.Task[None]] = set()
        self.coordinators = list(coordinators)
        self.current = 0  # index in coordinators of the one connected (or last connected)
        self.loop = loop
        self.reconnect_timeout = reconnect_timeout
        self.client_id = f"c-{uuid.uuid4().hex}"  # finds its jobs again after a reconnect
        self._connection = 0  # counts connections: a frame is sent once on each
        self._outgoing: asyncio.Queue[int] = asyncio.Queue()  # refs to send
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        self.jobs: dict[str, int] = {}  # job key -> job id, once accepted
        self._sessions: dict[SubmitOptions, str] = {}
        self._ws: ClientConnection | None = None
        self._refs = itertools.count(1)
        self._keys = itertools.count(1)
        self._buffer: deque[_Request] = deque()
        self._parked: list[_Request] = []  # wait for the futures in their arguments
        self._buffer_lock = threading.Lock()
        self._flush_scheduled = False
        self._pending: dict[int, _Pending] = {}  # ref -> submitted, not yet accepted
        self._tasks: dict[int, _Item] = {}  # task id -> accepted, not yet finished
        self._job_tasks: dict[int, set[int]] = {}
        self._receiver: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None

    @property
    def endpoint(self) -> Endpoint:
        """The coordinator connected to (or last connected to)."""
        return self.coordinators[self.current]

    @property
    def ws_url(self) -> str:
        return self.endpoint.ws

    @property
    def token(self) -> str | None:
        """The admin token sent to the current coordinator."""
        return self.endpoint.token

    def new_job_key(self) -> str:
        """A key for a new job of its own (``submit_job``, ``map``)."""
        return f"job-{next(self._keys)}"

    def session_key(self, options: SubmitOptions) -> str:
        """The key of the job that single ``submit`` calls with ``options`` go into."""
        key = self._sessions.get(options)
        if key is None:
            key = self._sessions[options] = f"session-{len(self._sessions) + 1}"
        return key

    async def connect(self) -> None:
        """Open the connection to the first coordinator that answers and accepts the token;
        raises ConnectionLost if none can be reached, AuthError if one refused the token (or
        its absence) and none accepted it."""
        refused: AuthError | None = None
        unreachable: list[ConnectionLost] = []
        for index in range(len(self.coordinators)):
            try:
                await self._open(index)
            except AuthError as exc:
                refused = refused or exc
            except ConnectionLost as exc:
                unreachable.append(exc)
            else:
                break
        else:
            if refused is not None:
                raise refused
            if len(unreachable) == 1:
                raise unreachable[0]
            raise ConnectionLost(
                "cannot reach any coordinator: " + "; ".join(map(str, unreachable))
            )
        if self.current > 0:
            log.warning("connected to the coordinator at %s", self.ws_url)
        self._receiver = self.loop.create_task(self._receive())
        self._sender = self.loop.create_task(self._send())

    async def _open(self, index: int) -> None:
        """Connect to ``coordinators[index]``, which becomes the current one."""
        endpoint = self.coordinators[index]
        try:
            ws = await websockets.connect(
                endpoint.ws,
                compression=None,
                max_size=None,
                open_timeout=10,
                additional_headers=auth_headers(endpoint.token),
            )
        except websockets.InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise auth_error(
                    endpoint.ws, exc.response.body, sent=bool(endpoint.token)
                ) from None
            raise ConnectionLost(f"cannot reach the coordinator at {endpoint.ws}: {exc}") from None
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise ConnectionLost(f"cannot reach the coordinator at {endpoint.ws}: {exc}") from None
        self._ws = ws
        self.current = index
        self._connection += 1

    async def close(self) -> None:
        """Close for good; futures still pending end with ConnectionLost."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        for task in (self._receiver, self._sender):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._cancel_all()

    # --- submitting (any thread) ---------------------------------------------------------

    def request(
        self,
        job_key: str,
        op: str,
        args: Iterable[dict[str, Any]],
        options: SubmitOptions,
        make_future: Callable[[], FutureLike],
        job_id: FutureLike | None = None,
    ) -> list[FutureLike]:
        """Queue ``op`` once per ``args`` item in job ``job_key``; returns one future per
        item. Arguments are checked and encoded here, in the caller's thread: if one is
        refused (TypeError, ValueError), nothing is queued.

        A large request goes to the loop in growing shares (``_FIRST_SHARE`` tasks, then
        twice as many each time, up to ``_MAX_SHARE``), so that the first tasks are on their
        way to the coordinator (and running) while the futures of the next ones are being
        made, and so that the coordinator, which handles a submit frame without a break,
        hears from its workers between two of them."""
        if self._lost is not None:
            raise ConnectionLost(f"the connection to the coordinator is closed: {self._lost}")
        checked: list[tuple[dict[str, Any], bytes, tuple[Any, ...]]] = []
        encode = _encoder.encode
        waits = False
        for item in args:
            if not isinstance(item, dict):
                raise TypeError(f"task arguments must be a dict, not {type(item).__name__}")
            check_arg_names(item)
            deps: tuple[Any, ...] = ()
            try:
                encoded = encode(item)
            except (TypeError, msgspec.EncodeError) as exc:
                deps, encoded = self._deps_of(item, exc)
                waits = True
            if len(encoded) > _FRAME_BUDGET:
                raise ValueError(
                    f"task arguments of {len(encoded)} bytes are over the 900 kB limit"
                )
            checked.append((item, encoded, deps))
        futures: list[FutureLike] = []
        start, share = 0, _FIRST_SHARE
        while True:
            items = [
                _Item(op, item, encoded, self._own(make_future()), deps=deps)
                for item, encoded, deps in checked[start : start + share]
            ]
            futures += [item.future for item in items]
            self._queue(_Request(job_key, op, options, items, job_id, waits))
            start, share = start + share, min(share * 2, _MAX_SHARE)
            if start >= len(checked):
                return futures

    def _own(self, future: FutureLike) -> FutureLike:
        setattr(future, _MARK, self)  # so it may be an argument of this client's tasks
        return future

    def _deps_of(self, item: dict[str, Any], exc: Exception) -> tuple[tuple[Any, ...], bytes]:
        """The futures in ``item``, which did not encode (``exc``), and its encoding with
        placeholders for them (its size); TypeError if it failed for another reason, or if
        a future is not this client's."""
        found: list[Any] = []
        _futures_in(item, found)
        if not found:
            raise TypeError(f"task arguments must be JSON values: {exc}") from None
        for future in found:
            mark = getattr(future, _MARK, None)
            if mark is not self and not (isinstance(mark, tuple) and mark[0] is self):
                raise TypeError(
                    "a future in the arguments is not one this client made: only the "
                    "futures of this client's own submits can stand for their results"
                )
        try:
            encoded = _sizing_encoder.encode(item)
        except (TypeError, msgspec.EncodeError) as other:
            raise TypeError(f"task arguments must be JSON values: {other}") from None
        return tuple(found), encoded

    def _queue(self, request: _Request) -> None:
        """Hand ``request`` to the loop (any thread): the next flush sends it."""
        with self._buffer_lock:
            self._buffer.append(request)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        """Turn everything requested since the last flush into as few frames as fit."""
        with self._buffer_lock:
            requests = list(self._buffer)
            self._buffer.clear()
            self._flush_scheduled = False
        if any(request.waits for request in requests):
            requests = [request for request in requests if self._ready(request)]
        frames: list[int] = []
        merged: list[_Request] = []
        for request in requests:  # consecutive requests for the same job and op go together
            last = merged[-1] if merged else None
            if last and (last.job_key, last.op, last.options) == (
                request.job_key,
                request.op,
                request.options,
            ):
                last.items.extend(request.items)
                last.job_id = last.job_id or request.job_id
            else:
                merged.append(request)
        for request in merged:
            chunk: list[_Item] = []
            size = 0
            for item in request.items:
                if chunk and size + len(item.encoded) > _FRAME_BUDGET:
                    frames.append(self._frame(request, chunk))
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item.encoded) + 1
            if chunk:
                frames.append(self._frame(request, chunk))
        for ref in frames:
            self._outgoing.put_nowait(ref)

    def _ready(self, request: _Request) -> bool:
        """Whether ``request`` may go now: every future in its arguments stands for a task
        accepted (they become markers). Else it is parked until they are, or fails when
        one never will be (its own submit failed)."""
        for item in request.items:
            for dep in item.deps:
                mark = getattr(dep, _MARK)
                if mark is self:  # not yet: a future cancelled meanwhile is accepted too
                    self._parked.append(request)
                    return False
                if isinstance(mark[1], BaseException):
                    error = SubmitError(
                        "bad_args",
                        f"an argument is the future of a task that was never accepted: {mark[1]}",
                    )
                    self._fail_request(request, error)
                    self._unpark()  # what waits for these fails too
                    return False
        for item in request.items:
            if item.deps:
                item.args = _with_markers(item.args)
                item.encoded = _encoder.encode(item.args)
                item.deps = ()
        request.waits = False
        return True

    def _fail_request(self, request: _Request | _Pending, error: BaseException) -> None:
        """Its tasks will never be accepted: their futures (and those of the tasks that take
        them as arguments) fail with ``error``, and so does the job id's."""
        for item in request.items:
            setattr(item.future, _MARK, (self, error))  # its dependents fail with it
            if not item.future.done():
                item.future.set_exception(error)
        if request.job_id is not None and not request.job_id.done():
            request.job_id.set_exception(error)

    def _unpark(self) -> None:
        """Futures were accepted (or refused): look at the parked requests again."""
        parked, self._parked = self._parked, []
        for request in parked:
            self._queue(request)

    def _frame(self, request: _Request, items: list[_Item]) -> int:
        """Build one submit frame, remember it until it is accepted, return its ref."""
        ref = next(self._refs)
        head = _encoder.encode(
            {
                "type": "submit",
                "ref": ref,
                "job_key": request.job_key,
                "client_id": self.client_id,
                "op": request.op,
                "options": request.options,
            }
        )
        frame = head[:-1] + b',"args":[' + b",".join(i.encoded for i in items) + b"]}"
        self._pending[ref] = _Pending(request.job_key, items, request.job_id, frame.decode())
        return ref

    async def _send(self) -> None:
        """Send submit frames in order, each once per connection (a lost connection's
        unaccepted frames are queued again by the reconnect)."""
        while True:
            ref = await self._outgoing.get()
            pending = self._pending.get(ref)
            if pending is None or pending.sent_on == self._connection or self._ws is None:
                continue
            pending.sent_on = self._connection
            try:
                await self._ws.send(pending.frame)
            except websockets.ConnectionClosed:
                continue  # the receiver reconnects and queues it again

    async def cancel(self, job_id: int) -> None:
        """Ask the coordinator to cancel job ``job_id``."""
        if self._ws is None:
            raise ConnectionLost("not connected")
        try:
            await self._ws.send(encode_client_message(CancelJob(job_id=job_id)).decode())
        except websockets.ConnectionClosed:
            raise ConnectionLost("the connection closed; try again once it is back") from None

    # --- receiving (loop) ----------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            assert self._ws is not None
            try:
                async for frame in self._ws:
                    self._on_frame(frame)
            except websockets.ConnectionClosed:
                pass
            if self._closing:
                return
            try:
                reconnected = await self._reconnect()
            except AuthError as exc:  # the coordinator came back with another token
                self._fail_all(exc)
                return
            if not reconnected:
                self._fail_all(ConnectionLost(f"gave up after {self.reconnect_timeout:g} s"))
                return

    def _on_frame(self, frame: str | bytes) -> None:
        message = decode_coordinator_message(frame)
        match message:
            case Accepted():
                self._accepted(message)
            case Done():
                self._done(message)
            case Cancelled():
                self._cancelled(message)
            case ClientError():
                self._refused(message)

    async def _reconnect(self) -> bool:
        """Connect again: to the next coordinator of the list, in turn, ending each round with
        the one lost (it may be restarting); then ask for what was missed and send again what
        was not accepted. False if the time ran out; AuthError if, in one round, every
        coordinator refused the token."""
        lost = self.current
        count = len(self.coordinators)
        others = f" or to another of {count}" if count > 1 else ""
        log.warning("lost the coordinator at %s; reconnecting%s", self.ws_url, others)
        deadline = self.loop.time() + self.reconnect_timeout
        delay = 0.25
        while self.loop.time() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - self.loop.time())))
            delay = min(delay * 2, 5.0)
            refused: list[AuthError] = []
            start = self.current
            for step in range(1, count + 1):
                if self.loop.time() >= deadline:
                    break
                try:
                    await self._open((start + step) % count)
                except AuthError as exc:
                    refused.append(exc)
                    continue
                except ConnectionLost:
                    continue
                if not await self._resume():
                    continue
                if self.current == lost:
                    log.warning("reconnected to %s", self.ws_url)
                else:
                    moved_from = self.coordinators[lost].ws
                    log.warning("moved from %s to the coordinator at %s", moved_from, self.ws_url)
                return True
            if len(refused) == count:
                raise refused[-1]
        return False

    async def _resume(self) -> bool:
        """On a new connection: ``watch`` the jobs and unfinished tasks (the coordinator
        pushes what was missed), then queue again every submit not yet accepted. False if
        the connection closed meanwhile."""
        assert self._ws is not None
        watch = Watch(job_ids=sorted(set(self.jobs.values())), task_ids=sorted(self._tasks))
        try:
            await self._ws.send(encode_client_message(watch).decode())
        except websockets.ConnectionClosed:
            return False
        for ref in sorted(self._pending):
            self._outgoing.put_nowait(ref)
        return True

    def _accepted(self, message: Accepted) -> None:
        pending = self._pending.pop(message.ref, None)
        if pending is None:
            return  # accepted twice (sent again after a reconnect): the first one counted
        self.jobs[pending.job_key] = message.job_id
        ids = self._job_tasks.setdefault(message.job_id, set())
        for offset, item in enumerate(pending.items):
            task_id = message.first_task_id + offset
            item.job_id = message.job_id
            setattr(item.future, _MARK, (self, task_id))
            self._tasks[task_id] = item
            ids.add(task_id)
        if pending.job_id is not None and not pending.job_id.done():
            pending.job_id.set_result(message.job_id)
        if self._parked:
            self._unpark()

    def _done(self, message: Done) -> None:
        for record in message.results:
            item = self._finished(record.job_id, record.task_id)
            if item is None or item.future.done():
                continue
            ref = _result_ref(record.result) if self.fetch is not None else None
            if ref is None:
                item.future.set_result(record.result)
                continue
            fetching = asyncio.ensure_future(self._fetch(item, ref))
            self._fetches.add(fetching)
            fetching.add_done_callback(self._fetches.discard)
        for failure in message.failures:
            item = self._finished(failure.job_id, failure.task_id)
            if item is not None and not item.future.done():
                error = TaskError(
                    item.op, item.args, failure.reasons, failure.task_id, failure.job_id
                )
                item.future.set_exception(error)

    async def _fetch(self, item: _Item, ref: Ref) -> None:
        """Resolve ``item``'s future with the content of its result kept as a blob."""
        assert self.fetch is not None
        try:
            value = await asyncio.to_thread(self.fetch, self.endpoint, ref)
        except asyncio.CancelledError:  # the client was closed
            item.future.cancel()
            raise
        except Exception as exc:  # a wrong blob (not JSON) fails this future, never hangs it
            error = (
                exc
                if isinstance(exc, BrowsergridError)
                else BrowsergridError(f"the result kept as blob {ref.sha256} is unreadable: {exc}")
            )
            if not item.future.done():
                item.future.set_exception(error)
            return
        if not item.future.done():
            item.future.set_result(value)

    def _finished(self, job_id: int, task_id: int) -> _Item | None:
        """The item of a task that ended, now forgotten; None for a task not waited for
        (its outcome came already: a coordinator may push it again after a reconnect) or
        one of another job."""
        item = self._tasks.get(task_id)
        if item is None or item.job_id != job_id:
            return None
        del self._tasks[task_id]
        self._job_tasks.get(job_id, set()).discard(task_id)
        return item

    def _cancelled(self, message: Cancelled) -> None:
        for task_id in message.task_ids:
            item = self._finished(message.job_id, task_id)
            if item is not None and not item.future.done():
                item.future.cancel()

    def _refused(self, message: ClientError) -> None:
        pending = self._pending.pop(message.ref, None) if message.ref is not None else None
        if pending is None:
            log.warning("coordinator says %s: %s", message.code, message.message)
            return
        self._fail_request(pending, SubmitError(message.code, message.message))
        if self._parked:
            self._unpark()

    def _cancel_all(self) -> None:
        """The user closed the client: nobody waits for what is pending any more."""
        self._lost = ConnectionLost("the client was closed")
        for fetching in self._fetches:
            fetching.cancel()
        for pending in self._pending.values():
            for item in pending.items:
                item.future.cancel()
            if pending.job_id is not None:
                pending.job_id.cancel()
        for item in self._tasks.values():
            item.future.cancel()
        for request in self._parked:
            for item in request.items:
                item.future.cancel()
            if request.job_id is not None:
                request.job_id.cancel()
        self._pending.clear()
        self._tasks.clear()
        self._parked.clear()

    def _fail_all(self, cause: BaseException) -> None:
        if self._lost is not None:
            return
        self._lost = cause
        error: BrowsergridError
        if isinstance(cause, AuthError):
            error = cause
        else:
            where = ", ".join(endpoint.ws for endpoint in self.coordinators)
            plural = "s" if len(self.coordinators) > 1 else ""
            error = ConnectionLost(
                f"lost the coordinator{plural} at {where} ({cause}); jobs go on there"
            )
        waiting = [item for p in self._pending.values() for item in p.items]
        for item in waiting:
            setattr(item.future, _MARK, (self, error))  # never accepted: their dependents fail
        waiting += list(self._tasks.values())
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(error)
        for pending in self._pending.values():
            if pending.job_id is not None and not pending.job_id.done():
                pending.job_id.set_exception(error)
        for request in self._parked:
            self._fail_request(request, error)
        self._pending.clear()
        self._tasks.clear()
        self._parked.clear()


def _result_ref(result: Any) -> Ref | None:
    """The ref a result is, when the worker kept it as a blob; None for any other result
    (a malformed ref included: it is handed over as it came)."""
    try:
        return result_ref(result)
    except ValueError:
        return None
