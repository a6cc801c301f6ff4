// What this browser has given: tasks and compute time, this session (in memory) and in total
// (localStorage, one key, versioned JSON, shared by every tab of this browser). Pure but for the
// storage passed in; one that is missing or throws keeps the totals of this visit only.

export const CONTRIBUTION_KEY = 'browsergrid.contribution';
export const CONTRIBUTION_VERSION = 1;

const none = () => ({ tasks: 0, computeMs: 0 });
const isCount = (value) => Number.isFinite(value) && value >= 0;

// The totals saved in `storage`: {tasks, computeMs, since} (since: ms since the epoch of the first
// saved task, or null); zeros when none are saved, the storage refuses, or what it holds is not ours.
export function readTotals(storage) {
  let saved = null;
  try {
    saved = JSON.parse(storage?.getItem(CONTRIBUTION_KEY) ?? 'null');
  } catch {
    saved = null;
  }
  if (
    typeof saved !== 'object'
    || saved === null
    || saved.v !== CONTRIBUTION_VERSION
    || !isCount(saved.tasks)
    || !isCount(saved.compute_ms)
  ) {
    return { ...none(), since: null };
  }
  return {
    tasks: saved.tasks,
    computeMs: saved.compute_ms,
    since: isCount(saved.since) ? saved.since : null,
  };
}

function writeTotals(storage, { tasks, computeMs, since }) {
  try {
    storage.setItem(
      CONTRIBUTION_KEY,
      JSON.stringify({ v: CONTRIBUTION_VERSION, tasks, compute_ms: computeMs, since }),
    );
    return true;
  } catch {
    return false;
  }
}

export class Contribution {
  // `now`: the clock (ms since the epoch), replaced in tests.
  constructor(storage, { now = Date.now } = {}) {
    this.storage = storage;
    this.now = now;
    this.session = none();
    this.unsaved = none(); // added since the last flush that reached the storage
    this.saved = readTotals(storage);
  }

  // One task's result sent, after `durationMs` of compute.
  add(durationMs) {
    const ms = isCount(durationMs) ? durationMs : 0;
    for (const part of [this.session, this.unsaved]) {
      part.tasks += 1;
      part.computeMs += ms;
    }
    if (this.saved.since === null) this.saved.since = this.now();
  }

  // In total: what was saved, plus what is not yet.
  get total() {
    return {
      tasks: this.saved.tasks + this.unsaved.tasks,
      computeMs: this.saved.computeMs + this.unsaved.computeMs,
      since: this.saved.since,
    };
  }

  // Adds what is unsaved to the totals in the storage as they are now (another tab of this browser
  // may have added to them since), so no tab's work is counted twice or lost. Returns whether it saved.
  flush() {
    if (this.unsaved.tasks === 0) return true;
    const stored = readTotals(this.storage);
    const next = {
      tasks: stored.tasks + this.unsaved.tasks,
      computeMs: stored.computeMs + this.unsaved.computeMs,
      since: stored.since ?? this.saved.since,
    };
    if (!writeTotals(this.storage, next)) return false;
    this.saved = next;
    this.unsaved = none();
    return true;
  }
}

// One formatter per locale, made once: building one costs more than the redraw that uses it.
const secondsFormats = new Map();
function secondsFormat(locale) {
  let format = secondsFormats.get(locale);
  if (format === undefined) {
    format = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
    secondsFormats.set(locale, format);
  }
  return format;
}

// A compute time for people: "0 s", "< 1 ms", "850 ms", "42.5 s", "3 min 20 s", "2 h 05 min"; `locale` sets the decimal mark.
export function formatComputeTime(ms, locale = 'en') {
  const value = isCount(ms) ? ms : 0;
  if (value === 0) return '0 s';
  if (value < 1) return '< 1 ms';
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) {
    return `${secondsFormat(locale).format(value / 1000)} s`;
  }
  const seconds = Math.floor(value / 1000);
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}
