"""``AsyncClient``: the asyncio client; futures are ``asyncio.Future``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import ModuleType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from browsergrid.client._blobs import fetch_blob, put_blob
from browsergrid.client._engine import Endpoint, Engine, Servers, endpoints, http_get_any
from browsergrid.client._function import OP as PYTHON_OP
from browsergrid.client._function import Code, function_task, job_tasks
from browsergrid.client._shipping import Shipping
from browsergrid.protocol import Ref, SubmitOptions, submit_options

P = ParamSpec("P")
R = TypeVar("R")


class AsyncJob:
    """A job submitted by ``AsyncClient.submit_job``: its futures, in submission order."""

    def __init__(
        self, client: AsyncClient, futures: list[asyncio.Future[Any]], job_id: asyncio.Future[int]
    ) -> None:
        self.client = client
        self.futures = futures
        self._job_id = job_id

    async def job_id(self) -> int:
        """The coordinator's id for this job (waits until the submission is accepted)."""
        return await self._job_id

    async def results(self) -> AsyncIterator[Any]:
        """Results in submission order; raises TaskError at the first failed task."""
        for future in self.futures:
            yield await future

    def as_completed(self, timeout: float | None = None) -> Iterator[asyncio.Future[Any]]:
        """Awaitables in the order they finish (``asyncio.as_completed``)."""
        return asyncio.as_completed(self.futures, timeout=timeout)

    async def cancel(self) -> None:
        """Cancel the tasks that have not finished (their futures are cancelled)."""
        await self.client.cancel(self)


class _TaskFuture(asyncio.Future[Any]):
    """An ``asyncio.Future`` that may also stand for its task's result in the arguments of
    another task (the base class takes no attributes: see ``_engine._MARK``)."""


class _AsyncSubmitter:
    def __init__(
        self, client: AsyncClient, options: SubmitOptions, code: Code | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._code = code if code is not None else client.shipping.plain

    def _future(self) -> asyncio.Future[Any]:
        return _TaskFuture(loop=asyncio.get_running_loop())

    @overload
    def submit(self, op: str, /, **args: Any) -> asyncio.Future[Any]: ...
    @overload
    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[R]: ...
    def submit(
        self, op: str | Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        """Run ``op`` with keyword arguments ``args`` once, or the plain function
        ``fn(*args, **kwargs)`` on a worker (see ``Client.submit`` for what ``fn`` may be);
        await the future for its result (or TaskError)."""
        if isinstance(op, str):
            if args:
                raise TypeError(f"submit({op!r}, ...) takes the op's arguments by keyword")
            name, items = op, [kwargs]
        else:
            name, items = PYTHON_OP, [function_task(op, args, kwargs, self._code)]
        engine = self._client.engine
        futures = engine.request(
            engine.session_key(self._options), name, items, self._options, self._future
        )
        return cast(asyncio.Future[Any], futures[0])

    @overload
    def submit_job(self, op: str, args: Iterable[dict[str, Any]], /) -> AsyncJob: ...
    @overload
    def submit_job(self, fn: Callable[..., Any], /, *iterables: Iterable[Any]) -> AsyncJob: ...
    def submit_job(self, op: str | Callable[..., Any], /, *args: Iterable[Any]) -> AsyncJob:
        """Run ``op`` once per item of ``args`` (dicts of arguments), or the plain function
        ``fn`` once per item of ``zip(*iterables)``, as one job; returns its ``AsyncJob``."""
        name, items = job_tasks(op, args, self._code)
        engine = self._client.engine
        job_id: asyncio.Future[int] = self._future()
        futures = engine.request(
            engine.new_job_key(), name, items, self._options, self._future, job_id
        )
        return AsyncJob(self._client, cast(list[asyncio.Future[Any]], futures), job_id)

    @overload
    def map(self, op: str, args: Iterable[dict[str, Any]], /) -> AsyncIterator[Any]: ...
    @overload
    def map(self, fn: Callable[..., R], /, *iterables: Iterable[Any]) -> AsyncIterator[R]: ...
    async def map(
        self, op: str | Callable[..., Any], /, *args: Iterable[Any]
    ) -> AsyncIterator[Any]:
        """Results of ``op`` over ``args``, or of the plain function ``fn`` over
        ``zip(*iterables)``, in input order; every task is submitted at once, as one job.
        Raises TypeError or ValueError (a function or argument that cannot be sent) when the
        iteration starts."""
        async for result in self.submit_job(op, *args).results():
            yield result

    @overload
    def map_unordered(self, op: str, args: Iterable[dict[str, Any]], /) -> AsyncIterator[Any]: ...
    @overload
    def map_unordered(
        self, fn: Callable[..., R], /, *iterables: Iterable[Any]
    ) -> AsyncIterator[R]: ...
    async def map_unordered(
        self, op: str | Callable[..., Any], /, *args: Iterable[Any]
    ) -> AsyncIterator[Any]:
        """As ``map``, but results come as they finish."""
        for next_done in self.submit_job(op, *args).as_completed():
            yield await next_done


class AsyncClient(_AsyncSubmitter):
    """Submit tasks to a coordinator from asyncio code.

    ``async with AsyncClient(url) as client: result = await client.submit(op, **args)``,
    or ``await client.submit(fn, *args)`` for a plain Python function (as ``Client.submit``).
    ``url`` (one coordinator, or several: a list or URLs separated by commas, tried in
    turn), ``reconnect_timeout`` and ``token`` as for ``Client``. Results are pushed over
    one WebSocket, never polled.
    """

    def __init__(
        self,
        url: Servers | None = None,
        *,
        reconnect_timeout: float = 120,
        token: str | None = None,
    ) -> None:
        self.coordinators: list[Endpoint] = endpoints(url, token)
        self.reconnect_timeout = reconnect_timeout
        self.engine: Engine
        self.shipping = Shipping(lambda: self._endpoint)
        super().__init__(self, SubmitOptions())

    async def connect(self) -> AsyncClient:
        """Open the connection (``async with`` does it for you)."""
        self.engine = Engine(
            self.coordinators,
            asyncio.get_running_loop(),
            reconnect_timeout=self.reconnect_timeout,
            fetch=fetch_blob,
        )
        await self.engine.connect()
        return self

    @property
    def _endpoint(self) -> Endpoint:
        engine: Engine | None = getattr(self, "engine", None)  # None before connect()
        return self.coordinators[0] if engine is None else engine.endpoint

    @property
    def http_url(self) -> str:
        """The HTTP base URL of the coordinator connected to (or last connected to)."""
        return self._endpoint.http

    @property
    def ws_url(self) -> str:
        """The ``/client`` WebSocket URL of the coordinator connected to."""
        return self._endpoint.ws

    @property
    def token(self) -> str | None:
        """The admin token sent to the coordinator connected to."""
        return self._endpoint.token

    async def put(self, data: Any) -> Ref:
        """Upload ``data`` once (bytes, or any JSON value) and get its ``Ref`` to pass in
        tasks' arguments (see ``Client.put``)."""
        return await asyncio.to_thread(put_blob, self._endpoint, data)

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        engine: Engine | None = getattr(self, "engine", None)
        first = 0 if engine is None else engine.current
        return await asyncio.to_thread(http_get_any, self.coordinators, path, params, first)

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
    ) -> _AsyncSubmitter:
        """The same API, submitting with these job options (see ``Client.options``; raises
        ValueError for an option out of range). With ``packages``, they are resolved and
        uploaded before it returns (seconds, once per set): call it as
        ``await asyncio.to_thread(client.options, packages=[...])`` to keep the event loop
        free meanwhile. A function's bundle is uploaded at its first submit (one small
        blocking upload per bundle)."""
        options = submit_options(
            name=name,
            priority=priority,
            lease_timeout=lease_timeout,
            max_attempts=max_attempts,
            redundancy=redundancy,
            max_replicas=max_replicas,
            adaptive=adaptive,
        )
        return _AsyncSubmitter(self, options, self.shipping.code(modules, packages))

    @staticmethod
    async def gather(futures: Iterable[asyncio.Future[Any]]) -> list[Any]:
        """Every result, in the order of ``futures``; raises the first TaskError met."""
        return list(await asyncio.gather(*futures))

    @staticmethod
    def as_completed(
        futures: Iterable[asyncio.Future[Any]], timeout: float | None = None
    ) -> Iterator[asyncio.Future[Any]]:
        """Awaitables in the order they finish."""
        return asyncio.as_completed(futures, timeout=timeout)

    async def jobs(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs, newest first (see ``Client.jobs``)."""
        return cast(list[dict[str, Any]], await self._get("/api/jobs", {"limit": limit}))

    async def job(self, job_id: int) -> dict[str, Any]:
        """One job's status (see ``Client.job``)."""
        return cast(dict[str, Any], await self._get(f"/api/jobs/{job_id}"))

    async def workers(self, *, history: bool = False) -> list[dict[str, Any]]:
        """Connected workers, or with ``history`` every worker ever seen."""
        path = "/api/workers/history" if history else "/api/workers"
        return cast(list[dict[str, Any]], await self._get(path))

    async def cancel(self, job: AsyncJob | int) -> None:
        """Cancel a job's unfinished tasks (their futures end cancelled)."""
        job_id = job if isinstance(job, int) else await job.job_id()
        await self.engine.cancel(job_id)

    async def close(self) -> None:
        """Close the connection. Jobs go on running on the coordinator."""
        await self.engine.close()

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
