"""The table of ops (built-in, and custom ones registered at start), and the ways the rest
of browsergrid uses one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import browsergrid.ops._hash_search as _hash_search
import browsergrid.ops._mandelbrot_tile as _mandelbrot_tile
import browsergrid.ops._monte_carlo_pi as _monte_carlo_pi
import browsergrid.ops._prime_count as _prime_count
import browsergrid.ops._python_function as _python_function
import browsergrid.ops._repeat_multiply as _repeat_multiply
from browsergrid.ops._args import agree_exactly


@dataclass(frozen=True, slots=True)
class Op:
    """One task kind.

    ``run(args)`` computes the result (a JSON value) and raises ValueError naming the bad
    argument; ``verify(args, result)`` says whether a result reported by an untrusted worker
    is right (it may cost as much as ``run``); ``agree(args, a, b)`` whether two workers'
    results are the same, exactly or within the op's tolerance (what a quorum compares;
    it never raises); ``lease_timeout_s`` is how long a worker may hold a task of this op
    by default before it is given to another. ``quick(args)``, when given, is true only
    for a task that surely runs in well under a millisecond (its work is bounded by its
    arguments; bad arguments fail at once, so they count as quick): the Python worker
    runs such tasks on its event loop, without the hop to a thread and back. It never
    raises.
    """

    name: str
    run: Callable[[Mapping[str, Any]], Any]
    verify: Callable[[Mapping[str, Any], Any], bool]
    lease_timeout_s: float = 60.0
    agree: Callable[[Mapping[str, Any], Any, Any], bool] = agree_exactly
    quick: Callable[[Mapping[str, Any]], bool] | None = None


PYTHON_OP: Final = _python_function.OP
"""The op that runs a client's plain Python function sent as source (``Client.submit(fn,
...)``); a Python worker runs it only when started with ``--python-functions``."""

# Leases longer than 60 s are for the ops whose largest tasks take tens of seconds in a
# browser: 10**9 samples (~10 s in V8), a 65,536-pixel tile at 100,000 iterations (~20 s),
# 10**7 crypto.subtle digests (~90 s: each digest is a round trip to another thread).
BUILT_IN_OPS: Final[Mapping[str, Op]] = {
    op.name: op
    for op in (
        Op(
            "repeat_multiply",
            _repeat_multiply.run,
            _repeat_multiply.verify,
            agree=_repeat_multiply.agree,
            quick=_repeat_multiply.quick,
        ),
        Op(
            "monte_carlo_pi",
            _monte_carlo_pi.run,
            _monte_carlo_pi.verify,
            120.0,
            quick=_monte_carlo_pi.quick,
        ),
        Op("mandelbrot_tile", _mandelbrot_tile.run, _mandelbrot_tile.verify, 120.0),
        Op("prime_count", _prime_count.run, _prime_count.verify),
        Op("hash_search", _hash_search.run, _hash_search.verify, 300.0),
        Op(PYTHON_OP, _python_function.run, _python_function.verify),
    )
}
_ops: dict[str, Op] = dict(BUILT_IN_OPS)
OPS: Final[Mapping[str, Op]] = MappingProxyType(_ops)
"""Every op this process knows: the built-in ones and those given to ``register_ops``."""


def register_ops(ops: Mapping[str, Op]) -> None:
    """Add custom ops (``serve --ops-python``) to ``OPS``, before the coordinator starts:
    it then accepts them, gives them their lease and compares replicas with their
    ``agree``. Raises ValueError for a name a built-in op has, or one registered already
    as another op."""
    for name, op in ops.items():
        if name in BUILT_IN_OPS:
            raise ValueError(f"op {name!r} is a built-in op; give the custom one another name")
        if _ops.get(name, op) is not op:
            raise ValueError(f"op {name!r} is registered already (by another module?)")
    _ops.update(ops)


def _lookup(name: str, args: Any, ops: Mapping[str, Op] = OPS) -> Op:
    op = ops.get(name)
    if op is None and name == PYTHON_OP:
        raise ValueError(
            "this worker does not run Python functions sent by clients (op 'python'); "
            "start it with --python-functions to allow it"
        )
    if op is None:
        raise ValueError(f"unknown op {name!r}; this worker runs {sorted(ops)}")
    if not isinstance(args, Mapping):
        raise ValueError(f"{name}: arguments must be an object")
    return op


def run_op(name: str, args: Mapping[str, Any], *, ops: Mapping[str, Op] = OPS) -> Any:
    """Run op ``name`` of the table ``ops`` (default: every op known here); raises
    ValueError with a message fit to send back as a task error (and, for ``python``,
    FunctionError whose message is the function's remote traceback)."""
    return _lookup(name, args, ops).run(args)


def verify_op(name: str, args: Mapping[str, Any], result: Any) -> bool:
    """Whether ``result``, reported by a worker, is the right result of op ``name`` on
    ``args``. A malformed result is simply wrong (False); an unknown op or bad arguments
    raise ValueError as in ``run_op`` (check arguments when the task is submitted)."""
    return _lookup(name, args).verify(args, result)


def agree_op(name: str, args: Mapping[str, Any], a: Any, b: Any) -> bool:
    """Whether two workers' results for a task of op ``name`` are the same: the op's own
    comparison, or exact JSON equality for an op browsergrid does not know. Never raises."""
    op = OPS.get(name)
    try:
        return op.agree(args, a, b) if op is not None else agree_exactly(args, a, b)
    except Exception:
        return False
