"""A function's own modules travel with it (client/_bundle.py, client/_function.py): which
modules a bundle holds, what is refused before anything is sent, and that the runner
(ops/_python_function.py) imports them on the other side, each bundle apart."""

from __future__ import annotations

import importlib
import importlib.machinery
import io
import sys
import textwrap
import types
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from browsergrid.client._bundle import Bundle
from browsergrid.client._function import (
    NO_CODE,
    Code,
    function_bundle,
    function_spec,
    function_task,
)
from browsergrid.ops import _python_function as runner


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Make a project of ``files`` under a fresh folder on sys.path and import ``module``
    of it; its modules are forgotten afterwards (each test makes its own)."""
    made: list[str] = []
    counter = iter(range(1000))

    def make(files: dict[str, str], module: str) -> Any:
        root = tmp_path / f"p{next(counter)}"
        write(root, files)
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()
        made.extend(name.removesuffix(".py").replace("/", ".") for name in files)
        return importlib.import_module(module)

    yield make
    for name in list(sys.modules):
        if any(name == m.removesuffix(".__init__") for m in made):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def runner_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runner, "HOME", str(tmp_path / "home"))
    runner._compiled.clear()
    yield
    runner._enter(("", ""))  # the suite's own modules importable again
    runner._compiled.clear()
    runner._places.clear()
    runner._parked.clear()


def names(bundle: Bundle | None) -> list[str]:
    assert bundle is not None
    return sorted(zipfile.ZipFile(io.BytesIO(bundle.data)).namelist())


def remote(fn: Callable[..., Any], *args: Any, code: Code = NO_CODE) -> Any:
    """``fn(*args)`` as a worker runs it: from the task's arguments alone, its bundle as
    bytes (what a worker's blob fetch hands the runner), with none of the project's
    modules imported beforehand (a worker has none: those of this client go aside)."""
    bundle = function_bundle(fn, code)
    _forget_projects()
    task = function_task(fn, args, {}, Code(code.modules, code.provided, code.environment, upload))
    if bundle is not None:
        task["function"]["bundle"] = bundle.data
    return runner.run(task)


def _forget_projects() -> None:
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if "/p" in file and "pytest-" in file and "/home/" not in file:
            del sys.modules[name]


def upload(bundle: Bundle) -> dict[str, Any]:
    return {"$blob": bundle.sha256, "size": len(bundle.data), "format": "bytes"}


PACKAGE = {
    "mylab/__init__.py": "",
    "mylab/consts.py": "G = 2\n",
    "mylab/physics.py": """
        from dataclasses import dataclass

        from .consts import G
        from mylab import tools

        LIMIT = 3


        @dataclass
        class Body:
            mass: float


        def helper(n):
            return n * LIMIT


        def step(n):
            return [helper(n), Body(mass=n * G).mass, tools.double(n)]


        def alone(n):
            return n + 1
    """,
    "mylab/tools.py": "def double(n):\n    return 2 * n\n",
    "mylab/unused.py": "X = 1\n",
}


def test_a_function_using_helpers_travels_with_its_module_and_what_it_imports(
    project: Callable[..., Any],
) -> None:
    physics = project(PACKAGE, "mylab.physics")
    spec = function_spec(physics.step)
    assert spec["source"] == "from mylab.physics import step\n"
    bundle = function_bundle(physics.step)
    assert names(bundle) == [
        "mylab/",
        "mylab/__init__.py",
        "mylab/consts.py",
        "mylab/physics.py",
        "mylab/tools.py",
    ]  # the package's unused module stays home
    assert remote(physics.step, 5) == [15, 10.0, 10]


def test_a_function_using_nothing_of_its_module_travels_alone(
    project: Callable[..., Any],
) -> None:
    physics = project(PACKAGE, "mylab.physics")
    assert function_spec(physics.alone)["source"].startswith("def alone(n):")
    assert function_bundle(physics.alone) is None
    assert remote(physics.alone, 1) == 2


def test_the_same_files_make_the_same_bundle_bytes(project: Callable[..., Any]) -> None:
    physics = project(PACKAGE, "mylab.physics")
    first = function_bundle(physics.step)
    assert first is not None
    again = function_bundle(physics.helper)  # another function of the same module
    assert again is not None and again.data == first.data and again.sha256 == first.sha256


def test_modules_option_adds_a_whole_package(project: Callable[..., Any]) -> None:
    physics = project(PACKAGE, "mylab.physics")
    code = Code(modules=("mylab",))
    assert "mylab/unused.py" in names(function_bundle(physics.step, code))
    with pytest.raises(ValueError, match=r"modules=\[json\]: it is not a module of a project"):
        function_bundle(physics.step, Code(modules=("json",)))
    with pytest.raises(ValueError, match="import it first"):
        function_bundle(physics.step, Code(modules=("never_imported_here",)))


def test_a_source_function_importing_a_project_module_takes_it_along(
    project: Callable[..., Any],
) -> None:
    module = project(
        {
            "script_like.py": """
                import helpers_beside


                def use(n):
                    return helpers_beside.triple(n)
            """,
            "helpers_beside.py": "def triple(n):\n    return 3 * n\n",
        },
        "script_like",
    )
    spec = function_spec(module.use)
    assert spec["source"].startswith("import helpers_beside\n\ndef use(n):")
    assert names(function_bundle(module.use)) == ["helpers_beside.py"]
    assert remote(module.use, 4) == 12


def test_a_module_that_does_not_compile_is_refused_naming_file_and_line(
    project: Callable[..., Any],
) -> None:
    module = project(
        {
            "good.py": "LIMIT = 1\n\n\ndef f(n):\n    import broken\n\n    return broken.g(n)\n",
            "broken.py": "def g(n):\n    return n +\n",
        },
        "good",
    )
    with pytest.raises(ValueError, match=r"broken\.py, line 2: invalid syntax; fix it before"):
        function_spec(module.f)


def test_an_import_a_worker_lacks_is_refused_unless_it_is_a_package_of_the_environment(
    project: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "site", {"somepkg.py": "def go(n):\n    return n\n"})  # installed here
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    module = project(
        {
            "needs_pkg.py": """
                import json
                from typing import TYPE_CHECKING

                import somepkg

                try:
                    import optional_thing
                except ImportError:
                    optional_thing = None
                if TYPE_CHECKING:
                    import only_for_types

                K = 2


                def f(n):
                    return somepkg.go(n) * K
            """,
        },
        "needs_pkg",
    )
    with pytest.raises(ValueError, match=r"needs_pkg\.py, line 5: imports somepkg, which a wor"):
        function_spec(module.f)
    spec = function_spec(module.f, Code(provided=frozenset({"somepkg"})))
    assert spec["source"] == "from needs_pkg import f\n"


def test_a_source_function_naming_an_installed_module_says_to_add_its_package() -> None:
    from tests.client import _functions as f

    with pytest.raises(ValueError, match=r"add its package to packages="):
        function_spec(f.uses_msgspec)
    assert (
        "import msgspec"
        in function_spec(f.uses_msgspec, Code(provided=frozenset({"msgspec"})))["source"]
    )


def test_two_bundles_with_a_module_of_the_same_name_never_mix(
    project: Callable[..., Any],
) -> None:
    """Two clients' ``helpers`` modules, alternately on one worker: each task imports its
    own bundle's, and the modules of the other wait aside, imported once."""
    one = project({"clash_a.py": CLASH.format(value=1), "helpers.py": "VALUE = 1\n"}, "clash_a")
    a = function_bundle(one.get)
    assert a is not None
    _forget_projects()
    two = project({"clash_b.py": CLASH.format(value=2), "helpers.py": "VALUE = 2\n"}, "clash_b")
    b = function_bundle(two.get)
    assert b is not None and a.sha256 != b.sha256
    assert [remote(one.get), remote(two.get), remote(one.get), remote(two.get)] == [1, 2, 1, 2]
    assert [k for k in runner._compiled] == [
        (function_spec(one.get)["sha256"], a.sha256, ""),
        (function_spec(two.get)["sha256"], b.sha256, ""),
    ]


CLASH = """
import helpers

OFFSET = 0


def get():
    return helpers.VALUE + OFFSET  # {value}
"""


def test_a_bundle_ref_is_read_from_the_contents_and_checked(
    project: Callable[..., Any], tmp_path: Path
) -> None:
    physics = project(PACKAGE, "mylab.physics")
    bundle = function_bundle(physics.step)
    assert bundle is not None
    task = function_task(physics.step, (2,), {}, Code(upload=upload))
    _forget_projects()
    assert runner.run(task, {bundle.sha256: bundle.data}) == [6, 4.0, 4]
    runner._enter(("", ""))
    runner._places.clear()
    runner._compiled.clear()
    runner.HOME = str(tmp_path / "another-worker")  # (monkeypatched: restored after)
    with pytest.raises(ValueError, match="did not come with the task"):
        runner.run(task, {})
    other = dict(task, function={**task["function"], "bundle": upload(Bundle(b"x", "0" * 64, ()))})
    with pytest.raises(ValueError, match="has other bytes than its SHA-256"):
        runner.run(other, {"0" * 64: b"x"})


def test_a_namespace_package_travels_and_imports(project: Callable[..., Any]) -> None:
    module = project(
        {
            "nsp/util.py": "K = 5\n",  # nsp has no __init__.py
            "ns_user.py": "from nsp.util import K\n\n\ndef f(n):\n    return n * K\n",
        },
        "ns_user",
    )
    assert "nsp/" in names(function_bundle(module.f))
    assert remote(module.f, 2) == 10


def test_a_project_file_named_like_a_standard_module_stays_home(
    project: Callable[..., Any],
) -> None:
    module = project(
        {
            "statistics.py": "WHOSE = 'the project'\n",  # unrelated to the stdlib's
            "stats_user.py": "import statistics\n\nN = 2\n\n\ndef f():\n"
            "    return statistics.mean([1, 3]) * N\n",
        },
        "stats_user",
    )
    sys.modules.pop("statistics", None)  # the project's shadowed it here: the stdlib's back
    assert names(function_bundle(module.f)) == ["stats_user.py"]


def test_the_project_of_a_module_run_with_dash_m_is_above_its_package(tmp_path: Path) -> None:
    from browsergrid.client._bundle import script_root

    main = types.ModuleType("__main__")
    main.__file__ = str(tmp_path / "mylab" / "run.py")
    main.__spec__ = importlib.machinery.ModuleSpec("mylab.run", None)
    assert script_root(main) == tmp_path.resolve()
    notebook = types.ModuleType("__main__")  # no __file__: the current folder
    assert script_root(notebook) == Path.cwd().resolve()


def test_modules_a_bundle_makes_at_run_time_are_set_aside_with_it(
    project: Callable[..., Any],
) -> None:
    """A module put into sys.modules by code (no file: the six.moves pattern) belongs to
    the bundle whose task made it, and is not seen by a task of another."""
    maker = project(
        {
            "maker.py": "import sys, types\n\nTAG = 'maker'\n\n\ndef make():\n"
            "    alias = types.ModuleType('made_alias')\n    alias.who = TAG\n"
            "    sys.modules['made_alias'] = alias\n    return TAG\n",
        },
        "maker",
    )
    assert remote(maker.make) == "maker"
    reader = project(
        {
            "reader.py": "TAG = 'reader'\n\n\ndef read():\n    try:\n"
            "        import made_alias\n    except ImportError:\n        return TAG\n"
            "    return made_alias.who\n",
        },
        "reader",
    )
    assert remote(reader.read) == "reader"
    assert "made_alias" not in sys.modules
