// Drives web/js/page.js in Node with fake DOM, WebSocket and Web Worker globals: hello, tasks and cancel.
// (tests/e2e/test_browser.py runs the same page in real headless Chromium.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { workerKeyFor } from '../../src/browsergrid/web/js/identity.js';
import { memoryStorage, refusing } from './_storage.mjs';

class FakeElement {
  constructor() {
    this.textContent = '';
    this.dataset = {};
    this.children = [];
    this.attributes = {};
    this.listeners = {};
    this.scrollHeight = 0;
    this.scrollTop = 0;
    this.clientHeight = 0;
    this.hidden = false;
    this.value = '';
    this.checked = false;
  }

  append(...items) {
    this.children.push(...items);
  }

  replaceChildren(...items) {
    this.children = items;
  }

  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }

  addEventListener(type, listener) {
    this.listeners[type] ??= [];
    this.listeners[type].push(listener);
  }

  // A user's change: `value` (a select's) or `checked` (a checkbox's), then its listeners run.
  change(values) {
    Object.assign(this, values);
    for (const listener of this.listeners.change ?? []) listener();
  }

  click() {
    for (const listener of this.listeners.click ?? []) listener();
  }

  get childElementCount() {
    return this.children.length;
  }

  get firstElementChild() {
    return { remove: () => this.children.shift() };
  }
}

class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    page.sockets.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen();
  }

  receive(message) {
    this.onmessage({ data: JSON.stringify(message) });
  }
}

class FakeWorker {
  constructor() {
    this.posted = [];
    page.workers.push(this);
  }

  postMessage(message) {
    if (message.setup) {
      // answered as a compute worker does, once it has imported the ops module
      this.setup = message.setup;
      queueMicrotask(() => this.onmessage({ data: { setup: page.setupAnswer } }));
    } else if (message.share !== undefined) {
      this.share = message.share;
    } else {
      this.posted.push(message);
    }
  }

  terminate() {
    this.terminated = true;
  }

  // The compute worker's answer to the last task posted to it.
  answer(outcome) {
    const { task_id } = this.posted.at(-1);
    this.onmessage({ data: { task_id, ...outcome } });
  }
}

const page = { sockets: [], workers: [], logs: [], warnings: [] };
let loaded = 0;
console.log = (line) => page.logs.push(String(line)); // the page logs its lines to the console too
console.warn = (line) => page.warnings.push(String(line));

// /page-config.json as `fetch` answers it: `config` (null: 404, undefined: the fetch fails).
function serveConfig(config) {
  globalThis.fetch = async (url) => {
    assert.equal(String(url), 'http://grid.test/page-config.json');
    if (config === undefined) throw new TypeError('Failed to fetch');
    return { ok: config !== null, status: config === null ? 404 : 200, json: async () => config };
  };
}

// A fresh page.js (a new module instance) with `workers` compute workers, connected.
// `config`: what /page-config.json says (default: no Pyodide, no ops module); `setupAnswer`:
// what the compute workers answer to the setup message.
async function openPage(
  workers,
  extra = '',
  { open = true, config = { python: null, ops_module: null }, setupAnswer, battery } = {},
) {
  page.sockets = [];
  page.workers = [];
  page.logs = [];
  page.warnings = [];
  page.setupAnswer = setupAnswer ?? { ops: [], skipped: [], error: null };
  serveConfig(config);
  const elements = new Map();
  globalThis.window = globalThis;
  globalThis.location = {
    search: `?workers=${workers}&server=ws://grid.test/ws${extra}`,
    protocol: 'http:',
    host: 'grid.test',
  };
  Object.defineProperty(globalThis, 'navigator', {
    value: {
      userAgent: 'FakeBrowser/1.0',
      hardwareConcurrency: 8,
      ...(battery ? { getBattery: async () => battery } : {}),
    },
    configurable: true,
    writable: true,
  });
  globalThis.document = {
    getElementById(id) {
      if (!elements.has(id)) elements.set(id, new FakeElement());
      return elements.get(id);
    },
    createElement: () => new FakeElement(),
    querySelectorAll: () => [],
    addEventListener(type, listener) {
      page.documentListeners[type] ??= [];
      page.documentListeners[type].push(listener);
    },
    documentElement: new FakeElement(),
    visibilityState: 'visible',
    baseURI: 'http://grid.test/?workers=1',
  };
  page.documentListeners = {};
  globalThis.addEventListener = () => {};
  globalThis.WebSocket = FakeWebSocket;
  globalThis.Worker = FakeWorker;
  loaded += 1;
  await import(`../../src/browsergrid/web/js/page.js?instance=${loaded}`);
  // it connects once it knows its ops and its worker keys (WebCrypto works off the main thread: give it time)
  const until = Date.now() + 5000;
  while (page.sockets.length === 0 && Date.now() < until) {
    await new Promise((resolve) => {
      setImmediate(resolve);
    });
  }
  const ws = page.sockets[0];
  if (open) ws.open();
  return { ws, workers: page.workers, status: globalThis.browsergrid, elements };
}

function task(task_id, args = { initial: 2, factor: 1, times: 3 }) {
  return { type: 'task', op: 'repeat_multiply', task_id, ...args };
}

const results = (ws) => ws.sent.filter((m) => m.type === 'result' || m.type === 'error');

test('hello asks for 16 waiting tasks per compute worker (the coordinator trims that to its work buffer)', async () => {
  const { ws, workers } = await openPage(3);
  assert.equal(workers.length, 3);
  const [hello] = ws.sent;
  assert.equal(hello.type, 'hello');
  assert.equal(hello.protocol, 1);
  assert.equal(hello.agent, 'FakeBrowser/1.0');
  assert.equal(hello.concurrency, 3);
  assert.equal(hello.prefetch, 48);
  assert.ok(hello.ops.includes('repeat_multiply'));
});

test('a tasks frame queues every task; each result goes back in its own result frame', async () => {
  const { ws, workers, status } = await openPage(2);
  ws.receive({ type: 'welcome', protocol: 1, worker_id: 7, server: 'test', limits: {} });
  ws.receive({ type: 'tasks', tasks: [task(1), task('t-2'), task(3)] });
  assert.deepEqual(
    workers.map((w) => w.posted.map((m) => m.task_id)),
    [[1], ['t-2']],
  );
  assert.deepEqual(workers[0].posted[0], {
    task_id: 1,
    op: 'repeat_multiply',
    args: { initial: 2, factor: 1, times: 3 },
    blobs: { base: 'http://grid.test', key: null }, // this welcome has no blob_key (an older coordinator)
  });
  assert.equal(status.state, 'working');
  workers[0].answer({ result: 2, duration_ms: 1.5 });
  assert.deepEqual(
    workers[0].posted.map((m) => m.task_id),
    [1, 3],
  ); // the waiting task starts at once
  workers[1].answer({ result: 4, duration_ms: 2 });
  workers[0].answer({ error: 'RangeError: nope' });
  assert.deepEqual(results(ws), [
    { type: 'result', task_id: 1, result: 2, duration_ms: 1.5, agent: 'FakeBrowser/1.0' },
    { type: 'result', task_id: 't-2', result: 4, duration_ms: 2, agent: 'FakeBrowser/1.0' },
    { type: 'error', task_id: 3, message: 'RangeError: nope' },
  ]);
  assert.equal(status.tasksDone, 2);
  assert.equal(status.state, 'connected');
});

test('cancel drops a task that has not started: it never runs and gets no result', async () => {
  const { ws, workers, status } = await openPage(1);
  ws.receive({ type: 'tasks', tasks: [task(1), task(2), task(3)] });
  ws.receive({ type: 'cancel', task_id: 2 });
  assert.ok(page.logs.some((line) => line.startsWith('Dropped cancelled task task_id=2')));
  workers[0].answer({ result: 2, duration_ms: 1 });
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(
    workers[0].posted.map((m) => m.task_id),
    [1, 3],
  );
  assert.deepEqual(
    results(ws).map((m) => m.task_id),
    [1, 3],
  );
  assert.equal(status.tasksDone, 2);
});

test('cancel of a running task: it finishes, its result is neither sent nor counted', async () => {
  const { ws, workers, status } = await openPage(1);
  ws.receive(task(1));
  ws.receive(task(2));
  ws.receive({ type: 'cancel', task_id: 1 });
  assert.deepEqual(
    workers[0].posted.map((m) => m.task_id),
    [1],
  ); // it runs on
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.ok(page.logs.some((line) => line.startsWith('Dropped cancelled task task_id=1')));
  assert.deepEqual(results(ws), []);
  assert.equal(status.tasksDone, 0);
  assert.equal(status.lastResult, null);
  assert.deepEqual(
    workers[0].posted.map((m) => m.task_id),
    [1, 2],
  ); // the slot is free again
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(
    results(ws).map((m) => m.task_id),
    [2],
  );
  assert.equal(status.tasksDone, 1);
});

test('a cancelled running task that fails sends no error either', async () => {
  const { ws, workers } = await openPage(1);
  ws.receive(task('a'));
  ws.receive({ type: 'cancel', task_id: 'a' });
  workers[0].answer({ error: 'Error: boom' });
  assert.deepEqual(results(ws), []);
});

test('cancel matches task_id exactly and ignores tasks it does not know', async () => {
  const { ws, workers } = await openPage(1);
  ws.receive(task(1));
  ws.receive(task(2));
  ws.receive({ type: 'cancel', task_id: '2' }); // a string is not the integer 2
  ws.receive({ type: 'cancel', task_id: 99 });
  workers[0].answer({ result: 1, duration_ms: 1 });
  workers[0].answer({ result: 1, duration_ms: 1 });
  assert.deepEqual(
    results(ws).map((m) => m.task_id),
    [1, 2],
  );
  assert.ok(page.logs.some((line) => line.includes('task_id=99 ignored')));
});

test('a tasks frame with one bad element queues none of it', async () => {
  const { ws, workers, status } = await openPage(2);
  ws.receive({ type: 'tasks', tasks: [task(1), { type: 'task', task_id: 2 }] });
  assert.deepEqual(
    workers.map((w) => w.posted),
    [[], []],
  );
  assert.equal(status.state, 'connected');
  assert.ok(page.logs.some((line) => line.startsWith('Invalid frame (bad_message)')));
});

test('a ?token= in the page address goes into the WebSocket URL, and is hidden where shown', async () => {
  const { ws, elements } = await openPage(1, '&token=join%2B1');
  assert.equal(ws.url, 'ws://grid.test/ws?token=join%2B1');
  assert.equal(elements.get('server-url').textContent, 'ws://grid.test/ws?token=***');
  assert.ok(page.logs.every((line) => !line.includes('join')));
});

// Closes `ws` with `code`; the reconnect it schedules is kept from running (it would open a socket in a later test).
function closeWithoutReconnect(ws, code) {
  const { setTimeout: saved } = globalThis;
  globalThis.setTimeout = () => 0;
  try {
    ws.onclose({ code, reason: '' });
  } finally {
    globalThis.setTimeout = saved;
  }
}

test('a connection refused before it opened hints at the join token; a dropped one does not', async () => {
  await openPage(1, '', { open: false });
  closeWithoutReconnect(page.sockets[0], 1006);
  assert.ok(
    page.logs.some((line) =>
      line.includes('asks for a join token (open this page as /?token=TOKEN)'),
    ),
  );
  await openPage(1, '&token=wrong', { open: false });
  closeWithoutReconnect(page.sockets[0], 1006);
  assert.ok(
    page.logs.some((line) => line.includes('the ?token= of this page is not its join token')),
  );
  const { ws } = await openPage(1);
  closeWithoutReconnect(ws, 1001);
  assert.ok(!page.logs.some((line) => line.includes('join token')));
});

// Closes `ws` and runs the reconnect it schedules at once; the new socket, opened.
function reconnectNow(ws) {
  const { setTimeout: saved } = globalThis;
  let scheduled = null;
  globalThis.setTimeout = (callback) => {
    scheduled = callback;
    return 0;
  };
  try {
    ws.onclose({ code: 1006, reason: '' });
  } finally {
    globalThis.setTimeout = saved;
  }
  scheduled();
  const next = page.sockets.at(-1);
  next.open();
  return next;
}

const PYTHON_CONFIG = {
  python: {
    pyodide: 'vendor/pyodide/314.0.7/',
    runner: 'py/python_function.py',
    snapshot: 'vendor/pyodide/314.0.7/interpreter.snapshot',
  },
  ops_module: null,
};

test('with Pyodide served, hello offers python as cold; after a python result, a new hello says it is warm', async () => {
  const { ws, workers } = await openPage(2, '', { config: PYTHON_CONFIG });
  const expected = {
    python: {
      pyodide: 'http://grid.test/vendor/pyodide/314.0.7/',
      runner: 'http://grid.test/py/python_function.py',
      snapshot: 'http://grid.test/vendor/pyodide/314.0.7/interpreter.snapshot',
    },
    opsModule: null,
  };
  assert.deepEqual(
    workers.map((w) => w.setup),
    [expected, expected],
  );
  const [hello] = ws.sent;
  assert.equal(hello.ops.at(-1), 'python');
  assert.ok(hello.ops.includes('repeat_multiply'));
  assert.deepEqual(hello.cold, ['python']);
  ws.receive({
    type: 'task',
    op: 'python',
    task_id: 1,
    function: { name: 'f' },
    args: [1],
    kwargs: {},
  });
  assert.deepEqual(workers[0].posted[0], {
    task_id: 1,
    op: 'python',
    args: { function: { name: 'f' }, args: [1], kwargs: {} },
    blobs: { base: 'http://grid.test', key: null },
  });
  workers[0].answer({ error: 'Traceback (most recent call last):\nValueError: no' });
  assert.deepEqual(results(ws), [
    { type: 'error', task_id: 1, message: 'Traceback (most recent call last):\nValueError: no' },
  ]);
  assert.deepEqual(reconnectNow(ws).sent[0].cold, ['python']); // a failed task proves nothing
  const again = page.sockets.at(-1);
  again.receive({
    type: 'task',
    op: 'python',
    task_id: 2,
    function: { name: 'f' },
    args: [1],
    kwargs: {},
  });
  workers[0].answer({ result: 1, duration_ms: 2500 });
  const warmHello = reconnectNow(again).sent[0];
  assert.ok(warmHello.ops.includes('python'));
  assert.equal(warmHello.cold, undefined);
});

test('without Pyodide, or without page-config.json, the page offers the built-in ops only', async () => {
  for (const config of [{ python: null, ops_module: null }, null, undefined]) {
    const { ws, workers } = await openPage(1, '', { config });
    const [hello] = ws.sent;
    assert.ok(!hello.ops.includes('python'), JSON.stringify(config));
    assert.equal(hello.cold, undefined);
    assert.equal(workers[0].setup, undefined); // no setup message: nothing to set up
  }
});

test('the ops module: the first compute worker names its ops; skipped exports are warned about', async () => {
  const setupAnswer = {
    ops: ['collatz_steps', 'double'],
    skipped: [
      { name: 'prime_count', reason: 'prime_count is a built-in op: give the export another name' },
    ],
    error: null,
  };
  const config = { python: null, ops_module: 'ops-module.js' };
  const { ws, workers } = await openPage(2, '', { config, setupAnswer });
  assert.deepEqual(
    workers.map((w) => w.setup.opsModule),
    ['http://grid.test/ops-module.js', 'http://grid.test/ops-module.js'],
  );
  const [hello] = ws.sent;
  assert.deepEqual(hello.ops.slice(-2), ['collatz_steps', 'double']);
  assert.equal(hello.ops.filter((op) => op === 'prime_count').length, 1);
  assert.equal(hello.cold, undefined);
  assert.deepEqual(page.warnings, [
    'browsergrid: ops module export prime_count skipped: prime_count is a built-in op: give the export another name',
  ]);
  assert.ok(page.logs.includes('Custom ops: collatz_steps, double'));
});

test('an ops module that fails to load is logged, and the page offers the other ops', async () => {
  const setupAnswer = {
    ops: [],
    skipped: [],
    error: 'the ops module http://grid.test/ops-module.js could not be loaded: SyntaxError',
  };
  const { ws } = await openPage(1, '', {
    config: { ...PYTHON_CONFIG, ops_module: 'ops-module.js' },
    setupAnswer,
  });
  assert.equal(ws.sent[0].ops.at(-1), 'python');
  assert.ok(page.logs.includes(setupAnswer.error));
});

test("each task tells its compute worker where its blobs come from: its connection's coordinator and key", async () => {
  const { ws, workers } = await openPage(1, '&token=T');
  ws.receive(task('welcome-1')); // before welcome: no key yet
  assert.deepEqual(workers[0].posted[0].blobs, { base: 'http://grid.test', key: null });
  ws.receive({ ...WELCOME, blob_key: 'key-1' });
  ws.receive(task(2));
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(workers[0].posted[1].blobs, { base: 'http://grid.test', key: 'key-1' });
  const next = reconnectNow(ws);
  next.receive({ ...WELCOME, blob_key: 'key-2' }); // a new connection, a new key
  next.receive(task(3));
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(workers[0].posted.at(-1), {
    task_id: 3,
    op: 'repeat_multiply',
    args: { initial: 2, factor: 1, times: 3 },
    blobs: { base: 'http://grid.test', key: 'key-2' },
  });
  assert.ok(!page.logs.some((line) => line.includes('key-'))); // a secret of the connection
});

// --- the volunteer's controls: pause, workers, CPU share, hidden tab, battery ---

const WELCOME = { type: 'welcome', protocol: 1, worker_id: 7, server: 'test', limits: {} };
const after = (ws, type) => ws.sent.filter((m) => m.type === type);
const control = (elements, id) => elements.get(id);

const reports = (ws) => ws.sent.filter((m) => ['result', 'results', 'error'].includes(m.type));
const reported = (task_id) => ({ task_id, result: 2, duration_ms: 1 });

test('after welcome, results wait until they are half of what the tab holds, then go in one frame', async () => {
  const { ws, workers, status } = await openPage(1);
  ws.receive(WELCOME);
  ws.receive({ type: 'tasks', tasks: Array.from({ length: 8 }, (_, i) => task(i + 1)) });
  for (let i = 0; i < 3; i += 1) workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(reports(ws), []); // 3 results, 1 running, 4 waiting: held
  assert.equal(status.tasksDone, 3); // counted when computed
  workers[0].answer({ result: 2, duration_ms: 1 }); // 4 results of 8 held: sent
  const agent = 'FakeBrowser/1.0';
  assert.deepEqual(reports(ws), [{ type: 'results', results: [1, 2, 3, 4].map(reported), agent }]);
  workers[0].answer({ result: 2, duration_ms: 1 });
  workers[0].answer({ result: 2, duration_ms: 1 }); // 2 results, 1 running, 1 waiting
  workers[0].answer({ result: 2, duration_ms: 1 }); // nothing left to start: sent at once
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(reports(ws).slice(1), [
    { type: 'results', results: [5, 6].map(reported), agent },
    { type: 'result', ...reported(7), agent },
    { type: 'result', ...reported(8), agent },
  ]);
});

test("results go together in frames of at most half the coordinator's largest frame", async () => {
  const { ws, workers } = await openPage(1);
  ws.receive({ ...WELCOME, limits: { max_frame_bytes: 4000 } }); // 2,000 bytes a frame
  ws.receive({ type: 'tasks', tasks: Array.from({ length: 8 }, (_, i) => task(i + 1)) });
  const big = 'x'.repeat(200); // counted 3 × 202 + 100 = 706 bytes: two to a frame
  for (let i = 0; i < 8; i += 1) workers[0].answer({ result: big, duration_ms: 1 });
  assert.deepEqual(
    reports(ws).map((m) => (m.type === 'results' ? m.results.map((r) => r.task_id) : [m.task_id])),
    [[1, 2], [3, 4], [5, 6], [7], [8]],
  );
});

test('a result waits 50 ms at most, and goes before the capacity and hand_back of a pause', async () => {
  const { ws, workers, elements } = await openPage(1);
  ws.receive(WELCOME);
  ws.receive({ type: 'tasks', tasks: Array.from({ length: 8 }, (_, i) => task(i + 1)) });
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(reports(ws), []);
  await new Promise((resolve) => {
    setTimeout(resolve, 80);
  });
  assert.deepEqual(reports(ws), [{ type: 'result', ...reported(1), agent: 'FakeBrowser/1.0' }]);
  workers[0].answer({ result: 2, duration_ms: 1 });
  const before = ws.sent.length;
  control(elements, 'pause').click();
  assert.deepEqual(ws.sent.slice(before), [
    { type: 'result', ...reported(2), agent: 'FakeBrowser/1.0' },
    { type: 'capacity', concurrency: 0 },
    { type: 'hand_back', task_ids: [3, 4, 5, 6, 7, 8] },
  ]);
});

test('Pause stops the running task now, says capacity 0 and hands back every task held; Resume asks again', async () => {
  const { ws, workers, status, elements } = await openPage(1);
  ws.receive(WELCOME);
  ws.receive({ type: 'tasks', tasks: [task(1), task(2)] });
  assert.deepEqual(
    workers[0].posted.map((m) => m.task_id),
    [1],
  );
  control(elements, 'pause').click();
  assert.equal(workers[0].terminated, true); // the honest "stop now": its compute worker is ended
  assert.equal(page.workers.length, 2); // and a fresh one waits, idle
  assert.deepEqual(ws.sent.slice(1), [
    { type: 'capacity', concurrency: 0 },
    { type: 'hand_back', task_ids: [1, 2] },
  ]);
  assert.equal(status.state, 'paused');
  assert.equal(status.paused, true);
  assert.deepEqual(status.held, []);
  assert.equal(control(elements, 'pause').textContent, 'Resume');
  ws.receive(task(3)); // sent before the coordinator read the capacity: straight back
  assert.deepEqual(after(ws, 'hand_back').at(-1), { type: 'hand_back', task_ids: [3] });
  assert.deepEqual(page.workers[1].posted, []);
  control(elements, 'pause').click();
  assert.deepEqual(ws.sent.at(-1), { type: 'capacity', concurrency: 1, prefetch: 16 });
  assert.equal(status.paused, false);
  ws.receive(task(4));
  assert.deepEqual(
    page.workers[1].posted.map((m) => m.task_id),
    [4],
  );
  page.workers[1].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(
    results(ws).map((m) => m.task_id),
    [4],
  );
});

test('paused across a reconnect: hello says the settings, then capacity 0 and the welcome task go back after welcome', async () => {
  const { ws, elements } = await openPage(2);
  ws.receive(WELCOME);
  control(elements, 'pause').click();
  const next = reconnectNow(ws);
  const [hello] = next.sent;
  assert.equal(hello.type, 'hello');
  assert.equal(hello.concurrency, 2); // 1 to 1024 in a hello: paused is said with capacity
  next.receive(task('welcome-1')); // the coordinator's welcome task comes before welcome
  assert.deepEqual(
    next.sent.map((m) => m.type),
    ['hello'],
  ); // nothing else before welcome
  next.receive(WELCOME);
  assert.deepEqual(next.sent.slice(1), [
    { type: 'capacity', concurrency: 0 },
    { type: 'hand_back', task_ids: ['welcome-1'] },
  ]);
  assert.ok(page.workers.every((w) => w.posted.length === 0));
});

test('a server that never welcomes hears neither capacity nor hand_back: its task waits here for Resume', async () => {
  const { ws, elements } = await openPage(1);
  ws.receive(task(1));
  assert.deepEqual(
    page.workers[0].posted.map((m) => m.task_id),
    [1],
  );
  control(elements, 'pause').click();
  assert.equal(page.workers[0].terminated, true);
  assert.deepEqual(
    ws.sent.map((m) => m.type),
    ['hello'],
  );
  control(elements, 'pause').click();
  assert.deepEqual(
    ws.sent.map((m) => m.type),
    ['hello'],
  );
  assert.deepEqual(
    page.workers[1].posted.map((m) => m.task_id),
    [1],
  ); // run again from the start
  page.workers[1].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(
    results(ws).map((m) => m.task_id),
    [1],
  );
});

test('fewer workers: a compute worker is ended, capacity says so, tasks beyond it go back; more: new workers', async () => {
  const { ws, elements, status } = await openPage(2);
  ws.receive(WELCOME);
  ws.receive({ type: 'tasks', tasks: Array.from({ length: 20 }, (_, i) => task(i + 1)) });
  const [first, second] = page.workers;
  control(elements, 'workers').change({ value: '1' });
  assert.equal(second.terminated, true);
  assert.equal(first.terminated, undefined);
  assert.equal(status.workers, 1);
  assert.deepEqual(ws.sent.slice(1), [
    { type: 'capacity', concurrency: 1, prefetch: 16 },
    { type: 'hand_back', task_ids: [18, 19, 20] }, // 1 running + 16 waiting fit; task 2 waits again here
  ]);
  first.answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(
    first.posted.map((m) => m.task_id),
    [1, 2],
  );
  control(elements, 'workers').change({ value: '3' });
  assert.equal(status.workers, 3);
  assert.equal(page.workers.length, 4); // two more started
  assert.deepEqual(ws.sent.at(-1), { type: 'capacity', concurrency: 3, prefetch: 48 });
});

test('a CPU share goes to every compute worker and to the coordinator, and again after a reconnect', async () => {
  const { ws, elements } = await openPage(2);
  ws.receive(WELCOME);
  control(elements, 'share').change({ value: '0.5' });
  assert.deepEqual(
    page.workers.map((w) => w.share),
    [0.5, 0.5],
  );
  assert.deepEqual(ws.sent.at(-1), { type: 'capacity', concurrency: 2, prefetch: 32, share: 0.5 });
  const next = reconnectNow(ws);
  assert.equal(next.sent.length, 1); // hello only, until welcome
  next.receive(WELCOME);
  assert.deepEqual(next.sent.slice(1), [
    { type: 'capacity', concurrency: 2, prefetch: 32, share: 0.5 },
  ]);
  control(elements, 'workers').change({ value: '3' });
  assert.equal(page.workers.at(-1).share, 0.5); // a new compute worker starts at the share
});

test('an object result is shown and logged as short JSON, not [object Object]', async () => {
  const { ws, workers, elements } = await openPage(1);
  ws.receive({ type: 'task', op: 'monte_carlo_pi', task_id: 1, samples: 1000, seed: 1 });
  workers[0].answer({ result: { hits: 785, samples: 1000 }, duration_ms: 1 });
  assert.equal(elements.get('last-result').textContent, '—'); // redrawn for results at most every 250 ms
  await new Promise((resolve) => {
    setTimeout(resolve, 300);
  });
  assert.equal(elements.get('last-result').textContent, '{"hits":785,"samples":1000}');
  assert.ok(page.logs.some((line) => line.includes('result={"hits":785,"samples":1000}')));
  assert.ok(page.logs.every((line) => !line.includes('[object Object]')));
});

test('this session: tasks done and their compute time', async () => {
  const { ws, workers, status, elements } = await openPage(1);
  ws.receive(task(1));
  workers[0].answer({ result: 2, duration_ms: 1500 });
  ws.receive(task(2));
  workers[0].answer({ error: 'no' }); // a failed task is not counted as given
  assert.deepEqual(status.contribution.session, { tasks: 1, computeMs: 1500 });
  await new Promise((resolve) => {
    setTimeout(resolve, 300); // the figures are redrawn at most every RENDER_MS while tasks run
  });
  assert.equal(elements.get('tasks-done').textContent, '1');
  assert.equal(elements.get('session-time').textContent, '1.5 s');
});

function hide(hidden) {
  globalThis.document.visibilityState = hidden ? 'hidden' : 'visible';
  for (const listener of page.documentListeners.visibilitychange ?? []) listener();
}

test('with the setting on, a hidden tab pauses and a visible one resumes; with it off, nothing happens', async () => {
  const { ws, status, elements } = await openPage(1);
  ws.receive(WELCOME);
  hide(true);
  assert.equal(status.paused, false);
  hide(false);
  control(elements, 'pause-hidden').change({ checked: true });
  hide(true);
  assert.deepEqual(status.pauseReasons, ['hidden']);
  assert.deepEqual(ws.sent.at(-1), { type: 'capacity', concurrency: 0 });
  hide(false);
  assert.equal(status.paused, false);
  assert.deepEqual(ws.sent.at(-1), { type: 'capacity', concurrency: 1, prefetch: 16 });
});

test('on battery, with the setting on, the tab pauses; plugged in again, it resumes', async () => {
  const battery = new EventTarget();
  battery.charging = false;
  const { ws, status, elements } = await openPage(1, '', { battery });
  ws.receive(WELCOME);
  assert.equal(elements.get('battery-row').hidden, false); // the browser has the API: the control shows
  assert.equal(status.paused, false);
  control(elements, 'pause-battery').change({ checked: true });
  assert.deepEqual(status.pauseReasons, ['battery']);
  battery.charging = true;
  battery.dispatchEvent(new Event('chargingchange'));
  assert.equal(status.paused, false);
  assert.deepEqual(
    after(ws, 'capacity').map((m) => m.concurrency),
    [0, 1],
  );
});

test('without the Battery Status API the battery control stays hidden', async () => {
  const { elements } = await openPage(1);
  assert.equal(elements.get('battery-row').hidden, true);
});

// `storage` as the page's localStorage for the pages opened in `body`; a getter that throws when it is an Error.
async function withStorage(storage, body) {
  Object.defineProperty(globalThis, 'localStorage', {
    configurable: true,
    get() {
      if (storage instanceof Error) throw storage;
      return storage;
    },
  });
  try {
    await body();
  } finally {
    delete globalThis.localStorage;
  }
}

test('the settings are remembered: the next visit starts with them, and ?workers= still wins for its visit', async () => {
  const items = new Map();
  const storage = {
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => items.set(k, String(v)),
  };
  await withStorage(storage, async () => {
    const { elements } = await openPage(2);
    control(elements, 'workers').change({ value: '3' });
    control(elements, 'share').change({ value: '0.75' });
    control(elements, 'pause-hidden').change({ checked: true });
    control(elements, 'lang-es').click();
    assert.deepEqual(JSON.parse(items.get('browsergrid.settings')), {
      v: 1,
      workers: 3,
      share: 0.75,
      pauseWhenHidden: true,
      pauseOnBattery: false,
    });
    assert.equal(items.get('browsergrid.language'), 'es');
    const again = await openPage(5); // ?workers=5 in its address
    assert.equal(again.status.workers, 5);
    assert.equal(again.status.share, 0.75);
    assert.equal(again.status.language, 'es');
    assert.equal(globalThis.document.documentElement.lang, 'es');
    assert.equal(again.elements.get('pause').textContent, 'Pausar');
    assert.equal(again.elements.get('pause-hidden').checked, true);
    assert.deepEqual(
      page.workers.map((w) => w.share),
      [0.75, 0.75, 0.75, 0.75, 0.75],
    );
  });
});

test('a localStorage that throws on every touch does not break the page: the settings hold for the visit', async () => {
  await withStorage(new DOMException('denied', 'SecurityError'), async () => {
    const { ws, elements, status } = await openPage(1);
    ws.receive(WELCOME);
    control(elements, 'share').change({ value: '0.25' });
    control(elements, 'lang-es').click();
    assert.equal(status.share, 0.25);
    assert.equal(status.language, 'es');
    assert.deepEqual(ws.sent.at(-1), {
      type: 'capacity',
      concurrency: 1,
      prefetch: 16,
      share: 0.25,
    });
    ws.receive(task(1));
    page.workers[0].answer({ result: 2, duration_ms: 3 });
    assert.equal(status.contribution.total.tasks, 1);
  });
  await withStorage(refusing, async () => {
    const { ws, status } = await openPage(1);
    ws.receive(task(1));
    page.workers[0].answer({ result: 2, duration_ms: 3 });
    assert.equal(status.tasksDone, 1);
  });
});

test('each coordinator of ?coordinators= is sent a worker_key of its own; the local secret is sent to none', async () => {
  const storage = memoryStorage();
  await withStorage(storage, async () => {
    const { ws } = await openPage(1, '&coordinators=ws://a.test/ws,wss://b.test/ws');
    const secret = storage.items.get('browsergrid.tab_secret.0');
    assert.match(secret, /^[0-9a-f]{64}$/);
    const second = reconnectNow(ws);
    assert.deepEqual([ws.url, second.url], ['ws://a.test/ws', 'wss://b.test/ws']);
    const [toA, toB] = [ws, second].map((socket) => socket.sent[0].worker_key);
    assert.equal(toA, await workerKeyFor(secret, 'ws://a.test'));
    assert.equal(toB, await workerKeyFor(secret, 'wss://b.test'));
    assert.notEqual(toA, toB);
    assert.equal(reconnectNow(second).sent[0].worker_key, toA); // back to A: the same key
    for (const socket of page.sockets) {
      assert.ok(socket.sent.every((frame) => !JSON.stringify(frame).includes(secret)));
    }
  });
});

test("the console gets a task's lines for the first 50 only; the page's log, a batch's last 4", async () => {
  const { ws, workers, elements } = await openPage(1);
  ws.receive({ type: 'welcome', protocol: 1, worker_id: 7, server: 'test', limits: {} });
  for (let id = 1; id <= 40; id += 1) {
    ws.receive(task(id));
    workers[0].answer({ result: 2, duration_ms: 1 });
  }
  const taskLines = page.logs.filter(
    (line) => line.startsWith('Task received') || line.startsWith('Result sent'),
  );
  assert.equal(taskLines.length, 50); // 25 tasks' two lines each
  assert.ok(page.logs.some((line) => line.startsWith('Welcome')));
  assert.equal(results(ws).length, 40);
  await new Promise((resolve) => {
    setTimeout(resolve, 300); // the page's log is drawn in batches
  });
  const shown = elements.get('log').children.map((item) => item.children[1].trim());
  const counted = shown.indexOf('(76 more task lines)'); // 80 in the batch: 4 shown after it
  assert.ok(counted >= 0, shown.join('\n'));
  assert.deepEqual(
    shown.slice(counted + 1).map((line) => line.split(' duration_ms')[0]),
    [
      'Task received: task_id=39 op=repeat_multiply',
      'Result sent: task_id=39 result=2',
      'Task received: task_id=40 op=repeat_multiply',
      'Result sent: task_id=40 result=2',
    ],
  );
  assert.ok(shown.some((line) => line.startsWith('Welcome')));
});
