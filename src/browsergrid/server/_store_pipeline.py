"""Outcomes stored in order, in rounds: ``StorePipeline``.

A worker's results are handed over and the worker's next frame is read while the store
commits them. The pipeline writes in rounds (all the outcomes that arrived while the
previous round was being written go in one write), and reports each round (acks, pushes)
before the next: outcomes are always stored before anyone hears of them, and heard of in
the order they came. No outcome is written before the insert of its task (``inserting``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, Generic, TypeVar

from browsergrid.store import Outcome

log = logging.getLogger("browsergrid.server")

UNSTORED_LIMIT: Final = 10_000
"""Outcomes waiting for the store past which the one who hands more waits for its round."""

Written = TypeVar("Written")
"""What storing a round returns, for its report (e.g. None when the store failed)."""


class StorePipeline(Generic[Written]):
    """Stores rounds with ``write`` and reports each with ``report`` (given what ``write``
    returned), one round at a time."""

    def __init__(
        self,
        write: Callable[[list[Outcome]], Awaitable[Written]],
        report: Callable[[list[Outcome], Written], Awaitable[None]],
    ) -> None:
        self._write = write
        self._report = report
        self._unstored: list[Outcome] = []  # outcomes for the next round
        self._next_round: asyncio.Future[None] | None = None  # done once they are reported
        self._storer: asyncio.Task[None] | None = None
        self._inserting: set[asyncio.Future[None]] = set()  # done once the tasks are written

    @contextlib.contextmanager
    def inserting(self) -> Iterator[None]:
        """Around the insert of tasks that may have outcomes before it ends (they were sent
        to workers first): no round is written until it is over."""
        inserted = asyncio.get_running_loop().create_future()
        self._inserting.add(inserted)
        try:
            yield
        finally:
            self._inserting.discard(inserted)
            inserted.set_result(None)

    async def store(self, outcomes: list[Outcome], *, wait: bool, in_report: bool = False) -> None:
        """Hand ``outcomes`` to the next round. With ``wait``, or past ``UNSTORED_LIMIT``
        outcomes waiting, return once the round holding these is reported; never from
        within a round's report (``in_report``: that round would wait for itself)."""
        self._unstored.extend(outcomes)
        if self._next_round is None:
            self._next_round = asyncio.get_running_loop().create_future()
        reported = self._next_round
        if self._storer is None:
            self._storer = asyncio.ensure_future(self._rounds())
        if not in_report and (wait or len(self._unstored) >= UNSTORED_LIMIT):
            await asyncio.shield(reported)

    async def drain(self) -> None:
        """Return once every round handed over is stored and reported."""
        while self._storer is not None:
            await asyncio.wait([self._storer])

    async def _rounds(self) -> None:
        try:
            while self._unstored:
                if self._inserting:  # the tasks of these outcomes may be among them
                    await asyncio.wait(list(self._inserting))
                batch, self._unstored = self._unstored, []
                reported, self._next_round = self._next_round, None
                try:
                    await self._report(batch, await self._write(batch))
                except Exception:
                    log.exception("storing results failed; they are not reported")
                finally:
                    if reported is not None and not reported.done():
                        reported.set_result(None)
        finally:
            self._storer = None
