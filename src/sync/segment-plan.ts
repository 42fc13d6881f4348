// How the engine cuts an image into segments (units of parallel work, digest frames and
// checkpoint steps), and the engine's tunable defaults.

import { MAX_FRAME_BLOCKS, checkBlockSize } from "./digest-format.js";
import { checkWorkers, workersFromEnv } from "./scan-workers.js";
import { blockDigestLength, type BlockHashAlgorithm } from "./block-hasher.js";
import { checkCount, checkOptions, checkPath } from "../arguments.js";
import type { SegmentTask } from "./segment-task.js";

/** Options a scan checks (see checkScanOptions). */
interface ScanOptions {
  blockSizeBytes?: number;
  workers?: number;
  algo?: BlockHashAlgorithm;
  maxExtents?: number;
}

/**
 * Checks a scan's arguments before anything is opened or written: `paths` (name → value) are
 * paths, and `options` an object with a valid block size, thread count, digest algorithm,
 * extent limit, progress listener and abort signal where given. @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkScanOptions(options: ScanOptions | undefined, paths: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(paths)) checkPath(value, name);
  checkOptions(options);
  if (options?.workers === undefined) workersFromEnv();
  if (!options) return;
  if (options.blockSizeBytes !== undefined) checkBlockSize(options.blockSizeBytes);
  checkWorkers(options.workers);
  if (options.algo !== undefined) blockDigestLength(options.algo);
  checkCount(options.maxExtents, "maxExtents");
}

/** Default block size (see docs/resync.md for the benchmark behind it). */
export const DEFAULT_BLOCK_BYTES = 4096;
/** Default digest algorithm. */
export const DEFAULT_ALGORITHM: BlockHashAlgorithm = "xxh3-128";
/** Bytes of image per segment. */
export const SEGMENT_BYTES = 32 * 1024 * 1024;
/** Segments whose results carry their changed data back to the main thread ("caller" apply) are smaller, to bound the data in flight. */
export const CALLER_SEGMENT_BYTES = 8 * 1024 * 1024;

/** Bytes of segments in flight when results carry their data ("caller" apply): 4 of 8 MiB. */
export const CALLER_IN_FLIGHT_BYTES = 4 * CALLER_SEGMENT_BYTES;

/**
 * Segments in flight for "caller" apply: the pool's default, fewer when a target's blocks
 * make segments larger than CALLER_SEGMENT_BYTES (callerSegmentBytes), one at least. The
 * changed data in flight then stays within CALLER_IN_FLIGHT_BYTES, or one segment.
 */
export function callerInFlight(poolDefault: number, segmentBytes: number): number {
  return Math.max(1, Math.min(poolDefault, Math.floor(CALLER_IN_FLIGHT_BYTES / segmentBytes)));
}

/** Largest "caller" segment: a result carries up to a segment of data, twice while it grows. */
export const CALLER_MAX_SEGMENT_BYTES = 16 * 1024 * 1024;

/** The block of a dynamic or differencing VHD target (0 for other formats). */
function targetBlockBytes(target: object): number {
  const block = (target as { blockSizeBytes?: unknown }).blockSizeBytes;
  return typeof block === "number" ? block : 0;
}

/**
 * Segment bytes for "caller" apply into `target`: CALLER_SEGMENT_BYTES, or the target's own
 * block (a dynamic or differencing VHD's) when that is larger, up to
 * CALLER_MAX_SEGMENT_BYTES. Then no block of the target spans two segments (see
 * callerSegmentsWholeBlocks).
 */
export function callerSegmentBytes(target: object): number {
  return Math.min(CALLER_MAX_SEGMENT_BYTES, Math.max(CALLER_SEGMENT_BYTES, targetBlockBytes(target)));
}

/** Blocks per segment for a run that applies its changes `apply` into `target` (smaller when results carry data). */
export function segmentBlocksFor(blockSizeBytes: number, apply: "none" | "here" | "caller", target: object): number {
  return segmentBlocks(blockSizeBytes, apply === "caller" ? callerSegmentBytes(target) : undefined);
}

/**
 * Whether every block of `target` lies in one "caller" segment. Scanners keep the BAT they
 * opened the target with; the caller allocates, frees and reuses only blocks of segments
 * already scanned, so a scanner never reads a block the caller changed. A target block larger
 * than CALLER_MAX_SEGMENT_BYTES (no common writer makes VHD blocks over 2 MiB) spans segments.
 */
export function callerSegmentsWholeBlocks(target: object): boolean {
  return targetBlockBytes(target) <= CALLER_MAX_SEGMENT_BYTES;
}

/** Read window: small enough that source and target windows stay in the CPU cache while compared. */
export const DEFAULT_WINDOW_BYTES = windowFromEnv() ?? 512 * 1024;

/**
 * Window when raw images are mapped rather than read: no copy, so no cache to fit; large
 * enough that the mapping calls are few (see docs/resync.md).
 */
export const MAPPED_WINDOW_BYTES = windowFromEnv() ?? 4 * 1024 * 1024;

/**
 * Compare granularity: blocks larger than this, or than the blocks of a dynamic image being
 * compared (each of which is one run of its file), are compared and changed in parts of that
 * size. Both scanners use it, so their reports and differing extents agree.
 */
export const COMPARE_PART_BYTES = 4 * 1024 * 1024;

/**
 * The finest piece a resync that writes compares and writes: the 4 KiB pieces of a changed
 * block that already equal the target's are not written, so a sparse target keeps its holes
 * (and less goes to disk) whatever the block size. Blocks still count as changed whole.
 */
export const WRITE_PIECE_BYTES = 4096;

/**
 * The unit a compare of `blockSizeBytes` blocks works in, given the images' granules (see
 * DataLocator): write pieces when it writes the target.
 */
export function compareUnitBytes(blockSizeBytes: number, granules: Array<number | undefined>, writes: boolean): number {
  return Math.min(blockSizeBytes, writes ? WRITE_PIECE_BYTES : COMPARE_PART_BYTES, ...granules.filter((granule): granule is number => granule !== undefined));
}

function windowFromEnv(): number | undefined {
  const kib = Number(process.env.VHDSYNC_WINDOW_KIB);
  return Number.isInteger(kib) && kib >= 4 ? kib * 1024 : undefined;
}

/** Blocks per segment for a block size. */
export function segmentBlocks(blockSizeBytes: number, segmentBytes = SEGMENT_BYTES): number {
  checkBlockSize(blockSizeBytes);
  return Math.max(1, Math.min(MAX_FRAME_BLOCKS, Math.floor(segmentBytes / blockSizeBytes)));
}

/** Number of blocks covering `virtualSizeBytes`. */
export function blockCountFor(virtualSizeBytes: number, blockSizeBytes: number): number {
  return Math.ceil(virtualSizeBytes / blockSizeBytes);
}

/** Tasks covering blocks [firstBlock, blockCount) in segments of `blocksPerSegment`. */
export function* segmentTasks(blockCount: number, blocksPerSegment: number, firstBlock = 0): Generator<SegmentTask> {
  let id = 0;
  for (let block = firstBlock; block < blockCount; block += blocksPerSegment) {
    yield { id: id++, firstBlock: block, blockCount: Math.min(blocksPerSegment, blockCount - block) };
  }
}
