// Identity of an image file: what a digest file or checkpoint records so a later run can tell
// whether the image is still the one it describes (any write changes mtime/ctime; a replaced
// file changes the inode; VHD/VHDX also carry a unique id). A differencing disk reads its
// parents where it has no data of its own, so its identity also covers their files' states.

import { promises as fsp } from "node:fs";
import { resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import type { ChainLayer, DiskImage } from "../formats/disk-image.js";
import { checkImage } from "../arguments.js";
import { toHex } from "../hash/algorithm.js";
import { sha256 } from "../hash/sha256.js";

/** Identity fields of an image (JSON-safe: 64-bit values as decimal strings). */
export interface ImageIdentity extends FileState {
  format: string;
  path: string;
  virtualSizeBytes: number;
  uniqueId?: string;
  /**
   * A differencing disk's parents (nearest first): SHA-256 (hex) of their file states, as
   * JSON. A write to any parent changes what the disk reads, and this; bounded whatever the
   * chain's depth. Absent for an image without parents.
   */
  parentsState?: string;
}

/** A file's state: what any write, truncation or replacement changes (64-bit values as decimal strings). */
export interface FileState {
  fileSizeBytes: string;
  mtimeNs: string;
  ctimeNs: string;
  inode: string;
  device: string;
}

/** The state of the file at `path`. @throws VHDSYNC_NOT_FOUND and other I/O codes */
export async function fileState(path: string): Promise<FileState> {
  try {
    const stat = await fsp.stat(path, { bigint: true });
    return { fileSizeBytes: stat.size.toString(), mtimeNs: stat.mtimeNs.toString(), ctimeNs: stat.ctimeNs.toString(), inode: stat.ino.toString(), device: stat.dev.toString() };
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
}

/**
 * Refuses a target that its format cannot write (VHDX, in this release) although it was opened
 * for writing: before any scan, so that a run writes, resizes or checkpoints nothing for it.
 * @throws VHDSYNC_UNSUPPORTED
 */
export function refuseReadOnlyFormat(target: DiskImage): void {
  if (target.readOnly) {
    throw new VhdsyncError("VHDSYNC_UNSUPPORTED", `${target.path}: ${target.format} images cannot be written in this release (resync or copy into raw or VHD)`, { path: target.path, format: target.format });
  }
}

/** Reads the identity of an open image. @throws VHDSYNC_NOT_FOUND and other I/O codes */
export async function imageIdentity(image: DiskImage): Promise<ImageIdentity> {
  checkImage(image, "image");
  const identity: ImageIdentity = { format: image.format, path: resolve(image.path), virtualSizeBytes: image.virtualSize, ...(await fileState(image.path)) };
  if (image.format === "vhd" || image.format === "vhdx") {
    const chain = await chainOf(image);
    if (chain[0].uniqueId) identity.uniqueId = chain[0].uniqueId;
    if (chain.length > 1) identity.parentsState = await parentsStateOf(chain.slice(1).map((layer) => layer.path));
  }
  return identity;
}

/** The parentsState of an image whose parents are the files at `paths`, nearest first. @throws I/O codes */
async function parentsStateOf(paths: string[]): Promise<string> {
  const states = await Promise.all(paths.map(fileState));
  return toHex(sha256(new TextEncoder().encode(JSON.stringify(states))));
}

// refuseSameFile moved to src/io/file.ts (the HRL log outputs need it too); re-exported here.
export { refuseSameFile } from "../io/file.js";

/** The files of an open image's differencing chain below it (its parents), nearest first. */
export async function parentsOf(image: DiskImage): Promise<string[]> {
  return (await chainOf(image)).slice(1).map((layer) => layer.path);
}

/** chain(), or info().chain from an image of a registered format written before chain() existed. */
async function chainOf(image: DiskImage): Promise<ChainLayer[]> {
  return typeof image.chain === "function" ? image.chain() : (await image.info()).chain;
}

/** Names of the identity fields that differ (path is informational and not compared). */
export function identityDifferences(expected: ImageIdentity, actual: ImageIdentity): string[] {
  const fields: (keyof ImageIdentity)[] = ["format", "virtualSizeBytes", "fileSizeBytes", "mtimeNs", "ctimeNs", "inode", "device", "uniqueId", "parentsState"];
  return fields.filter((field) => String(expected[field] ?? "") !== String(actual[field] ?? ""));
}

/**
 * Throws VHDSYNC_IDENTITY_MISMATCH unless `actual` is the image `expected` describes.
 * @param what e.g. "target digest"
 */
export function checkIdentity(expected: ImageIdentity, actual: ImageIdentity, what: string): void {
  const differences = identityDifferences(expected, actual);
  if (differences.length > 0) {
    throw new VhdsyncError(
      "VHDSYNC_IDENTITY_MISMATCH",
      `${actual.path}: the ${what} describes a different state of this image (changed: ${differences.join(", ")}); recompute it with vhdsync checksum`,
      { path: actual.path, differences },
    );
  }
}
