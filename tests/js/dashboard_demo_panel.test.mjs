// Drives web/js/dashboard/demo-panel.js with a fake canvas and a fake fetch: tiles stream in and are painted,
// a newer demo job replaces the old one (its stream aborted), a cut stream is retried, a missing job is not.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReconnectBackoff } from '../../src/browsergrid/web/js/backoff.js';

class FakeElement {
  constructor() {
    Object.assign(this, {
      children: [],
      style: {},
      dataset: {},
      textContent: '',
      title: '',
      className: '',
      hidden: false,
    });
  }

  append(...nodes) {
    this.children.push(...nodes);
  }

  replaceChildren(...nodes) {
    this.children = nodes;
  }
}

globalThis.document = { createElement: () => new FakeElement() };
globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);
const { DemoPanel } = await import('../../src/browsergrid/web/js/dashboard/demo-panel.js');

const DEMO = { name: 'demo', cols: 4, rows: 2, tile_width: 2, tile_height: 2, max_iter: 10 };
const job = (id, state = 'running', total = 8) => ({
  id,
  name: 'demo',
  op: 'mandelbrot_tile',
  state,
  total,
});
const done = (jobId, index, worker = 1) => ({
  status: 'done',
  task_id: 100 + index,
  job_id: jobId,
  index,
  worker_id: worker,
  worker_key: worker === 1 ? 'k-one' : null,
  result: { width: 2, height: 2, counts: [0, 3, 10, 7] },
  attempts: 1,
  duration_ms: 1,
  lease_ms: 2,
  finished_at: 1,
});
const failed = (jobId, index) => ({
  status: 'failed',
  task_id: 100 + index,
  job_id: jobId,
  index,
  reasons: ['boom'],
});
const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

// A fetch whose responses stay open until the test closes them; aborting errors the body as a browser does.
function fakeServer() {
  const streams = [];
  const fetchImpl = (url, { signal, headers }) => {
    const stream = { url, headers, aborted: false, status: 200 };
    streams.push(stream);
    const body = new ReadableStream({
      start(controller) {
        stream.send = (row) =>
          controller.enqueue(new TextEncoder().encode(`${JSON.stringify(row)}\n`));
        stream.sendRaw = (text) => controller.enqueue(new TextEncoder().encode(text));
        stream.close = () => controller.close();
        signal.addEventListener('abort', () => {
          stream.aborted = true;
          controller.error(new DOMException('aborted', 'AbortError'));
        });
      },
    });
    const missing = /\/jobs\/404\//.test(url);
    return Promise.resolve({ ok: !missing, status: missing ? 404 : 200, body });
  };
  return { streams, fetchImpl };
}

function panel(server, headers = undefined) {
  const painted = [];
  const canvas = new FakeElement();
  canvas.getContext = () => ({
    createImageData: (w, h) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) }),
    putImageData: (image, x, y) => painted.push({ x, y, rgba: [...image.data.slice(0, 4)] }),
    clearRect: () => painted.push('clear'),
  });
  const elements = {
    canvas,
    empty: new FakeElement(),
    status: new FakeElement(),
    legend: new FakeElement(),
  };
  const demo = new DemoPanel({
    elements,
    httpBase: 'http://grid.test',
    headers,
    fetchImpl: server.fetchImpl,
    labelOf: (id) => (id === 1 ? 'Chrome 131 on Linux' : null),
    backoff: new ReconnectBackoff({ initialMs: 5, random: () => 0.5 }),
  });
  return { demo, elements, painted };
}

test('tiles are painted where their index puts them as results stream in', async () => {
  const server = fakeServer();
  const { demo, elements, painted } = panel(server);
  demo.setDemo(DEMO);
  assert.deepEqual([elements.canvas.width, elements.canvas.height], [8, 4]);
  demo.show(null);
  assert.deepEqual(
    [elements.empty.textContent, elements.empty.hidden],
    ['No demo yet: press Run demo.', false],
  );
  demo.show(job(5));
  await tick();
  assert.equal(server.streams[0].url, 'http://grid.test/api/jobs/5/results?follow=true');
  server.streams[0].send(done(5, 0));
  server.streams[0].send(done(5, 5, 2));
  server.streams[0].send(failed(5, 7));
  server.streams[0].send(done(4, 1)); // another job's line: ignored
  const warn = console.warn;
  const warnings = [];
  console.warn = (line) => warnings.push(line);
  server.streams[0].sendRaw('not json\n'); // skipped; the stream goes on
  await tick();
  console.warn = warn;
  assert.equal(warnings.length, 1);
  assert.equal(demo.streamState, 'streaming');
  const tiles = painted.filter((entry) => entry !== 'clear');
  assert.deepEqual(
    tiles.map(({ x, y }) => [x, y]),
    [
      [0, 0],
      [2, 2],
      [6, 2],
    ],
  );
  assert.deepEqual(tiles[0].rgba.slice(3), [255]);
  assert.equal(elements.canvas.dataset.tiles, '2');
  assert.equal(elements.canvas.dataset.failedTiles, '1');
  assert.equal(elements.canvas.dataset.jobId, '5');
  assert.equal(elements.empty.hidden, true);
  assert.equal(elements.status.textContent, 'Job 5: 2 of 8 tiles');
  const legend = elements.legend.children.map((item) =>
    item.children.map((part) => part.textContent),
  );
  assert.deepEqual(legend, [
    ['', '1', '#1 Chrome 131 on Linux'],
    ['', '1', '#2'],
  ]);
  assert.match(elements.legend.children[0].children[0].style.background, /^hsl\(\d+ 75% 60%\)$/);
});

test('a newer demo job replaces the painted one and aborts its stream', async () => {
  const server = fakeServer();
  const { demo, elements } = panel(server);
  demo.setDemo(DEMO);
  demo.show(job(5));
  await tick();
  server.streams[0].send(done(5, 0));
  await tick();
  demo.show(job(5, 'running')); // the same job, changed: nothing restarts
  demo.show(job(9));
  await tick();
  assert.equal(server.streams[0].aborted, true);
  assert.equal(server.streams.length, 2);
  assert.equal(elements.canvas.dataset.jobId, '9');
  assert.equal(elements.canvas.dataset.tiles, '0');
  server.streams[1].send(done(9, 3));
  await tick();
  assert.equal(elements.canvas.dataset.tiles, '1');
});

test('a finished job arrives all at once and the stream ends: every tile is painted', async () => {
  const server = fakeServer();
  const { demo, elements } = panel(server);
  demo.setDemo(DEMO);
  demo.show(job(6, 'finished'));
  await tick();
  for (let i = 0; i < 8; i += 1) server.streams[0].send(done(6, i));
  server.streams[0].close();
  await tick(20);
  assert.equal(elements.canvas.dataset.tiles, '8');
  assert.equal(demo.streamState, 'complete');
  assert.equal(server.streams.length, 1);
});

test('a stream cut before the job ends is fetched again from the start', async () => {
  const server = fakeServer();
  const { demo, elements } = panel(server);
  const warn = console.warn;
  console.warn = () => {};
  try {
    demo.setDemo(DEMO);
    demo.show(job(7));
    await tick();
    server.streams[0].send(done(7, 0));
    server.streams[0].close();
    await tick(30);
    assert.equal(server.streams.length, 2);
    server.streams[1].send(done(7, 0));
    server.streams[1].send(done(7, 1));
    await tick();
    assert.equal(elements.canvas.dataset.tiles, '2'); // painted again from a clear canvas, not counted twice
  } finally {
    console.warn = warn;
    demo.stop();
  }
});

test('a job that is gone (404) is not asked for again; no demo on the server says so', async () => {
  const server = fakeServer();
  const { demo, elements } = panel(server);
  const warn = console.warn;
  console.warn = () => {};
  try {
    demo.setDemo(DEMO);
    demo.show(job(404));
    await tick(30);
    assert.equal(server.streams.length, 1);
    assert.equal(demo.streamState, 'gone');
    assert.equal(
      elements.status.textContent,
      'Job 404: 0 of 8 tiles · its results are no longer kept.',
    );
  } finally {
    console.warn = warn;
  }
  demo.setDemo(null);
  assert.equal(elements.empty.textContent, 'This coordinator offers no demo.');
  assert.equal(elements.canvas.dataset.jobId, '');
});

test('the results are fetched with the page token as a Bearer header', async () => {
  const server = fakeServer();
  const { demo } = panel(server, { Authorization: 'Bearer dash' });
  demo.setDemo(DEMO);
  demo.show(job(9));
  await tick();
  assert.deepEqual(server.streams[0].headers, {
    Authorization: 'Bearer dash',
    Accept: 'application/x-ndjson',
  });
  demo.stop();
});
