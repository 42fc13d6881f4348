// One writer per target: a resync, or a copy into an existing target, holds the target's write
// lock for the whole run, so that two runs (two cron jobs that overlap, two library calls) never
// write one image at once, each believing its result. The lock is taken before anything is
// written and released when the run ends, however it ends.
//
// - In this process: a set of the targets being written (by their lock file's path).
// - Between processes: a lock file created exclusively and holding "PID HOST". One that a
//   process of this host that no longer runs left behind (kill -9) is taken over; another
//   host's is honoured (its process cannot be checked). For a regular file it is
//   `.NAME.vhdsync-lock` beside it (none where the directory cannot be written: best effort);
//   for a block device `vhdsync-dev-MAJOR-MINOR.lock` in /run/lock (or the temp directory).
// - A block device is also opened exclusively (O_EXCL) for a moment first: that fails while it
//   is mounted or claimed by another program, and no resync may write it then. The claim is not
//   kept: while a program holds it, the kernel refuses to discard the device's cached pages,
//   and hole punching (how zero ranges reach a thin device) fails.

import { constants as fsConstants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { processRuns } from "./atomic-file.js";

const HOST = hostname();
/** Lock files (taken or not: a directory may refuse them) of the targets this process is writing. */
const held = new Set<string>();

/** A held write lock; release() once the run ends. */
export interface WriteLock {
  release(): Promise<void>;
}

function busy(path: string, holder: string, details: Record<string, unknown> = {}): VhdsyncError {
  return new VhdsyncError("VHDSYNC_BUSY", `${path} is being written by ${holder}; retry when it ends`, { path, ...details });
}

/**
 * Takes the write lock of the image at `path` for `operation` (a word for messages).
 * @throws VHDSYNC_BUSY (recoverable) when another run writes it, or a block device is in use
 */
export async function acquireWriteLock(path: string, operation: string): Promise<WriteLock> {
  const real = await fsp.realpath(path).catch(() => resolve(path));
  const stat = await fsp.stat(real).catch(() => undefined);
  const device = stat?.isBlockDevice() ? stat : undefined;
  const lock = device
    ? join(await deviceLockDirectory(), `vhdsync-dev-${major(device.rdev)}-${minor(device.rdev)}.lock`)
    : join(dirname(real), `.${basename(real)}.vhdsync-lock`);
  // Keyed by the lock file: every name of the target (links, other device nodes) meets here.
  if (held.has(lock)) throw busy(path, `another ${operation} in this process`);
  held.add(lock);
  let release: () => Promise<void>;
  try {
    if (device) await checkDeviceUnclaimed(path, real);
    release = await lockFile(path, lock);
  } catch (error) {
    held.delete(lock);
    throw error;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await release();
      } finally {
        held.delete(lock);
      }
    },
  };
}

/** Linux's dev_t encoding (glibc's gnu_dev_major / gnu_dev_minor). */
function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

/** Where device lock files go: /run/lock when this process may write there, else the temp directory. */
async function deviceLockDirectory(): Promise<string> {
  const run = "/run/lock";
  return (await fsp.access(run, fsConstants.W_OK).then(() => true, () => false)) ? run : tmpdir();
}

/** Opens the device exclusively (O_EXCL) and closes it: EBUSY while it is mounted or claimed by another program. */
async function checkDeviceUnclaimed(path: string, real: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(real, fsConstants.O_RDONLY | fsConstants.O_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EBUSY") throw busy(path, "another program (it is mounted, or opened exclusively)", { errno: "EBUSY" });
    throw toVhdsyncError(error, { path });
  }
  await handle.close();
}

/** Takes the lock file `lock` for `path`; how to remove it (nothing when it could not be made). */
async function lockFile(path: string, lock: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fsp.writeFile(lock, `${process.pid} ${HOST}\n`, { flag: "wx" });
      return () => fsp.rm(lock, { force: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM" || code === "EROFS") return async () => {};
      if (code !== "EEXIST") throw toVhdsyncError(error, { path: lock });
    }
    const [pidText, host] = (await fsp.readFile(lock, "utf8").catch(() => "")).trim().split(" ");
    const pid = Number(pidText);
    const known = Number.isSafeInteger(pid) && pid > 0;
    if (known && host !== undefined && host !== HOST) throw busy(path, `process ${pid} on host ${host} (or remove ${lock} if none runs there)`, { pid, host, lockPath: lock });
    if (known && pid !== process.pid && processRuns(pid)) throw busy(path, `process ${pid} (or remove ${lock} if that is not vhdsync)`, { pid, lockPath: lock });
    // Its process is gone (or the file is unreadable): take it over.
    await fsp.rm(lock, { force: true });
  }
  throw busy(path, "another run that keeps taking its lock", { lockPath: lock });
}
