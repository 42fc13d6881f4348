// Fault injection for crash tests: VHDSYNC_HRL_CRASH_AT="<point>:<n>" kills the process with
// SIGKILL the n-th time (1-based) execution passes `point`; "<point>:<n>:SIGINT" sends that
// signal instead, once (a Ctrl-C at a known moment). Points used by applyLog: "entry" (after
// an entry is written to the image), "checkpoint" (after a progress record), "undo" (after
// the undo log is complete), "commit" (just before the final state write).

const counters = new Map<string, number>();

/** Crashes here if VHDSYNC_HRL_CRASH_AT names this point and count. No-op otherwise. */
export function crashPoint(point: string): void {
  const spec = process.env.VHDSYNC_HRL_CRASH_AT;
  if (!spec) return;
  const [name, countText, signal] = spec.split(":");
  if (name !== point) return;
  const count = (counters.get(point) ?? 0) + 1;
  counters.set(point, count);
  const at = Number(countText ?? 1);
  if (signal ? count === at : count >= at) process.kill(process.pid, (signal ?? "SIGKILL") as NodeJS.Signals);
}
