"""A plain Python function as a task of the ``python`` op: its source, never a pickle.

Workers run another Python than the client's (a browser runs Pyodide), so a function
travels as source, never as a pickle. ``function_spec(fn)`` builds it once per function:

- a function that uses nothing of its module but imports travels as a small module of its
  own: the imports it needs, then its ``def``;
- a function that uses a helper, a constant or a class of its module, or a relative
  import, travels as ``from MODULE import NAME``: its module goes with it;
- either way the modules of the user's project it imports (client/_bundle.py) travel
  with it as one zip, the *bundle*, and the packages of its environment
  (``client.options(packages=...)``) may be imported too.

It refuses, with a message that says what to change, what would not run on the other side:

- anything but a plain ``def`` at module level: a lambda, a method, a function defined
  inside another (or using variables of one), an ``async def``, a generator, a builtin;
- a function whose source Python cannot find (typed at the interactive prompt);
- a module outside the standard library, the project and the environment's packages;
- a helper of a script run as ``__main__`` (a script is not imported on workers: move the
  helper to a module beside it);
- a project module that does not compile, or imports at import time what a worker lacks.

Decorators are left out of the sent source: a decorator that returns the function itself
(a registry, say) changes nothing; one that wraps it is refused, as the function submitted
is then the wrapper. With annotations, the source starts ``from __future__ import
annotations``, so they are never evaluated on the worker.

``function_task(fn, args, kwargs)`` is one task's arguments; each argument must be a JSON
value (dict with str keys, list, tuple, str, int, finite float, bool, None), and one that
is not is refused before anything is sent, by a TypeError that names it.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import concurrent.futures
import dis
import hashlib
import inspect
import math
import sys
import textwrap
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from browsergrid.client._bundle import (
    Bundle,
    bundle_for,
    bundle_module_exists,
    project_module,
    script_root,
)
from browsergrid.protocol import Ref

OP = "python"
_JSON_TYPES = (
    "dict (with str keys), list, tuple, str, int, float, bool, None, Ref "
    "(client.put(data) uploads bytes or a large value once and returns one) and the "
    "futures of this client's tasks (for their results)"
)


def is_future(value: object) -> bool:
    """Whether ``value`` is a future (``concurrent.futures`` or ``asyncio``): a client's
    future may stand for its task's result in another task's arguments."""
    return isinstance(value, concurrent.futures.Future | asyncio.Future)


@dataclass(frozen=True, slots=True)
class Code:
    """What may travel with a client's functions besides their source: ``modules`` of the
    project to add to every bundle (``client.options(modules=[...])``), the top-level
    import names the environment's packages install (``provided``), and the task
    arguments' ``environment`` member (``environment``: the wheels, None for none).
    ``upload(bundle)`` returns the ref (JSON) of a bundle the coordinator holds."""

    modules: tuple[types.ModuleType | str, ...] = ()
    provided: frozenset[str] = frozenset()
    environment: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    upload: Callable[[Bundle], dict[str, Any]] | None = field(
        default=None, compare=False, hash=False
    )


NO_CODE = Code()


@dataclass(frozen=True, slots=True)
class _Prepared:
    spec: dict[str, Any]
    signature: inspect.Signature | None
    bundle: Bundle | None = None


_prepared: weakref.WeakKeyDictionary[types.FunctionType, dict[Code, _Prepared]] = (
    weakref.WeakKeyDictionary()
)


def function_spec(fn: Callable[..., Any], code: Code = NO_CODE) -> dict[str, Any]:
    """``{"name", "source", "sha256"}`` of ``fn`` (docs/protocol.md, "python"); made once per
    function object. Raises TypeError for what is not a plain module-level function and
    ValueError for one that cannot be sent; the message says what to change."""
    return dict(_prepare(fn, code).spec)


def function_bundle(fn: Callable[..., Any], code: Code = NO_CODE) -> Bundle | None:
    """The bundle of the project modules that travel with ``fn`` (None: none)."""
    return _prepare(fn, code).bundle


def function_task(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], code: Code = NO_CODE
) -> dict[str, Any]:
    """The arguments of a ``python`` task that computes ``fn(*args, **kwargs)``, with its
    bundle uploaded (``code.upload``) and its environment. Raises TypeError when the
    arguments do not fit ``fn``'s parameters or one is not a JSON value (the message names
    it), and what ``function_spec`` raises."""
    prepared = _prepare(fn, code)
    name = prepared.spec["name"]
    if prepared.signature is not None:
        try:
            prepared.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
    for index, value in enumerate(args, 1):
        _check_json(value, f"argument {index} of {name}")
    for key, value in kwargs.items():
        _check_json(value, f"keyword argument {key!r} of {name}")
    spec = prepared.spec
    if prepared.bundle is not None:
        if code.upload is None:
            raise ValueError(f"{name} needs its bundle uploaded, and this caller cannot upload")
        spec = {**spec, "bundle": code.upload(prepared.bundle)}
    task = {"function": spec, "args": list(args), "kwargs": dict(kwargs)}
    if code.environment is not None:
        task["environment"] = code.environment
    return task


def job_tasks(
    op: str | Callable[..., Any], args: tuple[Iterable[Any], ...], code: Code = NO_CODE
) -> tuple[str, Iterable[dict[str, Any]]]:
    """The op and the task arguments of ``submit_job(op, args)`` or ``submit_job(fn,
    *iterables)``."""
    if isinstance(op, str):
        if len(args) != 1:
            raise TypeError(f"submit_job({op!r}, args) takes one iterable of argument dicts")
        return op, args[0]
    return OP, function_calls(op, args, code)


def function_calls(
    fn: Callable[..., Any], iterables: Sequence[Iterable[Any]], code: Code = NO_CODE
) -> Iterator[dict[str, Any]]:
    """The arguments of a ``python`` task per item of ``zip(*iterables)`` (``map(fn,
    *iterables)``); the errors of ``function_task``, saying which item (from 0)."""
    if not iterables:
        raise TypeError("map(fn, *iterables) needs at least one iterable")
    _prepare(fn, code)  # a function that cannot be sent fails before any item is read
    for index, call in enumerate(zip(*iterables, strict=False)):
        try:
            yield function_task(fn, call, {}, code)
        except TypeError as exc:
            raise TypeError(f"item {index}: {exc}") from None


# --- the function ----------------------------------------------------------------------


def _prepare(fn: Callable[..., Any], code: Code = NO_CODE) -> _Prepared:
    if isinstance(fn, types.FunctionType):
        prepared = _prepared.get(fn, {}).get(code)
        if prepared is not None:
            return prepared
    function = _plain_function(fn)
    source, node = _own_source(function)
    module = sys.modules.get(function.__module__)
    own = project_module(module) if module is not None else None
    root = own.root if own is not None else (script_root(module) if module else None)
    imports, wants_module = _imports_for(function, node, code.provided, root, own is not None)
    bundle: Bundle | None
    if wants_module and own is not None:  # its module goes with it, helpers and all
        text = f"from {own.name} import {function.__name__}\n"
        bundle = bundle_for("", "", "", None, code.modules, code.provided, first=own)
    else:
        if _has_annotations(node):
            imports.insert(0, "from __future__ import annotations\n")
        text = "".join(imports) + ("\n" if imports else "") + source
        package = own.name.rpartition(".")[0] if own is not None else ""
        filename = getattr(module, "__file__", None) or "<source>"
        bundle = bundle_for(text, filename, package, root, code.modules, code.provided)
    spec = {
        "name": function.__name__,
        "source": text,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # pragma: no cover - a def always has one
        signature = None
    prepared = _Prepared(spec, signature, bundle)
    _prepared.setdefault(function, {})[code] = prepared
    return prepared


def _plain_function(fn: Any) -> types.FunctionType:
    """``fn`` if it is a plain module-level function; TypeError saying why not."""
    if isinstance(fn, types.MethodType):
        raise TypeError(
            f"{fn.__qualname__} is a method; only a plain function defined with def at "
            "module level can be sent"
        )
    if getattr(fn, "__wrapped__", None) is not None:
        raise TypeError(
            f"{getattr(fn, '__name__', repr(fn))} is wrapped by a decorator; send the "
            "undecorated function (define it without the decorator)"
        )
    if not isinstance(fn, types.FunctionType):
        kind = type(fn).__name__
        raise TypeError(
            f"{fn!r} is a {kind}, not a function defined with def; only a plain function "
            "defined at module level can be sent"
        )
    name = fn.__name__
    if name == "<lambda>":
        raise TypeError("a lambda cannot be sent; define the function with def at module level")
    if fn.__qualname__ != name:
        raise TypeError(
            f"{fn.__qualname__} is defined inside a function or class; only a function "
            "defined at module level can be sent: move it to the top level of its module "
            "(a decorator that wraps a function makes such a one: send it undecorated)"
        )
    if fn.__closure__:
        names = ", ".join(repr(n) for n in fn.__code__.co_freevars)
        raise TypeError(
            f"{name} uses variables of an enclosing function ({names}); it cannot be sent"
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{name} is an async function; only a plain def can be sent")
    if inspect.isgeneratorfunction(fn):
        raise TypeError(
            f"{name} is a generator function (it yields); return a list instead, so that "
            "its result is a JSON value"
        )
    return fn


def _own_source(fn: types.FunctionType) -> tuple[str, ast.FunctionDef]:
    """The function's ``def`` (decorators left out, dedented) and its syntax tree."""
    try:
        lines, _ = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        raise ValueError(
            f"the source of {fn.__name__} is not available (was it typed at the interactive "
            "prompt?); define it in a file or a notebook cell"
        ) from None
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:  # pragma: no cover - what inspect found is the def it compiled
        raise ValueError(f"the source of {fn.__name__} cannot be parsed") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
        raise ValueError(f"the source of {fn.__name__} is not its def statement")
    own = source.splitlines(keepends=True)[node.lineno - 1 :]  # without decorator lines
    text = "".join(own)
    return text if text.endswith("\n") else text + "\n", node


def _has_annotations(node: ast.FunctionDef) -> bool:
    arguments = node.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return node.returns is not None or any(a.annotation is not None for a in every)


# --- the names it uses -----------------------------------------------------------------


def _imports_for(
    fn: types.FunctionType,
    node: ast.FunctionDef,
    provided: frozenset[str],
    root: Path | None,
    importable: bool,
) -> tuple[list[str], bool]:
    """The import statements the function needs, one name each, in the order of its
    module, and whether it needs its whole module (it uses a helper, a constant or a class
    of it, or a relative import; only when ``importable``). ValueError for a module a
    worker cannot import, or (not ``importable``) for a helper."""
    needed = _global_names(fn.__code__) | _names_in_defaults(node)
    needed.discard(fn.__name__)
    statements = _module_imports(fn)
    found: list[tuple[int, str]] = []
    refused_modules: list[str] = []
    helpers: list[str] = []
    for name in sorted(needed):
        bound = statements.get(name)
        if bound is not None:
            position, module, statement = bound
            if module.startswith("."):
                helpers.append(name)  # a relative import: only its package can resolve it
            elif _may_import(module, provided, root):
                found.append((position, statement))
            else:
                refused_modules.append(f"{_top(module)} ({statement.strip()})")
            continue
        if name not in fn.__globals__ or (name.startswith("__") and name.endswith("__")):
            continue  # a builtin, a name the function sets itself (global), __name__...
        value = fn.__globals__[name]
        if getattr(builtins, name, _MISSING) is value:
            continue
        synthesized = _import_of(name, value)
        if synthesized is None or synthesized[0] == fn.__module__:
            helpers.append(name)
        elif _may_import(synthesized[0], provided, root):
            found.append((1 << 30, synthesized[1]))  # after the module's own statements
        else:
            refused_modules.append(f"{_top(synthesized[0])} ({synthesized[1].strip()})")
    if helpers and importable:
        return [], True  # its module goes with it: the bundle's checks say the rest
    if refused_modules:
        which = "which are" if len(refused_modules) > 1 else "which is"
        raise ValueError(
            f"{fn.__name__} uses {', '.join(refused_modules)}, {which} not in the standard "
            "library; browser workers cannot import it (neither a module of this project "
            "nor a package of client.options(packages=[...]): add its package to packages=)"
        )
    if helpers:
        listed = ", ".join(repr(h) for h in helpers)
        raise ValueError(
            f"{fn.__name__} uses {listed} from its module; only the function and its module's "
            "standard-library imports are sent: define it inside the function, or pass it "
            "as an argument (a script run as __main__ is not sent: a helper in a module "
            "beside it travels with the function)"
        )
    return [statement for _, statement in sorted(set(found))], False


def _may_import(module: str, provided: frozenset[str], root: Path | None) -> bool:
    """Whether a worker can import ``module``: the standard library's, an environment
    package's, or a module of the project (it travels in the bundle)."""
    top = _top(module)
    if _is_stdlib(module) or top in provided:
        return True
    return root is not None and bundle_module_exists(top, root)


_MISSING = object()
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def _global_names(code: types.CodeType) -> set[str]:
    """Module-level names the code (and the functions, classes and comprehensions inside
    it) reads: globals, and in class bodies the names a class does not set itself."""
    names: set[str] = set()
    stored: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in _GLOBAL_OPS and isinstance(instruction.argval, str):
            names.add(instruction.argval)
        elif instruction.opname == "STORE_NAME" and isinstance(instruction.argval, str):
            stored.add(instruction.argval)
    names -= stored  # a class body's own attributes
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


def _names_in_defaults(node: ast.FunctionDef) -> set[str]:
    """Names the default values read: they are evaluated when the def runs, on the worker."""
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    return {n.id for d in defaults for n in ast.walk(d) if isinstance(n, ast.Name)}


def _module_imports(fn: types.FunctionType) -> dict[str, tuple[int, str, str]]:
    """Name -> (position, module, import statement binding it alone) for each top-level
    import statement of the function's module (none when its source cannot be found)."""
    module = sys.modules.get(fn.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    bound: dict[str, tuple[int, str, str]] = {}
    for position, statement in enumerate(tree.body):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                name = alias.asname or alias.name.partition(".")[0]
                text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                bound[name] = (position, alias.name, text + "\n")
        elif isinstance(statement, ast.ImportFrom):
            origin = "." * statement.level + (statement.module or "")
            for alias in statement.names:
                if alias.name == "*":
                    continue
                name = alias.asname or alias.name
                text = f"from {origin} import {alias.name}"
                text += f" as {alias.asname}" if alias.asname else ""
                bound[name] = (position, origin, text + "\n")
    return bound


def _import_of(name: str, value: Any) -> tuple[str, str] | None:
    """(module, statement) that binds ``name`` to ``value`` on the worker, for a module or
    an object a module defines under that name; None for anything else (a helper)."""
    if isinstance(value, types.ModuleType):
        text = f"import {value.__name__}"
        return value.__name__, text + ("\n" if value.__name__ == name else f" as {name}\n")
    origin = getattr(value, "__module__", None)
    own = getattr(value, "__name__", None)
    if not isinstance(origin, str) or not isinstance(own, str) or origin == "__main__":
        return None
    if getattr(sys.modules.get(origin), own, None) is not value:
        return None
    if not _is_stdlib(origin):
        return origin, f"from {origin} import {own}\n"
    text = f"from {origin} import {own}" + ("" if own == name else f" as {name}")
    return origin, text + "\n"


def _top(module: str) -> str:
    return module.partition(".")[0] or module


def _is_stdlib(module: str) -> bool:
    """Whether ``module`` is (in) a standard-library package; relative imports are not."""
    return not module.startswith(".") and _top(module) in sys.stdlib_module_names


# --- the arguments ---------------------------------------------------------------------


def _check_json(value: Any, what: str) -> None:
    """TypeError naming ``what`` (and where inside it) when ``value`` is not a JSON value."""
    problem = next(_problems(value, ""), None)
    if problem is None:
        return
    path, kind = problem
    where = f"({_article(kind)})" if not path else f"(at {path}: {_article(kind)})"
    raise TypeError(
        f"{what} {where} cannot be sent as JSON; only {_JSON_TYPES} can (a float must be finite)"
    )


def _problems(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if value is None or isinstance(value, str | bool | int | Ref) or is_future(value):
        return  # a future stands for its task's result: the engine makes it a marker
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"float {value}"
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _problems(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{path}[{key!r}]", f"{type(key).__name__} key"
                return
            yield from _problems(item, f"{path}[{key!r}]")
        return
    yield path, type(value).__name__


def _article(kind: str) -> str:
    return ("an " if kind[:1] in "aeiou" else "a ") + kind
