// What each table column and list line shows: the jobs, workers and history tables, results and events.
import {
  formatAgo,
  formatClock,
  formatCount,
  formatDateTime,
  formatDuration,
  formatMs,
  formatRate,
} from './format.js';
import { agentLabel, dashboardLink, shortId, workerKey, workerLabel } from './model.js';
import { strings } from './strings.js';

const withTitle = (cell, _row, value, title) => {
  cell.textContent = value;
  cell.title = title;
};

// A state's name in the page's language (strings[names]: jobStates, workerStates), read when painted.
const stateCell = (names) => (cell, _row, value) => {
  cell.textContent = strings[names][value] ?? value;
  cell.dataset.state = value;
};

function paintBar(cell, { done, failed, total }) {
  let bar = cell.firstElementChild;
  if (!bar) {
    bar = document.createElement('div');
    bar.className = 'bar';
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.append(document.createElement('span'), document.createElement('span'));
    bar.children[0].className = 'bar-done';
    bar.children[1].className = 'bar-failed';
    cell.append(bar);
  }
  const share = (n) => (total > 0 ? `${Math.min(100, (100 * n) / total)}%` : '0%');
  bar.children[0].style.width = share(done);
  bar.children[1].style.width = share(failed);
  bar.setAttribute('aria-valuemax', String(total));
  bar.setAttribute('aria-valuenow', String(done));
  bar.setAttribute('aria-valuetext', strings.progressLabel(done, total));
}

export const jobsTable = {
  key: (job) => job.id,
  attrs: (job) => ({
    'data-job-id': String(job.id),
    'data-done': String(job.done),
    'data-total': String(job.total),
    'data-state': job.state,
  }),
  empty: () => strings.jobsNone,
  columns: [
    { className: 'num', value: (job) => String(job.id) },
    {
      className: 'clip',
      value: (job) => job.name ?? '',
      paint: (cell, job, value) => withTitle(cell, job, value, value),
    },
    { className: 'clip', value: (job) => job.op },
    { className: 'state', value: (job) => job.state, paint: stateCell('jobStates') },
    {
      className: 'progress',
      value: (job) => `${job.done}/${job.failed}/${job.total}`,
      paint: paintBar,
    },
    { className: 'num', value: (job) => `${formatCount(job.done)} / ${formatCount(job.total)}` },
    { className: 'num', value: (job) => formatCount(job.failed) },
    { className: 'num', value: (job) => formatRate(job.rate) },
    {
      className: 'num',
      value: (job) => (job.state === 'running' ? formatDuration(job.eta_s) : strings.none),
    },
  ],
};

// context: {now}
export const workersTable = {
  key: (row) => row.id,
  attrs: (row) => ({ 'data-worker-id': String(row.id), 'data-state': row.state }),
  empty: ({ filtered }) => (filtered ? strings.workersNoMatch : strings.workersNone),
  columns: [
    { className: 'num', value: (row) => String(row.id) },
    {
      className: 'clip',
      value: (row) => workerLabel(row),
      paint: (cell, row, value) => withTitle(cell, row, value, row.agent ?? value),
    },
    { className: 'clip mono', value: (row) => row.address ?? strings.none },
    {
      className: 'num',
      value: (row, { now }) => formatDuration(now - row.connected_at),
      paint: (cell, row, value) => withTitle(cell, row, value, formatDateTime(row.connected_at)),
    },
    { className: 'state', value: (row) => row.state, paint: stateCell('workerStates') },
    {
      className: 'num',
      value: (row) => `${formatCount(row.in_flight)} / ${formatCount(row.concurrency)}`,
    },
    { className: 'num', value: (row) => formatCount(row.done) },
    { className: 'num', value: (row) => formatCount(row.failures) },
    { className: 'num', value: (row) => formatMs(row.mean_ms) },
    { className: 'num', value: (row) => formatMs(row.speed_ms) },
  ],
};

// In a grid of coordinators: the workers table with a Coordinator column after the id, and the other
// coordinators' workers among the rows. context: {now, filtered, here: this coordinator's id}
const coordinatorColumn = {
  className: 'clip mono',
  value: (row, { here }) =>
    row.coordinator === undefined || row.coordinator === null
      ? strings.coordinatorThis(shortId(here))
      : shortId(row.coordinator),
  paint: (cell, row, value, { here }) =>
    withTitle(cell, row, value, String(row.coordinator ?? here ?? '')),
};

export const gridWorkersTable = {
  ...workersTable,
  key: workerKey,
  attrs: (row) => ({
    ...workersTable.attrs(row),
    'data-coordinator': String(row.coordinator ?? ''),
  }),
  columns: [workersTable.columns[0], coordinatorColumn, ...workersTable.columns.slice(1)],
};

function paintLink(cell, row, value) {
  const href = dashboardLink(row.url);
  if (href === null) {
    cell.textContent = value;
    cell.title = value;
    return;
  }
  const link = document.createElement('a');
  link.href = href;
  link.textContent = value;
  link.title = strings.coordinatorOpen(value);
  cell.replaceChildren(link);
}

// Every live coordinator of the grid (CoordinatorRow). context: {now}
export const coordinatorsTable = {
  key: (row) => row.id,
  attrs: (row) => ({ 'data-coordinator': String(row.id), 'data-this': String(Boolean(row.this)) }),
  empty: () => strings.coordinatorsNone,
  columns: [
    {
      className: 'clip mono',
      value: (row) => (row.this ? strings.coordinatorThis(shortId(row.id)) : shortId(row.id)),
      paint: (cell, row, value) => withTitle(cell, row, value, String(row.id)),
    },
    { className: 'clip mono', value: (row) => row.url ?? strings.none, paint: paintLink },
    { className: 'num', value: (row) => formatCount(row.workers) },
    { className: 'num', value: (row) => formatCount(row.busy) },
    { className: 'num', value: (row) => formatRate(row.rate) },
    { className: 'num', value: (row) => formatCount(row.results) },
    { className: 'num', value: (row) => formatCount(row.failed) },
    {
      className: 'num',
      value: (row, { now }) =>
        row.started_at ? formatDuration(now - row.started_at) : strings.none,
      paint: (cell, row, value) =>
        withTitle(cell, row, value, row.started_at ? formatDateTime(row.started_at) : ''),
    },
    {
      className: 'clip',
      value: (row) => (row.version ? strings.version(row.version) : strings.none),
    },
  ],
};

// context: {now}
export const historyTable = {
  key: (row) => row.key,
  attrs: (row) => ({
    'data-key': String(row.key),
    'data-connected': String(Boolean(row.connected)),
  }),
  empty: () => strings.historyNone,
  columns: [
    {
      className: 'mono',
      value: (row) => row.key ?? strings.none,
      paint: (cell, row, value) => withTitle(cell, row, value, value),
    },
    {
      className: 'clip',
      value: (row) => agentLabel(row.kind, row),
      paint: (cell, row, value) => withTitle(cell, row, value, value),
    },
    {
      className: 'num',
      value: (row, { now }) => formatAgo(row.first_seen, now),
      paint: (cell, row, value) => withTitle(cell, row, value, formatDateTime(row.first_seen)),
    },
    {
      className: 'num',
      value: (row, { now }) => formatAgo(row.last_seen, now),
      paint: (cell, row, value) => withTitle(cell, row, value, formatDateTime(row.last_seen)),
    },
    { className: 'num', value: (row) => formatCount(row.done) },
    { className: 'num', value: (row) => formatCount(row.failures) },
    { className: 'num', value: (row) => formatMs(row.mean_ms) },
    {
      className: 'state',
      value: (row) => (row.connected ? strings.yes : strings.no),
      paint: (cell, row, value) => {
        cell.textContent = value;
        cell.dataset.state = row.connected ? 'connected' : 'gone';
      },
    },
  ],
};

function span(className, text) {
  const element = document.createElement('span');
  element.className = className;
  element.textContent = text;
  return element;
}

function timeOf(at) {
  const time = document.createElement('time');
  time.textContent = formatClock(at);
  time.dateTime = new Date(at * 1000).toISOString();
  return time;
}

// ResultRows, oldest first -> <li>s, newest first.
export function resultItems(results) {
  return results
    .slice()
    .reverse()
    .map((row) => {
      const item = document.createElement('li');
      item.dataset.taskId = String(row.task_id);
      const what = strings.resultLine(
        row.task_id,
        row.job_id ?? null,
        row.op,
        row.worker_id,
        formatMs(row.duration_ms),
      );
      const result = span('result mono', row.result ?? '');
      result.title = row.result ?? '';
      item.append(timeOf(row.at), span('what', what), result);
      return item;
    });
}

// EventRows, oldest first -> <li>s, newest first.
export function eventItems(events) {
  return events
    .slice()
    .reverse()
    .map((row) => {
      const item = document.createElement('li');
      item.dataset.kind = row.kind;
      item.dataset.workerId = String(row.worker_id);
      item.append(
        timeOf(row.at),
        span('kind', strings.eventKinds[row.kind] ?? row.kind),
        span('who', `#${row.worker_id}`),
        span('label', agentLabel(row.worker_kind, row)),
        span('mono addr', row.address ?? ''),
      );
      return item;
    });
}
