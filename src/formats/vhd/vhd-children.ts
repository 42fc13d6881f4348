// Finds VHD files in a directory whose header names a given disk as parent (by Parent Unique
// ID), without opening their chains: footer and dynamic header only. Used to refuse what would
// break a differencing disk that depends on a disk: snapshot operations on layers vhdsync does
// not manage the children of, and resizing or writing to a disk others depend on.

import { closeSync, openSync, promises as fsp, readSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../../errors.js";
import type { DiskImage } from "../disk-image.js";
import { openVhd, parseEndFooter } from "./open-vhd.js";
import { VHD_FOOTER_BYTES, VHD_HEADER_BYTES, formatUuid, parseFooter, parseHeader, type VhdFooter } from "./vhd-structures.js";

const COOKIE = Buffer.from("conectix", "latin1");

/**
 * Parent unique id of a differencing VHD, or null (not a regular file, not a VHD, not
 * differencing, unreadable). Synchronous reads: a few hundred bytes per file, where the async
 * file API's per-call cost made a directory of 36 images take 8-15 ms before a resync into a
 * dynamic VHD could start, against 0.6 ms read this way.
 */
function parentUniqueIdOf(path: string): string | null {
  let fd: number | undefined;
  try {
    // Only regular files: opening a FIFO for reading would wait for a writer (forever).
    const stats = statSync(path);
    if (!stats.isFile()) return null;
    fd = openSync(path, "r");
    // A differencing disk (like any dynamic one) starts with its footer's copy and ends with
    // the footer (512 bytes, or 511 from Virtual PC before 2004). Only a file with the cookie
    // at either place is parsed (most files in a directory of images are not VHDs, and parse
    // errors cost); the copy is read first, the footer when the copy is damaged.
    const head = Buffer.alloc(VHD_FOOTER_BYTES);
    const headRead = readSync(fd, head, 0, head.length, 0);
    let footer: VhdFooter | undefined;
    if (headRead === head.length && head.subarray(0, COOKIE.length).equals(COOKIE)) {
      try {
        footer = parseFooter(head, stats.size, { path, offset: 0 });
      } catch {
        // damaged: the footer at the end
      }
    }
    if (!footer) {
      const tail = Buffer.alloc(VHD_FOOTER_BYTES);
      if (stats.size < tail.length || readSync(fd, tail, 0, tail.length, stats.size - tail.length) < tail.length) return null;
      if (!tail.subarray(0, COOKIE.length).equals(COOKIE) && !tail.subarray(1, 1 + COOKIE.length).equals(COOKIE)) return null;
      footer = parseEndFooter(tail, stats.size, path).footer;
    }
    if (footer.diskType !== 4) return null;
    const headerOffsetBytes = Number(footer.dataOffset);
    const raw = Buffer.alloc(VHD_HEADER_BYTES);
    if (readSync(fd, raw, 0, raw.length, headerOffsetBytes) < raw.length) return null;
    const header = parseHeader(raw, { headerOffsetBytes, fileSizeBytes: stats.size, virtualSizeBytes: footer.virtualSizeBytes, isDifferencing: true }, { path });
    return formatUuid(header.parentUniqueId);
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Maps each parent unique id to the paths of the differencing VHDs in `directory` naming it:
 * every regular file is looked at (a child need not be named *.vhd), but not those whose names
 * start with "." (vhdsync's temp files) nor subdirectories. A child of a copy of a disk (the
 * same unique id) counts as the disk's.
 * @throws I/O codes when the directory cannot be listed
 */
export async function childrenInDirectory(directory: string): Promise<Map<string, string[]>> {
  let names: string[];
  try {
    names = await fsp.readdir(directory);
  } catch (error) {
    throw toVhdsyncError(error, { path: directory });
  }
  const byParent = new Map<string, string[]>();
  for (const name of names.sort()) {
    if (name.startsWith(".")) continue;
    const path = join(directory, name);
    const parentId = parentUniqueIdOf(path);
    if (parentId) byParent.set(parentId, [...(byParent.get(parentId) ?? []), path]);
  }
  return byParent;
}

/**
 * The differencing VHDs in the directory of `image`'s file (the real file's, through symlinks)
 * whose parent is `image` (by unique id): snapshot layers, hand-made children. [] for an image
 * that is not a VHD.
 * @throws I/O codes when the directory cannot be listed
 */
export async function dependentsOf(image: DiskImage): Promise<string[]> {
  const uniqueId = image.format === "vhd" ? image.chain()[0]?.uniqueId : undefined;
  if (!uniqueId) return [];
  const real = await fsp.realpath(image.path).catch((error: unknown) => Promise.reject(toVhdsyncError(error, { path: image.path })));
  const candidates = (await childrenInDirectory(dirname(real))).get(uniqueId) ?? [];
  const dependents: string[] = [];
  // A child whose locators lead to another file with the same unique id (a copy of the disk:
  // `cp base.vhd backup.vhd`) reads that file, not this one: writing here does not change it.
  for (const child of candidates) if (!(await readsAnotherParent(child, real))) dependents.push(child);
  return dependents;
}

/**
 * Whether the differencing VHD at `childPath` resolves its parent (by its locators, as it is
 * opened) to a file other than `real`. False when its chain cannot be opened: the child is then
 * kept as a dependent by its unique id alone.
 */
async function readsAnotherParent(childPath: string, real: string): Promise<boolean> {
  let child: DiskImage | undefined;
  try {
    child = await openVhd(childPath, { readOnly: true });
    const parentPath = child.chain()[1]?.path;
    if (!parentPath) return false;
    return (await fsp.realpath(parentPath)) !== real;
  } catch {
    return false;
  } finally {
    await child?.close().catch(() => undefined);
  }
}

/**
 * The state file a snapshot operation keeps beside the disk at `diskPath` until it is finished
 * (src/snapshot/snapshot-paths.ts; defined here so writers below the snapshot layer find it).
 */
export function snapshotStatePath(diskPath: string): string {
  const disk = resolve(diskPath);
  return join(dirname(disk), `${basename(disk)}.snapshot-op.json`);
}

/**
 * Refuses to write to (or resize) a VHD that differencing disks depend on: they read their
 * parent's data where they have none of their own, so every write would change what they read
 * (Hyper-V forbids it for the same reason). `action` names the writer in the message, `why`
 * what it would do to them. Also refuses a disk with a snapshot operation a crash left
 * unfinished: finishing it renames a layer over the disk's file or copies what it held at the
 * crash, and what was written meanwhile would be lost.
 * @throws VHDSYNC_UNSUPPORTED (details.dependents), VHDSYNC_BUSY (details.snapshotState)
 */
export async function refuseWritingDependedOn(image: DiskImage, action: string, why = "what they read would change; write to the leaf of the chain, or merge or delete them first"): Promise<void> {
  // Beside the name used and beside the file a link names: an operation run through either
  // keeps its state there.
  const real = await fsp.realpath(image.path).catch(() => image.path);
  for (const state of new Set([snapshotStatePath(image.path), snapshotStatePath(real)])) {
    if (!(await fsp.lstat(state).then(() => true, () => false))) continue;
    throw new VhdsyncError(
      "VHDSYNC_BUSY",
      `${image.path}: cannot ${action} a disk whose snapshot operation is running or was left unfinished (${state}): finishing it would undo what is written now; when none runs, run vhdsync snapshot resume ${image.path} first`,
      { path: image.path, snapshotState: state },
    );
  }
  const dependents = await dependentsOf(image);
  if (dependents.length === 0) return;
  throw new VhdsyncError(
    "VHDSYNC_UNSUPPORTED",
    `${image.path}: cannot ${action} a disk that differencing disks depend on (${dependents.join(", ")}): ${why} (vhdsync snapshot merge/delete for snapshots)`,
    { path: image.path, dependents },
  );
}
