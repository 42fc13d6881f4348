// The native addon's segment compare (native/src/scan.rs): two images whose data lies in
// plain runs of their files (raw files, block devices, fixed and dynamic VHDs) compared block
// by block on a thread of the libuv pool, from their page-cache pages mapped read-only, with
// the differing data written to the target there.
// Unavailable without the addon or with VHDSYNC_NO_NATIVE_SCAN=1; callers then scan with
// WASM on worker threads (src/sync/segment-scanner.ts).

import { VhdsyncError } from "../errors.js";
import { errnoName, fromNativeError, nativeAddon, type CompareSegmentCounts, type NativeAddon } from "./native-addon.js";

/**
 * A range to compare: [start, end) of the virtual disk, and the file offsets of `start` in the
 * source and the target (omitted: `start`, as in flat images; null: that side reads as zeros).
 */
export type CompareRange = [start: number, end: number, sourceAt?: number | null, targetAt?: number | null];

/** One segment's compare. */
export interface CompareSegmentRequest {
  sourceFd: number;
  targetFd: number;
  blockSizeBytes: number;
  /** The block, or a part of it (blocks larger than this are compared and changed in parts). */
  unitBytes: number;
  startBytes: number;
  lengthBytes: number;
  /** Ranges to compare (in order, unit-aligned from startBytes); the rest reads as zeros on both sides. */
  ranges: CompareRange[];
  /** Write the differing non-zero data to the target (every range needs a target offset). */
  write: boolean;
}

/** What the compare found: counts, and the changed ranges as (offset, length, zero) triples. */
export interface CompareSegmentOutcome extends CompareSegmentCounts {
  changesArray: Float64Array;
}

/** The addon when it can compare segments, else null. */
function compareAddon(): NativeAddon | null {
  if (process.env.VHDSYNC_NO_NATIVE_SCAN === "1") return null;
  const addon = nativeAddon();
  return addon && typeof addon.compareSegmentAsync === "function" ? addon : null;
}

/** Whether compareSegment() is available. */
export function nativeCompareAvailable(): boolean {
  return compareAddon() !== null;
}

/**
 * Compares one segment on a libuv pool thread. The descriptors must stay open until it settles.
 * @throws VhdsyncError (I/O codes from mmap/pwrite, VHDSYNC_INVALID_ARGUMENT)
 */
export async function compareSegment(request: CompareSegmentRequest): Promise<CompareSegmentOutcome> {
  const addon = compareAddon();
  if (!addon) throw new Error("compareSegment: the native addon is not available");
  // (start, end, sourceAt, targetAt) quadruples; -1 = reads as zeros.
  const ranges = new Float64Array(Math.max(4, request.ranges.length * 4));
  let units = 0;
  request.ranges.forEach(([start, end, sourceAt = start, targetAt = start], index) => {
    ranges.set([start, end, sourceAt ?? -1, targetAt ?? -1], index * 4);
    units += Math.ceil((end - start) / request.unitBytes);
  });
  const changes = new Float64Array(Math.max(3, units * 3));
  try {
    const counts = await addon.compareSegmentAsync(
      request.sourceFd,
      request.targetFd,
      request.blockSizeBytes,
      request.unitBytes,
      request.startBytes,
      request.lengthBytes,
      ranges.buffer,
      request.ranges.length,
      request.write ? 1 : 0,
      changes.buffer,
    );
    return { ...counts, changesArray: changes.slice(0, counts.changes * 3) };
  } catch (error) {
    const details = { offset: request.startBytes, length: request.lengthBytes };
    // The addon refuses to map past the end of a file (it would fault): an image that shrank.
    if (errnoName(error) === "ENXIO") throw new VhdsyncError("VHDSYNC_TRUNCATED", `an image is shorter than the range ${request.startBytes}+${request.lengthBytes} being compared`, details, { cause: error });
    throw fromNativeError(error, details);
  }
}
