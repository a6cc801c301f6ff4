// Reconnect delays per docs/protocol.md "Reconnecting": 1 s doubling to 30 s, jitter x[0.5, 1.5], reset after 60 s open.

export class ReconnectBackoff {
  constructor({ random = Math.random, initialMs = 1000, maxMs = 30000, stableMs = 60000 } = {}) {
    this.random = random;
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.stableMs = stableMs;
    this.failures = 0;
    this.openedAt = null;
  }

  // Call when a connection opens.
  connected(nowMs) {
    this.openedAt = nowMs;
  }

  // Call when a connection closes or an attempt fails; returns how long to wait (ms) before the next attempt.
  disconnected(nowMs) {
    if (this.openedAt !== null && nowMs - this.openedAt >= this.stableMs) this.failures = 0;
    this.openedAt = null;
    const base = Math.min(this.initialMs * 2 ** this.failures, this.maxMs);
    if (base < this.maxMs) this.failures += 1;
    return base * (0.5 + this.random());
  }
}
