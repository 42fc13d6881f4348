// Progress events emitted by long library operations (hashing, resync, copy, merge, apply).

/** One progress report. `detail` is a short human string (e.g. "changed 12 MiB"). */
export interface ProgressEvent {
  /** What is running: "hash", "resync", "copy", ... */
  operation: string;
  doneBytes: number;
  totalBytes: number;
  detail?: string;
  /** Operation-specific counters (blocks changed, bytes written, ...). */
  counters?: Record<string, number>;
}

/** Callback receiving progress events; called at most every few hundred milliseconds. */
export type ProgressListener = (event: ProgressEvent) => void;

/** `listener`, its events named `operation`: for a command that runs another's engine (diff of two images: verify's; convert: copy's). */
export function reportedAs(listener: ProgressListener | undefined, operation: string): ProgressListener | undefined {
  return listener && ((event) => listener({ ...event, operation }));
}

/** Calls `listener` at most once per `intervalMs`, always passing the latest event; flush() forces one. */
export function throttle(listener: ProgressListener | undefined, intervalMs = 200): {
  report: (event: ProgressEvent) => void;
  flush: () => void;
} {
  let last = 0;
  let pending: ProgressEvent | undefined;
  return {
    report(event) {
      if (!listener) return;
      pending = event;
      const now = Date.now();
      if (now - last >= intervalMs) {
        last = now;
        listener(event);
        pending = undefined;
      }
    },
    flush() {
      if (listener && pending) listener(pending);
      pending = undefined;
    },
  };
}
