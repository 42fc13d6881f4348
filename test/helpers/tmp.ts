// Fresh temporary directories for tests, removed when the test ends.

import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { processRuns } from "../../dist/io/atomic-file.js";

/** Creates a temp dir and registers its removal on `t.teardown`. */
export function tempDir(t: { teardown: (fn: () => void) => void }, prefix = "vhdsync-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** This host's name as vhdsync's temp file names spell it (`.NAME.HOST-PID.N.tmp`). */
export const TEMP_HOST = hostname().replace(/[^A-Za-z0-9.-]/g, "_");

/** A process id that no process on this host has: the owner of a killed run's temp files. */
export function deadPid(): number {
  let pid = 4_000_000;
  while (processRuns(pid)) pid--;
  return pid;
}
