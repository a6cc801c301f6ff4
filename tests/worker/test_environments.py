"""The Python worker's environments (worker/_environments.py): a virtual environment per
set of wheels, made once by uv, offline, and child processes that run the functions
bringing their own code, each apart from the worker's interpreter."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browsergrid.protocol import Ref
from browsergrid.worker._environments import Environments, EnvironmentUnavailable, needs_child
from tests._wheels import make_wheel, ref

pytestmark = pytest.mark.timeout(120)

SOURCE = "def f():\n    import tinypkg, sys\n    return [tinypkg.VALUE, sys.prefix]\n"


class Blobs:
    """The blobs a test's tasks name, by SHA-256 (what a connection's ``Blobs`` serves)."""

    def __init__(self, *datas: bytes) -> None:
        self.held = {hashlib.sha256(d).hexdigest(): d for d in datas}
        self.asked: list[str] = []

    async def content(self, wanted: Ref) -> bytes:
        self.asked.append(wanted.sha256)
        return self.held[wanted.sha256]


def task(source: str = SOURCE, **extra: Any) -> dict[str, Any]:
    return {
        "function": {
            "name": "f",
            "source": source,
            "sha256": hashlib.sha256(source.encode()).hexdigest(),
        },
        "args": [],
        "kwargs": {},
        **extra,
    }


@pytest.fixture
def environments(tmp_path: Path) -> Iterator[Environments]:
    made = Environments(tmp_path / "environments")
    yield made
    made.close()


async def test_an_environment_is_made_once_and_its_tasks_run_in_it(
    environments: Environments,
) -> None:
    name, data = make_wheel("tinypkg", "1.0", {"tinypkg/__init__.py": "VALUE = 'one'\n"})
    blobs = Blobs(data)
    args = task(environment={"wheels": {name: ref(data)}})
    assert needs_child(args)
    prepared = await environments.prepare(args, blobs)
    ok, (value, prefix) = environments.run(prepared)
    assert ok and value == "one"
    assert Path(prefix).parent == environments.folder and Path(prefix).name in environments.ready()
    again = await environments.prepare(args, blobs)  # made: nothing fetched again
    assert again.python == prepared.python and blobs.asked == [ref(data)["$blob"]]
    assert environments.run(again) == (True, ["one", prefix])
    assert "tinypkg" not in sys.modules  # never in the worker's own interpreter


async def test_a_worker_making_no_new_environments_hands_the_task_back(tmp_path: Path) -> None:
    name, data = make_wheel("tinypkg", "1.0", {"tinypkg/__init__.py": "VALUE = 1\n"})
    fixed = Environments(tmp_path / "environments", new=False)
    try:
        with pytest.raises(EnvironmentUnavailable, match="makes no new ones") as refused:
            await fixed.prepare(task(environment={"wheels": {name: ref(data)}}), Blobs(data))
        assert refused.value.hand_back
    finally:
        fixed.close()


async def test_wheels_uv_cannot_install_fail_the_task_with_its_reason(
    environments: Environments,
) -> None:
    name, data = make_wheel("tinypkg", "1.0", {"tinypkg/__init__.py": ""}, tag="cp27-cp27m-win32")
    with pytest.raises(EnvironmentUnavailable, match="could not be made here") as failed:
        await environments.prepare(task(environment={"wheels": {name: ref(data)}}), Blobs(data))
    assert not failed.value.hand_back
    assert environments.ready() == []


async def test_a_child_that_dies_fails_its_task_and_the_next_one_gets_a_new_child(
    environments: Environments,
) -> None:
    dies = "def f():\n    import os\n    os._exit(3)\n"
    bundle_free = {
        "function": task(dies)["function"],
        "args": [],
        "kwargs": {},
        "environment": None,
    }
    assert not needs_child(bundle_free)
    prepared = await environments.prepare(task(dies), Blobs())
    assert environments.run(prepared) == (
        False,
        "the function's process ended (exit code 3) before it answered",
    )
    fine = await environments.prepare(task("def f():\n    return 7\n"), Blobs())
    assert environments.run(fine) == (True, 7)


async def test_a_failing_function_reports_its_traceback(environments: Environments) -> None:
    prepared = await environments.prepare(task("def f():\n    return 1 / 0\n"), Blobs())
    ok, message = environments.run(prepared)
    assert not ok and message.startswith("Traceback") and "ZeroDivisionError" in message


async def test_a_function_writing_into_the_answers_costs_no_other_task(
    environments: Environments,
) -> None:
    """A function that writes lines of its own into the answer pipe (it found the file
    descriptor) is not taken at its word: its child is ended, the task tried once more in
    a new child (where it does it again: its own fault), and no later task is given such
    a line as its answer."""
    forges = (
        "def f():\n    import os\n\n"
        "    for fd in range(3, 12):\n"
        "        try:\n"
        '            os.write(fd, b\'{"id": 999, "result": "forged"}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "    return 'mine'\n"
    )
    forged = await environments.prepare(task(forges), Blobs())
    assert environments.run(forged) == (False, "the function's process answered out of turn twice")
    honest = await environments.prepare(task("def f():\n    return 'second'\n"), Blobs())
    assert environments.run(honest) == (True, "second")
    assert environments.run(honest) == (True, "second")


async def test_a_bundle_alone_runs_in_an_environment_of_no_package(
    environments: Environments,
) -> None:
    """A bundle's functions see no package of the worker's own (as in a tab)."""
    source = "def f():\n    import importlib.util\n\n    return importlib.util.find_spec('httpx')\n"
    prepared = await environments.prepare(task(source), Blobs())
    assert Path(prepared.python).parent.parent.name == "bare"
    assert environments.run(prepared) == (True, None)
