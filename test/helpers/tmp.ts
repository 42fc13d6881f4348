// Fresh temporary directories for tests, removed when the test ends.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Creates a temp dir and registers its removal on `t.teardown`. */
export function tempDir(t: { teardown: (fn: () => void) => void }, prefix = "vhdsync-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
