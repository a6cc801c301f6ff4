"""The HTTP/JSON API under ``/api``: submit, inspect, stream and cancel jobs; list workers.

FastAPI builds the OpenAPI schema (``/openapi.json``) and the interactive docs (``/docs``)
from the models below.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from browsergrid.core import Job, TaskState, WorkerState
from browsergrid.errors import SubmitError
from browsergrid.protocol import ResultRecord, SubmitOptions
from browsergrid.server._coordinator import Coordinator

_json = msgspec.json.Encoder()


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


class JobAccepted(BaseModel):
    """The job was queued; its tasks have ids ``first_task_id`` .. ``+ count - 1``."""

    job_id: int
    first_task_id: int
    count: int


class JobStatus(BaseModel):
    """A job with its task counts by state."""

    job_id: int
    name: str
    op: str
    priority: int
    state: Literal["running", "finished", "cancelled"]
    total: int
    queued: int
    leased: int
    done: int
    failed: int
    cancelled: int
    created_at: float = Field(description="Unix time")
    rate: float = Field(description="tasks finished per second since the job was created")
    eta_s: float | None = Field(description="seconds until the last task, at that rate")


WorkerKind = Literal["browser", "python", "exercise", "other"]


class WorkerStatus(BaseModel):
    """A connected worker."""

    worker_id: int
    kind: WorkerKind
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


class Problem(BaseModel):
    """What was wrong with a request."""

    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a bad request: the detail says what is wrong"},
    404: {"model": Problem, "description": "no such job"},
}


def create_api(coordinator: Coordinator) -> APIRouter:
    """The ``/api`` routes, bound to ``coordinator``."""
    api = APIRouter(prefix="/api", tags=["jobs"])

    @api.post("/jobs", status_code=status.HTTP_201_CREATED, responses=_ERRORS)
    async def submit_job(request: JobRequest) -> JobAccepted:
        """Queue a job; results can be streamed from ``/api/jobs/{job_id}/results``."""
        options = SubmitOptions(
            name=request.name,
            priority=request.priority,
            lease_timeout=request.lease_timeout,
            max_attempts=request.max_attempts,
        )
        try:
            ack = await coordinator.submit(request.op, request.args, options, submitted_by="http")
        except SubmitError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        return JobAccepted(job_id=ack.job_id, first_task_id=ack.first_task_id, count=ack.count)

    @api.get("/jobs")
    async def list_jobs() -> list[JobStatus]:
        """Every job, oldest first."""
        return [
            await _status(coordinator, job) for job in list(coordinator.scheduler.jobs.values())
        ]

    @api.get("/jobs/{job_id}", responses=_ERRORS)
    async def get_job(job_id: int) -> JobStatus:
        """One job with its counts by state, rate and ETA."""
        return await _status(coordinator, _job(coordinator, job_id))

    @api.post("/jobs/{job_id}/cancel", responses=_ERRORS)
    async def cancel_job(job_id: int) -> JobStatus:
        """Cancel the job's unfinished tasks; finished ones keep their results."""
        job = _job(coordinator, job_id)
        await coordinator.cancel(job_id)
        return await _status(coordinator, job)

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
        job_id: int,
        follow: Annotated[
            bool, Query(description="keep the stream open until the job finishes")
        ] = False,
    ) -> StreamingResponse:
        """Stream the job's results as NDJSON, without loading them all into memory."""
        _job(coordinator, job_id)

        async def lines() -> AsyncIterator[bytes]:
            async for outcome in coordinator.store.outcomes(job_id, follow=follow):
                if isinstance(outcome, ResultRecord):
                    line = {"status": "done", **msgspec.structs.asdict(outcome)}
                else:
                    line = {"status": "failed", **msgspec.structs.asdict(outcome)}
                yield _json.encode(line) + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @api.get("/workers", tags=["workers"])
    async def list_workers() -> list[WorkerStatus]:
        """Every connected worker."""
        listed = []
        for worker in list(coordinator.scheduler.workers.values()):
            peer = coordinator.workers.get(worker.worker_id)
            if peer is None:
                continue
            listed.append(
                WorkerStatus(
                    worker_id=worker.worker_id,
                    kind=_kind(peer.agent, worker.state),
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
                )
            )
        return listed

    return api


def _job(coordinator: Coordinator, job_id: int) -> Job:
    job = coordinator.scheduler.jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no job {job_id}")
    return job


async def _status(coordinator: Coordinator, job: Job) -> JobStatus:
    info = await coordinator.store.job(job.job_id)
    counts = job.counts
    elapsed = time.time() - info.created_at if info else 0.0
    finished = counts[TaskState.DONE] + counts[TaskState.FAILED]
    rate = finished / elapsed if elapsed > 0 else 0.0
    remaining = counts[TaskState.QUEUED] + counts[TaskState.LEASED]
    state: Literal["running", "finished", "cancelled"] = (
        "cancelled" if job.cancelled else "finished" if job.finished else "running"
    )
    return JobStatus(
        job_id=job.job_id,
        name=job.options.name,
        op=info.op if info else "",
        priority=job.options.priority,
        state=state,
        total=job.total,
        queued=counts[TaskState.QUEUED],
        leased=counts[TaskState.LEASED],
        done=counts[TaskState.DONE],
        failed=counts[TaskState.FAILED],
        cancelled=counts[TaskState.CANCELLED],
        created_at=info.created_at if info else 0.0,
        rate=round(rate, 3),
        eta_s=round(remaining / rate, 1) if rate > 0 and remaining else None,
    )


def _kind(
    agent: str | None, state: WorkerState
) -> Literal["browser", "python", "exercise", "other"]:
    if state is WorkerState.ANONYMOUS:
        return "exercise"
    if agent and agent.startswith("browsergrid-python/"):
        return "python"
    if agent and agent.startswith("Mozilla/"):
        return "browser"
    return "other"
