// Checks web/js/token.js: how the pages take ?token= from their address and present it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  authHeaders,
  hideToken,
  tokenFrom,
  withToken,
} from '../../src/browsergrid/web/js/token.js';

test('the token comes from the page address; an empty one is none', () => {
  assert.equal(tokenFrom('?token=abc&workers=2'), 'abc');
  assert.equal(tokenFrom('?workers=2&token=a%2Bb'), 'a+b');
  assert.equal(tokenFrom('?token='), null);
  assert.equal(tokenFrom(''), null);
  assert.equal(tokenFrom(undefined), null);
});

test('a WebSocket URL carries the token as ?token=, encoded; without one it is unchanged', () => {
  assert.equal(withToken('ws://grid.test:8765/ws', 'abc'), 'ws://grid.test:8765/ws?token=abc');
  assert.equal(
    withToken('wss://grid.test/dashboard/live', 'a+b/c'),
    'wss://grid.test/dashboard/live?token=a%2Bb%2Fc',
  );
  assert.equal(withToken('ws://h/ws?token=old&x=1', 'new'), 'ws://h/ws?token=new&x=1');
  assert.equal(withToken('ws://grid.test/ws', null), 'ws://grid.test/ws');
  assert.equal(withToken('not a url', 'abc'), 'not a url'); // the WebSocket constructor reports it
});

test('what a page shows hides the token', () => {
  assert.equal(hideToken('ws://grid.test/ws?token=secret'), 'ws://grid.test/ws?token=***');
  assert.equal(hideToken('ws://grid.test/ws'), 'ws://grid.test/ws');
  assert.equal(hideToken('not a url'), 'not a url');
});

test('fetches present the token as a Bearer header', () => {
  assert.deepEqual(authHeaders('abc'), { Authorization: 'Bearer abc' });
  assert.deepEqual(authHeaders(null), {});
});
