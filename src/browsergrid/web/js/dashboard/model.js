// The dashboard's state and how each live-feed frame changes it (docs/dashboard.md). Pure: no DOM, no clock,
// never mutates its arguments. A section the frame leaves alone keeps its identity, so the page can tell
// what changed by comparing references.
import { strings } from './strings.js';

export const LIMITS = Object.freeze({
  results: 20,
  events: 50,
  history: 100,
  throughputS: 900,
  endedJobs: 20,
});

export function initialState() {
  return {
    now: null, // the coordinator's clock at the last frame (Unix seconds)
    server: null, // {version, started_at, demo}
    totals: null,
    workers: [], // WorkerRow, by id
    jobs: [], // JobRow, running first, then ended; newest first within each
    throughput: [], // [second, done, failed], oldest first, the last 15 minutes
    results: [], // ResultRow, oldest first
    events: [], // EventRow, oldest first
    eventsDropped: 0, // events the feed left out since the last snapshot
    history: [], // HistoryRow, most recently seen first
    grid: null, // in a grid of coordinators (serve --redis): {id, coordinators, workers}, see gridOf
  };
}

export function applyFrame(state, frame) {
  if (frame === null || typeof frame !== 'object') return state;
  if (frame.type === 'snapshot') return applySnapshot(frame);
  if (frame.type === 'update') return applyUpdate(state, frame);
  return state; // a frame type this page does not know
}

function applySnapshot(frame) {
  const now = frame.now ?? null;
  return {
    now,
    server: frame.server ?? null,
    totals: frame.totals ?? null,
    workers: upsertWorkers([], frame.workers ?? [], []),
    jobs: upsertJobs([], frame.jobs ?? []),
    throughput: trimThroughput(mergeThroughput([], frame.throughput ?? []), now),
    results: (frame.results ?? []).slice(-LIMITS.results),
    events: (frame.events ?? []).slice(-LIMITS.events),
    eventsDropped: 0,
    history: upsertHistory([], frame.history ?? []),
    grid: gridOf(frame.grid),
  };
}

function applyUpdate(state, frame) {
  const next = { ...state };
  if (frame.now !== undefined) next.now = frame.now;
  if (frame.totals) next.totals = frame.totals;
  if (frame.workers?.length || frame.gone?.length) {
    next.workers = upsertWorkers(state.workers, frame.workers ?? [], frame.gone ?? []);
  }
  if (frame.jobs?.length) next.jobs = upsertJobs(state.jobs, frame.jobs);
  next.throughput = trimThroughput(
    frame.throughput?.length
      ? mergeThroughput(state.throughput, frame.throughput)
      : state.throughput,
    next.now,
  );
  if (frame.results?.length)
    next.results = [...state.results, ...frame.results].slice(-LIMITS.results);
  if (frame.events?.length) next.events = [...state.events, ...frame.events].slice(-LIMITS.events);
  if (frame.events_dropped > 0) next.eventsDropped = state.eventsDropped + frame.events_dropped;
  if (frame.history?.length) next.history = upsertHistory(state.history, frame.history);
  if (frame.grid && typeof frame.grid === 'object') next.grid = applyGrid(state.grid, frame.grid);
  return next;
}

// A snapshot's `grid`: this coordinator's id, every live coordinator (CoordinatorRow) and the other
// coordinators' workers (RemoteWorkerRow: a WorkerRow with `coordinator`); null outside a grid.
function gridOf(grid) {
  if (!grid || typeof grid !== 'object') return null;
  return {
    id: grid.id ?? null,
    coordinators: grid.coordinators ?? [],
    workers: upsertRemote([], grid.workers ?? [], []),
  };
}

// An update's `grid`: `coordinators` replaces the list; `workers` and `gone` change the other
// coordinators' workers as `workers` and `gone` change this one's.
function applyGrid(current, changes) {
  const held = current ?? { id: null, coordinators: [], workers: [] };
  const next = { ...held };
  if (Array.isArray(changes.coordinators)) next.coordinators = changes.coordinators;
  if (changes.workers?.length || changes.gone?.length) {
    next.workers = upsertRemote(held.workers, changes.workers ?? [], changes.gone ?? []);
  }
  return next;
}

const remoteKey = (coordinator, id) => `${coordinator}/${id}`;

// As upsertWorkers, keyed by coordinator and id (`gone` holds [coordinator, id] pairs); ordered by
// coordinator, then id.
function upsertRemote(current, rows, gone) {
  const byKey = new Map(current.map((row) => [remoteKey(row.coordinator, row.id), row]));
  for (const row of rows) {
    const key = remoteKey(row.coordinator, row.id);
    const held = byKey.get(key);
    if (held) byKey.set(key, { ...held, ...row });
    else if ('kind' in row) byKey.set(key, row);
  }
  for (const pair of gone) {
    if (Array.isArray(pair)) byKey.delete(remoteKey(pair[0], pair[1]));
  }
  return [...byKey.values()].sort(
    (a, b) => String(a.coordinator).localeCompare(String(b.coordinator)) || a.id - b.id,
  );
}

// A whole row (a worker that joined) replaces the row with its id; a partial row (`id` and
// the fields that changed) is merged into it, and ignored if the page holds no such row.
// Ids in `gone` leave. Result ordered by id.
function upsertWorkers(current, rows, gone) {
  const byId = new Map(current.map((row) => [row.id, row]));
  for (const row of rows) {
    const held = byId.get(row.id);
    if (held) byId.set(row.id, { ...held, ...row });
    else if ('kind' in row) byId.set(row.id, row);
  }
  for (const id of gone) byId.delete(id);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

// Running jobs, newest first, then the LIMITS.endedJobs newest ended jobs.
function upsertJobs(current, rows) {
  const byId = new Map(current.map((row) => [row.id, row]));
  for (const row of rows) byId.set(row.id, row);
  const newest = [...byId.values()].sort((a, b) => b.id - a.id);
  const running = newest.filter((job) => job.state === 'running');
  const ended = newest.filter((job) => job.state !== 'running').slice(0, LIMITS.endedJobs);
  return [...running, ...ended];
}

// Seconds replace the same second; result ordered by second.
function mergeThroughput(current, triples) {
  const bySecond = new Map(current.map((triple) => [triple[0], triple]));
  for (const triple of triples) bySecond.set(triple[0], triple);
  return [...bySecond.values()].sort((a, b) => a[0] - b[0]);
}

// Drops seconds older than 15 minutes before `now`; returns `list` itself when nothing is dropped.
function trimThroughput(list, now) {
  if (now === null || list.length === 0) return list;
  const oldest = Math.floor(now) - LIMITS.throughputS;
  if (list[0][0] >= oldest) return list;
  return list.filter(([second]) => second >= oldest);
}

// Rows replace the rows with the same key; the LIMITS.history most recently seen are kept, newest first.
function upsertHistory(current, rows) {
  const byKey = new Map(current.map((row) => [row.key, row]));
  for (const row of rows) byKey.set(row.key, row);
  return [...byKey.values()]
    .sort((a, b) => b.last_seen - a.last_seen || String(a.key).localeCompare(String(b.key)))
    .slice(0, LIMITS.history);
}

// --- views of the state ---

// Every worker the page lists: this coordinator's, then in a grid the other coordinators' (rows with
// `coordinator`). Returns `workers` itself outside a grid.
export function gridWorkers(workers, grid) {
  return grid?.workers.length ? [...workers, ...grid.workers] : workers;
}

// How many workers of other coordinators are connected but not listed (a coordinator shares the rows
// of its first few hundred workers only).
export function unlistedWorkers(grid) {
  if (!grid) return 0;
  let count = 0;
  for (const row of grid.coordinators) {
    if (!row.this) count += Math.max(0, (row.workers ?? 0) - (row.listed ?? 0));
  }
  return count;
}

// What names a worker row in the page: its id, or "coordinator/id" for another coordinator's worker.
export function workerKey(row) {
  return row.coordinator === undefined || row.coordinator === null
    ? row.id
    : remoteKey(row.coordinator, row.id);
}

// A coordinator id as the page shows it: its first 8 characters (the whole id is in the tooltip).
export function shortId(id) {
  return String(id ?? '').slice(0, 8);
}

// The dashboard of the coordinator serving at `url` (http(s)://HOST:PORT), or null when that address
// names no host to go to (unknown, or a wildcard such as 0.0.0.0 or [::]).
export function dashboardLink(url) {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (['0.0.0.0', '[::]', ''].includes(parsed.hostname)) return null;
  return `${parsed.origin}/dashboard`;
}

// "Chrome 131 on Linux", "Python 3.11", "classroom page", ...
export function workerLabel(row) {
  if (row.kind === 'exercise') return strings.kindExercise;
  const { browser, os } = row;
  if (row.kind === 'python') return browser ?? strings.kindPython;
  if (browser && os) return strings.agentOn(browser, os);
  return browser || os || strings.unknownAgent;
}

// The worker of an EventRow (kind: its worker_kind) or a HistoryRow (kind: its kind) in the page's language,
// as its `label` reads in English: "Chrome 131 on Linux", "Python 3.11 on Linux", "classroom page" (the
// exercise's page, which never says what it runs on). A row without a kind (from a coordinator of an
// earlier version) keeps its label.
export function agentLabel(kind, { browser = null, os = null, label = null }) {
  if (kind === undefined || kind === null) return label ?? strings.unknownAgent;
  if (kind === 'exercise' && !browser) return strings.kindExercise;
  return os
    ? strings.agentOn(browser ?? strings.unknownAgent, os)
    : (browser ?? strings.unknownAgent);
}

// How many workers of each label, most first: [{label, count}].
export function summary(workers) {
  const counts = new Map();
  for (const row of workers) {
    const label = workerLabel(row);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
}

// "812 × Chrome 131 on Linux, 3 × Python 3.11 and 2 more"
export function summaryText(groups, maxGroups = 4) {
  if (groups.length === 0) return strings.summaryNone;
  const shown = groups
    .slice(0, maxGroups)
    .map(({ label, count }) => strings.summaryEntry(count, label))
    .join(', ');
  return groups.length > maxGroups
    ? `${shown} ${strings.summaryMore(groups.length - maxGroups)}`
    : shown;
}

// row -> {strings, text}: the lower-case text the filter looks in, in the language it was made in (rows are
// never changed in place)
const searchText = new WeakMap();

function haystack(row) {
  const held = searchText.get(row);
  if (held?.strings === strings) return held.text;
  // the raw agent only when nothing was read from it: a Chrome agent string names Safari too
  const agent = row.browser || row.os ? null : row.agent;
  const parts = [
    `#${row.id}`,
    workerLabel(row),
    row.kind,
    row.state,
    strings.workerStates[row.state],
    row.address,
    row.key,
    agent,
    row.coordinator,
  ];
  const text = parts
    .filter((part) => part !== null && part !== undefined)
    .join(' ')
    .toLowerCase();
  searchText.set(row, { strings, text });
  return text;
}

// Workers whose id, label, kind, state (as sent, or as the page names it), address, key or coordinator (or
// agent, when no browser or OS was read from it) contain every word of `text`, in any case.
export function filterWorkers(rows, text) {
  const words = String(text ?? '')
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean);
  if (words.length === 0) return rows;
  return rows.filter((row) => {
    const inRow = haystack(row);
    return words.every((word) => inRow.includes(word));
  });
}

// Page `n` (from 1, clamped to the pages there are) of `size` rows: {rows, page, pages, first, last, total},
// first and last counted from 1 (0 and 0 when there are no rows).
export function page(rows, n, size) {
  const total = rows.length;
  const pages = Math.max(1, Math.ceil(total / size));
  const current = Math.min(Math.max(1, Math.floor(Number(n)) || 1), pages);
  const start = (current - 1) * size;
  const shown = rows.slice(start, start + size);
  return {
    rows: shown,
    page: current,
    pages,
    first: total === 0 ? 0 : start + 1,
    last: start + shown.length,
    total,
  };
}

// The demo job the page paints: the newest job named server.demo.name with op mandelbrot_tile, or null.
export function demoJob(state) {
  const name = state.server?.demo?.name;
  if (!name) return null;
  let newest = null;
  for (const job of state.jobs) {
    if (
      job.name === name
      && job.op === 'mandelbrot_tile'
      && (newest === null || job.id > newest.id)
    )
      newest = job;
  }
  return newest;
}

// The chart's columns for the `windowS` seconds up to the last completed second before `now`
// (or the newest second in the data, if later): {x, done, failed}; seconds without a triple are 0.
export function throughputSeries(throughput, now, windowS = LIMITS.throughputS) {
  const newest = throughput.length ? throughput[throughput.length - 1][0] : -Infinity;
  const end = Math.max(Math.floor(now) - 1, newest);
  const start = end - windowS + 1;
  const x = new Array(windowS);
  const done = new Array(windowS).fill(0);
  const failed = new Array(windowS).fill(0);
  for (let i = 0; i < windowS; i += 1) x[i] = start + i;
  for (const [second, d, f] of throughput) {
    const i = second - start;
    if (i >= 0 && i < windowS) {
      done[i] = d;
      failed[i] = f;
    }
  }
  return { x, done, failed };
}
