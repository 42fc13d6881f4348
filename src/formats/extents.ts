// Small pure helpers over sorted byte extents (allocation maps): union, clipping, totals,
// and splitting into I/O-sized pieces.

import type { Extent } from "./disk-image.js";

/** Union of two sorted, coalesced extent lists (result sorted and coalesced). */
export function unionExtents(a: Extent[], b: Extent[]): Extent[] {
  const all = [...a, ...b].sort((x, y) => x.offset - y.offset);
  const out: Extent[] = [];
  for (const extent of all) {
    if (extent.length === 0) continue;
    const last = out[out.length - 1];
    if (last && extent.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, extent.offset + extent.length - last.offset);
    } else {
      out.push({ ...extent });
    }
  }
  return out;
}

/** Window of allocatedBytesOf: its map holds at most 16k extents of 4 KiB apart (~1 MiB). */
const ALLOCATED_WINDOW_BYTES = 128 * 1024 * 1024;

/**
 * Bytes an image's allocation map covers in [0, sizeBytes), summed window by window: memory
 * stays bounded however fragmented the data (the whole map of an 8 GiB raw file with 4 KiB of
 * data every 8 KiB took 242 MB).
 */
export async function allocatedBytesOf(map: (offset: number, length: number) => Promise<Extent[]>, sizeBytes: number): Promise<number> {
  let total = 0;
  for (let offset = 0; offset < sizeBytes; offset += ALLOCATED_WINDOW_BYTES) {
    total += totalLength(await map(offset, Math.min(ALLOCATED_WINDOW_BYTES, sizeBytes - offset)));
  }
  return total;
}

/** Total bytes covered by a list of non-overlapping extents. */
export function totalLength(extents: Extent[]): number {
  return extents.reduce((sum, extent) => sum + extent.length, 0);
}

/** Yields pieces of at most `maxBytes` covering the extents in order. */
export function* splitExtents(extents: Extent[], maxBytes: number): Generator<Extent> {
  for (const extent of extents) {
    for (let done = 0; done < extent.length; done += maxBytes) {
      yield { offset: extent.offset + done, length: Math.min(maxBytes, extent.length - done) };
    }
  }
}

/**
 * Joins sorted, coalesced extents whose gap is at most `maxGapBytes` (a reader then covers the
 * gap too: one read instead of many small ones).
 */
export function bridgeGaps(extents: Extent[], maxGapBytes: number): Extent[] {
  const out: Extent[] = [];
  for (const extent of extents) {
    const last = out[out.length - 1];
    if (last && extent.offset - (last.offset + last.length) <= maxGapBytes) last.length = extent.offset + extent.length - last.offset;
    else out.push({ ...extent });
  }
  return out;
}

/** Widens extents outward to multiples of `alignment` bytes, clipped to `limit`, and coalesces. */
export function alignExtents(extents: Extent[], alignment: number, limit: number): Extent[] {
  const widened = extents.map((extent) => {
    const start = Math.floor(extent.offset / alignment) * alignment;
    const end = Math.min(limit, Math.ceil((extent.offset + extent.length) / alignment) * alignment);
    return { offset: start, length: end - start };
  });
  return unionExtents(widened, []);
}
