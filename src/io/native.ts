// Linux I/O that Node lacks (holes, hole punching, reflinks, block device geometry), served
// by the optional native addon (native/) with portable fallbacks. VHDSYNC_NO_NATIVE=1 forces
// the fallbacks. Until the addon is loaded every function here uses its fallback.

import { readFileSync, statSync } from "node:fs";
import type { Extent } from "../formats/disk-image.js";

/**
 * Allocated data ranges of the file in [offset, offset+length), or null when the platform
 * cannot tell (callers then treat the whole range as allocated).
 */
export async function fileExtents(_fd: number, _offset: number, _length: number): Promise<Extent[] | null> {
  return null;
}

/** Deallocates a range (reads back as zeros). Returns false when unsupported (caller writes zeros). */
export async function punchHole(_fd: number, _offset: number, _length: number): Promise<boolean> {
  return false;
}

/** Size and sector sizes of a block device. */
export interface BlockDeviceInfo {
  sizeBytes: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
}

/**
 * Geometry of the block device at `path`/`fd`; portable fallback reads sysfs
 * (/sys/dev/block/MAJ:MIN/size and queue/*_block_size).
 */
export function blockDeviceInfo(_fd: number, path: string): BlockDeviceInfo | null {
  try {
    const rdev = statSync(path).rdev;
    const major = Math.floor(rdev / 256) & 0xfff;
    const minor = (rdev & 0xff) | ((Math.floor(rdev / 1048576) & 0xfff00) >>> 0);
    const base = `/sys/dev/block/${major}:${minor}`;
    const sectors = Number(readFileSync(`${base}/size`, "utf8").trim());
    const queue = `${base}/${existsQueue(base) ? "" : "../"}queue`;
    const logical = Number(readFileSync(`${queue}/logical_block_size`, "utf8").trim()) || 512;
    const physical = Number(readFileSync(`${queue}/physical_block_size`, "utf8").trim()) || logical;
    return { sizeBytes: sectors * 512, logicalSectorSize: logical, physicalSectorSize: physical };
  } catch {
    return null;
  }
}

function existsQueue(base: string): boolean {
  try {
    statSync(`${base}/queue`);
    return true;
  } catch {
    return false;
  }
}
