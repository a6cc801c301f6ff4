"""Write tests/fixtures/op_vectors.json: each vector's result computed by the Python ops.

Run ``python -m tests.ops.make_op_vectors`` from the repository root after changing an op
or adding a vector, then run the Python, Node and browser tests: all three check the file.
"""

from __future__ import annotations

import json
from typing import Any, Final

from browsergrid.ops import run_op
from tests._support import FIXTURES

PATH: Final = FIXTURES / "op_vectors.json"

# (name, op, args); every result must be finite (JSON has no Infinity) and pow-free results
# or pow results both libm and V8 round alike, since the JavaScript must match exactly.
VECTORS: Final[list[tuple[str, str, dict[str, Any]]]] = [
    (
        "welcome task",
        "repeat_multiply",
        {"initial": 1.0000054, "factor": 1.00000043, "times": 1000000},
    ),
    ("times 0 gives initial", "repeat_multiply", {"initial": 2.5, "factor": 7.0, "times": 0}),
    (
        "negative factor, odd times",
        "repeat_multiply",
        {"initial": -1.5, "factor": -0.75, "times": 7},
    ),
    ("integer arguments", "repeat_multiply", {"initial": 3, "factor": 2, "times": 10}),
    (
        "welcome task, exact",
        "repeat_multiply",
        {"initial": 1.0000054, "factor": 1.00000043, "times": 1000000, "exact": True},
    ),
    (
        "exact, times 0",
        "repeat_multiply",
        {"initial": 2.5, "factor": 7.0, "times": 0, "exact": True},
    ),
    (
        "exact false is pow",
        "repeat_multiply",
        {"initial": 1.5, "factor": 1.1, "times": 50, "exact": False},
    ),
    (
        "exact, 1.1 fifty times",
        "repeat_multiply",
        {"initial": 1.5, "factor": 1.1, "times": 50, "exact": True},
    ),
    ("seed 0, one sample", "monte_carlo_pi", {"samples": 1, "seed": 0}),
    ("seed 2**32 - 1", "monte_carlo_pi", {"samples": 1000, "seed": 4294967295}),
    ("seed 42, 10**4 samples", "monte_carlo_pi", {"samples": 10000, "seed": 42}),
    ("seed 123456789, 10**5 samples", "monte_carlo_pi", {"samples": 100000, "seed": 123456789}),
    (
        "whole set, crossing the boundary",
        "mandelbrot_tile",
        {"region": [-2.0, 0.5, -1.25, 1.25], "width": 32, "height": 24, "max_iter": 100},
    ),
    (
        "one pixel at the origin, max_iter 1",
        "mandelbrot_tile",
        {"region": [0.0, 1.0, 0.0, 1.0], "width": 1, "height": 1, "max_iter": 1},
    ),
    (
        "outside the set",
        "mandelbrot_tile",
        {"region": [2.0, 3.0, 2.0, 3.0], "width": 4, "height": 3, "max_iter": 50},
    ),
    (
        "seahorse valley, 1000 iterations",
        "mandelbrot_tile",
        {"region": [-0.75, -0.74, 0.1, 0.11], "width": 16, "height": 16, "max_iter": 1000},
    ),
    (
        "integer region, one column",
        "mandelbrot_tile",
        {"region": [-2, 1, -1, 1], "width": 1, "height": 40, "max_iter": 20},
    ),
    ("lo = hi", "prime_count", {"lo": 10, "hi": 10}),
    ("lo = hi = 0", "prime_count", {"lo": 0, "hi": 0}),
    ("lo 0, hi 2", "prime_count", {"lo": 0, "hi": 2}),
    ("lo 0, hi 3", "prime_count", {"lo": 0, "hi": 3}),
    ("lo 1, hi 3", "prime_count", {"lo": 1, "hi": 3}),
    ("lo 2, hi 3", "prime_count", {"lo": 2, "hi": 3}),
    ("lo 2, hi 100", "prime_count", {"lo": 2, "hi": 100}),
    ("a square: 25 to 26", "prime_count", {"lo": 25, "hi": 26}),
    ("below 10**6", "prime_count", {"lo": 0, "hi": 1000000}),
    ("across segment boundaries", "prime_count", {"lo": 262000, "hi": 1049000}),
    ("10**5 below 10**12", "prime_count", {"lo": 999999900000, "hi": 1000000000000}),
    (
        "difficulty 0: start",
        "hash_search",
        {"prefix": "abc", "difficulty": 0, "start": 5, "count": 10},
    ),
    (
        "found, difficulty 8",
        "hash_search",
        {"prefix": "browsergrid", "difficulty": 8, "start": 0, "count": 5000},
    ),
    ("none found", "hash_search", {"prefix": "x", "difficulty": 24, "start": 0, "count": 500}),
    (
        "non-ASCII prefix",
        "hash_search",
        {"prefix": "ñandú → 🙂", "difficulty": 6, "start": 100, "count": 1000},
    ),
    (
        "empty prefix, one nonce",
        "hash_search",
        {"prefix": "", "difficulty": 1, "start": 7, "count": 1},
    ),
    (
        "nonces near 2**53",
        "hash_search",
        {"prefix": "big:", "difficulty": 10, "start": 2**53 - 3000, "count": 3000},
    ),
]


def build() -> dict[str, Any]:
    return {
        "about": "Op test vectors: results computed by the Python ops "
        "(python -m tests.ops.make_op_vectors); Python, Node and Chromium check them.",
        "vectors": [
            {"name": name, "op": op, "args": args, "result": run_op(op, args)}
            for name, op, args in VECTORS
        ],
    }


def main() -> None:
    data = build()
    lines = [json.dumps(v, ensure_ascii=False, allow_nan=False) for v in data["vectors"]]
    text = (
        f'{{"about": {json.dumps(data["about"])},\n "vectors": [\n  '
        + ",\n  ".join(lines)
        + "\n]}\n"
    )
    assert json.loads(text) == data
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH} ({len(text.encode())} bytes, {len(lines)} vectors)")


if __name__ == "__main__":
    main()
