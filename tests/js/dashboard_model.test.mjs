// Checks web/js/dashboard/model.js against docs/dashboard.md, replaying tests/fixtures/dashboard_feed.json.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  agentLabel,
  applyFrame,
  demoJob,
  filterWorkers,
  initialState,
  LIMITS,
  page,
  summary,
  summaryText,
  throughputSeries,
  workerLabel,
} from '../../src/browsergrid/web/js/dashboard/model.js';

const { frames } = JSON.parse(
  readFileSync(new URL('../fixtures/dashboard_feed.json', import.meta.url), 'utf8'),
);
const [snapshot, update1, update2, update3] = frames;

const replay = (list, state = initialState()) => list.reduce(applyFrame, state);
const ids = (rows) => rows.map((row) => row.id);

function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    Object.values(value).forEach(deepFreeze);
  }
  return value;
}

test('the fixture is a snapshot then updates, every row type present with every field', () => {
  assert.equal(snapshot.type, 'snapshot');
  assert.ok(frames.slice(1).every((frame) => frame.type === 'update'));
  const fields = {
    workers: [
      'id',
      'key',
      'kind',
      'browser',
      'os',
      'agent',
      'address',
      'connected_at',
      'state',
      'in_flight',
      'concurrency',
      'done',
      'failures',
      'lifetime_done',
      'mean_ms',
      'speed_ms',
    ],
    jobs: [
      'id',
      'name',
      'op',
      'state',
      'total',
      'queued',
      'leased',
      'done',
      'failed',
      'cancelled',
      'created_at',
      'finished_at',
      'rate',
      'eta_s',
    ],
    results: ['task_id', 'job_id', 'worker_id', 'op', 'result', 'duration_ms', 'at'],
    events: ['at', 'kind', 'worker_id', 'address', 'label', 'worker_kind', 'browser', 'os'],
    history: [
      'key',
      'label',
      'kind',
      'browser',
      'os',
      'first_seen',
      'last_seen',
      'done',
      'failures',
      'mean_ms',
      'connected',
    ],
  };
  for (const [section, names] of Object.entries(fields)) {
    for (const row of snapshot[section])
      assert.deepEqual(Object.keys(row).sort(), [...names].sort(), section);
  }
  assert.deepEqual(Object.keys(snapshot.totals).sort(), [
    'busy',
    'clients',
    'done',
    'failed',
    'leased',
    'queued',
    'rate',
    'store',
    'viewers',
    'workers',
  ]);
  assert.deepEqual(Object.keys(snapshot.server.demo).sort(), [
    'cols',
    'max_iter',
    'name',
    'rows',
    'tile_height',
    'tile_width',
  ]);
  assert.deepEqual(
    new Set(snapshot.workers.map((row) => row.kind)),
    new Set(['browser', 'python', 'exercise', 'other']),
  );
  assert.deepEqual(Object.keys(update1).sort(), [
    'events',
    'events_dropped',
    'gone',
    'history',
    'jobs',
    'now',
    'results',
    'throughput',
    'totals',
    'type',
    'workers',
  ]);
  assert.deepEqual(Object.keys(update2).sort(), ['now', 'totals', 'type']);
});

test('a snapshot replaces everything', () => {
  const state = applyFrame(replay(frames), snapshot);
  assert.deepEqual(state, applyFrame(initialState(), snapshot));
  assert.equal(state.now, snapshot.now);
  assert.deepEqual(state.server, snapshot.server);
  assert.deepEqual(state.totals, snapshot.totals);
  assert.deepEqual(ids(state.workers), [1, 2, 3, 4]);
  assert.deepEqual(ids(state.jobs), [12, 11, 10, 9]);
  assert.deepEqual(state.throughput, snapshot.throughput);
  assert.deepEqual(state.results, snapshot.results);
  assert.deepEqual(state.events, snapshot.events);
  assert.equal(state.eventsDropped, 0);
  assert.deepEqual(
    state.history.map((row) => row.key),
    ['k-5f0c2a9e41b84d7d', 'py-build-host-a', 'k-0e1d9a7b3c2f4a55'],
  );
});

test('an update upserts workers and jobs by id, removes gone workers and appends the rest', () => {
  const state = replay([snapshot, update1]);
  assert.deepEqual(ids(state.workers), [1, 2, 3, 6]);
  assert.equal(state.workers[0].done, 121);
  assert.equal(state.jobs[0].done, 48);
  assert.deepEqual(ids(state.jobs), [12, 11, 10, 9]);
  assert.deepEqual(state.throughput.at(-1), [1764100000, 14, 1]);
  assert.deepEqual(
    state.results.map((row) => row.task_id),
    [1, 2601, 2602, 2603, 2604],
  );
  assert.deepEqual(
    state.events.map((row) => row.worker_id),
    [1, 2, 5, 4, 6],
  );
  assert.equal(state.history[0].key, 'k-77aa01bc9d3e4f60');
  assert.equal(state.history.length, 4);
  assert.equal(state.totals.viewers, 2);
});

test('absent keys mean no change: the sections keep their identity', () => {
  const before = replay([snapshot, update1]);
  const after = applyFrame(before, update2);
  assert.equal(after.now, update2.now);
  assert.equal(after.totals, update2.totals);
  for (const section of [
    'server',
    'workers',
    'jobs',
    'throughput',
    'results',
    'events',
    'history',
  ]) {
    assert.equal(after[section], before[section], section);
  }
  assert.equal(after.eventsDropped, 0);
});

test('throughput replaces a second already present and keeps 15 minutes before now', () => {
  const state = replay(frames);
  const oldest = Math.floor(update3.now) - LIMITS.throughputS;
  assert.ok(state.throughput.every(([second]) => second >= oldest));
  assert.deepEqual(state.throughput, [
    [1764099620, 40, 2],
    [1764099998, 11, 0],
    [1764099999, 12, 0],
    [1764100000, 16, 1],
    [1764100001, 9, 0],
  ]);
  // time alone moves the window too
  const later = applyFrame(state, {
    type: 'update',
    now: 1764099620 + 901,
    totals: update3.totals,
  });
  assert.deepEqual(
    later.throughput.map(([second]) => second),
    [1764099998, 1764099999, 1764100000, 1764100001],
  );
});

test('running jobs come first, then ended ones, newest first; the demo job is the newest demo', () => {
  const state = replay(frames);
  assert.deepEqual(ids(state.jobs), [13, 12, 11, 10, 9]);
  assert.equal(state.jobs[1].state, 'finished');
  assert.equal(demoJob(state).id, 13);
  assert.equal(demoJob(replay([snapshot])).id, 12);
  assert.equal(demoJob(initialState()), null);
  assert.equal(
    demoJob({ ...replay([snapshot]), server: { version: '0.1.0', started_at: 0 } }),
    null,
  );
});

test('events_dropped adds up until the next snapshot; store problems show in totals', () => {
  const state = replay(frames);
  assert.equal(state.eventsDropped, 7);
  assert.equal(applyFrame(state, { ...update3, now: update3.now + 0.5 }).eventsDropped, 14);
  assert.equal(applyFrame(state, snapshot).eventsDropped, 0);
  assert.match(state.totals.store, /disk full/);
  assert.ok(
    !state.workers.some((row) => row.id === 7),
    'a worker gone in the frame it joined stays out',
  );
});

test('frames are never mutated, nor is the state passed in', () => {
  const frozen = deepFreeze(structuredClone(frames));
  const states = [deepFreeze(initialState())];
  for (const frame of frozen) states.push(deepFreeze(applyFrame(states.at(-1), frame)));
  assert.deepEqual(states.at(-1), replay(frames));
});

test('unknown frame types and unknown fields are ignored', () => {
  const state = replay([snapshot]);
  assert.equal(applyFrame(state, { type: 'hello', now: 1 }), state);
  assert.equal(applyFrame(state, null), state);
  const extra = applyFrame(state, {
    ...update2,
    future: [1, 2],
    totals: { ...update2.totals, future: true },
  });
  assert.equal(extra.workers, state.workers);
  assert.equal(extra.totals.future, true);
  const gone = applyFrame(state, {
    type: 'update',
    now: state.now,
    totals: state.totals,
    gone: [999],
  });
  assert.deepEqual(ids(gone.workers), [1, 2, 3, 4]);
});

test('at most 20 results, 50 events, 100 history rows and 20 ended jobs are kept', () => {
  const base = replay([snapshot]);
  const n = (count, make) => Array.from({ length: count }, (_, i) => make(i));
  const state = applyFrame(base, {
    type: 'update',
    now: base.now,
    totals: base.totals,
    results: n(25, (i) => ({ ...snapshot.results[1], task_id: 5000 + i })),
    events: n(60, (i) => ({ ...snapshot.events[0], worker_id: 100 + i })),
    history: n(120, (i) => ({ ...snapshot.history[0], key: `k-${i}`, last_seen: 1764100000 + i })),
    jobs: n(30, (i) => ({ ...snapshot.jobs[1], id: 100 + i })),
  });
  assert.equal(state.results.length, LIMITS.results);
  assert.equal(state.results.at(-1).task_id, 5024);
  assert.equal(state.results[0].task_id, 5005);
  assert.equal(state.events.length, LIMITS.events);
  assert.equal(state.events.at(-1).worker_id, 159);
  assert.equal(state.history.length, LIMITS.history);
  assert.equal(state.history[0].key, 'k-119');
  assert.equal(state.history.at(-1).key, 'k-20');
  assert.deepEqual(ids(state.jobs).slice(0, 2), [12, 129]); // the running job stays, whatever its age
  assert.equal(state.jobs.length, 1 + LIMITS.endedJobs);
});

test('worker labels by kind, browser and OS', () => {
  const [chrome, python, exercise, other] = snapshot.workers;
  assert.equal(workerLabel(chrome), 'Chrome 131 on Linux');
  assert.equal(workerLabel(python), 'Python 3.11');
  assert.equal(workerLabel(exercise), 'classroom page');
  assert.equal(workerLabel(other), 'unknown agent');
  assert.equal(workerLabel({ ...other, browser: 'Safari 18' }), 'Safari 18');
  assert.equal(workerLabel({ ...python, browser: null }), 'Python');
});

test('events and history rows name their worker from kind, browser and OS, as their label does', () => {
  for (const row of [...snapshot.events, ...update1.events])
    assert.equal(agentLabel(row.worker_kind, row), row.label);
  for (const row of snapshot.history) assert.equal(agentLabel(row.kind, row), row.label);
  const python = { browser: 'Python 3.12', os: 'Linux' };
  assert.equal(agentLabel('python', python), 'Python 3.12 on Linux');
  assert.equal(agentLabel('exercise', python), 'Python 3.12 on Linux'); // connected, no hello yet
  assert.equal(agentLabel('exercise', { browser: null, os: null }), 'classroom page');
  assert.equal(agentLabel('other', { browser: null, os: 'Linux' }), 'unknown agent on Linux');
  assert.equal(agentLabel(undefined, { label: 'Chrome 99 on Linux' }), 'Chrome 99 on Linux'); // an earlier coordinator
  assert.equal(agentLabel(undefined, {}), 'unknown agent');
});

function fleet(count) {
  const [chrome, python] = snapshot.workers;
  return Array.from({ length: count }, (_, i) => {
    if (i % 100 === 99) return { ...python, id: i + 1, address: `10.0.0.${i % 250}:4000` };
    if (i % 10 === 9) return { ...chrome, id: i + 1, os: 'Windows', browser: 'Edge 131' };
    return { ...chrome, id: i + 1, address: `127.0.0.1:${50000 + i}` };
  });
}

test('summary counts workers by label, most first', () => {
  const groups = summary(fleet(1000));
  assert.deepEqual(groups, [
    { label: 'Chrome 131 on Linux', count: 900 },
    { label: 'Edge 131 on Windows', count: 90 },
    { label: 'Python 3.11', count: 10 },
  ]);
  assert.equal(
    summaryText(groups),
    '900 × Chrome 131 on Linux, 90 × Edge 131 on Windows, 10 × Python 3.11',
  );
  assert.equal(summaryText(groups, 1), '900 × Chrome 131 on Linux and 2 more');
  assert.equal(summaryText([]), 'no workers');
});

test('the filter matches every word anywhere in id, label, address, state, kind, key or unread agent', () => {
  const rows = fleet(1000);
  assert.equal(filterWorkers(rows, ''), rows);
  assert.equal(filterWorkers(rows, '   '), rows);
  assert.equal(filterWorkers(rows, 'python').length, 10);
  assert.equal(filterWorkers(rows, 'EDGE windows').length, 90);
  assert.equal(filterWorkers(rows, 'edge macos').length, 0);
  assert.deepEqual(ids(filterWorkers(rows, '127.0.0.1:50005')), [6]);
  assert.deepEqual(ids(filterWorkers(rows, '#1000')), [1000]);
  assert.equal(filterWorkers(rows, 'busy').length, 1000);
  assert.equal(
    filterWorkers(rows, 'safari').length,
    0,
    'not every Chrome: their agent strings name Safari',
  );
  assert.deepEqual(
    ids(filterWorkers(snapshot.workers, 'curl')),
    [4],
    'the agent counts when nothing was read from it',
  );
  assert.equal(filterWorkers(rows, 'idle').length, 0);
});

test('page slices rows, clamps the page number and counts from 1', () => {
  const rows = fleet(1000);
  const first = page(rows, 1, 25);
  assert.deepEqual(
    [first.page, first.pages, first.first, first.last, first.total],
    [1, 40, 1, 25, 1000],
  );
  assert.deepEqual(
    ids(first.rows),
    Array.from({ length: 25 }, (_, i) => i + 1),
  );
  const end = page(rows.slice(0, 60), 9, 25);
  assert.deepEqual([end.page, end.pages, end.first, end.last, end.rows.length], [3, 3, 51, 60, 10]);
  assert.deepEqual([page(rows, 0, 25).page, page(rows, 'x', 25).page], [1, 1]);
  const empty = page([], 4, 25);
  assert.deepEqual(
    [empty.page, empty.pages, empty.first, empty.last, empty.total, empty.rows],
    [1, 1, 0, 0, 0, []],
  );
});

test('the throughput series has one point per second, missing seconds as 0', () => {
  const state = replay(frames);
  const series = throughputSeries(state.throughput, update3.now);
  assert.equal(series.x.length, 900);
  assert.equal(series.x.at(-1), 1764100001);
  assert.equal(series.x[0], 1764100001 - 899);
  assert.deepEqual(
    [series.done.at(-1), series.failed.at(-1), series.done.at(-2), series.failed.at(-2)],
    [9, 0, 16, 1],
  );
  assert.equal(series.done.at(-3), 12);
  assert.equal(series.done.at(-4), 11);
  assert.equal(series.done.at(-5), 0);
  assert.equal(
    series.done.reduce((a, b) => a + b),
    40 + 11 + 12 + 16 + 9,
  );
  const small = throughputSeries([[100, 5, 1]], 103.7, 5);
  assert.deepEqual(small, {
    x: [98, 99, 100, 101, 102],
    done: [0, 0, 5, 0, 0],
    failed: [0, 0, 1, 0, 0],
  });
  assert.deepEqual(throughputSeries([], 10.2, 3), {
    x: [7, 8, 9],
    done: [0, 0, 0],
    failed: [0, 0, 0],
  });
});

test('a partial worker row is merged into the row with its id', () => {
  const state = replay([snapshot, update1]);
  const before = snapshot.workers.find((row) => row.id === 1);
  const after = state.workers.find((row) => row.id === 1);
  assert.deepEqual(after, { ...before, done: 121, lifetime_done: 481, mean_ms: 35.1 });
});

test('a partial row for a worker the page does not hold is ignored', () => {
  const state = applyFrame(replay([snapshot]), {
    type: 'update',
    now: snapshot.now + 1,
    totals: snapshot.totals,
    workers: [{ id: 999, done: 5 }],
  });
  assert.ok(!state.workers.some((row) => row.id === 999));
});
