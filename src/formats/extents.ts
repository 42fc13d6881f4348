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

/** Widens extents outward to multiples of `alignment` bytes, clipped to `limit`, and coalesces. */
export function alignExtents(extents: Extent[], alignment: number, limit: number): Extent[] {
  const widened = extents.map((extent) => {
    const start = Math.floor(extent.offset / alignment) * alignment;
    const end = Math.min(limit, Math.ceil((extent.offset + extent.length) / alignment) * alignment);
    return { offset: start, length: end - start };
  });
  return unionExtents(widened, []);
}
