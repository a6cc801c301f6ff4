// Checks web/js/dashboard/table.js with the columns of views.js, on a small fake DOM that counts writes:
// a frame that changes nothing on the visible page writes nothing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const writes = { count: 0 };

class FakeElement {
  constructor(tagName) {
    this.tagName = tagName.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.style = {};
    this.className = '';
    this.title = '';
    this.disabled = false;
    this.text = '';
  }

  get textContent() {
    return this.text || this.children.map((child) => child.textContent).join('');
  }

  set textContent(value) {
    writes.count += 1;
    this.text = String(value);
    this.children = [];
  }

  get firstChild() {
    return this.children[0] ?? null;
  }

  get firstElementChild() {
    return this.children[0] ?? null;
  }

  setAttribute(name, value) {
    writes.count += 1;
    this.attributes[name] = String(value);
  }

  append(...nodes) {
    writes.count += 1;
    this.children.push(...nodes);
  }

  replaceChildren(...nodes) {
    writes.count += 1;
    this.children = nodes;
  }

  addEventListener(type, listener) {
    this[`on${type}`] = listener;
  }
}

globalThis.document = { createElement: (tag) => new FakeElement(tag) };

const { RowTable, Pager } = await import('../../src/browsergrid/web/js/dashboard/table.js');
const { jobsTable, workersTable } = await import('../../src/browsergrid/web/js/dashboard/views.js');
const { page } = await import('../../src/browsergrid/web/js/dashboard/model.js');

const {
  frames: [snapshot],
} = JSON.parse(readFileSync(new URL('../fixtures/dashboard_feed.json', import.meta.url), 'utf8'));
const NOW = snapshot.now;
const fleet = Array.from({ length: 1000 }, (_, i) => ({ ...snapshot.workers[0], id: i + 1 }));
const cellTexts = (tr) => tr.children.map((td) => td.textContent);

test('worker rows carry data-worker-id and show every column', () => {
  const tbody = new FakeElement('tbody');
  const table = new RowTable(tbody, workersTable);
  table.render(page(fleet, 1, 25).rows, { now: NOW });
  assert.equal(tbody.children.length, 25);
  const [tr] = tbody.children;
  assert.equal(tr.attributes['data-worker-id'], '1');
  assert.deepEqual(cellTexts(tr), [
    '1',
    'Chrome 131 on Linux',
    '127.0.0.1:51000',
    '1 min',
    'busy',
    '3 / 3',
    '120',
    '0',
    '35',
    '13',
  ]);
  assert.equal(tr.children[1].title, snapshot.workers[0].agent);
  assert.equal(tr.children[4].dataset.state, 'busy');
});

test('re-rendering an unchanged page writes nothing; one changed worker writes one cell', () => {
  const tbody = new FakeElement('tbody');
  const table = new RowTable(tbody, workersTable);
  table.render(page(fleet, 1, 25).rows, { now: NOW });
  writes.count = 0;
  const copy = fleet.map((row) => ({ ...row })); // new objects, same values: as after an update frame
  table.render(page(copy, 1, 25).rows, { now: NOW + 0.5 });
  assert.equal(writes.count, 0);
  copy[3] = { ...copy[3], done: 121 };
  table.render(page(copy, 1, 25).rows, { now: NOW + 1 });
  assert.equal(writes.count, 1);
  assert.equal(tbody.children[3].children[6].textContent, '121');
  writes.count = 0;
  copy[30] = { ...copy[30], done: 5000 }; // off the visible page
  table.render(page(copy, 1, 25).rows, { now: NOW + 1.5 });
  assert.equal(writes.count, 0);
});

test('another page replaces the rows; an empty list empties the table and shows its note', () => {
  const tbody = new FakeElement('tbody');
  const note = new FakeElement('p');
  const table = new RowTable(tbody, workersTable, note);
  table.render(page(fleet, 1, 25).rows, { now: NOW });
  const first = tbody.children[0];
  table.render(page(fleet, 40, 25).rows, { now: NOW });
  assert.deepEqual(tbody.children.map((tr) => tr.attributes['data-worker-id']).slice(0, 2), [
    '976',
    '977',
  ]);
  assert.ok(!tbody.children.includes(first));
  assert.equal(note.hidden, true);
  table.render([], { now: NOW, filtered: true });
  assert.equal(tbody.children.length, 0);
  assert.deepEqual([note.textContent, note.hidden], ['No worker matches the filter.', false]);
  table.render([], { now: NOW, filtered: false });
  assert.equal(note.textContent, 'No workers connected.');
  table.render(page(fleet, 1, 25).rows, { now: NOW });
  assert.deepEqual([tbody.children.length, note.textContent, note.hidden], [25, '', true]);
});

test('job rows carry data-job-id, data-done and data-total and draw a progress bar', () => {
  const tbody = new FakeElement('tbody');
  new RowTable(tbody, jobsTable).render(snapshot.jobs);
  const [running, finished] = tbody.children;
  assert.deepEqual(
    [
      running.attributes['data-job-id'],
      running.attributes['data-done'],
      running.attributes['data-total'],
    ],
    ['12', '44', '80'],
  );
  assert.deepEqual(
    cellTexts(running).filter((text) => text !== ''),
    ['12', 'demo', 'mandelbrot_tile', 'running', '44 / 80', '0', '8.5', '4 s'],
  );
  const bar = running.children[4].children[0];
  assert.equal(bar.children[0].style.width, '55%');
  assert.equal(bar.attributes['aria-valuenow'], '44');
  assert.equal(finished.children[4].children[0].children[1].style.width, '0.2%');
  assert.equal(finished.children[8].textContent, '—');
});

test('the pager shows the range and disables what leads nowhere', () => {
  const prev = new FakeElement('button');
  const next = new FakeElement('button');
  const range = new FakeElement('span');
  const asked = [];
  const pager = new Pager({ prev, next, range }, (n) => asked.push(n));
  pager.render(page(fleet, 1, 25));
  assert.equal(range.textContent, '1–25 of 1000');
  assert.deepEqual([prev.disabled, next.disabled], [true, false]);
  next.onclick();
  pager.render(page(fleet, 40, 25));
  assert.equal(range.textContent, '976–1000 of 1000');
  assert.deepEqual([prev.disabled, next.disabled], [false, true]);
  prev.onclick();
  assert.deepEqual(asked, [2, 39]);
  pager.render(page([], 1, 25));
  assert.equal(range.textContent, '0 of 0');
});

test('after the language changes, repaint() paints every cell again in the new language', async () => {
  const { setLanguage } = await import('../../src/browsergrid/web/js/dashboard/strings.js');
  const tbody = new FakeElement('tbody');
  const table = new RowTable(tbody, jobsTable);
  table.render(snapshot.jobs);
  try {
    setLanguage('es');
    table.render(snapshot.jobs);
    assert.equal(
      tbody.children[0].children[3].textContent,
      'running',
      'unchanged values are not painted again',
    );
    table.repaint();
    table.render(snapshot.jobs);
    const [running] = tbody.children;
    assert.deepEqual(
      cellTexts(running).filter((text) => text !== ''),
      ['12', 'demo', 'mandelbrot_tile', 'en curso', '44 / 80', '0', '8,5', '4 s'],
    );
    assert.equal(running.children[4].children[0].attributes['aria-valuetext'], '44 de 80 hechas');
  } finally {
    setLanguage('en');
  }
});
