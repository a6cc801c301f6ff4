// Checks web/js/coordinators.js: the worker page's ?coordinators= list (parsing, tokens, fallback) and its rotation.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CoordinatorRing,
  coordinatorsFrom,
  coordinatorUrl,
  FAILOVER_AFTER_MS,
  failoverDelay,
} from '../../src/browsergrid/web/js/coordinators.js';

const OWN = 'ws://grid.test:8765/ws'; // what the page uses without the list

// coordinatorsFrom with its warnings collected.
function parse(search, fallback = OWN) {
  const warnings = [];
  const urls = coordinatorsFrom(search, fallback, (line) => warnings.push(line));
  return { urls, warnings };
}

test('ws:// and wss:// entries are kept as written', () => {
  assert.equal(coordinatorUrl('ws://a.test:8000/ws'), 'ws://a.test:8000/ws');
  assert.equal(coordinatorUrl('wss://b.test/ws'), 'wss://b.test/ws');
  assert.equal(coordinatorUrl('ws://a.test:8000'), 'ws://a.test:8000/'); // the coordinator takes workers on / too
  assert.equal(coordinatorUrl('  ws://a.test/ws#x '), 'ws://a.test/ws');
});

test('http:// and https:// entries become the WebSocket URL of the same host', () => {
  assert.equal(coordinatorUrl('http://a.test:8000'), 'ws://a.test:8000/ws');
  assert.equal(coordinatorUrl('http://a.test:8000/dashboard?workers=2'), 'ws://a.test:8000/ws');
  assert.equal(coordinatorUrl('https://b.test/'), 'wss://b.test/ws');
  assert.equal(coordinatorUrl('https://b.test:443/'), 'wss://b.test/ws');
  assert.equal(
    coordinatorUrl('http://127.0.0.1:9000/?token=own'),
    'ws://127.0.0.1:9000/ws?token=own',
  );
  assert.equal(coordinatorUrl('http://[::1]:9000'), 'ws://[::1]:9000/ws');
});

test('anything else is no coordinator URL', () => {
  for (const bad of [
    '',
    'a.test:8000',
    '127.0.0.1:8000',
    'ftp://a.test/',
    'file:///tmp/x',
    'javascript:alert(1)',
    '/ws',
    'ws://',
  ]) {
    assert.equal(coordinatorUrl(bad), null, bad);
  }
});

test('the list is read in order from the page address', () => {
  const { urls, warnings } = parse(
    '?workers=2&coordinators=ws://a.test:8000/ws,http://b.test:8001,wss://c.test/ws',
  );
  assert.deepEqual(urls, ['ws://a.test:8000/ws', 'ws://b.test:8001/ws', 'wss://c.test/ws']);
  assert.deepEqual(warnings, []);
});

test('an URL-encoded list and spaces around entries work; empty entries are skipped silently', () => {
  const list = encodeURIComponent('http://a.test:8000 , ws://b.test/ws,,');
  const { urls, warnings } = parse(`?coordinators=${list}`);
  assert.deepEqual(urls, ['ws://a.test:8000/ws', 'ws://b.test/ws']);
  assert.deepEqual(warnings, []);
});

test("the page's ?token= goes to every coordinator, replacing an entry's own", () => {
  const { urls } = parse(
    '?coordinators=ws://a.test/ws,http://b.test:8001,ws://c.test/ws?token=old&token=join%2B1',
  );
  assert.deepEqual(urls, [
    'ws://a.test/ws?token=join%2B1',
    'ws://b.test:8001/ws?token=join%2B1',
    'ws://c.test/ws?token=join%2B1',
  ]);
});

test('without a page token an entry keeps its own', () => {
  const list = encodeURIComponent('ws://a.test/ws?token=A,http://b.test?token=B,ws://c.test/ws');
  assert.deepEqual(parse(`?coordinators=${list}`).urls, [
    'ws://a.test/ws?token=A',
    'ws://b.test/ws?token=B',
    'ws://c.test/ws',
  ]);
});

test('bad entries are left out with a warning each, their token hidden', () => {
  const { urls, warnings } = parse(
    '?coordinators=ftp://x.test/?token=secret,ws://a.test/ws,nonsense',
  );
  assert.deepEqual(urls, ['ws://a.test/ws']);
  assert.equal(warnings.length, 2);
  assert.ok(warnings[0].includes('ftp://x.test/?token=***'), warnings[0]);
  assert.ok(warnings[1].includes('"nonsense"'), warnings[1]);
  assert.ok(warnings.every((line) => !line.includes('secret')));
});

test("no list: the page's own coordinator, with the token, and no warning", () => {
  assert.deepEqual(parse(''), { urls: [OWN], warnings: [] });
  assert.deepEqual(parse(undefined), { urls: [OWN], warnings: [] });
  assert.deepEqual(parse('?workers=2&token=t'), { urls: [`${OWN}?token=t`], warnings: [] });
});

test("an empty or all-bad list falls back to the page's own coordinator, with a warning", () => {
  for (const search of [
    '?coordinators=',
    '?coordinators=,,',
    '?coordinators=nope,ftp://x.test&token=t',
  ]) {
    const { urls, warnings } = parse(search);
    const expected = search.includes('token=t') ? `${OWN}?token=t` : OWN;
    assert.deepEqual(urls, [expected], search);
    assert.ok(warnings.at(-1).includes('names no usable URL'), search);
    assert.ok(
      warnings.every((line) => !line.includes('token=t')),
      search,
    ); // the fallback's token is hidden too
  }
});

test('the ring starts with the first coordinator and goes round robin', () => {
  const ring = new CoordinatorRing(['ws://a/ws', 'ws://b/ws', 'ws://c/ws']);
  assert.equal(ring.size, 3);
  assert.equal(ring.current, 'ws://a/ws');
  assert.deepEqual(
    [ring.next(), ring.next(), ring.next(), ring.next()],
    ['ws://b/ws', 'ws://c/ws', 'ws://a/ws', 'ws://b/ws'],
  );
  assert.equal(ring.current, 'ws://b/ws');
});

test('a ring of one always gives that one; a ring of none is refused', () => {
  const ring = new CoordinatorRing([OWN]);
  assert.deepEqual([ring.current, ring.next(), ring.next()], [OWN, OWN, OWN]);
  assert.throws(() => new CoordinatorRing([]));
});

test('the ring keeps its own copy of the list', () => {
  const urls = ['ws://a/ws', 'ws://b/ws'];
  const ring = new CoordinatorRing(urls);
  urls.length = 0;
  assert.equal(ring.next(), 'ws://b/ws');
});

test('after losing a connection that was up, the next coordinator is tried at once', () => {
  const up = { waitMs: 1234, coordinators: 2, openedAtMs: 0, nowMs: FAILOVER_AFTER_MS };
  assert.equal(failoverDelay(up), 0);
  // a failed attempt, a connection that closed at once, or a single coordinator: the backoff's wait
  assert.equal(failoverDelay({ ...up, openedAtMs: null }), 1234);
  assert.equal(failoverDelay({ ...up, nowMs: FAILOVER_AFTER_MS - 1 }), 1234);
  assert.equal(failoverDelay({ ...up, coordinators: 1 }), 1234);
});
