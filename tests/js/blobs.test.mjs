// Checks web/js/blobs.js (docs/protocol.md, "Blobs"): refs found and resolved; blobs fetched from a
// real HTTP server on 127.0.0.1, checked, kept in a fake Cache Storage (Node has none) with the oldest
// first out; large results uploaded. Then compute-worker.js end to end, with an ops module's op.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';
import {
  BLOB,
  blobBase,
  CACHE_NAME,
  createBlobs,
  findRefs,
  heldBlobs,
  INLINE_RESULT_BYTES,
  resolveRefs,
  sha256Hex,
} from '../../src/browsergrid/web/js/blobs.js';

const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const TEST = new TextEncoder().encode('test'); // SHA-256 9f86d081...
const TEST_SHA = sha(TEST);
const ref = (bytes, format) => ({
  [BLOB]: sha(bytes),
  size: bytes.length,
  ...(format && { format }),
});

// A coordinator's blob routes: GET /blobs/<sha256> from `blobs` (sha256 -> bytes, or a function
// (request, response) answering it), PUT stored in `uploads`. `requests` lists what came.
async function coordinator(blobs = new Map(), { put } = {}) {
  const requests = [];
  const uploads = new Map();
  const server = http.createServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const url = new URL(request.url, 'http://x');
    requests.push({ method: request.method, url: request.url, headers: request.headers, body });
    const name = url.pathname.slice('/blobs/'.length);
    if (request.method === 'PUT') {
      if (put) return put(request, response, body);
      uploads.set(name, body);
      response.writeHead(201, { 'Content-Type': 'application/json' });
      return response.end(JSON.stringify({ [BLOB]: name, size: body.length, format: 'json' }));
    }
    const found = blobs.get(name);
    if (typeof found === 'function') return found(request, response);
    if (found === undefined) {
      response.writeHead(404, { 'Content-Type': 'application/json' });
      return response.end(JSON.stringify({ detail: 'no such blob', code: 'unknown_blob' }));
    }
    response.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    response.end(found);
  });
  await new Promise((resolve) => {
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  const close = () =>
    new Promise((resolve) => {
      server.close(resolve);
    });
  return { base, requests, uploads, close };
}

// Cache Storage as far as blobs.js uses it, holding real Requests and Responses.
function fakeCaches() {
  const caches = new Map(); // name -> Map url -> {bytes, headers}
  const open = async (name) => {
    if (!caches.has(name)) caches.set(name, new Map());
    const entries = caches.get(name);
    const urlOf = (key) => key.url ?? String(key);
    return {
      entries,
      async match(key) {
        const entry = entries.get(urlOf(key));
        return entry && new Response(entry.bytes.slice(), { headers: entry.headers });
      },
      async put(key, response) {
        const bytes = new Uint8Array(await response.arrayBuffer());
        entries.set(urlOf(key), { bytes, headers: response.headers });
      },
      async delete(key) {
        return entries.delete(urlOf(key));
      },
      async keys() {
        return [...entries.keys()].map((url) => new Request(url));
      },
    };
  };
  return { open, caches };
}

test('findRefs finds refs at any depth, one entry per blob; resolveRefs puts their contents there', () => {
  const json = new TextEncoder().encode('{"a": [1, 2]}');
  const args = {
    n: 3,
    data: ref(TEST),
    deep: [{ again: ref(TEST, 'bytes') }, [ref(json, 'json')]],
  };
  const refs = findRefs(args);
  assert.deepEqual(
    refs,
    new Map([
      [TEST_SHA, 4],
      [sha(json), json.length],
    ]),
  );
  const resolved = resolveRefs(
    args,
    new Map([
      [TEST_SHA, TEST],
      [sha(json), json],
    ]),
  );
  assert.equal(resolved.n, 3);
  assert.equal(resolved.data, TEST);
  assert.deepEqual(resolved.deep[0].again, TEST);
  assert.notEqual(resolved.deep[0].again, TEST); // a copy: an op writing into one leaves the other
  assert.deepEqual(resolved.deep[1], [{ a: [1, 2] }]);
  assert.equal(args.data[BLOB], TEST_SHA); // the arguments themselves are left as they were
  assert.deepEqual(findRefs({ a: [1, 'x', null, { b: true }] }), new Map());
});

test('a malformed ref, or two sizes for one blob, is an error naming the blob', () => {
  assert.throws(() => findRefs([{ [BLOB]: 'ABC', size: 1 }]), /\$blob must be 64 lowercase hex/);
  assert.throws(
    () => findRefs({ x: { [BLOB]: TEST_SHA, size: -1 } }),
    /blob 9f86d081…: the ref's size must be an integer >= 0/,
  );
  assert.throws(() => findRefs({ [BLOB]: TEST_SHA, size: 4, format: 'text' }), /"bytes" or "json"/);
  assert.throws(
    () => findRefs([ref(TEST), { [BLOB]: TEST_SHA, size: 5 }]),
    /blob 9f86d081…: refs give it sizes 4 and 5/,
  );
  assert.throws(
    () => resolveRefs(ref(TEST, 'json'), new Map([[TEST_SHA, TEST]])),
    /blob 9f86d081…: not UTF-8 JSON text/,
  );
});

test("blob requests go to the WebSocket's host and port over http(s), whatever its path", () => {
  assert.equal(blobBase('ws://grid.test:8765/ws?token=T'), 'http://grid.test:8765');
  assert.equal(blobBase('wss://grid.test/'), 'https://grid.test');
  assert.equal(blobBase('ws://[::1]:9000/'), 'http://[::1]:9000');
});

test('sha256Hex is WebCrypto digest, and null without it (no secure context: sizes only)', async () => {
  const bytes = randomBytes(70_001);
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, 1000); // not the whole buffer
  assert.equal(await sha256Hex(view), sha(bytes.subarray(0, 1000)));
  assert.equal(await sha256Hex(view, null), null);
});

test('a blob is fetched with the key, checked, kept, and read from the cache by any connection', async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  const storage = fakeCaches();
  try {
    const blobs = createBlobs({ caches: storage, now: () => 1000 });
    const refs = findRefs({ data: ref(TEST) });
    const got = await blobs.contents(refs, { base: server.base, key: 'k/1' });
    assert.deepEqual(got, new Map([[TEST_SHA, TEST]]));
    assert.deepEqual(
      server.requests.map((r) => [r.method, r.url]),
      [['GET', `/blobs/${TEST_SHA}?key=k%2F1`]],
    );
    const kept = storage.caches.get(CACHE_NAME);
    assert.deepEqual([...kept.keys()], [`${server.base}/blobs/${TEST_SHA}`]); // no key in it
    assert.equal(
      kept.get(`${server.base}/blobs/${TEST_SHA}`).headers.get('x-browsergrid-stored'),
      '1000',
    );
    // another compute worker of the page, for a task of another connection: no request
    const other = createBlobs({ caches: storage });
    assert.deepEqual(await other.contents(refs, { base: server.base, key: 'k2' }), got);
    assert.equal(server.requests.length, 1);
    // an older coordinator gave no key: none is sent
    await createBlobs().contents(refs, { base: server.base, key: null });
    assert.equal(server.requests.at(-1).url, `/blobs/${TEST_SHA}`);
  } finally {
    await server.close();
  }
});

test("blobs are kept under the page's origin when it has one", async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  const storage = fakeCaches();
  try {
    const blobs = createBlobs({ caches: storage, pageUrl: 'https://page.test/?workers=2' });
    await blobs.contents(findRefs(ref(TEST)), { base: server.base, key: 'k' });
    assert.deepEqual(
      [...storage.caches.get(CACHE_NAME).keys()],
      [`https://page.test/blobs/${TEST_SHA}`],
    );
  } finally {
    await server.close();
  }
});

test('tasks needing one blob at once share one fetch', async () => {
  let answer;
  const held = new Promise((resolve) => {
    answer = resolve;
  });
  const server = await coordinator(
    new Map([
      [
        TEST_SHA,
        async (_request, response) => {
          await held;
          response.end(TEST);
        },
      ],
    ]),
  );
  try {
    const blobs = createBlobs({ caches: fakeCaches() });
    const context = { base: server.base, key: 'k' };
    const both = Promise.all([
      blobs.contents(findRefs(ref(TEST)), context),
      blobs.contents(findRefs([ref(TEST)]), context),
    ]);
    await new Promise((resolve) => {
      setTimeout(resolve, 50);
    });
    answer();
    const [first, second] = await both;
    assert.deepEqual(first, second);
    assert.equal(server.requests.length, 1);
  } finally {
    await server.close();
  }
});

test("bytes that are not the ref's, an HTTP error or no coordinator fail with the blob and why", async () => {
  const wrong = new TextEncoder().encode('tesT');
  const server = await coordinator(
    new Map([
      [TEST_SHA, wrong],
      [sha('short'), new TextEncoder().encode('shor')],
      [
        sha('secret'),
        (_request, response) => {
          response.writeHead(403, { 'Content-Type': 'application/json' });
          response.end(JSON.stringify({ detail: 'no task of yours', code: 'blob_not_leased' }));
        },
      ],
    ]),
  );
  const storage = fakeCaches();
  const blobs = createBlobs({ caches: storage });
  const context = { base: server.base, key: 'k' };
  const fails = (args) => blobs.contents(findRefs(args), context);
  try {
    await assert.rejects(
      fails(ref(TEST)),
      new RegExp(
        `^Error: blob 9f86d081…: fetched 4 bytes whose SHA-256 is ${sha(wrong).slice(0, 8)}…, not the ref's$`,
      ),
    );
    await assert.rejects(
      fails({ [BLOB]: sha('short'), size: 5 }),
      /blob [0-9a-f]{8}…: fetched 4 bytes, not the ref's 5/,
    );
    await assert.rejects(
      fails({ [BLOB]: sha('secret'), size: 6 }),
      /GET \/blobs\/[0-9a-f]{8}… answered HTTP 403 blob_not_leased: no task of yours/,
    );
    await assert.rejects(
      fails({ [BLOB]: 'a'.repeat(64), size: 1 }),
      /blob aaaaaaaa…: GET \/blobs\/aaaaaaaa… answered HTTP 404 unknown_blob: no such blob/,
    );
    await assert.rejects(
      blobs.contents(findRefs(ref(TEST)), null),
      /blob 9f86d081…: no coordinator to fetch it from/,
    );
    assert.equal(storage.caches.get(CACHE_NAME).size, 0); // nothing bad was kept
  } finally {
    await server.close();
  }
  await assert.rejects(fails(ref(TEST)), /blob 9f86d081…: GET \/blobs\/9f86d081… failed: /);
});

test('a cached copy whose SHA-256 is wrong is deleted and the blob fetched again', async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  const storage = fakeCaches();
  try {
    const url = `${server.base}/blobs/${TEST_SHA}`;
    const cache = await storage.open(CACHE_NAME);
    const headers = { 'x-browsergrid-stored': '1', 'x-browsergrid-size': '4' };
    await cache.put(url, new Response('evil', { headers }));
    const blobs = createBlobs({ caches: storage });
    const context = { base: server.base, key: 'k' };
    assert.deepEqual(
      await blobs.contents(findRefs(ref(TEST)), context),
      new Map([[TEST_SHA, TEST]]),
    );
    assert.equal(server.requests.length, 1);
    assert.deepEqual(cache.entries.get(url).bytes, TEST); // the good copy took its place
    await blobs.contents(findRefs(ref(TEST)), context);
    assert.equal(server.requests.length, 1);
  } finally {
    await server.close();
  }
});

test('the cache keeps at most its limit, the oldest out first; a blob over the limit is not kept', async () => {
  const parts = ['aaaa', 'bbbb', 'cccc', 'dddddddddddd'].map((text) =>
    new TextEncoder().encode(text),
  );
  const server = await coordinator(new Map(parts.map((bytes) => [sha(bytes), bytes])));
  const storage = fakeCaches();
  let clock = 0;
  const now = () => {
    clock += 1;
    return clock;
  };
  try {
    const context = { base: server.base, key: 'k' };
    const one = createBlobs({ caches: storage, limit: 10, now });
    const two = createBlobs({ caches: storage, limit: 10, now }); // another compute worker of the page
    await one.contents(findRefs(ref(parts[0])), context);
    await two.contents(findRefs(ref(parts[1])), context);
    const kept = () => [...storage.caches.get(CACHE_NAME).keys()].map((url) => url.slice(-64));
    assert.deepEqual(kept(), [sha(parts[0]), sha(parts[1])]);
    await one.contents(findRefs(ref(parts[2])), context); // 12 bytes would pass 10: aaaa goes
    assert.deepEqual(kept().sort(), [sha(parts[1]), sha(parts[2])].sort());
    await one.contents(findRefs(ref(parts[3])), context); // 12 bytes: never kept, nothing goes
    assert.deepEqual(kept().sort(), [sha(parts[1]), sha(parts[2])].sort());
    // an entry without the headers blobs.js writes was not written by it: it goes at the next store
    const cache = await storage.open(CACHE_NAME);
    await cache.put(`${server.base}/blobs/${'e'.repeat(64)}`, new Response('x'));
    await two.contents(findRefs(ref(parts[0])), context);
    assert.deepEqual(kept().sort(), [sha(parts[0]), sha(parts[2])].sort());
  } finally {
    await server.close();
  }
});

test('a result whose JSON passes 64 KiB as UTF-8 is uploaded and reported as a ref', async () => {
  const server = await coordinator();
  try {
    const blobs = createBlobs();
    const context = { base: server.base, key: 'k 1' };
    const small = { text: 'x'.repeat(INLINE_RESULT_BYTES - 20) };
    assert.equal(await blobs.upload(small, context, 5), small);
    assert.equal(server.requests.length, 0);
    const large = { text: 'é'.repeat(INLINE_RESULT_BYTES / 2) }; // fewer characters than bytes
    const body = Buffer.from(JSON.stringify(large));
    const sent = await blobs.upload(large, context, 5);
    assert.deepEqual(sent, { [BLOB]: sha(body), size: body.length, format: 'json' });
    const [put] = server.requests;
    assert.equal(put.method, 'PUT');
    assert.equal(put.url, `/blobs/${sha(body)}?key=k+1&task_id=5`);
    assert.equal(put.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(put.body, body);
    // an older coordinator, without blob_key: the result goes inline, as before
    assert.equal(await blobs.upload(large, { base: server.base, key: null }, 5), large);
    assert.equal(server.requests.length, 1);
    assert.equal(await blobs.upload(undefined, context, 5), undefined);
  } finally {
    await server.close();
  }
});

test("a failed upload fails the task with the status and the coordinator's code and detail", async () => {
  const server = await coordinator(new Map(), {
    put(_request, response) {
      response.writeHead(403, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ detail: 'task 5 is not leased to you', code: 'not_leased' }));
    },
  });
  const large = Array.from({ length: 20_000 }, (_, i) => i);
  const blobs = createBlobs();
  try {
    await assert.rejects(
      blobs.upload(large, { base: server.base, key: 'k' }, 5),
      /the result \(\d+ bytes\) could not be uploaded: PUT \/blobs\/[0-9a-f]{8}… answered HTTP 403 not_leased: task 5 is not leased to you/,
    );
  } finally {
    await server.close();
  }
  await assert.rejects(
    blobs.upload(large, { base: server.base, key: 'k' }, 5),
    /could not be uploaded: PUT \/blobs\/[0-9a-f]{8}… failed: /,
  );
});

// --- compute-worker.js, as a module Web Worker would run it ---

const fromWorker = [];
let heard = null;
globalThis.self = {
  postMessage(message) {
    fromWorker.push(message);
    heard?.();
  },
};
await import('../../src/browsergrid/web/js/compute-worker.js');

async function tell(data) {
  const before = fromWorker.length;
  const arrived = new Promise((resolve) => {
    heard = resolve;
  });
  globalThis.self.onmessage({ data });
  while (fromWorker.length === before) await arrived;
  return fromWorker.at(-1);
}

const OPS_MODULE = `data:text/javascript,${encodeURIComponent(`
export function byte_sum({ data, scale }) {
  return data.reduce((sum, byte) => sum + byte, 0) * scale;
}
export function echo(args) {
  return args;
}
`)}`;

test('compute worker: an op gets its refs resolved; a large result goes up as a ref', async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  try {
    const { setup } = await tell({ setup: { python: null, opsModule: OPS_MODULE } });
    assert.deepEqual(setup.ops, ['byte_sum', 'echo']);
    const blobs = { base: server.base, key: 'k' };
    const summed = await tell({
      task_id: 1,
      op: 'byte_sum',
      args: { data: ref(TEST), scale: 2 },
      blobs,
    });
    assert.equal(summed.result, 2 * [...TEST].reduce((a, b) => a + b));
    assert.equal(typeof summed.duration_ms, 'number');
    const big = { items: Array.from({ length: 20_000 }, (_, i) => i) };
    const echoed = await tell({ task_id: 2, op: 'echo', args: big, blobs });
    const body = Buffer.from(JSON.stringify(big));
    assert.deepEqual(echoed.result, { [BLOB]: sha(body), size: body.length, format: 'json' });
    assert.deepEqual(server.uploads.get(sha(body)), body);
    const failed = await tell({
      task_id: 3,
      op: 'repeat_multiply',
      args: { initial: ref(TEST), factor: 1, times: 1 },
      blobs,
    });
    assert.match(failed.error, /repeat_multiply: initial must be a finite number/); // a built-in op's usual argument error
    const missing = await tell({
      task_id: 4,
      op: 'echo',
      args: { x: { [BLOB]: 'b'.repeat(64), size: 1 } },
      blobs,
    });
    assert.match(
      missing.error,
      /^Error: blob bbbbbbbb…: GET \/blobs\/bbbbbbbb… answered HTTP 404 unknown_blob/,
    );
    // Node has no Cache Storage: TEST, small, was kept in memory after task 1; then the missing one
    assert.equal(server.requests.filter((r) => r.method === 'GET').length, 2);
  } finally {
    await server.close();
  }
});

test('a blob used lately is kept in memory too, and each task gets its own copy of it', async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  try {
    const blobs = createBlobs({ caches: null });
    const refs = findRefs({ data: ref(TEST) });
    const context = { base: server.base, key: 'k' };
    const first = (await blobs.contents(refs, context)).get(TEST_SHA);
    first[0] = 0; // an op writing into what it was given
    const second = (await blobs.contents(refs, context)).get(TEST_SHA);
    assert.deepEqual(second, TEST);
    second[1] = 0;
    assert.deepEqual((await blobs.contents(refs, context)).get(TEST_SHA), TEST);
    assert.equal(server.requests.length, 1);
    await assert.rejects(
      blobs.contents(findRefs({ data: { [BLOB]: TEST_SHA, size: 3 } }), context),
      /it has 4 bytes, not the ref's 3/,
    );
  } finally {
    await server.close();
  }
});

test("a failure that is not the task's is marked to hand the task back; a missing blob is not", async () => {
  const server = await coordinator(new Map());
  try {
    const blobs = createBlobs({ caches: null });
    const context = { base: server.base, key: 'k' };
    const missing = await blobs.contents(findRefs({ x: ref(TEST) }), context).catch((err) => err);
    assert.match(String(missing), /answered HTTP 404/);
    assert.equal(missing.handBack, undefined);
    const down = await blobs
      .contents(findRefs({ x: ref(TEST) }), { base: 'http://127.0.0.1:9', key: 'k' })
      .catch((err) => err);
    assert.match(String(down), /GET \/blobs\/.* failed/);
    assert.equal(down.handBack, true);
  } finally {
    await server.close();
  }
});

test('with Web Locks, one compute worker at a time loads a blob', async () => {
  const server = await coordinator(new Map([[TEST_SHA, TEST]]));
  const held = [];
  const locks = {
    async request(name, work) {
      held.push(name);
      return work();
    },
  };
  try {
    const blobs = createBlobs({ caches: null, locks });
    await blobs.contents(findRefs({ x: ref(TEST) }), { base: server.base, key: 'k' });
    assert.deepEqual(held, [`browsergrid-blob:${TEST_SHA}`]);
  } finally {
    await server.close();
  }
});

test('large blobs kept and dropped are told (onHolds), and found again for hello (heldBlobs)', async () => {
  const big = new Uint8Array(70_000).fill(7);
  const bigger = new Uint8Array(80_000).fill(9);
  const server = await coordinator(
    new Map([
      [sha(big), big],
      [sha(bigger), bigger],
      [TEST_SHA, TEST],
    ]),
  );
  const storage = fakeCaches();
  const told = [];
  let clock = 1000;
  try {
    const blobs = createBlobs({
      caches: storage,
      now: () => clock++,
      limit: 100_000,
      onHolds: (news) => told.push(news),
    });
    const context = { base: server.base, key: 'k' };
    await blobs.contents(findRefs({ a: ref(big), small: ref(TEST) }), context);
    assert.deepEqual(told, [{ add: [sha(big)], drop: [] }]); // the small one is not worth telling
    assert.deepEqual(await heldBlobs(storage), [sha(big)]);
    await blobs.contents(findRefs({ b: ref(bigger) }), context); // no room for both
    assert.deepEqual(told.at(-1), { add: [sha(bigger)], drop: [sha(big)] });
    assert.deepEqual(await heldBlobs(storage), [sha(bigger)]);
    assert.deepEqual(await heldBlobs(null), []);
  } finally {
    await server.close();
  }
});
