// Custom JavaScript ops for browser workers: `browsergrid serve --ops-module examples/ops/my_ops.js`.
//
// Every exported function NAME(args) is the op NAME: `args` is the task's arguments (a plain
// object), and it returns the result, a JSON value (or a Promise of one). Each worker page
// imports this module in its compute Web Workers and offers these ops to the coordinator; an
// export named like a built-in op (prime_count, python, ...) is skipped. Throw to fail a task:
// the error's text is what the client sees.
//
//   from browsergrid import Client
//   with Client("http://127.0.0.1:8765") as client:
//       ranges = [{"start": s, "end": s + 100_000} for s in range(1, 1_000_001, 100_000)]
//       best = max(client.map("collatz_steps", ranges), key=lambda r: r["steps"])
//       print(best)  # {'start': 837799, 'steps': 524}

const LARGEST_ODD_STEP = (Number.MAX_SAFE_INTEGER - 1) / 3; // 3x + 1 stays exact up to here

// The number whose Collatz chain (n -> n/2 if even, else 3n+1, until 1) is longest among
// start <= n < end, and its number of steps ({start: null, steps: null} for an empty range).
export function collatz_steps({ start, end }) {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 1 || end < start) {
    throw new Error(
      `collatz_steps: start and end must be integers, 1 <= start <= end; got ${start}, ${end}`,
    );
  }
  let best = { start: null, steps: null };
  for (let n = start; n < end; n += 1) {
    let steps = 0;
    for (let x = n; x !== 1; steps += 1) {
      if (x > LARGEST_ODD_STEP)
        throw new Error(`collatz_steps: the chain of ${n} leaves the exact integers`);
      x = x % 2 === 0 ? x / 2 : 3 * x + 1;
    }
    if (best.steps === null || steps > best.steps) best = { start: n, steps };
  }
  return best;
}
