// Checks the dashboard's grid of coordinators (serve --redis) in web/js/dashboard/model.js and views.js against
// docs/dashboard.md, replaying tests/fixtures/dashboard_feed_grid.json.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

class FakeElement {
  constructor(tagName) {
    this.tagName = tagName.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.style = {};
    this.className = '';
    this.title = '';
    this.text = '';
  }

  get textContent() {
    return this.text || this.children.map((child) => child.textContent).join('');
  }

  set textContent(value) {
    this.text = String(value);
    this.children = [];
  }

  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }

  append(...nodes) {
    this.children.push(...nodes);
  }

  replaceChildren(...nodes) {
    this.text = '';
    this.children = nodes;
  }
}

globalThis.document = { createElement: (tag) => new FakeElement(tag) };

const {
  applyFrame,
  dashboardLink,
  filterWorkers,
  gridWorkers,
  initialState,
  shortId,
  summary,
  unlistedWorkers,
  workerKey,
} = await import('../../src/browsergrid/web/js/dashboard/model.js');
const { RowTable } = await import('../../src/browsergrid/web/js/dashboard/table.js');
const { coordinatorsTable, gridWorkersTable } = await import(
  '../../src/browsergrid/web/js/dashboard/views.js'
);

const load = (name) =>
  JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')).frames;
const frames = load('dashboard_feed_grid.json');
const [snapshot, update1, update2, update3, update4] = frames;
const [local] = load('dashboard_feed.json');
const [A, B, C] = snapshot.grid.coordinators.map((row) => row.id);
const replay = (list, state = initialState()) => list.reduce(applyFrame, state);
const keys = (rows) => rows.map((row) => workerKey(row));

const WORKER_FIELDS = [
  'id',
  'key',
  'kind',
  'browser',
  'os',
  'agent',
  'address',
  'connected_at',
  'state',
  'in_flight',
  'concurrency',
  'done',
  'failures',
  'lifetime_done',
  'mean_ms',
  'speed_ms',
];

test('the grid fixture: the snapshot of dashboard_feed.json plus `grid`, every row with every field', () => {
  assert.deepEqual(Object.keys(snapshot).sort(), [...Object.keys(local), 'grid'].sort());
  assert.deepEqual(Object.keys(snapshot.grid).sort(), ['coordinators', 'id', 'workers']);
  for (const row of snapshot.grid.coordinators) {
    assert.deepEqual(Object.keys(row).sort(), [
      'busy',
      'clients',
      'failed',
      'id',
      'listed',
      'rate',
      'results',
      'started_at',
      'this',
      'url',
      'version',
      'workers',
    ]);
  }
  for (const row of snapshot.grid.workers)
    assert.deepEqual(Object.keys(row).sort(), ['coordinator', ...WORKER_FIELDS].sort());
  assert.deepEqual(
    snapshot.grid.coordinators.filter((row) => row.this).map((row) => row.id),
    [snapshot.grid.id],
  );
  assert.deepEqual(Object.keys(update1.grid).sort(), ['coordinators', 'gone', 'workers']);
  assert.equal(update2.grid, undefined);
});

test('outside a grid the page holds no grid', () => {
  assert.equal(initialState().grid, null);
  assert.equal(replay([local]).grid, null);
  assert.equal(replay([snapshot, local]).grid, null); // a coordinator restarted without --redis
});

test("a snapshot holds the coordinators and the other coordinators' workers, by coordinator then id", () => {
  const { grid } = replay([snapshot]);
  assert.equal(grid.id, A);
  assert.deepEqual(grid.coordinators, snapshot.grid.coordinators);
  assert.deepEqual(keys(grid.workers), [`${B}/1`, `${B}/3`, `${C}/1`]);
});

test('an update replaces the coordinators, upserts workers by coordinator and id, and removes gone pairs', () => {
  const state = replay([snapshot, update1]);
  assert.deepEqual(state.grid.coordinators, update1.grid.coordinators);
  assert.deepEqual(keys(state.grid.workers), [`${B}/1`, `${B}/3`, `${B}/4`]);
  const merged = state.grid.workers[0];
  assert.deepEqual([merged.done, merged.mean_ms, merged.browser], [2216, 22.25, 'Firefox 133']);
  assert.equal(state.grid.id, A);
  assert.deepEqual(keys(state.workers), [1, 2, 3, 4]); // this coordinator's, untouched
});

test('an update without `grid` keeps the grid as it is, the same object', () => {
  const before = replay([snapshot, update1]);
  assert.equal(applyFrame(before, update2).grid, before.grid);
  const after = applyFrame(before, update3);
  assert.equal(after.grid.workers, before.grid.workers); // only the coordinators changed
  assert.deepEqual(
    after.grid.coordinators.map((row) => row.id),
    [A, B],
  );
  const last = applyFrame(after, update4);
  assert.deepEqual(last.grid.workers, []);
  assert.deepEqual(
    last.grid.coordinators.map((row) => row.id),
    [A],
  );
});

test('a partial row of a worker the page lacks is ignored; gone pairs of unknown workers too', () => {
  const state = applyFrame(replay([snapshot]), {
    type: 'update',
    now: 1,
    totals: snapshot.totals,
    grid: { workers: [{ coordinator: B, id: 99, done: 5 }], gone: [[C, 42], 'junk'] },
  });
  assert.deepEqual(keys(state.grid.workers), [`${B}/1`, `${B}/3`, `${C}/1`]);
});

test("the workers listed: this coordinator's, then the others'; how many are left out", () => {
  const state = replay([snapshot, update1]);
  const all = gridWorkers(state.workers, state.grid);
  assert.deepEqual(keys(all), [1, 2, 3, 4, `${B}/1`, `${B}/3`, `${B}/4`]);
  assert.equal(gridWorkers(state.workers, null), state.workers);
  assert.equal(
    summary(all).reduce((sum, group) => sum + group.count, 0),
    7,
  );
  assert.equal(unlistedWorkers(state.grid), 0);
  const big = {
    ...state.grid,
    coordinators: [
      { ...state.grid.coordinators[1], workers: 1300, listed: 250 },
      { ...state.grid.coordinators[0], workers: 900, listed: 900 },
    ],
  };
  assert.equal(unlistedWorkers(big), 1050); // this coordinator's rows are all listed
  assert.equal(unlistedWorkers(null), 0);
  assert.deepEqual(keys(filterWorkers(all, shortId(B))), [`${B}/1`, `${B}/3`, `${B}/4`]);
  assert.deepEqual(keys(filterWorkers(all, `${shortId(B)} python`)), [`${B}/3`]);
});

test("ids are shown short; a coordinator's dashboard is linked when its address names a host", () => {
  assert.equal(shortId(A), A.slice(0, 8));
  assert.equal(shortId(null), '');
  assert.equal(dashboardLink('http://10.0.0.6:8765'), 'http://10.0.0.6:8765/dashboard');
  assert.equal(dashboardLink('https://[::1]:8443'), 'https://[::1]:8443/dashboard');
  for (const url of [
    null,
    undefined,
    '',
    'http://0.0.0.0:8765',
    'http://[::]:8765',
    'javascript:alert(1)',
    'nonsense',
  ]) {
    assert.equal(dashboardLink(url), null, String(url));
  }
});

test('the workers table in a grid has a Coordinator column after the id', () => {
  const state = replay([snapshot]);
  const tbody = new FakeElement('tbody');
  new RowTable(tbody, gridWorkersTable).render(gridWorkers(state.workers, state.grid), {
    now: snapshot.now,
    here: A,
  });
  assert.equal(tbody.children.length, 7);
  const mine = tbody.children[0];
  const theirs = tbody.children[4];
  assert.equal(mine.children.length, 11);
  assert.deepEqual(
    mine.children.slice(0, 3).map((td) => td.textContent),
    ['1', `${shortId(A)} (this one)`, 'Chrome 131 on Linux'],
  );
  assert.equal(mine.children[1].title, A);
  assert.deepEqual(
    theirs.children.slice(0, 3).map((td) => td.textContent),
    ['1', shortId(B), 'Firefox 133 on Windows'],
  );
  assert.equal(theirs.children[1].title, B);
  assert.deepEqual(
    [theirs.attributes['data-worker-id'], theirs.attributes['data-coordinator']],
    ['1', B],
  );
  assert.equal(mine.attributes['data-coordinator'], '');
});

test("the coordinators table marks this one and links the others' dashboards", () => {
  const tbody = new FakeElement('tbody');
  new RowTable(tbody, coordinatorsTable).render(snapshot.grid.coordinators, { now: snapshot.now });
  const [a, b, c] = tbody.children;
  assert.deepEqual(
    a.children.map((td) => td.textContent),
    [
      `${shortId(A)} (this one)`,
      'http://10.0.0.5:8765',
      '4',
      '2',
      '12',
      '1,830',
      '2',
      '16 min',
      'v0.1.0',
    ],
  );
  assert.deepEqual([a.attributes['data-this'], b.attributes['data-this']], ['true', 'false']);
  const [link] = b.children[1].children;
  assert.deepEqual(
    [link.tagName, link.href, link.textContent],
    ['A', 'http://10.0.0.6:8765/dashboard', 'http://10.0.0.6:8765'],
  );
  assert.equal(c.children[1].textContent, '—'); // its address is not known yet
  assert.equal(c.children[1].children.length, 0);
});
