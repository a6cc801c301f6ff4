// Checks web/js/python-op.js with a fake Pyodide: loaded once, on the first task, and kept;
// {"result"} and {"error"} from the runner's run_json; a failed load is retried on the next task.
// (tests/e2e/test_browser_python.py runs the real Pyodide in headless Chromium.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cacheSnapshots,
  createPythonOp,
  PythonError,
} from '../../src/browsergrid/web/js/python-op.js';

const PYODIDE = 'http://grid.test/vendor/pyodide/314.0.7/';
const RESEED = 'import random\nrandom.seed()'; // run first in every interpreter, however it started
const RUNNER = 'http://grid.test/py/python_function.py';

// A fake Pyodide whose runner answers `answer(argsText)`; `calls` counts what happened.
function fakes(answer, { failLoads = 0 } = {}) {
  const calls = {
    imports: [],
    fetches: [],
    loads: [],
    ran: [],
    runJson: [],
    blobs: [],
    snapshots: 0,
  };
  const namespace = {
    entries: new Map(),
    get(name) {
      return this.entries.get(name);
    },
  };
  const pyodideApi = {
    globals: { get: (name) => (name === 'dict' ? () => namespace : undefined) },
    makeMemorySnapshot() {
      calls.snapshots += 1;
      return new Uint8Array([1, 2, 3]);
    },
    runPython(source, { globals } = {}) {
      calls.ran.push(source);
      globals?.entries.set('run_json', (...given) => {
        const [text] = given;
        calls.runJson.push(text);
        calls.blobs.push(given.slice(1)); // the contents of the blobs, when the arguments refer to some
        return answer(text);
      });
    },
  };
  return {
    calls,
    importModule: async (url) => {
      calls.imports.push(url);
      return {
        loadPyodide: async (options) => {
          calls.loads.push(options);
          if (calls.loads.length <= failLoads) throw new Error('out of memory');
          if (options._loadSnapshot?.[0] === 9) throw new Error('bad snapshot');
          return pyodideApi;
        },
      };
    },
    fetchText: async (url) => {
      calls.fetches.push(url);
      return 'def run_json(text): ...';
    },
  };
}

test('Pyodide loads on the first task only; every task calls run_json with the arguments as JSON', async () => {
  const { calls, importModule, fetchText } = fakes((text) =>
    JSON.stringify({ result: JSON.parse(text).args[0] * 2 }),
  );
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, importModule, fetchText });
  assert.equal(calls.imports.length, 0); // nothing loads before a task
  const args = {
    function: { name: 'f', source: 'def f(x): return 2*x', sha256: 'ab' },
    args: [21],
    kwargs: {},
  };
  const [first, second] = await Promise.all([python(args), python({ ...args, args: [2] })]);
  assert.deepEqual([first, second], [42, 4]);
  assert.equal(await python({ ...args, args: [5] }), 10);
  assert.deepEqual(calls.imports, [`${PYODIDE}pyodide.mjs`]);
  assert.deepEqual(calls.fetches, [RUNNER]);
  assert.deepEqual(calls.loads, [{ indexURL: PYODIDE }]);
  assert.deepEqual(calls.ran, [RESEED, 'def run_json(text): ...']);
  assert.deepEqual(JSON.parse(calls.runJson[0]), args);
});

test('an error from the runner is a PythonError whose text is the traceback, unprefixed', async () => {
  const traceback =
    'Traceback (most recent call last):\n  File "<browsergrid:f>", line 1, in f\nZeroDivisionError: division by zero';
  const { importModule, fetchText } = fakes(() => JSON.stringify({ error: traceback }));
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, importModule, fetchText });
  const error = await python({}).then(
    () => null,
    (err) => err,
  );
  assert.ok(error instanceof PythonError);
  assert.equal(String(error), traceback);
  assert.equal(error.message, traceback);
});

test('refs stay in the JSON: the blobs they name go beside it, as a Map of bytes', async () => {
  const { calls, importModule, fetchText } = fakes(() => JSON.stringify({ result: 1 }));
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, importModule, fetchText });
  const ref = { $blob: 'a'.repeat(64), size: 2 };
  const args = { function: { name: 'f', source: '', sha256: 'ab' }, args: [ref], kwargs: {} };
  const contents = new Map([['a'.repeat(64), new Uint8Array([1, 2])]]);
  assert.equal(await python(args, contents), 1);
  assert.deepEqual(JSON.parse(calls.runJson[0]), args);
  assert.equal(calls.blobs[0][0], contents);
  await python({ ...args, args: [3] }, new Map()); // no blobs: run_json(text), as before blobs
  await python({ ...args, args: [4] });
  assert.deepEqual(calls.blobs.slice(1), [[], []]);
});

test('a result that is null or false is a result', async () => {
  for (const value of [null, false, 0, '', []]) {
    const { importModule, fetchText } = fakes(() => JSON.stringify({ result: value }));
    const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, importModule, fetchText });
    assert.deepEqual(await python({}), value);
  }
});

test('a failed load fails the task and is tried again on the next one', async () => {
  const { calls, importModule, fetchText } = fakes(() => '{"result": 1}', { failLoads: 1 });
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, importModule, fetchText });
  await assert.rejects(python({}), {
    message: 'python: Pyodide could not be loaded: out of memory',
  });
  assert.equal(await python({}), 1);
  assert.equal(calls.loads.length, 2);
});

// Snapshots kept in a Map, as Cache Storage keeps them by URL.
function mapSnapshots({ failGet = false } = {}) {
  const kept = new Map();
  return {
    kept,
    get: async (key) => {
      if (failGet) throw new Error('QuotaExceededError');
      return kept.get(key) ?? null;
    },
    put: async (key, bytes) => {
      kept.set(key, bytes);
    },
    delete: async (key) => {
      kept.delete(key);
    },
  };
}

const SNAPSHOT_KEY = `${PYODIDE}interpreter.snapshot`;

test('the first start saves a snapshot of the fresh interpreter; the next start, in another worker, begins from it', async () => {
  const snapshots = mapSnapshots();
  const first = fakes(() => '{"result": 1}');
  const lines = [];
  const told = (line) => lines.push(line);
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, ...first, snapshots, told });
  assert.equal(await python({}), 1);
  assert.deepEqual(first.calls.loads, [{ indexURL: PYODIDE, _makeSnapshot: true }]);
  assert.equal(first.calls.snapshots, 1); // taken before the runner ran in it
  assert.deepEqual([...snapshots.kept.keys()], [SNAPSHOT_KEY]); // stored before the first task ran
  assert.match(
    lines[0],
    /^Python started in \d+ ms, and saved a snapshot for the next start in \d+ ms$/,
  );

  const next = fakes(() => '{"result": 2}');
  const again = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, ...next, snapshots, told });
  assert.equal(await again({}), 2);
  assert.deepEqual(next.calls.loads, [
    { indexURL: PYODIDE, _loadSnapshot: new Uint8Array([1, 2, 3]) },
  ]);
  assert.equal(next.calls.snapshots, 0);
  assert.match(lines[1], /^Python started in \d+ ms from this browser's snapshot$/);
});

test('a snapshot that fails to load is deleted, and Python starts afresh and saves a new one', async () => {
  const snapshots = mapSnapshots();
  snapshots.kept.set(SNAPSHOT_KEY, new Uint8Array([9])); // another build's, or damaged
  const { calls, importModule, fetchText } = fakes(() => '{"result": 3}');
  const lines = [];
  const python = createPythonOp({
    pyodide: PYODIDE,
    runner: RUNNER,
    importModule,
    fetchText,
    snapshots,
    told: (line) => lines.push(line),
  });
  assert.equal(await python({}), 3);
  assert.deepEqual(
    calls.loads.map((options) => Object.keys(options)),
    [
      ['indexURL', '_loadSnapshot'],
      ['indexURL', '_makeSnapshot'],
    ],
  );
  assert.equal(
    lines[0],
    "Python's start from this browser's snapshot failed (bad snapshot): trying on",
  );
  assert.deepEqual(snapshots.kept.get(SNAPSHOT_KEY), new Uint8Array([1, 2, 3]));
});

test('storage that refuses, or none at all: Python starts afresh, without a snapshot', async () => {
  const refusing = fakes(() => '{"result": 4}');
  const snapshots = mapSnapshots({ failGet: true });
  const python = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, ...refusing, snapshots });
  assert.equal(await python({}), 4);
  assert.deepEqual(refusing.calls.loads, [{ indexURL: PYODIDE, _makeSnapshot: true }]);
  const none = fakes(() => '{"result": 5}');
  const plain = createPythonOp({ pyodide: PYODIDE, runner: RUNNER, ...none, snapshots: null });
  assert.equal(await plain({}), 5);
  assert.deepEqual(none.calls.loads, [{ indexURL: PYODIDE }]);
  assert.equal(none.calls.snapshots, 0);
  assert.equal(cacheSnapshots(undefined), null); // where the browser has no Cache Storage
});

test("Cache Storage keeps one snapshot: saving one deletes another Pyodide build's", async () => {
  const entries = new Map();
  const cache = {
    put: async (key, response) => {
      entries.set(key, new Uint8Array(await response.arrayBuffer()));
    },
    match: async (key) => (entries.has(key) ? new Response(entries.get(key)) : undefined),
    keys: async () => [...entries.keys()].map((url) => ({ url })),
    delete: async (request) => entries.delete(request.url ?? request),
  };
  const snapshots = cacheSnapshots({ open: async () => cache });
  const older = 'http://grid.test/vendor/pyodide/313.0.1/interpreter.snapshot';
  await snapshots.put(older, new Uint8Array([7]));
  assert.deepEqual(await snapshots.get(older), new Uint8Array([7]));
  await snapshots.put(SNAPSHOT_KEY, new Uint8Array([1, 2]));
  assert.deepEqual([...entries.keys()], [SNAPSHOT_KEY]);
  assert.equal(await snapshots.get(older), null);
  await snapshots.delete(SNAPSHOT_KEY);
  assert.equal(await snapshots.get(SNAPSHOT_KEY), null);
});

const SERVED = 'http://grid.test/vendor/pyodide/314.0.7/interpreter.snapshot';

// The coordinator's snapshot at SERVED: `bytes`, or a failed fetch when null.
function serving(bytes) {
  const asked = [];
  const fetchBytes = async (url) => {
    asked.push(url);
    if (bytes === null) throw new Error(`GET ${url}: HTTP 404`);
    return bytes;
  };
  return { asked, fetchBytes };
}

test("Python starts from the coordinator's snapshot; one saved in Cache Storage is never used, and deleted", async () => {
  const snapshots = mapSnapshots();
  snapshots.kept.set(SNAPSHOT_KEY, new Uint8Array([1, 2, 3])); // saved when the coordinator had none
  const { calls, importModule, fetchText } = fakes(() => '{"result": 6}');
  const { asked, fetchBytes } = serving(new Uint8Array([7, 7]));
  const lines = [];
  const python = createPythonOp({
    ...{ pyodide: PYODIDE, runner: RUNNER, snapshot: SERVED, importModule, fetchText },
    ...{ fetchBytes, snapshots, told: (line) => lines.push(line) },
  });
  assert.equal(await python({}), 6);
  assert.deepEqual(asked, [SERVED]); // the browser's HTTP cache answers after the first time
  assert.deepEqual(calls.loads, [{ indexURL: PYODIDE, _loadSnapshot: new Uint8Array([7, 7]) }]);
  assert.equal(calls.snapshots, 0);
  // a python task could have written that copy: only the coordinator's bytes are started from
  assert.equal(snapshots.kept.size, 0);
  assert.match(lines[0], /^Python started in \d+ ms from the coordinator's snapshot$/);
  assert.equal(calls.ran[0], RESEED); // before anything else runs: every tab starts from these bytes
});

test("a coordinator's snapshot that cannot be fetched or loaded: Python starts afresh and saves none", async () => {
  for (const bytes of [null, new Uint8Array([9])]) {
    const snapshots = mapSnapshots();
    const { calls, importModule, fetchText } = fakes(() => '{"result": 8}');
    const { fetchBytes } = serving(bytes);
    const lines = [];
    const python = createPythonOp({
      ...{ pyodide: PYODIDE, runner: RUNNER, snapshot: SERVED, importModule, fetchText },
      ...{ fetchBytes, snapshots, told: (line) => lines.push(line) },
    });
    assert.equal(await python({}), 8);
    assert.deepEqual(calls.loads.at(-1), { indexURL: PYODIDE });
    assert.equal(snapshots.kept.size, 0); // the next start tries the coordinator's again
    const why =
      bytes === null
        ? `The coordinator's snapshot could not be fetched (GET ${SERVED}: HTTP 404)`
        : "Python's start from the coordinator's snapshot failed (bad snapshot): trying on";
    assert.deepEqual(lines, [why]);
  }
});
