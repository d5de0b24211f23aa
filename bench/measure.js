// Timing helpers shared by the Node runner (bench/run.js) and the Chromium
// page (bench/browser.html). No Node-only API here: performance.now() only.

/** The median of a list of numbers (the mean of the middle two when even). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const isThenable = (value) => value !== null && typeof value === 'object' && typeof value.then === 'function';

/**
 * Time `batch(k)`, which performs k operations (it may return a promise).
 * First grows k until one batch lasts at least `minRunMs` (this doubles as
 * warm-up), then times `runs` batches of that k. Returns nanoseconds per
 * operation: the median and every run.
 */
export async function measure(batch, { runs, minRunMs }) {
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    const result = batch(iters);
    if (isThenable(result)) await result;
    const elapsed = performance.now() - t0;
    if (elapsed >= minRunMs) break;
    // Aim 20 % past the target; never grow more than 16x at a step.
    const want = elapsed > 0 ? Math.ceil((iters * minRunMs * 1.2) / elapsed) : iters * 16;
    iters = Math.max(iters + 1, Math.min(want, iters * 16));
  }
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const result = batch(iters);
    if (isThenable(result)) await result;
    samples.push(((performance.now() - t0) * 1e6) / iters);
  }
  return { median: median(samples), runs: samples, iters };
}

/**
 * Time single calls of a long operation `runs` times, with `before()` (not
 * timed: e.g. a GC) ahead of each and `after(result)` (not timed: e.g. free)
 * after each. Returns nanoseconds per call: the median and every run.
 */
export async function measureEach(call, { runs, before, after }) {
  const samples = [];
  for (let r = 0; r < runs; r++) {
    if (before) await before();
    const t0 = performance.now();
    let result = call();
    if (isThenable(result)) result = await result;
    samples.push((performance.now() - t0) * 1e6);
    if (after) await after(result);
  }
  return { median: median(samples), runs: samples, iters: 1 };
}
