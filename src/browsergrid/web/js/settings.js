// A volunteer's settings of the worker page, remembered in localStorage under one key as
// versioned JSON: how many compute Web Workers, the CPU share of each, and when to pause.
// Pure: page.js passes the storage in (null, or one that throws, is survived: the defaults).

export const SETTINGS_KEY = 'browsergrid.settings';
export const SETTINGS_VERSION = 1;
export const SHARES = [0.25, 0.5, 0.75, 1]; // the CPU shares offered: the part of a core each worker computes
export const MAX_WORKERS = 1024; // protocol.md bound for hello.concurrency

// navigator.hardwareConcurrency, or 2 where the browser does not tell.
const knownCores = (cores) => (Number.isInteger(cores) && cores >= 1 ? cores : 2);

// One core is left free for the rest of the computer (navigator.hardwareConcurrency: `cores`).
export function defaultWorkers(cores) {
  return Math.min(MAX_WORKERS, Math.max(1, knownCores(cores) - 1));
}

export function defaultSettings(cores) {
  return {
    workers: defaultWorkers(cores),
    share: 1,
    pauseWhenHidden: false,
    pauseOnBattery: false,
  };
}

const isWorkers = (value, cores) =>
  Number.isInteger(value) && value >= 1 && value <= Math.min(MAX_WORKERS, Math.max(1, cores));

// The settings saved in `storage`, each member that is missing or out of range replaced by its
// default; a stored workers count above this computer's `cores` is one it cannot have chosen here.
export function loadSettings(storage, cores) {
  const settings = defaultSettings(cores);
  let saved = null;
  try {
    saved = JSON.parse(storage?.getItem(SETTINGS_KEY) ?? 'null');
  } catch {
    return settings; // storage refused (a private window, a sandboxed frame) or not JSON
  }
  if (typeof saved !== 'object' || saved === null || saved.v !== SETTINGS_VERSION) return settings;
  const known = Number.isInteger(cores) && cores >= 1 ? cores : MAX_WORKERS;
  if (isWorkers(saved.workers, known)) settings.workers = saved.workers;
  if (SHARES.includes(saved.share)) settings.share = saved.share;
  if (typeof saved.pauseWhenHidden === 'boolean') settings.pauseWhenHidden = saved.pauseWhenHidden;
  if (typeof saved.pauseOnBattery === 'boolean') settings.pauseOnBattery = saved.pauseOnBattery;
  return settings;
}

// Returns whether they were saved (false: storage refused; they hold for this visit only).
export function saveSettings(storage, { workers, share, pauseWhenHidden, pauseOnBattery }) {
  try {
    storage.setItem(
      SETTINGS_KEY,
      JSON.stringify({ v: SETTINGS_VERSION, workers, share, pauseWhenHidden, pauseOnBattery }),
    );
    return true;
  } catch {
    return false;
  }
}

// ?workers=N of the page's address: the number of compute workers for this visit (not saved); null without one.
export function workersFromQuery(search) {
  const text = new URLSearchParams(search ?? '').get('workers');
  const requested = Number(text);
  if (text === null || !Number.isInteger(requested) || requested < 1) return null;
  return Math.min(requested, MAX_WORKERS);
}

// The choices of the workers control: 1 to the computer's cores (or more, when ?workers= asked for more).
export function workerChoices(cores, current) {
  const top = Math.min(MAX_WORKERS, Math.max(knownCores(cores), current));
  return Array.from({ length: top }, (_, index) => index + 1);
}
