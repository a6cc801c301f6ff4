"""Which ops a Python worker runs (``worker_ops``) and what it reports when one fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from browsergrid.client._function import function_task
from browsergrid.ops import BUILT_IN_OPS, PYTHON_OP, Op, load_ops_module
from browsergrid.protocol import Task
from browsergrid.worker import PythonWorker
from browsergrid.worker._runner import _run_batch, worker_ops
from tests._support import FIXTURES
from tests.client import _functions

MY_OPS = load_ops_module(FIXTURES / "ops_python" / "my_ops.py")


def test_python_functions_are_opt_in() -> None:
    assert PYTHON_OP not in worker_ops()
    assert sorted(worker_ops(python_functions=True)) == sorted(BUILT_IN_OPS)
    assert PYTHON_OP not in PythonWorker("ws://127.0.0.1:1").ops
    assert PYTHON_OP in PythonWorker("ws://127.0.0.1:1", python_functions=True).ops


def test_custom_ops_join_the_built_in_ones() -> None:
    ops = worker_ops(custom=MY_OPS)
    assert set(ops) == (set(BUILT_IN_OPS) - {PYTHON_OP}) | set(MY_OPS)
    with pytest.raises(ValueError, match="op 'prime_count' is a built-in op"):
        worker_ops(custom={"prime_count": MY_OPS["add"]})


def run_one(ops: Mapping[str, Op], op: str, args: dict[str, Any]) -> tuple[bool, Any]:
    """(succeeded, result or error message) of one task run as the worker runs it."""
    [(task_id, ok, value, _)] = _run_batch(ops, [Task(task_id=1, op=op, args=args)])
    assert task_id == 1
    return ok, value


def test_a_function_error_is_reported_as_its_traceback_alone() -> None:
    ops = worker_ops(python_functions=True)
    primes = [2, 3, 5, 7, 11, 13, 17, 19]
    assert run_one(ops, PYTHON_OP, function_task(_functions.sieve, [20], {})) == (True, primes)
    ok, message = run_one(ops, PYTHON_OP, function_task(_functions.fails, [1], {}))
    assert not ok
    assert message.startswith("Traceback (most recent call last):\n")
    assert message.endswith("ZeroDivisionError: division by zero")


def test_other_failures_are_named_by_their_type() -> None:
    ops = worker_ops(custom=MY_OPS)
    assert run_one(ops, "fails", {"what": "luck"}) == (False, "RuntimeError: no luck")
    assert run_one(ops, "prime_count", {"lo": 0}) == (
        False,
        "ValueError: prime_count: 'hi' must be an integer from 0 to 10**12",
    )
    ok, message = run_one(ops, PYTHON_OP, function_task(_functions.sieve, [20], {}))
    assert not ok and "start it with --python-functions" in message
