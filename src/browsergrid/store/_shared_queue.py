"""``SharedQueue``: the queue, presence and signals that coordinators on one Redis share.

Every coordinator started with ``serve --redis URL`` opens a ``RedisStore`` and a
``SharedQueue`` on it. The store keeps the truth (jobs, tasks, outcomes, histories); the grid
is how the coordinators divide the work:

- **Queue.** Storing a task also adds an entry for it to the stream of its job and op
  (``q:J:OP``, see the key layout in ``store/_redis.py``). A coordinator whose workers are
  hungry ``take``s entries through the streams' consumer group ``grid``, as consumer
  ``coordinator_id``: Redis gives each entry to one coordinator only, and keeps it pending
  under that coordinator's name until it is ``ack``ed (after the task's outcome is
  stored). Higher priorities first; the queues of one priority share what is asked for.
- **Presence.** Each coordinator renews ``coord:ID`` (a snapshot of what it runs, for the
  dashboards of the others) every second; it expires ``DEAD_AFTER_S`` after the last
  renewal, when the process died.
- **Failover.** ``claim`` moves to the caller the entries pending under coordinators whose
  ``coord:ID`` is gone, so the tasks a dead coordinator held run again elsewhere. A task
  already final is only acknowledged: the store records each task's outcome once, so a
  task never ends twice even when two coordinators ran it.
- **Signals.** ``PUBLISH`` on ``grid``: ``work`` when tasks are queued (hungry
  coordinators take at once, instead of polling), ``cancel:J`` when job J is cancelled
  (coordinators running its tasks take them back from their workers).

Every method raises StoreError when Redis cannot be reached, like the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as rx

from browsergrid.store._base import StoreError, TaskRecord
from browsergrid.store._redis import RedisStore, task_record

log = logging.getLogger("browsergrid.store")
_encode = msgspec.json.Encoder().encode

DEAD_AFTER_S: Final = 5.0
"""A coordinator that has not renewed its presence for this long is taken for dead, and
its pending tasks are claimed by the others."""

BEAT_S: Final = 1.0
"""How often a coordinator renews its presence (``beat``)."""

_TAKE: Final = """
-- ARGV: prefix, consumer, count, then pairs: an op the caller's workers run, how many
-- distinct worker identities run it.
-- Jobs whose redundancy needs more identities than the caller has for their op are left
-- to others. Returns, per task taken: job id, queue ("J:OP"), entry id, stored task, lost
-- reasons.
local p, me, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ops = {}
for i = 4, #ARGV, 2 do ops[ARGV[i]] = tonumber(ARGV[i + 1]) end
local spin = redis.call('INCR', p .. 'take:turn')  -- each take starts one job further on
local out = {}
local function take_from(q, n)
  local key = p .. 'q:' .. q.m
  local got = redis.call('XREADGROUP', 'GROUP', 'grid', me, 'COUNT', n, 'STREAMS', key, '>')
  local entries = (got and got[1] and got[1][2]) or {}
  if #entries < n then q.empty = true end
  for _, entry in ipairs(entries) do
    local t = entry[2][2]
    local task = redis.call('HGET', p .. 'job:' .. q.j .. ':queued', t)
    if task then
      out[#out + 1] = q.j
      out[#out + 1] = q.m
      out[#out + 1] = entry[1]
      out[#out + 1] = task
      out[#out + 1] = redis.call('HGET', p .. 'job:' .. q.j .. ':lost', t) or ''
      want = want - 1
    else  -- final already (another coordinator ran it): nothing to do
      redis.call('XACK', key, 'grid', entry[1])
      redis.call('XDEL', key, entry[1])
    end
  end
end
local page, size = 0, 500
while want > 0 do  -- the queues in pages, highest priority first
  local members = redis.call('ZRANGE', p .. 'queue', page * size, page * size + size - 1,
    'WITHSCORES')
  if #members == 0 then break end
  page = page + 1
  local queues = {}
  for i = 1, #members, 2 do
    local j, op = string.match(members[i], '^(%d+):(.*)$')
    if j and ops[op] and
        tonumber(redis.call('HGET', p .. 'job:' .. j, 'redundancy') or '1') <= ops[op] then
      queues[#queues + 1] = {m = members[i], j = j, s = tonumber(members[i + 1])}
    end
  end
  table.sort(queues, function(a, b)
    if a.s ~= b.s then return a.s < b.s end
    return tonumber(a.j) < tonumber(b.j)
  end)
  local first = 1
  while first <= #queues and want > 0 do
    local last = first  -- queues[first..last]: one priority
    while last < #queues and queues[last + 1].s == queues[first].s do last = last + 1 end
    local level = last - first + 1
    local open = level
    local start = spin % level  -- so takes of one task do not all go to the oldest job
    while want > 0 and open > 0 do
      local share = math.max(1, math.floor(want / open))
      for k = 0, level - 1 do
        local q = queues[first + (start + k) % level]
        if want > 0 and not q.empty then
          take_from(q, math.min(share, want))
          if q.empty then open = open - 1 end
        end
      end
    end
    first = last + 1
  end
end
return out
"""

_CLAIM: Final = """
-- ARGV: prefix, consumer, entries at most. Moves to the caller what is pending under
-- coordinators whose presence key is gone; returns what TAKE returns.
local p, me, budget = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', p .. 'queue', 0, -1)) do
  local key = p .. 'q:' .. m
  local j = string.match(m, '^(%d+):')
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', key, 'grid')) do
    local name, pending
    for i = 1, #consumer, 2 do
      if consumer[i] == 'name' then name = consumer[i + 1] end
      if consumer[i] == 'pending' then pending = consumer[i + 1] end
    end
    if name ~= me and redis.call('EXISTS', p .. 'coord:' .. name) == 0 and budget > 0 then
      local ids = {}
      for _, row in ipairs(redis.call('XPENDING', key, 'grid', '-', '+', budget, name)) do
        ids[#ids + 1] = row[1]
      end
      if #ids > 0 then
        for _, entry in ipairs(redis.call('XCLAIM', key, 'grid', me, 0, unpack(ids))) do
          if entry and entry[2] then
            local t = entry[2][2]
            local task = redis.call('HGET', p .. 'job:' .. j .. ':queued', t)
            if task then
              out[#out + 1] = j
              out[#out + 1] = m
              out[#out + 1] = entry[1]
              out[#out + 1] = task
              out[#out + 1] = redis.call('HGET', p .. 'job:' .. j .. ':lost', t) or ''
            else
              redis.call('XACK', key, 'grid', entry[1])
              redis.call('XDEL', key, entry[1])
            end
          end
        end
        budget = budget - #ids
      end
      if #ids == pending then redis.call('XGROUP', 'DELCONSUMER', key, 'grid', name) end
    end
  end
  if budget <= 0 then break end
end
return out
"""

_ACK: Final = """
-- ARGV: prefix, then pairs: queue ("J:OP"), entry id. Ends entries whose task is final
-- (or went back to the queue): an entry of a queue deleted meanwhile is no matter.
local p = ARGV[1]
for i = 2, #ARGV, 2 do
  local key = p .. 'q:' .. ARGV[i]
  -- only an entry still held by the group: a queue made again after its job finished
  -- may give a new entry the stale one's id (same millisecond), which must stay
  if redis.call('XACK', key, 'grid', ARGV[i + 1]) == 1 then
    redis.call('XDEL', key, ARGV[i + 1])
  end
end
return 1
"""

_HAND_BACK: Final = """
-- ARGV: prefix, then quadruples: queue ("J:OP"), entry id, task id, the reasons of the
-- leases it lost here (JSON strings joined by ",", or ""). Queues each task again (a new
-- entry, for any coordinator) if its queue still exists, adds the reasons to what the task
-- lost (they count as attempts), and ends the old entry.
local p = ARGV[1]
for i = 2, #ARGV, 4 do
  local key = p .. 'q:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    local t, reasons = ARGV[i + 2], ARGV[i + 3]
    local j = string.match(ARGV[i], '^(%d+):')
    if reasons ~= '' and redis.call('HEXISTS', p .. 'job:' .. j .. ':queued', t) == 1 then
      local lost = p .. 'job:' .. j .. ':lost'
      local before = redis.call('HGET', lost, t)
      redis.call('HSET', lost, t, before and (before .. ',' .. reasons) or reasons)
    end
    redis.call('XADD', key, '*', 't', t)
    if redis.call('XACK', key, 'grid', ARGV[i + 1]) == 1 then  -- as in _ACK
      redis.call('XDEL', key, ARGV[i + 1])
    end
  end
end
redis.call('PUBLISH', p .. 'grid', 'work')
return 1
"""

_BEAT: Final = """
-- ARGV: prefix, coordinator id, snapshot, milliseconds to live, now
redis.call('SET', ARGV[1] .. 'coord:' .. ARGV[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', ARGV[1] .. 'coords', ARGV[5], ARGV[2])
return 1
"""

_MEMBERS: Final = """
-- ARGV: prefix. The live coordinators: id, snapshot, ...; forgets those that expired.
local p = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', p .. 'coords', 0, -1)) do
  local snapshot = redis.call('GET', p .. 'coord:' .. id)
  if snapshot then
    out[#out + 1] = id
    out[#out + 1] = snapshot
  else
    redis.call('ZREM', p .. 'coords', id)
  end
end
return out
"""

_PENDING: Final = """
-- ARGV: prefix, job ids. Per job: its tasks held by coordinators now (pending entries).
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local n = 0
  for _, op in ipairs(redis.call('SMEMBERS', p .. 'job:' .. ARGV[i] .. ':ops')) do
    n = n + redis.call('XPENDING', p .. 'q:' .. ARGV[i] .. ':' .. op, 'grid')[1]
  end
  out[#out + 1] = n
end
return out
"""


@dataclass(frozen=True, slots=True)
class Taken:
    """A task a coordinator took from the shared queue; ``ack`` it once its outcome is
    stored, or ``hand_back`` it for another coordinator."""

    task: TaskRecord
    queue: str  # "J:OP"
    entry: str  # its entry id in that queue


@dataclass(frozen=True, slots=True)
class Signal:
    """What another coordinator announced: ``work`` queued, or job ``job_id`` cancelled."""

    kind: str  # "work" or "cancel"
    job_id: int | None = None


class SharedQueue:
    """The shared queue and presence of the coordinators on ``store``'s Redis (opened).

    ``coordinator_id`` names this coordinator in Redis (a fresh one per process: a
    coordinator that restarts is a new member, and the old name's pending tasks are
    claimed like any dead coordinator's).
    """

    def __init__(self, store: RedisStore, coordinator_id: str | None = None) -> None:
        self.store = store
        self.coordinator_id = coordinator_id or uuid.uuid4().hex[:16]
        self._scripts: dict[str, Any] = {}

    def _script(self, name: str, text: str) -> Any:
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = self.store.client().register_script(text)
        return found

    async def _run(self, name: str, text: str, *args: Any) -> Any:
        script = self._script(name, text)
        with self.store.errors():
            return await script(args=[self.store.prefix, *args])

    async def take(
        self, ops: Collection[str] | Mapping[str, int], count: int, identities: int = 1
    ) -> list[Taken]:
        """At most ``count`` queued tasks of ``ops``, now this coordinator's to run. ``ops``
        maps each op to the distinct worker identities here that run it (a plain collection:
        ``identities`` each): a job whose redundancy is above that is left to others (all
        the replicas of a task run on the coordinator that took it)."""
        if count <= 0 or not ops:
            return []
        per_op = ops if isinstance(ops, Mapping) else dict.fromkeys(ops, identities)
        pairs = [x for op in sorted(per_op) for x in (op, per_op[op])]
        reply = await self._run("take", _TAKE, self.coordinator_id, count, *pairs)
        return _taken(reply)

    async def claim(self, limit: int = 10_000) -> list[Taken]:
        """The tasks pending under dead coordinators (at most ``limit``), now this one's."""
        return _taken(await self._run("claim", _CLAIM, self.coordinator_id, limit))

    async def ack(self, taken: Sequence[Taken]) -> None:
        """These tasks ended (their outcomes are stored) or were cancelled."""
        if taken:
            await self._run("ack", _ACK, *[x for t in taken for x in (t.queue, t.entry)])

    async def hand_back(
        self, taken: Sequence[Taken], lost: Mapping[int, Sequence[str]] | None = None
    ) -> None:
        """Queue these tasks again for any coordinator (no worker here runs them now).
        ``lost``: per task id, why its leases here were lost; they count as attempts."""
        if taken:
            reasons = lost or {}
            flat: list[Any] = []
            for t in taken:
                more = b",".join(_encode(r) for r in reasons.get(t.task.task_id, ()))
                flat += [t.queue, t.entry, t.task.task_id, more]
            await self._run("hand_back", _HAND_BACK, *flat)

    async def beat(self, snapshot: bytes) -> None:
        """Renew this coordinator's presence, with what its dashboard shows of it."""
        ttl = int(DEAD_AFTER_S * 1000)
        await self._run("beat", _BEAT, self.coordinator_id, snapshot, ttl, repr(time.time()))

    async def leave(self) -> None:
        """This coordinator stops: the others claim its pending tasks at once."""
        client = self.store.client()
        prefix = self.store.prefix
        with self.store.errors():
            await client.delete(f"{prefix}coord:{self.coordinator_id}")
            await client.zrem(f"{prefix}coords", self.coordinator_id)

    async def members(self) -> dict[str, bytes]:
        """Every live coordinator's latest snapshot (this one's too), by coordinator id."""
        flat = await self._run("members", _MEMBERS)
        return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}

    async def pending(self, job_ids: Sequence[int]) -> dict[int, int]:
        """How many tasks of each job the coordinators hold now (leased or about to be)."""
        if not job_ids:
            return {}
        counts = await self._run("pending", _PENDING, *job_ids)
        return {job_id: int(n) for job_id, n in zip(job_ids, counts, strict=True)}

    async def signals(self) -> AsyncIterator[Signal]:
        """What the coordinators announce, until cancelled. A lost connection to Redis is
        retried every second (signals sent meanwhile are lost: callers also poll)."""
        channel = self.store.prefix + "grid"
        while True:
            pubsub: aioredis.client.PubSub | None = None
            try:
                pubsub = self.store.client().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    signal = _signal(message.get("data"))
                    if signal is not None:
                        yield signal
            except (rx.RedisError, OSError, StoreError) as exc:
                log.warning("lost the grid's signals from Redis (%s); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(rx.RedisError, OSError):
                        await pubsub.aclose()


def _signal(data: Any) -> Signal | None:
    text = data.decode() if isinstance(data, bytes) else str(data)
    if text == "work":
        return Signal("work")
    kind, _, job = text.partition(":")
    if kind == "cancel" and job.isdigit():
        return Signal("cancel", int(job))
    return None


def _taken(reply: Sequence[bytes]) -> list[Taken]:
    out: list[Taken] = []
    for i in range(0, len(reply), 5):
        _job, queue, entry, stored, lost = reply[i : i + 5]
        task = task_record(stored, lost or None)
        out.append(Taken(task=task, queue=queue.decode(), entry=entry.decode()))
    return out


__all__ = ["BEAT_S", "DEAD_AFTER_S", "SharedQueue", "Signal", "Taken"]
