"""Messages between a submitting client and the coordinator, on ``/client`` (docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from browsergrid.errors import ProtocolError
from browsergrid.protocol._messages import MAX_DEPTH, nested_too_deep
from browsergrid.protocol._messages import classify_frame as _classify

_Name = Annotated[str, msgspec.Meta(max_length=200)]
_OpName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MAX_REDUNDANCY: Final = 10
"""The largest ``redundancy`` a job may ask for."""
_ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class SubmitOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Options of a new job; ignored when tasks are added to a job that exists."""

    name: _Name = ""
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    lease_timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    redundancy: Annotated[int, msgspec.Meta(ge=1, le=MAX_REDUNDANCY)] = 1
    """Agreeing results from distinct workers each task needs (1: the first result)."""
    max_replicas: Annotated[int, msgspec.Meta(ge=1, le=4 * MAX_REDUNDANCY)] | None = None
    """Results gathered at most before a task without a quorum fails (2 * redundancy + 1)."""
    adaptive: bool = False
    """With redundancy >= 2: accept one result from an established worker, with spot checks."""


def submit_options(**fields: Any) -> SubmitOptions:
    """SubmitOptions checked now, as the coordinator will check them; raises ValueError
    naming the option that is wrong (e.g. ``redundancy=0`` or ``adaptive`` alone)."""
    try:
        options = msgspec.convert(fields, SubmitOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad job option: {exc}") from None
    if options.max_replicas is not None and options.max_replicas < options.redundancy:
        raise ValueError("bad job option: max_replicas must be at least redundancy")
    if options.adaptive and options.redundancy < 2:
        raise ValueError("bad job option: adaptive replication needs redundancy of at least 2")
    return options


# --- client to coordinator -------------------------------------------------------------


class Submit(msgspec.Struct, tag_field="type", tag="submit", frozen=True):
    """Queue ``op`` once per item of ``args``, in the job this connection calls ``job_key``
    (created by its first submit). Answered by ``accepted`` with the same ``ref``."""

    ref: int
    job_key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    op: _OpName
    args: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
    options: SubmitOptions = SubmitOptions()
    client_id: _ClientId | None = None  # with job_key, finds the job again after a reconnect


class Watch(msgspec.Struct, tag_field="type", tag="watch", frozen=True):
    """After a reconnect: push the outcomes of ``task_ids`` that already ended, and those of
    ``job_ids`` from now on."""

    job_ids: Annotated[list[int], msgspec.Meta(max_length=10_000)]
    task_ids: list[int]


class CancelJob(msgspec.Struct, tag_field="type", tag="cancel", frozen=True):
    """Cancel the unfinished tasks of a job; answered by ``cancelled``."""

    job_id: int


ClientMessage = Submit | Watch | CancelJob
_CLIENT_TYPES: Final = frozenset({"submit", "watch", "cancel"})
_client_decoder: Final = msgspec.json.Decoder(ClientMessage)


def decode_client_message(frame: str | bytes) -> ClientMessage:
    """Decode one frame from a client; raises ProtocolError naming what is wrong."""
    if nested_too_deep(frame):
        raise ProtocolError("bad_json", f"frame nests arrays or objects deeper than {MAX_DEPTH}")
    try:
        message: ClientMessage = _client_decoder.decode(frame)
        return message
    except msgspec.ValidationError as exc:
        raise _classify(frame, str(exc), _CLIENT_TYPES, about="ref") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    except UnicodeError:  # a str with a lone surrogate: no WebSocket text frame holds one
        raise ProtocolError("bad_json", "frame is not valid UTF-8 text") from None


# --- coordinator to client -------------------------------------------------------------


class Accepted(msgspec.Struct, tag_field="type", tag="accepted", frozen=True):
    """The tasks of submit ``ref`` are queued in ``job_id`` with ids ``first_task_id`` ..
    ``first_task_id + count - 1``, in the order of ``args``."""

    ref: int
    job_id: int
    first_task_id: int
    count: int


Verdict = Literal["unchecked", "quorum", "trusted"]
"""How a result was accepted: ``unchecked`` (the job asked for no validation: the first
result), ``quorum`` (``redundancy`` workers agreed on it), ``trusted`` (adaptive
replication: one result from an established worker, not picked for a spot check)."""


class Replica(msgspec.Struct, frozen=True, omit_defaults=True):
    """One worker's result for a replicated task: did it agree with the accepted result?"""

    worker_id: int
    worker_key: str | None
    agreed: bool
    duration_ms: float
    result: Any = None  # what a dissenting worker reported (left out when it agreed)


class ResultRecord(msgspec.Struct, frozen=True):
    """One finished task, as clients and the HTTP API see it, with its provenance."""

    task_id: int
    job_id: int
    index: int
    result: Any
    worker_id: int  # the connection that computed it
    attempts: int  # leases granted, this one included
    duration_ms: float  # compute time the worker reported
    worker_key: str | None = None  # the worker's lasting identity, when it has one
    lease_ms: float | None = None  # from the lease to the result, measured by the coordinator
    finished_at: float | None = None  # Unix time
    verdict: Verdict | None = None  # how it was accepted (None: stored by an older version)
    replicas: list[Replica] = []  # every result gathered for it, when it was replicated


class FailureRecord(msgspec.Struct, frozen=True):
    """One task that failed for good; ``reasons`` has one line per failed attempt."""

    task_id: int
    job_id: int
    index: int
    reasons: list[str]
    finished_at: float | None = None  # Unix time


class Done(msgspec.Struct, tag_field="type", tag="done", frozen=True):
    """Results and failures of tasks this client submitted, as they arrive."""

    results: list[ResultRecord] = []
    failures: list[FailureRecord] = []


class Cancelled(msgspec.Struct, tag_field="type", tag="cancelled", frozen=True):
    """Job ``job_id`` was cancelled; ``task_ids`` will never finish."""

    job_id: int
    task_ids: list[int]


class ClientError(msgspec.Struct, tag_field="type", tag="error", frozen=True):
    """A request could not be carried out; ``ref`` names the submit when it was one."""

    code: str
    message: str
    ref: int | None = None


CoordinatorMessage = Accepted | Done | Cancelled | ClientError
_COORDINATOR_TYPES: Final = frozenset({"accepted", "done", "cancelled", "error"})
_coordinator_decoder: Final = msgspec.json.Decoder(CoordinatorMessage)
_encoder: Final = msgspec.json.Encoder()


def encode_client_message(message: ClientMessage | CoordinatorMessage | SubmitOptions) -> bytes:
    """Encode any message of this module as JSON (send it as a text frame)."""
    return _encoder.encode(message)


def decode_coordinator_message(frame: str | bytes) -> CoordinatorMessage | None:
    """Decode a frame from the coordinator; None for a type this version does not know.

    Raises ProtocolError (``bad_json`` or ``bad_message``) for a frame that cannot be used.
    """
    try:
        message: CoordinatorMessage = _coordinator_decoder.decode(frame)
        return message
    except msgspec.ValidationError as exc:
        error = _classify(frame, str(exc), _COORDINATOR_TYPES)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"frame is not valid JSON: {exc}") from None
    except UnicodeError:  # a str with a lone surrogate: no WebSocket text frame holds one
        raise ProtocolError("bad_json", "frame is not valid UTF-8 text") from None
    if error.code == "unknown_type":
        return None  # a newer coordinator's message: ignore it
    raise error
