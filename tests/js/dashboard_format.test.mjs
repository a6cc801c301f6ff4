// Checks web/js/dashboard/format.js, and that dashboard.html's fixed texts come from strings.js.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  formatAgo,
  formatClock,
  formatClockShort,
  formatCount,
  formatDateTime,
  formatDecimal,
  formatDuration,
  formatMs,
  formatRate,
} from '../../src/browsergrid/web/js/dashboard/format.js';
import { strings } from '../../src/browsergrid/web/js/dashboard/strings.js';

test('counts group thousands; missing values are a dash', () => {
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(formatCount(null), '—');
  assert.equal(formatCount(undefined), '—');
  assert.equal(formatCount(Number.NaN), '—');
});

test('rates and milliseconds keep one decimal below 10', () => {
  assert.equal(formatRate(0), '0');
  assert.equal(formatRate(0.04), '0.0');
  assert.equal(formatRate(2.46), '2.5');
  assert.equal(formatRate(9.94), '9.9');
  assert.equal(formatRate(12.4), '12');
  assert.equal(formatRate(1830.6), '1,831');
  assert.equal(formatMs(35.25), '35');
  assert.equal(formatMs(null), '—');
  assert.equal(formatDecimal(7.25), '7.3');
});

test('durations are compact and never negative', () => {
  assert.equal(formatDuration(0), '0 s');
  assert.equal(formatDuration(42.9), '42 s');
  assert.equal(formatDuration(-3), '0 s');
  assert.equal(formatDuration(60), '1 min');
  assert.equal(formatDuration(199), '3 min');
  assert.equal(formatDuration(2 * 3600 + 5 * 60 + 9), '2 h 05 min');
  assert.equal(formatDuration(3 * 86400 + 4 * 3600 + 59), '3 d 4 h');
  assert.equal(formatDuration(null), '—');
});

test('ages read "just now" under 5 s, else "... ago"', () => {
  assert.equal(formatAgo(100, 104.9), 'just now');
  assert.equal(formatAgo(100, 90), 'just now'); // clocks a little apart
  assert.equal(formatAgo(100, 280), '3 min ago');
  assert.equal(formatAgo(null, 280), '—');
});

test('clock times are 24-hour wall-clock times', () => {
  assert.match(formatClock(1764100000.5), /^\d\d:\d\d:\d\d$/);
  assert.match(formatClockShort(1764100000.5), /^\d\d:\d\d$/);
  assert.ok(formatClock(1764100000.5).startsWith(formatClockShort(1764100000.5)));
  assert.match(formatDateTime(1764100000.5), /2025/);
  assert.equal(formatClock(null), '—');
});

test("every text dashboard.html marks with data-s is strings.js's text", () => {
  const html = readFileSync(
    new URL('../../src/browsergrid/web/dashboard.html', import.meta.url),
    'utf8',
  );
  const marked = [...html.matchAll(/data-s="(\w+)"[^>]*>([^<]*)</g)];
  assert.ok(marked.length > 40, `found ${marked.length}`);
  for (const [, key, text] of marked) {
    assert.equal(typeof strings[key], 'string', key);
    assert.equal(text, strings[key], key);
  }
  for (const [, attr, key] of html.matchAll(/data-s-(label|placeholder|empty)="(\w+)"/g)) {
    assert.equal(typeof strings[key], 'string', `${attr} ${key}`);
  }
  assert.match(html, /<title data-s="title">browsergrid dashboard<\/title>/);
});

test('strings hold every user-visible word the scripts use', () => {
  assert.equal(strings.connLive, 'live');
  assert.equal(strings.connReconnecting, 'reconnecting…');
  assert.equal(strings.demoButton, 'Run demo');
  assert.equal(strings.chartUnavailable, 'chart unavailable: run npm ci');
  assert.equal(strings.pageRange(1, 25, 1000), '1–25 of 1000');
  assert.equal(strings.summaryEntry(812, 'Chrome 131 on Linux'), '812 × Chrome 131 on Linux');
  assert.equal(
    strings.storeProblem('disk full'),
    'Store problem: disk full. New work is refused until it recovers.',
  );
  assert.equal(strings.demoFailed('store failing'), 'Run demo failed: store failing');
});
