// One snapshot operation at a time per disk, and none while another program writes it.
//
// The snapshot lock is named after the disk: its directory's device and inode and its file
// name (the disk's file changes under an operation: create and revert swap a new child in).
// It is held the same way as the write lock (src/io/write-lock.ts): an abstract Unix socket
// bound by the operation, so a second operation, in this process or another, is refused at
// once (VHDSYNC_BUSY, recoverable, naming the holder), and the kernel frees it when the holder
// dies, kill -9 included: nothing to take over, no file left behind. (Until the twenty-fourth
// session it was a lock file holding a pid; two operations started together in one process both
// took it, and one snapshot was lost from the catalogue.)
//
// The operation also takes the write lock of the disk's file as it is when the operation
// starts: a snapshot is not taken, reverted or merged while a resync, copy, convert or log
// apply writes the disk (create gives that very file the layer's name), and those refuse to
// start on it until the operation ends.

import { promises as fsp } from "node:fs";
import { basename } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { nodeCrypto } from "../io/node-crypto.js";
import { acquireNamedLock, acquireWriteLock, type WriteLock } from "../io/write-lock.js";
import type { SnapshotPaths } from "./snapshot-paths.js";

/** The snapshot lock's name for a disk: its directory's identity and its file name's hash (a name holds 106 bytes). */
export async function snapshotLockName(paths: SnapshotPaths): Promise<string> {
  const directory = await fsp.stat(paths.directory, { bigint: true }).catch((error: unknown) => Promise.reject(toVhdsyncError(error, { path: paths.directory })));
  const file = nodeCrypto().createHash("sha256").update(basename(paths.disk)).digest("hex").slice(0, 32);
  return `vhdsync-snapshot-lock/${directory.dev}-${directory.ino}-${file}`;
}

/**
 * Runs `fn` holding the disk's snapshot lock and the write lock of its file.
 * @throws VHDSYNC_BUSY (recoverable) when another snapshot operation runs on the disk, or
 *   another run writes its file
 */
export async function withDiskLock<T>(paths: SnapshotPaths, fn: () => Promise<T>): Promise<T> {
  const refusal = (holder: string, details: Record<string, unknown>) =>
    new VhdsyncError("VHDSYNC_BUSY", `another vhdsync snapshot operation ${holder === "this process" ? "in this process" : `(${holder})`} is running on ${paths.disk}; retry when it ends`, { path: paths.disk, ...details });
  const lock = await acquireNamedLock(await snapshotLockName(paths), paths.disk, refusal);
  let writeLock: WriteLock | undefined;
  try {
    writeLock = await acquireWriteLock(paths.disk, "snapshot operation");
    return await fn();
  } finally {
    await writeLock?.release();
    await lock.release();
  }
}
