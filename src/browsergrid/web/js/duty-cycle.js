// The CPU share of a compute worker as a duty cycle: after a task that computed for t ms, the
// worker rests t * (1/share - 1) ms before it starts the next, so that over time it computes
// `share` of the time (0.5: it rests as long as it computed). A task that has started is never
// interrupted: a single long task runs at full speed, and its rest comes after it. Pure.

// How long to rest (ms) after a task that computed `durationMs`, at `share` (0 < share <= 1).
export function restAfter(durationMs, share) {
  if (!(share > 0 && share < 1) || !(durationMs > 0)) return 0;
  return durationMs * (1 / share - 1);
}

// When (ms, on the clock of `last.end`) the next task may start: `last` is {end, duration} of the
// last task (null before the first). The share is the current one, so a change applies to a rest under way.
export function restUntil(last, share) {
  return last === null ? -Infinity : last.end + restAfter(last.duration, share);
}
