"""``RedisStore``: the store in a Redis server (``browsergrid serve --redis URL``).

URL: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=PREFIX]`` (``rediss://`` for TLS,
``unix:///path/to/socket?db=N`` for a Unix socket). Every key of one store starts with
PREFIX (default ``browsergrid:``) in the URL's database, so several grids (or test runs) can
share one server: give each its own prefix or database. Needs Redis 6.2 or newer (7 is what
we test); a single server, not Redis Cluster (the scripts reach keys they were not given).

Keys (P is the prefix, J a job id, T a task id)::

    P schema          string  layout version of the keys below (2); a newer one is refused
    P ids:job         string  largest job id stored or reserved: INCRBY reserves a range,
    P ids:task        string    storing an id raises it to that id; ids are never reused
    P jobs            zset    every job id, scored by itself: jobs() pages newest first
    P jobs:running    zset    running job ids, scored by themselves: unfinished()
    P jobs:ended      zset    finished or cancelled job ids, scored by finished_at: prune()
    P clients         hash    client key -> job id
    P task:job        hash    T -> J for every task stored (an id is used once)
    P outcome         hash    T -> "<index of T>:" + "r" or "f" + the ResultRecord or
                              FailureRecord as JSON, once T has ended with one
    P job:J           hash    info (the JobInfo as JSON), client_key, state, finished_at,
                              total, done, failed, cancelled, priority, redundancy
    P job:J:queued    hash    T -> "<index>:" + the TaskRecord as submitted, as JSON, while T
                              is not final
    P job:J:lost      hash    T -> the reasons record_attempt added, as JSON strings joined by
                              "," (a task's attempts grow by one per reason)
    P job:J:cancelled hash    what job:J:queued held when the job was cancelled
    P job:J:log       stream  one entry per outcome recorded (t=T), in the order recorded;
                              cancel_job adds one more (end=cancelled)
    P job:J:ops       set     the ops of the job's tasks (one queue stream each)
    P after:T         set     the tasks T depends on (futures in its arguments) that are not
                              final yet: T enters its queue once the last one ends
    P before:D        set     the tasks waiting for D (each has D in its after:T)
    P q:J:OP          stream  the shared queue of job J's tasks of op OP: one entry (t=T) per
                              task to run, read by the coordinators through the consumer
                              group "grid" (store/_shared_queue.py); deleted when J ends
    P queue           zset    "J:OP" for each queue stream, scored by minus J's priority
    P take:turn       string  a counter of takes: where a take starts among equal priorities
    P grid            channel "work" when tasks are queued, "cancel:J" when J is cancelled
    P coord:ID        string  a live coordinator's snapshot (JSON), expiring unless renewed
    P coords          zset    coordinator ids, scored by their last renewal (Unix time)
    P workers         hash    worker key -> the WorkerRecord as JSON
    P workers:seen    zset    worker keys scored by last_seen: prune_workers()
    P throughput      zset    Unix seconds with counts, scored by themselves
    P throughput:n    hash    "<second>:d" -> tasks done in it, "<second>:f" -> failed

Atomicity: every write method is one Lua script (``EVALSHA``), so it is applied whole or,
when it breaks a rule of the data, not at all (each script checks before it writes). One
writer task sends the writes in the order they were called, everything queued at that
moment in one pipeline: a hundred concurrent ``add_outcomes`` calls cost one round trip,
and so does one call with a thousand outcomes. Reads are single commands or read-only
scripts, each one snapshot.

Encoding: records are JSON made by msgspec, as SqliteStore stores them, so both backends
give back the same values (and ``redis-cli`` shows them readably). A field that a record
written by an older browsergrid lacks reads back as its default (a worker's ``lost`` and
``loss_rate``: nothing lost), so adding a field with a default needs no new layout.

Ids: ``next_ids`` reads the two counters. ``reserve_ids`` takes ranges from them with
INCRBY, which is how several coordinators sharing one Redis will hand out ids without
colliding; a single coordinator still counts in memory from ``next_ids``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from browsergrid.protocol import FailureRecord, ResultRecord, task_futures
from browsergrid.store._base import (
    JobInfo,
    JobState,
    JobSummary,
    Outcome,
    StoreError,
    TaskRecord,
    ThroughputSample,
    WorkerRecord,
)

log = logging.getLogger("browsergrid.store")

DEFAULT_PREFIX: Final = "browsergrid:"
_SCHEMA: Final = 2  # the key layout above; raise it (and migrate) when the layout changes
_MIN_VERSION: Final = (6, 2)  # XRANGE "(", ZRANGE BYSCORE REV, HRANDFIELD
_PAGE_SIZE: Final = 1000  # outcomes per read of outcomes()
_PRUNE_BATCH: Final = 10_000  # tasks removed per script of prune()
_PRUNE_JOBS: Final = 1000  # jobs looked at per script of prune()
_CHUNK: Final = 1000  # ids per HMGET
_CONNECT_TIMEOUT_S: Final = 5.0
_COMMAND_TIMEOUT_S: Final = 30.0  # a reply later than this is a failure of the store
# How a follower waits for more outcomes: XREAD BLOCK on the job's log stream. Every
# outcome recorded, and a cancel, adds an entry, so a follower wakes as soon as any
# coordinator writes one (polling would cost a read per follower per tick and add up to a
# tick of delay). The timeout only bounds a wait nothing ends (a log deleted by hand);
# close() ends the wait at once. It must stay below _COMMAND_TIMEOUT_S.
_FOLLOW_BLOCK_MS: Final = 5000

_encode = msgspec.json.Encoder().encode
_decode_job = msgspec.json.Decoder(JobInfo).decode
_decode_task = msgspec.json.Decoder(TaskRecord).decode
_decode_result = msgspec.json.Decoder(ResultRecord).decode
_decode_failure = msgspec.json.Decoder(FailureRecord).decode
_decode_worker = msgspec.json.Decoder(WorkerRecord).decode
_decode_reasons = msgspec.json.Decoder(list[str]).decode

_JOB_FIELDS: Final = ("info", "state", "finished_at", "total", "done", "failed", "cancelled")

# --- Lua ---------------------------------------------------------------------------------
# ARGV[1] is always the prefix. Ids travel as decimal strings and are used in key names as
# they are. A script that breaks a rule of the data returns an error starting with BGRULE
# before it writes anything; the caller gets a ValueError.

_LIB: Final = """
local p = ARGV[1]
local function rule(message) return redis.error_reply('BGRULE ' .. message) end
local function call_chunked(command, key, items, width)
  local step = 1000 * width
  for i = 1, #items, step do
    redis.call(command, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end
local function hmget_all(key, fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local got = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for _, value in ipairs(got) do out[#out + 1] = value end
  end
  return out
end
local function raise_to(key, n)
  if n > tonumber(redis.call('GET', key) or '0') then redis.call('SET', key, n) end
end
-- tasks are quintuples from ARGV[first]: task id, job id, op, "<index>:<TaskRecord JSON>",
-- the ids of the tasks it depends on joined by "," ("" for none)
local function used_task_id(first)
  for i = first, #ARGV, 5 do
    if redis.call('HEXISTS', p .. 'task:job', ARGV[i]) == 1 then return ARGV[i] end
  end
  return nil
end
-- the shared queue of job j's tasks of op (created with its consumer group when missing)
local function queue_key(j, op, priority)
  local qk = p .. 'q:' .. j .. ':' .. op
  if redis.call('EXISTS', qk) == 0 then
    redis.call('XGROUP', 'CREATE', qk, 'grid', '0', 'MKSTREAM')
    redis.call('SADD', p .. 'job:' .. j .. ':ops', op)
    redis.call('ZADD', p .. 'queue', -priority, j .. ':' .. op)
  end
  return qk
end
local function unqueue_job(j)
  local ops = p .. 'job:' .. j .. ':ops'
  for _, op in ipairs(redis.call('SMEMBERS', ops)) do
    redis.call('DEL', p .. 'q:' .. j .. ':' .. op)
    redis.call('ZREM', p .. 'queue', j .. ':' .. op)
  end
  redis.call('DEL', ops)
end
-- whether task d is final (ended with an outcome, cancelled, or unknown): a task that
-- depends on it need not wait; an id not below the dependent's is never waited for
local function final(d, t)
  if tonumber(d) >= tonumber(t) or redis.call('HEXISTS', p .. 'outcome', d) == 1 then
    return true
  end
  local j = redis.call('HGET', p .. 'task:job', d)
  return not j or redis.call('HEXISTS', p .. 'job:' .. j .. ':queued', d) == 0
end
-- task t depends on the tasks in deps ("a,b,c"): true if it must wait for some of them
local function holds_back(t, deps)
  local waits = false
  for d in string.gmatch(deps, '%d+') do
    if not final(d, t) then
      redis.call('SADD', p .. 'after:' .. t, d)
      redis.call('SADD', p .. 'before:' .. d, t)
      waits = true
    end
  end
  return waits
end
-- task d is final: the tasks waiting for it whose last wait it was enter their queues
local function release(d)
  local before = p .. 'before:' .. d
  local woken = false
  for _, t in ipairs(redis.call('SMEMBERS', before)) do
    local after = p .. 'after:' .. t
    redis.call('SREM', after, d)
    if redis.call('SCARD', after) == 0 then
      local j = redis.call('HGET', p .. 'task:job', t)
      local task = j and redis.call('HGET', p .. 'job:' .. j .. ':queued', t)
      if task then  -- not cancelled meanwhile
        local op = cjson.decode(string.match(task, '^[^:]*:(.*)$')).op
        local priority = tonumber(redis.call('HGET', p .. 'job:' .. j, 'priority') or '0')
        redis.call('XADD', queue_key(j, op, priority), '*', 't', t)
        woken = true
      end
    end
  end
  redis.call('DEL', before)
  if woken then redis.call('PUBLISH', p .. 'grid', 'work') end
end
local function insert_tasks(first)
  local owners, queued, totals, top, priorities = {}, {}, {}, 0, {}
  for i = first, #ARGV, 5 do
    local t, j = ARGV[i], ARGV[i + 1]
    owners[#owners + 1] = t
    owners[#owners + 1] = j
    local q = queued[j]
    if not q then q = {}; queued[j] = q end
    q[#q + 1] = t
    q[#q + 1] = ARGV[i + 3]
    totals[j] = (totals[j] or 0) + 1
    if tonumber(t) > top then top = tonumber(t) end
  end
  call_chunked('HSET', p .. 'task:job', owners, 2)
  for j, q in pairs(queued) do
    call_chunked('HSET', p .. 'job:' .. j .. ':queued', q, 2)
    redis.call('HINCRBY', p .. 'job:' .. j, 'total', totals[j])
    priorities[j] = tonumber(redis.call('HGET', p .. 'job:' .. j, 'priority') or '0')
  end
  for i = first, #ARGV, 5 do
    local j = ARGV[i + 1]
    if ARGV[i + 4] == '' or not holds_back(ARGV[i], ARGV[i + 4]) then
      redis.call('XADD', queue_key(j, ARGV[i + 2], priorities[j]), '*', 't', ARGV[i])
    end
  end
  raise_to(p .. 'ids:task', top)
  redis.call('PUBLISH', p .. 'grid', 'work')
end
"""

_ADD_JOB: Final = (
    _LIB
    + """
-- ARGV: prefix, job id, "1" and a client key or "0" and "", JobInfo JSON, priority,
-- redundancy, tasks
local j, ck = ARGV[2], ARGV[4]
local jk = p .. 'job:' .. j
if redis.call('EXISTS', jk) == 1 then return rule('job ' .. j .. ' exists already') end
if ARGV[3] == '1' and redis.call('HEXISTS', p .. 'clients', ck) == 1 then
  return rule('a job with client key ' .. ck .. ' exists already')
end
local used = used_task_id(8)
if used then return rule('task id ' .. used .. ' is used already') end
redis.call('HSET', jk, 'info', ARGV[5], 'state', 'running', 'total', 0, 'done', 0,
  'failed', 0, 'cancelled', 0, 'priority', ARGV[6], 'redundancy', ARGV[7])
if ARGV[3] == '1' then
  redis.call('HSET', jk, 'client_key', ck)
  redis.call('HSET', p .. 'clients', ck, j)
end
redis.call('ZADD', p .. 'jobs', j, j)
redis.call('ZADD', p .. 'jobs:running', j, j)
raise_to(p .. 'ids:job', tonumber(j))
insert_tasks(8)
return 1
"""
)

_ADD_TASKS: Final = (
    _LIB
    + """
-- ARGV: prefix, tasks
local seen, jobs = {}, {}
for i = 2, #ARGV, 5 do
  local j = ARGV[i + 1]
  if not seen[j] then seen[j] = true; jobs[#jobs + 1] = j end
end
table.sort(jobs, function(a, b) return tonumber(a) < tonumber(b) end)
for _, j in ipairs(jobs) do
  local state = redis.call('HGET', p .. 'job:' .. j, 'state')
  if not state then return rule('job ' .. j .. ' does not exist') end
  if state == 'cancelled' then return rule('job ' .. j .. ' is cancelled') end
end
local used = used_task_id(2)
if used then return rule('task id ' .. used .. ' is used already') end
for _, j in ipairs(jobs) do
  local jk = p .. 'job:' .. j
  if redis.call('HGET', jk, 'state') == 'finished' then  -- more work: running again
    redis.call('HSET', jk, 'state', 'running')
    redis.call('HDEL', jk, 'finished_at')
    redis.call('ZREM', p .. 'jobs:ended', j)
    redis.call('ZADD', p .. 'jobs:running', j, j)
  end
end
insert_tasks(2)
return 1
"""
)

_ADD_OUTCOMES: Final = (
    _LIB
    + """
-- ARGV: prefix, now, then per outcome: task id, job id, "r" or "f" + JSON, finished_at or ""
local recorded, counts, latest, touched, finished = {}, {}, {}, {}, {}
for i = 3, #ARGV, 4 do
  local t, j, blob, at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local jk = p .. 'job:' .. j
  local task = redis.call('HGET', jk .. ':queued', t)  -- absent: unknown, final, other job
  if task then
    redis.call('HDEL', jk .. ':queued', t)
    redis.call('HDEL', jk .. ':lost', t)
    redis.call('HSET', p .. 'outcome', t, string.match(task, '^[^:]*') .. ':' .. blob)
    redis.call('XADD', jk .. ':log', '*', 't', t)
    release(t)
    local c = counts[j]
    if not c then c = {0, 0}; counts[j] = c; touched[#touched + 1] = j end
    if string.sub(blob, 1, 1) == 'r' then c[1] = c[1] + 1 else c[2] = c[2] + 1 end
    if at ~= '' and (latest[j] == nil or tonumber(at) > tonumber(latest[j])) then
      latest[j] = at
    end
    recorded[#recorded + 1] = 1
  else
    recorded[#recorded + 1] = 0
  end
end
for _, j in ipairs(touched) do
  local jk = p .. 'job:' .. j
  local done = redis.call('HINCRBY', jk, 'done', counts[j][1])
  local failed = redis.call('HINCRBY', jk, 'failed', counts[j][2])
  local job = redis.call('HMGET', jk, 'state', 'total', 'cancelled')
  if job[1] == 'running' and done + failed + tonumber(job[3]) >= tonumber(job[2]) then
    local at = latest[j] or ARGV[2]
    redis.call('HSET', jk, 'state', 'finished', 'finished_at', at)
    redis.call('ZREM', p .. 'jobs:running', j)
    redis.call('ZADD', p .. 'jobs:ended', at, j)
    unqueue_job(j)
    finished[#finished + 1] = {j, done, failed}
  end
end
return {recorded, finished}
"""
)

_RECORD_ATTEMPT: Final = """
-- ARGV: prefix, task id, the reason as a JSON string
local p, t = ARGV[1], ARGV[2]
local j = redis.call('HGET', p .. 'task:job', t)
if not j or redis.call('HEXISTS', p .. 'job:' .. j .. ':queued', t) == 0 then return 0 end
local lost = p .. 'job:' .. j .. ':lost'
local before = redis.call('HGET', lost, t)
redis.call('HSET', lost, t, before and (before .. ',' .. ARGV[3]) or ARGV[3])
return 1
"""

_CANCEL_JOB: Final = (
    _LIB
    + """
-- ARGV: prefix, job id, at
local j, at = ARGV[2], ARGV[3]
local jk = p .. 'job:' .. j
if redis.call('HGET', jk, 'state') ~= 'running' then return {} end
local ids = redis.call('HKEYS', jk .. ':queued')
if #ids > 0 then redis.call('RENAME', jk .. ':queued', jk .. ':cancelled') end
for _, t in ipairs(ids) do  -- what waits for them goes on (and fails); they wait no more
  redis.call('DEL', p .. 'after:' .. t)
  release(t)
end
redis.call('DEL', jk .. ':lost')
redis.call('HINCRBY', jk, 'cancelled', #ids)
redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', at)
redis.call('ZREM', p .. 'jobs:running', j)
redis.call('ZADD', p .. 'jobs:ended', at, j)
redis.call('XADD', jk .. ':log', '*', 'end', 'cancelled')  -- wakes its followers
unqueue_job(j)
redis.call('PUBLISH', p .. 'grid', 'cancel:' .. j)
return ids
"""
)

_RESERVE_IDS: Final = """
-- ARGV: prefix, job ids wanted, task ids wanted; returns the last id of each range
return {redis.call('INCRBY', ARGV[1] .. 'ids:job', ARGV[2]),
        redis.call('INCRBY', ARGV[1] .. 'ids:task', ARGV[3])}
"""

_RECORD_WORKERS: Final = """
-- ARGV: prefix, then per worker: key, last_seen, WorkerRecord JSON
local p = ARGV[1]
for i = 2, #ARGV, 3 do
  redis.call('HSET', p .. 'workers', ARGV[i], ARGV[i + 2])
  redis.call('ZADD', p .. 'workers:seen', ARGV[i + 1], ARGV[i])
end
return 1
"""

_RECORD_THROUGHPUT: Final = """
-- ARGV: prefix, then per sample: second, done, failed
local p = ARGV[1]
for i = 2, #ARGV, 3 do
  redis.call('ZADD', p .. 'throughput', ARGV[i], ARGV[i])
  redis.call('HINCRBY', p .. 'throughput:n', ARGV[i] .. ':d', ARGV[i + 1])
  redis.call('HINCRBY', p .. 'throughput:n', ARGV[i] .. ':f', ARGV[i + 2])
end
return 1
"""

_PRUNE_JOBS_STEP: Final = (
    _LIB
    + """
-- ARGV: prefix, finished_before, tasks to remove at most, jobs to look at at most
-- Returns {jobs removed, 1 if there may be more to do}.
local budget = tonumber(ARGV[3])
local ids = redis.call('ZRANGE', p .. 'jobs:ended', '-inf', '(' .. ARGV[2], 'BYSCORE',
  'LIMIT', 0, ARGV[4])
local removed = 0
for _, j in ipairs(ids) do
  local jk = p .. 'job:' .. j
  while budget > 0 do  -- its outcomes, oldest first
    local entries = redis.call('XRANGE', jk .. ':log', '-', '+', 'COUNT', math.min(budget, 1000))
    if #entries == 0 then break end
    local tasks, seen = {}, {}
    for _, entry in ipairs(entries) do
      seen[#seen + 1] = entry[1]
      if entry[2][1] == 't' then tasks[#tasks + 1] = entry[2][2] end
    end
    if #tasks > 0 then
      call_chunked('HDEL', p .. 'outcome', tasks, 1)
      call_chunked('HDEL', p .. 'task:job', tasks, 1)
    end
    call_chunked('XDEL', jk .. ':log', seen, 1)
    budget = budget - #entries
  end
  while budget > 0 do  -- its cancelled tasks
    local tasks = redis.call('HRANDFIELD', jk .. ':cancelled', math.min(budget, 1000))
    if #tasks == 0 then break end
    call_chunked('HDEL', jk .. ':cancelled', tasks, 1)
    call_chunked('HDEL', p .. 'task:job', tasks, 1)
    budget = budget - #tasks
  end
  if budget <= 0 then return {removed, 1} end  -- the next step goes on with this job
  local ck = redis.call('HGET', jk, 'client_key')
  if ck then redis.call('HDEL', p .. 'clients', ck) end
  redis.call('DEL', jk, jk .. ':log', jk .. ':cancelled', jk .. ':queued', jk .. ':lost')
  unqueue_job(j)
  redis.call('ZREM', p .. 'jobs', j)
  redis.call('ZREM', p .. 'jobs:ended', j)
  removed = removed + 1
end
return {removed, #ids == tonumber(ARGV[4]) and 1 or 0}
"""
)

_PRUNE_THROUGHPUT: Final = """
-- ARGV: prefix, before, samples to remove at most; returns 1 if there may be more
local p = ARGV[1]
local seconds = redis.call('ZRANGE', p .. 'throughput', '-inf', '(' .. ARGV[2], 'BYSCORE',
  'LIMIT', 0, ARGV[3])
for _, at in ipairs(seconds) do
  redis.call('ZREM', p .. 'throughput', at)
  redis.call('HDEL', p .. 'throughput:n', at .. ':d', at .. ':f')
end
return #seconds == tonumber(ARGV[3]) and 1 or 0
"""

_PRUNE_WORKERS: Final = """
-- ARGV: prefix, seen_before, workers to look at at most, how many to skip (those kept by
-- the steps before: the oldest), then the keys to keep. A quarantined worker is kept too.
-- Returns {workers removed, workers looked at and kept, 1 if there may be more}.
local p = ARGV[1]
local keep = {}
for i = 5, #ARGV do keep[ARGV[i]] = true end
local keys = redis.call('ZRANGE', p .. 'workers:seen', '-inf', '(' .. ARGV[2], 'BYSCORE',
  'LIMIT', ARGV[4], ARGV[3])
local removed, kept = 0, 0
for _, key in ipairs(keys) do
  local record = redis.call('HGET', p .. 'workers', key)
  if keep[key] or (record and cjson.decode(record).quarantined) then
    kept = kept + 1
  else
    redis.call('HDEL', p .. 'workers', key)
    redis.call('ZREM', p .. 'workers:seen', key)
    removed = removed + 1
  end
end
return {removed, kept, #keys == tonumber(ARGV[3]) and 1 or 0}
"""

_JOBS: Final = """
-- ARGV: prefix, the highest score wanted ("+inf" or "(" .. before), limit
local p = ARGV[1]
local out = {}
local ids = redis.call('ZRANGE', p .. 'jobs', ARGV[2], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0,
  ARGV[3])
for _, j in ipairs(ids) do
  out[#out + 1] = redis.call('HMGET', p .. 'job:' .. j, 'info', 'state', 'finished_at',
    'total', 'done', 'failed', 'cancelled')
end
return out
"""

_OUTCOME_PAGE: Final = """
-- ARGV: prefix, job id, the last log entry read ("0-0" at first), entries at most
-- Returns {job state (nil: unknown), last entry read, entries read, outcomes...}: the
-- state and the page come from one snapshot, so when the job has ended, nothing follows.
local p = ARGV[1]
local jk = p .. 'job:' .. ARGV[2]
local entries = redis.call('XRANGE', jk .. ':log', '(' .. ARGV[3], '+', 'COUNT', ARGV[4])
local out = {redis.call('HGET', jk, 'state'), ARGV[3], #entries}
for _, entry in ipairs(entries) do
  out[2] = entry[1]
  if entry[2][1] == 't' then
    local outcome = redis.call('HGET', p .. 'outcome', entry[2][2])
    if outcome then out[#out + 1] = outcome end
  end
end
return out
"""

_WORKERS: Final = (
    _LIB
    + """
-- ARGV: prefix, limit ("" for all): the workers seen last, ties at the cut included
if ARGV[2] == '' then return redis.call('HVALS', p .. 'workers') end
local top = redis.call('ZRANGE', p .. 'workers:seen', 0, tonumber(ARGV[2]) - 1, 'REV',
  'WITHSCORES')
if #top == 0 then return {} end
local keys = redis.call('ZRANGE', p .. 'workers:seen', '+inf', top[#top], 'BYSCORE', 'REV')
return hmget_all(p .. 'workers', keys)
"""
)

_THROUGHPUT: Final = """
-- ARGV: prefix, since; returns second, done, failed, ... oldest first
local p = ARGV[1]
local out = {}
for _, at in ipairs(redis.call('ZRANGE', p .. 'throughput', ARGV[2], '+inf', 'BYSCORE')) do
  local n = redis.call('HMGET', p .. 'throughput:n', at .. ':d', at .. ':f')
  out[#out + 1] = at
  out[#out + 1] = n[1] or '0'
  out[#out + 1] = n[2] or '0'
end
return out
"""

_MIGRATE_1_TO_2: Final = (
    _LIB
    + """
-- ARGV: prefix. Layout 1 had no shared queue: queue the tasks of running jobs.
for _, j in ipairs(redis.call('ZRANGE', p .. 'jobs:running', 0, -1)) do
  local jk = p .. 'job:' .. j
  local info = cjson.decode(redis.call('HGET', jk, 'info'))
  local priority = info.priority or 0
  redis.call('HSET', jk, 'priority', priority, 'redundancy', info.redundancy or 1)
  local queued, todo = redis.call('HGETALL', jk .. ':queued'), {}
  for i = 1, #queued, 2 do
    local op = cjson.decode(string.match(queued[i + 1], '^[^:]*:(.*)$')).op
    todo[#todo + 1] = {tonumber(queued[i]), op}
  end
  table.sort(todo, function(a, b) return a[1] < b[1] end)  -- oldest task first
  for _, task in ipairs(todo) do
    redis.call('XADD', queue_key(j, task[2], priority), '*', 't', task[1])
  end
end
redis.call('SET', p .. 'schema', 2)
return 1
"""
)

_SCRIPTS: Final = {
    "add_job": _ADD_JOB,
    "add_tasks": _ADD_TASKS,
    "add_outcomes": _ADD_OUTCOMES,
    "record_attempt": _RECORD_ATTEMPT,
    "cancel_job": _CANCEL_JOB,
    "reserve_ids": _RESERVE_IDS,
    "record_workers": _RECORD_WORKERS,
    "record_throughput": _RECORD_THROUGHPUT,
    "prune_jobs": _PRUNE_JOBS_STEP,
    "prune_throughput": _PRUNE_THROUGHPUT,
    "prune_workers": _PRUNE_WORKERS,
    "jobs": _JOBS,
    "outcome_page": _OUTCOME_PAGE,
    "workers": _WORKERS,
    "throughput": _THROUGHPUT,
    "migrate_1_to_2": _MIGRATE_1_TO_2,
}
_SHAS: Final = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in _SCRIPTS.items()}


@dataclass(eq=False, slots=True)
class _Write:
    """One write method's script, waiting for the writer task."""

    script: str
    args: list[Any]
    future: asyncio.Future[Any]

    def settle(self, reply: Any = None, error: BaseException | None = None) -> None:
        if self.future.done():  # the caller was cancelled
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(reply)


class RedisStore:
    """``Store`` in a Redis server: ``RedisStore("redis://127.0.0.1:6379/0")``.

    Everything of this store lives under one key prefix (``?prefix=``, default
    ``browsergrid:``) in the URL's database; the module docstring lays out the keys.

    Durability is Redis's: a call that has returned is in Redis's memory, and survives a
    restart of Redis as far as its persistence is set up (``appendonly yes`` with
    ``appendfsync everysec`` loses at most a second on a power cut; RDB snapshots alone
    lose everything since the last one).

    Errors: an unreachable or failing Redis raises StoreError naming the URL (without its
    password), and the call may or may not have been applied (a reply lost on the way);
    the store keeps going, so a later call succeeds once Redis is back. Breaking a rule of
    the interface raises ValueError and stores nothing.

    Writes are applied in the order the calls were made (each is queued before the call's
    first ``await``). Use the store from the event loop that opened it.
    """

    pipelines: int
    """Pipelines the writer task has sent (tests check batching with it)."""

    def __init__(self, url: str) -> None:
        self._client_url, self._prefix, self._shown = _parse_url(url)
        self._client: aioredis.Redis | None = None
        self._state = "new"  # new -> open -> closing -> closed (-> open again)
        self._pending: list[_Write] = []
        self._has_work = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None  # done once close() starts
        self._waits: set[asyncio.Task[Any]] = set()  # followers' XREADs in progress
        self._page_size = _PAGE_SIZE
        self.pipelines = 0

    @property
    def url(self) -> str:
        """The URL as given, its password left out."""
        return self._shown

    @property
    def prefix(self) -> str:
        """What every key of this store starts with."""
        return self._prefix

    # --- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        if self._state == "open":
            return
        client = aioredis.Redis.from_url(
            self._client_url,
            retry=Retry(NoBackoff(), 0),  # a write sent twice could be applied twice
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=_COMMAND_TIMEOUT_S,
        )
        try:
            with self._errors():
                await self._check_server(client)
                await self._load_scripts(client)
        except BaseException:
            await client.aclose()
            raise
        loop = asyncio.get_running_loop()
        self._client = client
        self._pending = []
        self._has_work = asyncio.Event()
        self._closed = loop.create_future()
        self._state = "open"
        self._writer = loop.create_task(self._writer_main(client), name="browsergrid-store-write")
        log.debug("opened %s (prefix %s)", self._shown, self._prefix)

    async def _check_server(self, client: aioredis.Redis) -> None:
        await client.ping()
        info = await client.info("server")
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
        if parts < _MIN_VERSION:
            raise StoreError(
                f"Redis at {self._shown} is version {version}; browsergrid needs 6.2 or newer"
            )
        key = self._prefix + "schema"
        await client.set(key, _SCHEMA, nx=True)
        stored = cast(bytes | None, await client.get(key))
        try:
            schema = int(stored or b"")
        except (TypeError, ValueError):
            raise StoreError(
                f"Redis at {self._shown}: the key {key} holds {stored!r}, not a browsergrid "
                "layout version; give another ?prefix="
            ) from None
        if schema > _SCHEMA:
            raise StoreError(
                f"Redis at {self._shown} holds layout version {schema} under {self._prefix!r}, "
                f"but this browsergrid supports version {_SCHEMA} at most: upgrade "
                "browsergrid, or give another ?prefix="
            )
        if schema == 1:
            await client.eval(_MIGRATE_1_TO_2, 0, self._prefix)
            log.info("Redis at %s: moved layout 1 to 2 (the shared queue)", self._shown)

    async def _load_scripts(self, client: aioredis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for text in _SCRIPTS.values():
            pipe.script_load(text)
        await pipe.execute()

    async def close(self) -> None:
        if self._state != "open":
            return
        self._state = "closing"
        self._has_work.set()  # the writer sends what is queued, then stops
        assert self._writer is not None and self._closed is not None
        await self._writer
        self._closed.set_result(None)  # followers end with StoreError
        for wait in list(self._waits):
            wait.cancel()
        client, self._client = self._client, None
        assert client is not None
        await client.aclose()
        self._state = "closed"
        log.debug("closed %s", self._shown)

    def client(self) -> aioredis.Redis:
        """The open store's Redis client (for ``SharedQueue``); StoreError if not open."""
        return self._open_client()

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """A context that turns the Redis client's errors into StoreError naming the server."""
        return self._errors()

    async def cancelled_tasks(self, job_id: int) -> list[int]:
        """The ids of the tasks ``cancel_job`` cancelled in this job, in order."""
        client = self._open_client()
        with self._errors():
            ids = await client.hkeys(f"{self._prefix}job:{job_id}:cancelled")
        return sorted(int(task_id) for task_id in ids)

    def _open_client(self) -> aioredis.Redis:
        if self._state != "open" or self._client is None:
            raise StoreError(f"the Redis store {self._shown} is not open")
        return self._client

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the Redis client's errors into StoreError naming the server."""
        try:
            yield
        except (rx.RedisError, OSError) as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> StoreError:
        if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
            return StoreError(f"cannot reach Redis at {self._shown}: {_reason(exc)}")
        return StoreError(f"Redis at {self._shown} failed: {exc}")

    # --- the writer task -----------------------------------------------------------------

    async def _write(self, script: str, args: list[Any]) -> Any:
        """Run a write script in the writer's next pipeline; its reply."""
        self._open_client()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(script, [self._prefix, *args], future))
        self._has_work.set()
        return await future

    async def _writer_main(self, client: aioredis.Redis) -> None:
        while True:
            await self._has_work.wait()
            self._has_work.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._send(client, batch)
                except Exception as exc:  # a bug: the callers get it, the writer goes on
                    log.exception("the writer of %s failed", self._shown)
                    for item in batch:
                        item.settle(error=exc)
            if self._state != "open" and not self._pending:
                return

    async def _send(self, client: aioredis.Redis, batch: list[_Write]) -> None:
        """One pipeline for the whole batch; each script's reply or error goes to its caller.
        Scripts Redis has forgotten (restarted, SCRIPT FLUSH) are loaded and sent again."""
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for item in batch:
                pipe.evalsha(_SHAS[item.script], 0, *item.args)
            self.pipelines += 1
            try:
                replies = await pipe.execute(raise_on_error=False)
            except (rx.RedisError, OSError) as exc:
                error = self._failure(exc)
                log.error("%s", error)
                for item in batch:
                    item.settle(error=error)
                return
            forgotten: list[_Write] = []
            for item, reply in zip(batch, replies, strict=True):
                if isinstance(reply, rx.NoScriptError) and attempt == 0:
                    forgotten.append(item)
                elif isinstance(reply, Exception):
                    item.settle(error=self._script_error(reply))
                else:
                    item.settle(reply)
            if not forgotten:
                return
            batch = forgotten
            try:
                await self._load_scripts(client)
            except (rx.RedisError, OSError) as exc:
                for item in batch:
                    item.settle(error=self._failure(exc))
                return

    def _script_error(self, exc: Exception) -> Exception:
        message = str(exc)
        if message.startswith("BGRULE "):
            return ValueError(f"{self._shown}: {message.removeprefix('BGRULE ')}")
        error = self._failure(exc)
        log.error("%s", error)
        return error

    # --- reading -----------------------------------------------------------------------

    async def _read(self, script: str, *args: Any) -> Any:
        """Run a read-only script (loading the scripts again if Redis forgot them)."""
        client = self._open_client()
        with self._errors():
            try:
                return await client.evalsha(_SHAS[script], 0, self._prefix, *args)
            except rx.NoScriptError:
                await self._load_scripts(client)
                return await client.evalsha(_SHAS[script], 0, self._prefix, *args)

    # --- writes ------------------------------------------------------------------------

    async def add_job(self, job: JobInfo, tasks: Sequence[TaskRecord]) -> None:
        for task in tasks:
            if task.job_id != job.job_id:
                raise ValueError(f"task {task.task_id} belongs to job {task.job_id}, not this one")
        args: list[Any] = [job.job_id]
        args += ["0", ""] if job.client_key is None else ["1", job.client_key]
        args += [_encode(job), job.priority, job.redundancy]
        args += _task_args(tasks)
        await self._write("add_job", args)

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if not tasks:
            self._open_client()
            return
        await self._write("add_tasks", _task_args(tasks))

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        recorded, _ = await self.add_outcomes_finishing(outcomes)
        return recorded

    async def add_outcomes_finishing(
        self, outcomes: Sequence[Outcome]
    ) -> tuple[list[bool], list[tuple[int, int, int]]]:
        """``add_outcomes``, and the jobs these outcomes finished: (job id, done, failed)
        each (in a grid, the coordinator that stores a job's last outcome reports it)."""
        if not outcomes:
            self._open_client()
            return [], []
        args: list[Any] = [repr(time.time())]
        for o in outcomes:  # encoded here: a result that is not JSON fails in the caller
            kind = b"r" if isinstance(o, ResultRecord) else b"f"
            at = "" if o.finished_at is None else repr(float(o.finished_at))
            args += [o.task_id, o.job_id, kind + _encode(o), at]
        recorded, finished = await self._write("add_outcomes", args)
        return (
            [bool(flag) for flag in recorded],
            [(int(j), int(done), int(failed)) for j, done, failed in finished],
        )

    async def record_attempt(self, task_id: int, reason: str) -> None:
        await self._write("record_attempt", [task_id, _encode(reason)])

    async def cancel_job(self, job_id: int, at: float) -> list[int]:
        ids = await self._write("cancel_job", [job_id, repr(float(at))])
        return sorted(int(task_id) for task_id in ids)

    async def reserve_ids(self, jobs: int, tasks: int) -> tuple[int, int]:
        """Take ``jobs`` job ids and ``tasks`` task ids that nobody else will get, even
        another store on the same Redis and prefix; returns the first of each range (the
        range of a count of 0 is empty). For coordinators sharing one Redis."""
        if jobs < 0 or tasks < 0:
            raise ValueError("reserve_ids takes counts >= 0")
        last_job, last_task = await self._write("reserve_ids", [jobs, tasks])
        return int(last_job) - jobs + 1, int(last_task) - tasks + 1

    async def record_workers(self, workers: Sequence[WorkerRecord]) -> None:
        if not workers:
            self._open_client()
            return
        args: list[Any] = []
        for w in workers:
            args += [w.worker_key, repr(float(w.last_seen)), _encode(w)]
        await self._write("record_workers", args)

    async def record_throughput(self, samples: Sequence[ThroughputSample]) -> None:
        if not samples:
            self._open_client()
            return
        args: list[Any] = []
        for s in samples:
            args += [s.at, s.done, s.failed]
        await self._write("record_throughput", args)

    async def prune(self, finished_before: float) -> int:
        before = repr(float(finished_before))
        removed = 0
        while True:
            count, more = await self._write("prune_jobs", [before, _PRUNE_BATCH, _PRUNE_JOBS])
            removed += int(count)
            if not more:
                break
        while await self._write("prune_throughput", [before, _PRUNE_BATCH]):
            pass
        return removed

    async def prune_workers(self, seen_before: float, *, keep: Collection[str] = ()) -> int:
        before, kept = repr(float(seen_before)), sorted(set(keep))
        removed = skip = 0
        while True:
            count, held, more = await self._write(
                "prune_workers", [before, _PRUNE_BATCH, skip, *kept]
            )
            removed, skip = removed + int(count), skip + int(held)
            if not more:
                return removed

    # --- reads -------------------------------------------------------------------------

    async def job_for(self, client_key: str) -> int | None:
        client = self._open_client()
        with self._errors():
            found = await client.hget(self._prefix + "clients", client_key)
        return None if found is None else int(found)

    async def job(self, job_id: int) -> JobSummary | None:
        client = self._open_client()
        with self._errors():
            fields = cast(
                list[bytes | None],
                await client.hmget(f"{self._prefix}job:{job_id}", list(_JOB_FIELDS)),
            )
        return _summary(fields)

    async def jobs(self, *, limit: int = 100, before: int | None = None) -> list[JobSummary]:
        if limit <= 0:
            self._open_client()
            return []
        highest = "+inf" if before is None else f"({before}"
        rows = await self._read("jobs", highest, limit)
        return [summary for row in rows if (summary := _summary(row)) is not None]

    async def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        async for _, outcome in self.outcomes_after(job_id, b"0-0", follow=follow):
            yield outcome

    async def outcomes_after(
        self, job_id: int, after: bytes, *, follow: bool = False
    ) -> AsyncIterator[tuple[bytes, Outcome]]:
        """``outcomes``, from the job's log entry after ``after`` (b"0-0": from the start),
        each with the id of the last entry of the page it was read in: once the page is
        consumed, a follower that stopped resumes after it."""
        self._open_client()
        while True:
            page_size = self._page_size
            reply = await self._read("outcome_page", job_id, after, page_size)
            state, after, read = reply[0], reply[1], int(reply[2])
            for stored in reply[3:]:
                yield after, _outcome(stored)
            if read == page_size:
                continue
            if state is None or state != b"running" or not follow:
                return
            await self._wait_for_log(f"{self._prefix}job:{job_id}:log", after)

    async def _wait_for_log(self, key: str, after: bytes) -> None:
        """Until the log has an entry after ``after`` (or a while has passed); StoreError
        when the store closes meanwhile."""
        client = self._open_client()
        assert self._closed is not None
        closed = self._closed
        wait = asyncio.ensure_future(client.xread({key: after}, count=1, block=_FOLLOW_BLOCK_MS))
        self._waits.add(wait)
        try:
            await asyncio.wait((wait, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waits.discard(wait)
            if not wait.done():
                wait.cancel()
                with contextlib.suppress(asyncio.CancelledError, rx.RedisError, OSError):
                    await wait
        if closed.done():
            raise StoreError(f"the Redis store {self._shown} was closed")
        with self._errors():
            wait.result()

    async def outcomes_of(self, task_ids: Sequence[int]) -> list[Outcome]:
        client = self._open_client()
        wanted = list(task_ids)
        unique = sorted(set(wanted))
        found: dict[int, Outcome] = {}
        with self._errors():
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                values = cast(
                    list[bytes | None], await client.hmget(self._prefix + "outcome", chunk)
                )
                for task_id, stored in zip(chunk, values, strict=True):
                    if stored is not None:
                        found[task_id] = _outcome(stored)
        return [found[task_id] for task_id in wanted if task_id in found]

    async def unfinished(self) -> tuple[list[JobInfo], list[TaskRecord]]:
        """Read in pages (HSCAN), so a job of a million tasks never makes one huge reply
        that holds up Redis; each page is a snapshot, and a task that ends meanwhile may or
        may not be in the result."""
        client = self._open_client()
        prefix = self._prefix
        jobs: list[JobInfo] = []
        tasks: list[TaskRecord] = []
        with self._errors():
            running = cast(list[bytes], await client.zrange(prefix + "jobs:running", 0, -1))
            for job_id in running:
                key = f"{prefix}job:{job_id.decode()}"
                info = cast(bytes | None, await client.hget(key, "info"))
                if info is None:
                    continue
                jobs.append(_decode_job(info))
                lost = cast(dict[bytes, bytes], await client.hgetall(key + ":lost"))
                async for task_id, stored in client.hscan_iter(key + ":queued", count=_CHUNK):
                    tasks.append(task_record(stored, lost.get(task_id)))
        jobs.sort(key=lambda job: job.job_id)
        tasks.sort(key=lambda task: task.task_id)
        return jobs, tasks

    async def next_ids(self) -> tuple[int, int]:
        client = self._open_client()
        with self._errors():
            last_job, last_task = await client.mget(
                [self._prefix + "ids:job", self._prefix + "ids:task"]
            )
        return int(last_job or 0) + 1, int(last_task or 0) + 1

    async def workers(self, *, limit: int | None = None) -> list[WorkerRecord]:
        if limit is not None and limit <= 0:
            self._open_client()
            return []
        stored = await self._read("workers", "" if limit is None else limit)
        found = [_decode_worker(value) for value in stored if value is not None]
        found.sort(key=lambda w: (-w.last_seen, w.worker_key))
        return found if limit is None else found[:limit]

    async def worker(self, worker_key: str) -> WorkerRecord | None:
        client = self._open_client()
        with self._errors():
            stored = await client.hget(self._prefix + "workers", worker_key)
        return None if stored is None else _decode_worker(stored)

    async def throughput(self, since: float) -> list[ThroughputSample]:
        flat = await self._read("throughput", repr(float(since)))
        return [
            ThroughputSample(int(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]


def _parse_url(url: str) -> tuple[str, str, str]:
    """(the URL for the client, the key prefix, the URL to show); ValueError if it is not
    a Redis URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"not a Redis URL: {url!r} (use redis://HOST:PORT/DB, rediss:// for TLS, "
            "or unix:///PATH)"
        )
    try:
        parts.port  # noqa: B018 -- checks it
    except ValueError:
        raise ValueError(f"not a Redis URL: {url!r} (its port is not a number)") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        raise ValueError(f"{url!r}: an empty ?prefix= would mix browsergrid's keys with others")
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    shown = parts
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        shown = parts._replace(netloc=f"{user}:***@{host}")
    return urlunsplit(parts._replace(query=rest)), prefix, urlunsplit(shown)


def _reason(exc: BaseException) -> str:
    """The operating system's words for a connection failure ("Connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.strerror:
            return seen.strerror
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, rx.TimeoutError):
        return f"no answer in {_COMMAND_TIMEOUT_S:g} s"
    return str(exc) or type(exc).__name__


def _task_args(tasks: Sequence[TaskRecord]) -> list[Any]:
    ids = [task.task_id for task in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("a task id is used twice")
    args: list[Any] = []
    for task in tasks:
        deps = ",".join(map(str, sorted(task_futures(task.args))))  # what it waits for
        args += [task.task_id, task.job_id, task.op, b"%d:" % task.index + _encode(task), deps]
    return args


def task_record(stored: bytes, lost: bytes | None) -> TaskRecord:
    """A task from its ``job:J:queued`` value and its ``job:J:lost`` reasons, if any."""
    task = _decode_task(stored.partition(b":")[2])
    if lost:
        more = _decode_reasons(b"[" + lost + b"]")
        task = msgspec.structs.replace(
            task, attempts=task.attempts + len(more), reasons=[*task.reasons, *more]
        )
    return task


def _summary(fields: Sequence[bytes | None]) -> JobSummary | None:
    info, state, finished_at, total, done, failed, cancelled = fields
    if info is None or state is None:
        return None  # unknown, or removed by prune
    return JobSummary(
        info=_decode_job(info),
        state=JobState(state.decode()),
        total=int(total or 0),
        done=int(done or 0),
        failed=int(failed or 0),
        cancelled=int(cancelled or 0),
        finished_at=None if finished_at is None else float(finished_at),
    )


def _outcome(stored: bytes) -> Outcome:
    """An ``outcome`` value: "<index of its task>:" + "r" or "f" + JSON."""
    index, _, blob = stored.partition(b":")
    outcome: Outcome = _decode_result(blob[1:]) if blob[:1] == b"r" else _decode_failure(blob[1:])
    if outcome.index != int(index):
        outcome = msgspec.structs.replace(outcome, index=int(index))
    return outcome


if TYPE_CHECKING:
    from browsergrid.store._base import Store

    def _implements(store: RedisStore) -> Store:
        return store
