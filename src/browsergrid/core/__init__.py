"""The scheduling brain: events in, commands out, time passed in.

Synchronous and deterministic: no asyncio, no sockets, no storage. The server feeds
``Scheduler.handle`` one event at a time and carries out the commands it returns.
"""

from browsergrid.core._commands import Command, RejectReport, SendTask, TaskDone, TaskFailed
from browsergrid.core._events import (
    ClockTicked,
    Event,
    ResultReported,
    TaskErrorReported,
    TaskSubmitted,
    WorkerIntroduced,
    WorkerJoined,
    WorkerLeft,
)
from browsergrid.core._model import Task, TaskState, Worker, WorkerState
from browsergrid.core._scheduler import EXERCISE_OPS, Scheduler, WelcomeTask

__all__ = [
    "EXERCISE_OPS",
    "ClockTicked",
    "Command",
    "Event",
    "RejectReport",
    "ResultReported",
    "Scheduler",
    "SendTask",
    "Task",
    "TaskDone",
    "TaskErrorReported",
    "TaskFailed",
    "TaskState",
    "TaskSubmitted",
    "WelcomeTask",
    "Worker",
    "WorkerIntroduced",
    "WorkerJoined",
    "WorkerLeft",
    "WorkerState",
]
