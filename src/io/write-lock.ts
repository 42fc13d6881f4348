// One writer per target: a resync, or a copy into an existing target, holds the target's write
// lock for the whole run, so that two runs (two cron jobs that overlap, two library calls) never
// write one image at once, each believing its result. The lock is taken before anything is
// written and released when the run ends, however it ends.
//
// The lock is a Unix socket in Linux's abstract namespace, named after the target's identity
// (device and inode; a block device's device number), that the run listens on. Binding it is
// atomic (a second bind fails with EADDRINUSE), nothing is written to any filesystem, and the
// kernel frees it the moment its process ends, kill -9 included: no stale lock to take over,
// no file to leave behind. Every name of a target (symlinks, hard links, other device nodes)
// meets the same lock. It covers the processes of one host (of one network namespace: not
// containers with network namespaces of their own, nor other hosts sharing the files). A
// holder answers a connection with its pid, which the refusal names.
//
// A block device is also opened exclusively (O_EXCL) for a moment first: that fails while it is
// mounted or claimed by another program, and no resync may write it then. The claim is not
// kept: while a program holds it, the kernel refuses to discard the device's cached pages, and
// hole punching (how zero ranges reach a thin device) fails.

import { constants as fsConstants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Server } from "node:net";
import { resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";

const load = createRequire(import.meta.url);
/** Lock names this process holds. */
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
  const { name, device } = await lockOf(path);
  if (held.has(name)) throw busy(path, `another ${operation} in this process`);
  held.add(name);
  let server: Server;
  try {
    if (device) await checkDeviceUnclaimed(path);
    server = await listen(path, name);
  } catch (error) {
    held.delete(name);
    throw error;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      held.delete(name);
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/** The lock's name for the image at `path`, and whether it is a block device. */
async function lockOf(path: string): Promise<{ name: string; device: boolean }> {
  const stat = await fsp.stat(path, { bigint: true }).catch(() => undefined);
  const device = Boolean(stat?.isBlockDevice());
  // (A target that does not exist yet: its absolute path. The run then fails to open it.)
  const identity = stat ? (device ? `dev-${stat.rdev}` : `file-${stat.dev}-${stat.ino}`) : `path-${resolve(path)}`;
  return { name: `\0vhdsync-write-lock/${identity}`.slice(0, 107), device }; // (sun_path's room)
}

/** The pid of the process holding the write lock of the image at `path`, if one does (and answers). */
export async function writeLockHolder(path: string): Promise<number | undefined> {
  const { createConnection } = load("node:net") as typeof import("node:net");
  return holderPid(createConnection, (await lockOf(path)).name);
}

/** Listens on `name` (the lock); a holder's pid in the refusal when it is taken. */
function listen(path: string, name: string): Promise<Server> {
  // (Loaded on first use, as node:crypto is: ~2 ms of start-up that only runs which write pay.)
  const { createConnection, createServer } = load("node:net") as typeof import("node:net");
  return new Promise((resolveListen, reject) => {
    const server = createServer((socket) => socket.end(`${process.pid}\n`));
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EADDRINUSE") return reject(toVhdsyncError(error, { path }));
      void holderPid(createConnection, name).then((pid) => reject(busy(path, pid ? `process ${pid}` : "another process", pid ? { pid } : {})));
    });
    server.listen({ path: name, exclusive: true }, () => {
      server.unref(); // the lock must not keep the process alive
      resolveListen(server);
    });
  });
}

/** Asks the holder of lock `name` for its pid (undefined when it does not answer within 200 ms). */
function holderPid(connect: typeof import("node:net").createConnection, name: string): Promise<number | undefined> {
  return new Promise((done) => {
    let text = "";
    const socket = connect({ path: name });
    const finish = (pid?: number) => {
      socket.destroy();
      done(pid);
    };
    socket.setTimeout(200, () => finish());
    socket.on("data", (chunk) => (text += chunk));
    socket.on("end", () => finish(/^\d+\n$/.test(text) ? Number(text) : undefined));
    socket.on("error", () => finish());
  });
}

/** Opens the device exclusively (O_EXCL) and closes it: EBUSY while it is mounted or claimed by another program. */
async function checkDeviceUnclaimed(path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EBUSY") throw busy(path, "another program (it is mounted, or opened exclusively)", { errno: "EBUSY" });
    throw toVhdsyncError(error, { path });
  }
  await handle.close();
}
