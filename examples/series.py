"""Taylor series by sympy, a package from PyPI that the workers do not have, with helper
functions from a module of this example's own (examples/series_terms.py).

``client.options(packages=["sympy==1.13.3"])`` resolves sympy and what it needs with
pip, on this machine, and uploads the wheels once; each task names that environment.
A browser tab unpacks the pure-Python wheels into its Pyodide, a Python worker makes a
virtual environment of them (uv); each keeps it for the next task, so only the first
task on a worker pays for it. ``taylor`` uses a helper and a constant of its module, so
the module goes along (zipped, once per worker). sympy is imported inside the functions:
this script runs without sympy installed here.

Run it against a running coordinator with at least one worker that runs Python functions:
a browser tab on http://127.0.0.1:8765/ (in Pyodide), or ``browsergrid worker
ws://127.0.0.1:8765 --python-functions``:

    python examples/series.py                        # the coordinator on http://127.0.0.1:8765
    python examples/series.py http://HOST:PORT --token TOKEN

It prints:

    the workers ran sympy 1.13.3, from PyPI through packages=
    sin(x)      -x**7/5040 + x**5/120 - x**3/6 + x   at x = 1/2: 309287/645120
    cos(x)      -x**6/720 + x**4/24 - x**2/2 + 1   at x = 1/2: 40439/46080
    ...
    atan(x)     -x**7/7 + x**5/5 - x**3/3 + x   at x = 1/2: 6229/13440
    ...
    6 series in 2.1 s
"""

from __future__ import annotations

import argparse
import time

from series_terms import sympy_version, taylor  # beside this script: Python finds it first

from browsergrid import Client

EXPRESSIONS = ["sin(x)", "cos(x)", "exp(x)", "log(1 + x)", "atan(x)", "sqrt(1 + x)"]
ORDER = 8
PACKAGES = ["sympy==1.13.3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765")
    parser.add_argument("--token", default=None, help="the coordinator's admin token")
    args = parser.parse_args()
    with Client(args.url, token=args.token) as client:
        grid = client.options(name="series", packages=PACKAGES)
        started = time.perf_counter()
        version = grid.submit(sympy_version)
        results = grid.map(taylor, EXPRESSIONS, [ORDER] * len(EXPRESSIONS))
        print(f"the workers ran sympy {version.result()}, from PyPI through packages=")
        for expression, result in zip(EXPRESSIONS, results, strict=True):
            print(f"{expression:<11} {result['series']}   at x = 1/2: {result['at_half']}")
        print(f"{len(EXPRESSIONS)} series in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
