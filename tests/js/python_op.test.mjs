// Checks web/js/python-op.js with a fake Pyodide: loaded once, on the first task, and kept;
// {"result"} and {"error"} from the runner's run_json; a failed load is retried on the next task.
// (tests/e2e/test_browser_python.py runs the real Pyodide in headless Chromium.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPythonOp, PythonError } from '../../src/browsergrid/web/js/python-op.js';

const PYODIDE = 'http://grid.test/vendor/pyodide/314.0.7/';
const RUNNER = 'http://grid.test/py/python_function.py';

// A fake Pyodide whose runner answers `answer(argsText)`; `calls` counts what happened.
function fakes(answer, { failLoads = 0 } = {}) {
  const calls = { imports: [], fetches: [], loads: [], ran: [], runJson: [] };
  const namespace = {
    entries: new Map(),
    get(name) {
      return this.entries.get(name);
    },
  };
  const pyodideApi = {
    globals: { get: (name) => (name === 'dict' ? () => namespace : undefined) },
    runPython(source, { globals }) {
      calls.ran.push(source);
      globals.entries.set('run_json', (text) => {
        calls.runJson.push(text);
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
  assert.deepEqual(calls.ran, ['def run_json(text): ...']);
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
