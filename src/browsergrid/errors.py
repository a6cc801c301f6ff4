"""Every exception browsergrid raises on purpose.

BrowsergridError            catch this to catch them all
├── ConfigError             a bad option or setting; the message says which and why
├── AuthError               the coordinator wants a token that was not given (HTTP 401)
├── ProtocolError           a frame that breaks docs/protocol.md; ``code`` names the rule
├── SubmitError             the coordinator refused a submission; ``code`` says why
├── TaskError               a task failed on every attempt; one reason per attempt
├── ConnectionLost          the connection to the coordinator closed; jobs go on there
└── IllegalTransition       a bug: a task, worker or connection was asked to move
                            between states where no such move exists
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BrowsergridError(Exception):
    """Base class of every error browsergrid raises on purpose."""


class ConfigError(BrowsergridError):
    """An option or setting is invalid; fix the value the message names and start again."""


class AuthError(BrowsergridError):
    """The coordinator refused for want of a token (HTTP 401): none was sent, or not the
    right one. The message says which token it wants and where to find it; pass it (for
    submitters ``token=``, ``--token`` or $BROWSERGRID_TOKEN) and try again. Nothing was
    submitted."""


class ProtocolError(BrowsergridError):
    """A frame does not follow docs/protocol.md.

    ``code`` is the error code sent back to the peer (``bad_json``, ``bad_message``,
    ``unknown_type``); the connection may go on. ``about``: the integer ``task_id`` (or
    ``ref``) of the refused frame, when it is a JSON object that has one (the error frame
    names it).
    """

    def __init__(self, code: str, message: str, about: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.about = about


class SubmitError(BrowsergridError):
    """The coordinator refused a submission and queued none of it.

    ``code`` is one of ``unknown_op`` (no worker runs it: check the name), ``bad_args``
    (the message names the argument) or ``job_cancelled``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TaskError(BrowsergridError):
    """A task failed on every attempt. ``reasons`` has one line per attempt, each naming the
    worker and what it reported; fix the arguments or the op, then submit again.

    For a Python function (``client.submit(fn, ...)``) that raised, ``remote_traceback`` is
    the traceback the worker sent (``Traceback (most recent call last): ...``, from the
    function's own frames; its line numbers count from the start of the sent source, and
    each frame shows the line's text); None when no attempt reported one (the function
    returned a value JSON cannot carry, or a worker was lost). ``str()`` holds every reason
    in full.
    """

    def __init__(
        self, op: str, args: dict[str, Any], reasons: Sequence[str], task_id: int, job_id: int
    ) -> None:
        lines = "\n".join(f"  attempt {i}: {reason}" for i, reason in enumerate(reasons, 1))
        super().__init__(f"task {task_id} ({_describe(op, args)}) failed:\n{lines}")
        self.op = op
        self.task_args = args  # (``args`` is taken by Exception)
        self.reasons = list(reasons)
        self.attempts = len(self.reasons)
        self.task_id = task_id
        self.job_id = job_id
        self.remote_traceback = _last_traceback(self.reasons)


_TRACEBACK = "Traceback (most recent call last):"


def _last_traceback(reasons: Sequence[str]) -> str | None:
    """The traceback of the last attempt that reported one: a reason is ``worker N
    reported: MESSAGE``, and the message a function's traceback."""
    for reason in reversed(reasons):
        _, reported, message = reason.partition(" reported: ")
        text = message if reported else reason
        if text.startswith(_TRACEBACK):
            return text
    return None


def _describe(op: str, args: dict[str, Any], limit: int = 200) -> str:
    """``op {args}``; for a Python function, the call (``python sieve(1000)``) rather than
    its whole source."""
    function = args.get("function") if op == "python" else None
    if not isinstance(function, dict):
        return f"{op} {args!r}"
    positional, keywords = args.get("args", []), args.get("kwargs", {})
    parts = [repr(a) for a in positional] if isinstance(positional, list) else ["..."]
    if isinstance(keywords, dict):
        parts += [f"{k}={v!r}" for k, v in keywords.items()]
    call = f"{function.get('name', '?')}({', '.join(parts)})"
    return f"{op} {call if len(call) <= limit else call[: limit - 4] + '...)'}"


class ConnectionLost(BrowsergridError):
    """The connection to the coordinator closed while tasks were pending. Their jobs go on
    running there: fetch the results with ``browsergrid results JOB`` or the HTTP API."""


class IllegalTransition(BrowsergridError):
    """A state change that the state diagram in docs/architecture.md (or, for a connection,
    ``ConnectionState``) does not allow.

    This is always a bug in browsergrid; please report it with the log lines around it.
    """
