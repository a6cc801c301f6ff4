// Checks web/js/ops.js: repeat_multiply and runOp's argument errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPS, runOp } from '../../src/browsergrid/web/js/ops.js';

const WELCOME_TASK = { initial: 1.0000054, factor: 1.00000043, times: 1000000 };
const WELCOME_RESULT = 1.5372656826974733;

test('OPS lists exactly repeat_multiply', () => {
  assert.deepEqual(Object.keys(OPS), ['repeat_multiply']);
});

test('repeat_multiply of the welcome task is 1.5372656826974733 within 1e-12', () => {
  for (const result of [OPS.repeat_multiply(WELCOME_TASK), runOp('repeat_multiply', WELCOME_TASK)]) {
    assert.ok(Math.abs(result - WELCOME_RESULT) / WELCOME_RESULT < 1e-12, String(result));
  }
});

test('repeat_multiply with times 0 returns initial', () => {
  assert.equal(runOp('repeat_multiply', { initial: 2.5, factor: 7, times: 0 }), 2.5);
});

test('runOp ignores extra arguments', () => {
  assert.equal(runOp('repeat_multiply', { initial: 3, factor: 2, times: 2, note: 'x' }), 12);
});

test('runOp refuses an unknown op, including prototype member names', () => {
  for (const op of ['noop', 'toString', 'constructor', '__proto__']) {
    assert.throws(() => runOp(op, {}), { name: 'Error', message: /unknown op/ }, op);
  }
});

test('runOp refuses bad arguments with a message naming the argument', () => {
  const bad = [
    [{ factor: 2, times: 1 }, /initial must be a number/],
    [{ initial: '1', factor: 2, times: 1 }, /initial must be a number/],
    [{ initial: 1, factor: null, times: 1 }, /factor must be a number/],
    [{ initial: 1, factor: 2, times: -1 }, /times must be an integer from 0 to 2\*\*53 - 1/],
    [{ initial: 1, factor: 2, times: 1.5 }, /times must be an integer from 0 to 2\*\*53 - 1/],
    [{ initial: 1, factor: 2, times: '3' }, /times must be an integer from 0 to 2\*\*53 - 1/],
    [{ initial: 1, factor: 2 }, /times must be an integer from 0 to 2\*\*53 - 1/],
    [{ initial: 1, factor: 2, times: 2 ** 53 }, /times must be an integer from 0 to 2\*\*53 - 1/],
  ];
  for (const [args, message] of bad) {
    assert.throws(() => runOp('repeat_multiply', args), { name: 'Error', message }, JSON.stringify(args));
  }
  assert.throws(() => runOp('repeat_multiply', null), /arguments must be an object/);
});
