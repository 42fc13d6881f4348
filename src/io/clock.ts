// Milliseconds on a monotonic clock, for durations (reports' seconds, checkpoint intervals).
// performance.now() gives the same, but its first use loads Node's perf_hooks (~0.7 ms of a
// fresh process, a dozen modules); process.hrtime is there from the start.

/** Milliseconds since an arbitrary fixed point, monotonic (fractional). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
