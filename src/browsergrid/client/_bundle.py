"""The client's own modules a function needs, as one zip (docs/protocol.md, "Bundles").

A function's module, and the modules of the same project it imports (at any depth), travel
with it: ``bundle_for(module, extra, provided)`` finds them by reading their ``import``
statements (nothing is run), checks each one compiles, and zips their source. A module
belongs to the project when it lies where its name says under the folder its top-level
package was imported from (``ROOT/a/b.py`` for ``a.b``), and that folder is not the
standard library's nor an installed package's: site-packages, a virtual environment or
an editable install of another project never travel.

What a bundled module imports when it is imported (its top-level statements, but not
those under ``try`` or ``if TYPE_CHECKING``) must be there on a worker: the standard
library, another module of the bundle, or a package of the environment (``provided``: the
top-level names its wheels install). Anything else is refused with a ValueError naming the
file, the line and the fix, before anything is queued. Imports inside functions are
looked up too (a project module they name is bundled) but not refused: they run, and can
fail, only when called.

The zip is the same bytes for the same files (sorted names, fixed dates), so its SHA-256
names it: a worker fetches and keeps one bundle once, however many tasks use it.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import site
import sys
import sysconfig
import types
import zipfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

_DATE = (1980, 1, 1, 0, 0, 0)  # zip's earliest: a bundle's bytes depend on its files only
MAX_BUNDLE_FILES = 2_000  # a project larger than this is most likely a mistaken root


@dataclass(frozen=True, slots=True)
class Bundle:
    """A zip of modules (``data``), its SHA-256 and the module names it holds."""

    data: bytes
    sha256: str
    modules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Module:
    name: str
    path: Path
    root: Path
    package: bool  # an __init__.py: its name is a package's


def project_module(module: types.ModuleType) -> _Module | None:
    """``module`` as a project module (see the module docstring), None when it is not one
    (the standard library, an installed package, ``__main__``, a module without a file)."""
    file = getattr(module, "__file__", None)
    name = module.__name__
    if not isinstance(file, str) or name == "__main__" or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    package = path.name == "__init__.py"
    depth = name.count(".") + 1 + (1 if package else 0)
    root = path.parents[depth - 1]
    if _installed(path) or _where(name, root) != path:
        return None
    return _Module(name, path, root, package)


def script_root(module: types.ModuleType) -> Path | None:
    """The project folder of the program run as ``__main__``: the folder ``python -m
    pkg.mod`` ran from (above ``pkg``), a script's own folder, or, for code with no file
    (a notebook, the interactive prompt), the current folder."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return Path.cwd().resolve()
    path = Path(file).resolve()
    spec = getattr(module, "__spec__", None)
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name and name != "__main__":
        depth = name.count(".") + 1 + (1 if path.name == "__init__.py" else 0)
        return path.parents[depth - 1] if len(path.parents) >= depth else path.parent
    return path.parent


def bundle_for(
    source: str,
    filename: str,
    package: str,
    root: Path | None,
    extra: Iterable[types.ModuleType | str] = (),
    provided: Collection[str] = (),
    *,
    first: _Module | None = None,
) -> Bundle | None:
    """The bundle for code ``source`` (from ``filename``, in package ``package``): the
    project modules under ``root`` it imports, at any depth, plus ``first`` and the
    modules and packages of ``extra`` (whole packages: every module under them). None when
    there are none. ValueError (what to change) for a module that does not compile, or
    imports at import time what a worker would lack."""
    found: dict[str, _Module] = {}
    todo: list[_Module] = []

    def add(module: _Module) -> None:
        if module.name in found:
            return
        found[module.name] = module
        todo.append(module)
        parent = module.name.rpartition(".")[0]
        if parent:  # its packages are imported first, on the worker too
            init = _where(parent, module.root)
            if init is not None and (init.name == "__init__.py" or init.is_dir()):
                add(_Module(parent, init, module.root, True))

    for item in extra:
        for module in _whole(item):
            add(module)
    if first is not None:
        add(first)
    if root is not None:
        _scan(source, filename, package, root, provided, add, checked=False)
    while todo:
        module = todo.pop()
        if len(found) > MAX_BUNDLE_FILES:
            raise ValueError(
                f"the bundle would hold over {MAX_BUNDLE_FILES} modules (under {module.root}): "
                "is the function's module in a folder of unrelated code?"
            )
        if module.path.is_dir():
            continue  # a namespace package: no code of its own
        text = module.path.read_text(encoding="utf-8")
        package_name = module.name if module.package else module.name.rpartition(".")[0]
        _scan(text, str(module.path), package_name, module.root, provided, add, checked=True)
    if not found:
        return None
    return _zip(found.values())


def _scan(
    source: str,
    filename: str,
    package: str,
    root: Path,
    provided: Collection[str],
    add: Callable[[_Module], None],
    *,
    checked: bool,
) -> None:
    """Add the project modules ``source`` imports; with ``checked``, refuse an import it
    makes at import time that a worker would lack."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise ValueError(
            f"{exc.filename}, line {exc.lineno}: {exc.msg}; fix it before submitting (the "
            "module travels with the function and is compiled on the workers)"
        ) from None
    at_import = _import_time_nodes(tree) if checked else set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for name in _imported_names(node, package):
            module = _where(name, root)
            if module is not None:
                add(_Module(name, module, root, module.name == "__init__.py" or module.is_dir()))
        if id(node) in at_import:
            _check_import(node, package, root, provided, filename)


def _check_import(
    node: ast.Import | ast.ImportFrom,
    package: str,
    root: Path,
    provided: Collection[str],
    filename: str,
) -> None:
    if isinstance(node, ast.ImportFrom):
        names = [_absolute(node, package)]
    else:
        names = [alias.name for alias in node.names]
    for name in names:
        top = name.partition(".")[0]
        if not top or top == "__future__" or top in sys.stdlib_module_names:
            continue
        if top in provided or _where(top, root) is not None:
            continue
        raise ValueError(
            f"{filename}, line {node.lineno}: imports {name}, which a worker would lack (it "
            "is not in the standard library, nor a module of this project, nor in the "
            f"packages of client.options(packages=[...])): add its package to packages=, "
            "or move the import inside the function that needs it"
        )


def _import_time_nodes(tree: ast.Module) -> set[int]:
    """The import statements that run when the module is imported: at its top level, in
    ``if``/``with`` blocks, but not in a ``try`` (its ``except`` is the fallback) nor
    under ``if TYPE_CHECKING``."""
    found: set[int] = set()

    def visit(body: list[ast.stmt]) -> None:
        for statement in body:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                found.add(id(statement))
            elif isinstance(statement, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(statement.test):
                    visit(statement.body)
                visit(statement.orelse)
            elif isinstance(statement, ast.With):
                visit(statement.body)

    visit(tree.body)
    return found


def _imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Every module an import statement may load: ``a``, ``a.b`` for ``import a.b``;
    the module and each ``module.name`` for ``from module import name``."""
    if isinstance(node, ast.Import):
        names = []
        for alias in node.names:
            parts = alias.name.split(".")
            names += [".".join(parts[: i + 1]) for i in range(len(parts))]
        return names
    base = _absolute(node, package)
    if not base:
        return []
    parts = base.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return names + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute name of a ``from`` import's module (relative ones resolved against
    ``package``; ``""`` when they climb above it)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts) or (node.level - 1 == len(parts) and not node.module):
        return ""
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def bundle_module_exists(name: str, root: Path) -> bool:
    """Whether module ``name`` is a module of the project under ``root``."""
    return _where(name, root) is not None


def _where(name: str, root: Path) -> Path | None:
    """The file of module ``name`` under ``root`` (``a/b.py`` or ``a/b/__init__.py``; the
    folder ``a/b`` for a namespace package), None when there is none there, it is
    installed code, or ``name`` is a standard-library module's (which a project file of
    that name does not replace on workers)."""
    parts = name.split(".") if name else []
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    if parts[0] in sys.stdlib_module_names:
        return None
    base = root.joinpath(*parts)
    for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file() and not _installed(path):
            return path.resolve()
    if base.is_dir() and not _installed(base / "x"):
        return base.resolve()  # a namespace package (no __init__.py)
    return None


def _whole(item: types.ModuleType | str) -> list[_Module]:
    """The modules of ``client.options(modules=[...])``'s item: a module, or a package
    with every module under it."""
    module = sys.modules.get(item) if isinstance(item, str) else item
    if module is None:
        raise ValueError(f"modules=[{item!r}]: import it first (or pass the module object)")
    found = project_module(module)
    if found is None:
        raise ValueError(
            f"modules=[{module.__name__}]: it is not a module of a project (it is installed, "
            "in the standard library, or has no .py file); add an installed package to "
            "packages= instead"
        )
    if not found.package:
        return [found]
    modules = []
    for path in sorted(found.path.parent.rglob("*.py")):
        relative = path.relative_to(found.root).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        if all(part.isidentifier() for part in parts):
            modules.append(_Module(".".join(parts), path, found.root, relative.name == "__init__"))
    return modules


def _installed(path: Path) -> bool:
    """Whether ``path`` is the standard library's or an installed package's."""
    text = str(path)
    return any(text.startswith(prefix) for prefix in _installed_prefixes())


_PREFIXES: tuple[str, ...] = ()


def _installed_prefixes() -> tuple[str, ...]:
    """The folders of the standard library and of installed packages (site-packages,
    of this environment, the user's, and any other on ``sys.path``), never a bare
    prefix: a project may live under ``/usr/src``."""
    global _PREFIXES
    if not _PREFIXES:
        paths = sysconfig.get_paths()
        found = {
            paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths
        }
        found.update(site.getsitepackages())
        found.add(site.getusersitepackages())
        found |= {p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}
        _PREFIXES = tuple(str(Path(p).resolve()) + os.sep for p in found if p)
    return _PREFIXES


def _zip(modules: Iterable[_Module]) -> Bundle:
    """The bundle of ``modules``: same files, same bytes. Each folder has its own entry
    (zipimport finds a namespace package only by one)."""
    files: dict[str, bytes | None] = {}
    for module in modules:
        name = module.name.replace(".", "/")
        if module.path.is_dir():
            files[f"{name}/"] = None
        else:
            arcname = f"{name}/__init__.py" if module.package else f"{name}.py"
            files[arcname] = module.path.read_bytes()
    for arcname in list(files):
        parts = arcname.rstrip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            files.setdefault("/".join(parts[:depth]) + "/", None)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname in sorted(files):
            info = zipfile.ZipInfo(arcname, _DATE)
            data = files[arcname]
            if data is None:
                info.external_attr = (0o40755 << 16) | 0x10  # a folder
                archive.writestr(info, b"")
            else:
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
    data = buffer.getvalue()
    names = tuple(sorted(m.name for m in modules))
    return Bundle(data, hashlib.sha256(data).hexdigest(), names)
