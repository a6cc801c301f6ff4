"""What a submit of ``python`` tasks bringing their own code must be (server/_submit.py):
a bundle is a ref, an environment is well formed and no larger than
``--max-environment-bytes``; the scheduler learns each task's environment from its
arguments."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from browsergrid.config import ServeConfig
from browsergrid.core import Environment
from browsergrid.errors import SubmitError
from browsergrid.ops._python_function import environment_id
from browsergrid.server._submit import check_tasks, task_environment

SOURCE = "def f():\n    return 1\n"
FUNCTION = {"name": "f", "source": SOURCE, "sha256": hashlib.sha256(SOURCE.encode()).hexdigest()}
PURE = "tinypkg-1.0-py3-none-any.whl"
NATIVE = "fastpkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"


def ref(size: int, fill: str = "a") -> dict[str, Any]:
    return {"$blob": fill * 64, "size": size, "format": "bytes"}


def check(item: dict[str, Any], limit: int = 1000) -> None:
    config = ServeConfig(max_environment_bytes=limit)
    sizes = {"a" * 64: 600, "b" * 64: 400, "c" * 64: 10}
    check_tasks("python", [item], {"python"}, config, blob_size=sizes.get)


def test_an_environment_within_the_limit_is_taken() -> None:
    check(
        {"function": FUNCTION, "environment": {"wheels": {PURE: ref(600), NATIVE: ref(400, "b")}}}
    )


def test_an_environment_over_the_limit_is_refused_naming_the_option() -> None:
    item = {
        "function": FUNCTION,
        "environment": {"wheels": {PURE: ref(600), NATIVE: ref(400, "b")}},
    }
    with pytest.raises(
        SubmitError, match=r"1,000 bytes of wheels; .* at most 999 \(--max-envi"
    ) as refused:
        check(item, limit=999)
    assert refused.value.code == "environment_too_large"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"function": {**FUNCTION, "bundle": "zip bytes"}}, "a bundle must be a ref"),
        ({"function": FUNCTION, "environment": {"wheels": {}}}, "names 1 wheel or more"),
        (
            {"function": FUNCTION, "environment": {"wheels": {"x.tar.gz": ref(10, "c")}}},
            "not a wheel's",
        ),
    ],
)
def test_malformed_code_is_refused_as_bad_args(item: dict[str, Any], message: str) -> None:
    with pytest.raises(SubmitError, match=message) as refused:
        check(item)
    assert refused.value.code == "bad_args"


def test_a_custom_op_may_have_an_argument_named_environment() -> None:
    config = ServeConfig()
    check_tasks("my_op", [{"environment": "prod"}], {"my_op"}, config)
    assert task_environment({"environment": "prod"}) is None


def test_the_scheduler_learns_the_environment_and_whether_it_is_native() -> None:
    pure = {"environment": {"wheels": {PURE: ref(600)}}}
    mixed = {"environment": {"wheels": {PURE: ref(600), NATIVE: ref(400, "b")}}}
    assert task_environment(pure) == Environment(environment_id({PURE: "a" * 64}), False)
    found = task_environment(mixed)
    assert found is not None and found.native
    assert task_environment({"args": []}) is None
