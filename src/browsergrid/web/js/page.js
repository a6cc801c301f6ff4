// Worker page main thread: keeps the coordinator connection, feeds tasks to a Web Worker pool, shows status.
import { ReconnectBackoff } from './backoff.js';
import { PYTHON, coldOps, helloOps, setupFrom } from './capabilities.js';
import { CoordinatorRing, coordinatorsFrom, failoverDelay } from './coordinators.js';
import { availableOps } from './ops.js';
import { claimWorkerKey } from './identity.js';
import { helloMessage, parseServerMessage, resultMessage, taskErrorMessage } from './protocol.js';
import { hideToken, tokenFrom } from './token.js';

const MAX_LOG_LINES = 200;
const MAX_LOGGED_CHARS = 200;
const MAX_CONCURRENCY = 1024; // protocol.md bound for hello.concurrency
const SETUP_WAIT_MS = 15000; // longest wait for the ops module's op names before connecting without them
const FILE_PAGE_SERVER = 'ws://127.0.0.1:8765/ws';
const REFUSED_WITHOUT_TOKEN = 'Could not connect: the coordinator is down, or it asks for a join token '
  + '(open this page as /?token=TOKEN)';
const REFUSED_WITH_TOKEN = 'Could not connect: the coordinator is down, or the ?token= of this page is not its join token';

const params = new URLSearchParams(location.search);
const token = tokenFrom(location.search); // a coordinator with --worker-token asks for it: /?token=TOKEN

function pickServerUrl() {
  if (params.get('server')) return params.get('server');
  if (location.protocol === 'https:') return `wss://${location.host}/ws`;
  if (location.protocol === 'http:') return `ws://${location.host}/ws`;
  return FILE_PAGE_SERVER;
}

function pickConcurrency() {
  const requested = Number(params.get('workers'));
  if (Number.isInteger(requested) && requested >= 1) return Math.min(requested, MAX_CONCURRENCY);
  return Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
}

const clip = (text) => (text.length > MAX_LOGGED_CHARS ? `${text.slice(0, MAX_LOGGED_CHARS)}…` : text);

// ?coordinators=A,B,...: several coordinators of one grid, tried round robin (coordinators.js); else one, as above.
const coordinators = new CoordinatorRing(coordinatorsFrom(location.search, pickServerUrl()));
const concurrency = pickConcurrency();
const backoff = new ReconnectBackoff();
const view = Object.fromEntries(
  ['state', 'server-url', 'worker-id', 'tasks-done', 'last-result', 'last-duration', 'log']
    .map((id) => [id, document.getElementById(id)]),
);
const status = { state: 'connecting', tasksDone: 0, workerId: null, lastResult: null, lastDuration: null, connects: 0 };
const queue = []; // jobs {socket, task, cancelled} waiting for a free compute worker
let socket = null;
let workerKey; // this tab's lasting identity (identity.js), sent in hello
let ops = availableOps(); // hello.ops: the built-in ops, then python and the ops module's (offerOps)
const warm = new Set(); // ops with a start-up cost that ran a task here (capabilities.js COLD_OPS)

window.browsergrid = {
  get state() { return status.state; },
  get tasksDone() { return status.tasksDone; },
  get workerId() { return status.workerId; },
  get lastResult() { return status.lastResult; },
  get connects() { return status.connects; },
  get coordinator() { return hideToken(coordinators.current); },
  get ops() { return [...ops]; },
};

function log(line) {
  console.log(line);
  const list = view.log;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 4;
  const item = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(time, ` ${line}`);
  list.append(item);
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function currentState() {
  if (socket?.readyState === WebSocket.OPEN) {
    return queue.length > 0 || pool.some((slot) => slot.job !== null) ? 'working' : 'connected';
  }
  return socket?.readyState === WebSocket.CONNECTING ? 'connecting' : 'disconnected';
}

function render() {
  status.state = currentState();
  view.state.textContent = status.state;
  view.state.dataset.state = status.state;
  view['worker-id'].textContent = status.workerId ?? '—';
  view['tasks-done'].textContent = String(status.tasksDone);
  view['last-result'].textContent = status.lastResult === null ? '—' : String(status.lastResult);
  view['last-duration'].textContent = status.lastDuration ?? '—';
}

// --- compute pool: every op runs in a module Web Worker, never on this thread ---

function startComputeWorker(index) {
  const slot = { job: null, worker: new Worker(new URL('./compute-worker.js', import.meta.url), { type: 'module' }) };
  slot.setUp = new Promise((resolve) => { slot.setupDone = resolve; });
  slot.worker.onmessage = ({ data }) => (data.setup ? slot.setupDone(data.setup) : finish(slot, data));
  slot.worker.onerror = (event) => {
    event.preventDefault();
    const reason = `compute worker ${index} failed: ${event.message || 'script error'}`;
    log(reason);
    if (slot.job !== null) finish(slot, { error: reason });
  };
  return slot;
}

const pool = Array.from({ length: concurrency }, (_, index) => startComputeWorker(index));

function dispatch() {
  for (const slot of pool) {
    if (queue.length === 0) break;
    if (slot.job !== null) continue;
    slot.job = queue.shift();
    const { task_id, op, args } = slot.job.task;
    slot.worker.postMessage({ task_id, op, args });
  }
  render();
}

function finish(slot, outcome) {
  const { socket: jobSocket, task, cancelled } = slot.job;
  slot.job = null;
  if (cancelled) {
    log(`Dropped cancelled task task_id=${task.task_id} (it finished after the cancel)`);
  } else if (jobSocket !== socket || jobSocket.readyState !== WebSocket.OPEN) {
    log(`Result dropped: task_id=${task.task_id} (its connection closed)`);
  } else if ('error' in outcome) {
    jobSocket.send(taskErrorMessage({ task_id: task.task_id, message: outcome.error }));
    log(`Error sent: task_id=${task.task_id} message=${clip(outcome.error)}`);
  } else {
    const { result, duration_ms } = outcome;
    warm.add(task.op);
    jobSocket.send(resultMessage({ task_id: task.task_id, result, duration_ms, agent: navigator.userAgent }));
    status.tasksDone += 1;
    status.lastResult = result;
    status.lastDuration = duration_ms;
    log(`Result sent: task_id=${task.task_id} result=${clip(String(result))} duration_ms=${duration_ms}`);
  }
  dispatch();
}

// --- coordinator connection ---

function enqueue(ws, task) {
  log(`Task received: task_id=${task.task_id} op=${task.op}`);
  queue.push({ socket: ws, task, cancelled: false });
}

// The coordinator took the task back: drop it if it waits; if it runs, let it finish unreported.
function cancel(ws, taskId) {
  let found = false;
  for (let i = queue.length - 1; i >= 0; i -= 1) {
    if (queue[i].socket === ws && queue[i].task.task_id === taskId) {
      queue.splice(i, 1);
      found = true;
      log(`Dropped cancelled task task_id=${taskId} (not started)`);
    }
  }
  for (const { job } of pool) {
    if (job !== null && job.socket === ws && job.task.task_id === taskId && !job.cancelled) {
      job.cancelled = true;
      found = true;
      log(`Cancelled task_id=${taskId} while it runs; its result will not be sent`);
    }
  }
  if (!found) log(`Cancel for task_id=${taskId} ignored (already finished or unknown)`);
}

const HANDLERS = {
  ack() {
    // the coordinator stored these results; the page keeps nothing to forget
  },
  task(ws, task) {
    enqueue(ws, task);
    dispatch();
  },
  tasks(ws, { tasks }) {
    for (const task of tasks) enqueue(ws, task);
    dispatch();
  },
  cancel(ws, { task_id }) {
    cancel(ws, task_id);
    render();
  },
  welcome(ws, { worker_id, server, protocol }) {
    status.workerId = worker_id;
    log(`Welcome: worker_id=${worker_id} server=${server} protocol=${protocol}`);
    render();
  },
  error(ws, { code, message, task_id }) {
    log(`Server error ${code}: ${clip(message)}${task_id === null ? '' : ` (task_id=${task_id})`}`);
  },
};

function receive(ws, data) {
  if (typeof data !== 'string') {
    log('Ignored a binary frame');
    return;
  }
  const parsed = parseServerMessage(data);
  if (!parsed.ok) log(`Invalid frame (${parsed.code}): ${clip(parsed.error)}`);
  else if (parsed.message === null) log(`Ignored message: ${clip(data)}`);
  else HANDLERS[parsed.message.type](ws, parsed.message);
}

// After a disconnect (`openedAt`: when the connection opened, null if it never did), the next coordinator of the list.
function scheduleReconnect(openedAt) {
  const now = Date.now();
  const waitMs = backoff.disconnected(now);
  if (coordinators.size === 1) {
    log(`Reconnecting in ${(waitMs / 1000).toFixed(1)} s`);
    setTimeout(connect, waitMs);
  } else {
    const delay = failoverDelay({ waitMs, coordinators: coordinators.size, openedAtMs: openedAt, nowMs: now });
    log(`Reconnecting to ${hideToken(coordinators.next())} in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  }
  render();
}

function connect() {
  const serverUrl = coordinators.current;
  const shownUrl = hideToken(serverUrl); // what the page shows and logs
  view['server-url'].textContent = shownUrl;
  let ws;
  try {
    ws = new WebSocket(serverUrl);
  } catch (err) {
    log(`Cannot connect to ${shownUrl}: ${err.message}`);
    scheduleReconnect(null);
    return;
  }
  socket = ws;
  let openedAt = null; // when it opened; null while it has not
  log(`Connecting to ${shownUrl}`);
  ws.onopen = () => {
    openedAt = Date.now();
    status.connects += 1;
    backoff.connected(openedAt);
    log(`Connected to ${shownUrl}`);
    // prefetch = concurrency: each compute worker has its next task waiting when it finishes
    ws.send(helloMessage({
      agent: navigator.userAgent, ops, concurrency, prefetch: concurrency, worker_key: workerKey, cold: coldOps(ops, warm),
    }));
    render();
  };
  ws.onmessage = ({ data }) => receive(ws, data);
  ws.onerror = () => log('WebSocket error (see the close below)');
  ws.onclose = ({ code, reason }) => {
    if (queue.length > 0) log(`Abandoned ${queue.length} queued task(s)`);
    queue.length = 0; // only this connection's tasks can be queued; the coordinator re-issues them
    status.workerId = null;
    log(`Closed: ${code} ${reason}`.trimEnd());
    // A refused upgrade (a missing or wrong join token: HTTP 401) looks like any failure to a page.
    if (openedAt === null) log(token ? REFUSED_WITH_TOKEN : REFUSED_WITHOUT_TOKEN);
    // So does a refused Origin (HTTP 403): another coordinator than this page's own needs --allow-origin.
    if (openedAt === null && coordinators.size > 1 && new URL(serverUrl).host !== location.host) {
      log(`(or it refuses this page's origin: start it with --allow-origin ${location.origin})`);
    }
    scheduleReconnect(openedAt);
  };
  render();
}

// --- what this page offers besides the built-in ops (the coordinator's /page-config.json) ---

async function pageConfig() {
  const url = new URL('page-config.json', document.baseURI);
  try {
    const response = await fetch(url, { cache: 'no-cache' });
    if (response.ok) return setupFrom(await response.json(), url);
  } catch {
    // a page opened from a file, or a coordinator without it: the built-in ops only
  }
  return setupFrom(null, url);
}

// The compute workers learn where Pyodide and the ops module are; the first names the module's ops.
async function offerOps() {
  const setup = await pageConfig();
  if (setup.python === null && setup.opsModule === null) return;
  for (const slot of pool) slot.worker.postMessage({ setup });
  const names = [...ops];
  if (setup.python !== null) {
    names.push(PYTHON);
    log('Python tasks: Pyodide loads on the first one (a few seconds), then stays loaded');
  }
  if (setup.opsModule !== null) {
    const timeout = new Promise((resolve) => { setTimeout(resolve, SETUP_WAIT_MS, null); });
    const answer = await Promise.race([pool[0].setUp, timeout]);
    if (answer === null) log(`The ops module ${setup.opsModule} took too long to load; its ops are not offered`);
    else if (answer.error !== null) log(answer.error);
    for (const { name, reason } of answer?.skipped ?? []) {
      console.warn(`browsergrid: ops module export ${name} skipped: ${reason}`);
      log(`Ops module export ${name} skipped: ${reason}`);
    }
    if (answer !== null && answer.ops.length > 0) log(`Custom ops: ${answer.ops.join(', ')}`);
    names.push(...(answer?.ops ?? []));
  }
  const offered = helloOps(names);
  if (offered.dropped.length > 0) log(`Not offered (64 ops at most): ${offered.dropped.join(', ')}`);
  ops = offered.ops;
}

view['server-url'].textContent = hideToken(coordinators.current);
if (coordinators.size > 1) log(`Coordinators: ${coordinators.urls.map(hideToken).join(', ')}`);
log(`Starting ${concurrency} compute worker(s)`);
const offering = offerOps().catch((err) => log(`Only the built-in ops are offered: ${err}`));
Promise.all([claimWorkerKey(), offering]).then(([key]) => {
  workerKey = key;
  connect();
});
