"""Answers to the scheduler's ``DependenciesWanted``: how tasks that others depend on
ended, read from the store (they ended before those others were submitted, or before a
restart).

``Dependencies.want`` takes the ids; one lookup at a time reads them in pages and feeds
``DependenciesSettled`` back. While the coordinator is starting (taking up the jobs a
previous run left) lookups wait: a task restored later must not be taken for unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from browsergrid.core import DependenciesSettled, Scheduler, Settled
from browsergrid.protocol import ResultRecord
from browsergrid.store import Outcome, Store, StoreError

log = logging.getLogger("browsergrid.server")

_PAGE = 1000  # task ids per store read
_RETRY_S = 1.0  # after a store failure
UNKNOWN = (
    "did not finish here: it was cancelled, never submitted to this coordinator, or its "
    "job was removed after --retain"
)


class Dependencies:
    """Looks up, in ``store``, the tasks the scheduler wants; ``apply`` feeds the answer."""

    def __init__(
        self,
        store: Store,
        scheduler: Callable[[], Scheduler],
        apply: Callable[[DependenciesSettled], Awaitable[None]],
        stimulus: Callable[[str], str],
        store_failed: Callable[[StoreError], None],
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.apply = apply
        self.stimulus = stimulus
        self.store_failed = store_failed
        self.wanted: set[int] = set()
        self.starting = True  # until ``started``: every restored task is known by then
        self.closing = False
        self._lookup: asyncio.Task[None] | None = None

    def want(self, task_ids: Iterable[int]) -> None:
        """Look these tasks up (soon, once the coordinator has started)."""
        self.wanted.update(task_ids)
        if not self.starting and self._lookup is None and self.wanted:
            self._lookup = asyncio.get_running_loop().create_task(self._look_up())

    def started(self) -> None:
        """Every job a previous run left is taken up: look up what they wait for."""
        self.starting = False
        self.want(())

    async def stop(self) -> None:
        self.closing = True
        if self._lookup is not None:
            self._lookup.cancel()
            await asyncio.gather(self._lookup, return_exceptions=True)

    async def _look_up(self) -> None:
        try:
            while self.wanted and not self.closing:
                page = sorted(self.wanted)[:_PAGE]
                self.wanted.difference_update(page)
                try:
                    outcomes = await self.store.outcomes_of(page)
                except StoreError as exc:  # the dependents wait; the store is asked again
                    self.store_failed(exc)
                    self.wanted.update(page)
                    await asyncio.sleep(_RETRY_S)
                    continue
                except Exception as exc:  # a bug: the dependents fail, saying so, not wait
                    log.exception("looking up the tasks others depend on failed")
                    await self.apply(self._unreadable(page, exc))
                    continue
                await self.apply(self._settled(page, outcomes))
        except Exception:  # pragma: no cover - apply never raises: a bug, logged
            log.exception("settling the tasks others depend on failed")
        finally:
            self._lookup = None
        if self.wanted and not self.closing:  # wanted while the last page was applied
            self.want(())

    def _unreadable(self, page: list[int], exc: Exception) -> DependenciesSettled:
        failure = f"could not be read from the store: {exc}"
        return DependenciesSettled(
            settled=[Settled(task_id=task_id, failure=failure) for task_id in page],
            now=time.monotonic(),
            stimulus_id=self.stimulus("dependencies"),
        )

    def _settled(self, page: list[int], outcomes: list[Outcome]) -> DependenciesSettled:
        found = {outcome.task_id: outcome for outcome in outcomes}
        scheduler = self.scheduler()
        settled = []
        for task_id in page:
            outcome = found.get(task_id)
            if isinstance(outcome, ResultRecord):
                settled.append(Settled(task_id=task_id, result=outcome.result))
            elif outcome is not None:
                settled.append(Settled.failed(task_id, outcome.reasons))
            elif not scheduler.live(task_id):
                settled.append(Settled(task_id=task_id, failure=UNKNOWN))
        return DependenciesSettled(
            settled=settled, now=time.monotonic(), stimulus_id=self.stimulus("dependencies")
        )
