"""Built-in task kinds: the Python implementation of each op (web/js/ops.js is its twin).

``run_op(name, args)`` runs one; the Python worker announces ``sorted(OPS)``.
"""

from browsergrid.ops._registry import OPS, Op, run_op

__all__ = ["OPS", "Op", "run_op"]
