"""The scheduler: the one place where tasks are leased, finished, re-queued or failed."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from browsergrid.core._commands import Command, RejectReport, SendTask, TaskDone, TaskFailed
from browsergrid.core._events import (
    ClockTicked,
    Event,
    ResultReported,
    TaskErrorReported,
    TaskId,
    TaskSubmitted,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.core._model import Task, TaskState, Worker, WorkerState

EXERCISE_OPS: Final = frozenset({"repeat_multiply"})
"""What a worker that never says hello can run (the exercise's page)."""


@dataclass(frozen=True, slots=True)
class WelcomeTask:
    """The task every worker gets on connect; its duration is the worker's first speed sample."""

    op: str = "repeat_multiply"
    args: tuple[tuple[str, Any], ...] = (
        ("initial", 1.0000054),
        ("factor", 1.00000043),
        ("times", 1_000_000),
    )


class Scheduler:
    """Feed it events with ``handle``; carry out the commands it returns, in order.

    ``welcome`` is the task sent to each worker on connect (None: send none).
    A lease that ends without a result (disconnect, deadline, error report) puts the
    task back in the queue until it has been leased ``max_attempts`` times; then it fails
    with one reason per attempt.
    """

    def __init__(
        self,
        *,
        welcome: WelcomeTask | None = WelcomeTask(),
        lease_timeout_s: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if lease_timeout_s <= 0:
            raise ValueError("lease_timeout_s must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.welcome = welcome
        self.lease_timeout_s = lease_timeout_s
        self.max_attempts = max_attempts
        self.tasks: dict[int, Task] = {}  # queued and leased only
        self.workers: dict[int, Worker] = {}
        self._queue: list[int] = []  # heap of queued task ids: the oldest (lowest) first
        self._deadlines: list[tuple[float, int, int]] = []  # (deadline, attempt, task)
        self._task_ids = itertools.count(1)

    # --- the one entry point ---------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; returns the commands to carry out, in order."""
        match event:
            case WorkerJoined():
                return list(self._joined(event))
            case WorkerIntroduced():
                return list(self._introduced(event))
            case WorkerLeft():
                return list(self._left(event))
            case TaskSubmitted():
                return list(self._submitted(event))
            case ResultReported():
                return list(self._result(event))
            case TaskErrorReported():
                return list(self._error(event))
            case ClockTicked():
                return list(self._tick(event))
            case _:
                raise TypeError(f"not a scheduler event: {event!r}")

    # --- event handlers --------------------------------------------------------------

    def _joined(self, ev: WorkerJoined) -> Iterator[Command]:
        if ev.worker_id in self.workers:
            raise ValueError(f"worker {ev.worker_id} joined twice")
        worker = Worker(worker_id=ev.worker_id, ops=EXERCISE_OPS, concurrency=1, joined_at=ev.now)
        self.workers[ev.worker_id] = worker
        if self.welcome is not None:
            task = self._new_task(
                self.welcome.op, dict(self.welcome.args), None, 1, pinned_to=ev.worker_id
            )
            yield self._lease(task, worker, ev.now, ev.stimulus_id)
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _introduced(self, ev: WorkerIntroduced) -> Iterator[Command]:
        worker = self.workers[ev.worker_id]
        worker.move_to(WorkerState.INTRODUCED)
        worker.ops = ev.ops
        worker.concurrency = ev.concurrency
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _left(self, ev: WorkerLeft) -> Iterator[Command]:
        worker = self.workers.pop(ev.worker_id)
        worker.move_to(WorkerState.GONE)
        for task_id in sorted(worker.in_flight):
            task = self.tasks[task_id]
            yield from self._lease_lost(
                task, f"worker {worker.worker_id} disconnected", ev.stimulus_id
            )
        worker.in_flight.clear()
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _submitted(self, ev: TaskSubmitted) -> Iterator[Command]:
        self._new_task(ev.op, ev.args, ev.lease_timeout_s, ev.max_attempts)
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _result(self, ev: ResultReported) -> Iterator[Command]:
        task = self._held(ev.worker_id, ev.task_id)
        if task is None:
            yield self._reject(ev.worker_id, ev.task_id, ev.stimulus_id)
            return
        worker = self.workers[ev.worker_id]
        self._release(task, worker)
        task.move_to(TaskState.DONE)
        del self.tasks[task.task_id]  # finished: reported by the command, not kept
        worker.tasks_done += 1
        welcome = task.pinned_to is not None
        if welcome:
            worker.speed_ms = ev.duration_ms
        yield TaskDone(
            worker_id=ev.worker_id,
            task_id=task.task_id,
            op=task.op,
            result=ev.result,
            duration_ms=ev.duration_ms,
            welcome=welcome,
            stimulus_id=ev.stimulus_id,
        )
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _error(self, ev: TaskErrorReported) -> Iterator[Command]:
        task = self._held(ev.worker_id, ev.task_id)
        if task is None:
            yield self._reject(ev.worker_id, ev.task_id, ev.stimulus_id)
            return
        worker = self.workers[ev.worker_id]
        worker.failures += 1
        self._release(task, worker)
        yield from self._lease_lost(
            task, f"worker {ev.worker_id} reported: {ev.message}", ev.stimulus_id
        )
        yield from self._dispatch(ev.now, ev.stimulus_id)

    def _tick(self, ev: ClockTicked) -> Iterator[Command]:
        while self._deadlines and self._deadlines[0][0] <= ev.now:
            _, attempt, task_id = heapq.heappop(self._deadlines)
            task = self.tasks.get(task_id)
            if task is None or task.state is not TaskState.LEASED or task.attempts != attempt:
                continue  # that lease already ended
            assert task.worker_id is not None
            worker = self.workers[task.worker_id]
            self._release(task, worker)
            yield from self._lease_lost(
                task,
                f"worker {worker.worker_id} passed the {task.lease_timeout_s:g} s deadline",
                ev.stimulus_id,
            )
        yield from self._dispatch(ev.now, ev.stimulus_id)

    # --- helpers ---------------------------------------------------------------------

    def _new_task(
        self,
        op: str,
        args: dict[str, Any],
        lease_timeout_s: float | None,
        max_attempts: int | None,
        *,
        pinned_to: int | None = None,
    ) -> Task:
        task = Task(
            task_id=next(self._task_ids),
            op=op,
            args=args,
            lease_timeout_s=self.lease_timeout_s if lease_timeout_s is None else lease_timeout_s,
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            pinned_to=pinned_to,
        )
        self.tasks[task.task_id] = task
        if pinned_to is None:
            heapq.heappush(self._queue, task.task_id)
        return task

    def _lease(self, task: Task, worker: Worker, now: float, stimulus_id: str) -> SendTask:
        task.move_to(TaskState.LEASED)
        task.worker_id = worker.worker_id
        task.attempts += 1
        task.deadline = now + task.lease_timeout_s
        heapq.heappush(self._deadlines, (task.deadline, task.attempts, task.task_id))
        worker.in_flight.add(task.task_id)
        return SendTask(
            worker_id=worker.worker_id,
            task_id=task.task_id,
            op=task.op,
            args=task.args,
            welcome=task.pinned_to is not None,
            stimulus_id=stimulus_id,
        )

    def _release(self, task: Task, worker: Worker) -> None:
        worker.in_flight.discard(task.task_id)
        task.worker_id = None

    def _lease_lost(self, task: Task, reason: str, stimulus_id: str) -> Iterator[Command]:
        """The current lease ended without a result: queue again, cancel or fail."""
        task.worker_id = None
        task.reasons.append(reason)
        if task.pinned_to is not None:
            task.move_to(TaskState.CANCELLED)  # a welcome task measures one worker only
            del self.tasks[task.task_id]
        elif task.attempts < task.max_attempts:
            task.move_to(TaskState.QUEUED)
            heapq.heappush(self._queue, task.task_id)
        else:
            task.move_to(TaskState.FAILED)
            del self.tasks[task.task_id]
            yield TaskFailed(
                task_id=task.task_id,
                op=task.op,
                reasons=tuple(task.reasons),
                stimulus_id=stimulus_id,
            )

    def _held(self, worker_id: int, task_id: TaskId) -> Task | None:
        """The task if ``worker_id`` holds its current lease, else None."""
        task = self.tasks.get(task_id) if isinstance(task_id, int) else None
        if task is None or task.state is not TaskState.LEASED or task.worker_id != worker_id:
            return None
        return task

    def _reject(self, worker_id: int, task_id: TaskId, stimulus_id: str) -> RejectReport:
        return RejectReport(
            worker_id=worker_id,
            task_id=task_id,
            reason=f"no task {task_id!r} is leased to this worker",
            stimulus_id=stimulus_id,
        )

    def _dispatch(self, now: float, stimulus_id: str) -> Iterator[SendTask]:
        """Lease queued tasks to workers with free credit, oldest task first."""
        if not self._queue:
            return
        for worker in list(self.workers.values()):
            if worker.credit == 0:
                continue
            skipped: list[int] = []
            while self._queue and worker.credit > 0:
                task_id = heapq.heappop(self._queue)
                task = self.tasks[task_id]
                if task.op in worker.ops:
                    yield self._lease(task, worker, now, stimulus_id)
                else:
                    skipped.append(task_id)
            for task_id in skipped:
                heapq.heappush(self._queue, task_id)
            if not self._queue:
                return
