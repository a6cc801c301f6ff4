// The python op in a compute Web Worker: Pyodide (served by the coordinator) runs the runner
// src/browsergrid/ops/_python_function.py, the same file the Python worker imports.
// Pyodide loads on the first python task and stays loaded for the worker's life. A fresh start takes
// 2-3 s, nearly all of it CPython's own start; starting from a memory snapshot of the fresh interpreter
// (Pyodide's `makeMemorySnapshot`, about 30 MB) takes well under a second. So a start takes:
// - where the coordinator serves one (`snapshot`, the URL /page-config.json gives: made by `npm ci` with
//   this very build, gzip-encoded, about 6 MB), the coordinator's, from the browser's HTTP cache after
//   the first download. Never a copy in the origin's Cache Storage: a python task runs with the page's
//   origin and could store a tampered interpreter there for every later start. One that fails to load:
//   a fresh start;
// - else the snapshot this browser saved in Cache Storage, if any; else a fresh start, which saves one
//   there for the next start in this browser.
// A snapshot belongs to one Pyodide build (its key is under that build's URL); a saved one that fails to
// load is deleted and Python starts afresh. Where Cache Storage is missing (a page over plain http:// from
// another machine is no secure context), nothing is saved.
// Every interpreter started from one snapshot holds the same state, `random`'s generator included: each
// start reseeds it from the browser's entropy, or every tab would draw the same "random" numbers.

// A task whose function failed: its message is the Python traceback, sent as the task error as is.
export class PythonError extends Error {
  toString() {
    return this.message;
  }
}

const SNAPSHOTS = 'browsergrid-pyodide-snapshots';

// Snapshots kept in Cache Storage, or null where there is none. `get` answers null when it has none.
export function cacheSnapshots(storage = globalThis.caches) {
  if (storage === undefined) return null;
  return {
    async get(key) {
      const found = await (await storage.open(SNAPSHOTS)).match(key);
      return found ? new Uint8Array(await found.arrayBuffer()) : null;
    },
    async put(key, bytes) {
      const cache = await storage.open(SNAPSHOTS);
      await cache.put(key, new Response(bytes));
      for (const request of await cache.keys()) {
        if (request.url !== key) await cache.delete(request); // another Pyodide build's: 30 MB each
      }
    },
    async delete(key) {
      await (await storage.open(SNAPSHOTS)).delete(key);
    },
  };
}

async function fetched(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response;
}

// `pyodide`: the URL of Pyodide's directory (trailing slash); `runner`: the URL of the runner's source;
// `snapshot`: the URL of the coordinator's snapshot, or null when it has none.
// `importModule`, `fetchText`, `fetchBytes` and `snapshots` are the browser's, replaced in tests;
// `told(line)` hears how Pyodide started, for the page's log.
export function createPythonOp({
  pyodide,
  runner,
  snapshot: served = null,
  importModule = (url) => import(url),
  fetchText = async (url) => (await fetched(url)).text(),
  fetchBytes = async (url) => new Uint8Array(await (await fetched(url)).arrayBuffer()),
  snapshots = cacheSnapshots(),
  told = () => {},
}) {
  let loading = null; // a Promise of the runner's run_json, once asked for
  const key = new URL('interpreter.snapshot', pyodide).href; // never fetched: a name under the build

  async function saved() {
    try {
      return (await snapshots?.get(key)) ?? null;
    } catch {
      return null; // storage refused (quota, private mode): start afresh
    }
  }

  // Pyodide started from `bytes` (a snapshot), or null when it would not load from them.
  async function resumed(loadPyodide, bytes, whose, started) {
    try {
      const python = await loadPyodide({ indexURL: pyodide, _loadSnapshot: bytes });
      told(
        `Python started in ${Math.round(performance.now() - started)} ms from ${whose} snapshot`,
      );
      return python;
    } catch (err) {
      told(`Python's start from ${whose} snapshot failed (${err?.message ?? err}): trying on`);
      return null;
    }
  }

  async function start(loadPyodide) {
    const started = performance.now();
    if (served !== null) {
      snapshots?.delete(key).catch(() => {}); // one an earlier start saved: 30 MB back to the volunteer
      const bytes = await fetchBytes(served).catch((err) => {
        told(`The coordinator's snapshot could not be fetched (${err?.message ?? err})`);
        return null;
      });
      const python = bytes && (await resumed(loadPyodide, bytes, "the coordinator's", started));
      return python || loadPyodide({ indexURL: pyodide }); // afresh: the next start tries it again
    }
    const own = await saved();
    if (own !== null) {
      const python = await resumed(loadPyodide, own, "this browser's", started);
      if (python !== null) return python;
      await snapshots.delete(key).catch(() => {});
    }
    if (snapshots === null) return loadPyodide({ indexURL: pyodide });
    const python = await loadPyodide({ indexURL: pyodide, _makeSnapshot: true });
    const loaded = performance.now();
    const took = Math.round(loaded - started);
    try {
      // taken now, before any other code runs in it; stored before the first task runs, since the tab
      // may close right after it
      await snapshots.put(key, python.makeMemorySnapshot());
      const saving = Math.round(performance.now() - loaded);
      told(`Python started in ${took} ms, and saved a snapshot for the next start in ${saving} ms`);
    } catch (err) {
      told(`Python started in ${took} ms; its snapshot could not be saved: ${err?.message ?? err}`);
    }
    return python;
  }

  async function load() {
    const [{ loadPyodide }, source] = await Promise.all([
      importModule(new URL('pyodide.mjs', pyodide).href),
      fetchText(runner),
    ]);
    const python = await start(loadPyodide);
    python.runPython('import random\nrandom.seed()'); // a snapshot's generator state is every tab's
    const namespace = python.globals.get('dict')();
    python.runPython(source, { globals: namespace });
    return namespace.get('run_json');
  }

  function runJson() {
    if (loading === null) {
      loading = load().catch((err) => {
        loading = null; // the next python task tries again
        throw new Error(`python: Pyodide could not be loaded: ${err?.message ?? err}`);
      });
    }
    return loading;
  }

  // The op: the task's arguments ({function, args, kwargs}) in, the function's result out;
  // throws PythonError with the traceback when the function (or its source) fails. `contents`: the
  // blobs the arguments' refs name (blobs.js), a Map sha256 -> Uint8Array. The refs stay in the JSON:
  // the runner puts each blob in its ref's place as Python's `bytes` (or the JSON value it holds), and
  // Pyodide hands it the Map as a mapping whose values are Uint8Array proxies (one copy, to_bytes).
  return async function python(args, contents = new Map()) {
    const run = await runJson();
    const text = JSON.stringify(args);
    const outcome = JSON.parse(contents.size > 0 ? run(text, contents) : run(text));
    if (Object.hasOwn(outcome, 'error')) throw new PythonError(outcome.error);
    return outcome.result;
  };
}
