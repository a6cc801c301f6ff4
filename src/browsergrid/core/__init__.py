"""The scheduling brain: events in, commands out, time passed in.

Synchronous and deterministic: no asyncio, no sockets, no storage. The server feeds
``Scheduler.handle`` one event at a time and carries out the commands it returns.
"""

from browsergrid.core._commands import (
    CancelTask,
    Command,
    JobCancelled,
    RejectReport,
    ReplicaReported,
    ReplicaVerdict,
    SendTask,
    TaskDone,
    TaskFailed,
    TasksAccepted,
    TasksReleased,
    Verdict,
    WorkerQuarantined,
)
from browsergrid.core._events import (
    ClockTicked,
    Event,
    JobCancelRequested,
    JobOptions,
    JobRestored,
    RestoredTask,
    ResultReported,
    StrandedReleased,
    TaskErrorReported,
    TaskSpec,
    TasksSubmitted,
    TasksTaken,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.core._model import FINAL_STATES, Job, Lease, Task, TaskState, Worker, WorkerState
from browsergrid.core._reputation import Standing
from browsergrid.core._scheduler import EXERCISE_OPS, LossKind, Scheduler, WelcomeTask

__all__ = [
    "EXERCISE_OPS",
    "FINAL_STATES",
    "CancelTask",
    "ClockTicked",
    "Command",
    "Event",
    "Job",
    "JobCancelRequested",
    "JobCancelled",
    "JobOptions",
    "JobRestored",
    "Lease",
    "LossKind",
    "RejectReport",
    "ReplicaReported",
    "ReplicaVerdict",
    "RestoredTask",
    "ResultReported",
    "Scheduler",
    "SendTask",
    "Standing",
    "StrandedReleased",
    "Task",
    "TaskDone",
    "TaskErrorReported",
    "TaskFailed",
    "TaskSpec",
    "TaskState",
    "TasksAccepted",
    "TasksReleased",
    "TasksSubmitted",
    "TasksTaken",
    "Verdict",
    "WelcomeTask",
    "Worker",
    "WorkerIntroduced",
    "WorkerJoined",
    "WorkerLeft",
    "WorkerQuarantined",
    "WorkerState",
]
