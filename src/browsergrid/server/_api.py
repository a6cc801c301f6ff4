"""The HTTP/JSON API under ``/api``: submit, inspect, stream and cancel jobs; list workers.

FastAPI builds the OpenAPI schema (``/openapi.json``) and the interactive docs (``/docs``)
from the models below.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal, NoReturn, cast

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from browsergrid.core import TaskState, WorkerState
from browsergrid.errors import SubmitError
from browsergrid.protocol import MAX_REDUNDANCY, ResultRecord, SubmitOptions
from browsergrid.server._agents import WorkerKind, describe
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._demo import DEMO
from browsergrid.store import StoreError

_json = msgspec.json.Encoder()

MAX_JOB_ID = 2**63 - 1
"""Job ids run from 1 to this (64-bit integers, as the stores keep them); a path or
``before=`` outside that range gets 400 (SQLite could not even look it up)."""
_ID_RANGE = {"minimum": 1, "maximum": MAX_JOB_ID}

JobId = Annotated[
    int,
    Path(description=f"1 to {MAX_JOB_ID}; others get 400", json_schema_extra=_ID_RANGE),
]


class JobRequest(BaseModel):
    """A job: run ``op`` once per item of ``args``."""

    model_config = ConfigDict(extra="forbid")

    op: str = Field(min_length=1, max_length=64, examples=["monte_carlo_pi"])
    args: list[dict[str, Any]] = Field(
        min_length=1, examples=[[{"samples": 1000000, "seed": 1}, {"samples": 1000000, "seed": 2}]]
    )
    name: str = Field("", max_length=200, description="a label shown in listings")
    priority: int = Field(0, ge=-1000, le=1000, description="higher runs first")
    lease_timeout: float | None = Field(
        None, gt=0, le=86400, description="seconds a worker has per task (default: the op's)"
    )
    max_attempts: int | None = Field(
        None, ge=1, le=100, description="leases a task gets before it fails (default 3)"
    )
    redundancy: int = Field(
        1,
        ge=1,
        le=MAX_REDUNDANCY,
        description="workers of distinct identities that must agree on each result",
    )
    max_replicas: int | None = Field(
        None,
        ge=1,
        le=4 * MAX_REDUNDANCY,
        description="results gathered per task at most before it fails (default 2k+1)",
    )
    adaptive: bool = Field(
        False,
        description="with redundancy >= 2: one result from an established worker is enough, "
        "but for random spot checks",
    )


class JobAccepted(BaseModel):
    """The job was queued; its tasks have ids ``first_task_id`` .. ``+ count - 1``."""

    job_id: int
    first_task_id: int
    count: int


JobStateName = Literal["running", "finished", "cancelled"]


class JobStatus(BaseModel):
    """A job with its task counts by state."""

    job_id: int
    name: str
    op: str
    priority: int
    state: JobStateName
    total: int
    queued: int
    leased: int
    done: int
    failed: int
    cancelled: int
    created_at: float = Field(description="Unix time")
    finished_at: float | None = Field(description="Unix time, once finished or cancelled")
    rate: float = Field(description="tasks finished per second since the job was created")
    eta_s: float | None = Field(description="seconds until the last task, at that rate")
    redundancy: int = Field(1, description="workers that must agree on each result")
    adaptive: bool = Field(False, description="established workers' results accepted alone")
    waiting: int = Field(
        0, description="tasks waiting for the tasks they depend on (futures as arguments)"
    )


class WorkerStatus(BaseModel):
    """A connected worker."""

    worker_id: int
    kind: WorkerKind
    browser: str | None = Field(description='read from the agent, e.g. "Chrome 131"')
    os: str | None = Field(description='read from the agent, e.g. "Linux"')
    agent: str | None
    address: str
    connected_at: float = Field(description="Unix time")
    state: str
    ops: list[str]
    concurrency: int
    in_flight: int
    tasks_done: int
    failures: int
    speed_ms: float | None = Field(description="duration of its welcome task")
    trusted: bool = Field(description="established: checked results agreed 10 times in a row")
    quarantined: bool = Field(description="its results kept disagreeing: it gets no tasks")


class WorkerHistory(BaseModel):
    """A worker's history, kept across reconnections and restarts."""

    worker_key: str
    agent: str | None
    first_seen: float = Field(description="Unix time")
    last_seen: float = Field(description="Unix time")
    tasks_done: int
    failures: int
    mean_ms: float | None = Field(description="mean compute time per task it reported")
    connected: bool
    valid: int = Field(description="its results a quorum agreed with")
    invalid: int = Field(description="its results a quorum disagreed with")
    error_rate: float = Field(description="estimated share of wrong results (new: 0.1)")
    quarantined: bool = Field(description="its results kept disagreeing: it gets no tasks")
    lost: int = Field(description="leases it lost: errors, passed deadlines, dropped connections")
    loss_rate: float = Field(description="recent share of lost leases (new: 0; slows it down)")


class Problem(BaseModel):
    """What was wrong with a request."""

    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a bad request: the detail says what is wrong"},
    404: {"model": Problem, "description": "no such job"},
    413: {"model": Problem, "description": "too many tasks, arguments or bytes: see the detail"},
    503: {"model": Problem, "description": "the store cannot be used: the detail says why"},
}


class _FiniteJsonRequest(Request):
    """A request whose JSON body may hold finite numbers only: ``NaN``, ``Infinity`` and
    numbers past a float's range (``1e400``) get 400, as the WebSocket API refuses them.
    Python's ``json`` reads them as ``nan`` and ``inf``, which nothing downstream expects
    and no JSON answer can carry. An integer too long for Python to convert gets 400 too,
    and so does a body nested too deep for Python's reader (said as such)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, parse_constant=_not_a_number, parse_float=_finite)
            except json.JSONDecodeError:
                raise  # not JSON: FastAPI answers 422, as for any malformed body
            except RecursionError:  # arrays or objects nested about a thousand deep
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST,
                    "the body nests arrays and objects too deep to be read "
                    f"(Python's limit: {sys.getrecursionlimit()} levels, fewer in practice)",
                ) from None
            except ValueError:  # the only other: an integer past Python's digit limit
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST,
                    "a number in the body is out of range: integers may have at most "
                    f"{sys.get_int_max_str_digits()} digits",
                ) from None
        return self._json


class _FiniteJsonRoute(APIRoute):
    """Routes that read their JSON body with ``_FiniteJsonRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_FiniteJsonRequest(request.scope, request.receive))

        return route


def _not_a_number(name: str) -> NoReturn:
    raise HTTPException(
        status.HTTP_400_BAD_REQUEST,
        f"the body holds {name}, which JSON does not allow: numbers must be finite",
    )


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"the number {_shown(text)} in the body is out of range: numbers must be finite, "
            "at most about 1.8e308",
        )
    return number


def _check_id(name: str, value: int) -> None:
    """400 for an id no job can have (a store could not even look it up)."""
    if not 1 <= value <= MAX_JOB_ID:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{name} must be from 1 to {MAX_JOB_ID}, not {_shown(str(value))}",
        )


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def create_api(coordinator: Coordinator) -> APIRouter:
    """The ``/api`` routes, bound to ``coordinator``."""
    api = APIRouter(prefix="/api", tags=["jobs"], route_class=_FiniteJsonRoute)

    @api.post("/jobs", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
    async def submit_job(request: JobRequest) -> JobAccepted:
        """Queue a job; results can be streamed from ``/api/jobs/{job_id}/results``."""
        options = SubmitOptions(
            name=request.name,
            priority=request.priority,
            lease_timeout=request.lease_timeout,
            max_attempts=request.max_attempts,
            redundancy=request.redundancy,
            max_replicas=request.max_replicas,
            adaptive=request.adaptive,
        )
        try:
            ack = await coordinator.submit(request.op, request.args, options, submitted_by="http")
        except SubmitError as exc:
            raise HTTPException(_submit_status(exc), str(exc)) from None
        return JobAccepted(job_id=ack.job_id, first_task_id=ack.first_task_id, count=ack.count)

    @api.post("/demo", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
    async def run_demo() -> JobAccepted:
        """Queue the demo: a Mandelbrot image in tiles (``mandelbrot_tile``), which the
        dashboard (``/dashboard``) paints tile by tile as results arrive."""
        options = SubmitOptions(name=DEMO.name)
        try:
            ack = await coordinator.submit(
                "mandelbrot_tile", DEMO.tasks(), options, submitted_by="http"
            )
        except SubmitError as exc:
            raise HTTPException(_submit_status(exc), str(exc)) from None
        return JobAccepted(job_id=ack.job_id, first_task_id=ack.first_task_id, count=ack.count)

    @api.get("/jobs", responses={code: _ERRORS[code] for code in (400, 503)})
    async def list_jobs(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[
            int | None,
            Query(
                description=f"only jobs with smaller ids (1 to {MAX_JOB_ID}; others get 400)",
                json_schema_extra=_ID_RANGE,
            ),
        ] = None,
    ) -> list[JobStatus]:
        """Jobs newest first, from the store: they outlive restarts (see --retain)."""
        if before is not None:
            _check_id("before", before)
        try:
            summaries = await coordinator.store.jobs(limit=limit, before=before)
        except StoreError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        return [await _status(coordinator, s.info.job_id) for s in summaries]

    @api.get("/jobs/{job_id}", responses=_ERRORS)
    async def get_job(job_id: JobId) -> JobStatus:
        """One job with its counts by state, rate and ETA."""
        return await _status(coordinator, job_id)

    @api.post("/jobs/{job_id}/cancel", responses=_ERRORS)
    async def cancel_job(job_id: JobId) -> JobStatus:
        """Cancel the job's unfinished tasks; finished ones keep their results."""
        before = await _status(coordinator, job_id)  # 404 for an unknown job
        if before.state == "running":
            try:
                await coordinator.cancel(job_id)
            except StoreError as exc:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
            except KeyError:
                pass  # it ended meanwhile
        return await _status(coordinator, job_id)

    @api.get(
        "/jobs/{job_id}/results",
        responses={
            **_ERRORS,
            200: {
                "description": "one JSON object per line: a result "
                '(`"status": "done"`) or a failure (`"status": "failed"`), in the order '
                "they arrived",
                "content": {"application/x-ndjson": {}},
            },
        },
        response_class=StreamingResponse,
    )
    async def job_results(
        job_id: JobId,
        follow: Annotated[
            bool, Query(description="keep the stream open until the job finishes")
        ] = False,
    ) -> StreamingResponse:
        """Stream the job's results as NDJSON, without loading them all into memory."""
        await _status(coordinator, job_id)  # 404 for an unknown job

        async def lines() -> AsyncIterator[bytes]:
            async for outcome in coordinator.store.outcomes(job_id, follow=follow):
                if isinstance(outcome, ResultRecord):
                    line = {"status": "done", **msgspec.structs.asdict(outcome)}
                else:
                    line = {"status": "failed", **msgspec.structs.asdict(outcome)}
                yield _json.encode(line) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @api.get("/workers/history", tags=["workers"])
    async def worker_history() -> list[WorkerHistory]:
        """Every worker ever seen with a lasting identity, most recently seen first."""
        try:
            records = await coordinator.store.workers()
        except StoreError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        online = {p.worker_key for p in coordinator.workers.values() if p.worker_key}
        # A connected worker is seen now (its stored last_seen moves only when its history
        # changes or it leaves), so it comes first.
        now = time.time()
        records.sort(key=lambda r: r.worker_key not in online)  # stable: keeps the order
        return [
            WorkerHistory(
                worker_key=r.worker_key,
                agent=r.agent,
                first_seen=r.first_seen,
                last_seen=now if r.worker_key in online else r.last_seen,
                tasks_done=r.tasks_done,
                failures=r.failures,
                mean_ms=round(r.compute_ms / r.tasks_done, 3) if r.tasks_done else None,
                connected=r.worker_key in online,
                valid=r.valid,
                invalid=r.invalid,
                error_rate=round(r.error_rate, 4),
                quarantined=r.quarantined,
                lost=r.lost,
                loss_rate=round(r.loss_rate, 4),
            )
            for r in records
        ]

    @api.get("/workers", tags=["workers"])
    async def list_workers() -> list[WorkerStatus]:
        """Every connected worker."""
        listed = []
        for worker in list(coordinator.scheduler.workers.values()):
            peer = coordinator.workers.get(worker.worker_id)
            if peer is None:
                continue
            agent = describe(peer.agent, introduced=worker.state is WorkerState.INTRODUCED)
            listed.append(
                WorkerStatus(
                    worker_id=worker.worker_id,
                    kind=agent.kind,
                    browser=agent.browser,
                    os=agent.os,
                    agent=peer.agent,
                    address=peer.address,
                    connected_at=peer.connected_at,
                    state=worker.state.value,
                    ops=sorted(worker.ops),
                    concurrency=worker.concurrency,
                    in_flight=len(worker.in_flight),
                    tasks_done=worker.tasks_done,
                    failures=worker.failures,
                    speed_ms=worker.speed_ms,
                    trusted=_trusted(coordinator, worker.key),
                    quarantined=worker.quarantined,
                )
            )
        return listed

    return api


def _trusted(coordinator: Coordinator, key: str) -> bool:
    standing = coordinator.scheduler.standings.get(key)
    return standing is not None and standing.trusted


def _submit_status(exc: SubmitError) -> int:
    """503 when the store fails (try again later), 413 past a size limit, else 400 (the
    request is wrong)."""
    if exc.code == "store_unavailable":
        return status.HTTP_503_SERVICE_UNAVAILABLE
    if exc.code in ("too_many_tasks", "args_too_large", "environment_too_large"):
        return status.HTTP_413_CONTENT_TOO_LARGE
    return status.HTTP_400_BAD_REQUEST


async def _status(coordinator: Coordinator, job_id: int) -> JobStatus:
    """The job as the store has it, with live counts while this coordinator runs it; 400
    for an id out of range, 404 for an unknown job."""
    _check_id("job_id", job_id)
    try:
        summary = await coordinator.store.job(job_id)
    except StoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if summary is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no job {job_id}")
    info = summary.info
    live = coordinator.local_job(job_id)
    if live is not None:
        counts = live.counts
        done, failed = counts[TaskState.DONE], counts[TaskState.FAILED]
        cancelled, queued = counts[TaskState.CANCELLED], counts[TaskState.QUEUED]
        leased, total = counts[TaskState.LEASED], live.total
        waiting = counts[TaskState.WAITING]
        state = "cancelled" if live.cancelled else "finished" if live.finished else "running"
    else:
        done, failed, cancelled, total = (
            summary.done,
            summary.failed,
            summary.cancelled,
            summary.total,
        )
        leased, queued, waiting = 0, total - done - failed - cancelled, 0
        state = summary.state.value
        if coordinator.grid is not None and state == "running":
            try:  # held by some coordinator of the grid: under way
                leased = (await coordinator.grid.grid.pending([job_id]))[job_id]
            except StoreError as exc:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
            leased = min(leased, queued)
            queued -= leased
    end = summary.finished_at if summary.finished_at and state != "running" else time.time()
    elapsed = end - info.created_at
    rate = (done + failed) / elapsed if elapsed > 0 else 0.0
    remaining = queued + leased + waiting
    return JobStatus(
        job_id=job_id,
        name=info.name,
        op=info.op,
        priority=info.priority,
        state=cast(JobStateName, state),
        total=total,
        queued=queued,
        leased=leased,
        done=done,
        failed=failed,
        cancelled=cancelled,
        created_at=info.created_at,
        redundancy=info.redundancy,
        adaptive=info.adaptive,
        waiting=waiting,
        finished_at=summary.finished_at if state != "running" else None,
        rate=round(rate, 3),
        eta_s=round(remaining / rate, 1) if rate > 0 and remaining and state == "running" else None,
    )
