"""The table of built-in ops."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from browsergrid.ops import _repeat_multiply


@dataclass(frozen=True, slots=True)
class Op:
    """One task kind: ``run`` computes a result from the task's arguments."""

    name: str
    run: Callable[[Mapping[str, Any]], Any]


OPS: Final[Mapping[str, Op]] = {
    "repeat_multiply": Op("repeat_multiply", _repeat_multiply.run),
}


def run_op(name: str, args: Mapping[str, Any]) -> Any:
    """Run op ``name``; raises ValueError with a message fit to send back as a task error."""
    op = OPS.get(name)
    if op is None:
        raise ValueError(f"unknown op {name!r}; this worker runs {sorted(OPS)}")
    return op.run(args)
