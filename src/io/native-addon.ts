// Finds and loads the optional native addon (native/vhdsync-native.<platform>.node, built by
// `npm run build:native`) and reports why it is or is not in use. VHDSYNC_NO_NATIVE=1 forces
// the portable fallbacks; VHDSYNC_NATIVE_PATH points at a specific .node file.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ERROR_CODES, VhdsyncError, toVhdsyncError, type ErrorCode, type ErrorDetails } from "../errors.js";

/** Size and sector sizes of a block device. */
export interface BlockDeviceInfo {
  sizeBytes: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
}

/** posix_fadvise advice names. */
export type FadviseAdvice = "normal" | "random" | "sequential" | "willneed" | "dontneed" | "noreuse";

/**
 * The functions the .node file exports (native/src/lib.rs). Sync forms throw, async forms
 * reject, with an Error whose `code` is VHDSYNC_INVALID_ARGUMENT, VHDSYNC_INTERNAL or an errno
 * name (plus `errno` and `syscall`). Offsets and lengths are bytes; fds must stay open until
 * an async call settles.
 */
export interface NativeAddon {
  version: string;
  /** The data extents of [offsetBytes, +lengthBytes) as (offset, length) pairs, sorted and coalesced. */
  extents(fd: number, offsetBytes: number, lengthBytes: number): Float64Array;
  extentsAsync(fd: number, offsetBytes: number, lengthBytes: number): Promise<Float64Array>;
  /** The first offset at or after `offsetBytes` holding data (SEEK_DATA), or -1 when none does. */
  nextData(fd: number, offsetBytes: number): number;
  /** How extents() maps this file: FIEMAP (ext4 and XFS, unless VHDSYNC_EXTENTS=lseek) or SEEK_DATA/SEEK_HOLE. */
  extentsMethod(fd: number): "fiemap" | "lseek";
  punchHole(fd: number, offsetBytes: number, lengthBytes: number): void;
  punchHoleAsync(fd: number, offsetBytes: number, lengthBytes: number): Promise<void>;
  zeroRange(fd: number, offsetBytes: number, lengthBytes: number): void;
  zeroRangeAsync(fd: number, offsetBytes: number, lengthBytes: number): Promise<void>;
  reflink(srcFd: number, dstFd: number): void;
  reflinkAsync(srcFd: number, dstFd: number): Promise<void>;
  copyRange(srcFd: number, srcOffsetBytes: number, dstFd: number, dstOffsetBytes: number, lengthBytes: number): number;
  copyRangeAsync(srcFd: number, srcOffsetBytes: number, dstFd: number, dstOffsetBytes: number, lengthBytes: number): Promise<number>;
  blockDeviceInfo(fd: number): BlockDeviceInfo;
  blockDeviceInfoAsync(fd: number): Promise<BlockDeviceInfo>;
  fdatasync(fd: number): void;
  fdatasyncAsync(fd: number): Promise<void>;
  /**
   * A Unix socket bound to `name` (its bytes) in Linux's abstract namespace: the descriptor,
   * closed (fs.closeSync) to free the name. Throws EADDRINUSE while another holds it. (Optional:
   * an older addon lacks it.)
   */
  bindAbstractSocket?(name: ArrayBuffer): number;
  fadvise(fd: number, offsetBytes: number, lengthBytes: number, advice: FadviseAdvice): void;
  fadviseAsync(fd: number, offsetBytes: number, lengthBytes: number, advice: FadviseAdvice): Promise<void>;
  /**
   * Direct compare of one segment [startBytes, +lengthBytes) of two images, block by block
   * (in `unitSizeBytes` parts): the `rangeCount` (start, end, sourceAt, targetAt) quadruples
   * of `ranges` (f64; in order, unit-aligned; what either side has allocated, and the file
   * offset of `start` in each file, -1 where that side reads as zeros) are read (pread, in
   * 256 KiB windows; with `mode` bit 4 mapped read-only instead) and compared; the rest counts
   * as zeros on both sides. With `mode` bit 1 the differing non-zero data is written to
   * `targetFd` (at the ranges' target offsets); with bit 2 the target reads as zeros (a new
   * one: not read) and the source's non-zero data is compared against zeros. The changed ranges
   * land in `changes` as f64 triples (offset, length, 1 when the source reads as zeros),
   * adjacent ones of the same kind merged; `changes` needs 24 bytes per unit of the ranges
   * and is lent until the call settles. With `targetMemory` the target's bytes come from it
   * (the ranges' target offsets are offsets into it; `targetFd` is not used; no writes):
   * targets read through their format, as differencing disks are. With `sourceMemory` the
   * source's bytes come from it likewise (`sourceFd` is not used; writes take their data from
   * it). `sourceGather` and `targetGather` (f64: the number of files, their descriptors, then
   * (offset, length, file index or -1 for zeros, file offset) quadruples in order) say that
   * side's bytes lie in pieces of several files, which the job gathers (the ranges' offsets on
   * that side are their own virtual offsets; no writes to a gathered target).
   * native/src/scan.rs, native/src/gather.rs.
   */
  compareSegment(sourceFd: number, targetFd: number, blockSizeBytes: number, unitSizeBytes: number, startBytes: number, lengthBytes: number, ranges: ArrayBuffer, rangeCount: number, mode: number, changes: ArrayBuffer, gate?: number | null, targetMemory?: ArrayBuffer | null, sourceMemory?: ArrayBuffer | null, sourceGather?: ArrayBuffer | null, targetGather?: ArrayBuffer | null): CompareSegmentCounts;
  compareSegmentAsync(sourceFd: number, targetFd: number, blockSizeBytes: number, unitSizeBytes: number, startBytes: number, lengthBytes: number, ranges: ArrayBuffer, rangeCount: number, mode: number, changes: ArrayBuffer, gate?: number | null, targetMemory?: ArrayBuffer | null, sourceMemory?: ArrayBuffer | null, sourceGather?: ArrayBuffer | null, targetGather?: ArrayBuffer | null): Promise<CompareSegmentCounts>;
  /**
   * The digest frame of one segment, [startBytes, +lengthBytes) of the virtual disk, in
   * `blockSizeBytes` blocks (algorithm 2 = XXH3-128, 3 = XXH3-64; the last block longer than 240
   * bytes): the block ranges in `ranges` (as for compareSegment; their source offsets, and
   * target offsets when writing) are read (or mapped, as there), zero-checked and hashed; the other blocks
   * are unallocated. Writes a state per block into `flags` (0 unallocated, 1 zero, 2 data) and
   * the data blocks' digests, packed, into `digests`. With the target's frame (`targetFlags`,
   * `targetDigests`; both or neither) it also finds the blocks that differ, as changed ranges in
   * `changes` (24 bytes per block; as compareSegment's), and with `mode` bit 1 writes their data
   * to `targetFd`. With `sourceMemory` the source's bytes come from it (the ranges' source
   * offsets are offsets into it; `sourceFd` is not used); with `sourceGather` (as
   * compareSegment's) it is gathered from pieces of several files. Every buffer is lent until
   * the call settles. native/src/hash_scan.rs.
   * Both segment jobs take an optional job gate (gateOpen) that they wait at before running.
   */
  hashSegment(sourceFd: number, targetFd: number, algorithm: number, blockSizeBytes: number, startBytes: number, lengthBytes: number, ranges: ArrayBuffer, rangeCount: number, mode: number, flags: ArrayBuffer, digests: ArrayBuffer, changes: ArrayBuffer, targetFlags?: ArrayBuffer | null, targetDigests?: ArrayBuffer | null, gate?: number | null, sourceMemory?: ArrayBuffer | null, sourceGather?: ArrayBuffer | null): HashSegmentCounts;
  hashSegmentAsync(sourceFd: number, targetFd: number, algorithm: number, blockSizeBytes: number, startBytes: number, lengthBytes: number, ranges: ArrayBuffer, rangeCount: number, mode: number, flags: ArrayBuffer, digests: ArrayBuffer, changes: ArrayBuffer, targetFlags?: ArrayBuffer | null, targetDigests?: ArrayBuffer | null, gate?: number | null, sourceMemory?: ArrayBuffer | null, sourceGather?: ArrayBuffer | null): Promise<HashSegmentCounts>;
  /**
   * Opens a job gate: at most `capacity` (1 to 1024) segment jobs given its id run at once;
   * the others wait on their pool threads and start as soon as one finishes. Returns the id.
   * native/src/gate.rs.
   */
  gateOpen(capacity: number): number;
  /** Forgets a job gate (jobs already given it finish as usual). */
  gateClose(gate: number): void;
  /** Page size of the system (alignment of mapFile/unmapFile). */
  pageSize: number;
  /**
   * Maps `lengthBytes` of `fd` from `fileOffset` over `memory` at `memoryOffset` (private,
   * readable and writable; whole pages inside the file; page-aligned). Sync only.
   */
  mapFile(memory: ArrayBuffer, memoryOffset: number, fd: number, fileOffset: number, lengthBytes: number): void;
  /** Puts anonymous zero pages back over [memoryOffset, +lengthBytes) of `memory`. Sync only. */
  unmapFile(memory: ArrayBuffer, memoryOffset: number, lengthBytes: number): void;
  /**
   * The digest of each `blockSizeBytes` block of [dataOffset, +lengthBytes) of `memory`
   * (algorithm 1 = XXH64, 2 = XXH3-128, 3 = XXH3-64, 4 = SHA-256, as hashSegmentAsync's; with
   * XXH3 every block, the last included, longer than 240 bytes): one zero flag
   * per block at zeroFlagsOffset, the canonical digest of each non-zero block in its slot at
   * digestsOffset (zero blocks' slots untouched), as the WASM hash_blocks_nonzero. Returns the
   * number of non-zero blocks. Sync only.
   */
  hashBlocksNonZero(memory: ArrayBuffer, algorithm: number, dataOffset: number, lengthBytes: number, blockSizeBytes: number, digestsOffset: number, zeroFlagsOffset: number): number;
  /** The data states (2) among [offset, +length) of `buffer`, a digest frame's block states; -1 when one is not 0, 1 or 2. */
  countDataStates(buffer: ArrayBuffer, offset: number, length: number): number;
  /**
   * Whole-input XXH3 (seed 0) of an input of known length (> 240 bytes), fed in pieces: the
   * state lives in `state` (an ArrayBuffer of xxh3StreamStateBytes, not the memory); every
   * piece but the last is a multiple of 64 bytes; the digest lands at xxh3StreamDigestOffset.
   */
  xxh3StreamReset(state: ArrayBuffer, totalLength: number): void;
  xxh3StreamUpdate(memory: ArrayBuffer, dataOffset: number, lengthBytes: number, state: ArrayBuffer): void;
  xxh3StreamDigest(state: ArrayBuffer, algorithm: number): void;
  xxh3StreamStateBytes: number;
  xxh3StreamDigestOffset: number;
  /**
   * SHA-256 of an input fed in pieces of any length: the state lives in `state` (an
   * ArrayBuffer of sha256StreamStateBytes, not the memory); sha256StreamDigest writes the
   * digest of what was fed so far at sha256StreamDigestOffset and leaves the stream as it was.
   * Absent from addons built before the twentieth session.
   */
  sha256StreamReset?(state: ArrayBuffer): void;
  sha256StreamUpdate?(memory: ArrayBuffer, dataOffset: number, lengthBytes: number, state: ArrayBuffer): void;
  sha256StreamDigest?(state: ArrayBuffer): void;
  sha256StreamStateBytes?: number;
  sha256StreamDigestOffset?: number;
  /**
   * Background appender (native/src/appender.rs): a thread writing lent memory to `fd` at given
   * positions, at most `limit` jobs unfinished, under SCHED_IDLE when `idle` is 1. Returns its id.
   */
  appenderOpen(fd: number, limit: number, idle: number): number;
  /**
   * Queues the write of [offset, +lengthBytes) of `memory` at `position` without copying it:
   * returns the job's token (≥ 1), or 0 when `limit` jobs are unfinished. `memory` must be a
   * WebAssembly.Memory's buffer that never grows, left unchanged until the job is finished.
   * Throws an earlier write's error.
   */
  appenderSubmit(appender: number, memory: ArrayBuffer, offset: number, lengthBytes: number, position: number): number;
  /** 1 when job `token` is finished (written, or dropped after a failure), else 0. Never blocks. */
  appenderFinished(appender: number, token: number): number;
  /**
   * Settles once job `token` is finished: written by the pool thread if still queued. Rejects
   * with the first write error. Async only, like drain and close: they may wait for the idle
   * thread, which the main thread must not.
   */
  appenderWaitAsync(appender: number, token: number): Promise<void>;
  /** Writes the queued jobs on a pool thread, waits for the running one; rejects with the first write error. */
  appenderDrainAsync(appender: number): Promise<void>;
  /** Drains, stops the thread and forgets the appender (also when the drain fails, which it then reports). */
  appenderCloseAsync(appender: number): Promise<AppenderStats>;
  /** The XXH3 kernel hashBlocksNonZero runs on this CPU: "avx512", "avx2" or "portable" (VHDSYNC_NATIVE_HASH_KERNEL=avx2|portable narrows it). */
  hashKernel: string;
  /**
   * The digests hashSegmentAsync takes, by name, comma-separated ("xxh64,xxh3-128,xxh3-64,sha256");
   * absent from addons built before XXH64 and SHA-256 joined (XXH3 only).
   */
  hashScanAlgorithms?: string;
  /** SHA-256's engine in the hash scan: "sha-ni" (the CPU's SHA extensions) or "portable". */
  shaEngine?: string;
  /** Test hook: panics inside the addon; must throw VHDSYNC_INTERNAL, never crash. */
  panicForTest(): void;
  panicForTestAsync(): Promise<void>;
}

/** What compareSegment found. */
export interface CompareSegmentCounts {
  /** Blocks that start in one of the ranges. */
  blocksCompared: number;
  /** Blocks with a differing part. */
  blocksChanged: number;
  /** Blocks with a non-zero part in the source (the others read as zeros). */
  blocksNonZero: number;
  /** Bytes of data written to the target (0 unless `write`). */
  bytesWritten: number;
  /** Triples in `changes`. */
  changes: number;
}

/** What hashSegment found. */
export interface HashSegmentCounts {
  /** Blocks with data (their digests are packed in `digests`, in block order). */
  dataBlocks: number;
  /** Blocks outside the ranges. */
  unallocatedBlocks: number;
  /** With the target's frame: blocks whose state or digest differs. */
  changedBlocks: number;
  /** Bytes of data written to the target (0 unless `write`). */
  bytesWritten: number;
  /** Triples in `changes`. */
  changes: number;
}

/** Counters of a closed background appender. */
export interface AppenderStats {
  /** Jobs accepted by appenderSubmit. */
  queued: number;
  /** Of those, written by the background thread / by a wait or drain. */
  byThread: number;
  byDrain: number;
  /** Submits refused because `limit` jobs were unfinished. */
  refused: number;
  /** 1 when the thread ran under SCHED_IDLE. */
  idle: number;
}

/** Whether the addon is in use, and why (part of `vhdsync doctor` / `--version --json`). */
export interface AddonLoadState {
  loaded: boolean;
  /** Human-readable: where it was loaded from, or why it was not. */
  reason: string;
  /** The .node file, when one was found. */
  path?: string;
  /** The crate version, when loaded. */
  version?: string;
}

const NATIVE_DIR = fileURLToPath(new URL("../../native/", import.meta.url));

let cached: { addon: NativeAddon | null; state: AddonLoadState } | undefined;

/** napi's platform suffixes for this process, preferred first, e.g. ["linux-x64-gnu", "linux-x64-musl"]. */
export function platformTriples(): string[] {
  const base = `${process.platform}-${process.arch}`;
  return process.platform === "linux" ? [`${base}-gnu`, `${base}-musl`] : [base];
}

function findAddonFile(): string | undefined {
  for (const triple of platformTriples()) {
    const path = join(NATIVE_DIR, `vhdsync-native.${triple}.node`);
    if (existsSync(path)) return path;
  }
  return undefined;
}

function load(): { addon: NativeAddon | null; state: AddonLoadState } {
  if (process.env.VHDSYNC_NO_NATIVE === "1") {
    return { addon: null, state: { loaded: false, reason: "disabled by VHDSYNC_NO_NATIVE=1" } };
  }
  if (process.platform !== "linux") {
    return { addon: null, state: { loaded: false, reason: `the native addon supports Linux only (this is ${process.platform})` } };
  }
  const path = process.env.VHDSYNC_NATIVE_PATH || findAddonFile();
  if (!path) {
    return {
      addon: null,
      state: { loaded: false, reason: `no native/vhdsync-native.${platformTriples()[0]}.node (run npm run build:native; needs cargo)` },
    };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    return { addon, state: { loaded: true, reason: `loaded from ${path}`, path, version: addon.version } };
  } catch (error) {
    return { addon: null, state: { loaded: false, reason: `failed to load ${path}: ${(error as Error).message}`, path } };
  }
}

/** The addon's digest ids (native/src/block_digest.rs; the xxHash ones as `xxhsum -H<n>`). */
const DIGEST_IDS: Record<string, number> = { xxh64: 1, "xxh3-128": 2, "xxh3-64": 3, sha256: 4 };

/**
 * The id `addon` takes for the digest `algorithm` (a digest file's algorithm name) in
 * hashSegmentAsync and hashBlocksNonZero, or undefined when it does not compute it.
 */
export function nativeDigestId(addon: NativeAddon, algorithm: string): number | undefined {
  // An addon built before XXH64 and SHA-256 joined says nothing: XXH3 only.
  const names = addon.hashScanAlgorithms?.split(",") ?? ["xxh3-128", "xxh3-64"];
  return names.includes(algorithm) ? DIGEST_IDS[algorithm] : undefined;
}

/**
 * The shortest block (the last one of an image included) the addon digests with `algorithm`:
 * XXH3 has only its long-input path natively; the others take any length.
 */
export function hashScanShortestBlock(algorithm: string): number {
  return algorithm.startsWith("xxh3-") ? 241 : 1;
}

/** The loaded addon, or null when the portable fallbacks are in use. Loads once per process. */
export function nativeAddon(): NativeAddon | null {
  cached ??= load();
  return cached.addon;
}

/** Whether the addon is loaded and why. */
export function addonLoadState(): AddonLoadState {
  cached ??= load();
  return { ...cached.state };
}

/**
 * Converts an error thrown by the addon into a VhdsyncError: its own codes
 * (VHDSYNC_INVALID_ARGUMENT, VHDSYNC_INTERNAL) pass through, errno names map with
 * `toVhdsyncError` (ENOSPC → VHDSYNC_NO_SPACE recoverable, ENOTTY → VHDSYNC_UNSUPPORTED, ...).
 * details keep `errno` (the name) and `syscall`.
 */
export function fromNativeError(error: unknown, context: ErrorDetails = {}): VhdsyncError {
  const native = error as { code?: unknown; syscall?: unknown; message?: unknown };
  const details: ErrorDetails = { ...context };
  if (typeof native?.syscall === "string") details.syscall = native.syscall;
  if (typeof native?.code === "string" && native.code in ERROR_CODES) {
    return new VhdsyncError(native.code as ErrorCode, String(native.message), details, { cause: error });
  }
  return toVhdsyncError(error, details);
}

/** Runs a synchronous addon call, turning its errors into VhdsyncErrors (fromNativeError). */
export function callNative<T>(body: () => T, context: ErrorDetails = {}): T {
  try {
    return body();
  } catch (error) {
    throw fromNativeError(error, context);
  }
}

/** The errno name of a native error ("EOPNOTSUPP"), or undefined. */
export function errnoName(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** errno names meaning "this filesystem/file cannot do that": callers take the fallback path. */
const UNSUPPORTED_ERRNOS = new Set(["EOPNOTSUPP", "ENOTSUP", "ENOSYS", "ENOTTY", "EXDEV", "EINVAL"]);

/** True when a native error means the operation is unsupported here (not a real failure). */
export function isUnsupportedError(error: unknown): boolean {
  return UNSUPPORTED_ERRNOS.has(errnoName(error) ?? "");
}

const MAX_FD = 2 ** 31 - 1;

/**
 * Validates a byte count/offset (a safe non-negative integer ≤ max) the way the addon does,
 * so both paths reject the same input.
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkNativeArgument(value: number, name: string, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${name} must be an integer between 0 and ${max}, got ${value}`, { [name]: value });
  }
}

/**
 * Validates an fd and a byte range whose end stays a safe integer.
 * @throws VHDSYNC_INVALID_ARGUMENT
 */
export function checkFdRange(fd: number, offsetBytes: number, lengthBytes: number): void {
  checkNativeArgument(fd, "fd", MAX_FD);
  checkNativeArgument(offsetBytes, "offsetBytes");
  checkNativeArgument(lengthBytes, "lengthBytes");
  checkNativeArgument(offsetBytes + lengthBytes, "offsetBytes + lengthBytes");
}
