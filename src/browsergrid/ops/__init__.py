"""Built-in task kinds: the Python implementation and verifier of each op (web/js/ops.js is
the JavaScript twin; docs/protocol.md defines each op exactly).

``run_op(name, args)`` runs one; ``verify_op(name, args, result)`` checks a result a worker
reported; ``agree_op(name, args, a, b)`` compares two workers' results (what a quorum of
replicas compares); the Python worker announces ``sorted(OPS)``.
"""

from browsergrid.ops._registry import OPS, Op, agree_op, run_op, verify_op

__all__ = ["OPS", "Op", "agree_op", "run_op", "verify_op"]
