// Ctrl-C handling for long commands: the first SIGINT/SIGTERM aborts an AbortSignal so the
// operation stops cleanly after flushing (and can be resumed); a second one exits at once.

/** An AbortSignal fired by the first Ctrl-C (SIGINT/SIGTERM); dispose() removes the handlers. */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write("\nvhdsync: stopping after flushing (press Ctrl-C again to abort at once)\n");
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}
