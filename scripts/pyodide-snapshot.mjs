// Makes a memory snapshot of Pyodide's fresh interpreter for the coordinator to serve to tabs:
// node_modules/pyodide/interpreter.snapshot.gz (about 6 MB; 31 MB unpacked) and, beside it,
// interpreter.snapshot.json, which names the Pyodide build it belongs to (the SHA-256 of its
// pyodide.asm.wasm: the coordinator serves the snapshot only with that very build).
//
// A tab then starts Python from it in about a second on its first visit, instead of 2-3 s of
// CPython's own start (bench/README.md). `_makeSnapshot` and `_loadSnapshot` are Pyodide's private
// options: a snapshot belongs to one build, and one made here, in Node.js, loads in Chromium with the
// same build (tests/e2e/test_browser_python.py); a browser that cannot load it starts Python afresh.
//
// `npm ci` runs this (package.json's postinstall), after installing Pyodide: about 4 s of CPU.
// It never fails the install: without a snapshot, tabs start Python afresh as before.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const directory = new URL('../node_modules/pyodide/', import.meta.url);
const at = (name) => new URL(name, directory);
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

function put(name, content) {
  const part = at(`${name}.part`);
  try {
    writeFileSync(part, content);
    renameSync(part, at(name));
  } finally {
    rmSync(part, { force: true });
  }
}

try {
  const wasm = readFileSync(at('pyodide.asm.wasm'));
  const { version } = JSON.parse(readFileSync(at('package.json'), 'utf-8'));
  // Emscripten names the program after Node's argv[1], and CPython keeps it in os.environ['_']:
  // the name a browser gives it instead of this file's path.
  process.argv[1] = './this.program';
  const { loadPyodide } = await import(at('pyodide.mjs').href);
  const python = await loadPyodide({ _makeSnapshot: true, stdout: () => {}, stderr: () => {} });
  const snapshot = python.makeMemorySnapshot();
  const stamp = {
    pyodide: version,
    wasm_sha256: sha256(wasm),
    made_by: `Node.js ${process.version}`,
  };
  // each written aside then renamed: a coordinator starting meanwhile reads whole files (a snapshot
  // and a stamp of two runs still agree: both name one build)
  put('interpreter.snapshot.gz', gzipSync(snapshot));
  put('interpreter.snapshot.json', `${JSON.stringify(stamp, null, 2)}\n`);
  const packed = statSync(at('interpreter.snapshot.gz'));
  const size = (packed.size / 1e6).toFixed(1);
  console.log(`browsergrid: made Pyodide ${version}'s interpreter snapshot for tabs (${size} MB)`);
} catch (err) {
  console.warn(
    `browsergrid: no Pyodide snapshot for tabs (${err?.message ?? err}); they start Python afresh`,
  );
}
