// Worker page main thread: keeps the coordinator connection, feeds tasks to a Web Worker pool, shows status,
// and applies the volunteer's settings (workers, CPU share, pausing), telling the coordinator of each change.
import { ReconnectBackoff } from './backoff.js';
import { blobBase, heldBlobs } from './blobs.js';
import { coldOps, helloOps, PYTHON, setupFrom } from './capabilities.js';
import { Contribution, formatComputeTime } from './contribution.js';
import { CoordinatorRing, coordinatorsFrom, failoverDelay } from './coordinators.js';
import { restUntil } from './duty-cycle.js';
import { LANGUAGES, pageLanguage, rememberLanguage } from './i18n.js';
import { claimWorkerKeys } from './identity.js';
import { availableOps } from './ops.js';
import { STRINGS } from './page-strings.js';
import { preview } from './preview.js';
import {
  capacityMessage,
  handBackMessage,
  helloMessage,
  holdsMessage,
  MAX_HOLDS,
  parseServerMessage,
  resultMessage,
  resultsMessage,
  taskErrorMessage,
} from './protocol.js';
import { loadSettings, SHARES, saveSettings, workerChoices, workersFromQuery } from './settings.js';
import { hideToken, tokenFrom } from './token.js';

const MAX_LOG_LINES = 200;
const MAX_LOGGED_CHARS = 200;
const MAX_HAND_BACK = 4096; // protocol.md: one hand_back holds 1 to 4096 task ids
const SETUP_WAIT_MS = 15000; // longest wait for the ops module's op names before connecting without them
const RENDER_MS = 250; // the page's figures are redrawn at most this often while tasks run
// Each WebSocket frame costs the browser about half a millisecond of CPU (network service, browser process,
// renderer IO), taken from the compute Web Workers on the same cores. So a tab asks for several tasks per
// compute worker (the coordinator trims that to --work-buffer seconds of work at the tab's speed) and
// sends its results several to a `results` frame: once they are half of what it holds, when it has
// nothing left to start, or RESULTS_HOLD_MS after the first, whichever comes first. The coordinator
// answers a `results` frame with one `tasks` frame (and one `ack`): three frames per batch, not per task.
const PREFETCH_PER_WORKER = 16;
const RESULTS_HOLD_MS = 50;
const FLUSH_MS = 1000; // the contribution totals reach localStorage at most this often (and when the tab goes)
const DEFAULT_NAME = 'browsergrid'; // the heading until /page-config.json names the coordinator
const FILE_PAGE_SERVER = 'ws://127.0.0.1:8765/ws';
const REFUSED_WITHOUT_TOKEN =
  'Could not connect: the coordinator is down, or it asks for a join token '
  + '(open this page as /?token=TOKEN)';
const REFUSED_WITH_TOKEN =
  'Could not connect: the coordinator is down, or the ?token= of this page is not its join token';

const params = new URLSearchParams(location.search);
const token = tokenFrom(location.search); // a coordinator with --worker-token asks for it: /?token=TOKEN

function pickServerUrl() {
  if (params.get('server')) return params.get('server');
  if (location.protocol === 'https:') return `wss://${location.host}/ws`;
  if (location.protocol === 'http:') return `ws://${location.host}/ws`;
  return FILE_PAGE_SERVER;
}

// localStorage, or null where merely touching it throws (a sandboxed frame, some private windows).
function localStore() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

const clip = (text) =>
  text.length > MAX_LOGGED_CHARS ? `${text.slice(0, MAX_LOGGED_CHARS)}…` : text;

// ?coordinators=A,B,...: several coordinators of one grid, tried round robin (coordinators.js); else one, as above.
const coordinators = new CoordinatorRing(coordinatorsFrom(location.search, pickServerUrl()));
const storage = localStore();
const cores = navigator.hardwareConcurrency;
const settings = loadSettings(storage, cores); // settings.js: what the volunteer chose, remembered
let workersForThisVisit = workersFromQuery(location.search); // ?workers=N wins until the control is changed
const workerCount = () => workersForThisVisit ?? settings.workers;
let lang = pageLanguage({ location, navigator, localStorage: storage });
const contribution = new Contribution(storage);
const backoff = new ReconnectBackoff();
const view = Object.fromEntries(
  [
    'state',
    'server-url',
    'worker-id',
    'tasks-done',
    'last-result',
    'last-duration',
    'log',
    'name',
    'message',
    'about',
    'pause',
    'activity',
    'now',
    'waiting',
    'session-time',
    'total-tasks',
    'total-time',
    'total-since',
    'workers',
    'workers-help',
    'share',
    'pause-hidden',
    'pause-battery',
    'battery-row',
    'storage-note',
    'lang-en',
    'lang-es',
  ].map((id) => [id, document.getElementById(id)]),
);
const status = {
  state: 'connecting',
  tasksDone: 0,
  workerId: null,
  lastResult: null,
  lastDuration: null,
  connects: 0,
};
const queue = []; // jobs {socket, task, cancelled} waiting for a free compute worker
const pauseReasons = new Set(); // why this tab is paused: 'user', 'hidden', 'battery'; empty: it computes
const paused = () => pauseReasons.size > 0;
let socket = null;
let welcomedBy = null; // the socket whose coordinator sent welcome: only it hears capacity and hand_back
let helloConcurrency = null; // the concurrency the hello of the current socket announced
let workerKeys = new Map(); // this tab's lasting identity (identity.js): the worker_key for each coordinator URL
let ops = availableOps(); // hello.ops: the built-in ops, then python and the ops module's (offerOps)
let computeSetup = null; // what each compute worker is told to set up (offerOps); null: built-in ops only
let coordinatorName = DEFAULT_NAME;
let battery = null; // the Battery Status API's manager, where the browser has it
let flushTimer = null;
let renderTimer = null; // a redraw asked for by tasks (renderSoon)
const unsent = []; // results of the current socket's tasks not sent yet: {task_id, result, duration_ms}
let frameLimit = 1048576; // the coordinator's largest frame (welcome's limits.max_frame_bytes)
let unsentTimer = null; // sends them RESULTS_HOLD_MS after the first
const warm = new Set(); // ops with a start-up cost that ran a task here (capabilities.js COLD_OPS)
// socket -> {base, key}: where its tasks' blobs come from (blobs.js): the coordinator's http(s) origin,
// and welcome's blob_key (null until then, or from an older coordinator). Each task carries its own.
const blobContexts = new WeakMap();

window.browsergrid = {
  get state() {
    return currentState();
  },
  get tasksDone() {
    return status.tasksDone;
  },
  get workerId() {
    return status.workerId;
  },
  get lastResult() {
    return status.lastResult;
  },
  get connects() {
    return status.connects;
  },
  get coordinator() {
    return hideToken(coordinators.current);
  },
  get ops() {
    return [...ops];
  },
  get paused() {
    return paused();
  },
  get pauseReasons() {
    return [...pauseReasons];
  },
  get workers() {
    return pool.length;
  },
  get share() {
    return settings.share;
  },
  get language() {
    return lang;
  },
  get held() {
    return heldJobs().map((job) => job.task.task_id);
  },
  get contribution() {
    return { session: { ...contribution.session }, total: contribution.total };
  },
};

// Lines reach the page's log in batches (at most every RENDER_MS): reading the list's scroll position
// makes the browser lay the page out, which twice per task took CPU from the compute Web Workers. Of a
// batch's task lines (received, result sent, error sent) the last LOG_TASK_LINES are shown, after one
// line that counts the others: hundreds of lines a second are unreadable, and each costs a list item.
const unshownLog = [];
const LOG_TASK_LINES = 4;
let logTimer = null;
// toLocaleTimeString's format, made once: the call builds a formatter each time (a line costs more)
const clock = new Intl.DateTimeFormat([], {
  hour: 'numeric',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});
// The console gets every line but a task's own (received, result sent, error sent) past the first
// CONSOLE_TASK_LINES: a console line costs the main thread about as much as a 1 ms task (more with
// DevTools or a driver listening), and the page's main thread stands between the socket and the compute
// Web Workers. Past them, one line every CONSOLE_SUMMARY_MS counts the task lines left out.
const CONSOLE_TASK_LINES = 50;
const CONSOLE_SUMMARY_MS = 10_000;
let consoleTaskLines = 0;
let unshownTaskLines = 0;
let summaryTimer = null;

function log(line, { task = false } = {}) {
  if (!task || consoleTaskLines < CONSOLE_TASK_LINES) {
    console.log(line);
    if (task) consoleTaskLines += 1;
  } else {
    unshownTaskLines += 1;
    if (summaryTimer === null) summaryTimer = setTimeout(summarizeTaskLines, CONSOLE_SUMMARY_MS);
  }
  unshownLog.push([Date.now(), line, task]); // formatted when shown: only the last MAX_LOG_LINES are
  if (logTimer === null) logTimer = setTimeout(showLog, RENDER_MS);
}

function summarizeTaskLines() {
  summaryTimer = null;
  console.log(`(${unshownTaskLines} task line(s) shown on the page only)`);
  unshownTaskLines = 0;
}

function showLog() {
  logTimer = null;
  const list = view.log;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 4;
  const batch = unshownLog.splice(0);
  const taskLines = batch.filter(([, , task]) => task).length;
  let skipped = taskLines - LOG_TASK_LINES;
  const shown = [];
  for (const entry of batch) {
    if (entry[2] && skipped > 0) {
      skipped -= 1;
      if (skipped === 0) shown.push([entry[0], `(${taskLines - LOG_TASK_LINES} more task lines)`]);
    } else {
      shown.push(entry);
    }
  }
  for (const [when, line] of shown.slice(-MAX_LOG_LINES)) {
    const item = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = clock.format(when);
    item.append(time, ` ${line}`);
    list.append(item);
  }
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

const isOpen = () => socket?.readyState === WebSocket.OPEN;
const welcomed = () => isOpen() && welcomedBy === socket;

function currentState() {
  if (isOpen()) {
    if (paused()) return 'paused';
    return queue.length > 0 || pool.some((slot) => slot.job !== null) ? 'working' : 'connected';
  }
  return socket?.readyState === WebSocket.CONNECTING ? 'connecting' : 'disconnected';
}

// The tasks this tab holds for the current connection: running, then waiting.
function heldJobs() {
  const running = pool.map((slot) => slot.job).filter((job) => job !== null);
  return [...running, ...queue].filter((job) => job.socket === socket && !job.cancelled);
}

// --- what the page shows ---

let shownSlots = '';
let restTimer = null;

function slotText(t, slot, now) {
  const resting = restUntil(slot.last, settings.share) > now;
  if (slot.job !== null) {
    const { op, task_id } = slot.job.task;
    return resting ? t.slotResting(op, task_id) : t.slotComputing(op, task_id);
  }
  if (paused()) return t.slotPaused;
  return resting ? t.slotRestingIdle : t.slotIdle;
}

// "Now computing": one line per compute worker; redrawn when a rest under way ends.
function renderSlots(t) {
  const now = performance.now();
  const lines = pool.map((slot, index) => [t.slotName(index + 1), slotText(t, slot, now)]);
  const key = JSON.stringify(lines);
  if (key !== shownSlots) {
    shownSlots = key;
    view.now.replaceChildren(
      ...lines.map(([name, what]) => {
        const item = document.createElement('li');
        const label = document.createElement('span');
        label.className = 'slot';
        label.textContent = name;
        const activity = document.createElement('span');
        activity.textContent = what;
        item.append(label, activity);
        return item;
      }),
    );
  }
  const nextEnd = Math.min(
    ...pool.map((slot) => restUntil(slot.last, settings.share)).filter((end) => end > now),
  );
  if (restTimer === null && Number.isFinite(nextEnd)) {
    restTimer = setTimeout(
      () => {
        restTimer = null;
        render();
      },
      nextEnd - now + 20,
    );
  }
}

function render() {
  const t = STRINGS[lang];
  status.state = currentState();
  view.state.textContent = t.states[status.state];
  view.state.dataset.state = status.state;
  view['worker-id'].textContent = status.workerId ?? '—';
  view['tasks-done'].textContent = String(status.tasksDone);
  view['last-result'].textContent = status.lastResult === null ? '—' : preview(status.lastResult);
  view['last-duration'].textContent = status.lastDuration ?? '—';
  view.pause.textContent = paused() ? t.resume : t.pause;
  view.pause.dataset.paused = String(paused());
  view.activity.textContent = paused()
    ? t.pausedBecause[[...pauseReasons].at(-1)]
    : t.running(workerCount(), Math.round(settings.share * 100));
  view.waiting.textContent = queue.length > 0 ? t.waiting(queue.length) : '';
  renderSlots(t);
  const { session, total } = contribution;
  view['session-time'].textContent = formatComputeTime(session.computeMs, lang);
  view['total-tasks'].textContent = String(total.tasks);
  view['total-time'].textContent = formatComputeTime(total.computeMs, lang);
  view['total-since'].textContent =
    total.since === null
      ? t.sinceNone
      : t.since(
          new Date(total.since).toLocaleDateString(lang, {
            year: 'numeric',
            month: 'long',
            day: 'numeric',
          }),
        );
}

// The texts that change only with the language (or the coordinator's name), then the rest.
function applyLanguage() {
  const t = STRINGS[lang];
  document.documentElement.lang = lang;
  const named = coordinatorName !== DEFAULT_NAME;
  document.title = named ? t.title(coordinatorName) : t.titleUnnamed;
  for (const element of document.querySelectorAll('[data-s]'))
    element.textContent = t[element.dataset.s];
  for (const element of document.querySelectorAll('[data-s-label]'))
    element.setAttribute('aria-label', t[element.dataset.sLabel]);
  view.state.title = t.stateLabel;
  for (const code of LANGUAGES)
    view[`lang-${code}`].setAttribute('aria-pressed', String(code === lang));
  view.about.textContent = t.about(named ? coordinatorName : t.unnamed);
  view['workers-help'].textContent = Number.isInteger(cores)
    ? t.workersHelp(cores)
    : t.workersHelpUnknown;
  view['storage-note'].textContent = storage === null ? t.notRemembered : t.remembered;
  render();
}

function setLanguage(next) {
  if (!LANGUAGES.includes(next) || next === lang) return;
  lang = next;
  rememberLanguage(storage, next);
  applyLanguage();
}

// The coordinator's name and message (serve --name/--message), as text: never parsed as HTML.
function showCoordinator(config) {
  if (typeof config?.name === 'string' && config.name.trim() !== '') coordinatorName = config.name;
  view.name.textContent = coordinatorName;
  const message = typeof config?.message === 'string' ? config.message : '';
  view.message.textContent = message;
  view.message.hidden = message === '';
  applyLanguage();
}

// --- compute pool: every op runs in a module Web Worker, never on this thread ---

function startComputeWorker() {
  const slot = {
    job: null,
    last: null, // {end, duration} of its last task (performance.now clock): when its rest ends (duty-cycle.js)
    worker: new Worker(new URL('./compute-worker.js', import.meta.url), { type: 'module' }),
  };
  slot.setUp = new Promise((resolve) => {
    slot.setupDone = resolve;
  });
  slot.worker.onmessage = ({ data }) => {
    if (data.setup) slot.setupDone(data.setup);
    else if (typeof data.log === 'string')
      log(data.log); // how Python started (python-op.js)
    else if (data.holds) tellHolds(data.holds);
    else finish(slot, data);
  };
  slot.worker.onerror = (event) => {
    event.preventDefault();
    const reason = `compute worker ${pool.indexOf(slot) + 1} failed: ${event.message || 'script error'}`;
    log(reason);
    if (slot.job !== null) finish(slot, { error: reason });
  };
  if (computeSetup !== null) slot.worker.postMessage({ setup: computeSetup });
  if (settings.share !== 1) slot.worker.postMessage({ share: settings.share });
  return slot;
}

const pool = Array.from({ length: workerCount() }, () => startComputeWorker());

// Starts waiting tasks on free compute workers, those done resting first (none while paused).
function dispatch() {
  if (!paused()) {
    const free = pool
      .filter((slot) => slot.job === null)
      .sort((a, b) => restUntil(a.last, settings.share) - restUntil(b.last, settings.share));
    for (const slot of free) {
      if (queue.length === 0) break;
      slot.job = queue.shift();
      const { task_id, op, args } = slot.job.task;
      const blobs = blobContexts.get(slot.job.socket) ?? null;
      slot.worker.postMessage({ task_id, op, args, blobs });
    }
  }
}

// Tasks come and go many times a second: the page is redrawn for them at most every RENDER_MS, since
// each redraw (style, layout, paint) takes CPU from the compute Web Workers on the same cores.
function renderSoon() {
  if (renderTimer !== null) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    render();
  }, RENDER_MS);
}

function scheduleFlush() {
  if (flushTimer !== null) return;
  flushTimer = setTimeout(() => {
    flushTimer = null;
    contribution.flush();
  }, FLUSH_MS);
}

function finish(slot, outcome) {
  if (slot.job === null) return; // nothing was asked of it (a failure while idle)
  const { socket: jobSocket, task, cancelled } = slot.job;
  slot.job = null;
  if (typeof outcome.duration_ms === 'number')
    slot.last = { end: performance.now(), duration: outcome.duration_ms };
  if (cancelled) {
    log(`Dropped cancelled task task_id=${task.task_id} (it finished after the cancel)`);
  } else if (jobSocket !== socket || jobSocket.readyState !== WebSocket.OPEN) {
    log(`Result dropped: task_id=${task.task_id} (its connection closed)`);
  } else if ('handBack' in outcome) {
    handBack([{ socket: jobSocket, task, cancelled }], clip(outcome.handBack)); // another worker may
  } else if ('error' in outcome) {
    sendResults();
    jobSocket.send(taskErrorMessage({ task_id: task.task_id, message: outcome.error }));
    log(`Error sent: task_id=${task.task_id} message=${clip(outcome.error)}`, { task: true });
  } else {
    const { result, duration_ms } = outcome;
    warm.add(task.op);
    if (welcomed()) {
      unsent.push({ task_id: task.task_id, result, duration_ms });
    } else {
      // an exercise server knows only `result`
      jobSocket.send(
        resultMessage({ task_id: task.task_id, result, duration_ms, agent: navigator.userAgent }),
      );
    }
    status.tasksDone += 1;
    status.lastResult = result;
    status.lastDuration = duration_ms;
    contribution.add(duration_ms);
    scheduleFlush();
    log(
      `Result sent: task_id=${task.task_id} result=${preview(result, MAX_LOGGED_CHARS)} duration_ms=${duration_ms}`,
      { task: true },
    );
  }
  dispatch();
  if (unsent.length > 0) resultsDue();
  renderSoon();
}

// Sends the results held once they are half of what this tab holds of the socket's tasks, or nothing is
// left to start (the coordinator has nothing more for it, or is about to send the next batch); else
// RESULTS_HOLD_MS after the first (see PREFETCH_PER_WORKER).
function resultsDue() {
  const waiting = queue.filter((job) => job.socket === socket).length;
  const running = pool.filter((slot) => slot.job !== null && slot.job.socket === socket).length;
  if (waiting === 0 || 2 * unsent.length >= waiting + running + unsent.length) sendResults();
  else if (unsentTimer === null) unsentTimer = setTimeout(sendResults, RESULTS_HOLD_MS);
}

// Sends every result held, in one frame (before anything else this tab tells the coordinator).
function sendResults() {
  if (unsentTimer !== null) {
    clearTimeout(unsentTimer);
    unsentTimer = null;
  }
  if (unsent.length === 0) return;
  const results = unsent.splice(0);
  if (!isOpen()) {
    log(`Results dropped: ${results.length} (the connection closed)`);
    return;
  }
  // Frames of at most half the coordinator's limit, counting 3 bytes per UTF-16 unit (UTF-8's most): a
  // large result goes alone, as it went before results were sent together.
  const agent = navigator.userAgent;
  let batch = [];
  let bytes = 0;
  const send = () => {
    socket.send(
      batch.length === 1
        ? resultMessage({ ...batch[0], agent })
        : resultsMessage({ results: batch, agent }),
    );
    batch = [];
    bytes = 0;
  };
  for (const item of results) {
    // measured only when results go together (a lone one is sent as it is, stringified once)
    const size = results.length === 1 ? 0 : 3 * (JSON.stringify(item.result)?.length ?? 4) + 100;
    if (batch.length > 0 && bytes + size > frameLimit / 2) send();
    batch.push(item);
    bytes += size;
  }
  send();
}

// Ends the compute worker of `slot` at once and puts a fresh one in its place; returns its job, if any.
function replaceComputeWorker(slot) {
  slot.worker.terminate();
  pool[pool.indexOf(slot)] = startComputeWorker();
  return slot.job;
}

// Tells the coordinator which large blobs this page keeps now (after welcome only), so that tasks that
// read them come here first; a coordinator without blobs (no blob_key) is told nothing.
function tellHolds({ add = [], drop = [] }) {
  if (!welcomed() || !blobContexts.get(socket)?.key || (add.length === 0 && drop.length === 0))
    return;
  socket.send(holdsMessage({ add: add.slice(0, MAX_HOLDS), drop: drop.slice(0, MAX_HOLDS) }));
}

// Gives tasks back to the coordinator (after welcome only), which queues them again for others at once.
function handBack(jobs, why) {
  const ids = jobs
    .filter((job) => job.socket === socket && !job.cancelled)
    .map((job) => job.task.task_id);
  if (ids.length === 0 || !welcomed()) return;
  sendResults();
  for (let start = 0; start < ids.length; start += MAX_HAND_BACK) {
    socket.send(handBackMessage({ task_ids: ids.slice(start, start + MAX_HAND_BACK) }));
  }
  log(`Handed back ${ids.length} task(s) (${why}): task_id=${clip(ids.join(','))}`);
}

// Tells the coordinator how much this tab gives now (after welcome only): nothing while paused.
function sendCapacity() {
  if (!welcomed()) return;
  const concurrency = paused() ? 0 : workerCount();
  const prefetch = concurrency * PREFETCH_PER_WORKER;
  const capacity = paused() ? { concurrency } : { concurrency, prefetch, share: settings.share };
  sendResults();
  socket.send(capacityMessage(capacity));
  log(
    `Capacity sent: concurrency=${concurrency}${paused() ? '' : ` prefetch=${prefetch} share=${settings.share}`}`,
  );
}

// Pausing stops now: compute workers that hold a task are ended (and started afresh, idle), and every task
// this tab holds goes back to the coordinator. Before a welcome (a server that never sends one), the
// tasks wait here for the resume instead.
function stopComputing() {
  const stopped = pool
    .filter((slot) => slot.job !== null)
    .map(replaceComputeWorker)
    .filter((job) => job.socket === socket && !job.cancelled);
  queue.unshift(...stopped);
  log(`Paused (${[...pauseReasons].join(', ')}): ${stopped.length} running task(s) stopped`);
  sendCapacity();
  if (welcomed()) handBack(queue.splice(0), 'paused');
}

function startComputing() {
  log('Resumed');
  sendCapacity();
}

function setPaused(reason, on) {
  const was = paused();
  if (on) pauseReasons.add(reason);
  else pauseReasons.delete(reason);
  if (!was && paused()) stopComputing();
  else if (was && !paused()) startComputing();
  dispatch();
  render();
}

// The button: pause; or resume, whatever paused it (a pause for the battery comes back on its next change).
function togglePause() {
  if (!paused()) {
    setPaused('user', true);
    return;
  }
  pauseReasons.clear();
  startComputing();
  dispatch();
  render();
}

// Tasks beyond what `workerCount()` workers hold (concurrency + prefetch) go back to the coordinator.
function handBackExcess() {
  const running = pool.filter((slot) => slot.job !== null && !slot.job.cancelled).length;
  const room = Math.max(0, (1 + PREFETCH_PER_WORKER) * workerCount() - running);
  if (queue.length > room) handBack(queue.splice(room), 'fewer workers');
}

// As many compute workers as `count`: idle ones go first; a running task of one ended waits here again.
function resizePool(count) {
  while (pool.length > count) {
    const idle = pool.findLastIndex((slot) => slot.job === null);
    const [slot] = pool.splice(idle >= 0 ? idle : pool.length - 1, 1);
    slot.worker.terminate();
    if (slot.job !== null && slot.job.socket === socket && !slot.job.cancelled)
      queue.unshift(slot.job);
  }
  while (pool.length < count) pool.push(startComputeWorker());
}

function remember() {
  return saveSettings(storage, settings);
}

function setWorkers(count) {
  if (!Number.isInteger(count) || count < 1 || count === pool.length) return;
  workersForThisVisit = null;
  settings.workers = count;
  remember();
  resizePool(count);
  log(`${count} compute worker(s)`);
  if (!paused()) sendCapacity();
  if (welcomed()) handBackExcess();
  dispatch();
  render();
}

function setShare(share) {
  if (!SHARES.includes(share) || share === settings.share) return;
  settings.share = share;
  remember();
  for (const slot of pool) slot.worker.postMessage({ share });
  log(`CPU share: ${Math.round(share * 100)}%`);
  if (!paused()) sendCapacity();
  render();
}

// Page Visibility: with the setting on, a hidden tab (another tab in front, a minimised window) pauses.
function checkVisibility() {
  setPaused('hidden', settings.pauseWhenHidden && document.visibilityState === 'hidden');
}

// Battery Status API (Chromium): with the setting on, a computer that is not charging pauses.
function checkBattery() {
  setPaused('battery', settings.pauseOnBattery && battery !== null && battery.charging === false);
}

async function watchBattery() {
  if (typeof navigator.getBattery !== 'function') return;
  try {
    battery = await navigator.getBattery();
  } catch {
    return; // refused (a permissions policy): the control stays hidden
  }
  view['battery-row'].hidden = false;
  battery.addEventListener('chargingchange', checkBattery);
  checkBattery();
}

function setUpControls() {
  const choices = workerChoices(cores, workerCount());
  view.workers.replaceChildren(...choices.map((count) => option(String(count), String(count))));
  view.workers.value = String(workerCount());
  view.share.replaceChildren(
    ...SHARES.map((share) => option(`${Math.round(share * 100)}\u00a0%`, String(share))),
  );
  view.share.value = String(settings.share);
  view['pause-hidden'].checked = settings.pauseWhenHidden;
  view['pause-battery'].checked = settings.pauseOnBattery;
  view['battery-row'].hidden = true; // shown once the browser has told the battery's state
  view.workers.addEventListener('change', () => setWorkers(Number(view.workers.value)));
  view.share.addEventListener('change', () => setShare(Number(view.share.value)));
  view['pause-hidden'].addEventListener('change', () => {
    settings.pauseWhenHidden = view['pause-hidden'].checked;
    remember();
    checkVisibility();
  });
  view['pause-battery'].addEventListener('change', () => {
    settings.pauseOnBattery = view['pause-battery'].checked;
    remember();
    checkBattery();
  });
  view.pause.addEventListener('click', togglePause);
  for (const code of LANGUAGES)
    view[`lang-${code}`].addEventListener('click', () => setLanguage(code));
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') contribution.flush();
    checkVisibility();
  });
  window.addEventListener('pagehide', () => {
    sendResults();
    contribution.flush();
  });
}

function option(text, value) {
  const element = document.createElement('option');
  element.textContent = text;
  element.value = value;
  return element;
}

// --- coordinator connection ---

function enqueue(ws, task) {
  log(`Task received: task_id=${task.task_id} op=${task.op}`, { task: true });
  queue.push({ socket: ws, task, cancelled: false });
}

// Tasks that arrive while paused go straight back (after welcome; before it they wait for the resume).
// A task frame comes per task: its redraw waits for the next one (RENDER_MS), as a result's does;
// the state is up to date at once.
function afterTasks(ws) {
  if (paused() && welcomed() && ws === socket) handBack(queue.splice(0), 'paused');
  dispatch();
  status.state = currentState();
  renderSoon();
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
    afterTasks(ws);
  },
  tasks(ws, { tasks }) {
    for (const task of tasks) enqueue(ws, task);
    afterTasks(ws);
  },
  cancel(ws, { task_id }) {
    cancel(ws, task_id);
    render();
  },
  // hello could not say everything (paused: concurrency 0; a CPU share; a change since): capacity says the rest.
  welcome(ws, { worker_id, server, protocol, limits, blob_key = null }) {
    status.workerId = worker_id;
    welcomedBy = ws;
    const blobs = blobContexts.get(ws);
    if (blobs !== undefined) blobContexts.set(ws, { ...blobs, key: blob_key });
    if (blob_key !== null) heldBlobs().then((add) => ws === socket && tellHolds({ add }));
    if (Number.isInteger(limits?.max_frame_bytes)) frameLimit = limits.max_frame_bytes;
    log(`Welcome: worker_id=${worker_id} server=${server} protocol=${protocol}`);
    if (paused() || settings.share !== 1 || workerCount() !== helloConcurrency) sendCapacity();
    if (paused()) handBack(queue.splice(0), 'paused');
    render();
  },
  error(_ws, { code, message, task_id }) {
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
    const delay = failoverDelay({
      waitMs,
      coordinators: coordinators.size,
      openedAtMs: openedAt,
      nowMs: now,
    });
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
  blobContexts.set(ws, { base: blobBase(serverUrl), key: null });
  let openedAt = null; // when it opened; null while it has not
  log(`Connecting to ${shownUrl}`);
  ws.onopen = () => {
    openedAt = Date.now();
    status.connects += 1;
    backoff.connected(openedAt);
    log(`Connected to ${shownUrl}`);
    // A few tasks waiting per compute worker (PREFETCH_PER_WORKER). Paused, hello still says the settings
    // (concurrency is at least 1); capacity 0 follows the welcome.
    helloConcurrency = workerCount();
    unsent.length = 0; // results of an earlier connection's tasks: the coordinator re-issued those
    ws.send(
      helloMessage({
        agent: navigator.userAgent,
        ops,
        concurrency: helloConcurrency,
        prefetch: helloConcurrency * PREFETCH_PER_WORKER,
        worker_key: workerKeys.get(serverUrl), // undefined: no lasting identity (no storage or WebCrypto)
        cold: coldOps(ops, warm),
      }),
    );
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

// --- the coordinator's /page-config.json: its name and message, and what this page offers besides the built-in ops ---

async function fetchPageConfig() {
  const url = new URL('page-config.json', document.baseURI);
  try {
    const response = await fetch(url, { cache: 'no-cache' });
    if (response.ok) return { config: await response.json(), url };
  } catch {
    // a page opened from a file, or a coordinator without it: the built-in ops only
  }
  return { config: null, url };
}

// The compute workers learn where Pyodide and the ops module are; the first names the module's ops.
async function offerOps(setup) {
  if (setup.python === null && setup.opsModule === null) return;
  computeSetup = setup;
  for (const slot of pool) slot.worker.postMessage({ setup });
  const names = [...ops];
  if (setup.python !== null) {
    names.push(PYTHON);
    log('Python tasks: Pyodide loads on the first one (a few seconds), then stays loaded');
  }
  if (setup.opsModule !== null) {
    const timeout = new Promise((resolve) => {
      setTimeout(resolve, SETUP_WAIT_MS, null);
    });
    const answer = await Promise.race([pool[0].setUp, timeout]);
    if (answer === null)
      log(`The ops module ${setup.opsModule} took too long to load; its ops are not offered`);
    else if (answer.error !== null) log(answer.error);
    for (const { name, reason } of answer?.skipped ?? []) {
      console.warn(`browsergrid: ops module export ${name} skipped: ${reason}`);
      log(`Ops module export ${name} skipped: ${reason}`);
    }
    if (answer !== null && answer.ops.length > 0) log(`Custom ops: ${answer.ops.join(', ')}`);
    names.push(...(answer?.ops ?? []));
  }
  const offered = helloOps(names);
  if (offered.dropped.length > 0)
    log(`Not offered (64 ops at most): ${offered.dropped.join(', ')}`);
  ops = offered.ops;
}

async function setUpFromConfig() {
  const { config, url } = await fetchPageConfig();
  showCoordinator(config);
  await offerOps(setupFrom(config, url));
}

view['server-url'].textContent = hideToken(coordinators.current);
setUpControls();
applyLanguage();
if (coordinators.size > 1) log(`Coordinators: ${coordinators.urls.map(hideToken).join(', ')}`);
log(`Starting ${pool.length} compute worker(s)`);
checkVisibility();
watchBattery().catch((err) => log(`Battery status unavailable: ${err}`));
const configured = setUpFromConfig().catch((err) =>
  log(`Only the built-in ops are offered: ${err}`),
);
Promise.all([claimWorkerKeys(coordinators.urls), configured]).then(([keys]) => {
  workerKeys = keys;
  connect();
});
