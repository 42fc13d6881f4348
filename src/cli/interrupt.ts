// Ctrl-C handling for long commands: the first SIGINT/SIGTERM aborts an AbortSignal so the
// operation stops cleanly after flushing (and can be resumed); a second one exits at once.

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
