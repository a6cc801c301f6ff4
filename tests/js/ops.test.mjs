// Checks web/js/ops.js: every vector of tests/fixtures/op_vectors.json (computed by the Python
// ops) gives the identical result here, and runOp's argument errors name the op and argument.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { availableOps, OPS, runOp } from '../../src/browsergrid/web/js/ops.js';

const { vectors } = JSON.parse(
  readFileSync(new URL('../fixtures/op_vectors.json', import.meta.url), 'utf8'),
);
const NAMES = [
  'repeat_multiply',
  'monte_carlo_pi',
  'mandelbrot_tile',
  'prime_count',
  'hash_search',
];
const WELCOME_TASK = { initial: 1.0000054, factor: 1.00000043, times: 1000000 };
const WELCOME_RESULT = 1.5372656826974733;

test('OPS lists the five ops; availableOps includes hash_search under Node (crypto.subtle)', () => {
  assert.deepEqual(Object.keys(OPS), NAMES);
  assert.ok(globalThis.crypto?.subtle);
  assert.deepEqual(availableOps(), NAMES);
});

test('availableOps leaves out hash_search without crypto.subtle (an insecure page)', (t) => {
  const original = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: {}, configurable: true, writable: true });
  t.after(() => Object.defineProperty(globalThis, 'crypto', original));
  assert.deepEqual(
    availableOps(),
    NAMES.filter((op) => op !== 'hash_search'),
  );
});

test('every op has at least four vectors', () => {
  for (const op of NAMES) assert.ok(vectors.filter((v) => v.op === op).length >= 4, op);
});

for (const vector of vectors) {
  test(`vector ${vector.op}: ${vector.name}`, async () => {
    const result = await runOp(vector.op, structuredClone(vector.args));
    assert.deepEqual(result, vector.result);
    assert.deepEqual(JSON.parse(JSON.stringify(result)), vector.result);
  });
}

test('repeat_multiply of the welcome task is 1.5372656826974733 within 1e-12', () => {
  for (const result of [
    OPS.repeat_multiply(WELCOME_TASK),
    runOp('repeat_multiply', WELCOME_TASK),
  ]) {
    assert.ok(Math.abs(result - WELCOME_RESULT) / WELCOME_RESULT < 1e-12, String(result));
  }
});

test('repeat_multiply overflows to Infinity (JSON null) in both modes', () => {
  assert.equal(runOp('repeat_multiply', { initial: 1, factor: 10, times: 400 }), Infinity);
  assert.equal(
    runOp('repeat_multiply', { initial: -1, factor: 10, times: 400, exact: true }),
    -Infinity,
  );
  assert.equal(JSON.stringify({ result: Infinity }), '{"result":null}');
});

test('only hash_search returns a Promise', async () => {
  for (const vector of vectors) {
    const returned = runOp(vector.op, vector.args);
    assert.equal(returned instanceof Promise, vector.op === 'hash_search', vector.name);
    await returned;
  }
});

test('mandelbrot_tile counts are a plain Array (JSON writes a list)', () => {
  const { counts } = runOp('mandelbrot_tile', {
    region: [0, 1, 0, 1],
    width: 2,
    height: 2,
    max_iter: 3,
  });
  assert.ok(Array.isArray(counts));
});

test('runOp ignores extra arguments', () => {
  assert.equal(runOp('repeat_multiply', { initial: 3, factor: 2, times: 2, note: 'x' }), 12);
  assert.equal(runOp('prime_count', { lo: 0, hi: 10, note: 'x' }), 4);
});

test('runOp refuses an unknown op, including prototype member names', () => {
  for (const op of ['noop', 'toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    assert.throws(() => runOp(op, {}), { name: 'Error', message: /unknown op/ }, op);
  }
});

test('runOp refuses arguments that are not an object', () => {
  for (const op of NAMES) {
    assert.throws(() => runOp(op, null), { message: `${op}: arguments must be an object` });
    assert.throws(() => runOp(op, 3), { message: `${op}: arguments must be an object` });
  }
});

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const BASE = {
  repeat_multiply: { initial: 1, factor: 2, times: 3 },
  monte_carlo_pi: { samples: 10, seed: 0 },
  mandelbrot_tile: { region: [-2, 1, -1, 1], width: 4, height: 3, max_iter: 10 },
  prime_count: { lo: 0, hi: 100 },
  hash_search: { prefix: 'p', difficulty: 4, start: 0, count: 100 },
};
// [op, changed arguments, argument named, what the message says it must be]
const BAD = [
  ['repeat_multiply', { initial: undefined }, 'initial', 'a finite number'],
  ['repeat_multiply', { initial: '1' }, 'initial', 'a finite number'],
  ['repeat_multiply', { initial: true }, 'initial', 'a finite number'],
  ['repeat_multiply', { initial: Infinity }, 'initial', 'a finite number'],
  ['repeat_multiply', { factor: null }, 'factor', 'a finite number'],
  ['repeat_multiply', { factor: NaN }, 'factor', 'a finite number'],
  ['repeat_multiply', { times: -1 }, 'times', 'an integer from 0 to 2**53 - 1'],
  ['repeat_multiply', { times: 1.5 }, 'times', 'an integer from 0 to 2**53 - 1'],
  ['repeat_multiply', { times: '3' }, 'times', 'an integer from 0 to 2**53 - 1'],
  ['repeat_multiply', { times: undefined }, 'times', 'an integer from 0 to 2**53 - 1'],
  ['repeat_multiply', { times: 2 ** 53 }, 'times', 'an integer from 0 to 2**53 - 1'],
  ['repeat_multiply', { exact: 1 }, 'exact', 'a boolean'],
  ['repeat_multiply', { exact: null }, 'exact', 'a boolean'],
  ['repeat_multiply', { exact: 'true' }, 'exact', 'a boolean'],
  ['monte_carlo_pi', { samples: 0 }, 'samples', 'an integer from 1 to 10**9'],
  ['monte_carlo_pi', { samples: 1e9 + 1 }, 'samples', 'an integer from 1 to 10**9'],
  ['monte_carlo_pi', { samples: true }, 'samples', 'an integer from 1 to 10**9'],
  ['monte_carlo_pi', { samples: undefined }, 'samples', 'an integer from 1 to 10**9'],
  ['monte_carlo_pi', { seed: -1 }, 'seed', 'an integer from 0 to 2**32 - 1'],
  ['monte_carlo_pi', { seed: 2 ** 32 }, 'seed', 'an integer from 0 to 2**32 - 1'],
  ['monte_carlo_pi', { seed: 0.5 }, 'seed', 'an integer from 0 to 2**32 - 1'],
  ['mandelbrot_tile', { region: undefined }, 'region', '[re_min, re_max, im_min, im_max]'],
  ['mandelbrot_tile', { region: [0, 1, 0] }, 'region', '[re_min, re_max, im_min, im_max]'],
  ['mandelbrot_tile', { region: [1, 0, 0, 1] }, 'region', '[re_min, re_max, im_min, im_max]'],
  ['mandelbrot_tile', { region: [0, 1, 1, 1] }, 'region', '[re_min, re_max, im_min, im_max]'],
  [
    'mandelbrot_tile',
    { region: [0, 1, 0, Infinity] },
    'region',
    '[re_min, re_max, im_min, im_max]',
  ],
  ['mandelbrot_tile', { region: [0, true, 0, 1] }, 'region', '[re_min, re_max, im_min, im_max]'],
  ['mandelbrot_tile', { region: '0,1,0,1' }, 'region', '[re_min, re_max, im_min, im_max]'],
  ['mandelbrot_tile', { width: 0 }, 'width', 'an integer from 1 to 65536'],
  ['mandelbrot_tile', { width: 2.5 }, 'width', 'an integer from 1 to 65536'],
  ['mandelbrot_tile', { height: 65537 }, 'height', 'an integer from 1 to 65536'],
  ['mandelbrot_tile', { width: 257, height: 256 }, 'height', 'such that width * height <= 65536'],
  ['mandelbrot_tile', { max_iter: 0 }, 'max_iter', 'an integer from 1 to 100000'],
  ['mandelbrot_tile', { max_iter: 100001 }, 'max_iter', 'an integer from 1 to 100000'],
  ['prime_count', { lo: -1 }, 'lo', 'an integer from 0 to 10**12'],
  ['prime_count', { lo: '0' }, 'lo', 'an integer from 0 to 10**12'],
  ['prime_count', { hi: 1e12 + 1 }, 'hi', 'an integer from 0 to 10**12'],
  ['prime_count', { hi: undefined }, 'hi', 'an integer from 0 to 10**12'],
  ['prime_count', { lo: 10, hi: 9 }, 'hi', 'at least lo'],
  ['prime_count', { lo: 0, hi: 1e8 + 1 }, 'hi', 'at most lo + 10**8'],
  ['hash_search', { prefix: undefined }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { prefix: 5 }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { prefix: 'a'.repeat(257) }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { prefix: '🙂'.repeat(257) }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { prefix: 'a\uD800b' }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { prefix: '\uDC00' }, 'prefix', 'a string of at most 256 characters'],
  ['hash_search', { difficulty: 65 }, 'difficulty', 'an integer from 0 to 64'],
  ['hash_search', { difficulty: -1 }, 'difficulty', 'an integer from 0 to 64'],
  ['hash_search', { start: -1 }, 'start', 'an integer from 0 to 2**53 - 1'],
  ['hash_search', { start: 2 ** 53 }, 'start', 'an integer from 0 to 2**53 - 1'],
  ['hash_search', { count: 0 }, 'count', 'an integer from 1 to 10**7'],
  ['hash_search', { count: 1e7 + 1 }, 'count', 'an integer from 1 to 10**7'],
  ['hash_search', { start: MAX_SAFE, count: 2 }, 'count', 'at most 2**53 - start'],
  ['hash_search', { start: MAX_SAFE - 9, count: 11 }, 'count', 'at most 2**53 - start'], // 2**53 + 1 rounds
];

test('runOp refuses bad arguments synchronously, naming the op and the argument', () => {
  const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [op, change, name, must] of BAD) {
    const args = { ...BASE[op], ...change };
    const message = new RegExp(`^${op}: ${name} must be ${escapeRegExp(must)}.*, got `);
    assert.throws(
      () => runOp(op, args),
      { name: 'Error', message },
      `${op} ${JSON.stringify(change)}`,
    );
  }
});

test('an error quotes at most 80 characters of the bad argument', () => {
  assert.throws(
    () => runOp('hash_search', { ...BASE.hash_search, prefix: 'z'.repeat(10000) }),
    (err) => err.message.length < 200,
  );
});

test('limits that are allowed', async () => {
  assert.equal(
    (await runOp('hash_search', { prefix: '🙂'.repeat(256), difficulty: 0, start: 0, count: 1 }))
      .nonce,
    0,
  );
  assert.equal(
    (await runOp('hash_search', { prefix: '', difficulty: 0, start: MAX_SAFE, count: 1 })).nonce,
    MAX_SAFE,
  );
  const last = await runOp('hash_search', {
    prefix: '',
    difficulty: 64,
    start: MAX_SAFE - 9,
    count: 10,
  });
  assert.deepEqual(last, { nonce: null, hash: null });
  assert.equal(runOp('prime_count', { lo: 1e12 - 11, hi: 1e12 }), 1);
  assert.equal(
    runOp('mandelbrot_tile', { region: [2, 3, 2, 3], width: 65536, height: 1, max_iter: 1 }).counts
      .length,
    65536,
  );
});

test('exact mode caps times at 10**8', async () => {
  assert.throws(
    () => runOp('repeat_multiply', { initial: 1, factor: 1, times: 1e8 + 1, exact: true }),
    /times must be an integer from 0 to 10\*\*8 in exact mode/,
  );
  assert.equal(
    await runOp('repeat_multiply', { initial: 1, factor: 1, times: 1000, exact: true }),
    1,
  );
});
