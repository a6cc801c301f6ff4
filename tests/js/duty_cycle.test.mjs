import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restAfter, restUntil } from '../../src/browsergrid/web/js/duty-cycle.js';

test('the rest after a task keeps the worker to its share of the time', () => {
  assert.equal(restAfter(100, 1), 0);
  assert.ok(Math.abs(restAfter(100, 0.75) - 100 / 3) < 1e-9);
  assert.equal(restAfter(100, 0.5), 100);
  assert.equal(restAfter(100, 0.25), 300);
  for (const [duration, share] of [
    [100, 0.25],
    [40, 0.5],
    [9, 0.75],
  ]) {
    const busy = duration / (duration + restAfter(duration, share));
    assert.ok(Math.abs(busy - share) < 1e-12, `${duration} ms at ${share}`);
  }
});

test('no rest for nothing computed, or for a share that is not one', () => {
  assert.equal(restAfter(0, 0.25), 0);
  assert.equal(restAfter(-5, 0.5), 0);
  assert.equal(restAfter(Number.NaN, 0.5), 0);
  for (const share of [0, -1, 2, Number.NaN, undefined])
    assert.equal(restAfter(100, share), 0, String(share));
});

test('a rest ends after the last task, at the share in force now', () => {
  assert.equal(restUntil(null, 0.5), -Infinity); // nothing computed yet: start at once
  const last = { end: 1000, duration: 200 };
  assert.equal(restUntil(last, 0.5), 1200);
  assert.equal(restUntil(last, 0.25), 1600);
  assert.equal(restUntil(last, 1), 1000); // raised to 100 %: the rest under way ends now
});
