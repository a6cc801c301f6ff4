"""The ``python`` op: run a plain Python function sent as source.

This one file is the runner everywhere: the Python worker imports it, and the coordinator
serves it unchanged to the worker page, whose Web Worker runs it under Pyodide. So it uses
the standard library only, and nothing else from browsergrid.

A task's arguments (docs/protocol.md, "python"):
``{"function": {"name": N, "source": S, "sha256": H, "bundle": B}, "environment": E,
"args": [...], "kwargs": {...}}``. ``S`` is a module's worth of source that defines ``N``;
``H`` is the SHA-256 of ``S`` as UTF-8, in hex. Each source is compiled once per worker and
kept (by ``H``, bundle and environment) for the tasks that follow. The result is
``N(*args, **kwargs)``, which must be a JSON value.

``B`` (optional) is a ref to a zip of the client's own modules: it goes on ``sys.path``
while the task runs, so ``S`` may import them. ``E`` (optional) is ``{"wheels": {FILE: REF,
...}}``, the PyPI wheels the function needs: here (a browser's Pyodide) pure-Python wheels
are unpacked once per environment into a folder of their own that goes on ``sys.path``;
the Python worker runs such tasks in a virtual environment instead (worker/_environments.py).
Modules imported from one bundle or environment are set aside while a task of another
runs, so two clients' ``helpers`` modules, or two versions of one package, never mix.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import json
import linecache
import math
import os
import re
import sys
import tempfile
import traceback
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

OP = "python"
BLOB = "$blob"  # the member that makes a JSON object a ref to a blob (docs/protocol.md)
_KEPT = 64  # compiled functions kept per worker (a worker seldom sees more at once)
_compiled: OrderedDict[tuple[str, str, str], Callable[..., Any]] = OrderedDict()
HOME = os.path.join(tempfile.gettempdir(), "browsergrid-python")
"""Where bundles and unpacked environments are kept (the Python worker sets its own)."""
_WHEEL = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-[0-9][A-Za-z0-9_.]*)?"
    r"-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-(?P<platform>[A-Za-z0-9_.]+)\.whl$"
)
MAX_WHEELS = 256  # wheels one environment may hold


class Held(Protocol):
    """Blob contents by SHA-256 (a dict of bytes will do): ``get`` answers None for one
    not held."""

    def get(self, digest: str, default: None = None, /) -> bytes | None: ...


class FunctionError(Exception):
    """The function raised, or returned something that is not JSON. ``str()`` is what the
    client receives: the remote traceback (from the function's own frames) or the reason."""


def run(args: Mapping[str, Any], contents: Held | None = None) -> Any:
    """Call the task's function; raises ValueError for a malformed task and FunctionError
    when the function itself fails (its message carries the traceback). ``contents``:
    the bytes of the blobs the bundle and environment refs name, by SHA-256 (where those
    are refs still; a bundle given as bytes needs none)."""
    held = contents or {}
    keys = (_bundle_key(args.get("function"), held), _environment_key(args, held))
    _enter(keys)
    before = set(sys.modules) if any(keys) else None
    try:
        return _call(args, keys)
    finally:
        if before is not None:  # modules made at run time (no file): this context's own
            made = [name for name in sys.modules.keys() - before if _synthetic(name)]
            _made.setdefault(keys, set()).update(made)


def _call(args: Mapping[str, Any], keys: tuple[str, str]) -> Any:
    function = _function(args.get("function"), keys)
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
        held = _Contents(contents or {})
        if contents:
            args = _substitute_own(args, held)
        result = run(args, held)
    except Exception as exc:  # reported to the coordinator as the task's error
        return json.dumps({"error": str(exc) or type(exc).__name__})
    return json.dumps({"result": result}, allow_nan=False)


def substitute_blobs(value: Any, contents: Held) -> Any:
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


def _function(spec: Any, keys: tuple[str, str] = ("", "")) -> Callable[..., Any]:
    if not isinstance(spec, dict):
        raise ValueError("python: 'function' must be an object with name, source and sha256")
    name, source, digest = spec.get("name"), spec.get("source"), spec.get("sha256")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError("python: function 'name' must be a Python identifier")
    if not isinstance(source, str) or not isinstance(digest, str):
        raise ValueError("python: function 'source' and 'sha256' must be strings")
    key = (digest, *keys)
    kept = _compiled.get(key)
    if kept is not None and kept.__name__ == name:
        _compiled.move_to_end(key)
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
    _compiled[key] = function
    while len(_compiled) > _KEPT:
        _compiled.popitem(last=False)
    return function


# --- bundles and environments --------------------------------------------------------


def environment_id(wheels: Mapping[str, str]) -> str:
    """The id of the environment made of ``wheels`` (file name -> the SHA-256 of its
    bytes): the SHA-256, in hex, of one line ``FILE SHA256\\n`` per wheel, sorted by file
    name (docs/protocol.md, "Environments")."""
    listing = "".join(f"{name} {wheels[name]}\n" for name in sorted(wheels))
    return hashlib.sha256(listing.encode()).hexdigest()


def is_pure_wheel(filename: str) -> bool:
    """Whether a wheel's file name says it holds no compiled code (ABI ``none``, platform
    ``any``): such a wheel runs on any Python, Pyodide included."""
    match = _WHEEL.match(filename)
    return match is not None and match["abi"] == "none" and match["platform"] == "any"


def environment_wheels(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The wheels of a task's ``environment`` (file name -> ref), None when it names none;
    ValueError, saying what is wrong, for a malformed one."""
    environment = args.get("environment")
    if environment is None:
        return None
    wheels = environment.get("wheels") if isinstance(environment, dict) else None
    if not isinstance(wheels, dict) or not wheels:
        raise ValueError(
            "python: 'environment' must be an object whose 'wheels' names 1 wheel or more"
        )
    if len(wheels) > MAX_WHEELS:
        raise ValueError(f"python: an environment holds at most {MAX_WHEELS} wheels")
    for name in wheels:
        if _WHEEL.match(name) is None:
            raise ValueError(
                f"python: {name!r} is not a wheel's file name (NAME-VERSION-PY-ABI-PLATFORM.whl)"
            )
    return wheels


def environment_of(args: Mapping[str, Any]) -> tuple[str, bool] | None:
    """``(env id, native)`` of a task's environment (native: a wheel holds compiled code),
    None when it has none; ValueError for a malformed one."""
    wheels = environment_wheels(args)
    if wheels is None:
        return None
    digests = {name: _digest_of(value, f"wheel {name}") for name, value in wheels.items()}
    return environment_id(digests), not all(is_pure_wheel(name) for name in wheels)


def _digest_of(value: Any, what: str) -> str:
    digest = value.get(BLOB) if isinstance(value, dict) else None
    if isinstance(value, bytes | bytearray):
        return hashlib.sha256(value).hexdigest()
    if not isinstance(digest, str):
        raise ValueError(f"python: {what} must be a ref to a blob")
    return digest


class _Contents:
    """Blob contents by SHA-256, turned into ``bytes`` only when asked for (a JavaScript
    ``Map`` of ``Uint8Array`` proxies, or a dict of bytes)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw
        self._made: dict[str, bytes] = {}

    def get(self, digest: str, default: bytes | None = None) -> bytes | None:
        made = self._made.get(digest)
        if made is None:
            value = self._raw.get(digest)
            if value is None:
                return default
            made = self._made[digest] = _as_bytes(value)
        return made


class _Files:
    """Blob contents by SHA-256, read from the files a parent process named."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self._paths = paths

    def get(self, digest: str, default: bytes | None = None) -> bytes | None:
        path = self._paths.get(digest)
        if path is None:
            return default
        with open(path, "rb") as file:
            return file.read()


def _substitute_own(args: Any, held: Held) -> Any:
    """``args`` with the refs of the function's arguments (and of its source) replaced by
    their contents; the bundle and wheel refs are left for ``run`` (read once per worker)."""
    if not isinstance(args, dict):
        return args
    out = dict(args)
    for key in ("args", "kwargs"):
        if key in out:
            out[key] = substitute_blobs(out[key], held)
    function = out.get("function")
    if isinstance(function, dict) and isinstance(function.get("source"), dict):
        source = substitute_blobs(function["source"], held)
        out["function"] = {**function, "source": source}
    return out


def _blob(value: Any, held: Held, what: str) -> tuple[str, Callable[[], bytes]]:
    """(SHA-256, a way to read the bytes) of a bundle or wheel given as bytes or a ref."""
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
        return hashlib.sha256(data).hexdigest(), lambda: data
    digest = _digest_of(value, what)

    def read() -> bytes:
        data = held.get(digest)
        if data is None:
            raise ValueError(f"python: {what} (blob {digest[:12]}) did not come with the task")
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(
                f"python: {what} (blob {digest[:12]}) has other bytes than its SHA-256"
            )
        return data

    return digest, read


def _bundle_key(spec: Any, held: Held) -> str:
    """The SHA-256 of the function's bundle, written to ``HOME`` once (``""``: none)."""
    bundle = spec.get("bundle") if isinstance(spec, dict) else None
    if bundle is None:
        return ""
    digest, read = _blob(bundle, held, "the function's bundle")
    path = os.path.join(HOME, "bundles", digest + ".zip")
    if not os.path.exists(path):
        write_once(path, read())
    _places[digest] = path
    return digest


def _environment_key(args: Mapping[str, Any], held: Held) -> str:
    """The id of the task's environment, its pure-Python wheels unpacked into a folder of
    ``HOME`` once (``""``: none)."""
    wheels = environment_wheels(args)
    if wheels is None:
        return ""
    blobs = {name: _blob(value, held, f"wheel {name}") for name, value in wheels.items()}
    env_id = environment_id({name: digest for name, (digest, _) in blobs.items()})
    folder = os.path.join(HOME, "environments", env_id)
    if not os.path.exists(os.path.join(folder, COMPLETE)):
        compiled = sorted(name for name in wheels if not is_pure_wheel(name))
        if compiled:
            raise ValueError(
                f"python: {', '.join(compiled)} holds compiled code, which this worker cannot "
                "load (a browser's Pyodide runs pure-Python wheels only)"
            )
        _unpack(folder, [read for _, (_, read) in sorted(blobs.items())])
    _places[env_id] = folder
    return env_id


COMPLETE = ".browsergrid-complete"  # in an environment's folder once it is whole
_places: dict[str, str] = {}  # bundle SHA-256 or env id -> its sys.path entry
_current: tuple[str, str] = ("", "")  # (bundle, environment) of the modules imported now
_parked: OrderedDict[tuple[str, str], dict[str, types.ModuleType]] = OrderedDict()
_made: dict[tuple[str, str], set[str]] = {}  # modules without a file made under a context
MAX_UNPACKED_BYTES = 2 * 1024**3  # an environment's wheels, unpacked (zip bombs stop here)


def write_once(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (a partial file is never seen there)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.{os.getpid()}.{id(data):x}.part"
    with open(temp, "wb") as file:
        file.write(data)
    os.replace(temp, path)


def _unpack(folder: str, wheels: list[Callable[[], bytes]]) -> None:
    """Unpack wheels into ``folder`` (made whole, then renamed into place)."""
    import io
    import shutil

    os.makedirs(os.path.dirname(folder), exist_ok=True)
    temp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".unpacking-")
    try:
        unpacked = 0
        for read in wheels:
            with zipfile.ZipFile(io.BytesIO(read())) as wheel:
                unpacked += sum(info.file_size for info in wheel.infolist())
                if unpacked > MAX_UNPACKED_BYTES:
                    raise ValueError(
                        f"python: the environment's wheels unpack to over "
                        f"{MAX_UNPACKED_BYTES:,} bytes"
                    )
                wheel.extractall(temp)  # names with .. or a leading / are made safe
        with open(os.path.join(temp, COMPLETE), "w"):
            pass
        if os.path.exists(folder):
            shutil.rmtree(folder)  # an unfinished one: its marker was never written
        os.rename(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _enter(keys: tuple[str, str]) -> None:
    """Make the modules of the task's bundle and environment the importable ones: those of
    the others are set aside (kept, for when a task of theirs comes back)."""
    global _current
    if keys == _current:
        return
    managed = {path for path in _places.values()}
    roots = tuple(path + os.sep for path in managed)
    own = _made.get(_current, set())
    leaving = {name: m for name, m in list(sys.modules.items()) if name in own or _placed(m, roots)}
    for name in leaving:
        del sys.modules[name]
    if any(_current):
        _parked[_current] = leaving
        while len(_parked) > _KEPT:
            _parked.popitem(last=False)
    entries = [_places[key] for key in keys if key]
    sys.path[:] = entries + [path for path in sys.path if path not in managed]
    sys.modules.update(_parked.pop(keys, {}))
    importlib.invalidate_caches()
    _current = keys


def _synthetic(name: str) -> bool:
    """Whether module ``name`` was made by code rather than imported from a file (a
    ``six.moves`` alias, a module a package puts into ``sys.modules`` itself)."""
    module = sys.modules.get(name)
    return (
        module is not None
        and getattr(module, "__file__", None) is None
        and not getattr(module, "__path__", None)
        and name not in sys.builtin_module_names
    )


def _placed(module: types.ModuleType, roots: tuple[str, ...]) -> bool:
    """Whether ``module`` was imported from a bundle or an environment."""
    file = getattr(module, "__file__", None)
    paths = [file] if isinstance(file, str) else list(getattr(module, "__path__", None) or [])
    return any(isinstance(p, str) and p.startswith(roots) for p in paths)


def serve(home: str) -> None:
    """A child process's loop (``python _python_function.py --serve HOME``): one request
    per line on stdin, ``{"id": ID, "args": ..., "files": {SHA256: PATH}}``, answered by
    one line on stdout, ``{"id": ID, "result": ...}`` or ``{"id": ID, "error": ...,
    "function": true|false}``. The function itself reads an empty stdin and writes to
    stderr: it never sees the requests nor writes into the answers (the parent still
    checks each answer's ``id``)."""
    global HOME
    HOME = home
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    empty = os.open(os.devnull, os.O_RDONLY)
    os.dup2(empty, 0)
    os.close(empty)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - for the process's life
    sys.stdout = sys.stderr
    for line in requests:
        ident: Any = None
        try:
            request = json.loads(line)
            ident = request.get("id")
            held = _Files(request.get("files") or {})
            args = _substitute_own(request["args"], held)
            text = json.dumps({"id": ident, "result": run(args, held)}, allow_nan=False)
        except FunctionError as exc:
            text = json.dumps({"id": ident, "error": str(exc), "function": True})
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            text = json.dumps({"id": ident, "error": error, "function": False})
        answers.write(text + "\n")
        answers.flush()


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


if __name__ == "__main__":  # a child process of the Python worker (worker/_environments.py)
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: python _python_function.py --serve HOME")
