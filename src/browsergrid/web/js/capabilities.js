// What this page offers the coordinator beyond the built-in ops: the python op (when the
// coordinator serves Pyodide) and the ops of its --ops-module. Pure: page.js and compute-worker.js use it.

export const PYTHON = 'python';
export const COLD_OPS = [PYTHON]; // ops with a start-up cost (Pyodide loads) until a first task of them ran
const MAX_OPS = 64; // protocol.md: hello.ops holds 1 to 64 names of 1 to 64 characters
const MAX_OP_NAME = 64;

// The absolute URLs a compute worker needs, from /page-config.json (`config`, fetched from
// `configUrl`); null members: the coordinator has no Pyodide, or no --ops-module.
export function setupFrom(config, configUrl) {
  const at = (path) => new URL(path, configUrl).href;
  const python = config?.python;
  const usable = typeof python?.pyodide === 'string' && typeof python?.runner === 'string';
  return {
    python: usable
      ? {
          pyodide: at(python.pyodide),
          runner: at(python.runner),
          snapshot: typeof python.snapshot === 'string' ? at(python.snapshot) : null,
        }
      : null,
    opsModule: typeof config?.ops_module === 'string' ? at(config.ops_module) : null,
  };
}

const runnable = (value) => {
  if (typeof value === 'function') return value;
  if (typeof value === 'object' && value !== null && typeof value.run === 'function')
    return value.run.bind(value);
  return null;
};

// The ops of an ops module (`exports`: its namespace object): each export that is a function,
// or an object with a `run` function, is the op of its name, run as fn(args) -> result (or a
// Promise of it). Other exports are not ops. Names in `reserved` (the built-in ops), `default`
// and names over 64 characters are skipped, each with the reason to show.
export function opsFromModule(exports, reserved) {
  const ops = {};
  const skipped = [];
  for (const name of Object.keys(exports).sort()) {
    const run = runnable(exports[name]);
    if (run === null) continue;
    if (name === 'default') {
      skipped.push({
        name,
        reason: 'a default export is not an op: export the function by its op name',
      });
    } else if (reserved.includes(name)) {
      skipped.push({ name, reason: `${name} is a built-in op: give the export another name` });
    } else if (name.length > MAX_OP_NAME) {
      skipped.push({ name, reason: `an op name is at most ${MAX_OP_NAME} characters` });
    } else {
      ops[name] = run;
    }
  }
  return { ops, skipped };
}

// hello.ops from the names this page can run, in order, without repeats: at most 64 of them
// (`dropped`: the rest, to warn about).
export function helloOps(names) {
  const unique = [...new Set(names)];
  return { ops: unique.slice(0, MAX_OPS), dropped: unique.slice(MAX_OPS) };
}

// hello.cold: the ops of `ops` with a start-up cost that no task of which has yet run here (`warm`: a Set).
export function coldOps(ops, warm) {
  return ops.filter((op) => COLD_OPS.includes(op) && !warm.has(op));
}
