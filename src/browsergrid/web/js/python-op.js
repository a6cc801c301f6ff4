// The python op in a compute Web Worker: Pyodide (served by the coordinator) runs the runner
// src/browsergrid/ops/_python_function.py, the same file the Python worker imports.
// Pyodide loads on the first python task and stays loaded for the worker's life. Starting it takes
// about 2 s, nearly all of it CPython's own start; so the first start in a browser also saves a memory
// snapshot of the fresh interpreter (Pyodide's `makeMemorySnapshot`, about 30 MB) in the origin's Cache
// Storage, and later starts in that browser (other tabs, other visits) begin from it: about 0.3 s.
// A snapshot belongs to one Pyodide build (its key is under that build's URL); one that fails to load is
// deleted and Pyodide starts afresh. Where Cache Storage is missing (a page over plain http:// from
// another machine is no secure context), every start is a fresh one.

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

// `pyodide`: the URL of Pyodide's directory (trailing slash); `runner`: the URL of the runner's source.
// `importModule`, `fetchText` and `snapshots` are the browser's, replaced in tests; `told(line)` hears
// how Pyodide started, for the page's log.
export function createPythonOp({
  pyodide,
  runner,
  importModule = (url) => import(url),
  fetchText = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    return response.text();
  },
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

  async function start(loadPyodide) {
    const started = performance.now();
    const snapshot = await saved();
    if (snapshot !== null) {
      try {
        const python = await loadPyodide({ indexURL: pyodide, _loadSnapshot: snapshot });
        told(
          `Python started in ${Math.round(performance.now() - started)} ms from this browser's snapshot`,
        );
        return python;
      } catch (err) {
        told(`Python's snapshot could not be used (${err?.message ?? err}): starting afresh`);
        await snapshots.delete(key).catch(() => {});
      }
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
  // throws PythonError with the traceback when the function (or its source) fails.
  return async function python(args) {
    const run = await runJson();
    const outcome = JSON.parse(run(JSON.stringify(args)));
    if (Object.hasOwn(outcome, 'error')) throw new PythonError(outcome.error);
    return outcome.result;
  };
}
