// Op implementations (pure; run only inside compute-worker.js) and their argument checks.
// Twin of src/browsergrid/ops/: the same arguments, checks and results, bit for bit
// (tests/fixtures/op_vectors.json is checked against both). docs/protocol.md defines each op.

const UINT32 = 2 ** 32;
const MAX_PIXELS = 65536;
const SEGMENT = 2 ** 18; // prime_count: integers per segment (its odd half is sieved)
const HASH_BATCH = 256; // hash_search: digests in flight at once (crypto.subtle is async)
const MAX_SHOWN = 80; // characters of a bad argument quoted in an error
const MAX_EXACT_TIMES = 1e8; // repeat_multiply's loop: seconds in Python, not hours

// --- the ops; each takes arguments already checked by runOp ---

function repeatMultiply({ initial, factor, times, exact = false }) {
  if (!exact) return initial * factor ** times;
  let result = initial;
  for (let i = 0; i < times; i += 1) result = result * factor;
  return result;
}

function monteCarloPi({ samples, seed }) {
  // mulberry32; two draws per point, x = next() / 2**32, y = next() / 2**32
  let state = seed >>> 0;
  let hits = 0;
  for (let i = 0; i < samples; i += 1) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const x = ((t ^ (t >>> 14)) >>> 0) / UINT32;
    state = (state + 0x6d2b79f5) >>> 0;
    t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const y = ((t ^ (t >>> 14)) >>> 0) / UINT32;
    if (x * x + y * y <= 1.0) hits += 1;
  }
  return { hits, samples };
}

function mandelbrotTile({ region, width, height, max_iter: maxIter }) {
  const [reMin, reMax, imMin, imMax] = region;
  const counts = new Array(width * height); // a plain Array: it must serialise as a JSON list
  let k = 0;
  for (let py = 0; py < height; py += 1) {
    const ci = imMin + ((imMax - imMin) * py) / height;
    for (let px = 0; px < width; px += 1) {
      const cr = reMin + ((reMax - reMin) * px) / width;
      let zr = 0.0;
      let zi = 0.0;
      let n = 0;
      while (n < maxIter && zr * zr + zi * zi <= 4.0) {
        const t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        n += 1;
      }
      counts[k] = n;
      k += 1;
    }
  }
  return { width, height, counts };
}

function isqrt(n) {
  let root = Math.floor(Math.sqrt(n));
  while (root * root > n) root -= 1;
  while ((root + 1) * (root + 1) <= n) root += 1;
  return root;
}

function oddPrimesUpTo(limit) {
  const primes = [];
  if (limit < 3) return primes;
  const composite = new Uint8Array(limit + 1);
  for (let p = 3; p <= limit; p += 2) {
    if (composite[p]) continue;
    primes.push(p);
    for (let m = p * p; m <= limit; m += 2 * p) composite[m] = 1;
  }
  return primes;
}

function primeCount({ lo, hi }) {
  // 2 apart; odd numbers sieved by segments: index i of a segment is the number segLo + 2*i
  let count = lo <= 2 && 2 < hi ? 1 : 0;
  const base = hi > 1 ? oddPrimesUpTo(isqrt(hi - 1)) : [];
  const segment = new Uint8Array(SEGMENT / 2);
  for (let segLo = oddAtLeast(Math.max(lo, 3)); segLo < hi; segLo += SEGMENT) {
    const segHi = Math.min(segLo + SEGMENT, hi);
    const size = Math.floor((segHi - segLo + 1) / 2);
    segment.fill(1, 0, size);
    for (const p of base) {
      let multiple = p * p;
      if (multiple >= segHi) break;
      if (multiple < segLo) {
        multiple = segLo + ((p - (segLo % p)) % p); // the first multiple of p from segLo on
        if (multiple % 2 === 0) multiple += p; // the first odd one
      }
      for (let i = (multiple - segLo) / 2; i < size; i += p) segment[i] = 0;
    }
    for (let i = 0; i < size; i += 1) count += segment[i];
  }
  return count;
}

function oddAtLeast(n) {
  return n % 2 === 0 ? n + 1 : n; // n may exceed 2**31: no bit operators
}

function meetsDifficulty(bytes, difficulty) {
  const whole = Math.floor(difficulty / 8);
  for (let i = 0; i < whole; i += 1) if (bytes[i] !== 0) return false;
  const bits = difficulty % 8;
  return bits === 0 || bytes[whole] >> (8 - bits) === 0;
}

const toHex = (bytes) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');

async function hashSearch({ prefix, difficulty, start, count }) {
  const encoder = new TextEncoder();
  const stop = start + count;
  let batch = 16; // grows: an easy search ends in the first few nonces
  for (let first = start; first < stop; first += batch, batch = Math.min(2 * batch, HASH_BATCH)) {
    const last = Math.min(first + batch, stop);
    const pending = [];
    for (let nonce = first; nonce < last; nonce += 1) {
      pending.push(crypto.subtle.digest('SHA-256', encoder.encode(prefix + String(nonce))));
    }
    const digests = await Promise.all(pending);
    for (let i = 0; i < digests.length; i += 1) {
      const bytes = new Uint8Array(digests[i]);
      if (meetsDifficulty(bytes, difficulty)) return { nonce: first + i, hash: toHex(bytes) };
    }
  }
  return { nonce: null, hash: null };
}

export const OPS = {
  repeat_multiply: repeatMultiply,
  monte_carlo_pi: monteCarloPi,
  mandelbrot_tile: mandelbrotTile,
  prime_count: primeCount,
  hash_search: hashSearch,
};

// The ops this JavaScript environment can run: hash_search needs crypto.subtle, which a page
// served over plain http from an address other than localhost (no secure context) lacks.
export function availableOps() {
  return Object.keys(OPS).filter(
    (op) => op !== 'hash_search' || Boolean(globalThis.crypto?.subtle),
  );
}

// --- argument checks: the same as the Python ones, and the same ranges ---

function show(value) {
  let text;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

const fail = (op, name, must, value) =>
  new Error(`${op}: ${name} must be ${must}, got ${show(value)}`);
const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);
const isIntegerIn = (value, lo, hi) => Number.isSafeInteger(value) && value >= lo && value <= hi;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function number(op, args, name) {
  if (!isNumber(args[name])) throw fail(op, name, 'a finite number', args[name]);
}

function integer(op, args, name, lo, hi, text) {
  if (!isIntegerIn(args[name], lo, hi)) throw fail(op, name, `an integer from ${text}`, args[name]);
}

const CHECKS = {
  repeat_multiply(op, args) {
    number(op, args, 'initial');
    number(op, args, 'factor');
    integer(op, args, 'times', 0, Number.MAX_SAFE_INTEGER, '0 to 2**53 - 1');
    if (args.exact !== undefined && typeof args.exact !== 'boolean') {
      throw fail(op, 'exact', 'a boolean', args.exact);
    }
    if (args.exact) integer(op, args, 'times', 0, MAX_EXACT_TIMES, '0 to 10**8 in exact mode');
  },
  monte_carlo_pi(op, args) {
    integer(op, args, 'samples', 1, 1e9, '1 to 10**9');
    integer(op, args, 'seed', 0, UINT32 - 1, '0 to 2**32 - 1');
  },
  mandelbrot_tile(op, args) {
    const { region } = args;
    const ok =
      Array.isArray(region)
      && region.length === 4
      && region.every(isNumber)
      && region[0] < region[1]
      && region[2] < region[3];
    if (!ok) {
      const must =
        '[re_min, re_max, im_min, im_max]: 4 finite numbers, re_min < re_max, im_min < im_max';
      throw fail(op, 'region', must, region);
    }
    integer(op, args, 'width', 1, MAX_PIXELS, '1 to 65536');
    integer(op, args, 'height', 1, MAX_PIXELS, '1 to 65536');
    if (args.width * args.height > MAX_PIXELS) {
      throw fail(op, 'height', 'such that width * height <= 65536', args.height);
    }
    integer(op, args, 'max_iter', 1, 100000, '1 to 100000');
  },
  prime_count(op, args) {
    integer(op, args, 'lo', 0, 1e12, '0 to 10**12');
    integer(op, args, 'hi', 0, 1e12, '0 to 10**12');
    if (args.hi < args.lo) throw fail(op, 'hi', 'at least lo', args.hi);
    if (args.hi - args.lo > 1e8) throw fail(op, 'hi', 'at most lo + 10**8', args.hi);
  },
  hash_search(op, args) {
    const { prefix } = args;
    // at most 256 code points (as Python counts), no lone surrogate (it has no UTF-8 form)
    if (
      typeof prefix !== 'string'
      || prefix.length > 512
      || [...prefix].length > 256
      || LONE_SURROGATE.test(prefix)
    ) {
      throw fail(op, 'prefix', 'a string of at most 256 characters (no lone surrogates)', prefix);
    }
    integer(op, args, 'difficulty', 0, 64, '0 to 64');
    integer(op, args, 'start', 0, Number.MAX_SAFE_INTEGER, '0 to 2**53 - 1');
    integer(op, args, 'count', 1, 1e7, '1 to 10**7');
    if (args.count - 1 > Number.MAX_SAFE_INTEGER - args.start) {
      // start + count - 1 could round
      throw fail(op, 'count', 'at most 2**53 - start (the last nonce is below 2**53)', args.count);
    }
  },
};

// Check the arguments (throws an Error naming the op and the argument), then run the op.
// hash_search returns a Promise; the other ops return their result.
export function runOp(op, args) {
  if (!Object.hasOwn(OPS, op)) throw new Error(`unknown op: ${JSON.stringify(op)}`);
  if (typeof args !== 'object' || args === null)
    throw new Error(`${op}: arguments must be an object`);
  CHECKS[op](op, args);
  return OPS[op](args);
}
