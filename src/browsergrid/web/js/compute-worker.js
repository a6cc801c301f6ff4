// Module Web Worker: runs one op per message off the main thread and posts back its result or error.
// page.js first sends {setup} (capabilities.js setupFrom): the python op (Pyodide, loaded on its
// first task) and the ops of the coordinator's --ops-module join the built-in ops; the worker
// answers {setup: {ops, skipped, error}} with the ops module's op names. Without it, built-in ops only.
import { OPS, runOp } from './ops.js';
import { PYTHON, opsFromModule } from './capabilities.js';
import { createPythonOp } from './python-op.js';

const extra = {}; // op name -> (args) => result (or a Promise): python and the ops module's
let ready = Promise.resolve(); // tasks wait for the setup

async function setUp({ python, opsModule }) {
  const answer = { ops: [], skipped: [], error: null };
  if (python) extra[PYTHON] = createPythonOp(python);
  if (opsModule) {
    try {
      const { ops, skipped } = opsFromModule(await import(opsModule), [...Object.keys(OPS), PYTHON]);
      Object.assign(extra, ops);
      Object.assign(answer, { ops: Object.keys(ops), skipped });
    } catch (err) {
      answer.error = `the ops module ${opsModule} could not be loaded: ${err}`;
    }
  }
  return answer;
}

async function run(op, args) {
  if (!Object.hasOwn(extra, op)) return runOp(op, args); // hash_search returns a Promise (crypto.subtle)
  const result = await extra[op](args);
  if (op !== PYTHON && (result === undefined || JSON.stringify(result) === undefined)) {
    throw new Error(`${op} returned ${typeof result}: an op returns a JSON value`);
  }
  return result;
}

self.onmessage = async ({ data }) => {
  if (data.setup) {
    ready = setUp(data.setup).then((setup) => self.postMessage({ setup }));
    return;
  }
  const { task_id, op, args } = data;
  await ready;
  const started = performance.now();
  try {
    const result = await run(op, args);
    // microsecond steps: enough to tell workers apart by speed, stable across timer precision
    const duration_ms = Math.max(0, Math.round((performance.now() - started) * 1000) / 1000);
    self.postMessage({ task_id, result, duration_ms });
  } catch (err) {
    self.postMessage({ task_id, error: String(err) });
  }
};
