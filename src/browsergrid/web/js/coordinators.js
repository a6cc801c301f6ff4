// The coordinators a worker page connects to (docs/protocol.md "Failover"): the ?coordinators= of its own address, a
// comma-separated list of ws://, wss://, http:// or https:// URLs, tried round robin. Pure code, tested in Node.
import { hideToken, tokenFrom, withToken } from './token.js';

export const WS_PATH = '/ws'; // where a coordinator takes workers (it takes them on / too)
export const FAILOVER_AFTER_MS = 1000; // a connection open this long was up: on losing it, try the next one at once

// One entry of the list as a WebSocket URL, or null when it is none. http(s)://HOST[:PORT]/... becomes
// ws(s)://HOST[:PORT]/ws (keeping a ?token= of its own); a ws(s):// URL is kept as written, but for a #fragment.
export function coordinatorUrl(entry) {
  let url;
  try {
    url = new URL(String(entry).trim());
  } catch {
    return null;
  }
  if (!url.host) return null;
  if (url.protocol === 'ws:' || url.protocol === 'wss:') {
    url.hash = '';
    return url.href;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const ws = new URL(`${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${WS_PATH}`);
  const own = url.searchParams.get('token');
  if (own) ws.searchParams.set('token', own);
  return ws.href;
}

// The WebSocket URLs a page whose address has the query string `search` connects to, in order: those of its
// ?coordinators= list, else [fallback] (the URL it uses without one). The page's ?token= goes into each (replacing an
// entry's own). Bad entries are left out with a warning; a list with no good one warns and falls back.
export function coordinatorsFrom(search, fallback, warn = (line) => console.warn(line)) {
  const token = tokenFrom(search);
  const list = new URLSearchParams(search ?? '').get('coordinators');
  const urls = [];
  if (list !== null) {
    for (const raw of list.split(',')) {
      const entry = raw.trim();
      if (entry === '') continue;
      const url = coordinatorUrl(entry);
      if (url === null)
        warn(
          `Ignored ?coordinators= entry ${JSON.stringify(hideToken(entry))}: not a ws://, wss://, http:// or https:// URL`,
        );
      else urls.push(withToken(url, token));
    }
    if (urls.length === 0)
      warn(`?coordinators= names no usable URL; using ${hideToken(withToken(fallback, token))}`);
  }
  return urls.length > 0 ? urls : [withToken(fallback, token)];
}

// Round robin over a page's coordinators: `current` is the one to connect to; `next()` moves on after a disconnect.
export class CoordinatorRing {
  constructor(urls) {
    if (urls.length === 0) throw new Error('CoordinatorRing needs at least one URL');
    this.urls = [...urls];
    this.index = 0;
  }

  get current() {
    return this.urls[this.index];
  }

  get size() {
    return this.urls.length;
  }

  // Moves to the next coordinator and returns it (the same one when there is only one).
  next() {
    this.index = (this.index + 1) % this.urls.length;
    return this.current;
  }
}

// The wait before the next attempt (ms), given the backoff's `waitMs`: none when there are several coordinators and
// the connection just lost had been open at least FAILOVER_AFTER_MS (`openedAtMs`: when it opened; null if it never
// did): the next coordinator is tried at once. As the Python worker does.
export function failoverDelay({ waitMs, coordinators, openedAtMs, nowMs }) {
  if (coordinators > 1 && openedAtMs !== null && nowMs - openedAtMs >= FAILOVER_AFTER_MS) return 0;
  return waitMs;
}
