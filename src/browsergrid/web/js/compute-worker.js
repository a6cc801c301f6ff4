// Module Web Worker: runs one op per message off the main thread and posts back its result or error.
// page.js first sends {setup} (capabilities.js setupFrom): the python op (Pyodide, loaded on its
// first task) and the ops of the coordinator's --ops-module join the built-in ops; the worker
// answers {setup: {ops, skipped, error}} with the ops module's op names. Without it, built-in ops only.
// {share} sets the volunteer's CPU share (duty-cycle.js): after each task the worker rests in
// proportion to how long it computed before it starts the next; a task under way is not interrupted.
// Besides results and errors it may post {log}: a line for the page's log (how Python started), and
// {holds: {add, drop}}: large blobs it kept in (or dropped from) the page's Cache Storage.
// A task message {task_id, op, args, blobs} carries its connection's blob context {base, key}
// (blobs.js): the refs in its arguments are fetched (or found in Cache Storage) before the op runs,
// and a result too large for a frame is uploaded and reported as a ref. A blob that cannot be fetched,
// or a result not uploaded, for a reason that is not the task's, is posted as {task_id, handBack}.

import { createBlobs, findRefs, resolveRefs } from './blobs.js';
import { opsFromModule, PYTHON } from './capabilities.js';
import { restUntil } from './duty-cycle.js';
import { OPS, runOp } from './ops.js';
import { createPythonOp } from './python-op.js';

const extra = {}; // op name -> (args) => result (or a Promise): python and the ops module's
let ready = Promise.resolve(); // tasks wait for the setup
let share = 1; // the part of a core this worker computes, over time
let last = null; // {end, duration} of the last task (ms, performance.now clock)
let wake = null; // ends a rest early, to count it again with a new share
// this worker's fetches in flight; the blobs kept are the page's, which tells the coordinator of them
const blobs = createBlobs({ onHolds: (holds) => self.postMessage({ holds }) });

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

// `contents`: the blobs the arguments' refs name. Every op but python gets the refs replaced by them;
// python gets the arguments as sent and the contents beside (python-op.js).
async function run(op, args, contents) {
  if (op === PYTHON && Object.hasOwn(extra, op)) return extra[op](args, contents);
  const resolved = contents.size > 0 ? resolveRefs(args, contents) : args;
  if (!Object.hasOwn(extra, op)) return runOp(op, resolved); // hash_search returns a Promise (crypto.subtle)
  const result = await extra[op](resolved);
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
  const { task_id, op, args, blobs: context = null } = data;
  await ready;
  let contents;
  try {
    contents = await blobs.contents(findRefs(args), context); // before the rest, which follows in full
  } catch (err) {
    self.postMessage(
      err?.handBack ? { task_id, handBack: String(err) } : { task_id, error: String(err) },
    );
    return;
  }
  await rest();
  const started = performance.now();
  let ended = null;
  try {
    const result = await run(op, args, contents);
    ended = performance.now();
    // uploaded after the clock stopped: duration_ms is the op's compute time, not the upload's
    const sent = await blobs.upload(result, context, task_id);
    // microsecond steps: enough to tell workers apart by speed, stable across timer precision
    const duration_ms = Math.max(0, Math.round((ended - started) * 1000) / 1000);
    self.postMessage({ task_id, result: sent, duration_ms });
  } catch (err) {
    self.postMessage(
      err?.handBack ? { task_id, handBack: String(err) } : { task_id, error: String(err) },
    );
  } finally {
    ended ??= performance.now(); // a failed task used the CPU too: it is rested after
    last = { end: ended, duration: ended - started };
  }
};
