"""What a submit must be before anything is queued, and what is stored for it.

``check_tasks`` and ``check_options`` raise ``SubmitError`` with the code the client is
sent (docs/protocol.md, "Client errors"); ``Coordinator.submit`` calls them first, so a
refused submit queues nothing. ``job_info`` and ``task_records`` are what the store keeps.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import msgspec

from browsergrid._console import emit
from browsergrid.config import ServeConfig
from browsergrid.core import Environment, JobOptions, TasksAccepted, TaskSpec
from browsergrid.errors import SubmitError
from browsergrid.ops import PYTHON_OP
from browsergrid.ops._python_function import environment_of, environment_wheels
from browsergrid.protocol import (
    BLOB,
    FUTURE,
    MAX_DEPTH,
    SubmitOptions,
    args_futures,
    check_arg_names,
    nested_too_deep,
    refs_in,
)
from browsergrid.server._blob_store import BlobRefused, DiskBlobs
from browsergrid.store import JobInfo, TaskRecord

events = logging.getLogger("browsergrid.server.events")
_json_encode = msgspec.json.Encoder().encode
_BLOB_MEMBER = f'"{BLOB}"'.encode()
_FUTURE_MEMBER = f'"{FUTURE}"'.encode()
_ARGS_DEPTH = MAX_DEPTH - 3  # a task frame nests its arguments 3 deep: {"tasks": [{...}]}


def check_tasks(
    op: str,
    args: Sequence[dict[str, Any]],
    known_ops: Collection[str],
    config: ServeConfig,
    blob_size: Callable[[str], int | None] = lambda digest: None,
    refs: set[str] | None = None,
    issued: Callable[[int], bool] = lambda task_id: True,
) -> list[TaskSpec]:
    """The tasks of a submit (``op`` once per ``args`` item), or SubmitError
    (``bad_args``, ``unknown_op``, ``args_too_large``, ``unknown_blob``). Every ref of the
    arguments must name a blob held (``blob_size``: its size, None when not held); their
    SHA-256s are added to ``refs``. Every future must name a task handed out already
    (``issued``)."""
    if not args:
        raise SubmitError("bad_args", "a job needs at least one task")
    if op not in known_ops:
        raise SubmitError("unknown_op", f"no worker runs op {op!r}; known ops: {sorted(known_ops)}")
    limit = config.max_args_bytes
    for index, item in enumerate(args):
        try:
            check_arg_names(item)
        except ValueError as exc:
            raise SubmitError("bad_args", str(exc)) from None
        encoded = _json_encode(item)
        if len(encoded) > limit:
            raise SubmitError(
                "args_too_large",
                f"the arguments of task {index} of this submit are over {limit} bytes "
                "as JSON (--max-args-bytes)",
            )
        if nested_too_deep(encoded, _ARGS_DEPTH):  # HTTP bodies are not checked for depth
            raise SubmitError(
                "bad_args",
                f"the arguments of task {index} of this submit nest arrays and objects "
                f"deeper than {_ARGS_DEPTH}: a task frame could not hold them",
            )
        if _BLOB_MEMBER in encoded:  # a cheap test first: most arguments hold no ref
            _check_refs(item, index, blob_size, refs if refs is not None else set())
        if _FUTURE_MEMBER in encoded:
            _check_futures(item, encoded, index, issued)
        if op == PYTHON_OP:
            _check_code(item, index, config.max_environment_bytes)
    return [TaskSpec(op=op, args=item) for item in args]


def task_environment(args: Mapping[str, Any]) -> Environment | None:
    """The environment a task's arguments name, for the scheduler (None: none, or one
    malformed: the submit check refused those)."""
    if "environment" not in args:
        return None
    try:
        found = _environment_facts(args)
    except ValueError:
        return None
    return None if found is None else found[0]


def _check_code(item: dict[str, Any], index: int, limit: int) -> None:
    """A ``python`` task's bundle must be a ref, and its environment well formed and at
    most ``limit`` bytes of wheels (their refs' sizes, checked against the blobs held)."""
    function = item.get("function")
    bundle = function.get("bundle") if isinstance(function, dict) else None
    if bundle is not None and not (isinstance(bundle, dict) and BLOB in bundle):
        raise SubmitError("bad_args", f"task {index} of this submit: a bundle must be a ref")
    try:
        found = _environment_facts(item)
    except ValueError as exc:
        raise SubmitError("bad_args", f"task {index} of this submit: {exc}") from None
    if found is None:
        return
    size = found[1]
    if size > limit:
        raise SubmitError(
            "environment_too_large",
            f"task {index} of this submit needs an environment of {size:,} bytes of wheels; "
            f"this coordinator takes at most {limit:,} (--max-environment-bytes): use fewer "
            "or smaller packages",
        )


_FACTS: OrderedDict[tuple[Any, ...], tuple[Environment, int]] = OrderedDict()
_FACTS_KEPT = 256  # environments remembered: a job's tasks all name one, as a rule


def _environment_facts(args: Mapping[str, Any]) -> tuple[Environment, int] | None:
    """The environment of a task's arguments and its wheels' size in bytes (None: it has
    none); ValueError for a malformed one. Remembered by its wheels' names, hashes and
    sizes, so that the tasks of a job, which name the same wheels, are read once."""
    environment = args.get("environment")
    if environment is None:
        return None
    key: tuple[Any, ...] | None
    try:
        wheels = environment["wheels"]
        key = tuple((name, ref[BLOB], ref["size"]) for name, ref in wheels.items())
        hash(key)
    except (TypeError, KeyError, AttributeError):
        key = None  # malformed: environment_of says how
    if key is not None and (known := _FACTS.get(key)) is not None:
        return known
    found = environment_of(args)
    if found is None:  # pragma: no cover - environment is not None here
        return None
    wheels = environment_wheels(args) or {}
    size = sum(ref["size"] for ref in wheels.values() if isinstance(ref.get("size"), int))
    facts = (Environment(*found), size)
    if key is not None:
        _FACTS[key] = facts
        while len(_FACTS) > _FACTS_KEPT:
            _FACTS.popitem(last=False)
    return facts


def _check_refs(
    item: dict[str, Any], index: int, blob_size: Callable[[str], int | None], refs: set[str]
) -> None:
    try:
        found = list(refs_in(item))
    except ValueError as exc:
        raise SubmitError("bad_args", f"task {index} of this submit: {exc}") from None
    for ref in found:
        size = blob_size(ref.sha256)
        if size is None:
            raise SubmitError(
                "unknown_blob",
                f"task {index} of this submit refers to blob {ref.sha256}, which this "
                "coordinator does not hold: upload it first (Client.put, POST /api/blobs)",
            )
        if size != ref.size:
            raise SubmitError(
                "unknown_blob",
                f"task {index} of this submit refers to blob {ref.sha256} with size "
                f"{ref.size}, but it holds {size} bytes",
            )
        refs.add(ref.sha256)


def ref_digests(args: Sequence[dict[str, Any]]) -> set[str]:
    """The SHA-256s of the blobs a submit's arguments refer to (malformed refs aside: the
    check refuses them)."""
    found: set[str] = set()
    for item in args:
        if isinstance(item, dict) and any(isinstance(v, dict | list) for v in item.values()):
            with contextlib.suppress(ValueError):
                found.update(ref.sha256 for ref in refs_in(item))
    return found


def _check_futures(
    item: dict[str, Any], encoded: bytes, index: int, issued: Callable[[int], bool]
) -> None:
    try:
        found = args_futures(item, encoded)
    except ValueError as exc:
        raise SubmitError("bad_args", f"task {index} of this submit: {exc}") from None
    for task_id in sorted(found):
        if not issued(task_id):
            raise SubmitError(
                "bad_args",
                f"task {index} of this submit depends on task {task_id}, which does not "
                "exist yet: a future names a task submitted before",
            )


async def sources_as_blobs(tasks: Sequence[TaskSpec], blobs: DiskBlobs) -> set[str]:
    """Turn the function source of each ``python`` task into a ref to a blob holding it
    (JSON text of the string), so that a source travels once per worker, not once per
    task: workers resolve the ref, and keep the blob. A source that finds no room in the
    store stays inline. Returns the SHA-256s of the blobs referred to."""
    made: dict[str, dict[str, Any] | None] = {}
    for task in tasks:
        function = task.args.get("function")
        source = function.get("source") if isinstance(function, dict) else None
        if not isinstance(source, str):
            continue
        if source not in made:
            try:
                made[source] = (await blobs.keep(_json_encode(source), "json")).to_json()
            except BlobRefused:
                made[source] = None
        ref = made[source]
        if ref is not None:
            assert isinstance(function, dict)
            task.args["function"] = {**function, "source": ref}
    return {ref[BLOB] for ref in made.values() if ref is not None}


def check_options(options: SubmitOptions, held: int, count: int, config: ServeConfig) -> JobOptions:
    """The scheduler's options for a submit of ``count`` tasks to a job holding ``held``,
    or SubmitError (``bad_options``, ``too_many_tasks``)."""
    try:
        job_options = JobOptions(
            name=options.name,
            priority=options.priority,
            lease_timeout_s=options.lease_timeout,
            max_attempts=options.max_attempts,
            redundancy=options.redundancy,
            max_replicas=options.max_replicas,
            adaptive=options.adaptive,
        )
    except ValueError as exc:
        raise SubmitError("bad_options", str(exc)) from None
    if held + count > config.max_tasks_per_job:
        raise SubmitError(
            "too_many_tasks",
            f"a job holds at most {config.max_tasks_per_job} tasks "
            f"(--max-tasks-per-job); this one would hold {held + count}",
        )
    return job_options


def task_records(ack: TasksAccepted, tasks: Sequence[TaskSpec]) -> list[TaskRecord]:
    """The tasks ``ack`` accepted, as the store keeps them."""
    return [
        TaskRecord(
            task_id=ack.first_task_id + offset,
            job_id=ack.job_id,
            index=ack.first_index + offset,
            op=task.op,
            args=task.args,
        )
        for offset, task in enumerate(tasks)
    ]


def job_info(
    job_id: int, op: str, options: SubmitOptions, submitted_by: str, client_key: str | None
) -> JobInfo:
    """A new job, as the store keeps it."""
    return JobInfo(
        job_id=job_id,
        name=options.name,
        op=op,
        priority=options.priority,
        created_at=time.time(),
        submitted_by=submitted_by,
        lease_timeout=options.lease_timeout,
        max_attempts=options.max_attempts,
        client_key=client_key,
        redundancy=options.redundancy,
        max_replicas=options.max_replicas,
        adaptive=options.adaptive,
    )


def log_submitted(ack: TasksAccepted, op: str, options: SubmitOptions) -> None:
    emit(
        events,
        "job_submitted",
        f"job {ack.job_id} submitted: {ack.count} x {op}"
        + (f" ({options.name})" if options.name else ""),
        job_id=ack.job_id,
        op=op,
        count=ack.count,
        name=options.name,
    )


def job_options(info: JobInfo) -> JobOptions:
    """The scheduler's options for a stored job."""
    return JobOptions(
        name=info.name,
        priority=info.priority,
        lease_timeout_s=info.lease_timeout,
        max_attempts=info.max_attempts,
        redundancy=info.redundancy,
        max_replicas=info.max_replicas,
        adaptive=info.adaptive,
    )
