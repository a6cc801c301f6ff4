"""``function_spec`` and ``function_task``: a function as the source of a ``python`` task,
and the arguments checked before anything is sent (no network)."""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import pytest

from browsergrid.client._function import function_calls, function_spec, function_task, job_tasks
from browsergrid.ops import FunctionError, run_op
from tests.client import _functions as f


def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as a worker runs it: from the sent source only."""
    return run_op("python", function_task(fn, args, kwargs))


def test_the_spec_is_the_source_its_hash_and_the_name() -> None:
    spec = function_spec(f.sieve)
    assert set(spec) == {"name", "source", "sha256"}
    assert spec["name"] == "sieve"
    assert spec["sha256"] == hashlib.sha256(spec["source"].encode()).hexdigest()


def test_the_source_carries_the_standard_library_imports_the_function_uses() -> None:
    source = function_spec(f.sieve)["source"]
    assert source.startswith("from __future__ import annotations\nimport math\n\ndef sieve(")
    assert "msgspec" not in source and "functools" not in source and "LIMIT" not in source
    assert run(f.sieve, 30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_imports_keep_their_form_one_name_each_in_module_order() -> None:
    assert function_spec(f.counts)["source"].startswith(
        "from collections import Counter as Tally\n\ndef counts("
    )
    assert function_spec(f.joined)["source"].startswith(
        "import os.path\nfrom json import dumps\n\ndef joined("
    )
    assert run(f.counts, ["a", "b", "a"], top=1) == [("a", 2)]
    assert run(f.joined, "a", "b") == "a/b2"


def test_a_function_without_imports_or_annotations_is_its_def_alone() -> None:
    assert function_spec(f.divide)["source"] == "def divide(a, b=2):\n    return a / b\n"


def test_recursion_nested_functions_and_classes_are_fine() -> None:
    assert run(f.recursive, 5) == 120
    assert run(f.with_nested, 3) == 0 + 1 + 4 + 9


def test_a_decorator_that_returns_the_function_is_left_out() -> None:
    source = function_spec(f.decorated)["source"]
    assert source == "def decorated(n):\n    return n + 1\n"
    assert run(f.decorated, 1) == 2


def test_the_spec_is_made_once_per_function() -> None:
    first = function_spec(f.sieve)
    assert function_spec(f.sieve) == first
    assert function_spec(f.sieve) is not first  # a copy: the cached one stays intact
    task = function_task(f.sieve, (10,), {})
    assert task["function"] is function_task(f.sieve, (20,), {})["function"]


def test_a_helper_takes_its_module_along_whose_imports_must_be_there_on_workers() -> None:
    # uses_helper needs LIMIT and helper: its module travels, and that module imports
    # msgspec when it is imported, which a worker lacks: refused, naming file, line, fix
    message = (
        r"_functions.py, line 13: imports msgspec, which a worker would lack .*add its "
        "package to packages=, or move the import inside the function that needs it"
    )
    with pytest.raises(ValueError, match=message):
        function_spec(f.uses_helper)
    with pytest.raises(ValueError, match=r"_functions.py, line 13: imports msgspec"):
        function_spec(f.default_uses_global)  # a global read by a default value, too


def test_a_module_outside_the_standard_library_is_refused() -> None:
    message = (
        r"uses_msgspec uses msgspec \(import msgspec\), which is not in the standard library; "
        "browser workers cannot import it"
    )
    with pytest.raises(ValueError, match=message):
        function_spec(f.uses_msgspec)


def test_a_lambda_is_refused() -> None:
    with pytest.raises(TypeError, match="a lambda cannot be sent; define the function with def"):
        function_spec(lambda x: x)


def test_a_nested_function_and_a_closure_are_refused() -> None:
    with pytest.raises(TypeError, match=r"outer.<locals>.inner is defined inside a function"):
        function_spec(f.outer())
    with pytest.raises(TypeError, match=r"closure.<locals>.add is defined inside a function"):
        function_spec(f.closure(2))


def test_a_closure_at_module_level_is_refused_naming_its_variables() -> None:
    add = f.closure(2)
    add.__qualname__ = "add"  # as if it were defined at module level
    with pytest.raises(TypeError, match=r"add uses variables of an enclosing function \('k'\)"):
        function_spec(add)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (f.wrapped, "wrapped is wrapped by a decorator; send the undecorated function"),
        (f.coroutine, "coroutine is an async function"),
        (f.generator, "generator is a generator function"),
        (len, "is a builtin_function_or_method, not a function defined with def"),
        (functools.partial(f.divide, 1), "is a partial, not a function defined with def"),
        (math.isqrt, "not a function defined with def"),
        (str, "is a type, not a function defined with def"),
        ("sieve".upper, "not a function defined with def"),
    ],
)
def test_anything_but_a_plain_function_is_refused(fn: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        function_spec(fn)


def test_a_method_is_refused() -> None:
    class Sieve:
        def run(self, n: int) -> int:
            return n

    with pytest.raises(TypeError, match=r"Sieve\.run is a method"):
        function_spec(Sieve().run)


def test_a_function_without_source_is_refused() -> None:
    namespace: dict[str, Any] = {}
    exec("def typed_in(n):\n    return n\n", namespace)
    with pytest.raises(ValueError, match="the source of typed_in is not available"):
        function_spec(namespace["typed_in"])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1, {2}), {}, r"^argument 2 of divide \(a set\) cannot be sent as JSON; only dict"),
        ((math.nan,), {}, r"^argument 1 of divide \(a float nan\) cannot be sent as JSON"),
        ((1,), {"b": math.inf}, r"^keyword argument 'b' of divide \(a float inf\) cannot"),
        (([1, {"a": [b"x"]}],), {}, r"^argument 1 of divide \(at \[1\]\['a'\]\[0\]: a bytes\)"),
        (({1: 2},), {}, r"^argument 1 of divide \(at \[1\]: an int key\) cannot be sent"),
        ((object(),), {}, r"^argument 1 of divide \(an object\) cannot be sent as JSON"),
    ],
)
def test_an_argument_json_cannot_carry_is_refused_by_name(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        function_task(f.divide, args, kwargs)


def test_arguments_that_do_not_fit_the_parameters_are_refused() -> None:
    with pytest.raises(TypeError, match=r"^divide\(\): too many positional arguments"):
        function_task(f.divide, (1, 2, 3), {})
    with pytest.raises(TypeError, match=r"^divide\(\): missing a required argument: 'a'"):
        function_task(f.divide, (), {})
    with pytest.raises(TypeError, match=r"^counts\(\): too many positional arguments"):
        function_task(f.counts, (["a"], 2), {})


def test_json_values_pass_and_tuples_go_as_lists() -> None:
    value = {"a": [1, 2.5, None, True, "x", (3, 4)], "b": {"c": []}}
    task = function_task(f.divide, (value,), {"b": (1,)})
    assert task["args"] == [value] and task["kwargs"] == {"b": (1,)}


def test_map_calls_zip_the_iterables_and_name_the_bad_item() -> None:
    calls = list(function_calls(f.divide, [[1, 2, 3], [4, 5]]))
    assert [(c["args"]) for c in calls] == [[1, 4], [2, 5]]
    with pytest.raises(TypeError, match=r"^item 1: argument 1 of divide \(a set\)"):
        list(function_calls(f.divide, [[1, {2}]]))
    with pytest.raises(TypeError, match="needs at least one iterable"):
        list(function_calls(f.divide, []))
    with pytest.raises(ValueError, match="imports msgspec"):
        next(iter(function_calls(f.uses_helper, [[]])))  # refused before any item


def test_job_tasks_keeps_the_op_form() -> None:
    args = [{"lo": 0, "hi": 10}]
    assert job_tasks("prime_count", (args,)) == ("prime_count", args)
    with pytest.raises(TypeError, match="takes one iterable of argument dicts"):
        job_tasks("prime_count", ())
    op, calls = job_tasks(f.divide, ([1],))
    assert op == "python" and [c["args"] for c in calls] == [[1]]


def test_the_remote_traceback_shows_the_functions_line() -> None:
    with pytest.raises(FunctionError) as caught:
        run(f.fails, 1)
    text = str(caught.value)
    assert text.startswith("Traceback (most recent call last):\n")
    assert 'File "<browsergrid:fails>", line 3, in fails\n    return y / 0' in text
    assert text.endswith("ZeroDivisionError: division by zero")


def test_a_name_bound_inside_a_try_is_imported_from_its_value() -> None:
    source = function_spec(f.parses)["source"]
    assert source.startswith("from posixpath import basename\nimport tomllib as toml\n\n")
    assert run(f.parses, "a = 1") == (1, "y")
    with pytest.raises(ValueError, match=r"encodes uses msgspec \(import msgspec.json as encoder"):
        function_spec(f.encodes)
