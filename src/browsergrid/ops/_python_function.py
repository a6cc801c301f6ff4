"""The ``python`` op: run a plain Python function sent as source.

This one file is the runner everywhere: the Python worker imports it, and the coordinator
serves it unchanged to the worker page, whose Web Worker runs it under Pyodide. So it uses
the standard library only, and nothing else from browsergrid.

A task's arguments (docs/protocol.md, "python"):
``{"function": {"name": N, "source": S, "sha256": H}, "args": [...], "kwargs": {...}}``.
``S`` is a module's worth of source that defines ``N``; ``H`` is the SHA-256 of ``S`` as
UTF-8, in hex. Each source is compiled once per worker and kept (by ``H``) for the tasks
that follow. The result is ``N(*args, **kwargs)``, which must be a JSON value.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import linecache
import math
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

OP = "python"
BLOB = "$blob"  # the member that makes a JSON object a ref to a blob (docs/protocol.md)
_KEPT = 64  # compiled functions kept per worker (a worker seldom sees more at once)
_compiled: OrderedDict[str, Callable[..., Any]] = OrderedDict()


class FunctionError(Exception):
    """The function raised, or returned something that is not JSON. ``str()`` is what the
    client receives: the remote traceback (from the function's own frames) or the reason."""


def run(args: Mapping[str, Any]) -> Any:
    """Call the task's function; raises ValueError for a malformed task and FunctionError
    when the function itself fails (its message carries the traceback)."""
    function = _function(args.get("function"))
    positional = args.get("args", [])
    keywords = args.get("kwargs", {})
    if not isinstance(positional, list):
        raise ValueError("python: 'args' must be an array")
    if not isinstance(keywords, dict) or not all(isinstance(k, str) for k in keywords):
        raise ValueError("python: 'kwargs' must be an object")
    try:
        result = function(*positional, **keywords)
    except Exception as exc:
        raise FunctionError(_remote_traceback(exc)) from None
    _check_json(function.__name__, result)
    return result


def run_json(text: str, contents: Mapping[str, Any] | None = None) -> str:
    """``run`` for callers outside Python (the page's Pyodide worker): a task's arguments
    as JSON in; ``{"result": value}`` or ``{"error": message}`` as JSON out. ``contents``
    maps the SHA-256 of each blob the arguments refer to (docs/protocol.md, "Refs") to its
    bytes (``bytes``, a ``memoryview``, or a JavaScript ``Uint8Array`` proxy); each ref is
    replaced by its content before the call (``substitute_blobs``)."""
    try:
        args = json.loads(text)
        if contents:
            args = substitute_blobs(args, {h: _as_bytes(v) for h, v in contents.items()})
        result = run(args)
    except Exception as exc:  # reported to the coordinator as the task's error
        return json.dumps({"error": str(exc) or type(exc).__name__})
    return json.dumps({"result": result}, allow_nan=False)


def substitute_blobs(value: Any, contents: Mapping[str, bytes]) -> Any:
    """``value`` with every ref (a dict with a ``$blob`` member, at any depth) replaced by
    its blob's content from ``contents`` (SHA-256 -> bytes): the bytes themselves, or the
    JSON value they hold for a ref of ``"format": "json"``. A ref whose blob is not in
    ``contents`` is left as it is. Values without refs come back unchanged (not copied)."""
    if isinstance(value, dict):
        digest = value.get(BLOB)
        if isinstance(digest, str):
            data = contents.get(digest)
            if data is None:
                return value
            return json.loads(data) if value.get("format") == "json" else data
        changed = {k: substitute_blobs(v, contents) for k, v in value.items()}
        same = all(changed[k] is v for k, v in value.items())
        return value if same else changed
    if isinstance(value, list):
        items = [substitute_blobs(v, contents) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _as_bytes(data: Any) -> bytes:
    """Bytes from what a caller passes: bytes, a buffer, or a Pyodide JsProxy."""
    to_bytes = getattr(data, "to_bytes", None)
    return bytes(to_bytes() if callable(to_bytes) and not isinstance(data, int) else data)


def verify(args: Mapping[str, Any], result: Any) -> bool:
    """Run the function here and compare (a local check: the coordinator never runs a
    client's code; replicated tasks are validated by agreeing results)."""
    try:
        return bool(run(args) == result)
    except Exception:
        return False


def _function(spec: Any) -> Callable[..., Any]:
    if not isinstance(spec, dict):
        raise ValueError("python: 'function' must be an object with name, source and sha256")
    name, source, digest = spec.get("name"), spec.get("source"), spec.get("sha256")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError("python: function 'name' must be a Python identifier")
    if not isinstance(source, str) or not isinstance(digest, str):
        raise ValueError("python: function 'source' and 'sha256' must be strings")
    kept = _compiled.get(digest)
    if kept is not None and kept.__name__ == name:
        _compiled.move_to_end(digest)
        return kept
    if hashlib.sha256(source.encode()).hexdigest() != digest:
        raise ValueError(f"python: the sha256 of {name}'s source does not match its source")
    filename = f"<browsergrid:{name}>"
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise FunctionError(_remote_traceback(exc)) from None
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__browsergrid__", "__builtins__": builtins}
    try:
        exec(code, namespace)  # the module level of the sent source: imports, the def
    except Exception as exc:
        raise FunctionError(_remote_traceback(exc)) from None
    function: Callable[..., Any] | None = namespace.get(name)
    if not callable(function):
        raise ValueError(f"python: the source does not define a function {name!r}")
    _compiled[digest] = function
    while len(_compiled) > _KEPT:
        _compiled.popitem(last=False)
    return function


def _remote_traceback(exc: BaseException) -> str:
    """The traceback from the sent source's frames only (this runner's are left out)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.startswith("<browsergrid:")]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(own)] if own else []
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def _check_json(name: str, result: Any) -> None:
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        kind = type(result).__name__
        if isinstance(result, float) and not math.isfinite(result):
            raise FunctionError(f"{name} returned {result}, which JSON cannot carry") from None
        raise FunctionError(f"{name} returned a value JSON cannot carry ({kind}): {exc}") from None
