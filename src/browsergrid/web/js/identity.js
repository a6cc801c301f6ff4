// The tab's lasting identity, so that its history follows it across reloads and restarts.
//
// Each tab of a browser holds a slot of its own in localStorage (Web Locks), so tabs never share an identity. The
// slot keeps a *local secret* that never leaves the page. What a coordinator is sent in hello is a worker_key
// derived from that secret and the coordinator's origin (workerKeyFor):
//
//   worker_key = 'tab-' + the first 32 hex digits of HMAC-SHA-256(key: the secret as UTF-8,
//                                                                  message: the origin, e.g. 'ws://127.0.0.1:8765')
//
// So each coordinator gets a key of its own, and a key the page sent to a server a link's ?server= named is worth
// nothing at any other coordinator. Without WebCrypto (crypto.subtle: plain http:// on an address other than
// localhost is not a secure context) the tab has no lasting key: it works without a history, never sending the
// secret itself.

const SLOTS = 64;
const PREFIX = 'browsergrid.tab_secret.';
// Before the keys were derived, a slot held the worker_key itself, sent to whatever server the page was given. It
// may have leaked, so it is not reused: each slot gets a new secret and its old key is removed.
const OLD_PREFIX = 'browsergrid.worker_key.';
const KEY_HEX_DIGITS = 32; // 128 bits of the MAC
const SCHEMES = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

// The origin a WebSocket URL reaches, as the key is derived from it: 'ws://HOST[:PORT]' or 'wss://HOST[:PORT]',
// lowercase, without a default port (80, 443), path, query (a ?token=) or fragment; http(s):// count as ws(s)://.
// Null for anything else.
export function coordinatorOrigin(serverUrl) {
  let url;
  try {
    url = new URL(String(serverUrl));
  } catch {
    return null;
  }
  const scheme = SCHEMES[url.protocol];
  if (scheme === undefined || !url.host) return null;
  return `${scheme}//${url.host}`; // http's and ws's default port is 80, https's and wss's 443: URL drops them
}

// The worker_key this tab sends to the coordinator at `serverUrl`: the same for every URL of one origin, another for
// every other origin. Undefined when there is no secret, the URL names no origin, or `subtle` (WebCrypto) is missing.
export async function workerKeyFor(secret, serverUrl, subtle = globalThis.crypto?.subtle) {
  const origin = coordinatorOrigin(serverUrl);
  if (!secret || origin === null || !subtle) return undefined;
  try {
    const encoder = new TextEncoder();
    const hmac = { name: 'HMAC', hash: 'SHA-256' };
    const key = await subtle.importKey('raw', encoder.encode(secret), hmac, false, ['sign']);
    const mac = await subtle.sign('HMAC', key, encoder.encode(origin));
    return `tab-${hex(new Uint8Array(mac)).slice(0, KEY_HEX_DIGITS)}`;
  } catch {
    return undefined;
  }
}

function secretOfSlot(storage, slot) {
  const name = PREFIX + slot;
  let secret = storage.getItem(name);
  if (!secret) {
    secret = hex(crypto.getRandomValues(new Uint8Array(32)));
    storage.setItem(name, secret);
  }
  try {
    storage.removeItem(OLD_PREFIX + slot);
  } catch {
    // an old key left behind is never read again
  }
  return secret;
}

function lockSlot(locks, slot) {
  return new Promise((resolve) => {
    locks.request(`${PREFIX}${slot}`, { ifAvailable: true }, (lock) => {
      if (lock === null) {
        resolve(false);
        return undefined;
      }
      resolve(true);
      return new Promise(() => {}); // held until the tab closes
    });
  });
}

// Resolves to this tab's local secret (never to be sent anywhere), or undefined where storage is unavailable or every
// slot is taken (it then works without a history). The slot's lock is held for as long as the tab lives.
// `storage` and `locks` default to the page's localStorage and navigator.locks.
export async function claimTabSecret({ storage, locks } = {}) {
  try {
    const store = storage ?? globalThis.localStorage;
    if (!store) return undefined;
    const webLocks = locks ?? globalThis.navigator?.locks;
    if (!webLocks) return secretOfSlot(store, 0);
    for (let slot = 0; slot < SLOTS; slot += 1) {
      if (await lockSlot(webLocks, slot)) return secretOfSlot(store, slot);
    }
    return undefined;
  } catch {
    return undefined;
  }
}

// The worker_key to send in hello to each of `serverUrls` (a Map from URL to key or undefined), from this tab's
// secret. Without WebCrypto no slot is claimed and every key is undefined.
export async function claimWorkerKeys(
  serverUrls,
  { storage, locks, subtle = globalThis.crypto?.subtle } = {},
) {
  const secret = subtle ? await claimTabSecret({ storage, locks }) : undefined;
  const keys = new Map();
  for (const url of serverUrls) keys.set(url, await workerKeyFor(secret, url, subtle));
  return keys;
}
