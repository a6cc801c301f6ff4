"""The functions examples/series.py runs on the grid: a module of the example's own.

It travels with them: ``client.submit(taylor, ...)`` sees that ``taylor`` uses a helper
and a constant of this module, so the module goes to the workers, zipped (once per
worker), and they import it. sympy comes from PyPI through ``packages=``: it is imported
inside the functions, so the machine that submits them does not need it installed.
"""

from __future__ import annotations

from fractions import Fraction

VARIABLE = "x"


def _parse(expression: str) -> tuple[object, object]:
    import sympy

    x = sympy.Symbol(VARIABLE)
    return sympy.sympify(expression, locals={VARIABLE: x}), x


def taylor(expression: str, order: int) -> dict[str, str]:
    """``expression``'s Taylor polynomial around 0 (terms below ``x**order``) and its
    value at x = 1/2, exactly."""
    import sympy

    parsed, x = _parse(expression)
    polynomial = sympy.series(parsed, x, 0, order).removeO()
    value = Fraction(str(polynomial.subs(x, sympy.Rational(1, 2))))
    return {"series": str(polynomial), "at_half": f"{value.numerator}/{value.denominator}"}


def sympy_version() -> str:
    """The version of sympy the worker imported (the environment's)."""
    import sympy

    return str(sympy.__version__)
