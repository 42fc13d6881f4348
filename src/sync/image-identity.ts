// Identity of an image file: what a digest file or checkpoint records so a later run can tell
// whether the image is still the one it describes (any write changes mtime/ctime; a replaced
// file changes the inode; VHD/VHDX also carry a unique id).

import { promises as fsp } from "node:fs";
import { resolve } from "node:path";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import type { DiskImage } from "../formats/disk-image.js";

/** Identity fields of an image (JSON-safe: 64-bit values as decimal strings). */
export interface ImageIdentity {
  format: string;
  path: string;
  virtualSizeBytes: number;
  fileSizeBytes: string;
  mtimeNs: string;
  ctimeNs: string;
  inode: string;
  device: string;
  uniqueId?: string;
}

/** Reads the identity of an open image. @throws VHDSYNC_NOT_FOUND and other I/O codes */
export async function imageIdentity(image: DiskImage): Promise<ImageIdentity> {
  let stat;
  try {
    stat = await fsp.stat(image.path, { bigint: true });
  } catch (error) {
    throw toVhdsyncError(error, { path: image.path });
  }
  const identity: ImageIdentity = {
    format: image.format,
    path: resolve(image.path),
    virtualSizeBytes: image.virtualSize,
    fileSizeBytes: stat.size.toString(),
    mtimeNs: stat.mtimeNs.toString(),
    ctimeNs: stat.ctimeNs.toString(),
    inode: stat.ino.toString(),
    device: stat.dev.toString(),
  };
  if (image.format === "vhd" || image.format === "vhdx") {
    const uniqueId = (await image.info()).uniqueId;
    if (uniqueId) identity.uniqueId = uniqueId;
  }
  return identity;
}

/**
 * Whether two paths name the same file (device and inode; links and other spellings
 * included). False when either does not exist. @throws I/O codes other than ENOENT
 */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [statA, statB] = await Promise.all([a, b].map((path) => fsp.stat(path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined;
    throw toVhdsyncError(error, { path });
  })));
  return statA !== undefined && statB !== undefined && statA.dev === statB.dev && statA.ino === statB.ino;
}

/**
 * Refuses (VHDSYNC_INVALID_ARGUMENT) an output or state file `path` that is the same file as
 * one of `inputs`: writing it would destroy that input.
 * @param what e.g. "the digest file"
 */
export async function refuseSameFile(path: string, inputs: Array<string | undefined>, what: string, inputRole = ""): Promise<void> {
  for (const input of inputs) {
    if (input !== undefined && (await sameFile(path, input))) {
      throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${what} ${path} is the same file as ${inputRole}${input}; it would be overwritten`, { path, input });
    }
  }
}

/** The files of an open image's differencing chain below it (its parents), nearest first. */
export async function parentsOf(image: DiskImage): Promise<string[]> {
  return (await image.info()).chain.slice(1).map((layer) => layer.path);
}

/** Names of the identity fields that differ (path is informational and not compared). */
export function identityDifferences(expected: ImageIdentity, actual: ImageIdentity): string[] {
  const fields: (keyof ImageIdentity)[] = ["format", "virtualSizeBytes", "fileSizeBytes", "mtimeNs", "ctimeNs", "inode", "device", "uniqueId"];
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
