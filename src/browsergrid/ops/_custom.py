"""Custom ops written in Python: ``--ops-python PATH`` on ``browsergrid serve`` and
``browsergrid worker``.

The file is loaded as a module. Each public function defined in it (its ``__module__`` is
that module; its name does not start with ``_``, ``verify_``, ``agree_`` or ``quick_``) is an
op of the same name: ``name(args)`` gets the task's arguments as a dict and returns its
result, a JSON value. Three optional companions per op:

- ``verify_<name>(args, result) -> bool``: whether a result a worker reported is right
  (default: run the op here and compare with ``agree``);
- ``agree_<name>(args, a, b) -> bool``: whether two workers' results are the same, what a
  quorum compares (``redundancy=k``; default: the same JSON value);
- ``quick_<name>(args) -> bool``: true only for a task that surely runs in well under a
  millisecond; a Python worker runs those on its event loop, without a thread hop (default:
  never; if it raises, the task is not quick).

Give the same file to the coordinator (it accepts the ops, compares replicas with their
``agree``) and to each worker that runs them.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from browsergrid.errors import ConfigError
from browsergrid.ops._args import agree_exactly
from browsergrid.ops._registry import BUILT_IN_OPS, Op

_COMPANIONS = ("verify_", "agree_", "quick_")
_loaded: dict[tuple[Path, float], dict[str, Op]] = {}  # a file loaded twice gives the same ops


def load_ops_module(
    path: str | os.PathLike[str], *, lease_timeout_s: float = 60.0
) -> dict[str, Op]:
    """The ops the Python file at ``path`` defines, by name (see the module docstring).

    ``lease_timeout_s`` is their lease (``serve`` passes its ``--lease-timeout``). Raises
    ConfigError, saying what to fix, when the file cannot be read or run, defines no op,
    names an op like a built-in one, or has a function that does not take the arguments
    its kind needs.
    """
    where = Path(path).resolve()
    key = (where, lease_timeout_s)
    if key not in _loaded:
        _loaded[key] = _ops_of(_load(where), where, lease_timeout_s)
    return dict(_loaded[key])


def load_ops_files(
    paths: Iterable[str | os.PathLike[str]], *, lease_timeout_s: float = 60.0
) -> dict[str, Op]:
    """The ops of every file in ``paths`` (``--ops-python``, repeated); ConfigError as for
    ``load_ops_module``, and for an op that two files define."""
    ops: dict[str, Op] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        for name, op in load_ops_module(path, lease_timeout_s=lease_timeout_s).items():
            if name in ops:
                raise ConfigError(
                    f"--ops-python: op {name!r} is defined in {origin[name]} and in {path}; "
                    "keep one"
                )
            ops[name], origin[name] = op, Path(path)
    return ops


def _load(where: Path) -> ModuleType:
    if not where.is_file():
        raise ConfigError(f"--ops-python: no file at {where}")
    name = "browsergrid_ops_" + re.sub(r"\W", "_", where.stem)
    spec = importlib.util.spec_from_file_location(name, where)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--ops-python: {where} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(where)]
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
        lines = [*(lines if frames else []), *traceback.format_exception_only(exc)]
        text = "".join(lines).rstrip("\n")
        raise ConfigError(f"--ops-python: {where} failed to load:\n{text}") from None
    return module


def _ops_of(module: ModuleType, where: Path, lease_timeout_s: float) -> dict[str, Op]:
    functions = {
        name: value
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    }
    names = sorted(n for n in functions if not n.startswith(_COMPANIONS))
    for name in sorted(set(functions) - set(names)):
        op = name.partition("_")[2]
        if op not in names:
            raise ConfigError(f"--ops-python: {where} defines {name} but no op {op!r}")
    if not names:
        raise ConfigError(
            f"--ops-python: {where} defines no op (a public function taking the task's "
            "arguments as a dict)"
        )
    clash = sorted(set(names) & set(BUILT_IN_OPS))
    if clash:
        raise ConfigError(
            f"--ops-python: {where} defines {', '.join(clash)}, the name of a built-in op; "
            "rename it"
        )
    ops: dict[str, Op] = {}
    for name in names:
        run = _runner(name, _checked(where, name, functions[name], 1))
        agree = agree_exactly
        if f"agree_{name}" in functions:
            agree = _predicate(_checked(where, f"agree_{name}", functions[f"agree_{name}"], 3))
        verify = _verify_by_running(run, agree)
        if f"verify_{name}" in functions:
            verify = _predicate(_checked(where, f"verify_{name}", functions[f"verify_{name}"], 2))
        quick = None
        if f"quick_{name}" in functions:
            quick = _guarded(_checked(where, f"quick_{name}", functions[f"quick_{name}"], 1))
        ops[name] = Op(name, run, verify, lease_timeout_s, agree, quick)
    return ops


def _checked(where: Path, name: str, function: Any, arity: int) -> Callable[..., Any]:
    """``function`` if it can be called with ``arity`` positional arguments."""
    if inspect.iscoroutinefunction(function) or inspect.isgeneratorfunction(function):
        raise ConfigError(f"--ops-python: {name} in {where} must be a plain def (not async)")
    try:
        inspect.signature(function).bind(*range(arity))
    except TypeError:
        wanted = {1: "(args)", 2: "(args, result)", 3: "(args, a, b)"}[arity]
        raise ConfigError(f"--ops-python: {name} in {where} must take {wanted}") from None
    checked: Callable[..., Any] = function
    return checked


def _runner(name: str, function: Callable[..., Any]) -> Callable[[Mapping[str, Any]], Any]:
    def run(args: Mapping[str, Any]) -> Any:
        result = function(args)
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            kind = type(result).__name__
            raise ValueError(f"{name} returned a value JSON cannot carry ({kind}): {exc}") from None
        return result

    return run


def _predicate(function: Callable[..., Any]) -> Callable[..., bool]:
    def predicate(*args: Any) -> bool:
        return bool(function(*args))

    return predicate


def _guarded(function: Callable[..., Any]) -> Callable[..., bool]:
    """``function`` as a predicate that is False where it raises."""

    def predicate(*args: Any) -> bool:
        try:
            return bool(function(*args))
        except Exception:
            return False

    return predicate


def _verify_by_running(
    run: Callable[[Mapping[str, Any]], Any], agree: Callable[[Mapping[str, Any], Any, Any], bool]
) -> Callable[[Mapping[str, Any], Any], bool]:
    def verify(args: Mapping[str, Any], result: Any) -> bool:
        try:
            return agree(args, run(args), result)
        except Exception:
            return False

    return verify
