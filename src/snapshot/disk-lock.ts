// One snapshot operation at a time per disk: a lock file `<disk file>.snapshot.lock`
// created exclusively and holding the owner's pid. A lock left by a dead process (kill -9)
// is taken over; one held by a live process makes the caller retry later.

import { promises as fsp } from "node:fs";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { processRuns } from "../io/atomic-file.js";
import type { SnapshotPaths } from "./snapshot-paths.js";

/** Path of the lock file of a disk. */
export function lockPath(paths: SnapshotPaths): string {
  return `${paths.state.slice(0, -".snapshot-op.json".length)}.snapshot.lock`;
}

async function acquire(path: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fsp.writeFile(path, `${process.pid}\n`, { flag: "wx" });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw toVhdsyncError(error, { path });
    }
    const owner = Number((await fsp.readFile(path, "utf8").catch(() => "")).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && processRuns(owner)) {
      throw new VhdsyncError("VHDSYNC_IO", `another vhdsync snapshot operation (pid ${owner}) is running on this disk; retry when it ends`, { path, pid: owner });
    }
    await fsp.rm(path, { force: true });
  }
  throw new VhdsyncError("VHDSYNC_IO", `${path}: could not take the snapshot lock`, { path });
}

/**
 * Runs `fn` holding the disk's snapshot lock.
 * @throws VHDSYNC_IO (recoverable) when another live process holds it
 */
export async function withDiskLock<T>(paths: SnapshotPaths, fn: () => Promise<T>): Promise<T> {
  const path = lockPath(paths);
  await acquire(path);
  try {
    return await fn();
  } finally {
    await fsp.rm(path, { force: true });
  }
}
