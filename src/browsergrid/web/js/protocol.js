// browsergrid wire protocol v1 (docs/protocol.md): decode coordinator frames, build worker frames.

export const PROTOCOL_VERSION = 1;

// protocol.md caps `agent` at 512 characters.
const MAX_AGENT_CHARS = 512;

const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
const isTaskId = (value) => Number.isInteger(value) || typeof value === 'string';

function invalid(code, error) {
  return { ok: false, code, error };
}

function decodeTask({ type, task_id, op, ...args }) {
  if (!isTaskId(task_id))
    return invalid('bad_message', 'task: task_id must be an integer or a string');
  if (typeof op !== 'string') return invalid('bad_message', 'task: op must be a string');
  return { ok: true, message: { type, task_id, op, args } };
}

// Every element must be a whole `task` object; one bad element makes the whole frame bad.
function decodeTasks({ type, tasks }) {
  if (!Array.isArray(tasks)) return invalid('bad_message', 'tasks: tasks must be an array');
  const decoded = [];
  for (const [index, item] of tasks.entries()) {
    if (!isObject(item) || item.type !== 'task') {
      return invalid('bad_message', `tasks: element ${index} must be a task object (type "task")`);
    }
    const parsed = decodeTask(item);
    if (!parsed.ok) return invalid('bad_message', `tasks: element ${index}: ${parsed.error}`);
    decoded.push(parsed.message);
  }
  return { ok: true, message: { type, tasks: decoded } };
}

function decodeCancel({ type, task_id }) {
  if (!isTaskId(task_id))
    return invalid('bad_message', 'cancel: task_id must be an integer or a string');
  return { ok: true, message: { type, task_id } };
}

function decodeAck({ type, task_ids }) {
  if (!Array.isArray(task_ids) || !task_ids.every(isTaskId)) {
    return invalid('bad_message', 'ack: task_ids must be a list of task ids');
  }
  return { ok: true, message: { type, task_ids } };
}

// `blob_key` (docs/protocol.md, "Blobs") is left out of the message when absent: an older coordinator.
function decodeWelcome({ type, protocol, worker_id, server, limits, blob_key = null }) {
  if (!Number.isInteger(protocol))
    return invalid('bad_message', 'welcome: protocol must be an integer');
  if (!Number.isInteger(worker_id))
    return invalid('bad_message', 'welcome: worker_id must be an integer');
  if (typeof server !== 'string') return invalid('bad_message', 'welcome: server must be a string');
  if (!isObject(limits)) return invalid('bad_message', 'welcome: limits must be an object');
  if (blob_key !== null && typeof blob_key !== 'string')
    return invalid('bad_message', 'welcome: blob_key must be a string or absent');
  const message = { type, protocol, worker_id, server, limits };
  if (blob_key !== null) message.blob_key = blob_key;
  return { ok: true, message };
}

function decodeError({ type, code, message, task_id = null }) {
  if (typeof code !== 'string') return invalid('bad_message', 'error: code must be a string');
  if (typeof message !== 'string') return invalid('bad_message', 'error: message must be a string');
  if (task_id !== null && !isTaskId(task_id)) {
    return invalid('bad_message', 'error: task_id must be an integer, a string or absent');
  }
  return { ok: true, message: { type, code, message, task_id } };
}

const DECODERS = {
  task: decodeTask,
  tasks: decodeTasks,
  cancel: decodeCancel,
  ack: decodeAck,
  welcome: decodeWelcome,
  error: decodeError,
};

// Returns {ok:true, message}, {ok:true, message:null} for an unknown type, or {ok:false, code, error}.
export function parseServerMessage(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (err) {
    return invalid('bad_json', `frame is not valid JSON: ${err.message}`);
  }
  if (!isObject(frame)) return invalid('bad_json', 'frame is not a JSON object');
  if (typeof frame.type !== 'string') return invalid('bad_message', 'type must be a string');
  if (!Object.hasOwn(DECODERS, frame.type)) return { ok: true, message: null };
  return DECODERS[frame.type](frame);
}

const clipAgent = (agent) => String(agent).slice(0, MAX_AGENT_CHARS);

// `prefetch`: tasks the coordinator may send beyond `concurrency`, to wait here (0..1024).
// `cold`: ops with a start-up cost (Pyodide) until this worker's first task of them ends.
export const MAX_HOLDS = 4096; // protocol.md: blobs one hello or holds frame may name

export function helloMessage({
  agent,
  ops,
  concurrency,
  prefetch = 1,
  worker_key,
  cold = [],
  holds = [],
}) {
  const message = {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    agent: clipAgent(agent),
    ops,
    concurrency,
    prefetch,
  };
  if (worker_key !== undefined) message.worker_key = worker_key;
  if (cold.length) message.cold = cold;
  if (holds.length) message.holds = holds.slice(0, MAX_HOLDS);
  return JSON.stringify(message);
}

export function resultMessage({ task_id, result, duration_ms, agent }) {
  const message = { type: 'result', task_id, result, duration_ms };
  if (agent !== undefined) message.agent = clipAgent(agent);
  return JSON.stringify(message);
}

// Several results in one frame; send it only after `welcome` (an exercise server knows only `result`).
export function resultsMessage({ results, agent }) {
  const message = {
    type: 'results',
    results: results.map(({ task_id, result, duration_ms }) => ({ task_id, result, duration_ms })),
  };
  if (agent !== undefined) message.agent = clipAgent(agent);
  return JSON.stringify(message);
}

export function taskErrorMessage({ task_id, message }) {
  return JSON.stringify({ type: 'error', task_id, message: String(message) });
}

// After welcome: how much this tab gives now (concurrency 0: paused; share: 0 < share <= 1 of a core per task).
export function capacityMessage({ concurrency, prefetch, share = 1 }) {
  const message = { type: 'capacity', concurrency };
  if (prefetch !== undefined) message.prefetch = prefetch;
  if (share !== 1) message.share = share;
  return JSON.stringify(message);
}

// Tasks this tab holds and will not run (it paused): the coordinator queues them again at once.
export function handBackMessage({ task_ids }) {
  return JSON.stringify({ type: 'hand_back', task_ids });
}

// The blobs the page has at hand now (`add`) and no longer (`drop`), at most MAX_HOLDS of each.
export function holdsMessage({ add = [], drop = [] }) {
  return JSON.stringify({ type: 'holds', add, drop });
}
