// Fault injection for the crash tests of the snapshot step machines. Every durable step (and
// every batch of a block copy) calls faultPoint(label). With VHDSYNC_FAULT_AT=N the Nth call
// kills the process with SIGKILL, exactly like `kill -9` (no finally blocks, no flush); with
// VHDSYNC_FAULT_SIGNAL=SIGINT it sends that signal instead (a Ctrl-C at a known moment); a
// test hook can throw instead. VHDSYNC_FAULT_TRACE=1 prints every point to stderr so a test
// can count them.

/** Called at every fault point with its 1-based index and label; may throw to simulate a crash. */
export type FaultHook = (index: number, label: string) => void;

let pointIndex = 0;
let hook: FaultHook | undefined;

/** Installs (or with `undefined`, removes) an in-process fault hook and resets the counter. */
export function setFaultHook(next: FaultHook | undefined): void {
  hook = next;
  pointIndex = 0;
}

/** Number of fault points passed since the process started or the hook was last set. */
export function faultPointsPassed(): number {
  return pointIndex;
}

/**
 * Marks a point where a crash must be survivable. Kills the process (SIGKILL) when
 * VHDSYNC_FAULT_AT equals this point's index; calls the hook if one is installed.
 */
export function faultPoint(label: string): void {
  pointIndex++;
  if (process.env.VHDSYNC_FAULT_TRACE) process.stderr.write(`fault-point ${pointIndex} ${label}\n`);
  if (hook) hook(pointIndex, label);
  const killAt = Number(process.env.VHDSYNC_FAULT_AT);
  if (process.env.VHDSYNC_FAULT_AT && killAt === pointIndex) process.kill(process.pid, (process.env.VHDSYNC_FAULT_SIGNAL || "SIGKILL") as NodeJS.Signals);
}
