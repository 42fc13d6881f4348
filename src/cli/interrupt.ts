// Ctrl-C handling for long commands: the first SIGINT/SIGTERM aborts an AbortSignal so the
// operation stops cleanly after flushing (and can be resumed); a second one exits at once.

import type { ProgressEvent } from "../progress.js";
import { progressReporter } from "./progress.js";

/**
 * An AbortSignal fired by the first Ctrl-C (SIGINT/SIGTERM). dispose(), once the operation has
 * ended, leaves a handler that ignores one more signal: the default action would otherwise
 * kill the process while it prints its report and exits (status by signal instead of the
 * command's own). A second late signal still exits at once (130).
 */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write("\nvhdsync: stopping after flushing (press Ctrl-C again to abort at once)\n");
    controller.abort();
  };
  let lateSignals = 0;
  const afterEnd = () => {
    if (++lateSignals > 1 || controller.signal.aborted) process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.on("SIGINT", afterEnd);
      process.on("SIGTERM", afterEnd);
    },
  };
}

/**
 * Runs a long operation with a progress reporter (bar, JSON lines or nothing, from `output`)
 * and Ctrl-C handling: `run` gets the listener and the signal to pass to the library call.
 */
export async function withProgress<T>(
  output: { json?: boolean; progress?: boolean },
  label: string,
  run: (controls: { onProgress: (event: ProgressEvent) => void; signal: AbortSignal }) => Promise<T>,
): Promise<T> {
  const reporter = progressReporter({ json: output.json, progress: output.progress, label });
  const interrupt = interruptSignal();
  try {
    return await run({ onProgress: reporter.update, signal: interrupt.signal });
  } finally {
    reporter.done();
    interrupt.dispose();
  }
}
