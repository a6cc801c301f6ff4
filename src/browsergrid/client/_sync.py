"""``Client``: the synchronous client; futures are ``concurrent.futures.Future``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from browsergrid._loop import new_event_loop
from browsergrid.client._blobs import fetch_blob, put_blob
from browsergrid.client._engine import Endpoint, Engine, Servers, endpoints, http_get_any
from browsergrid.client._function import OP as PYTHON_OP
from browsergrid.client._function import Code, function_task, job_tasks
from browsergrid.client._shipping import Shipping
from browsergrid.protocol import Ref, SubmitOptions, submit_options

Future = concurrent.futures.Future
P = ParamSpec("P")
R = TypeVar("R")


class Job:
    """A job submitted by ``Client.submit_job``: its futures, in submission order."""

    def __init__(self, client: Client, futures: list[Future[Any]], job_id: Future[int]) -> None:
        self.client = client
        self.futures = futures
        self._job_id = job_id

    @property
    def job_id(self) -> int:
        """The coordinator's id for this job (waits until the submission is accepted)."""
        return self._job_id.result()

    def results(self, timeout: float | None = None) -> Iterator[Any]:
        """Results in submission order; raises TaskError at the first failed task."""
        for future in self.futures:
            yield future.result(timeout)

    def as_completed(self, timeout: float | None = None) -> Iterator[Future[Any]]:
        """Futures as they finish."""
        return concurrent.futures.as_completed(self.futures, timeout)

    def cancel(self) -> None:
        """Cancel the tasks that have not finished (their futures are cancelled)."""
        self.client.cancel(self)


class _Submitter:
    """The submitting half of the API, with fixed job options (see ``Client.options``)."""

    def __init__(self, client: Client, options: SubmitOptions, code: Code | None = None) -> None:
        self._client = client
        self._options = options
        self._code = code if code is not None else client.shipping.plain

    @overload
    def submit(self, op: str, /, **args: Any) -> Future[Any]: ...
    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...
    def submit(self, op: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``op`` with keyword arguments ``args`` once, or run the plain function
        ``fn(*args, **kwargs)`` on a worker; the future resolves to its result or TaskError.

        ``fn`` must be a function defined with ``def`` at module level; its arguments and
        result must be JSON values (a tuple arrives as a list). It travels as source (op
        ``python``, run by browser workers and by ``browsergrid worker
        --python-functions``), with the modules of your project it uses (its own module
        when it uses a helper of it) zipped into one bundle, uploaded once; the packages of
        ``options(packages=[...])`` may be imported too. A function or argument that cannot
        be sent raises TypeError or ValueError here, saying what to change, and nothing is
        sent. If ``fn`` raises on the worker, ``TaskError`` carries its
        ``remote_traceback``.

        Tasks submitted this way go into one job per client (and per set of options).
        """
        if isinstance(op, str):
            if args:
                raise TypeError(f"submit({op!r}, ...) takes the op's arguments by keyword")
            name, items = op, [kwargs]
        else:
            name, items = PYTHON_OP, [function_task(op, args, kwargs, self._code)]
        engine = self._client.engine
        futures = engine.request(
            engine.session_key(self._options), name, items, self._options, Future
        )
        return cast(Future[Any], futures[0])

    @overload
    def submit_job(self, op: str, args: Iterable[dict[str, Any]], /) -> Job: ...
    @overload
    def submit_job(self, fn: Callable[..., Any], /, *iterables: Iterable[Any]) -> Job: ...
    def submit_job(self, op: str | Callable[..., Any], /, *args: Iterable[Any]) -> Job:
        """Run ``op`` once per item (a dict of arguments) of ``args`` as one job, or the
        plain function ``fn`` once per item of ``zip(*iterables)`` (``fn(a, b)`` for each
        ``a, b``, as ``map`` does); returns its ``Job``. Every task is checked before any is
        sent (see ``submit``)."""
        name, items = job_tasks(op, args, self._code)
        engine = self._client.engine
        job_id: Future[int] = Future()
        futures = engine.request(engine.new_job_key(), name, items, self._options, Future, job_id)
        return Job(self._client, cast(list[Future[Any]], futures), job_id)

    @overload
    def map(
        self, op: str, args: Iterable[dict[str, Any]], /, *, timeout: float | None = None
    ) -> Iterator[Any]: ...
    @overload
    def map(
        self, fn: Callable[..., R], /, *iterables: Iterable[Any], timeout: float | None = None
    ) -> Iterator[R]: ...
    def map(
        self, op: str | Callable[..., Any], /, *args: Iterable[Any], timeout: float | None = None
    ) -> Iterator[Any]:
        """Results of ``op`` over ``args`` (dicts of arguments), or of the plain function
        ``fn`` over ``zip(*iterables)``, in input order, like ``Executor.map``: every task is
        submitted at once (as one job); iterating waits for each result in turn (up to
        ``timeout`` seconds each) and raises TaskError at the first failed task."""
        return self.submit_job(op, *args).results(timeout)

    @overload
    def map_unordered(
        self, op: str, args: Iterable[dict[str, Any]], /, *, timeout: float | None = None
    ) -> Iterator[Any]: ...
    @overload
    def map_unordered(
        self, fn: Callable[..., R], /, *iterables: Iterable[Any], timeout: float | None = None
    ) -> Iterator[R]: ...
    def map_unordered(
        self, op: str | Callable[..., Any], /, *args: Iterable[Any], timeout: float | None = None
    ) -> Iterator[Any]:
        """As ``map``, but results come as they finish."""
        for future in self.submit_job(op, *args).as_completed(timeout):
            yield future.result()


class Client(_Submitter):
    """Submit tasks to a coordinator and get ``concurrent.futures.Future`` back: a built-in
    or custom op by name (``submit("prime_count", lo=0, hi=10)``), or a plain Python
    function (``submit(fn, *args)``, ``map(fn, *iterables)``: see ``submit``).

    ``url`` is the coordinator (``http://HOST:PORT``, or ``https://HOST:PORT`` trusting the
    system's CAs or $SSL_CERT_FILE; default $BROWSERGRID_SERVER, else
    http://127.0.0.1:8765), or several coordinators of one grid: a list of URLs, or URLs
    separated by commas (so may $BROWSERGRID_SERVER be). Use it as a context manager, or
    call ``close()``. Results are pushed by the coordinator over one WebSocket; many
    submissions share one frame. The client connects to the first coordinator that answers.
    If the connection drops (a coordinator restart), the client reconnects, to the next
    coordinator of the list in turn (or the same one when there is one), for up to
    ``reconnect_timeout`` seconds, and its pending futures resolve as if nothing happened;
    after that they fail with ConnectionLost. HTTP calls (``jobs()``...) go to the next
    coordinator when one cannot be reached. ``timeout`` bounds the first connection, in
    seconds per coordinator tried.

    ``token`` is the coordinator's admin token; default $BROWSERGRID_TOKEN, else, for a
    coordinator on this machine only, the one it saved in its data directory. A coordinator
    that refuses it raises AuthError, which says how to fix it.
    """

    def __init__(
        self,
        url: Servers | None = None,
        *,
        timeout: float = 10,
        reconnect_timeout: float = 120,
        token: str | None = None,
    ) -> None:
        coordinators = endpoints(url, token)
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="browsergrid-client", daemon=True
        )
        self._thread.start()
        self.engine = Engine(
            coordinators, self._loop, reconnect_timeout=reconnect_timeout, fetch=fetch_blob
        )
        try:
            connecting = asyncio.run_coroutine_threadsafe(self.engine.connect(), self._loop)
            connecting.result(timeout * len(coordinators))  # ``timeout`` for each one tried
        except BaseException:
            self._stop_loop()
            raise
        self.shipping = Shipping(lambda: self.engine.endpoint)
        super().__init__(self, SubmitOptions())

    @property
    def coordinators(self) -> list[Endpoint]:
        """The coordinators this client may use, in order."""
        return self.engine.coordinators

    @property
    def http_url(self) -> str:
        """The HTTP base URL of the coordinator connected to (or last connected to)."""
        return self.engine.endpoint.http

    @property
    def ws_url(self) -> str:
        """The ``/client`` WebSocket URL of the coordinator connected to."""
        return self.engine.endpoint.ws

    @property
    def token(self) -> str | None:
        """The admin token sent to the coordinator connected to."""
        return self.engine.endpoint.token

    def options(
        self,
        *,
        name: str = "",
        priority: int = 0,
        lease_timeout: float | None = None,
        max_attempts: int | None = None,
        redundancy: int = 1,
        max_replicas: int | None = None,
        adaptive: bool = False,
        modules: Iterable[ModuleType | str] = (),
        packages: Iterable[str] = (),
    ) -> _Submitter:
        """The same API, submitting with these job options (like Ray's ``.options()``).

        ``redundancy=k`` has each task computed by k workers of distinct identities and
        accepts a result only when k agree (more replicas on disagreement, up to
        ``max_replicas``, default ``2k + 1``); ``adaptive=True`` spares established
        workers the replicas but for random spot checks. Each result's ``verdict`` and
        ``replicas`` say how it was checked (``job.results()``). Raises ValueError for an
        option out of range.

        For functions: ``modules`` (modules or packages of your project, or their names,
        like Ray's ``py_modules``) travel with every function submitted, besides those
        found by reading its imports; ``packages`` (requirement strings, as
        ``["sympy==1.13.3", "networkx"]``) are resolved by pip on this machine now, with
        their dependencies, and their wheels uploaded once: the functions' tasks run in
        that environment (a browser installs pure-Python wheels in its Pyodide; a wheel
        with compiled code sends the tasks to Python workers only). Raises ValueError,
        with pip's reason, for packages that cannot be resolved.
        """
        options = submit_options(
            name=name,
            priority=priority,
            lease_timeout=lease_timeout,
            max_attempts=max_attempts,
            redundancy=redundancy,
            max_replicas=max_replicas,
            adaptive=adaptive,
        )
        return _Submitter(self, options, self.shipping.code(modules, packages))

    @staticmethod
    def as_completed(
        futures: Iterable[Future[Any]], timeout: float | None = None
    ) -> Iterator[Future[Any]]:
        """Futures as they finish (``concurrent.futures.as_completed``)."""
        return concurrent.futures.as_completed(futures, timeout)

    @staticmethod
    def gather(futures: Iterable[Future[Any]], timeout: float | None = None) -> list[Any]:
        """Every result, in the order of ``futures``; raises the first TaskError met."""
        return [future.result(timeout) for future in futures]

    def put(self, data: Any) -> Ref:
        """Upload ``data`` once (bytes, or any JSON value) and get its ``Ref``: pass the ref
        in any task's arguments, and the worker's op receives the data itself (bytes, or
        the JSON value), fetched once per worker and cached there. Data the coordinator
        holds already is not sent again. Raises TypeError for data that is neither, and
        BrowsergridError when the coordinator refuses it (its message names the limit)."""
        return put_blob(self.engine.endpoint, data)

    def jobs(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs, newest first, with their counts (kept across coordinator restarts)."""
        return cast(list[dict[str, Any]], self._get("/api/jobs", {"limit": limit}))

    def job(self, job_id: int) -> dict[str, Any]:
        """One job's status: state, counts by state, rate and ETA."""
        return cast(dict[str, Any], self._get(f"/api/jobs/{job_id}"))

    def workers(self, *, history: bool = False) -> list[dict[str, Any]]:
        """Connected workers; with ``history``, every worker ever seen (tasks, failures,
        mean compute time), kept across coordinator restarts."""
        return cast(
            list[dict[str, Any]], self._get("/api/workers/history" if history else "/api/workers")
        )

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return http_get_any(self.engine.coordinators, path, params, self.engine.current)

    def cancel(self, job: Job | int) -> None:
        """Cancel a job's unfinished tasks (their futures end cancelled)."""
        job_id = job if isinstance(job, int) else job.job_id
        asyncio.run_coroutine_threadsafe(self.engine.cancel(job_id), self._loop).result(10)

    def close(self) -> None:
        """Close the connection. Jobs go on running on the coordinator."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.engine.close(), self._loop).result(10)
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
