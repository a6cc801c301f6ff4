"""``TaskError``: its message, and the remote traceback of a Python function."""

from __future__ import annotations

from browsergrid import TaskError

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "<browsergrid:f>", line 2, in f\n'
    "    return 1 / 0\n"
    "ZeroDivisionError: division by zero"
)
FUNCTION = {"name": "f", "source": "def f(x, k=1):\n    return 1 / 0\n", "sha256": "00"}


def test_the_remote_traceback_is_the_last_one_reported() -> None:
    reasons = ["worker 3 disconnected", f"worker 4 reported: {TRACEBACK}"]
    error = TaskError("python", {"function": FUNCTION, "args": [1], "kwargs": {}}, reasons, 7, 2)
    assert error.remote_traceback == TRACEBACK
    assert str(error).endswith(f"attempt 2: worker 4 reported: {TRACEBACK}")  # in full
    other = f"worker 5 reported: {TRACEBACK.replace('line 2', 'line 9')}"
    assert TaskError("python", {}, [*reasons, other], 7, 2).remote_traceback == other[19:]


def test_no_traceback_when_no_attempt_reported_one() -> None:
    reasons = ["worker 4 reported: f returned a value JSON cannot carry (set)"]
    assert TaskError("python", {}, reasons, 7, 2).remote_traceback is None
    assert TaskError("python", {}, [], 7, 2).remote_traceback is None
    assert TaskError("python", {}, [TRACEBACK], 7, 2).remote_traceback == TRACEBACK


def test_a_python_task_is_named_by_its_call_not_its_source() -> None:
    args = {"function": FUNCTION, "args": [1, "a"], "kwargs": {"k": 2}}
    error = TaskError("python", args, ["worker 1 reported: x"], 7, 2)
    assert str(error).startswith("task 7 (python f(1, 'a', k=2)) failed:\n")
    long = {"function": FUNCTION, "args": [list(range(1000))], "kwargs": {}}
    head = str(TaskError("python", long, [], 7, 2)).partition(" failed")[0]
    assert len(head) < 230 and head.endswith("...))")


def test_other_ops_show_their_arguments() -> None:
    error = TaskError("prime_count", {"lo": 0}, ["worker 1 reported: ValueError: x"], 7, 2)
    assert str(error) == (
        "task 7 (prime_count {'lo': 0}) failed:\n  attempt 1: worker 1 reported: ValueError: x"
    )
    assert error.remote_traceback is None
