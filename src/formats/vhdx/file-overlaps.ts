// Finds structures of a VHDX that share file bytes ([MS-VHDX] 2.1, 2.5.1: every structure
// starts on a 1 MiB boundary), in memory bounded by typed arrays instead of one object per
// block: a fully allocated 1 TiB disk in 1 MiB blocks has a million payload blocks.
//
// Pass 1 sorts one number per extent (offset in MiB, times 16, plus a class for its length)
// and sweeps them to find the offsets of every extent that overlaps another. Pass 2 runs only
// when there are some: it sorts just those extents by (offset, id) and sweeps them like the
// plain algorithm (sort every extent by offset, keep the one reaching furthest, report each
// extent starting before its end), so the messages are the same as that algorithm's. Because
// every start is MiB-aligned, two extents overlap exactly when their MiB ranges (end rounded
// up) do, so pass 1 may work in MiB.

import { MIB } from "./vhdx-structures.js";

/** The structures of a file; every offset is a multiple of 1 MiB. */
export interface FileExtentSource {
  /**
   * Calls `visit` for every extent of non-zero length, in ascending `id` order (the order
   * that breaks ties between extents starting at the same offset).
   */
  forEach(visit: (id: number, offsetBytes: number, lengthBytes: number) => void): void;
  /** Name (for messages), offset and length of extent `id`. */
  describe(id: number): { name: string; offsetBytes: number; lengthBytes: number };
}

/** One structure starting inside another. */
export interface FileOverlap {
  message: string;
  /** File offset of the later structure. */
  offsetBytes: number;
}

/** Distinct extent lengths pass 1 can tell apart (the low 4 bits of its keys). */
const LENGTH_CLASSES = 16;
/** Pass 2 keys are rank x 2^26 + position: exact in a double while both are below 2^26. */
const POSITION_RANGE = 2 ** 26;

/**
 * Every structure that starts inside an earlier one (by offset, then id), naming the one
 * reaching furthest: the first `limit` listed, the others counted. Memory: 8 bytes per
 * extent, plus 12 per overlapping extent.
 */
export function findOverlaps(source: FileExtentSource, limit = Infinity): { overlaps: FileOverlap[]; overlapsOmitted: number } {
  const lengthsMib: number[] = [];
  const classOf = new Map<number, number>();
  let count = 0;
  source.forEach((_id, _offsetBytes, lengthBytes) => {
    const lengthMib = Math.ceil(lengthBytes / MIB);
    if (!classOf.has(lengthMib)) {
      if (lengthsMib.length === LENGTH_CLASSES) throw new Error(`findOverlaps: more than ${LENGTH_CLASSES} distinct extent lengths`);
      classOf.set(lengthMib, lengthsMib.length);
      lengthsMib.push(lengthMib);
    }
    count++;
  });
  if (count >= POSITION_RANGE) throw new Error(`findOverlaps: ${count} extents`);
  const keys = new Float64Array(count);
  let filled = 0;
  source.forEach((_id, offsetBytes, lengthBytes) => {
    keys[filled++] = (offsetBytes / MIB) * LENGTH_CLASSES + (classOf.get(Math.ceil(lengthBytes / MIB)) as number);
  });
  keys.sort();
  const involved = overlappingOffsets(keys, lengthsMib);
  return involved.length === 0 ? { overlaps: [], overlapsOmitted: 0 } : describeOverlaps(source, involved, limit);
}

/**
 * Sweeps sorted pass-1 keys and returns the sorted MiB offsets of every extent overlapping
 * another (written over the front of `keys`: an extent is recorded at most once, so the
 * write position never passes the read position).
 */
function overlappingOffsets(keys: Float64Array, lengthsMib: number[]): Float64Array {
  let written = 0;
  let furthestEndMib = -1;
  let furthestOffsetMib = -1;
  let furthestRecorded = false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const offsetMib = Math.floor(key / LENGTH_CLASSES);
    const endMib = offsetMib + lengthsMib[key - offsetMib * LENGTH_CLASSES];
    const overlaps = offsetMib < furthestEndMib;
    if (overlaps) {
      keys[written++] = offsetMib;
      if (!furthestRecorded) keys[written++] = furthestOffsetMib;
      furthestRecorded = true;
    }
    if (endMib > furthestEndMib) {
      furthestEndMib = endMib;
      furthestOffsetMib = offsetMib;
      furthestRecorded = overlaps;
    }
  }
  return keys.subarray(0, written).sort();
}

/** Index of the first element of sorted `values` not below `value`. */
function lowerBound(values: Float64Array, value: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Pass 2: the extents starting at an overlapping offset, sorted by (offset, id) and swept.
 * Any extent overlapping another starts at one of those offsets, and so does the one
 * reaching furthest before it, so the sweep over them alone gives the full sweep's messages.
 */
function describeOverlaps(source: FileExtentSource, involvedMib: Float64Array, limit: number): { overlaps: FileOverlap[]; overlapsOmitted: number } {
  const isInvolved = (offsetBytes: number) => {
    const at = lowerBound(involvedMib, offsetBytes / MIB);
    return at < involvedMib.length && involvedMib[at] === offsetBytes / MIB;
  };
  let count = 0;
  source.forEach((_id, offsetBytes) => {
    if (isInvolved(offsetBytes)) count++;
  });
  const ids = new Uint32Array(count);
  const order = new Float64Array(count);
  let position = 0;
  source.forEach((id, offsetBytes) => {
    if (!isInvolved(offsetBytes)) return;
    ids[position] = id;
    // ids ascend with position, so ties at one offset keep id order
    order[position] = lowerBound(involvedMib, offsetBytes / MIB) * POSITION_RANGE + position;
    position++;
  });
  order.sort();
  const overlaps: FileOverlap[] = [];
  let overlapsOmitted = 0;
  let furthest: { name: string; offsetBytes: number; lengthBytes: number } | undefined;
  for (const key of order) {
    const extent = source.describe(ids[key % POSITION_RANGE]);
    if (furthest && extent.offsetBytes < furthest.offsetBytes + furthest.lengthBytes && overlaps.length >= limit) {
      overlapsOmitted++;
    } else if (furthest && extent.offsetBytes < furthest.offsetBytes + furthest.lengthBytes) {
      overlaps.push({ message: `${extent.name} at ${extent.offsetBytes} overlaps ${furthest.name} at ${furthest.offsetBytes}`, offsetBytes: extent.offsetBytes });
    }
    if (!furthest || extent.offsetBytes + extent.lengthBytes > furthest.offsetBytes + furthest.lengthBytes) furthest = extent;
  }
  return { overlaps, overlapsOmitted };
}
