// The native addon's segment scans, on a thread of the libuv pool, of images whose data lies
// in plain runs of their files (raw files, block devices, fixed and dynamic VHDs, clean VHDX
// files), read window by window with pread (or, with VHDSYNC_SCAN_MMAP=1, mapped read-only
// from the page cache; docs/native.md "Reading the files"): compareSegment (native/src/scan.rs)
// compares two images block by block and writes the differing data to the target;
// hashSegment (native/src/hash_scan.rs) builds one segment's digest frame, and against the
// target's frame finds (and writes) the blocks that differ.
// Unavailable without the addon or with VHDSYNC_NO_NATIVE_SCAN=1 (hashSegment also with
// VHDSYNC_NO_NATIVE_HASH=1); callers then scan with WASM on worker threads
// (src/sync/segment-scanner.ts).

import { VhdsyncError } from "../errors.js";
import { errnoName, fromNativeError, nativeAddon, nativeDigestId, type CompareSegmentCounts, type HashSegmentCounts, type NativeAddon } from "./native-addon.js";

/** A piece of the virtual disk in one of several files (fileOffset null: it reads as zeros; fd then unused). */
export interface GatherPiece {
  offset: number;
  length: number;
  fd: number;
  fileOffset: number | null;
}

/** The job mode's bit that maps the files' pages instead of reading them (VHDSYNC_SCAN_MMAP=1). */
function readModeBits(): number {
  return process.env.VHDSYNC_SCAN_MMAP === "1" ? 4 : 0;
}

/**
 * A range to compare: [start, end) of the virtual disk, and the file offsets of `start` in the
 * source and the target (omitted: `start`, as in flat images; null: that side reads as zeros).
 */
export type CompareRange = [start: number, end: number, sourceAt?: number | null, targetAt?: number | null];

/**
 * Ranges as the addon takes them: (start, end, sourceAt, targetAt) f64 quadruples, -1 where a
 * side reads as zeros. The scanners build these directly (a fragmented sparse file has a
 * range per 4 KiB block: no array per range).
 */
export type PackedRanges = Float64Array;

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
  ranges: CompareRange[] | PackedRanges;
  /** Write the differing non-zero data to the target (every range needs a target offset). */
  write: boolean;
  /** The target reads as zeros (freshly created, for copy): compare against zeros without reading it; write as `write` says. */
  targetZeros?: boolean;
  /** A job gate (openJobGate) the job waits at before it runs. */
  gate?: number;
  /**
   * The target's bytes, read by the caller (through its format): the ranges' target offsets
   * are offsets into this buffer's ArrayBuffer, `targetFd` is not used, and `write` must be
   * false. Lent until the compare settles.
   */
  targetMemory?: Uint8Array;
  /**
   * The source's bytes, read by the caller (through its format), as `targetMemory`: the
   * ranges' source offsets are offsets into this buffer's ArrayBuffer and `sourceFd` is not
   * used. Writes take their data from it. Lent until the compare settles.
   */
  sourceMemory?: Uint8Array;
  /**
   * The source's bytes in pieces of several files (a differencing disk over its parents), in
   * order, covering every range whose source side has a place; those places must be the
   * ranges' own virtual offsets. `sourceFd` is then not used.
   */
  sourceGather?: GatherPiece[];
  /** The target's, likewise (no writes then). */
  targetGather?: GatherPiece[];
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
 * @throws VhdsyncError (I/O codes from pread/mmap/pwrite, VHDSYNC_INVALID_ARGUMENT)
 */
export async function compareSegment(request: CompareSegmentRequest): Promise<CompareSegmentOutcome> {
  const addon = compareAddon();
  if (!addon) throw new Error("compareSegment: the native addon is not available");
  const ranges = packRanges(request.ranges);
  let units = 0;
  for (let i = 0; i < ranges.length; i += 4) units += Math.ceil((ranges[i + 1] - ranges[i]) / request.unitBytes);
  const changes = new Float64Array(Math.max(3, units * 3));
  const targetMemory = (request.targetMemory?.buffer as ArrayBuffer | undefined) ?? null;
  const sourceMemory = (request.sourceMemory?.buffer as ArrayBuffer | undefined) ?? null;
  const counts = await settle(request, "compared", [changes, targetMemory, sourceMemory], () =>
    addon.compareSegmentAsync(
      request.sourceFd,
      request.targetFd,
      request.blockSizeBytes,
      request.unitBytes,
      request.startBytes,
      request.lengthBytes,
      wholeRanges(ranges),
      ranges.length / 4,
      // Bits: 1 write, 2 the target reads as zeros, 4 map the pages.
      (request.write ? 1 : 0) | (request.targetZeros && request.write ? 2 : 0) | readModeBits(),
      changes.buffer,
      request.gate ?? null,
      targetMemory,
      sourceMemory,
      packGather(request.sourceGather),
      packGather(request.targetGather),
    ),
  );
  return { ...counts, changesArray: changes.slice(0, counts.changes * 3) };
}

/**
 * Opens a job gate letting `capacity` segment jobs run at once (native/src/gate.rs): jobs given
 * it beyond that wait on their own pool threads and start the moment a running one finishes.
 * Undefined without the addon (or an addon without gates).
 */
export function openJobGate(capacity: number): number | undefined {
  const addon = compareAddon();
  return addon && typeof addon.gateOpen === "function" ? addon.gateOpen(capacity) : undefined;
}

/** Closes a job gate from openJobGate. */
export function closeJobGate(gate: number): void {
  nativeAddon()?.gateClose(gate);
}

/**
 * Pieces as the addon takes them (native/src/gather.rs): the number of files, their
 * descriptors, then (offset, length, file index or -1 for zeros, file offset) quadruples.
 */
function packGather(pieces: GatherPiece[] | undefined): ArrayBuffer | null {
  if (!pieces) return null;
  const files = new Map<number, number>();
  for (const piece of pieces) if (piece.fileOffset !== null && !files.has(piece.fd)) files.set(piece.fd, files.size);
  const values = new Float64Array(1 + files.size + pieces.length * 4);
  values[0] = files.size;
  values.set([...files.keys()], 1);
  let at = 1 + files.size;
  for (const { offset, length, fd, fileOffset } of pieces) {
    values[at++] = offset;
    values[at++] = length;
    values[at++] = fileOffset === null ? -1 : files.get(fd)!;
    values[at++] = fileOffset ?? 0;
  }
  return values.buffer;
}

/** The ranges packed (as they are, when they already are), written value by value. */
function packRanges(list: CompareRange[] | PackedRanges): PackedRanges {
  if (list instanceof Float64Array) return list;
  const ranges = new Float64Array(list.length * 4);
  let at = 0;
  for (const [start, end, sourceAt = start, targetAt = start] of list) {
    ranges[at++] = start;
    ranges[at++] = end;
    ranges[at++] = sourceAt ?? -1;
    ranges[at++] = targetAt ?? -1;
  }
  return ranges;
}

/** The ranges' own ArrayBuffer (the addon takes whole ones; never empty). */
function wholeRanges(ranges: PackedRanges): ArrayBuffer {
  if (ranges.length === 0) return new ArrayBuffer(32);
  return (ranges.byteOffset === 0 && ranges.byteLength === ranges.buffer.byteLength ? ranges.buffer : ranges.slice().buffer) as ArrayBuffer;
}

/**
 * Memory lent to segment jobs in flight. A job reads and writes its ArrayBuffers by address on
 * a pool thread and the addon holds no reference to them, so they must stay reachable from
 * here until it settles: a copy of a target frame that nothing referenced after the call was
 * collected meanwhile, its memory reused, and blocks equal to the target's read as changed (an
 * intermittent failure of the in-memory source path under load).
 */
const lentToJobs = new Set<readonly unknown[]>();

/** Awaits a segment job holding `lent` (every buffer passed to it), turning the addon's errors into VhdsyncErrors. */
async function settle<T>(request: { startBytes: number; lengthBytes: number }, doing: string, lent: readonly unknown[], job: () => Promise<T>): Promise<T> {
  lentToJobs.add(lent);
  try {
    return await job();
  } catch (error) {
    const details = { offset: request.startBytes, length: request.lengthBytes };
    // The addon refuses to map past the end of a file (it would fault): an image that shrank.
    if (errnoName(error) === "ENXIO") throw new VhdsyncError("VHDSYNC_TRUNCATED", `an image is shorter than the range ${request.startBytes}+${request.lengthBytes} being ${doing}`, details, { cause: error });
    throw fromNativeError(error, details);
  } finally {
    lentToJobs.delete(lent);
  }
}

/** The addon when it can hash segments, else null. */
function hashAddon(): NativeAddon | null {
  if (process.env.VHDSYNC_NO_NATIVE_HASH === "1") return null;
  const addon = compareAddon();
  return addon && typeof addon.hashSegmentAsync === "function" ? addon : null;
}

/**
 * The id hashSegment() takes for the digest `algorithm` (a digest file's algorithm name) when
 * the addon's hash scan computes it, else undefined (then the WASM scanners do).
 */
export function hashScanAlgorithmId(algorithm: string): number | undefined {
  const addon = hashAddon();
  return addon ? nativeDigestId(addon, algorithm) : undefined;
}

/** Whether hashSegment() is available. */
export function nativeHashScanAvailable(): boolean {
  return hashAddon() !== null;
}

/** One segment's digest frame (and, with the target's frame, its changes). */
export interface HashSegmentRequest {
  sourceFd: number;
  /** Written to only when `write` (use any descriptor otherwise). */
  targetFd: number;
  /** 1 = XXH64, 2 = XXH3-128, 3 = XXH3-64, 4 = SHA-256 (hashScanAlgorithmId). */
  algorithmId: number;
  digestLength: number;
  blockSizeBytes: number;
  startBytes: number;
  lengthBytes: number;
  /** Block ranges with data (in order, block-aligned from startBytes); the other blocks are unallocated. */
  ranges: CompareRange[] | PackedRanges;
  /** The target's frame for these blocks: a state per block and its data blocks' packed digests. */
  target?: { flags: Uint8Array; digests: Uint8Array };
  /** Write the data of differing blocks to the target (needs `target`, and target offsets in the ranges). */
  write: boolean;
  /** A job gate (openJobGate) the job waits at before it runs. */
  gate?: number;
  /**
   * The source's bytes, read by the caller (through its format): the ranges' source offsets
   * are offsets into this buffer's ArrayBuffer and `sourceFd` is not used. Lent until the job settles.
   */
  sourceMemory?: Uint8Array;
  /** The source's bytes in pieces of several files (as CompareSegmentRequest's). */
  sourceGather?: GatherPiece[];
}

/** The segment's frame, counts and changed ranges. */
export interface HashSegmentOutcome extends HashSegmentCounts {
  flags: Uint8Array;
  /** Packed digests of the data blocks. */
  digests: Uint8Array;
  changesArray: Float64Array;
}

/**
 * Builds one segment's digest frame on a libuv pool thread. The descriptors must stay open until it settles.
 * @throws VhdsyncError (I/O codes from pread/mmap/pwrite, VHDSYNC_INVALID_ARGUMENT)
 */
export async function hashSegment(request: HashSegmentRequest): Promise<HashSegmentOutcome> {
  const addon = hashAddon();
  if (!addon) throw new Error("hashSegment: the native addon is not available");
  const blocks = Math.ceil(request.lengthBytes / request.blockSizeBytes);
  const target = request.target;
  // Output room, as the addon counts it: a digest per block that has a place in the source
  // (the others read as zeros), a change per block that can differ (an allocated one, or a
  // data block of the target's frame). A sparse segment needs little of either.
  const ranges = packRanges(request.ranges);
  let sourced = 0;
  let active = 0;
  for (let i = 0; i < ranges.length; i += 4) {
    const count = Math.ceil((ranges[i + 1] - ranges[i]) / request.blockSizeBytes);
    active += count;
    if (ranges[i + 2] !== -1) sourced += count;
  }
  const targetData = target ? Math.floor(target.digests.length / request.digestLength) : 0;
  const flags = new Uint8Array(blocks);
  const digests = new Uint8Array(Math.max(1, sourced) * request.digestLength);
  const changes = new Float64Array(target ? Math.max(1, Math.min(blocks, active + targetData)) * 3 : 1);
  // The addon takes whole ArrayBuffers: copy views that are parts of larger ones (the copies
  // are lent to the job like the rest: see lentToJobs).
  const whole = (view: Uint8Array) => (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view.buffer : view.slice().buffer) as ArrayBuffer;
  const targetFlags = target ? whole(target.flags.subarray(0, blocks)) : null;
  const targetDigests = target ? whole(target.digests) : null;
  const sourceMemory = (request.sourceMemory?.buffer as ArrayBuffer | undefined) ?? null;
  const counts = await settle(request, "hashed", [flags, digests, changes, targetFlags, targetDigests, sourceMemory], () =>
    addon.hashSegmentAsync(
      request.sourceFd,
      request.targetFd,
      request.algorithmId,
      request.blockSizeBytes,
      request.startBytes,
      request.lengthBytes,
      wholeRanges(ranges),
      ranges.length / 4,
      // Bits: 1 write, 4 map the pages.
      (request.write ? 1 : 0) | readModeBits(),
      flags.buffer,
      digests.buffer,
      changes.buffer,
      targetFlags,
      targetDigests,
      request.gate ?? null,
      sourceMemory,
      packGather(request.sourceGather),
    ),
  );
  return { ...counts, flags, digests: digests.subarray(0, counts.dataBlocks * request.digestLength), changesArray: changes.slice(0, counts.changes * 3) };
}
