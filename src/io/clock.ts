// Milliseconds on a monotonic clock, for durations (reports' seconds, checkpoint intervals).
// performance.now() gives the same, but its first use loads Node's perf_hooks (~0.7 ms of a
// fresh process, a dozen modules); process.hrtime is there from the start.

/** Milliseconds since an arbitrary fixed point, monotonic (fractional). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * A pacer for loops whose awaits may all settle without the event loop turning (small reads
 * and writes are synchronous, src/io/file.ts): a signal handler (Ctrl-C) runs only when it
 * turns. Call the returned function once per step; every `intervalMs` it returns a promise
 * that settles after one turn (setImmediate), else undefined (nothing to await).
 */
export function eventLoopTurns(intervalMs = 20): () => Promise<void> | undefined {
  let last = monotonicMs();
  return () => {
    const now = monotonicMs();
    if (now - last < intervalMs) return undefined;
    last = now;
    return new Promise((resolve) => setImmediate(resolve));
  };
}
