"""Custom ops from a Python file (``--ops-python``): ``load_ops_module``, ``load_ops_files``."""

from __future__ import annotations

from pathlib import Path

import pytest

from browsergrid.errors import ConfigError
from browsergrid.ops import Op, load_ops_files, load_ops_module, run_op
from browsergrid.ops._args import agree_exactly
from tests._support import FIXTURES

MY_OPS = FIXTURES / "ops_python" / "my_ops.py"
NAMES = ["add", "common", "fails", "noisy", "root"]  # not gcd (imported), _helper, verify_...


def write(tmp_path: Path, text: str, name: str = "ops.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_public_function_defined_in_the_file_is_an_op() -> None:
    ops = load_ops_module(MY_OPS)
    assert sorted(ops) == NAMES
    assert all(isinstance(op, Op) and op.name == name for name, op in ops.items())
    assert run_op("add", {"a": 1, "b": 2}, ops=ops) == 3
    assert run_op("common", {"a": 12, "b": 18}, ops=ops) == 6
    with pytest.raises(RuntimeError, match="no luck"):
        run_op("fails", {"what": "luck"}, ops=ops)


def test_verify_and_agree_are_the_files_or_the_defaults() -> None:
    ops = load_ops_module(MY_OPS)
    assert ops["add"].verify({"a": 1, "b": 2}, 3) is True
    assert ops["add"].verify({"a": 1, "b": 2}, 4) is False
    assert ops["root"].agree({}, 2.0, 2.0 + 1e-12) is True  # agree_root
    assert ops["root"].agree({}, 2.0, 2.1) is False
    assert ops["add"].agree is agree_exactly
    assert ops["root"].verify({"x": 4}, 2.0) is True  # by running it, compared with agree
    assert ops["root"].verify({"x": 4}, 3.0) is False
    assert ops["fails"].verify({"what": "x"}, 1) is False  # it raises: not verified


def test_quick_is_the_files_or_never() -> None:
    ops = load_ops_module(MY_OPS)
    assert ops["add"].quick is not None and ops["add"].quick({"a": 1, "b": 2}) is True
    common = ops["common"].quick
    assert common is not None
    assert common({"a": 12, "b": 18}) is True
    assert common({"a": 10**7, "b": 18}) is False
    assert common({}) is False  # quick_common raises: not quick
    assert ops["root"].quick is None


def test_the_lease_is_the_one_given() -> None:
    assert load_ops_module(MY_OPS)["add"].lease_timeout_s == 60.0
    assert load_ops_module(MY_OPS, lease_timeout_s=5.0)["add"].lease_timeout_s == 5.0


def test_loading_a_file_twice_gives_the_same_ops() -> None:
    assert load_ops_module(MY_OPS)["add"] is load_ops_module(str(MY_OPS))["add"]


def test_a_result_json_cannot_carry_is_a_value_error(tmp_path: Path) -> None:
    ops = load_ops_module(write(tmp_path, "def pair(args):\n    return {1, 2}\n"))
    with pytest.raises(ValueError, match=r"^pair returned a value JSON cannot carry \(set\)"):
        ops["pair"].run({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def prime_count(args):\n    return 1\n", "defines prime_count, the name of a built-in"),
        ("def python(args):\n    return 1\n", "defines python, the name of a built-in op"),
        ("X = 1\n", "defines no op"),
        ("def verify_x(args, r):\n    return True\n", "defines verify_x but no op 'x'"),
        (
            "def x(args):\n    return 1\n\ndef agree_x(a):\n    return 1\n",
            r"agree_x .* \(args, a, b\)",
        ),
        ("def x():\n    return 1\n", r"x in .* must take \(args\)"),
        ("def quick_y(args):\n    return True\n", "defines quick_y but no op 'y'"),
        ("def y(args):\n    return 1\n\ndef quick_y():\n    return 1\n", r"quick_y .* \(args\)"),
        ("async def x(args):\n    return 1\n", "must be a plain def"),
        ("raise RuntimeError('broken')\n", "failed to load:.*RuntimeError: broken"),
        ("def x(args:\n", "failed to load:.*SyntaxError"),
    ],
)
def test_a_file_that_cannot_give_ops_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"(?s)^--ops-python: .*{message}"):
        load_ops_module(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--ops-python: no file at"):
        load_ops_module(tmp_path / "nope.py")


def test_several_files_give_every_op_and_no_op_twice(tmp_path: Path) -> None:
    other = write(tmp_path, "def negate(args):\n    return -args['x']\n", "other.py")
    assert sorted(load_ops_files([MY_OPS, other])) == sorted([*NAMES, "negate"])
    assert load_ops_files([]) == {}
    twice = write(tmp_path, "def add(args):\n    return 0\n", "twice.py")
    with pytest.raises(ConfigError, match=r"op 'add' is defined in .*my_ops.py and in .*twice"):
        load_ops_files([MY_OPS, twice])
