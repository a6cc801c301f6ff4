// web/js/identity.js: the tab's local secret and the worker_key derived from it for each coordinator origin.
// (tests/e2e/test_browser_identity.py checks the same in real Chromium, against two real coordinators.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  claimTabSecret,
  claimWorkerKeys,
  coordinatorOrigin,
  workerKeyFor,
} from '../../src/browsergrid/web/js/identity.js';
import { memoryStorage, refusing } from './_storage.mjs';

const SECRET = '0123456789abcdef'.repeat(4);
const KEY = /^tab-[0-9a-f]{32}$/;

// navigator.locks as a browser gives it to one tab: a lock another tab holds is refused (null).
function fakeLocks(held = new Set()) {
  return {
    held,
    request(name, options, callback) {
      assert.deepEqual(options, { ifAvailable: true });
      if (held.has(name)) return Promise.resolve(callback(null));
      held.add(name);
      callback({ name });
      return Promise.resolve();
    },
  };
}

test('the origin of a coordinator URL: scheme, host and port, lowercase, without default port, path or query', () => {
  assert.equal(coordinatorOrigin('ws://127.0.0.1:8765/ws?token=join'), 'ws://127.0.0.1:8765');
  assert.equal(coordinatorOrigin('WS://Grid.Example:80/ws'), 'ws://grid.example');
  assert.equal(coordinatorOrigin('wss://grid.example:443/ws#x'), 'wss://grid.example');
  assert.equal(coordinatorOrigin('https://grid.example/'), 'wss://grid.example');
  assert.equal(coordinatorOrigin('http://grid.example:443'), 'ws://grid.example:443');
  assert.equal(coordinatorOrigin('ws://[::1]:9000/ws'), 'ws://[::1]:9000');
  for (const bad of ['ftp://grid.example/', 'grid.example:8000', '', null, undefined]) {
    assert.equal(coordinatorOrigin(bad), null, String(bad));
  }
});

test('the key is HMAC-SHA-256 of the origin under the secret, as docs/security.md says', async () => {
  // Python: hmac.new(SECRET.encode(), b'ws://grid.example:8000', 'sha256').hexdigest()[:32]
  assert.equal(
    await workerKeyFor(SECRET, 'ws://grid.example:8000/ws'),
    'tab-8ecfa5d093fb3891d3571cc659d41459',
  );
  assert.equal(
    await workerKeyFor(SECRET, 'https://grid.example/'),
    'tab-e709f73863697030aeee2e69924da6c1',
  );
});

test('two origins get two keys; one origin always the same, whatever its path or token', async () => {
  const a = await workerKeyFor(SECRET, 'ws://127.0.0.1:8000/ws');
  const b = await workerKeyFor(SECRET, 'ws://127.0.0.1:8001/ws');
  const evil = await workerKeyFor(SECRET, 'ws://attacker.example/ws');
  const secure = await workerKeyFor(SECRET, 'wss://127.0.0.1:8000/ws');
  assert.match(a, KEY);
  assert.equal(new Set([a, b, evil, secure]).size, 4);
  assert.equal(await workerKeyFor(SECRET, 'ws://127.0.0.1:8000/ws'), a);
  assert.equal(await workerKeyFor(SECRET, 'ws://127.0.0.1:8000/?token=join'), a);
  assert.equal(await workerKeyFor(SECRET, 'http://127.0.0.1:8000/'), a);
  assert.notEqual(await workerKeyFor(`${SECRET}0`, 'ws://127.0.0.1:8000/ws'), a);
});

test('the secret never appears in a key', async () => {
  for (const url of ['ws://127.0.0.1:8000/ws', 'wss://grid.example/ws']) {
    const key = await workerKeyFor(SECRET, url);
    for (let at = 0; at + 8 <= SECRET.length; at += 1) {
      assert.ok(!key.includes(SECRET.slice(at, at + 8)), `${key} holds part of the secret`);
    }
  }
});

test('no key without a secret, an origin, or WebCrypto (plain http:// on a LAN address)', async () => {
  assert.equal(await workerKeyFor(undefined, 'ws://127.0.0.1:8000/ws'), undefined);
  assert.equal(await workerKeyFor('', 'ws://127.0.0.1:8000/ws'), undefined);
  assert.equal(await workerKeyFor(SECRET, 'ftp://127.0.0.1/'), undefined);
  assert.equal(await workerKeyFor(SECRET, 'ws://127.0.0.1:8000/ws', null), undefined);
  const broken = {
    importKey: async () => {
      throw new DOMException('no', 'NotSupportedError');
    },
  };
  assert.equal(await workerKeyFor(SECRET, 'ws://127.0.0.1:8000/ws', broken), undefined);
});

test('each tab takes the first free slot; its secret is kept for the next visit', async () => {
  const storage = memoryStorage();
  const locks = fakeLocks();
  const first = await claimTabSecret({ storage, locks });
  const second = await claimTabSecret({ storage, locks });
  assert.match(first, /^[0-9a-f]{64}$/);
  assert.notEqual(first, second);
  assert.deepEqual([...locks.held], ['browsergrid.tab_secret.0', 'browsergrid.tab_secret.1']);
  assert.equal(storage.items.get('browsergrid.tab_secret.0'), first);
  // the first tab closed: the next one takes its slot and its secret
  assert.equal(
    await claimTabSecret({ storage, locks: fakeLocks(new Set(['browsergrid.tab_secret.1'])) }),
    first,
  );
  assert.equal(await claimTabSecret({ storage }), first); // no Web Locks: slot 0
});

test('every slot taken, or a storage that throws: no secret', async () => {
  const all = new Set(Array.from({ length: 64 }, (_, slot) => `browsergrid.tab_secret.${slot}`));
  assert.equal(
    await claimTabSecret({ storage: memoryStorage(), locks: fakeLocks(all) }),
    undefined,
  );
  assert.equal(await claimTabSecret({ storage: refusing, locks: fakeLocks() }), undefined);
});

test('a key of the old kind (sent as is to any server) is not reused as the secret, and is removed', async () => {
  const old = 'tab-00112233445566778899aabbccddeeff';
  const storage = memoryStorage({
    'browsergrid.worker_key.0': old,
    'browsergrid.worker_key.1': old,
  });
  const secret = await claimTabSecret({ storage, locks: fakeLocks() });
  assert.notEqual(secret, old);
  assert.ok(!storage.items.has('browsergrid.worker_key.0'));
  assert.ok(storage.items.has('browsergrid.worker_key.1')); // another slot's: removed when a tab takes it
});

test('claimWorkerKeys: one key per coordinator URL, from one secret that is never among them', async () => {
  const storage = memoryStorage();
  const urls = ['ws://a.example/ws?token=t', 'wss://b.example/ws', 'ws://a.example/'];
  const keys = await claimWorkerKeys(urls, { storage, locks: fakeLocks() });
  const secret = storage.items.get('browsergrid.tab_secret.0');
  assert.deepEqual([...keys.keys()], urls);
  assert.equal(keys.get(urls[0]), await workerKeyFor(secret, 'ws://a.example'));
  assert.equal(keys.get(urls[2]), keys.get(urls[0]));
  assert.notEqual(keys.get(urls[1]), keys.get(urls[0]));
  assert.ok([...keys.values()].every((key) => KEY.test(key) && !key.includes(secret)));
});

test('claimWorkerKeys without WebCrypto: every key undefined, and no slot is taken', async () => {
  const storage = memoryStorage();
  const locks = fakeLocks();
  const keys = await claimWorkerKeys(['ws://a.example/ws'], { storage, locks, subtle: null });
  assert.deepEqual([...keys], [['ws://a.example/ws', undefined]]);
  assert.equal(storage.items.size, 0);
  assert.equal(locks.held.size, 0);
});
