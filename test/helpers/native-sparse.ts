// Sparse test files with a known layout of data and holes (64 KiB units, coarser than any
// filesystem block), the extents they must report, and a check that the directory's
// filesystem keeps holes at all (stat blocks) so tests can skip with a stated reason.

import { closeSync, fstatSync, ftruncateSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Prng } from "./prng.js";

export const UNIT_BYTES = 64 * 1024;

export interface ByteRange {
  offset: number;
  length: number;
}

/** Random layout: `units` flags, true = data. */
export function randomLayout(prng: Prng, units: number, dataPercent = 40): boolean[] {
  return Array.from({ length: units }, () => prng.int(100) < dataPercent);
}

/** Writes a file of layout.length units: random bytes in data units, holes elsewhere. */
export function writeSparseFile(path: string, layout: boolean[], prng: Prng): void {
  const fd = openSync(path, "w+");
  try {
    ftruncateSync(fd, layout.length * UNIT_BYTES);
    const chunk = Buffer.alloc(UNIT_BYTES);
    layout.forEach((isData, index) => {
      if (!isData) return;
      prng.fill(chunk);
      chunk[0] |= 1; // never an all-zero unit
      writeSync(fd, chunk, 0, UNIT_BYTES, index * UNIT_BYTES);
    });
  } finally {
    closeSync(fd);
  }
}

/** The coalesced data ranges of a layout of `unitBytes` units. */
export function layoutExtents(layout: boolean[], unitBytes = UNIT_BYTES): ByteRange[] {
  const extents: ByteRange[] = [];
  layout.forEach((isData, index) => {
    if (!isData) return;
    const last = extents[extents.length - 1];
    if (last && last.offset + last.length === index * unitBytes) last.length += unitBytes;
    else extents.push({ offset: index * unitBytes, length: unitBytes });
  });
  return extents;
}

/** Extents clipped to [offset, offset+length). */
export function clipExtents(extents: ByteRange[], offset: number, length: number): ByteRange[] {
  const end = offset + length;
  return extents
    .map((extent) => ({ start: Math.max(extent.offset, offset), stop: Math.min(extent.offset + extent.length, end) }))
    .filter((range) => range.start < range.stop)
    .map((range) => ({ offset: range.start, length: range.stop - range.start }));
}

/** Null when `dir` keeps holes in sparse files; otherwise the reason it does not. */
export function sparseUnsupportedReason(dir: string): string | null {
  const path = join(dir, "sparse-probe");
  const fd = openSync(path, "w+");
  try {
    ftruncateSync(fd, 16 * UNIT_BYTES);
    writeSync(fd, Buffer.alloc(UNIT_BYTES, 1), 0, UNIT_BYTES, 8 * UNIT_BYTES);
    const allocated = fstatSync(fd).blocks * 512;
    return allocated < 4 * UNIT_BYTES ? null : `filesystem of ${dir} allocated ${allocated} bytes for a 1 MiB file with 64 KiB of data (no holes)`;
  } finally {
    closeSync(fd);
    rmSync(path);
  }
}
