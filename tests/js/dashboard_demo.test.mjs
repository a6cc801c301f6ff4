// Checks the demo image's pure parts (web/js/dashboard/demo.js) and the NDJSON line reader (ndjson.js).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  brightness,
  colorKey,
  hslToRgb,
  hueOf,
  isTile,
  paintFailed,
  paintTile,
  tilePosition,
  workerColor,
} from '../../src/browsergrid/web/js/dashboard/demo.js';
import { readLines } from '../../src/browsergrid/web/js/dashboard/ndjson.js';

const DEMO = { name: 'demo', cols: 10, rows: 8, tile_width: 64, tile_height: 64, max_iter: 200 };

test('tile index i sits at column i % cols, row floor(i / cols), row 0 at the top', () => {
  assert.deepEqual(tilePosition(0, DEMO), { col: 0, row: 0, x: 0, y: 0 });
  assert.deepEqual(tilePosition(9, DEMO), { col: 9, row: 0, x: 576, y: 0 });
  assert.deepEqual(tilePosition(10, DEMO), { col: 0, row: 1, x: 0, y: 64 });
  assert.deepEqual(tilePosition(79, DEMO), { col: 9, row: 7, x: 576, y: 448 });
});

test('a worker is its key, else its connection id; its hue is stable and spread', () => {
  assert.equal(colorKey({ worker_key: 'k-1', worker_id: 4 }), 'k-1');
  assert.equal(colorKey({ worker_key: null, worker_id: 4 }), '#4');
  assert.equal(colorKey({ worker_id: 4 }), '#4');
  assert.equal(hueOf('k-1'), hueOf('k-1'));
  const hues = new Set(Array.from({ length: 50 }, (_, i) => hueOf(`#${i}`)));
  assert.ok(hues.size > 40, `${hues.size} distinct hues`);
  for (const hue of hues) assert.ok(hue >= 0 && hue < 360 && Number.isInteger(hue));
  const color = workerColor('k-1');
  assert.equal(color.css, `hsl(${color.hue} 75% 60%)`);
});

test('hslToRgb gives the primaries and greys', () => {
  assert.deepEqual(hslToRgb(0, 1, 0.5), [255, 0, 0]);
  assert.deepEqual(hslToRgb(120, 1, 0.5), [0, 255, 0]);
  assert.deepEqual(hslToRgb(240, 1, 0.5), [0, 0, 255]);
  assert.deepEqual(hslToRgb(77, 0, 0.5), [128, 128, 128]);
});

test('inside points are near black; outside brightness rises on a log scale', () => {
  assert.equal(brightness(200, 200), null);
  assert.ok(brightness(0, 200) < brightness(1, 200));
  assert.ok(brightness(10, 200) < brightness(100, 200));
  assert.ok(brightness(199, 200) <= 1);
  assert.ok(brightness(10, 200) > 10 / 200, 'log scale lifts low counts');
  const pixels = paintTile(new Uint8ClampedArray(3 * 4), [200, 0, 100], 200, [200, 100, 50]);
  assert.deepEqual([...pixels.slice(0, 4)], [10, 10, 14, 255]);
  const dim = pixels.slice(4, 8);
  const bright = pixels.slice(8, 12);
  assert.ok(dim[0] < bright[0] && dim[3] === 255 && bright[3] === 255);
  assert.ok(bright[0] > bright[1] && bright[1] > bright[2], 'keeps the tint');
});

test('a failed tile is striped, fully opaque', () => {
  const pixels = paintFailed(new Uint8ClampedArray(16 * 16 * 4), 16, 16);
  for (let p = 3; p < pixels.length; p += 4) assert.equal(pixels[p], 255);
  assert.notDeepEqual([...pixels.slice(0, 3)], [...pixels.slice(8 * 4, 8 * 4 + 3)]);
});

test('isTile checks the shape of a mandelbrot_tile result', () => {
  assert.ok(isTile({ width: 2, height: 1, counts: [1, 2] }));
  assert.ok(!isTile({ width: 2, height: 2, counts: [1, 2] }));
  assert.ok(!isTile({ width: 2, height: 1 }));
  assert.ok(!isTile(null));
  assert.ok(!isTile('x'));
});

function streamOf(chunks) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks)
        controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
      controller.close();
    },
  });
}

test('readLines splits lines across chunks, skips blank lines, keeps a last line without newline', async () => {
  const lines = [];
  await readLines(streamOf(['{"a":', '1}\n{"b":2}\n\n', '{"c"', ':3}']), (line) =>
    lines.push(JSON.parse(line)),
  );
  assert.deepEqual(lines, [{ a: 1 }, { b: 2 }, { c: 3 }]);
});

test('readLines decodes a character split between chunks', async () => {
  const bytes = new TextEncoder().encode('{"s":"é…"}\n');
  const lines = [];
  await readLines(streamOf([bytes.slice(0, 7), bytes.slice(7, 9), bytes.slice(9)]), (line) =>
    lines.push(JSON.parse(line)),
  );
  assert.deepEqual(lines, [{ s: 'é…' }]);
});
