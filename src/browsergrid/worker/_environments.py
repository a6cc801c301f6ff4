"""Where the Python worker runs functions that bring their own code: a task whose function
has a bundle (the client's modules) or an environment (PyPI wheels) runs in a child
process, never in the worker's own interpreter.

- An environment is a virtual environment in ``FOLDER/ENV_ID``, made once by uv from the
  task's wheels (offline: ``--no-index``, the wheels the task names and nothing else) and
  kept for every later task of that environment. ``new=False``
  (``--no-new-environments``) runs only the environments already made.
- The children are ``PYTHON -I _python_function.py --serve HOME`` (the runner every
  worker shares), one per running task at most, kept for the next task of their Python
  (the environment's, or for a bundle alone an environment of no package, ``bare``, so
  it sees what it would in a tab), 8 idle ones at most: a bundle's modules are imported
  once per child. What the function prints goes to this worker's stderr; an answer is
  taken only with its request's id.
- Blobs a task names reach the child as files in ``FOLDER/files`` (checked against their
  SHA-256 when written), removed an hour after their last use.

Isolation: two environments never share an interpreter, two bundles in one child have
their modules set aside in turn (the runner's ``_enter``), and the worker's own packages
are seen by none.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from browsergrid.ops import _python_function as runner
from browsergrid.protocol import Ref, refs_in

RUNNER = runner.__file__
BARE = "bare"  # the folder of the environment of no package (for a bundle alone)
_IDLE_CHILDREN = 8  # children kept for later tasks, at most (the least recently used go)
_FILES_KEPT_S = 3600.0  # a blob file unused this long is removed
_BUILD_TIMEOUT_S = 600.0


class EnvironmentUnavailable(Exception):
    """An environment cannot be had here: ``hand_back`` when another worker may do better
    (this one makes no new environments), else the task's own fault (its wheels)."""

    def __init__(self, message: str, *, hand_back: bool = False) -> None:
        super().__init__(message)
        self.hand_back = hand_back


@dataclass(frozen=True, slots=True)
class Prepared:
    """A task ready for a child: the Python to run it with, its arguments (without the
    environment, which the Python is) and the files of the blobs they name."""

    python: str
    args: dict[str, Any]
    files: dict[str, str]


def needs_child(args: Mapping[str, Any]) -> bool:
    """Whether a ``python`` task's function brings code of its own (bundle, environment)."""
    function = args.get("function")
    bundle = function.get("bundle") if isinstance(function, dict) else None
    return bundle is not None or args.get("environment") is not None


class Environments:
    """The environments and children of one worker; ``close()`` ends the children."""

    def __init__(self, folder: Path, *, new: bool = True) -> None:
        self.folder = folder
        self.new = new
        self._building: dict[str, asyncio.Future[str]] = {}
        self._children = _Children(str(folder / "home"))
        self._swept = 0.0

    def ready(self) -> list[str]:
        """The ids of the environments made here, the most recently used first."""
        found = []
        with contextlib.suppress(OSError):
            for path in self.folder.iterdir():
                if len(path.name) == 64 and (path / runner.COMPLETE).exists():
                    found.append((path.stat().st_mtime, path.name))
        return [name for _, name in sorted(found, reverse=True)]

    async def prepare(self, args: dict[str, Any], blob: _BlobSource) -> Prepared:
        """The task made ready: its environment made (or found), its blobs as files.
        Raises EnvironmentUnavailable (an environment that cannot be had), ValueError (a
        malformed task) and what ``blob`` raises."""
        wheels = runner.environment_wheels(args)
        rest = dict(args)
        rest.pop("environment", None)
        python = await self._python(wheels or {}, blob)
        files = {}
        for ref in {ref.sha256: ref for ref in refs_in(rest)}.values():
            files[ref.sha256] = await self._file(ref, blob)
        self._sweep()
        return Prepared(python, rest, files)

    def run(self, prepared: Prepared) -> tuple[bool, Any]:
        """Run a prepared task in a child (blocking: call it in a thread); (True, result)
        or (False, the error the client is sent)."""
        return self._children.run(prepared)

    def close(self) -> None:
        self._children.close()

    async def _python(self, wheels: Mapping[str, Any], blob: _BlobSource) -> str:
        """The Python of the environment of ``wheels``, made if need be; with none, of an
        empty environment (a bundle alone sees no package of this worker's own, as in a
        tab)."""
        refs = {name: _ref(value, name) for name, value in wheels.items()}
        env_id = runner.environment_id({name: ref.sha256 for name, ref in refs.items()})
        folder = self.folder / (env_id if refs else BARE)
        python = str(folder / "bin" / "python")
        if (folder / runner.COMPLETE).exists():
            with contextlib.suppress(OSError):
                os.utime(folder)  # used now
            return python
        if refs and not self.new:
            raise EnvironmentUnavailable(
                f"environment {env_id[:12]} is not here, and this worker makes no new ones "
                "(--no-new-environments)",
                hand_back=True,
            )
        building = self._building.get(env_id)
        if building is None:
            building = asyncio.ensure_future(self._build(folder, refs, blob))
            self._building[env_id] = building
            building.add_done_callback(lambda _: self._building.pop(env_id, None))
        await asyncio.shield(building)
        return python

    async def _build(self, folder: Path, refs: Mapping[str, Ref], blob: _BlobSource) -> str:
        paths = {name: await self._file(ref, blob) for name, ref in refs.items()}
        await asyncio.to_thread(_make_environment, folder, paths)
        return str(folder)

    async def _file(self, ref: Ref, blob: _BlobSource) -> str:
        path = self.folder / "files" / ref.sha256
        if path.exists():
            with contextlib.suppress(OSError):
                os.utime(path)
            return str(path)
        data = await blob.content(ref)
        await asyncio.to_thread(_place, path, data)
        return str(path)

    def _sweep(self) -> None:
        """Remove the blob files unused for an hour (at most once a minute)."""
        now = time.time()
        if now - self._swept < 60:
            return
        self._swept = now
        with contextlib.suppress(OSError):
            for path in (self.folder / "files").iterdir():
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > _FILES_KEPT_S:
                        path.unlink()


class _BlobSource(Protocol):
    """What ``Environments`` needs of a connection's blobs (worker/_blobs.py ``Blobs``):
    a blob's bytes, checked against its SHA-256 (from the cache, else fetched)."""

    async def content(self, ref: Ref) -> bytes: ...


def _ref(value: Any, name: str) -> Ref:
    refs = list(refs_in({"wheel": value}))
    if len(refs) != 1 or not isinstance(value, dict):
        raise ValueError(f"python: wheel {name} must be a ref to a blob")
    return refs[0]


def _place(path: Path, data: bytes) -> None:
    """Write a blob to ``path`` (whole, or not at all)."""
    runner.write_once(str(path), data)


def _make_environment(folder: Path, wheels: Mapping[str, str]) -> None:
    """A virtual environment at ``folder`` with exactly ``wheels`` (file name -> path)
    installed, by uv, offline; made beside it and renamed into place when whole. Raises
    EnvironmentUnavailable with uv's reason when it cannot be made."""
    from uv import find_uv_bin

    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.with_name(f".{folder.name}.lock")):
        if not (folder / runner.COMPLETE).exists():  # else another worker made it meanwhile
            _build(folder, wheels, find_uv_bin())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (workers sharing a data directory make one
    environment at a time); where there is no ``fcntl``, no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(folder: Path, wheels: Mapping[str, str], uv: str) -> None:
    temp = folder.with_name(f".building-{folder.name[:12]}-{secrets.token_hex(4)}")
    staged = temp.with_name(temp.name + "-wheels")
    environ = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    try:
        staged.mkdir(parents=True)
        for name, path in wheels.items():
            try:
                os.link(path, staged / name)
            except OSError:
                shutil.copyfile(path, staged / name)
        _check_unpacked_size(wheels)
        _uv([uv, "venv", "--quiet", "--python", sys.executable, str(temp)], environ)
        python = temp / "bin" / "python"
        files = [str(staged / name) for name in sorted(wheels)]
        if files:
            _uv(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(python),
                    "--no-index",
                    "--no-deps",
                    "--offline",
                    "--no-cache",
                    *files,
                ],
                environ,
            )
        (temp / runner.COMPLETE).touch()
        if (folder / runner.COMPLETE).exists():
            return  # another worker sharing this data directory made it meanwhile
        if folder.exists():
            shutil.rmtree(folder)  # an unfinished one: its marker was never written
        try:
            os.rename(temp, folder)
        except OSError:
            if not (folder / runner.COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


def _check_unpacked_size(wheels: Mapping[str, str]) -> None:
    """EnvironmentUnavailable when the wheels would unpack to more than the runner takes
    (a zip bomb fills no disk)."""
    total = 0
    for name, path in wheels.items():
        try:
            with zipfile.ZipFile(path) as wheel:
                total += sum(info.file_size for info in wheel.infolist())
        except (OSError, zipfile.BadZipFile) as exc:
            raise EnvironmentUnavailable(f"wheel {name} is not a zip archive: {exc}") from None
    if total > runner.MAX_UNPACKED_BYTES:
        raise EnvironmentUnavailable(
            f"the environment's wheels unpack to {total:,} bytes, over "
            f"{runner.MAX_UNPACKED_BYTES:,}"
        )


def _uv(command: list[str], environ: Mapping[str, str]) -> None:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(environ),
            timeout=_BUILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentUnavailable(f"the environment could not be made: {exc}") from None
    if done.returncode != 0:
        said = " / ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        raise EnvironmentUnavailable(f"the environment could not be made here: {said[-800:]}")


class _Child:
    """One child process serving tasks, one at a time."""

    def __init__(self, python: str, home: str) -> None:
        self.python = python
        self.process = subprocess.Popen(
            [python, "-I", RUNNER, "--serve", home],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def call(self, request: str) -> str | None:
        """The answer line to a request line, None when the child died."""
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(request + "\n")
            stdin.flush()
            line = stdout.readline()
        except (OSError, ValueError):
            return None
        return line or None

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


class _Children:
    """Children by Python, the idle ones kept (``_IDLE_CHILDREN`` at most, least recently
    used out) for the next task of that Python."""

    def __init__(self, home: str) -> None:
        self.home = home
        self._idle: OrderedDict[_Child, None] = OrderedDict()
        self._all: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._ids = itertools.count(1)

    def run(self, prepared: Prepared) -> tuple[bool, Any]:
        """The task's outcome. A child whose answer is not the answer to this request (a
        function of an earlier task wrote into the answers) is ended and the task run once
        more in a new one: that is not the task's fault."""
        for _attempt in range(2):
            child = self._take(prepared.python)
            if isinstance(child, str):
                return False, child
            ident = next(self._ids)
            line = child.call(_request(ident, prepared))
            answer = _answer(line, ident)
            if answer is None:
                self._end(child)
                if line is None:
                    code = child.process.returncode
                    return (
                        False,
                        f"the function's process ended (exit code {code}) before it answered",
                    )
                continue  # a stray line: a new child, once
            if "result" in answer:
                self._keep(child)
                return True, answer["result"]
            self._end(child)  # a failed import may leave it half made: the next gets a new one
            return False, str(answer.get("error", "the function failed"))
        return False, "the function's process answered out of turn twice"

    def _take(self, python: str) -> _Child | str:
        with self._lock:
            if self._closed:
                return "the worker is stopping"
            for child in reversed(self._idle):
                if child.python == python:
                    del self._idle[child]
                    return child
        try:
            child = _Child(python, self.home)
        except OSError as exc:
            return f"the function's process could not start: {exc}"
        with self._lock:
            self._all.add(child)
        return child

    def _keep(self, child: _Child) -> None:
        ended = []
        with self._lock:
            if self._closed:
                ended.append(child)
            else:
                self._idle[child] = None
                while len(self._idle) > _IDLE_CHILDREN:
                    ended.append(self._idle.popitem(last=False)[0])
        for old in ended:
            self._end(old)

    def _end(self, child: _Child) -> None:
        child.end()
        with self._lock:
            self._all.discard(child)
            self._idle.pop(child, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children = list(self._all)
            self._all.clear()
            self._idle.clear()
        for child in children:
            child.end()


def _request(ident: int, prepared: Prepared) -> str:
    return json.dumps(
        {"id": ident, "args": prepared.args, "files": prepared.files}, allow_nan=False
    )


def _answer(line: str | None, ident: int) -> dict[str, Any] | None:
    """The child's answer to request ``ident``; None for no answer, or another line."""
    if line is None:
        return None
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("id") != ident:
        return None
    return answer
