import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CONTRIBUTION_KEY,
  Contribution,
  formatComputeTime,
  readTotals,
} from '../../src/browsergrid/web/js/contribution.js';

import { memoryStorage, refusing } from './_storage.mjs';

test('this session and in total: tasks and compute time, the total saved on flush', () => {
  const storage = memoryStorage();
  const given = new Contribution(storage, { now: () => 1_700_000_000_000 });
  given.add(120.5);
  given.add(30);
  assert.deepEqual(given.session, { tasks: 2, computeMs: 150.5 });
  assert.deepEqual(given.total, { tasks: 2, computeMs: 150.5, since: 1_700_000_000_000 });
  assert.equal(storage.items.size, 0); // not yet written
  assert.equal(given.flush(), true);
  assert.deepEqual(JSON.parse(storage.items.get(CONTRIBUTION_KEY)), {
    v: 1,
    tasks: 2,
    compute_ms: 150.5,
    since: 1_700_000_000_000,
  });
  const nextVisit = new Contribution(storage);
  assert.deepEqual(nextVisit.session, { tasks: 0, computeMs: 0 });
  assert.deepEqual(nextVisit.total, { tasks: 2, computeMs: 150.5, since: 1_700_000_000_000 });
});

test('two tabs of one browser both add to the total: neither counts the other twice, nor loses it', () => {
  const storage = memoryStorage();
  const a = new Contribution(storage, { now: () => 1 });
  const b = new Contribution(storage, { now: () => 2 });
  a.add(10);
  b.add(20);
  b.add(20);
  a.flush();
  b.flush();
  a.add(10);
  a.flush();
  assert.deepEqual(readTotals(storage), { tasks: 4, computeMs: 60, since: 1 });
  assert.equal(a.flush(), true); // nothing new: nothing to write
  assert.deepEqual(readTotals(storage), { tasks: 4, computeMs: 60, since: 1 });
});

test('a storage that throws keeps the totals of this visit', () => {
  const given = new Contribution(refusing, { now: () => 5 });
  given.add(7);
  assert.equal(given.flush(), false);
  assert.deepEqual(given.total, { tasks: 1, computeMs: 7, since: 5 });
  given.add(3);
  assert.deepEqual(given.total, { tasks: 2, computeMs: 10, since: 5 });
  assert.deepEqual(new Contribution(null).total, { tasks: 0, computeMs: 0, since: null });
});

test('what is stored but is not ours reads as nothing given; a bad duration counts the task only', () => {
  for (const text of [
    '{',
    'null',
    '[]',
    JSON.stringify({ v: 2, tasks: 1, compute_ms: 1 }),
    JSON.stringify({ v: 1, tasks: -1, compute_ms: 1 }),
    JSON.stringify({ v: 1, tasks: 1 }),
  ]) {
    assert.deepEqual(
      readTotals(memoryStorage({ [CONTRIBUTION_KEY]: text })),
      { tasks: 0, computeMs: 0, since: null },
      text,
    );
  }
  const given = new Contribution(memoryStorage());
  given.add(undefined);
  given.add(-3);
  assert.deepEqual(given.session, { tasks: 2, computeMs: 0 });
});

test('compute time for people', () => {
  assert.equal(formatComputeTime(0), '0 s');
  assert.equal(formatComputeTime(0.4), '< 1 ms');
  assert.equal(formatComputeTime(850.2), '850 ms');
  assert.equal(formatComputeTime(42_460), '42.5 s');
  assert.equal(formatComputeTime(42_460, 'es'), '42,5 s');
  assert.equal(formatComputeTime(200_000), '3 min 20 s');
  assert.equal(formatComputeTime(7_500_000), '2 h 05 min');
  assert.equal(formatComputeTime(Number.NaN), '0 s');
});
