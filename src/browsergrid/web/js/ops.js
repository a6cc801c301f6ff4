// Op implementations (pure; run only inside compute-worker.js) and their argument checks.

export const OPS = {
  repeat_multiply({ initial, factor, times }) {
    return initial * Math.pow(factor, times);
  },
};

const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);
const isCount = (value) => Number.isSafeInteger(value) && value >= 0;

// For each op: argument name -> [check, description used in the error message].
const ARGUMENTS = {
  repeat_multiply: {
    initial: [isNumber, 'a number'],
    factor: [isNumber, 'a number'],
    times: [isCount, 'an integer from 0 to 2**53 - 1'],
  },
};

export function runOp(op, args) {
  if (!Object.hasOwn(OPS, op)) throw new Error(`unknown op: ${JSON.stringify(op)}`);
  if (typeof args !== 'object' || args === null) throw new Error(`${op}: arguments must be an object`);
  for (const [name, [check, description]] of Object.entries(ARGUMENTS[op])) {
    if (!check(args[name])) {
      throw new Error(`${op}: ${name} must be ${description}, got ${JSON.stringify(args[name])}`);
    }
  }
  return OPS[op](args);
}
