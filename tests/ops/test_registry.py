"""The op table, ``run_op`` and ``verify_op``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browsergrid.ops import (
    BUILT_IN_OPS,
    OPS,
    PYTHON_OP,
    Op,
    _registry,
    agree_op,
    register_ops,
    run_op,
    verify_op,
)

NAMES = [
    "hash_search",
    "mandelbrot_tile",
    "monte_carlo_pi",
    "prime_count",
    "python",
    "repeat_multiply",
]


def test_op_table() -> None:
    assert sorted(OPS) == sorted(BUILT_IN_OPS) == NAMES
    for name, op in OPS.items():
        assert isinstance(op, Op)
        assert op.name == name
        assert isinstance(op.lease_timeout_s, float) and op.lease_timeout_s >= 60.0
    op = OPS["repeat_multiply"]
    assert op.run({"initial": 1.0, "factor": 2.0, "times": 3}) == 8.0
    assert op.verify({"initial": 1.0, "factor": 2.0, "times": 3}, 8.0) is True
    assert op.lease_timeout_s == 60.0


def test_op_defaults_to_a_60_second_lease() -> None:
    op = Op("x", lambda args: 1, lambda args, result: result == 1)
    assert op.lease_timeout_s == 60.0


def test_unknown_op_raises_value_error_naming_the_op() -> None:
    message = r"unknown op 'nope'; this worker runs \['hash_search', .*'repeat_multiply'\]"
    with pytest.raises(ValueError, match=message):
        run_op("nope", {})
    with pytest.raises(ValueError, match=message):
        verify_op("nope", {}, 1)


@pytest.mark.parametrize("args", [None, [], "x", 3])
def test_arguments_that_are_not_an_object_raise_value_error(args: Any) -> None:
    for name in NAMES:
        with pytest.raises(ValueError, match=f"^{name}: arguments must be an object$"):
            run_op(name, args)
        with pytest.raises(ValueError, match=f"^{name}: arguments must be an object$"):
            verify_op(name, args, 1)


@pytest.mark.parametrize("name", NAMES)
def test_missing_arguments_raise_value_error_naming_op_and_argument(name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: '[a-z_]+' must be"):
        run_op(name, {})


def test_extra_arguments_are_ignored() -> None:
    assert run_op("prime_count", {"lo": 0, "hi": 10, "note": "x"}) == 4


@pytest.mark.parametrize(
    ("op", "args", "a", "b", "agreed"),
    [
        ("repeat_multiply", {}, 1.0, 1.0 + 1e-13, True),  # within 1e-12
        ("repeat_multiply", {}, 1.0, 1.0 + 1e-9, False),
        ("repeat_multiply", {"exact": True}, 1.0, 1.0 + 1e-13, False),
        ("repeat_multiply", {}, None, None, True),  # both overflowed
        ("repeat_multiply", {}, None, 1.0, False),
        ("repeat_multiply", {}, True, 1.0, False),
        ("repeat_multiply", {}, "1.0", 1.0, False),
        ("prime_count", {}, 25, 25, True),
        ("prime_count", {}, 25, 25.0, False),  # another JSON type is another answer
        ("mandelbrot_tile", {}, [1, 2, 3], [1, 2, 4], False),
        ("a_custom_op", {}, {"x": [1, 2]}, {"x": [1, 2]}, True),
        ("a_custom_op", {}, {"x": 1}, {"x": 1, "y": 2}, False),
    ],
)
def test_agree_op_compares_two_workers_results(
    op: str, args: dict[str, Any], a: Any, b: Any, agreed: bool
) -> None:
    assert agree_op(op, args, a, b) is agreed
    assert agree_op(op, args, b, a) is agreed


def test_run_op_runs_from_the_table_it_is_given() -> None:
    table = {"double": Op("double", lambda args: args["x"] * 2, lambda args, r: True)}
    assert run_op("double", {"x": 2}, ops=table) == 4
    with pytest.raises(
        ValueError, match=r"^unknown op 'prime_count'; this worker runs \['double'\]$"
    ):
        run_op("prime_count", {"lo": 0, "hi": 10}, ops=table)


def test_a_table_without_python_says_how_to_allow_it() -> None:
    with pytest.raises(ValueError, match=r"does not run Python functions .* --python-functions"):
        run_op(PYTHON_OP, {}, ops={})


@pytest.fixture
def restored_registry() -> Iterator[None]:
    saved = dict(_registry._ops)
    yield
    _registry._ops.clear()
    _registry._ops.update(saved)


@pytest.mark.usefixtures("restored_registry")
def test_register_ops_adds_custom_ops_and_refuses_clashes() -> None:
    near = Op("near", lambda args: 1.0, lambda args, r: True, 5.0, lambda args, a, b: a - b < 1)
    register_ops({"near": near})
    register_ops({"near": near})  # the same op again: nothing changes
    assert OPS["near"] is near
    assert agree_op("near", {}, 1.0, 1.5) is True
    assert agree_op("near", {}, 3.0, 1.5) is False
    with pytest.raises(ValueError, match="op 'prime_count' is a built-in op"):
        register_ops({"prime_count": near})
    with pytest.raises(ValueError, match="op 'near' is registered already"):
        register_ops({"near": Op("near", lambda args: 1, lambda args, r: True)})
