"""Message types of protocol version 1 and their JSON encoding (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Final

import msgspec

from browsergrid.errors import ProtocolError

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64
"""Arrays and objects nest at most this deep in a frame (the frame's own object is the
first level): far below Python's recursion limit, so no value a peer sends can break a
decoder, a log line or a ``repr`` downstream."""

CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_HEARTBEAT_TIMEOUT: Final = 1011

TaskId = int | str
"""Opaque to workers: they echo it back exactly as received."""

_Agent = Annotated[str, msgspec.Meta(max_length=512)]
_OpName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Digest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]  # a blob's SHA-256
MAX_HOLDS: Final = 4096
"""Blobs one ``hello`` or ``holds`` frame may name (in each of ``add`` and ``drop``)."""
_RESERVED_TASK_MEMBERS: Final = frozenset({"type", "task_id", "op"})


# --- worker to coordinator -------------------------------------------------------------


class WorkerEnvironments(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What Python environments a worker runs (docs/protocol.md, "Environments"); a
    ``hello`` without it means ``{"native": false, "new": true, "ready": []}`` (a tab)."""

    native: bool = False  # runs environments with compiled code
    new: bool = True  # builds environments it does not have yet
    ready: Annotated[list[_Digest], msgspec.Meta(max_length=MAX_HOLDS)] = []  # env ids it has


class Hello(msgspec.Struct, tag_field="type", tag="hello", frozen=True):
    """A browsergrid worker introduces itself; answer with ``welcome``."""

    protocol: int
    agent: _Agent
    ops: Annotated[list[_OpName], msgspec.Meta(min_length=1, max_length=64)]
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)]
    prefetch: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 1
    worker_key: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
        | None
    ) = None
    # ops of ``ops`` with a start-up cost until the worker's first task of them ends
    cold: Annotated[list[_OpName], msgspec.Meta(max_length=64)] = []
    # blobs it has at hand (docs/protocol.md, "Blobs"): tasks reading them come to it first
    holds: Annotated[list[_Digest], msgspec.Meta(max_length=MAX_HOLDS)] = []
    # the Python environments it runs: which tasks with an environment it may be sent
    environments: WorkerEnvironments | None = None


class Result(msgspec.Struct, tag_field="type", tag="result", frozen=True):
    """The exercise's result message: the outcome of one task."""

    task_id: TaskId
    result: Any
    duration_ms: Annotated[float, msgspec.Meta(ge=0)]
    agent: _Agent | None = None


class ResultItem(msgspec.Struct, frozen=True):
    """One result inside a ``results`` batch."""

    task_id: TaskId
    result: Any
    duration_ms: Annotated[float, msgspec.Meta(ge=0)]


class Results(msgspec.Struct, tag_field="type", tag="results", frozen=True):
    """Several results in one frame (a worker that finished several tasks at once)."""

    results: Annotated[list[ResultItem], msgspec.Meta(min_length=1)]
    agent: _Agent | None = None


class TaskError(msgspec.Struct, tag_field="type", tag="error", frozen=True):
    """A worker could not run a task; ``message`` says why."""

    task_id: TaskId
    message: Annotated[str, msgspec.Meta(max_length=65536)]


class Capacity(msgspec.Struct, tag_field="type", tag="capacity", frozen=True):
    """An introduced worker changes what it gives (a volunteer's controls): ``concurrency``
    tasks at once (0: paused), ``prefetch`` more waiting (None: as before), each at
    ``share`` of a core."""

    concurrency: Annotated[int, msgspec.Meta(ge=0, le=1024)]
    prefetch: Annotated[int, msgspec.Meta(ge=0, le=1024)] | None = None
    share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0


class Holds(msgspec.Struct, tag_field="type", tag="holds", frozen=True):
    """A worker's blobs changed: it has ``add`` at hand now, and no longer ``drop``."""

    add: Annotated[list[_Digest], msgspec.Meta(max_length=MAX_HOLDS)] = []
    drop: Annotated[list[_Digest], msgspec.Meta(max_length=MAX_HOLDS)] = []


class HandBack(msgspec.Struct, tag_field="type", tag="hand_back", frozen=True):
    """A worker gives back tasks it holds and will not run (paused, closing)."""

    task_ids: Annotated[list[TaskId], msgspec.Meta(min_length=1, max_length=4096)]


WorkerMessage = Hello | Result | Results | TaskError | Capacity | HandBack | Holds
_WORKER_TYPES: Final = frozenset(
    {"hello", "result", "results", "error", "capacity", "hand_back", "holds"}
)
_worker_decoder: Final = msgspec.json.Decoder(WorkerMessage)


def decode_worker_message(frame: str | bytes) -> WorkerMessage:
    """Decode one text frame sent by a worker.

    Raises ProtocolError whose ``code`` is the error code to send back (see protocol.md);
    after it the connection can go on.
    """
    if nested_too_deep(frame):
        raise _too_deep()
    try:
        message: WorkerMessage = _worker_decoder.decode(frame)
        return message
    except msgspec.ValidationError as exc:
        raise classify_frame(frame, str(exc), _WORKER_TYPES, about="task_id") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - nested_too_deep refused it already
        raise _too_deep() from None
    except UnicodeError:  # a str with a lone surrogate: no WebSocket text frame holds one
        raise _not_text() from None


def _not_text() -> ProtocolError:
    return ProtocolError("bad_json", "frame is not valid UTF-8 text")


def _too_deep() -> ProtocolError:
    return ProtocolError("bad_json", f"frame nests arrays or objects deeper than {MAX_DEPTH}")


_STRINGS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_STRINGS_B: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")
_NOT_BRACKETS_B: Final = re.compile(rb"[^\[\]{}]+")


def nested_too_deep(frame: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """True if ``frame`` (JSON text) nests arrays or objects deeper than ``limit``.
    Cheap for the usual frame: only one with more than ``limit`` opening brackets is
    scanned (strings left out), before it is decoded."""
    if isinstance(frame, str):
        if frame.count("[") + frame.count("{") <= limit:
            return False
        brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", frame))
    else:
        if frame.count(b"[") + frame.count(b"{") <= limit:
            return False
        brackets = _NOT_BRACKETS_B.sub(b"", _STRINGS_B.sub(b"", frame)).decode("ascii")
    depth = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def classify_frame(
    frame: str | bytes, detail: str, known: frozenset[str], about: str | None = None
) -> ProtocolError:
    """Name what is wrong with a JSON frame that failed typed decoding (error path only);
    with ``about``, the error carries that member of the frame when it is an integer."""
    try:
        value = msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:  # typed decoding can stop before a syntax error
        return ProtocolError("bad_json", f"frame is not valid JSON: {exc}")
    except RecursionError:
        return _too_deep()
    if not isinstance(value, dict):
        return ProtocolError("bad_json", "a frame must hold one JSON object")
    member = value.get(about) if about is not None else None
    named = member if isinstance(member, int) and not isinstance(member, bool) else None
    kind = value.get("type")
    if not isinstance(kind, str):
        return ProtocolError("bad_message", "member 'type' (a string) is missing", named)
    if kind not in known:
        return ProtocolError("unknown_type", f"unknown message type {kind!r}", named)
    return ProtocolError("bad_message", f"bad {kind!r} message: {detail}", named)


# --- coordinator to worker -------------------------------------------------------------


class Task(msgspec.Struct, frozen=True):
    """A task for a worker: run ``op`` with ``args`` and answer ``result`` or ``error``."""

    task_id: TaskId
    op: str
    args: dict[str, Any]


class Tasks(msgspec.Struct, frozen=True):
    """Several tasks in one ``tasks`` frame, in the order they were leased."""

    tasks: list[Task]


class Ack(msgspec.Struct, frozen=True):
    """The coordinator stored the results of ``task_ids``."""

    task_ids: list[TaskId]


class Cancel(msgspec.Struct, frozen=True):
    """Drop ``task_id``: it was taken back; a result for it would be ignored."""

    task_id: TaskId


class Limits(msgspec.Struct, frozen=True):
    """Limits a worker must respect, sent in ``welcome``."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    heartbeat_interval_s: float = 20.0
    heartbeat_timeout_s: float = 20.0


class Welcome(msgspec.Struct, tag_field="type", tag="welcome", frozen=True, omit_defaults=True):
    """The coordinator's answer to ``hello``."""

    protocol: int
    worker_id: int
    server: str
    limits: Limits
    blob_key: str | None = None  # for blob requests (docs/protocol.md, "Blobs"); None: old


class ServerError(msgspec.Struct, tag_field="type", tag="error", frozen=True):
    """The coordinator could not use a frame; ``code`` says why (protocol.md lists them)."""

    code: str
    message: str
    task_id: TaskId | None = None


ServerMessage = Task | Tasks | Cancel | Ack | Welcome | ServerError
_welcome_decoder: Final = msgspec.json.Decoder(Welcome)
_server_error_decoder: Final = msgspec.json.Decoder(ServerError)


def decode_server_message(frame: str | bytes) -> ServerMessage | None:
    """Decode one text frame sent by a coordinator; None for a type this version ignores.

    Raises ProtocolError (``bad_json`` or ``bad_message``) for a frame that cannot be used.
    """
    try:
        value = msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    except UnicodeError:  # a str with a lone surrogate: no WebSocket text frame holds one
        raise _not_text() from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_json", "a frame must hold one JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "member 'type' (a string) is missing")
    try:
        if kind == "task":
            return _task_from_dict(value)
        if kind == "tasks":
            items = value.get("tasks")
            if not isinstance(items, list) or not all(
                isinstance(t, dict) and t.get("type") == "task" for t in items
            ):
                raise ProtocolError(
                    "bad_message", "bad 'tasks' message: 'tasks' must be a list of task objects"
                )
            return Tasks([_task_from_dict(item) for item in items])
        if kind == "ack":
            ids = value.get("task_ids")
            if not isinstance(ids, list) or not all(
                isinstance(i, int | str) and not isinstance(i, bool) for i in ids
            ):
                raise ProtocolError("bad_message", "bad 'ack' message: 'task_ids' must be a list")
            return Ack(ids)
        if kind == "cancel":
            task_id = value.get("task_id")
            if isinstance(task_id, bool) or not isinstance(task_id, int | str):
                raise ProtocolError(
                    "bad_message", "bad 'cancel' message: 'task_id' must be an integer or string"
                )
            return Cancel(task_id)
        if kind == "welcome":
            return _welcome_decoder.decode(frame)
        if kind == "error":
            return _server_error_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad_message", f"bad {kind!r} message: {exc}") from None
    return None


def _task_from_dict(value: dict[str, Any]) -> Task:
    task_id = value.get("task_id")
    op = value.get("op")
    if isinstance(task_id, bool) or not isinstance(task_id, int | str):
        raise ProtocolError(
            "bad_message", "bad 'task' message: 'task_id' must be an integer or string"
        )
    if not isinstance(op, str):
        raise ProtocolError("bad_message", "bad 'task' message: 'op' must be a string")
    args = {k: v for k, v in value.items() if k not in _RESERVED_TASK_MEMBERS}
    return Task(task_id=task_id, op=op, args=args)


# --- encoders --------------------------------------------------------------------------

_encoder: Final = msgspec.json.Encoder()


def public_worker_key(worker_key: str) -> str:
    """The name under which the coordinator shows and keeps a worker's identity: the key's
    prefix (up to its first ``-``, at most 8 characters) and the first 16 hex digits of its
    SHA-256, e.g. ``tab-3f1c9a0e5b7d2468``. The key itself stays a secret between the
    worker and the coordinator, so nobody who reads the dashboard or the API can claim a
    worker's identity (and its reputation)."""
    prefix, dash, _ = worker_key.partition("-")
    shown = f"{prefix}-" if dash and 0 < len(prefix) <= 8 else ""
    return shown + hashlib.sha256(worker_key.encode("utf-8")).hexdigest()[:16]


def check_arg_names(args: dict[str, Any]) -> None:
    """Raise ValueError if an argument name is one the task frame reserves."""
    clash = _RESERVED_TASK_MEMBERS.intersection(args)
    if clash:
        raise ValueError(f"argument names {sorted(clash)} are reserved by the protocol")


def _task_object(task_id: TaskId, op: str, args: dict[str, Any]) -> dict[str, Any]:
    check_arg_names(args)
    return {"type": "task", "op": op, "task_id": task_id, **args}


def encode_task(task_id: TaskId, op: str, args: dict[str, Any]) -> str:
    """The exercise's flat task frame: the op's arguments beside type, op and task_id."""
    return _encoder.encode(_task_object(task_id, op, args)).decode()


def encode_tasks(tasks: list[tuple[TaskId, str, dict[str, Any]]]) -> str:
    """Several tasks for one browsergrid worker in one ``tasks`` frame."""
    items = [_task_object(task_id, op, args) for task_id, op, args in tasks]
    return _encoder.encode({"type": "tasks", "tasks": items}).decode()


def encode_task_frames(
    tasks: list[tuple[TaskId, str, dict[str, Any]]], limit: int = MAX_FRAME_BYTES
) -> list[str]:
    """Several tasks for one browsergrid worker in as few ``tasks`` frames as keep within
    ``limit`` bytes each (a worker closes a connection that sends it a larger one); a task
    that goes alone gets a ``task`` frame."""
    if len(tasks) > 1:  # the usual batch fits: one encoding, as encode_tasks makes it
        whole = encode_tasks(tasks)
        if (len(whole) <= limit and whole.isascii()) or len(whole.encode()) <= limit:
            return [whole]
    frames: list[str] = []
    parts: list[bytes] = []
    size = len(_TASKS_HEAD) + 2
    for task_id, op, args in tasks:
        part = _encoder.encode(_task_object(task_id, op, args))
        if parts and size + len(part) > limit:
            frames.append(_tasks_frame(parts))
            parts, size = [], len(_TASKS_HEAD) + 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        frames.append(_tasks_frame(parts))
    return frames


_TASKS_HEAD: Final = b'{"type":"tasks","tasks":['


def _tasks_frame(parts: list[bytes]) -> str:
    if len(parts) == 1:
        return parts[0].decode()
    return (_TASKS_HEAD + b",".join(parts) + b"]}").decode()


def encode_ack(task_ids: list[int]) -> str:
    """Tell a worker that its results for these tasks are stored: it may forget them."""
    return _encoder.encode({"type": "ack", "task_ids": task_ids}).decode()


def encode_cancel(task_id: TaskId) -> str:
    """Tell a worker to drop a task that was taken back."""
    return _encoder.encode({"type": "cancel", "task_id": task_id}).decode()


def encode_welcome(worker_id: int, server: str, limits: Limits, blob_key: str | None = None) -> str:
    """The answer to ``hello``; ``blob_key`` is the connection's key for blob requests."""
    message = Welcome(
        protocol=PROTOCOL_VERSION,
        worker_id=worker_id,
        server=server,
        limits=limits,
        blob_key=blob_key,
    )
    return _encoder.encode(message).decode()


def encode_server_error(code: str, message: str, task_id: TaskId | None = None) -> str:
    """An error frame telling a worker what was wrong with its frame."""
    return _encoder.encode(ServerError(code=code, message=message, task_id=task_id)).decode()


def encode_capacity(concurrency: int, prefetch: int | None = None, share: float = 1.0) -> str:
    """A worker's new capacity (``concurrency`` 0: paused); send only after ``hello``."""
    message: dict[str, Any] = {"type": "capacity", "concurrency": concurrency}
    if prefetch is not None:
        message["prefetch"] = prefetch
    if share != 1.0:
        message["share"] = share
    return _encoder.encode(message).decode()


def encode_holds(add: list[str], drop: list[str]) -> str:
    """The blobs a worker has at hand now (``add``) and no longer has (``drop``); send only
    after ``hello``, at most ``MAX_HOLDS`` of each in one frame."""
    return _encoder.encode({"type": "holds", "add": add, "drop": drop}).decode()


def encode_hand_back(task_ids: list[TaskId]) -> str:
    """Tasks this worker holds and gives back unrun."""
    return _encoder.encode({"type": "hand_back", "task_ids": task_ids}).decode()


def encode_hello(
    agent: str,
    ops: list[str],
    concurrency: int,
    prefetch: int = 1,
    worker_key: str | None = None,
    cold: list[str] | None = None,
    holds: list[str] | None = None,
    *,
    environments: dict[str, Any] | None = None,
) -> str:
    """A worker's first frame (``worker_key``, ``cold``, ``holds`` and ``environments``
    only when it has them; ``holds``: at most ``MAX_HOLDS`` blobs; ``environments``: the
    members of ``WorkerEnvironments``)."""
    hello: dict[str, Any] = {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "agent": agent,
        "ops": ops,
        "concurrency": concurrency,
        "prefetch": prefetch,
    }
    if worker_key is not None:
        hello["worker_key"] = worker_key
    if cold:
        hello["cold"] = cold
    if holds:
        hello["holds"] = holds[:MAX_HOLDS]
    if environments is not None:
        hello["environments"] = environments
    return _encoder.encode(hello).decode()


def encode_result(task_id: TaskId, result: Any, duration_ms: float, agent: str | None) -> str:
    """A worker's answer to a task it ran."""
    message = Result(task_id=task_id, result=result, duration_ms=duration_ms, agent=agent)
    return _encoder.encode(message).decode()


def encode_results(results: list[tuple[TaskId, Any, float]], agent: str | None) -> str:
    """Several results of one worker in one ``results`` frame."""
    items = [ResultItem(task_id=t, result=r, duration_ms=d) for t, r, d in results]
    return _encoder.encode(Results(results=items, agent=agent)).decode()


def encode_task_error(task_id: TaskId, message: str) -> str:
    """A worker's answer to a task it could not run."""
    return _encoder.encode(TaskError(task_id=task_id, message=message)).decode()
