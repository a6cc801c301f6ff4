// The dashboard page: applies the live feed's frames to the model and keeps the DOM in step (docs/dashboard.md).

import { pageLanguage, rememberLanguage } from '../i18n.js';
import { authHeaders, tokenFrom, withToken } from '../token.js';
import { createThroughputChart } from './chart.js';
import { DemoPanel } from './demo-panel.js';
import { endpoints, LiveFeed } from './feed.js';
import { formatCount, formatDecimal, formatDuration, formatRate } from './format.js';
import {
  applyFrame,
  demoJob,
  filterWorkers,
  gridWorkers,
  initialState,
  page,
  summary,
  summaryText,
  throughputSeries,
  unlistedWorkers,
  workerLabel,
} from './model.js';
import { setLanguage, strings } from './strings.js';
import { Pager, RowTable } from './table.js';
import {
  coordinatorsTable,
  eventItems,
  gridWorkersTable,
  historyTable,
  jobsTable,
  resultItems,
  workersTable,
} from './views.js';

const PAGE_SIZE = 25; // connected workers per page
const HISTORY_PAGE_SIZE = 10;
const TOTALS = {
  workers: formatCount,
  busy: formatCount,
  rate: formatRate,
  queued: formatCount,
  leased: formatCount,
  done: formatCount,
  failed: formatCount,
  clients: formatCount,
  viewers: formatCount,
};

const $ = (id) => document.getElementById(id);

// The storage the language switch is remembered in, or null where the browser refuses storage (reading
// localStorage itself throws then).
function storage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

// English or Spanish: ?lang=, else the switch's remembered choice, else the browser's languages (i18n.js).
let language = pageLanguage({ location, navigator, localStorage: storage() });
setLanguage(language);

// Fixed texts of dashboard.html from strings.js (data-s: text, data-s-label: aria-label, data-s-placeholder,
// data-s-empty: what an empty list shows), and which button of the language switch is pressed.
function applyStrings(root) {
  document.documentElement.lang = language;
  for (const el of root.querySelectorAll('[data-s]')) el.textContent = strings[el.dataset.s];
  for (const el of root.querySelectorAll('[data-s-label]'))
    el.setAttribute('aria-label', strings[el.dataset.sLabel]);
  for (const el of root.querySelectorAll('[data-s-placeholder]'))
    el.placeholder = strings[el.dataset.sPlaceholder];
  for (const el of root.querySelectorAll('[data-s-empty]'))
    el.dataset.emptyText = strings[el.dataset.sEmpty];
  for (const button of root.querySelectorAll('button[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === language));
    button.title = strings.languageNames[button.dataset.lang];
  }
}

applyStrings(document);

const { live: liveUrl, http: httpBase } = endpoints(location);
// /dashboard?token=TOKEN: the dashboard token (or the admin token, which also runs the demo).
const token = tokenFrom(location.search);
let state = initialState();
let frames = 0;
let snapshots = 0;
let skewS = 0; // the coordinator's clock minus ours, from the last frame
let connection = 'connecting'; // connecting | live | reconnecting
let failedOnce = false; // a connection closed or failed: later attempts are reconnecting
let accessRefused = false; // the feed is refused for want of a token
let retryS = null; // seconds to the next attempt to connect, while reconnecting
let demoNote = null; // what the last press of Run demo came to: {state, text() in the page's language}
const ui = { filter: '', workersPage: 1, historyPage: 1 };
const last = {}; // what each section was last drawn from

window.dashboard = {
  get state() {
    return state;
  },
  get frames() {
    return frames;
  },
  get snapshots() {
    return snapshots;
  },
  get connection() {
    return connection;
  },
};

// The coordinator's clock now (it stands still while the feed is down).
function serverNow() {
  if (connection !== 'live' && state.now !== null) return state.now;
  return Date.now() / 1000 + skewS;
}

const view = {
  main: $('dashboard'),
  conn: $('conn-state'),
  version: $('server-version'),
  uptime: $('server-uptime'),
  store: $('store-banner'),
  summary: $('workers-summary'),
  filter: $('workers-filter'),
  results: $('results-list'),
  events: $('events-list'),
  dropped: $('events-dropped'),
  demoButton: $('demo-button'),
  demoMessage: $('demo-message'),
  coordinators: $('coordinators-panel'),
  coordinatorsCount: $('coordinators-count'),
  workersTable: $('workers-table'),
};
const jobsView = new RowTable($('jobs-table').tBodies[0], jobsTable, $('jobs-empty'));
let workersView = new RowTable(view.workersTable.tBodies[0], workersTable, $('workers-empty'));
const coordinatorsView = new RowTable(
  $('coordinators-table').tBodies[0],
  coordinatorsTable,
  $('coordinators-empty'),
);
const historyView = new RowTable($('history-table').tBodies[0], historyTable, $('history-empty'));
const workersPager = new Pager(
  { prev: $('workers-prev'), next: $('workers-next'), range: $('workers-range') },
  (n) => {
    ui.workersPage = n;
    render();
  },
);
const historyPager = new Pager(
  { prev: $('history-prev'), next: $('history-next'), range: $('history-range') },
  (n) => {
    ui.historyPage = n;
    render();
  },
);
const demo = new DemoPanel({
  elements: {
    canvas: $('demo-canvas'),
    empty: $('demo-empty'),
    status: $('demo-status'),
    legend: $('demo-legend'),
  },
  httpBase,
  headers: authHeaders(token),
  labelOf: (id) => {
    const row = state.workers.find((worker) => worker.id === id);
    return row ? workerLabel(row) : null;
  },
});
let chart = null;
createThroughputChart($('throughput-chart')).then((created) => {
  chart = created;
  render();
});

const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};

function renderHeader(now) {
  const { server, totals } = state;
  setText(view.version, server ? strings.version(server.version) : '');
  setText(
    view.uptime,
    server?.started_at ? strings.uptime(formatDuration(now - server.started_at)) : '',
  );
  const access = accessRefused ? strings.feedNeedsToken(token !== null) : null;
  const problem =
    totals?.store && totals.store !== 'ok' ? strings.storeProblem(totals.store) : access;
  view.store.hidden = problem === null;
  setText(view.store, problem ?? '');
  view.store.title = view.store.textContent;
  const connText = {
    connecting: strings.connConnecting,
    live: strings.connLive,
    reconnecting: strings.connReconnecting,
  };
  setText(view.conn, connText[connection]);
  const retry =
    connection === 'reconnecting' && retryS !== null
      ? strings.connRetryIn(formatDecimal(retryS))
      : '';
  if (view.conn.title !== retry) view.conn.title = retry;
  view.conn.dataset.state = connection;
  view.main.dataset.live = String(connection === 'live');
}

function renderTotals() {
  if (state.totals === last.totals) return;
  last.totals = state.totals;
  for (const [field, format] of Object.entries(TOTALS))
    setText($(`total-${field}`), format(state.totals?.[field]));
  $('total-failed').dataset.nonzero = String((state.totals?.failed ?? 0) > 0);
}

function renderChart(now) {
  const second = Math.floor(now);
  if (!chart || (state.throughput === last.throughput && second === last.second)) return;
  last.throughput = state.throughput;
  last.second = second;
  chart.update(throughputSeries(state.throughput, now));
}

// In a grid, the workers table gets a Coordinator column after the id (and loses it again outside one).
function setGridColumn(on) {
  const table = view.workersTable;
  if ((table.dataset.grid === 'true') === on) return;
  table.dataset.grid = String(on);
  if (on) {
    const col = document.createElement('col');
    col.className = 'c-coord';
    table.querySelector('colgroup').children[0].after(col);
    const th = document.createElement('th');
    th.scope = 'col';
    th.className = 'coord';
    th.dataset.s = 'workerCoordinator';
    th.textContent = strings.workerCoordinator;
    table.tHead.rows[0].cells[0].after(th);
  } else {
    table.querySelector('col.c-coord')?.remove();
    table.querySelector('th.coord')?.remove();
  }
  workersView = new RowTable(
    table.tBodies[0],
    on ? gridWorkersTable : workersTable,
    $('workers-empty'),
  );
}

function renderWorkers(now) {
  const { grid } = state;
  setGridColumn(grid !== null);
  const remote = grid?.workers;
  if (state.workers !== last.workers || remote !== last.remote || ui.filter !== last.filter) {
    const all = gridWorkers(state.workers, grid);
    if (state.workers !== last.workers || remote !== last.remote) last.groups = summary(all);
    last.workers = state.workers;
    last.remote = remote;
    last.filter = ui.filter;
    last.filtered = filterWorkers(all, ui.filter);
  }
  const unlisted = unlistedWorkers(grid);
  if (last.summarised !== last.groups || last.unlisted !== unlisted) {
    last.summarised = last.groups;
    last.unlisted = unlisted;
    const more = unlisted > 0 ? ` · ${strings.workersUnlisted(formatCount(unlisted))}` : '';
    setText(view.summary, summaryText(last.groups) + more);
    view.summary.title = summaryText(last.groups, Infinity) + more;
  }
  const shown = page(last.filtered, ui.workersPage, PAGE_SIZE);
  ui.workersPage = shown.page;
  workersView.render(shown.rows, {
    now,
    filtered: ui.filter.trim() !== '',
    here: grid?.id ?? null,
  });
  workersPager.render(shown);
}

function renderCoordinators(now) {
  const { grid } = state;
  if (view.main.dataset.grid !== String(grid !== null)) {
    view.main.dataset.grid = String(grid !== null);
    view.coordinators.hidden = grid === null;
  }
  if (grid === null) return;
  setText(view.coordinatorsCount, strings.coordinatorsCount(grid.coordinators.length));
  coordinatorsView.render(grid.coordinators, { now });
}

function renderLists() {
  if (state.results !== last.results) {
    last.results = state.results;
    view.results.replaceChildren(...resultItems(state.results));
  }
  if (state.events !== last.events) {
    last.events = state.events;
    view.events.replaceChildren(...eventItems(state.events));
  }
  setText(
    view.dropped,
    state.eventsDropped > 0 ? strings.eventsDropped(formatCount(state.eventsDropped)) : '',
  );
}

function renderHistory(now) {
  const shown = page(state.history, ui.historyPage, HISTORY_PAGE_SIZE);
  ui.historyPage = shown.page;
  historyView.render(shown.rows, { now });
  historyPager.render(shown);
}

function renderDemoNote() {
  const state = demoNote?.state ?? '';
  if (view.demoMessage.dataset.state !== state) view.demoMessage.dataset.state = state;
  setText(view.demoMessage, demoNote?.text() ?? '');
}

function render() {
  const now = serverNow();
  renderHeader(now);
  renderDemoNote();
  renderTotals();
  renderCoordinators(now);
  renderChart(now);
  if (state.server) {
    demo.setDemo(state.server.demo ?? null);
    demo.show(demoJob(state));
  }
  if (state.jobs !== last.jobs) {
    last.jobs = state.jobs;
    jobsView.render(state.jobs);
  }
  renderWorkers(now);
  renderLists();
  renderHistory(now);
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
  });
}

function onFrame(frame) {
  frames += 1;
  state = applyFrame(state, frame);
  if (typeof frame.now === 'number') skewS = frame.now - Date.now() / 1000;
  if (frame.type === 'snapshot') {
    snapshots += 1;
    accessRefused = false;
    retryS = null;
    if (connection !== 'live') {
      connection = 'live';
      demo.reconnected();
    }
  }
  scheduleRender();
}

// The feed closed before it opened: a browser cannot tell a refusal (HTTP 401) from anything else, the API can.
async function checkAccess() {
  try {
    const response = await fetch(`${httpBase}/api/workers`, { headers: authHeaders(token) });
    accessRefused = response.status === 401;
  } catch {
    accessRefused = false; // the coordinator is down: the connection state says so
  }
  scheduleRender();
}

function onStatus(status, { retryMs, opened }) {
  if (status === 'closed') {
    if (!opened) checkAccess();
    failedOnce = true;
    connection = 'reconnecting';
    retryS = retryMs / 1000;
  } else if (status === 'connecting') {
    connection = failedOnce ? 'reconnecting' : 'connecting';
    retryS = null;
  } // 'open': live once the snapshot is in
  scheduleRender();
}

function showDemoNote(state, text) {
  demoNote = { state, text };
  renderDemoNote();
}

async function runDemo() {
  view.demoButton.disabled = true;
  showDemoNote('pending', () => strings.demoSubmitting);
  try {
    const response = await fetch(`${httpBase}/api/demo`, {
      method: 'POST',
      headers: authHeaders(token),
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      showDemoNote('error', () => strings.demoNeedsToken(token !== null));
    } else if (response.ok) {
      showDemoNote('ok', () => strings.demoSubmitted(body?.job_id, body?.count));
    } else {
      const detail = body?.detail ?? null; // the coordinator's words (English, as its console)
      const said = detail === null || typeof detail === 'string' ? detail : JSON.stringify(detail);
      showDemoNote('error', () => strings.demoFailed(said ?? strings.demoHttp(response.status)));
    }
  } catch {
    showDemoNote('error', () => strings.demoUnreachable);
  } finally {
    view.demoButton.disabled = false;
  }
}

// The header's switch: every text again in `lang`, at once; remembered for the next visit (and the worker page).
function switchLanguage(lang) {
  if (lang === language) return;
  rememberLanguage(storage(), lang);
  // ?lang= wins over the remembered choice: an address that has one follows the switch, so a reload keeps it.
  const url = new URL(location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.set('lang', lang);
    history.replaceState(history.state, '', url);
  }
  language = lang;
  setLanguage(lang);
  applyStrings(document);
  for (const table of [jobsView, workersView, coordinatorsView, historyView]) table.repaint();
  chart?.relabel();
  demo.relabel();
  for (const key of Object.keys(last)) delete last[key]; // every section is drawn again
  render();
}

view.demoButton.addEventListener('click', runDemo);
for (const button of document.querySelectorAll('button[data-lang]')) {
  button.addEventListener('click', () => switchLanguage(button.dataset.lang));
}
view.filter.addEventListener('input', () => {
  ui.filter = view.filter.value;
  ui.workersPage = 1;
  render();
});

render();
setInterval(render, 1000); // relative times and the chart's time axis move on between frames
new LiveFeed(withToken(liveUrl, token), { onFrame, onStatus }).start();
