// Checks web/js/capabilities.js: which exports of an ops module are ops, hello.ops and hello.cold,
// and the URLs a compute worker gets from /page-config.json.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  COLD_OPS,
  coldOps,
  helloOps,
  opsFromModule,
  setupFrom,
} from '../../src/browsergrid/web/js/capabilities.js';
import { OPS } from '../../src/browsergrid/web/js/ops.js';

const BUILT_IN = [...Object.keys(OPS), 'python'];

test('each exported function is an op of its name; constants and plain objects are not ops', async () => {
  const module = {
    double: ({ x }) => 2 * x,
    later: async ({ x }) => x,
    LIMIT: 10,
    helpers: { scale: 3 },
    nothing: null,
  };
  const { ops, skipped } = opsFromModule(module, BUILT_IN);
  assert.deepEqual(Object.keys(ops), ['double', 'later']);
  assert.equal(ops.double({ x: 4 }), 8);
  assert.equal(await ops.later({ x: 5 }), 5);
  assert.deepEqual(skipped, []);
});

test('an exported object with a run function is an op, run with the object as this', () => {
  const module = {
    scaled: {
      factor: 3,
      run({ x }) {
        return this.factor * x;
      },
    },
  };
  const { ops } = opsFromModule(module, BUILT_IN);
  assert.equal(ops.scaled({ x: 2 }), 6);
});

test('a built-in op name, the default export and a name over 64 characters are skipped, with the reason', () => {
  const long = 'x'.repeat(65);
  const module = {
    prime_count: () => 1,
    python: () => 2,
    default: () => 3,
    [long]: () => 4,
    ok: () => 5,
  };
  const { ops, skipped } = opsFromModule(module, BUILT_IN);
  assert.deepEqual(Object.keys(ops), ['ok']);
  assert.deepEqual(
    skipped.map(({ name }) => name),
    ['default', 'prime_count', 'python', long],
  );
  assert.match(skipped[1].reason, /^prime_count is a built-in op/);
  assert.match(skipped[0].reason, /default export/);
  assert.match(skipped[3].reason, /at most 64 characters/);
  assert.ok(opsFromModule({ ['y'.repeat(64)]: () => 0 }, BUILT_IN).ops['y'.repeat(64)]);
});

test('a real module namespace works too', async () => {
  const source =
    'export function triple({ x }) { return 3 * x; }\nexport const NAME = "t";\nexport default () => 0;\n';
  const namespace = await import(`data:text/javascript,${encodeURIComponent(source)}`);
  const { ops, skipped } = opsFromModule(namespace, BUILT_IN);
  assert.deepEqual(Object.keys(ops), ['triple']);
  assert.equal(ops.triple({ x: 2 }), 6);
  assert.deepEqual(
    skipped.map(({ name }) => name),
    ['default'],
  );
});

test('hello.ops: no repeats, at most 64, the rest dropped', () => {
  assert.deepEqual(helloOps(['a', 'b', 'a', 'c']), { ops: ['a', 'b', 'c'], dropped: [] });
  const names = Array.from({ length: 70 }, (_, i) => `op${i}`);
  const { ops, dropped } = helloOps(names);
  assert.deepEqual(ops, names.slice(0, 64));
  assert.deepEqual(dropped, names.slice(64));
});

test('hello.cold: python until it is warm; other ops never', () => {
  assert.deepEqual(COLD_OPS, ['python']);
  assert.deepEqual(coldOps(['prime_count', 'python', 'mine'], new Set()), ['python']);
  assert.deepEqual(coldOps(['prime_count', 'python'], new Set(['python'])), []);
  assert.deepEqual(coldOps(['prime_count'], new Set()), []);
});

test('setupFrom resolves page-config.json URLs against its own; anything missing or malformed is null', () => {
  const at = 'https://grid.test:8443/sub/page-config.json';
  assert.deepEqual(
    setupFrom(
      {
        python: {
          pyodide: 'vendor/pyodide/314.0.7/',
          runner: 'py/python_function.py',
          snapshot: 'vendor/pyodide/314.0.7/interpreter.snapshot',
        },
        ops_module: 'ops-module.js',
      },
      at,
    ),
    {
      python: {
        pyodide: 'https://grid.test:8443/sub/vendor/pyodide/314.0.7/',
        runner: 'https://grid.test:8443/sub/py/python_function.py',
        snapshot: 'https://grid.test:8443/sub/vendor/pyodide/314.0.7/interpreter.snapshot',
      },
      opsModule: 'https://grid.test:8443/sub/ops-module.js',
    },
  );
  for (const snapshot of [null, undefined, 5]) {
    const python = { pyodide: 'p/', runner: 'r.py', snapshot };
    assert.equal(setupFrom({ python }, at).python.snapshot, null, String(snapshot)); // fresh starts
  }
});
