"""Packages from PyPI and the client's own modules for submitted functions, end to end: a real
coordinator, real ``browsergrid worker --python-functions`` processes and real headless
Chromium. ``client.options(packages=[...])`` resolves the requirements with pip (from
PyPI: these tests need it reachable) and uploads the wheels; a tab unpacks pure-Python
wheels into its Pyodide, a Python worker makes a virtual environment of them (uv), kept in
its data directory. A compiled wheel (numpy) goes to Python workers only; what cannot work
is refused before anything is queued, saying why."""

from __future__ import annotations

import importlib
import math
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import pytest

from browsergrid import Client, SubmitError
from tests._support import Coordinator, Process
from tests.e2e._package_functions import numpy_norm, sympy_factor

pytestmark = [pytest.mark.processes, pytest.mark.timeout(150)]

SYMPY = ["sympy==1.13.3"]
NUMPY = ["numpy"]
READY = "runs the Python functions clients submit"
ENVIRONMENT = re.compile(r"[0-9a-f]{64}")  # a venv's folder: its environment's id


def url(coordinator: Coordinator) -> str:
    return f"http://127.0.0.1:{coordinator.port}"


def function_worker(
    start_worker: Callable[..., Process], coordinator: Coordinator, data: Path, *extra: str
) -> Process:
    """A worker with --python-functions and a data directory of its own, once ready."""
    worker = start_worker(coordinator.ws_url, "--python-functions", "--data-dir", str(data), *extra)
    worker.wait_for_line(lambda line: READY in line)
    return worker


def introduced(coordinator: Coordinator, count: int) -> dict[str, int]:
    """The worker ids of the ``count`` workers introduced so far: ``"tab"`` (Chrome) and
    ``"python"`` (the last of each)."""
    ids = {}
    for event in coordinator.events_named("worker_introduced", count):
        kind = "tab" if "Chrome" in event["agent"] else "python"
        ids[kind] = event["worker_id"]
    return ids


def python_results(coordinator: Coordinator, count: int) -> list[dict[str, Any]]:
    """The coordinator's ``result`` log objects of op python, once there are ``count``
    (a client may hear of a result before this process reads the coordinator's line)."""
    deadline = time.monotonic() + 15
    while True:
        found = [
            e
            for e in coordinator.events()
            if e.get("event") == "result" and e.get("op") == "python"
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} results, wanted {count}"
        time.sleep(0.05)


def python_sent(coordinator: Coordinator) -> list[dict[str, Any]]:
    """The coordinator's ``task_sent`` log objects of op python."""
    return [
        e for e in coordinator.events() if e.get("event") == "task_sent" and e["op"] == "python"
    ]


def first_result_after(futures: list[Future[Any]], started: float, timeout: float) -> float:
    """Seconds from ``started`` until the first of ``futures`` finished."""
    wait(futures, timeout, return_when="FIRST_COMPLETED")
    assert any(future.done() for future in futures), "no result in time"
    return time.perf_counter() - started


def environments(data: Path) -> list[str]:
    """The environments a worker with data directory ``data`` made (their folders)."""
    folder = data / "environments"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if ENVIRONMENT.fullmatch(p.name))


def norm(n: int) -> float:
    return math.sqrt(sum(k * k for k in range(n)))


# --- a compiled package: Python workers only ------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(150)
def test_a_compiled_package_runs_on_the_python_worker_never_in_the_tab(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    page: Any,
    tmp_path: Path,
) -> None:
    """numpy's wheel holds compiled code: with a tab and a Python worker connected, all six
    tasks go to the Python worker, which runs them in a virtual environment of its data
    directory; the tab, idle and running op python, gets none."""
    coordinator = start_coordinator("--no-welcome-task")
    page.goto(f"{coordinator.page_url}?workers=1")
    assert "python" in coordinator.event("worker_introduced")["ops"]
    data = tmp_path / "worker"
    function_worker(start_worker, coordinator, data)
    ids = introduced(coordinator, 2)
    sizes = [1, 10, 100, 1_000, 10_000, 100_000]
    with Client(url(coordinator)) as client:
        job = client.options(packages=NUMPY).submit_job(numpy_norm, sizes)
        results = list(job.results(timeout=120))
    assert [r["norm"] for r in results] == pytest.approx([norm(n) for n in sizes], rel=1e-12)
    [env_id] = environments(data)
    assert {r["prefix"] for r in results} == {str(data / "environments" / env_id)}
    assert len({r["numpy"] for r in results}) == 1
    ran = python_results(coordinator, 6)
    assert len(ran) == 6
    assert {e["worker_id"] for e in ran} == {ids["python"]}
    assert all(e["agent"].startswith("browsergrid-python/") for e in ran)
    assert not [e for e in python_sent(coordinator) if e["worker_id"] == ids["tab"]]


@pytest.mark.browser
@pytest.mark.timeout(150)
def test_a_compiled_package_task_waits_queued_until_a_python_worker_comes(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    page: Any,
    tmp_path: Path,
) -> None:
    """With only a tab connected, a numpy task is not sent, nor failed: it stays queued;
    a Python worker that connects later takes it."""
    coordinator = start_coordinator("--no-welcome-task")
    page.goto(f"{coordinator.page_url}?workers=1")
    tab = coordinator.event("worker_introduced")
    with Client(url(coordinator)) as client:
        future = client.options(packages=NUMPY).submit(numpy_norm, 5)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # a few seconds, checked all along
            assert not future.done()
            time.sleep(0.2)
        [job] = [j for j in client.jobs() if j["op"] == "python"]
        status = client.job(job["job_id"])
        assert (status["state"], status["queued"], status["leased"]) == ("running", 1, 0)
        assert (status["done"], status["failed"]) == (0, 0)
        assert python_sent(coordinator) == []
        function_worker(start_worker, coordinator, tmp_path / "worker")
        assert future.result(timeout=90)["norm"] == pytest.approx(norm(5), rel=1e-12)
        assert client.job(job["job_id"])["done"] == 1
    [ran] = python_results(coordinator, 1)
    assert ran["agent"].startswith("browsergrid-python/")
    [sent] = python_sent(coordinator)
    assert sent["worker_id"] != tab["worker_id"]


# --- refused before anything is queued ------------------------------------------------


def test_a_package_pip_cannot_find_is_refused_at_options(coordinator: Coordinator) -> None:
    with Client(url(coordinator)) as client:
        with pytest.raises(ValueError) as caught:
            client.options(packages=["browsergrid-no-such-package-xyz"])
        message = str(caught.value)
        assert message.startswith(
            "packages=['browsergrid-no-such-package-xyz'] cannot be resolved: "
        )
        assert "No matching distribution found for browsergrid-no-such-package-xyz" in message
        assert client.jobs() == []


def test_pins_that_conflict_are_refused_at_options(coordinator: Coordinator) -> None:
    """sympy 1.13.3 needs mpmath below 1.4: pip's own words say so."""
    with Client(url(coordinator)) as client:
        with pytest.raises(ValueError) as caught:
            client.options(packages=["sympy==1.13.3", "mpmath==1.4.0"])
        message = str(caught.value)
        assert "cannot be resolved" in message
        assert "conflicting dependencies" in message  # pip: "Cannot install A and B because"
        assert "mpmath==1.4.0" in message and "sympy==1.13.3" in message
        assert client.jobs() == []


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` for packages the test writes (``bgtest_*``), whose modules
    are forgotten after the test."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [name for name in sys.modules if name.startswith("bgtest_")]:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_project_module_with_a_syntax_error_is_refused_at_submit(
    coordinator: Coordinator, project: Path
) -> None:
    """The function imports a sibling module that does not compile: the submit says which
    file and line, and nothing is queued."""
    write(
        project,
        {
            "bgtest_broken/__init__.py": "",
            "bgtest_broken/good.py": """\
                def doubled(n):
                    from . import broken

                    return broken.twice(n)
                """,
            "bgtest_broken/broken.py": """\
                def twice(n):
                    return 2 * n


                def oops(:
                    return 0
                """,
        },
    )
    good = importlib.import_module("bgtest_broken.good")
    broken = project / "bgtest_broken" / "broken.py"
    with Client(url(coordinator)) as client:
        with pytest.raises(ValueError) as caught:
            client.submit(good.doubled, 2)
        assert str(caught.value).startswith(f"{broken.resolve()}, line 5: ")
        assert "fix it before submitting" in str(caught.value)
        assert client.jobs() == []


def test_an_import_a_worker_lacks_is_refused_unless_its_package_is_in_packages(
    coordinator: Coordinator, project: Path
) -> None:
    """A project module that imports sympy when imported: refused without packages= (sympy
    installed here changes nothing, workers lack it), named by file and line; accepted
    with sympy in packages=."""
    pytest.importorskip("sympy")  # the module is imported here, so sympy must be installed
    write(
        project,
        {
            "bgtest_needs/__init__.py": "",
            "bgtest_needs/algebra.py": """\
                import sympy

                X = sympy.Symbol("x")


                def expanded(n):
                    return str(sympy.expand((X + 1) ** n))
                """,
        },
    )
    algebra = importlib.import_module("bgtest_needs.algebra")
    module = project / "bgtest_needs" / "algebra.py"
    with Client(url(coordinator)) as client:
        with pytest.raises(ValueError) as caught:
            client.submit(algebra.expanded, 2)
        message = str(caught.value)
        assert message.startswith(f"{module.resolve()}, line 1: imports sympy, which a worker")
        assert "add its package to packages=" in message
        assert client.jobs() == []
        # with sympy in packages=, the same module may travel: the job is accepted
        job = client.options(packages=SYMPY).submit_job(algebra.expanded, [2])
        assert client.job(job.job_id)["total"] == 1


def test_an_environment_larger_than_the_coordinator_takes_is_refused(
    start_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = start_coordinator("--no-welcome-task", "--max-environment-bytes", "100000")
    with Client(url(coordinator)) as client:
        grid = client.options(packages=SYMPY)  # resolved and uploaded: the limit is per task
        with pytest.raises(SubmitError) as caught:
            grid.submit(sympy_factor, 4).result(timeout=30)
        assert caught.value.code == "environment_too_large"
        message = str(caught.value)
        assert "bytes of wheels; this coordinator takes at most 100,000" in message
        assert "--max-environment-bytes" in message
        assert [j for j in client.jobs() if j["total"]] == []


# --- environments are kept ------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_second_job_reuses_the_environment_and_a_worker_that_makes_none_runs_it(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    tmp_path: Path,
) -> None:
    """The first job's worker makes numpy's environment (a venv in its data directory); a
    second job, from another client that resolves the same wheels, finds it made: one
    folder, and its first result comes sooner. A worker started later with
    --no-new-environments on that data directory runs it too."""
    coordinator = start_coordinator("--no-welcome-task")
    data = tmp_path / "worker"
    worker = function_worker(start_worker, coordinator, data)
    sizes = [3, 4, 5, 6]
    seconds = []
    for _ in range(2):
        with Client(url(coordinator)) as client:
            grid = client.options(packages=NUMPY)  # resolved again: the same environment
            started = time.perf_counter()
            job = grid.submit_job(numpy_norm, sizes)
            seconds.append(first_result_after(job.futures, started, 120))
            results = list(job.results(timeout=60))
        assert [r["norm"] for r in results] == pytest.approx([norm(n) for n in sizes])
    [env_id] = environments(data)
    folder = str(data / "environments" / env_id)
    assert {r["prefix"] for r in results} == {folder}
    cold, warm = seconds
    assert warm < cold, seconds  # the venv made once (seconds), then found

    worker.end()
    function_worker(start_worker, coordinator, data, "--no-new-environments")
    with Client(url(coordinator)) as client:
        result = client.options(packages=NUMPY).submit(numpy_norm, 7).result(timeout=60)
    assert result["prefix"] == folder
    assert environments(data) == [env_id]


@pytest.mark.timeout(120)
def test_a_worker_that_makes_no_new_environments_never_gets_a_task_of_a_new_one(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    tmp_path: Path,
) -> None:
    coordinator = start_coordinator("--no-welcome-task")
    picky_data = tmp_path / "picky"
    picky = function_worker(start_worker, coordinator, picky_data, "--no-new-environments")
    [picky_id] = introduced(coordinator, 1).values()
    with Client(url(coordinator)) as client:
        future = client.options(packages=SYMPY).submit(sympy_factor, 6)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert not future.done()
            time.sleep(0.2)
        assert python_sent(coordinator) == []  # it waits, queued
        function_worker(start_worker, coordinator, tmp_path / "other")
        result = future.result(timeout=90)
    assert result == {
        "factors": "(x - 1)*(x + 1)*(x**2 - x + 1)*(x**2 + x + 1)",
        "sympy": "1.13.3",
    }
    [ran] = python_results(coordinator, 1)
    [sent] = python_sent(coordinator)
    assert sent["worker_id"] == ran["worker_id"] != picky_id
    assert environments(picky_data) == []
    assert "op=python" not in picky.output()


# --- a tab: a project package and a pure-Python package -----------------------------


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_a_project_package_with_sympy_gives_the_same_result_in_a_tab_and_on_a_python_worker(
    start_coordinator: Callable[..., Coordinator],
    start_worker: Callable[..., Process],
    page: Any,
    project: Path,
    tmp_path: Path,
) -> None:
    """A function of a package written here (a relative import of a sibling module that
    defines a dataclass) with ``packages=["sympy==1.13.3"]``: its package travels as a
    bundle, sympy's wheels are unpacked into the tab's Pyodide; then, the tab gone, a
    Python worker computes the same."""
    write(
        project,
        {
            "bgtest_shapes/__init__.py": '"""Boxes, and polynomials of their sides."""\n',
            "bgtest_shapes/shapes.py": """\
                from dataclasses import dataclass, field


                @dataclass(frozen=True)
                class Box:
                    width: int
                    height: int
                    tags: tuple[str, ...] = field(default=("box",))

                    def area(self) -> int:
                        return self.width * self.height
                """,
            "bgtest_shapes/measure.py": """\
                from .shapes import Box

                SCALE = 3


                def describe(width, height):
                    import sympy

                    box = Box(width, height)
                    x = sympy.Symbol("x")
                    polynomial = sympy.expand((x + box.width) * (x + box.height))
                    return {
                        "box": repr(box),
                        "scaled_area": SCALE * box.area(),
                        "polynomial": str(polynomial),
                        "roots": sorted(int(r) for r in sympy.solve(polynomial, x)),
                        "sympy": sympy.__version__,
                    }
                """,
        },
    )
    measure = importlib.import_module("bgtest_shapes.measure")
    coordinator = start_coordinator("--no-welcome-task")
    page.goto(f"{coordinator.page_url}?workers=1")
    tab = coordinator.event("worker_introduced")
    with Client(url(coordinator)) as client:
        grid = client.options(packages=SYMPY)
        in_the_tab = grid.submit(measure.describe, 3, 4).result(timeout=120)
        page.goto("about:blank")  # the tab leaves: the Python worker is the only one
        coordinator.event("worker_disconnected", worker_id=tab["worker_id"])
        function_worker(start_worker, coordinator, tmp_path / "worker")
        on_the_worker = grid.submit(measure.describe, 3, 4).result(timeout=90)
    assert (
        in_the_tab
        == on_the_worker
        == {
            "box": "Box(width=3, height=4, tags=('box',))",
            "scaled_area": 36,
            "polynomial": "x**2 + 7*x + 12",
            "roots": [-4, -3],
            "sympy": "1.13.3",
        }
    )
    first, second = python_results(coordinator, 2)
    assert first["worker_id"] == tab["worker_id"] and "Chrome" in first["agent"]
    assert second["agent"].startswith("browsergrid-python/")
