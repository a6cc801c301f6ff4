// The live feed: one WebSocket to /dashboard/live, reconnected with the worker page's back-off when it drops.
import { ReconnectBackoff } from '../backoff.js';

const LIVE_PATH = '/dashboard/live';

// Where the feed and the HTTP API are, from the page's location: its own host, or ?server=host:port
// (or a full ws:// or wss:// URL). {live, http}: http is '' for the page's own origin.
export function endpoints(loc, fallbackHost = '127.0.0.1:8765') {
  const secure = loc.protocol === 'https:';
  const override = new URLSearchParams(loc.search ?? '').get('server');
  if (override && /^wss?:\/\//i.test(override)) {
    const url = new URL(override);
    if (url.pathname === '/' || url.pathname === '') url.pathname = LIVE_PATH;
    return { live: url.href, http: `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}` };
  }
  if (override) {
    return {
      live: `${secure ? 'wss' : 'ws'}://${override}${LIVE_PATH}`,
      http: `${secure ? 'https' : 'http'}://${override}`,
    };
  }
  if (loc.host) return { live: `${secure ? 'wss' : 'ws'}://${loc.host}${LIVE_PATH}`, http: '' };
  return { live: `ws://${fallbackHost}${LIVE_PATH}`, http: `http://${fallbackHost}` }; // a page opened from a file
}

// onFrame(frame) for every JSON text frame; onStatus(status, detail) with status 'connecting', 'open'
// or 'closed' (detail {retryMs, code, reason, opened}: opened is false for a connection that never opened,
// such as one refused for want of a token).
export class LiveFeed {
  constructor(
    url,
    {
      onFrame,
      onStatus = () => {},
      WebSocketImpl = globalThis.WebSocket,
      backoff = new ReconnectBackoff(),
      now = () => Date.now(),
      setTimer = (fn, ms) => setTimeout(fn, ms),
    },
  ) {
    Object.assign(this, { url, onFrame, onStatus, WebSocketImpl, backoff, now, setTimer });
    this.socket = null;
    this.connects = 0;
  }

  start() {
    this.connect();
  }

  connect() {
    this.onStatus('connecting', {});
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (err) {
      this.closed({ code: 0, reason: err.message });
      return;
    }
    this.socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.connects += 1;
      this.backoff.connected(this.now());
      this.onStatus('open', {});
    };
    ws.onmessage = ({ data }) => {
      if (typeof data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(data);
      } catch {
        console.warn(`dashboard: ignored a frame that is not JSON: ${data.slice(0, 80)}`);
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = ({ code, reason }) => {
      if (this.socket === ws) this.closed({ code, reason, opened });
    };
  }

  closed({ code, reason, opened = false }) {
    this.socket = null;
    const retryMs = this.backoff.disconnected(this.now());
    this.onStatus('closed', { retryMs, code, reason, opened });
    this.setTimer(() => this.connect(), retryMs);
  }
}
