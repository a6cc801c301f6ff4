// Drives web/js/page.js in Node with fake DOM, WebSocket and Web Worker globals: hello, tasks and cancel.
// (tests/e2e/test_browser.py runs the same page in real headless Chromium.)
import { test } from 'node:test';
import assert from 'node:assert/strict';

class FakeElement {
  constructor() {
    this.textContent = '';
    this.dataset = {};
    this.children = [];
    this.scrollHeight = 0;
    this.scrollTop = 0;
    this.clientHeight = 0;
  }

  append(...items) { this.children.push(...items); }

  get childElementCount() { return this.children.length; }

  get firstElementChild() { return { remove: () => this.children.shift() }; }
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

  send(text) { this.sent.push(JSON.parse(text)); }

  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen();
  }

  receive(message) { this.onmessage({ data: JSON.stringify(message) }); }
}

class FakeWorker {
  constructor() {
    this.posted = [];
    page.workers.push(this);
  }

  postMessage(message) {
    if (message.setup) { // answered as a compute worker does, once it has imported the ops module
      this.setup = message.setup;
      queueMicrotask(() => this.onmessage({ data: { setup: page.setupAnswer } }));
    } else {
      this.posted.push(message);
    }
  }

  // The compute worker's answer to the last task posted to it.
  answer(outcome) {
    const { task_id } = this.posted.at(-1);
    this.onmessage({ data: { task_id, ...outcome } });
  }
}

const page = { sockets: [], workers: [], logs: [], warnings: [] };
let loaded = 0;
console.log = (line) => page.logs.push(String(line)); // the page logs every line to the console too
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
async function openPage(workers, extra = '', { open = true, config = { python: null, ops_module: null }, setupAnswer } = {}) {
  page.sockets = [];
  page.workers = [];
  page.logs = [];
  page.warnings = [];
  page.setupAnswer = setupAnswer ?? { ops: [], skipped: [], error: null };
  serveConfig(config);
  const elements = new Map();
  globalThis.window = globalThis;
  globalThis.location = { search: `?workers=${workers}&server=ws://grid.test/ws${extra}`, protocol: 'http:', host: 'grid.test' };
  Object.defineProperty(globalThis, 'navigator', {
    value: { userAgent: 'FakeBrowser/1.0', hardwareConcurrency: 8 }, configurable: true, writable: true,
  });
  globalThis.document = {
    getElementById(id) {
      if (!elements.has(id)) elements.set(id, new FakeElement());
      return elements.get(id);
    },
    createElement: () => new FakeElement(),
    baseURI: 'http://grid.test/?workers=1',
  };
  globalThis.WebSocket = FakeWebSocket;
  globalThis.Worker = FakeWorker;
  loaded += 1;
  await import(`../../src/browsergrid/web/js/page.js?instance=${loaded}`);
  for (let turn = 0; turn < 100 && page.sockets.length === 0; turn += 1) {
    await new Promise((resolve) => { setImmediate(resolve); }); // it connects once it knows its ops
  }
  const ws = page.sockets[0];
  if (open) ws.open();
  return { ws, workers: page.workers, status: globalThis.browsergrid, elements };
}

function task(task_id, args = { initial: 2, factor: 1, times: 3 }) {
  return { type: 'task', op: 'repeat_multiply', task_id, ...args };
}

const results = (ws) => ws.sent.filter((m) => m.type === 'result' || m.type === 'error');

test('hello asks for one waiting task per compute worker (prefetch = concurrency)', async () => {
  const { ws, workers } = await openPage(3);
  assert.equal(workers.length, 3);
  const [hello] = ws.sent;
  assert.equal(hello.type, 'hello');
  assert.equal(hello.protocol, 1);
  assert.equal(hello.agent, 'FakeBrowser/1.0');
  assert.equal(hello.concurrency, 3);
  assert.equal(hello.prefetch, 3);
  assert.ok(hello.ops.includes('repeat_multiply'));
});

test('a tasks frame queues every task; each result goes back in its own result frame', async () => {
  const { ws, workers, status } = await openPage(2);
  ws.receive({ type: 'welcome', protocol: 1, worker_id: 7, server: 'test', limits: {} });
  ws.receive({ type: 'tasks', tasks: [task(1), task('t-2'), task(3)] });
  assert.deepEqual(workers.map((w) => w.posted.map((m) => m.task_id)), [[1], ['t-2']]);
  assert.deepEqual(workers[0].posted[0], { task_id: 1, op: 'repeat_multiply', args: { initial: 2, factor: 1, times: 3 } });
  assert.equal(status.state, 'working');
  workers[0].answer({ result: 2, duration_ms: 1.5 });
  assert.deepEqual(workers[0].posted.map((m) => m.task_id), [1, 3]); // the waiting task starts at once
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
  assert.deepEqual(workers[0].posted.map((m) => m.task_id), [1, 3]);
  assert.deepEqual(results(ws).map((m) => m.task_id), [1, 3]);
  assert.equal(status.tasksDone, 2);
});

test('cancel of a running task: it finishes, its result is neither sent nor counted', async () => {
  const { ws, workers, status } = await openPage(1);
  ws.receive(task(1));
  ws.receive(task(2));
  ws.receive({ type: 'cancel', task_id: 1 });
  assert.deepEqual(workers[0].posted.map((m) => m.task_id), [1]); // it runs on
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.ok(page.logs.some((line) => line.startsWith('Dropped cancelled task task_id=1')));
  assert.deepEqual(results(ws), []);
  assert.equal(status.tasksDone, 0);
  assert.equal(status.lastResult, null);
  assert.deepEqual(workers[0].posted.map((m) => m.task_id), [1, 2]); // the slot is free again
  workers[0].answer({ result: 2, duration_ms: 1 });
  assert.deepEqual(results(ws).map((m) => m.task_id), [2]);
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
  assert.deepEqual(results(ws).map((m) => m.task_id), [1, 2]);
  assert.ok(page.logs.some((line) => line.includes('task_id=99 ignored')));
});

test('a tasks frame with one bad element queues none of it', async () => {
  const { ws, workers, status } = await openPage(2);
  ws.receive({ type: 'tasks', tasks: [task(1), { type: 'task', task_id: 2 }] });
  assert.deepEqual(workers.map((w) => w.posted), [[], []]);
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
  assert.ok(page.logs.some((line) => line.includes('asks for a join token (open this page as /?token=TOKEN)')));
  await openPage(1, '&token=wrong', { open: false });
  closeWithoutReconnect(page.sockets[0], 1006);
  assert.ok(page.logs.some((line) => line.includes('the ?token= of this page is not its join token')));
  const { ws } = await openPage(1);
  closeWithoutReconnect(ws, 1001);
  assert.ok(!page.logs.some((line) => line.includes('join token')));
});

// Closes `ws` and runs the reconnect it schedules at once; the new socket, opened.
function reconnectNow(ws) {
  const { setTimeout: saved } = globalThis;
  let scheduled = null;
  globalThis.setTimeout = (callback) => { scheduled = callback; return 0; };
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

const PYTHON_CONFIG = { python: { pyodide: 'vendor/pyodide/314.0.7/', runner: 'py/python_function.py' }, ops_module: null };

test('with Pyodide served, hello offers python as cold; after a python result, a new hello says it is warm', async () => {
  const { ws, workers } = await openPage(2, '', { config: PYTHON_CONFIG });
  const expected = {
    python: { pyodide: 'http://grid.test/vendor/pyodide/314.0.7/', runner: 'http://grid.test/py/python_function.py' },
    opsModule: null,
  };
  assert.deepEqual(workers.map((w) => w.setup), [expected, expected]);
  const [hello] = ws.sent;
  assert.equal(hello.ops.at(-1), 'python');
  assert.ok(hello.ops.includes('repeat_multiply'));
  assert.deepEqual(hello.cold, ['python']);
  ws.receive({ type: 'task', op: 'python', task_id: 1, function: { name: 'f' }, args: [1], kwargs: {} });
  assert.deepEqual(workers[0].posted[0], { task_id: 1, op: 'python', args: { function: { name: 'f' }, args: [1], kwargs: {} } });
  workers[0].answer({ error: 'Traceback (most recent call last):\nValueError: no' });
  assert.deepEqual(results(ws), [{ type: 'error', task_id: 1, message: 'Traceback (most recent call last):\nValueError: no' }]);
  assert.deepEqual(reconnectNow(ws).sent[0].cold, ['python']); // a failed task proves nothing
  const again = page.sockets.at(-1);
  again.receive({ type: 'task', op: 'python', task_id: 2, function: { name: 'f' }, args: [1], kwargs: {} });
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
    skipped: [{ name: 'prime_count', reason: 'prime_count is a built-in op: give the export another name' }],
    error: null,
  };
  const config = { python: null, ops_module: 'ops-module.js' };
  const { ws, workers } = await openPage(2, '', { config, setupAnswer });
  assert.deepEqual(workers.map((w) => w.setup.opsModule), ['http://grid.test/ops-module.js', 'http://grid.test/ops-module.js']);
  const [hello] = ws.sent;
  assert.deepEqual(hello.ops.slice(-2), ['collatz_steps', 'double']);
  assert.equal(hello.ops.filter((op) => op === 'prime_count').length, 1);
  assert.equal(hello.cold, undefined);
  assert.deepEqual(page.warnings, ['browsergrid: ops module export prime_count skipped: prime_count is a built-in op: give the export another name']);
  assert.ok(page.logs.includes('Custom ops: collatz_steps, double'));
});

test('an ops module that fails to load is logged, and the page offers the other ops', async () => {
  const setupAnswer = { ops: [], skipped: [], error: 'the ops module http://grid.test/ops-module.js could not be loaded: SyntaxError' };
  const { ws } = await openPage(1, '', { config: { ...PYTHON_CONFIG, ops_module: 'ops-module.js' }, setupAnswer });
  assert.equal(ws.sent[0].ops.at(-1), 'python');
  assert.ok(page.logs.includes(setupAnswer.error));
});
