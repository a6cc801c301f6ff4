"""What the tests of examples/ share: each example's docstring says how to run it and what
it prints, and the tests hold it to both."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType

from tests._support import ROOT, TEST_TOKEN

EXAMPLES = ROOT / "examples"
_TIMING = re.compile(r"\d+\.\d s\b")  # "1.3 s": how long it took, different every run


def docstring(name: str) -> str:
    text = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(encoding="utf-8")))
    assert text, f"examples/{name} has no docstring"
    return text


def arguments(name: str, index: int, url: str) -> list[str]:
    """The arguments of the ``index``-th ``python examples/NAME ...`` command of the
    docstring: ``url`` added to the first (which has none), or put for ``http://HOST:PORT``
    in the others (and the tests' admin token for ``TOKEN``)."""
    lines = [
        line.split("#")[0].strip()
        for line in docstring(name).splitlines()
        if line.strip().startswith(f"python examples/{name}")
    ]
    words = shlex.split(lines[index])
    assert words[:2] == ["python", f"examples/{name}"]
    rest = [
        url if word == "http://HOST:PORT" else TEST_TOKEN if word == "TOKEN" else word
        for word in words[2:]
    ]
    if index == 0:
        assert not any(word.startswith("http") for word in rest)
        rest.append(url)
    return rest


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run an example to its end (it must exit 0); its output."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=100,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def assert_prints_what_its_docstring_shows(name: str, output: str) -> None:
    """Each line of the docstring's sample output (the indented block after "It prints") is
    a line of ``output``, but for its timings and wherever it says "..."."""
    sample = docstring(name).split("It prints", 1)[1].split("\n\n")[1]
    printed = output.splitlines()
    for line in sample.splitlines():
        line = line.removeprefix("    ")
        if line.strip() == "...":
            continue
        pattern = _TIMING.pattern.join(
            ".*".join(re.escape(piece) for piece in part.split("..."))
            for part in _TIMING.split(line)
        )
        assert any(re.fullmatch(pattern, out) for out in printed), (
            f"examples/{name} did not print {line!r}; it printed:\n{output}"
        )


def load(name: str) -> ModuleType:
    """The example as a module (its ``main()`` not run), to compute what it should print."""
    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
