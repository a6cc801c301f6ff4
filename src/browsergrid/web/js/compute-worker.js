// Module Web Worker: runs one op per message off the main thread and posts back its result or error.
import { runOp } from './ops.js';

self.onmessage = async ({ data: { task_id, op, args } }) => {
  const started = performance.now();
  try {
    const result = await runOp(op, args); // hash_search returns a Promise (crypto.subtle)
    // microsecond steps: enough to tell workers apart by speed, stable across timer precision
    const duration_ms = Math.max(0, Math.round((performance.now() - started) * 1000) / 1000);
    self.postMessage({ task_id, result, duration_ms });
  } catch (err) {
    self.postMessage({ task_id, error: String(err) });
  }
};
