"""``GridLink``: a coordinator's part in a grid of coordinators that share one Redis.

With ``serve --redis URL`` every coordinator is equal: a job submitted to any of them is
stored in Redis and queued in the shared queue (``store/_shared_queue.py``); each
coordinator takes from it what its own workers can run now (``Scheduler.appetite``), runs
those tasks with its scheduler as usual, stores their outcomes and acknowledges them.
Clients hear of outcomes by following the job's log in Redis, whoever produced them.

Around that, once a second: renew this coordinator's presence (with a snapshot for the
other dashboards), hand back queued tasks no worker here runs any more, and every other
second claim the tasks of coordinators that died. Signals from Redis wake the taking at
once when work is queued, and cancel here the jobs cancelled anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, Protocol

from browsergrid._console import emit
from browsergrid.core import (
    Event,
    JobCancelRequested,
    RestoredTask,
    Scheduler,
    StrandedReleased,
    TasksTaken,
)
from browsergrid.protocol import Cancelled
from browsergrid.server._state import ClientPeer, Pushed
from browsergrid.server._submit import job_options
from browsergrid.store import JobInfo, JobState, RedisStore, StoreError
from browsergrid.store._shared_queue import BEAT_S, SharedQueue, Taken

log = logging.getLogger("browsergrid.server")

TAKE_AT_MOST: Final = 1000  # tasks per take
CLAIM_EVERY: Final = 2  # beats between two looks for dead coordinators' tasks
_RETRY_S: Final = 1.0
_CANCELLED_KEPT: Final = 10_000
_STOP_WAIT_S: Final = 5.0


class GridHost(Protocol):
    """What the grid link needs of its coordinator: its scheduler and who follows which
    job, the events to feed it, the clients to push to, and the store's health."""

    scheduler: Scheduler
    subscribers: defaultdict[int, set[ClientPeer]]
    job_infos: dict[int, JobInfo]
    closing: bool

    async def apply(self, *evs: Event, wait_stored: bool = True) -> None: ...

    def stimulus(self, kind: str) -> str: ...

    def push(self, client: ClientPeer, message: Pushed) -> None: ...

    def store_failed(self, exc: StoreError) -> None: ...

    def store_recovered(self) -> None: ...


class GridLink:
    """Joins ``coordinator`` to the grid on ``store``'s Redis; ``start`` after the store is
    open, ``stop`` before it closes."""

    def __init__(
        self,
        coordinator: GridHost,
        store: RedisStore,
        snapshot: Callable[[], bytes],
    ) -> None:
        self.coordinator = coordinator
        self.store = store
        self.grid = SharedQueue(store)
        self.snapshot = snapshot
        self.taken: dict[int, Taken] = {}  # task id -> its queue entry, while it is ours
        self.members: dict[str, bytes] = {}  # the live coordinators' snapshots, by id
        self.followers: dict[int, asyncio.Task[None]] = {}
        self.positions: dict[int, bytes] = {}  # job id -> last log entry pushed from
        self.cancelled: dict[int, None] = {}  # jobs cancelled lately, oldest first
        self._again: set[int] = set()  # followed jobs that grew while their follower ended
        self._unacked: list[Taken] = []  # acknowledgements Redis failed, sent again later
        self._unreturned: list[tuple[list[Taken], dict[int, list[str]]]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def coordinator_id(self) -> str:
        return self.grid.coordinator_id

    async def start(self) -> None:
        """Announce this coordinator, then take, claim and listen in the background."""
        await self.beat()
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._take_forever(), name="browsergrid-grid-take"),
            loop.create_task(self._listen_forever(), name="browsergrid-grid-signals"),
            loop.create_task(self._beat_forever(), name="browsergrid-grid-beat"),
        ]
        emit(
            log,
            "grid_joined",
            f"joined the grid on {self.store.url} as coordinator {self.coordinator_id} "
            f"({len(self.members)} coordinator(s) live)",
            coordinator_id=self.coordinator_id,
            coordinators=len(self.members),
        )

    async def stop(self) -> None:
        """Stop taking; the others claim what this coordinator still holds at once."""
        self._stopping = True  # the loops also end at their next turn: redis-py can swallow
        tasks = [*self._loops, *self.followers.values()]  # a cancel in some of its awaits
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_WAIT_S)
        if self._background:
            await asyncio.wait(self._background, timeout=_STOP_WAIT_S)
        with contextlib.suppress(StoreError):
            await self.grid.leave()

    def wake(self) -> None:
        """Workers here may be hungry, or work was queued: look at the queue now."""
        self._wake.set()

    # --- taking work -------------------------------------------------------------------

    async def _take_forever(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BEAT_S)
            self._wake.clear()
            try:
                await self.take()
            except StoreError as exc:
                self.coordinator.store_failed(exc)
                await asyncio.sleep(_RETRY_S)
            except Exception:  # a bug: say so, and go on taking
                log.exception("taking from the shared queue failed")
                await asyncio.sleep(_RETRY_S)

    async def take(self) -> None:
        """Take from the shared queue what the workers here can run now."""
        coordinator = self.coordinator
        while not coordinator.closing:
            count, ops = coordinator.scheduler.appetite()
            if count <= 0:
                return
            identities = coordinator.scheduler.identities(ops)
            taken = await self.grid.take(identities, min(count, TAKE_AT_MOST))
            if not taken:
                return
            await self.adopt(taken)

    async def adopt(self, taken: Iterable[Taken]) -> None:
        """Queue here the tasks taken from the shared queue (for the scheduler to lease).
        Whatever cannot be queued here (its job unreadable for now) is handed back, so no
        entry stays pending under a live coordinator that does not run it."""
        coordinator = self.coordinator
        scheduler = coordinator.scheduler
        by_job: defaultdict[int, list[Taken]] = defaultdict(list)
        unwanted: list[Taken] = []
        seen: set[int] = set()
        for item in taken:
            task_id = item.task.task_id
            if task_id in scheduler.tasks or task_id in seen:
                unwanted.append(item)  # ours already, under another entry
            else:
                seen.add(task_id)
                by_job[item.task.job_id].append(item)
        pending = list(by_job)
        try:
            while pending:
                job_id = pending[0]
                items = by_job[job_id]
                info = await self._info(job_id)
                local = scheduler.jobs.get(job_id)
                cancelled = local is not None and local.cancelled
                if info is None or cancelled or job_id in self.cancelled:
                    unwanted.extend(items)
                    pending.pop(0)
                    continue
                for item in items:
                    self.taken[item.task.task_id] = item
                pending.pop(0)
                await coordinator.apply(self._taken_event(job_id, info, items))
        finally:
            self._ack(unwanted)
            if pending:  # not queued here: back to the queue for anyone
                self._hand_back([t for job_id in pending for t in by_job[job_id]], {})

    def _taken_event(self, job_id: int, info: JobInfo, items: list[Taken]) -> TasksTaken:
        return TasksTaken(
            job_id=job_id,
            options=job_options(info),
            tasks=[
                RestoredTask(
                    task_id=t.task.task_id,
                    index=t.task.index,
                    op=t.task.op,
                    args=t.task.args,
                    attempts=t.task.attempts,
                    reasons=tuple(t.task.reasons),
                )
                for t in items
            ],
            now=time.monotonic(),
            stimulus_id=self.coordinator.stimulus("take"),
        )

    async def _info(self, job_id: int) -> JobInfo | None:
        infos = self.coordinator.job_infos
        if job_id not in infos:
            summary = await self.store.job(job_id)
            if summary is None or summary.state is JobState.CANCELLED:
                return None
            infos[job_id] = summary.info
        return infos[job_id]

    def finished(self, task_ids: Iterable[int]) -> None:
        """These tasks' outcomes are stored (or their job was cancelled): end their entries."""
        self._ack([t for task_id in task_ids if (t := self.taken.pop(task_id, None)) is not None])

    def hand_back(
        self, task_ids: Iterable[int], reasons: Iterable[tuple[str, ...]] | None = None
    ) -> None:
        """The scheduler gave up these queued tasks: back to the queue, for anyone.
        ``reasons``: per task, why its leases were lost (those lost here count as attempts)."""
        back: list[Taken] = []
        lost: dict[int, list[str]] = {}
        for task_id, why in zip(task_ids, reasons or itertools.repeat(()), strict=False):
            item = self.taken.pop(task_id, None)
            if item is not None:
                back.append(item)
                lost[task_id] = list(why[len(item.task.reasons) :])  # those not stored yet
        if back:
            emit(
                log,
                "tasks_handed_back",
                f"handed back {len(back)} queued task(s) that no worker here runs now",
                tasks=len(back),
            )
        self._hand_back(back, lost)

    def _ack(self, items: list[Taken]) -> None:
        if items:
            self._later(self.grid.ack(items), lambda: self._unacked.extend(items))

    def _hand_back(self, items: list[Taken], lost: dict[int, list[str]]) -> None:
        if items:
            self._later(
                self.grid.hand_back(items, lost),
                lambda: self._unreturned.append((items, lost)),
            )

    def _later(self, write: Coroutine[Any, Any, None], failed: Callable[[], None]) -> None:
        """Run a write in the background. If Redis fails it, ``failed`` keeps it for the
        next beat to try again: an entry never acknowledged nor handed back would stay
        pending under this live coordinator, and its task would never run again."""

        def written(task: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if task.cancelled():
                failed()
                return
            exc = task.exception()
            if isinstance(exc, StoreError):
                self.coordinator.store_failed(exc)
                failed()
            elif exc is not None:
                log.error("a write to the shared queue failed", exc_info=exc)

        task = asyncio.get_running_loop().create_task(write)
        self._background.add(task)
        task.add_done_callback(written)

    def _retry_writes(self) -> None:
        """Send again the acknowledgements and hand-backs Redis failed (at each beat)."""
        unacked, self._unacked = self._unacked, []
        unreturned, self._unreturned = self._unreturned, []
        self._ack(unacked)
        for items, lost in unreturned:
            self._hand_back(items, lost)

    # --- presence, failover, signals ---------------------------------------------------

    async def beat(self) -> None:
        await self.grid.beat(self.snapshot())
        self.members = await self.grid.members()
        self.coordinator.store_recovered()  # Redis answers again (an idle member writes little)
        self._retry_writes()

    async def _beat_forever(self) -> None:
        beats = 0
        while not self._stopping:
            await asyncio.sleep(BEAT_S)
            beats += 1
            try:
                await self.beat()
                await self.coordinator.apply(
                    StrandedReleased(
                        now=time.monotonic(), stimulus_id=self.coordinator.stimulus("stranded")
                    )
                )
                if beats % CLAIM_EVERY == 0:
                    await self.claim()
            except StoreError as exc:
                self.coordinator.store_failed(exc)
            except Exception:  # a bug: say so, and go on beating
                log.exception("the grid's periodic work failed")

    async def claim(self) -> None:
        """Take over the tasks of coordinators that died."""
        claimed = await self.grid.claim()
        if claimed:
            emit(
                log,
                "tasks_claimed",
                f"took over {len(claimed)} task(s) of a coordinator that stopped",
                tasks=len(claimed),
            )
            await self.adopt(claimed)
            self.wake()

    async def _listen_forever(self) -> None:
        async for signal in self.grid.signals():
            if self._stopping:
                return
            if signal.kind == "work":
                self.wake()
            elif signal.job_id is not None:
                await self._cancelled_elsewhere(signal.job_id)

    async def _cancelled_elsewhere(self, job_id: int) -> None:
        self.cancelled[job_id] = None  # a take in flight may hold some of its tasks
        while len(self.cancelled) > _CANCELLED_KEPT:
            del self.cancelled[next(iter(self.cancelled))]
        job = self.coordinator.scheduler.jobs.get(job_id)
        if job is None or job.cancelled:
            return
        await self.coordinator.apply(
            JobCancelRequested(
                job_id=job_id, now=time.monotonic(), stimulus_id=self.coordinator.stimulus("cancel")
            )
        )

    # --- clients follow jobs through the store ------------------------------------------

    def follow(self, job_id: int) -> None:
        """Push the job's outcomes, whoever stores them, to its subscribers here."""
        if job_id in self.followers:
            self._again.add(job_id)  # it may be ending: it looks at the job once more
            return
        task = asyncio.get_running_loop().create_task(self._follow(job_id))
        self.followers[job_id] = task

    def unfollow(self, job_id: int) -> None:
        """Nobody here follows the job any more: stop reading its log."""
        task = self.followers.pop(job_id, None)
        if task is not None:
            task.cancel()
        self.positions.pop(job_id, None)
        self._again.discard(job_id)

    async def _follow(self, job_id: int) -> None:
        """Until the job ends (finished or cancelled), or nobody here follows it. Where it
        got to in the job's log is kept while someone follows the job: a job that gets
        more tasks after it finished is followed again from there, not from the start."""
        coordinator = self.coordinator
        try:
            while coordinator.subscribers.get(job_id):
                self._again.discard(job_id)
                try:
                    start = self.positions.get(job_id, b"0-0")
                    async for after, outcome in self.store.outcomes_after(
                        job_id, start, follow=True
                    ):
                        self.positions[job_id] = after
                        for client in list(coordinator.subscribers.get(job_id, ())):
                            coordinator.push(client, outcome)
                    summary = await self.store.job(job_id)
                except StoreError as exc:
                    coordinator.store_failed(exc)
                    await asyncio.sleep(_RETRY_S)
                    continue
                if summary is not None and summary.state is JobState.CANCELLED:
                    ids = await self.store.cancelled_tasks(job_id)
                    message = Cancelled(job_id=job_id, task_ids=ids)
                    for client in coordinator.subscribers.pop(job_id, ()):
                        coordinator.push(client, message)
                    return
                running = summary is not None and summary.state is JobState.RUNNING
                if not running and job_id not in self._again:
                    return  # finished (or gone); follow() starts again if it grows
        except StoreError as exc:
            coordinator.store_failed(exc)
        finally:
            if self.followers.get(job_id) is asyncio.current_task():
                del self.followers[job_id]
            if not coordinator.subscribers.get(job_id):
                self.positions.pop(job_id, None)
