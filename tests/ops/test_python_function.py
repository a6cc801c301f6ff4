"""The ``python`` op's runner (ops/_python_function.py): a function sent as source, checked
by its hash, compiled once, its failures sent back as its own traceback."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browsergrid.ops import _python_function as runner
from browsergrid.ops import run_op, verify_op
from browsergrid.ops._python_function import FunctionError, run, run_json, verify
from tests._wheels import make_wheel, ref


def task(source: str, name: str = "f", *args: Any, **kwargs: Any) -> dict[str, Any]:
    digest = hashlib.sha256(source.encode()).hexdigest()
    return {
        "function": {"name": name, "source": source, "sha256": digest},
        "args": list(args),
        "kwargs": kwargs,
    }


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    runner._compiled.clear()
    yield
    runner._compiled.clear()


def test_runs_the_function_with_its_arguments() -> None:
    source = "import math\n\ndef f(n, *, k=1):\n    return math.factorial(n) * k\n"
    assert run(task(source, "f", 5, k=2)) == 240
    assert run({"function": task(source)["function"], "args": [3]}) == 6  # kwargs optional
    assert run_op("python", task(source, "f", 4)) == 24


def test_the_runner_uses_the_standard_library_only() -> None:
    tree = ast.parse(Path(runner.__file__).read_text(encoding="utf-8"))
    modules = {
        alias.name.partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(str(m).startswith("browsergrid") for m in modules)
    assert all(str(m).partition(".")[0] in sys.stdlib_module_names for m in modules)


def test_a_hash_that_does_not_match_the_source_is_refused() -> None:
    bad = task("def f():\n    return 1\n")
    bad["function"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"^python: the sha256 of f's source does not match"):
        run(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "'function' must be an object"),
        ({"function": "def f(): pass"}, "'function' must be an object"),
        ({"function": {"name": "1f", "source": "", "sha256": ""}}, "must be a Python identifier"),
        ({"function": {"name": "f", "source": 1, "sha256": ""}}, "must be strings"),
        ({**task("def f():\n    return 1\n"), "args": {}}, "'args' must be an array"),
        ({**task("def f():\n    return 1\n"), "kwargs": []}, "'kwargs' must be an object"),
        (task("x = 1\n"), "the source does not define a function 'f'"),
    ],
)
def test_a_malformed_task_raises_value_error(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(args)


def test_a_syntax_error_comes_back_as_function_error() -> None:
    with pytest.raises(FunctionError, match="SyntaxError") as caught:
        run(task("def f(:\n    return 1\n"))
    assert "line 1" in str(caught.value)


def test_an_exception_comes_back_as_the_functions_own_traceback() -> None:
    source = "def f(x):\n    y = x + 1\n    return helper(y)\n\ndef helper(y):\n    return y / 0\n"
    with pytest.raises(FunctionError) as caught:
        run(task(source, "f", 1))
    # Python 3.13 leaves out a caret line that would underline the whole statement
    whole_line = "           ^^^^^^^^^\n" if sys.version_info < (3, 13) else ""
    assert str(caught.value) == (
        "Traceback (most recent call last):\n"
        '  File "<browsergrid:f>", line 3, in f\n'
        "    return helper(y)\n"
        f"{whole_line}"
        '  File "<browsergrid:f>", line 6, in helper\n'
        "    return y / 0\n"
        "           ~~^~~\n"
        "ZeroDivisionError: division by zero"
    )
    assert "_python_function.py" not in str(caught.value)  # the runner's frames left out


def test_an_import_that_fails_at_module_level_is_a_function_error() -> None:
    with pytest.raises(FunctionError, match="ModuleNotFoundError: No module named 'nope_x'"):
        run(task("import nope_x\n\ndef f():\n    return 1\n"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return {1, 2}", r"^f returned a value JSON cannot carry \(set\)"),
        ("return float('nan')", r"^f returned nan, which JSON cannot carry$"),
        ("return [1, b'x']", r"^f returned a value JSON cannot carry \(list\)"),
    ],
)
def test_a_result_json_cannot_carry_is_a_function_error(body: str, message: str) -> None:
    with pytest.raises(FunctionError, match=message):
        run(task(f"def f():\n    {body}\n"))


def test_each_source_is_compiled_once_and_kept_by_its_hash() -> None:
    source = "calls = []\n\ndef f(x):\n    calls.append(x)\n    return len(calls)\n"
    assert [run(task(source, "f", i)) for i in range(3)] == [1, 2, 3]  # one module namespace
    assert list(runner._compiled) == [(task(source)["function"]["sha256"], "", "")]
    other = "def f(x):\n    return -x\n"
    assert run(task(other, "f", 3)) == -3
    assert len(runner._compiled) == 2


def test_the_cache_keeps_the_most_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_KEPT", 2)
    sources = [f"def f():\n    return {i}\n" for i in range(3)]
    for source in sources:
        run(task(source))
    kept = [(task(s)["function"]["sha256"], "", "") for s in sources[1:]]
    assert list(runner._compiled) == kept


def test_a_cached_hash_with_another_name_is_compiled_again() -> None:
    source = "def f():\n    return 1\n\ndef g():\n    return 2\n"
    assert run(task(source, "f")) == 1
    assert run(task(source, "g")) == 2


def test_run_json_is_the_entry_for_pyodide() -> None:
    source = "def f(a, b=0):\n    return [a, b]\n"
    assert json.loads(run_json(json.dumps(task(source, "f", 1, b=2)))) == {"result": [1, 2]}
    failed = json.loads(run_json(json.dumps(task("def f():\n    return 1 / 0\n"))))
    assert failed["error"].startswith("Traceback (most recent call last):")
    assert json.loads(run_json("{}"))["error"].startswith("python: 'function' must be")


def test_verify_runs_the_function_here_and_compares() -> None:
    args = task("def f(n):\n    return n * 2\n", "f", 4)
    assert verify(args, 8) is True
    assert verify(args, 9) is False
    assert verify_op("python", args, 8) is True
    assert verify(task("def f():\n    return 1 / 0\n"), 1) is False


# --- environments: pure wheels unpacked once per environment (what a tab does) ---------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(runner, "HOME", str(tmp_path))
    yield tmp_path
    runner._enter(("", ""))
    runner._places.clear()
    runner._parked.clear()
    for name in [n for n in sys.modules if n.startswith("tinypkg")]:
        del sys.modules[name]


def environment(*wheels: tuple[str, bytes]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A task's ``environment`` of ``wheels`` and the contents its refs name."""
    return (
        {"wheels": {name: ref(data) for name, data in wheels}},
        {hashlib.sha256(data).hexdigest(): data for _, data in wheels},
    )


USES_TINYPKG = "def f():\n    import tinypkg\n    return tinypkg.VALUE\n"


def test_an_environment_is_unpacked_once_and_its_version_is_the_one_imported(home: Path) -> None:
    one, one_contents = environment(
        make_wheel("tinypkg", "1.0", {"tinypkg/__init__.py": "VALUE = '1.0'\n"})
    )
    two, two_contents = environment(
        make_wheel("tinypkg", "2.0", {"tinypkg/__init__.py": "VALUE = '2.0'\n"})
    )
    first = {**task(USES_TINYPKG), "environment": one}
    second = {**task(USES_TINYPKG), "environment": two}
    results = [
        run(first, one_contents),
        run(second, two_contents),
        run(first, {}),  # unpacked already: the wheels are not read again
        run(second, {}),
    ]
    assert results == ["1.0", "2.0", "1.0", "2.0"]
    env_id, native = runner.environment_of(first) or ("", True)
    assert native is False and (home / "environments" / env_id / "tinypkg").is_dir()
    assert len(list((home / "environments").iterdir())) == 2


def test_the_environment_id_is_the_hash_of_its_sorted_wheel_listing() -> None:
    digest = "a" * 64
    listing = f"a-1-py3-none-any.whl {digest}\nb-1-py3-none-any.whl {digest}\n"
    expected = hashlib.sha256(listing.encode()).hexdigest()
    wheels = {"b-1-py3-none-any.whl": digest, "a-1-py3-none-any.whl": digest}
    assert runner.environment_id(wheels) == expected


def test_a_compiled_wheel_makes_a_native_environment_that_pyodide_refuses(home: Path) -> None:
    name, data = make_wheel(
        "tinypkg", "1.0", {"tinypkg/__init__.py": ""}, tag="cp311-cp311-manylinux_2_17_x86_64"
    )
    env, contents = environment((name, data))
    args = {**task(USES_TINYPKG), "environment": env}
    assert runner.environment_of(args) == (runner.environment_id({name: ref(data)["$blob"]}), True)
    with pytest.raises(ValueError, match=r"holds compiled code, which this worker cannot load"):
        run(args, contents)


@pytest.mark.parametrize(
    ("environment_value", "message"),
    [
        ({"wheels": {}}, "whose 'wheels' names 1 wheel or more"),
        ("sympy", "whose 'wheels' names 1 wheel or more"),
        (
            {"wheels": {"not-a-wheel.zip": {"$blob": "a" * 64, "size": 1}}},
            "is not a wheel's file name",
        ),
        ({"wheels": {"a-1-py3-none-any.whl": "x"}}, "wheel a-1-py3-none-any.whl must be a ref"),
    ],
)
def test_a_malformed_environment_is_refused(environment_value: Any, message: str) -> None:
    args = {**task(USES_TINYPKG), "environment": environment_value}
    with pytest.raises(ValueError, match=message):
        runner.environment_of(args)


def test_a_wheel_whose_bytes_do_not_match_its_ref_is_refused(home: Path) -> None:
    name, data = make_wheel("tinypkg", "1.0", {"tinypkg/__init__.py": ""})
    env, _ = environment((name, data))
    args = {**task(USES_TINYPKG), "environment": env}
    with pytest.raises(ValueError, match="has other bytes than its SHA-256"):
        run(args, {ref(data)["$blob"]: data + b"tampered"})  # type: ignore[dict-item]


def test_run_json_takes_the_wheels_from_the_contents_it_is_given(home: Path) -> None:
    env, contents = environment(
        make_wheel("tinypkg", "3.0", {"tinypkg/__init__.py": "VALUE = 3\n"})
    )
    text = json.dumps({**task(USES_TINYPKG), "environment": env})
    assert json.loads(run_json(text, contents)) == {"result": 3}


def test_a_child_process_serves_tasks_line_by_line(tmp_path: Path) -> None:
    """``python _python_function.py --serve HOME``: the Python worker's child (what the
    function prints goes to stderr, never into the answers)."""
    source = "def f(n):\n    print('noise')\n    return n * 2\n"
    blob = tmp_path / "blob"
    blob.write_bytes(b"12")
    digest = hashlib.sha256(b"12").hexdigest()
    argument = {"$blob": digest, "size": 2, "format": "json"}
    reads = "import sys\n\ndef f():\n    return sys.stdin.read()\n"
    requests = [
        {"id": 1, "args": task(source, "f", 21)},
        {"id": 2, "args": task(source, "f", argument), "files": {digest: str(blob)}},
        {"id": 3, "args": task("def f():\n    return 1 / 0\n")},
        {"id": 4, "args": {"function": "nonsense"}},
        {"id": 5, "args": task(reads)},  # an empty stdin: never the requests that follow
        {"id": 6, "args": task(source, "f", 1)},
    ]
    done = subprocess.run(
        [sys.executable, "-I", runner.__file__, "--serve", str(tmp_path)],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[:2] == [{"id": 1, "result": 42}, {"id": 2, "result": 24}]
    assert answers[2]["function"] is True and "ZeroDivisionError" in answers[2]["error"]
    assert answers[4:] == [{"id": 5, "result": ""}, {"id": 6, "result": 2}]
    assert answers[3] == {
        "id": 4,
        "error": "ValueError: python: 'function' must be an object with name, source and sha256",
        "function": False,
    }
    assert done.stderr.count("noise") == 3
