"""tests/fixtures/op_vectors.json against the Python ops: each vector's result is what
``run_op`` computes and what ``verify_op`` accepts; tampered and malformed results are not.
(tests/js/ops.test.mjs and tests/e2e/test_browser_ops.py check the same file in JavaScript.)
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from typing import Any

import pytest

from browsergrid.ops import OPS, run_op, verify_op
from tests._support import FIXTURES

VECTORS: list[dict[str, Any]] = json.loads(
    (FIXTURES / "op_vectors.json").read_text(encoding="utf-8")
)["vectors"]
IDS = [f"{vector['op']}: {vector['name']}" for vector in VECTORS]


def tampered(op: str, args: dict[str, Any], result: Any) -> list[Any]:
    """Wrong answers a cheating or broken worker might send, each close to the right one."""
    if op == "repeat_multiply":
        wrong = [result + 1.0, result * (1 + 1e-9), -result]
        if args.get("exact"):
            wrong.append(math.nextafter(result, math.inf))
        return wrong
    if op == "monte_carlo_pi":
        return [
            {**result, "hits": result["hits"] + 1},
            {**result, "hits": result["hits"] - 1},
            {**result, "samples": result["samples"] + 1},
            {**result, "hits": float(result["hits"])},
        ]
    if op == "mandelbrot_tile":
        first, last = copy.deepcopy(result), copy.deepcopy(result)
        first["counts"][0] += 1
        last["counts"][-1] -= 1
        return [
            first,
            last,
            {**result, "counts": result["counts"][:-1]},
            {**result, "width": result["height"], "height": result["width"]}
            if result["width"] != result["height"]
            else {**result, "width": result["width"] + 1},
        ]
    if op == "prime_count":
        return [result + 1, result - 1, float(result)]
    assert op == "hash_search"
    nonce, digest = result["nonce"], result["hash"]
    if nonce is None:
        start = args["start"]
        return [
            {"nonce": start, "hash": None},
            {"nonce": start, "hash": "0" * 64},
            {"nonce": start + args["count"] - 1, "hash": "f" * 64},
        ]
    wrong = [
        {"nonce": None, "hash": None},
        {"nonce": nonce, "hash": digest.upper()},
        {"nonce": nonce, "hash": digest[:-1] + ("0" if digest[-1] != "0" else "1")},
        {"nonce": nonce + 1, "hash": digest},
        {"nonce": nonce - 1, "hash": digest},
        {"nonce": str(nonce), "hash": digest},
    ]
    return wrong


MALFORMED: list[Any] = [None, True, "1", [], {}, [1, 2], {"result": 1}, 1e308, math.nan]


def malformed(result: Any) -> list[Any]:
    """Results of the wrong shape: other JSON types, and a dict missing or adding a member."""
    shapes = list(MALFORMED)
    if isinstance(result, dict):
        for key in result:
            shapes.append({k: v for k, v in result.items() if k != key})
            shapes.append({**result, key: None} if result[key] is not None else {**result, key: 0})
        shapes.append({**result, "extra": 1})
        shapes.append(list(result.values()))
    return [shape for shape in shapes if shape != result or type(shape) is not type(result)]


def test_every_op_has_at_least_four_vectors() -> None:
    counts = Counter(vector["op"] for vector in VECTORS)
    assert set(counts) == set(OPS) - {"python"}  # tests/ops/test_python_function.py
    assert min(counts.values()) >= 4


def test_vector_names_are_unique_and_the_file_is_small() -> None:
    assert len(set(IDS)) == len(IDS)
    assert (FIXTURES / "op_vectors.json").stat().st_size < 100_000


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_run_op_gives_the_vector_result(vector: dict[str, Any]) -> None:
    result = run_op(vector["op"], vector["args"])
    assert result == vector["result"]
    assert json.loads(json.dumps(result)) == vector["result"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_verify_op_accepts_the_vector_result(vector: dict[str, Any]) -> None:
    assert verify_op(vector["op"], vector["args"], vector["result"]) is True


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_verify_op_refuses_a_tampered_result(vector: dict[str, Any]) -> None:
    wrong = tampered(vector["op"], vector["args"], vector["result"])
    assert wrong
    for result in wrong:
        assert verify_op(vector["op"], vector["args"], result) is False, result


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_verify_op_refuses_a_malformed_result_without_raising(vector: dict[str, Any]) -> None:
    for result in malformed(vector["result"]):
        assert verify_op(vector["op"], vector["args"], result) is False, result
