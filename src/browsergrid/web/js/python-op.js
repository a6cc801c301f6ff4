// The python op in a compute Web Worker: Pyodide (served by the coordinator) runs the runner
// src/browsergrid/ops/_python_function.py, the same file the Python worker imports.
// Pyodide loads on the first python task (seconds) and stays loaded for the worker's life.

// A task whose function failed: its message is the Python traceback, sent as the task error as is.
export class PythonError extends Error {
  toString() {
    return this.message;
  }
}

// `pyodide`: the URL of Pyodide's directory (trailing slash); `runner`: the URL of the runner's source.
// `importModule` and `fetchText` are the browser's, replaced in tests.
export function createPythonOp({
  pyodide,
  runner,
  importModule = (url) => import(url),
  fetchText = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    return response.text();
  },
}) {
  let loading = null; // a Promise of the runner's run_json, once asked for

  async function load() {
    const [{ loadPyodide }, source] = await Promise.all([
      importModule(new URL('pyodide.mjs', pyodide).href),
      fetchText(runner),
    ]);
    const python = await loadPyodide({ indexURL: pyodide });
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
