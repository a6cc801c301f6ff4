"""Module-level functions the tests send as ``python`` tasks (tests/client/test_function.py,
tests/e2e/test_python_functions.py). Their line numbers matter to some tests: add new ones
at the end."""

from __future__ import annotations

import functools
import math
import os.path
from collections import Counter as Tally
from json import dumps

import msgspec  # not in the standard library

LIMIT = 10


def sieve(n: int) -> list[int]:
    """The primes below ``n``."""
    if n < 3:
        return []
    marks = bytearray([1]) * n
    marks[0] = marks[1] = 0
    for p in range(2, math.isqrt(n - 1) + 1):
        if marks[p]:
            marks[p * p :: p] = bytearray(len(range(p * p, n, p)))
    return [i for i, mark in enumerate(marks) if mark]


def divide(a, b=2):
    return a / b


def fails(x):
    y = x + 1
    return y / 0


def uses_helper(n):
    return helper(n) + LIMIT


def helper(n):
    return n


def uses_msgspec(x):
    return msgspec.json.encode(x)


def counts(words, *, top=1):
    return Tally(words).most_common(top)


def joined(*parts):
    return os.path.join(*parts) + dumps(len(parts))


def recursive(n):
    return 1 if n <= 1 else n * recursive(n - 1)


def returns_a_set(n):
    return set(range(n))


def with_nested(n):
    def square(k):
        return k * k

    class Box:
        size = 3
        area = size * size

    return sum(square(k) for k in range(n)) + Box.area


def outer():
    def inner():
        return 1

    return inner


def closure(k):
    def add(n):
        return n + k

    return add


@functools.lru_cache
def wrapped(n):
    return n


def registry(fn):
    return fn


@registry
def decorated(n):
    return n + 1


def default_uses_global(n, limit=LIMIT):
    return n + limit


async def coroutine(n):
    return n


def generator(n):
    yield n


try:  # names bound elsewhere than by a top-level import statement
    import tomllib as toml
    from os.path import basename

    import msgspec.json as encoder
except ImportError:  # pragma: no cover
    pass


def parses(text):
    return toml.loads(text)["a"], basename("/x/y")


def encodes(x):
    return encoder.encode(x)


def echo(*parts):
    return list(parts)
