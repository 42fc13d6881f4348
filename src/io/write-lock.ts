// One writer per target: a resync, or a copy into an existing target, holds the target's write
// lock for the whole run, so that two runs (two cron jobs that overlap, two library calls) never
// write one image at once, each believing its result. The lock is taken before anything is
// written and released when the run ends, however it ends.
//
// The lock is a Unix socket in Linux's abstract namespace, named after the target's identity
// (device and inode; a block device's device number), bound by the run: by the addon (a socket
// and a bind, ~0.1 ms), or without it by a node:net server listening on the name (loading
// node:net costs ~3 ms). Binding is atomic (a second bind fails with EADDRINUSE), nothing is
// written to any filesystem, and the kernel frees the name the moment its process ends, kill -9
// included: no stale lock to take over, no file to leave behind. Every name of a target
// (symlinks, hard links, other device nodes) meets the same lock. It covers the processes of one
// host (of one network namespace: not containers with network namespaces of their own, nor
// other hosts sharing the files). A refusal names the holder's pid, found through /proc.
//
// A block device is also opened exclusively (O_EXCL) for a moment first: that fails while it is
// mounted or claimed by another program, and no resync may write it then. The claim is not
// kept: while a program holds it, the kernel refuses to discard the device's cached pages, and
// hole punching (how zero ranges reach a thin device) fails.

import { closeSync, constants as fsConstants, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Server } from "node:net";
import { resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { fromNativeError, nativeAddon } from "./native-addon.js";

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
  return acquireNamedLock(name, path, (holder, details) => busy(path, holder === "this process" ? `another ${operation} in this process` : holder, details), () => (device ? checkDeviceUnclaimed(path) : undefined));
}

/**
 * Takes the lock `name` (an abstract socket name, at most 106 bytes) for the file at `path`
 * (for error details): the mechanism of the write lock, for other locks too (the snapshot
 * lock of a disk). `refusal` makes the error when another holds it: `holder` is "this
 * process", "process N" or "another process". `before` runs once the name is reserved in this
 * process, before the bind.
 * @throws refusal's error, or what `before` throws
 */
export async function acquireNamedLock(
  name: string,
  path: string,
  refusal: (holder: string, details: Record<string, unknown>) => VhdsyncError,
  before: () => Promise<void> | undefined = () => undefined,
): Promise<WriteLock> {
  if (held.has(name)) throw refusal("this process", { pid: process.pid });
  held.add(name);
  let unbind: () => Promise<void>;
  try {
    await before();
    unbind = await bind(name);
  } catch (error) {
    held.delete(name);
    if ((error as { code?: unknown }).code !== "EADDRINUSE") throw toVhdsyncError(error, { path });
    const pid = await lockHolder(name);
    throw refusal(pid ? `process ${pid}` : "another process", pid ? { pid } : {});
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      held.delete(name);
      await unbind();
    },
  };
}

/** The lock's name for the image at `path` (without the abstract namespace's leading NUL), and whether it is a block device. */
async function lockOf(path: string): Promise<{ name: string; device: boolean }> {
  const stat = await fsp.stat(path, { bigint: true }).catch(() => undefined);
  const device = Boolean(stat?.isBlockDevice());
  // (A target that does not exist yet: its absolute path. The run then fails to open it.)
  const identity = stat ? (device ? `dev-${stat.rdev}` : `file-${stat.dev}-${stat.ino}`) : `path-${resolve(path)}`;
  return { name: `vhdsync-write-lock/${identity}`.slice(0, 106), device }; // (sun_path's room)
}

/** Binds the abstract name; how to free it. @throws EADDRINUSE (an error with that code) while another holds it */
async function bind(name: string): Promise<() => Promise<void>> {
  const addon = nativeAddon();
  if (addon?.bindAbstractSocket) {
    const bytes = new TextEncoder().encode(name);
    let fd: number;
    try {
      fd = addon.bindAbstractSocket(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    } catch (error) {
      if ((error as { code?: unknown }).code === "EADDRINUSE") throw error;
      throw fromNativeError(error);
    }
    return async () => closeSync(fd);
  }
  // (Loaded on first use, as node:crypto is: ~3 ms of start-up.)
  const { createServer } = load("node:net") as typeof import("node:net");
  const server = await new Promise<Server>((listening, failed) => {
    const candidate = createServer();
    candidate.once("error", failed);
    candidate.listen({ path: `\0${name}`, exclusive: true }, () => listening(candidate.unref())); // the lock must not keep the process alive
  });
  return () => new Promise<void>((closed) => server.close(() => closed()));
}

/**
 * The pid of the process of this host holding the write lock of the image at `path`, if one
 * does: the socket's inode from /proc/net/unix, then the process with a descriptor on it.
 */
export async function writeLockHolder(path: string): Promise<number | undefined> {
  return lockHolder((await lockOf(path)).name);
}

/** The pid of the process of this host holding the lock `name` (see acquireNamedLock), if one does. */
export async function lockHolder(name: string): Promise<number | undefined> {
  const table = await fsp.readFile("/proc/net/unix", "utf8").catch(() => "");
  // Num RefCount Protocol Flags Type St Inode Path: an abstract name shows as @name, its NUL
  // padding (both binds use the whole sockaddr_un, as libuv does) as more @.
  const shown = new RegExp(`^@${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}@*$`);
  const inode = table.split("\n").map((line) => line.trim().split(/\s+/)).find((fields) => shown.test(fields[7] ?? ""))?.[6];
  if (!inode) return undefined;
  const socket = `socket:[${inode}]`;
  for (const entry of await fsp.readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const fds = await fsp.readdir(`/proc/${entry}/fd`).catch(() => [] as string[]);
    for (const fd of fds) if ((await fsp.readlink(`/proc/${entry}/fd/${fd}`).catch(() => "")) === socket) return Number(entry);
  }
  return undefined;
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
