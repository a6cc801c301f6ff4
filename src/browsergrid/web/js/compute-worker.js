// Module Web Worker: runs one op per message off the main thread and posts back its result or error.
// page.js first sends {setup} (capabilities.js setupFrom): the python op (Pyodide, loaded on its
// first task) and the ops of the coordinator's --ops-module join the built-in ops; the worker
// answers {setup: {ops, skipped, error}} with the ops module's op names. Without it, built-in ops only.
// {share} sets the volunteer's CPU share (duty-cycle.js): after each task the worker rests in
// proportion to how long it computed before it starts the next; a task under way is not interrupted.
// Besides results and errors it may post {log}: a line for the page's log (how Python started).

import { opsFromModule, PYTHON } from './capabilities.js';
import { restUntil } from './duty-cycle.js';
import { OPS, runOp } from './ops.js';
import { createPythonOp } from './python-op.js';

const extra = {}; // op name -> (args) => result (or a Promise): python and the ops module's
let ready = Promise.resolve(); // tasks wait for the setup
let share = 1; // the part of a core this worker computes, over time
let last = null; // {end, duration} of the last task (ms, performance.now clock)
let wake = null; // ends a rest early, to count it again with a new share

async function setUp({ python, opsModule }) {
  const answer = { ops: [], skipped: [], error: null };
  if (python)
    extra[PYTHON] = createPythonOp({ ...python, told: (log) => self.postMessage({ log }) });
  if (opsModule) {
    try {
      const { ops, skipped } = opsFromModule(await import(opsModule), [
        ...Object.keys(OPS),
        PYTHON,
      ]);
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

// The duty cycle: no CPU is used until the rest after the last task has passed (at the current share).
async function rest() {
  for (;;) {
    const wait = restUntil(last, share) - performance.now();
    if (wait <= 0) return;
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, wait);
    });
    wake = null;
  }
}

self.onmessage = async ({ data }) => {
  if (data.setup) {
    ready = setUp(data.setup).then((setup) => self.postMessage({ setup }));
    return;
  }
  if (data.share !== undefined) {
    share = data.share;
    wake?.();
    return;
  }
  const { task_id, op, args } = data;
  await ready;
  await rest();
  const started = performance.now();
  const computed = () => {
    const ended = performance.now();
    last = { end: ended, duration: ended - started }; // a failed task used the CPU too: it is rested after
    return ended - started;
  };
  try {
    const result = await run(op, args);
    // microsecond steps: enough to tell workers apart by speed, stable across timer precision
    const duration_ms = Math.max(0, Math.round(computed() * 1000) / 1000);
    self.postMessage({ task_id, result, duration_ms });
  } catch (err) {
    computed();
    self.postMessage({ task_id, error: String(err) });
  }
};
