// Blobs (docs/protocol.md, "Blobs") on the worker page's side. A task's arguments may hold refs,
// {"$blob": sha256, "size": n, "format": "bytes" | "json"}, at any depth. Before the task runs, its
// compute Web Worker gets each blob's bytes: from Cache Storage (browsergrid-blobs-v1, at most 256 MiB,
// oldest first out), else with GET /blobs/<sha256>?key=<blob_key> from the coordinator the page is
// connected to; either way checked against the ref's SHA-256 and size. Then the ops get the refs
// replaced by the contents (resolveRefs), or, for the python op, the contents beside the arguments.
// A result whose JSON passes 64 KiB goes the other way: uploaded with PUT, and reported as a ref.
// fetch, caches, crypto.subtle and the clock are the worker's, replaced in tests.

export const BLOB = '$blob';
export const CACHE_NAME = 'browsergrid-blobs-v1';
export const CACHE_BYTES = 256 * 1024 * 1024;
export const INLINE_RESULT_BYTES = 65536; // a result's JSON up to this many bytes goes in the frame
export const LOCALITY_BYTES = 65536; // blobs this large are worth telling the coordinator we hold

// The large blobs kept in Cache Storage (whichever compute worker kept them): SHA-256s, newest
// first, for `hello`'s `holds`. None where there is no Cache Storage.
export async function heldBlobs(caches = globalThis.caches) {
  if (!caches) return [];
  try {
    const kept = await caches.open(CACHE_NAME);
    const found = [];
    for (const request of await kept.keys()) {
      const response = await kept.match(request);
      const size = wholeNumber(response?.headers.get(SIZE));
      const sha = request.url.slice(request.url.lastIndexOf('/') + 1);
      if (size >= LOCALITY_BYTES && SHA256.test(sha))
        found.push([wholeNumber(response.headers.get(STORED)), sha]);
    }
    return found.sort(([a], [b]) => b - a).map(([, sha]) => sha);
  } catch {
    return [];
  }
}
const MEMORY_BYTES = 32 * 1024 * 1024; // blobs used last, kept in each compute worker's memory too
const STORED = 'x-browsergrid-stored'; // when a cache entry was stored (ms since the epoch)
const SIZE = 'x-browsergrid-size'; // its length: the index is rebuilt from headers, never bodies
const SHA256 = /^[0-9a-f]{64}$/;
const FORMATS = ['bytes', 'json'];

// A header's whole number, or NaN when it is missing or anything else.
const wholeNumber = (text) => (/^\d+$/.test(text ?? '') ? Number(text) : Number.NaN);
const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

// How a blob is named in messages: enough digits to find it, few enough to read.
export const shortSha = (sha) => `${String(sha).slice(0, 8)}…`;

// The http(s) origin of the coordinator a WebSocket URL names: ws://H:P/ws?token=T -> http://H:P.
export function blobBase(wsUrl) {
  const url = new URL(wsUrl);
  const scheme = { 'ws:': 'http:', 'wss:': 'https:' }[url.protocol] ?? url.protocol;
  return `${scheme}//${url.host}`;
}

function checkRef(ref) {
  const { [BLOB]: sha, size, format = 'bytes' } = ref;
  if (typeof sha !== 'string' || !SHA256.test(sha))
    throw new Error(`blob ref: $blob must be 64 lowercase hex digits, not ${JSON.stringify(sha)}`);
  if (!Number.isInteger(size) || size < 0)
    throw new Error(`blob ${shortSha(sha)}: the ref's size must be an integer >= 0`);
  if (!FORMATS.includes(format))
    throw new Error(`blob ${shortSha(sha)}: the ref's format must be "bytes" or "json"`);
}

// Every blob the refs in `value` name, at any depth: a Map sha256 -> size. A malformed ref throws
// (the coordinator refuses them, so it is a broken task), as do two refs giving one blob two sizes.
export function findRefs(value, found = new Map()) {
  if (Array.isArray(value)) {
    for (const item of value) findRefs(item, found);
  } else if (isObject(value)) {
    if (!Object.hasOwn(value, BLOB)) {
      for (const item of Object.values(value)) findRefs(item, found);
      return found;
    }
    checkRef(value);
    const { [BLOB]: sha, size } = value;
    if (found.has(sha) && found.get(sha) !== size)
      throw new Error(`blob ${shortSha(sha)}: refs give it sizes ${found.get(sha)} and ${size}`);
    found.set(sha, size);
  }
  return found;
}

function content(ref, contents, given) {
  const sha = ref[BLOB];
  const bytes = contents.get(sha);
  if (bytes === undefined) throw new Error(`blob ${shortSha(sha)}: its content is missing`);
  if ((ref.format ?? 'bytes') === 'json') {
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (err) {
      throw new Error(`blob ${shortSha(sha)}: not UTF-8 JSON text (${err.message})`);
    }
  }
  // A second ref to the same blob gets its own copy: an op writing into one must not change the other.
  if (given.has(sha)) return bytes.slice();
  given.add(sha);
  return bytes;
}

// `value` with every ref replaced by its blob's content (`contents`: sha256 -> Uint8Array): the bytes
// for format bytes, the JSON value they hold for format json. Parts without refs are copied as they are.
export function resolveRefs(value, contents, given = new Set()) {
  if (Array.isArray(value)) return value.map((item) => resolveRefs(item, contents, given));
  if (!isObject(value)) return value;
  if (Object.hasOwn(value, BLOB)) return content(value, contents, given);
  return Object.fromEntries(
    Object.entries(value).map(([name, item]) => [name, resolveRefs(item, contents, given)]),
  );
}

// --- SHA-256 ---

const hex = (bytes) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');

// The SHA-256 of `bytes` in lowercase hex, or null without WebCrypto (crypto.subtle): a page over
// http:// from another machine is no secure context. Such a page came over the same unauthenticated
// channel as the blobs, has no Cache Storage to be poisoned, and checks sizes only; it sends large
// results inline (within the frame limit), as it cannot name them by their hash.
export async function sha256Hex(bytes, subtle = globalThis.crypto?.subtle) {
  if (!subtle) return null;
  return hex(new Uint8Array(await subtle.digest('SHA-256', bytes)));
}

// --- HTTP ---

// An error that is not the task's fault (the network, this connection's key, the coordinator's
// trouble): the page hands such a task back (the coordinator gives it to another worker, and counts no
// attempt) rather than fail it.
function notTheTasks(message) {
  const err = new Error(message);
  err.handBack = true;
  return err;
}

// "HTTP 403 blob_not_leased: <detail>": the status and the coordinator's JSON body, when it has one.
async function httpProblem(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const code = typeof body?.code === 'string' ? ` ${body.code}` : '';
  const detail = typeof body?.detail === 'string' ? `: ${body.detail}` : '';
  return `HTTP ${response.status}${code}${detail}`;
}

function blobUrl(base, sha, params) {
  const url = new URL(`/blobs/${sha}`, base);
  for (const [name, value] of Object.entries(params))
    if (value !== null && value !== undefined) url.searchParams.set(name, String(value));
  return url.href;
}

// --- the store: fetch, check, keep ---

// `fetch`, `caches` (null or undefined: nothing is kept), `subtle` (undefined: sizes only, see sha256Hex),
// `locks` (navigator.locks: one compute worker at a time loads a blob) and `now` are the worker's,
// replaced in tests; `onHolds({add, drop})` hears of the large blobs kept and dropped (the page tells
// the coordinator: tasks reading them come here first); `limit`: the bytes kept at most; `pageUrl`: the page's URL, under
// which blobs are kept (its /blobs/<sha256>, whichever coordinator served it: the SHA-256 names the bytes).
export function createBlobs({
  fetch = globalThis.fetch,
  caches = globalThis.caches,
  subtle = globalThis.crypto?.subtle,
  now = Date.now,
  limit = CACHE_BYTES,
  pageUrl = globalThis.location?.href,
  locks = globalThis.navigator?.locks,
  onHolds = () => {},
} = {}) {
  // The page's compute workers share Cache Storage: one of them at a time loads a given blob, so
  // that the others find it kept rather than download it too (Web Locks; without them, each fetches).
  const oneAtATime = (sha, work) =>
    locks ? locks.request(`browsergrid-blob:${sha}`, work) : work();
  const loading = new Map(); // sha256 -> Promise of its bytes: tasks needing one blob share its fetch
  const memory = new Map(); // sha256 -> bytes of a blob used lately, checked when fetched (remember)
  let memoryBytes = 0;
  let opened = null; // Promise of the Cache, or of null where there is none (or it is refused)
  let index = new Map(); // cache key (URL) -> {size, stored}: what the cache holds, oldest first out
  let writing = Promise.resolve(); // stores go one at a time: each counts what the last left

  // The key: /blobs/<sha256> of the page's origin, without any key (so any connection's task hits). A
  // page from a file has no http(s) URL the Cache API takes: the coordinator's then.
  const keyOf = (sha, base) =>
    new URL(`/blobs/${sha}`, /^https?:/.test(pageUrl ?? '') ? pageUrl : base).href;

  function cache() {
    opened ??= caches ? caches.open(CACHE_NAME).catch(() => null) : Promise.resolve(null);
    return opened;
  }

  // The index again from the cache's keys, since the other compute workers of the page store too:
  // entries known already keep their figures, others are read from their headers. An entry without
  // them was not stored here (a task may write to the origin's caches): it goes.
  async function reindex(kept) {
    const fresh = new Map();
    for (const request of await kept.keys()) {
      const url = request.url ?? String(request);
      let entry = index.get(url);
      if (entry === undefined) {
        const headers = (await kept.match(request))?.headers;
        const size = wholeNumber(headers?.get(SIZE));
        const stored = wholeNumber(headers?.get(STORED));
        if (Number.isSafeInteger(size) && Number.isSafeInteger(stored)) entry = { size, stored };
        else await kept.delete(request);
      }
      if (entry !== undefined) fresh.set(url, entry);
    }
    index = fresh;
  }

  // Keeps `bytes` under `key`, first taking out the oldest entries it would not fit beside. Best effort:
  // storage refused (quota, private mode) only means the next task fetches the blob again.
  async function keep(key, bytes) {
    if (bytes.length > limit) return; // it would push out everything, and still not fit
    const kept = await cache();
    if (kept === null) return;
    writing = writing.then(async () => {
      try {
        await reindex(kept);
        const oldestFirst = [...index].sort(([, x], [, y]) => x.stored - y.stored);
        let total = oldestFirst.reduce((sum, [, { size }]) => sum + size, 0);
        const dropped = [];
        for (const [url, { size }] of oldestFirst) {
          if (total + bytes.length <= limit) break;
          await kept.delete(url);
          index.delete(url);
          total -= size;
          if (size >= LOCALITY_BYTES) dropped.push(url.slice(url.lastIndexOf('/') + 1));
        }
        const stored = now();
        const headers = {
          'Content-Type': 'application/octet-stream',
          [STORED]: String(stored),
          [SIZE]: String(bytes.length),
        };
        await kept.put(key, new Response(bytes, { headers }));
        index.set(key, { size: bytes.length, stored });
        const added = bytes.length >= LOCALITY_BYTES ? [key.slice(key.lastIndexOf('/') + 1)] : [];
        if (added.length || dropped.length) onHolds({ add: added, drop: dropped });
      } catch {
        // not kept: fetched again when next needed
      }
    });
    await writing;
  }

  // The bytes kept under `key` when they still have their SHA-256, else null (a bad copy is deleted).
  async function kept(key, sha) {
    const store = await cache();
    if (store === null) return null;
    try {
      const found = await store.match(key);
      if (!found) return null;
      const bytes = new Uint8Array(await found.arrayBuffer());
      if ((await sha256Hex(bytes, subtle)) === sha) return bytes;
      // A task runs with the page's origin, and could have written a tampered copy.
      await store.delete(key);
      index.delete(key);
    } catch {
      // storage refused: fetch it
    }
    return null;
  }

  async function download(sha, { base, key }) {
    const where = `GET /blobs/${shortSha(sha)}`;
    let response;
    try {
      // no-store: the copy in Cache Storage is the one kept, not a second in the HTTP cache
      response = await fetch(blobUrl(base, sha, { key }), { cache: 'no-store' });
    } catch (err) {
      throw notTheTasks(`blob ${shortSha(sha)}: ${where} failed: ${err?.message ?? err}`);
    }
    if (!response.ok) {
      const problem = `blob ${shortSha(sha)}: ${where} answered ${await httpProblem(response)}`;
      // 404: no such blob, wherever the task goes; anything else is this connection's trouble
      throw response.status === 404 ? new Error(problem) : notTheTasks(problem);
    }
    return new Uint8Array(await response.arrayBuffer());
  }

  async function load(sha, size, context) {
    const key = keyOf(sha, context.base);
    const found = await kept(key, sha);
    if (found !== null) return found;
    const bytes = await download(sha, context);
    if (bytes.length !== size)
      throw new Error(
        `blob ${shortSha(sha)}: fetched ${bytes.length} bytes, not the ref's ${size}`,
      );
    const digest = await sha256Hex(bytes, subtle);
    if (digest !== null && digest !== sha) {
      throw new Error(
        `blob ${shortSha(sha)}: fetched ${bytes.length} bytes whose SHA-256 is ${shortSha(digest)}, not the ref's`,
      );
    }
    await keep(key, bytes);
    return bytes;
  }

  async function get(sha, size, context) {
    const memo = memory.get(sha);
    if (memo !== undefined) {
      if (memo.length !== size)
        throw new Error(
          `blob ${shortSha(sha)}: it has ${memo.length} bytes, not the ref's ${size}`,
        );
      return memo.slice(); // a copy: an op may write into what it is given
    }
    if (!loading.has(sha)) {
      loading.set(
        sha,
        oneAtATime(sha, () => load(sha, size, context)).finally(() => loading.delete(sha)),
      );
    }
    const bytes = await loading.get(sha);
    // a cached copy, or one fetched for another task, has the right SHA-256; the ref may still be wrong
    if (bytes.length !== size)
      throw new Error(`blob ${shortSha(sha)}: it has ${bytes.length} bytes, not the ref's ${size}`);
    remember(sha, bytes);
    return bytes;
  }

  // The blobs used last (a python function's source, a job's input) are kept in this worker's memory
  // too, so that a task costs no Cache Storage read and no hashing; MEMORY_BYTES at most, oldest out.
  function remember(sha, bytes) {
    if (bytes.length > MEMORY_BYTES || memory.has(sha)) return;
    memory.set(sha, bytes.slice());
    memoryBytes += bytes.length;
    for (const [old, kept] of memory) {
      if (memoryBytes <= MEMORY_BYTES) break;
      memory.delete(old);
      memoryBytes -= kept.length;
    }
  }

  return {
    // The contents of the blobs `refs` (findRefs) names: a Map sha256 -> Uint8Array. `context`:
    // {base, key}, the coordinator's http(s) origin and welcome's blob_key (null: an older coordinator).
    async contents(refs, context) {
      const entries = await Promise.all(
        [...refs].map(async ([sha, size]) => {
          if (!context?.base)
            throw new Error(`blob ${shortSha(sha)}: no coordinator to fetch it from`);
          return [sha, await get(sha, size, context)];
        }),
      );
      return new Map(entries);
    },

    // `result`, or, when its JSON passes INLINE_RESULT_BYTES as UTF-8 and the coordinator gave a key,
    // the ref of the blob it was uploaded as. A failed upload throws: the task fails.
    async upload(result, context, taskId) {
      const text = JSON.stringify(result);
      // UTF-8 takes 1 to 3 bytes per UTF-16 unit: most results are told small without encoding them
      if (text === undefined || text.length * 3 <= INLINE_RESULT_BYTES || !context?.key)
        return result;
      const bytes = new TextEncoder().encode(text);
      if (bytes.length <= INLINE_RESULT_BYTES) return result;
      const sha = await sha256Hex(bytes, subtle);
      if (sha === null) return result; // no WebCrypto: inline, as far as the frame limit allows
      const failed = `the result (${bytes.length} bytes) could not be uploaded: PUT /blobs/${shortSha(sha)}`;
      let response;
      try {
        response = await fetch(blobUrl(context.base, sha, { key: context.key, task_id: taskId }), {
          method: 'PUT',
          headers: { 'Content-Type': 'application/octet-stream' },
          body: bytes,
        });
      } catch (err) {
        throw notTheTasks(`${failed} failed: ${err?.message ?? err}`);
      }
      if (!response.ok) {
        const problem = `${failed} answered ${await httpProblem(response)}`;
        // too large (413) or no room (507) wherever it runs: the task fails; else hand it back
        throw [413, 507].includes(response.status) ? new Error(problem) : notTheTasks(problem);
      }
      return { [BLOB]: sha, size: bytes.length, format: 'json' };
    },
  };
}
