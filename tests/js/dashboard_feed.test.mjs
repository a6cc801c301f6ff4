// Checks web/js/dashboard/feed.js: where the live feed is, and reconnecting it with the worker page's back-off.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReconnectBackoff } from '../../src/browsergrid/web/js/backoff.js';
import { endpoints, LiveFeed } from '../../src/browsergrid/web/js/dashboard/feed.js';

test('the feed is /dashboard/live on the page host, ws: or wss: after the page', () => {
  assert.deepEqual(endpoints({ protocol: 'http:', host: 'grid.test:8765', search: '' }), {
    live: 'ws://grid.test:8765/dashboard/live',
    http: '',
  });
  assert.deepEqual(endpoints({ protocol: 'https:', host: 'grid.test', search: '' }), {
    live: 'wss://grid.test/dashboard/live',
    http: '',
  });
});

test('?server=host:port, or a full WebSocket URL, points the page at another coordinator', () => {
  assert.deepEqual(
    endpoints({ protocol: 'http:', host: 'a:1', search: '?server=127.0.0.1:9000' }),
    { live: 'ws://127.0.0.1:9000/dashboard/live', http: 'http://127.0.0.1:9000' },
  );
  assert.deepEqual(
    endpoints({ protocol: 'https:', host: 'a:1', search: '?server=grid.example:443' }),
    { live: 'wss://grid.example:443/dashboard/live', http: 'https://grid.example:443' },
  );
  assert.deepEqual(
    endpoints({ protocol: 'http:', host: 'a:1', search: '?server=wss://grid.example/' }),
    { live: 'wss://grid.example/dashboard/live', http: 'https://grid.example' },
  );
  assert.deepEqual(
    endpoints({ protocol: 'http:', host: 'a:1', search: '?server=ws://h:2/custom/live' }),
    { live: 'ws://h:2/custom/live', http: 'http://h:2' },
  );
  assert.deepEqual(endpoints({ protocol: 'file:', host: '', search: '' }), {
    live: 'ws://127.0.0.1:8765/dashboard/live',
    http: 'http://127.0.0.1:8765',
  });
});

function harness() {
  const sockets = [];
  const timers = [];
  const frames = [];
  const statuses = [];
  let clock = 0;
  class FakeSocket {
    constructor(url) {
      this.url = url;
      sockets.push(this);
    }
  }
  const feed = new LiveFeed('ws://grid.test/dashboard/live', {
    onFrame: (frame) => frames.push(frame),
    onStatus: (status, detail) => statuses.push([status, detail.retryMs ?? null]),
    WebSocketImpl: FakeSocket,
    backoff: new ReconnectBackoff({ random: () => 0.5 }),
    now: () => clock,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
  });
  return {
    feed,
    sockets,
    timers,
    frames,
    statuses,
    tick: (ms) => {
      clock += ms;
    },
  };
}

test('frames are parsed JSON; binary and broken frames are skipped', () => {
  const { feed, sockets, frames, statuses } = harness();
  const warn = console.warn;
  console.warn = () => {};
  try {
    feed.start();
    const [ws] = sockets;
    assert.equal(ws.url, 'ws://grid.test/dashboard/live');
    ws.onopen();
    ws.onmessage({ data: '{"type":"snapshot","now":1}' });
    ws.onmessage({ data: new ArrayBuffer(2) });
    ws.onmessage({ data: '{not json' });
    ws.onmessage({ data: '{"type":"update","now":2}' });
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(frames, [
    { type: 'snapshot', now: 1 },
    { type: 'update', now: 2 },
  ]);
  assert.deepEqual(statuses, [
    ['connecting', null],
    ['open', null],
  ]);
  assert.equal(feed.connects, 1);
});

test('a dropped feed reconnects after 1 s, doubling, and resets after a minute open', () => {
  const { feed, sockets, timers, statuses, tick } = harness();
  feed.start();
  sockets[0].onclose({ code: 1006, reason: '' });
  sockets[0].onclose({ code: 1006, reason: '' }); // a second close of the same socket changes nothing
  assert.deepEqual(
    timers.map((t) => t.ms),
    [1000],
  );
  timers.shift().fn();
  sockets[1].onclose({ code: 1006, reason: '' });
  assert.deepEqual(
    timers.map((t) => t.ms),
    [2000],
  );
  timers.shift().fn();
  sockets[2].onopen();
  tick(60_000);
  sockets[2].onclose({ code: 1001, reason: 'going away' });
  assert.deepEqual(
    timers.map((t) => t.ms),
    [1000],
  );
  assert.deepEqual(
    statuses.filter(([status]) => status === 'closed'),
    [
      ['closed', 1000],
      ['closed', 2000],
      ['closed', 1000],
    ],
  );
});

test('a socket that cannot even be created is retried too', () => {
  const timers = [];
  const statuses = [];
  const feed = new LiveFeed('bad url', {
    onFrame() {},
    onStatus: (status) => statuses.push(status),
    WebSocketImpl: class {
      constructor() {
        throw new SyntaxError('invalid URL');
      }
    },
    backoff: new ReconnectBackoff({ random: () => 0.5 }),
    setTimer: (_fn, ms) => timers.push(ms),
  });
  feed.start();
  assert.deepEqual(statuses, ['connecting', 'closed']);
  assert.deepEqual(timers, [1000]);
});

test('a close says whether the connection had opened (a refused one, say for want of a token, had not)', () => {
  const sockets = [];
  const closes = [];
  const feed = new LiveFeed('ws://grid.test/dashboard/live?token=t', {
    onFrame() {},
    onStatus: (status, detail) => {
      if (status === 'closed') closes.push(detail.opened);
    },
    WebSocketImpl: class {
      constructor(url) {
        this.url = url;
        sockets.push(this);
      }
    },
    backoff: new ReconnectBackoff({ random: () => 0.5 }),
    setTimer: (fn) => fn,
  });
  feed.start();
  assert.equal(sockets[0].url, 'ws://grid.test/dashboard/live?token=t');
  sockets[0].onclose({ code: 1006, reason: '' });
  feed.connect();
  sockets[1].onopen();
  sockets[1].onclose({ code: 1001, reason: '' });
  assert.deepEqual(closes, [false, true]);
});
