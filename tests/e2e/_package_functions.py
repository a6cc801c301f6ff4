"""Functions that need packages from PyPI (``client.options(packages=[...])``), for
tests/e2e/test_packages.py. numpy and sympy are imported inside the functions only: this
module imports without them, and the machine that submits the functions needs neither."""

from __future__ import annotations


def numpy_norm(n: int) -> dict[str, object]:
    """The Euclidean norm of ``0, 1, ..., n - 1`` by numpy (compiled code), with where the
    worker found numpy and the Python it ran in."""
    import sys

    import numpy

    values = numpy.arange(n, dtype=numpy.float64)
    return {
        "norm": float(numpy.linalg.norm(values)),
        "numpy": numpy.__version__,
        "prefix": sys.prefix,
    }


def sympy_factor(n: int) -> dict[str, str]:
    """``x**n - 1`` factored by sympy (pure Python), with sympy's version."""
    import sympy

    x = sympy.Symbol("x")
    return {"factors": str(sympy.factor(x**n - 1)), "sympy": str(sympy.__version__)}
