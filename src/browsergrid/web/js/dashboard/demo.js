// Painting the demo image (docs/dashboard.md "The demo"): where a tile goes, its pixels, the worker's tint. No DOM.

const INSIDE = [10, 10, 14]; // points that never escaped: near black
const FAILED_DARK = [70, 18, 18];
const FAILED_LIGHT = [120, 30, 30];

// What identifies the worker that computed a result: its lasting key, else its connection id.
export function colorKey(result) {
  return result.worker_key ?? `#${result.worker_id}`;
}

// A hue in [0, 360) from a 32-bit FNV-1a hash of `key`, its bits mixed (keys that differ in one
// character land far apart).
export function hueOf(key) {
  let hash = 0x811c9dc5;
  for (const char of String(key)) {
    hash ^= char.codePointAt(0);
    hash = Math.imul(hash, 0x01000193);
  }
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return ((hash ^ (hash >>> 16)) >>> 0) % 360;
}

// HSL (degrees, 0..1, 0..1) -> [r, g, b] in 0..255.
export function hslToRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const channel = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [channel(0), channel(8), channel(4)];
}

// The tint of a worker: {hue, rgb, css}.
export function workerColor(key) {
  const hue = hueOf(key);
  return { hue, rgb: hslToRgb(hue, 0.75, 0.6), css: `hsl(${hue} 75% 60%)` };
}

// Tile `index` sits at column index % cols, row floor(index / cols), row 0 at the top.
export function tilePosition(index, demo) {
  const col = index % demo.cols;
  const row = Math.floor(index / demo.cols);
  return { col, row, x: col * demo.tile_width, y: row * demo.tile_height };
}

// Brightness in [0, 1] of a point that escaped after `count` of `maxIter` iterations (log scale);
// null for a point inside the set (count == maxIter).
export function brightness(count, maxIter) {
  if (count >= maxIter) return null;
  return 0.08 + 0.92 * (Math.log1p(Math.max(0, count)) / Math.log1p(maxIter));
}

// Whether a mandelbrot_tile result can be drawn: {width, height, counts} with width * height counts.
export function isTile(result) {
  return (
    result !== null
    && typeof result === 'object'
    && Number.isInteger(result.width)
    && Number.isInteger(result.height)
    && Array.isArray(result.counts)
    && result.counts.length === result.width * result.height
  );
}

// Fills `pixels` (RGBA, width * height * 4) from the iteration counts, tinted by `rgb`.
export function paintTile(pixels, counts, maxIter, rgb) {
  const shades = new Array(maxIter + 1); // one colour per count: a tile has many equal counts
  for (let i = 0, p = 0; i < counts.length; i += 1, p += 4) {
    const count = Math.min(Math.max(0, counts[i] | 0), maxIter);
    let color = shades[count];
    if (color === undefined) {
      const b = brightness(count, maxIter);
      color = b === null ? INSIDE : rgb.map((c) => Math.round(c * b));
      shades[count] = color;
    }
    pixels[p] = color[0];
    pixels[p + 1] = color[1];
    pixels[p + 2] = color[2];
    pixels[p + 3] = 255;
  }
  return pixels;
}

// Fills `pixels` with dark red diagonal stripes: the tile failed for good.
export function paintFailed(pixels, width, height) {
  for (let y = 0, p = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1, p += 4) {
      const color = Math.floor((x + y) / 8) % 2 === 0 ? FAILED_DARK : FAILED_LIGHT;
      pixels[p] = color[0];
      pixels[p + 1] = color[1];
      pixels[p + 2] = color[2];
      pixels[p + 3] = 255;
    }
  }
  return pixels;
}
