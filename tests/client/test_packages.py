"""``client.options(packages=...)``'s resolution (client/_packages.py), with wheel files
pip takes as requirements: no registry needed here (tests/e2e/test_packages.py resolves
real packages from PyPI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browsergrid.client._packages import resolve_packages
from browsergrid.ops._python_function import environment_id
from tests._wheels import make_wheel


def wheel_file(folder: Path, name: str, files: dict[str, str], tag: str = "py3-none-any") -> Path:
    filename, data = make_wheel(name, "1.0", files, tag=tag)
    path = folder / filename
    path.write_bytes(data)
    return path


def test_wheels_are_resolved_with_what_they_install(tmp_path: Path) -> None:
    one = wheel_file(tmp_path, "onepkg", {"onepkg/__init__.py": "", "helper_mod.py": ""})
    resolved = resolve_packages([str(one)])
    assert [wheel.filename for wheel in resolved.wheels] == [one.name]
    assert resolved.provided == {"onepkg", "helper_mod"}
    assert resolved.env_id == environment_id({one.name: resolved.wheels[0].sha256})
    assert not resolved.native
    compiled = wheel_file(tmp_path, "fastpkg", {"fastpkg/__init__.py": ""}, "py3-none-linux_x86_64")
    assert resolve_packages([str(compiled)]).native


@pytest.mark.parametrize(
    ("requirements", "error", "message"),
    [
        ("sympy", TypeError, "a list of requirement strings"),
        ([], ValueError, "names no package"),
        (["--index-url=http://elsewhere"], ValueError, "is an option, not a requirement"),
        (["/no/such/dir/nopkg-1.0-py3-none-any.whl"], ValueError, "cannot be resolved: "),
    ],
)
def test_what_pip_cannot_resolve_is_refused_with_its_reason(
    requirements: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve_packages(requirements)  # type: ignore[arg-type]
