// Checks web/js/backoff.js against docs/protocol.md "Reconnecting".

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReconnectBackoff } from '../../src/browsergrid/web/js/backoff.js';

const failAttempts = (backoff, count, nowMs = 0) =>
  Array.from({ length: count }, () => backoff.disconnected(nowMs));

test('waits 1 s, doubling to a 30 s cap (jitter factor 1.0)', () => {
  const backoff = new ReconnectBackoff({ random: () => 0.5 });
  assert.deepEqual(failAttempts(backoff, 8), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('jitter multiplies each wait by a factor in [0.5, 1.5]', () => {
  const low = new ReconnectBackoff({ random: () => 0 });
  assert.deepEqual(failAttempts(low, 7), [500, 1000, 2000, 4000, 8000, 15000, 15000]);
  const high = new ReconnectBackoff({ random: () => 0.999999 });
  const expected = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
  failAttempts(high, 7).forEach((delay, i) => {
    assert.ok(delay <= expected[i] * 1.5, `${delay} <= ${expected[i] * 1.5}`);
    assert.ok(delay > expected[i] * 1.499, `${delay} > ${expected[i] * 1.499}`);
  });
});

test('defaults to Math.random, staying within the jitter bounds', () => {
  const backoff = new ReconnectBackoff();
  for (let i = 0; i < 100; i += 1) {
    const delay = backoff.disconnected(0);
    const base = Math.min(1000 * 2 ** i, 30000);
    assert.ok(delay >= base * 0.5 && delay <= base * 1.5, `attempt ${i}: ${delay}`);
  }
});

test('a connection open for 60 s resets the wait to 1 s', () => {
  const backoff = new ReconnectBackoff({ random: () => 0.5 });
  failAttempts(backoff, 5); // next would be 30 s
  backoff.connected(100_000);
  assert.equal(backoff.disconnected(160_000), 1000);
  assert.equal(backoff.disconnected(161_000), 2000);
});

test('a connection that closed sooner than 60 s keeps doubling', () => {
  const backoff = new ReconnectBackoff({ random: () => 0.5 });
  failAttempts(backoff, 3); // 1, 2, 4 s
  backoff.connected(100_000);
  assert.equal(backoff.disconnected(159_999), 8000);
  backoff.connected(200_000);
  assert.equal(backoff.disconnected(200_500), 16000);
});

test('a stable period only counts for the connection it belongs to', () => {
  const backoff = new ReconnectBackoff({ random: () => 0.5 });
  backoff.connected(0);
  assert.equal(backoff.disconnected(10_000), 1000);
  // a failed attempt long afterwards (no open in between) must not reset
  assert.equal(backoff.disconnected(500_000), 2000);
});
