"""Built-in task kinds: the Python implementation and verifier of each op (web/js/ops.js is
the JavaScript twin; docs/protocol.md defines each op exactly).

``run_op(name, args)`` runs one; ``verify_op(name, args, result)`` checks a result a worker
reported; ``agree_op(name, args, a, b)`` compares two workers' results (what a quorum of
replicas compares). ``python`` (``PYTHON_OP``) runs a client's function sent as source; it
fails with ``FunctionError``, whose message is the function's traceback. Custom ops come
from Python files (``load_ops_files``) and join ``OPS`` by ``register_ops``.
"""

from browsergrid.ops._custom import load_ops_files, load_ops_module
from browsergrid.ops._python_function import FunctionError, substitute_blobs
from browsergrid.ops._registry import (
    BUILT_IN_OPS,
    OPS,
    PYTHON_OP,
    Op,
    agree_op,
    register_ops,
    run_op,
    verify_op,
)

__all__ = [
    "BUILT_IN_OPS",
    "OPS",
    "PYTHON_OP",
    "FunctionError",
    "Op",
    "agree_op",
    "load_ops_files",
    "load_ops_module",
    "register_ops",
    "run_op",
    "substitute_blobs",
    "verify_op",
]
