// Linux I/O that Node lacks (holes, hole punching, zero ranges, reflinks, in-kernel copies,
// block device geometry, read-ahead hints), served by the optional native addon (native/,
// loaded by native-addon.ts) with portable fallbacks. VHDSYNC_NO_NATIVE=1 forces the
// fallbacks. See docs/native.md.

import { fdatasync as fsFdatasync, readFileSync, statSync } from "node:fs";
import { promisify } from "node:util";
import type { Extent } from "../formats/disk-image.js";
import { extentsOfPairs, type ExtentPairs } from "./extent-pairs.js";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import {
  addonLoadState,
  checkFdRange,
  errnoName,
  fromNativeError,
  isUnsupportedError,
  nativeAddon,
  type AddonLoadState,
  type BlockDeviceInfo,
  type FadviseAdvice,
} from "./native-addon.js";

export type { BlockDeviceInfo, FadviseAdvice, NativeAddon } from "./native-addon.js";
export { isUnsupportedError, nativeAddon } from "./native-addon.js";
export { CLONE_MAP_WINDOW_BYTES, cloneFile, copyFileRange } from "./native-copy.js";
export type { CloneOptions, CloneResult, CopyMethod, CopyRangeResult } from "./native-copy.js";

/**
 * Allocated data ranges of the file in [offsetBytes, offsetBytes+lengthBytes), sorted and
 * coalesced (FIEMAP or SEEK_DATA/SEEK_HOLE, filesystem-block granularity), or null when unknown
 * (addon not loaded or filesystem cannot tell: callers treat the whole range as allocated).
 * Runs off the main thread. Moves nothing: the file position is restored.
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/range; OS codes (VHDSYNC_IO, ...) otherwise
 */
export async function fileExtents(fd: number, offsetBytes: number, lengthBytes: number): Promise<Extent[] | null> {
  const pairs = await fileExtentPairs(fd, offsetBytes, lengthBytes);
  return pairs && extentsOfPairs(pairs);
}

/** fileExtents() as (offset, length) pairs: no object per extent (see extent-pairs.ts). */
export async function fileExtentPairs(fd: number, offsetBytes: number, lengthBytes: number): Promise<ExtentPairs | null> {
  checkFdRange(fd, offsetBytes, lengthBytes);
  const addon = nativeAddon();
  if (!addon) return null;
  try {
    return await addon.extentsAsync(fd, offsetBytes, lengthBytes);
  } catch (error) {
    return extentsFailure(error, offsetBytes, lengthBytes);
  }
}

/**
 * fileExtentPairs() on the calling thread: for scan workers, which block on reads anyway and
 * should not wait for the libuv pool while every core is busy.
 */
export function fileExtentPairsSync(fd: number, offsetBytes: number, lengthBytes: number): ExtentPairs | null {
  checkFdRange(fd, offsetBytes, lengthBytes);
  const addon = nativeAddon();
  if (!addon) return null;
  try {
    return addon.extents(fd, offsetBytes, lengthBytes);
  } catch (error) {
    return extentsFailure(error, offsetBytes, lengthBytes);
  }
}

/**
 * The first offset at or after `offsetBytes` where the file holds data (SEEK_DATA, on the
 * calling thread: one system call), Infinity when none does, or null when unknown (addon not
 * loaded, or the filesystem cannot tell: callers take data to be everywhere). The same data as
 * fileExtentPairs() finds (its FIEMAP path asks SEEK_DATA inside unwritten extents).
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/offset; OS codes (VHDSYNC_IO, ...) otherwise
 */
export function fileNextDataSync(fd: number, offsetBytes: number): number | null {
  checkFdRange(fd, offsetBytes, 0);
  const addon = nativeAddon();
  if (!addon?.nextData) return null;
  try {
    const found = addon.nextData(fd, offsetBytes);
    return found < 0 ? Infinity : found;
  } catch (error) {
    return extentsFailure(error, offsetBytes, 0);
  }
}

/** fileExtentPairsSync() as extents. */
export function fileExtentsSync(fd: number, offsetBytes: number, lengthBytes: number): Extent[] | null {
  const pairs = fileExtentPairsSync(fd, offsetBytes, lengthBytes);
  return pairs && extentsOfPairs(pairs);
}

function extentsFailure(error: unknown, offsetBytes: number, lengthBytes: number): null {
  if (isUnsupportedError(error)) return null;
  throw fromNativeError(error, { offset: offsetBytes, length: lengthBytes });
}

async function fallocateOrFalse(
  call: ((fd: number, offsetBytes: number, lengthBytes: number) => Promise<void>) | undefined,
  fd: number,
  offsetBytes: number,
  lengthBytes: number,
): Promise<boolean> {
  checkFdRange(fd, offsetBytes, lengthBytes);
  if (!call) return false;
  try {
    await call(fd, offsetBytes, lengthBytes);
    return true;
  } catch (error) {
    // Unsupported here, or refused while another holder has the file or device (EBUSY, which
    // fallocate on a block device in use returns): the caller writes zeros instead.
    if (isUnsupportedError(error) || errnoName(error) === "EBUSY") return false;
    throw fromNativeError(error, { offset: offsetBytes, length: lengthBytes });
  }
}

/**
 * Deallocates a range of a regular file keeping its size (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE): it
 * reads back as zeros. Returns false when unsupported (no addon, the filesystem refuses, or
 * EBUSY):
 * the caller writes zeros instead.
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/range; VHDSYNC_NO_SPACE, VHDSYNC_IO, ...
 */
export async function punchHole(fd: number, offsetBytes: number, lengthBytes: number): Promise<boolean> {
  const addon = nativeAddon();
  return fallocateOrFalse(addon?.punchHoleAsync, fd, offsetBytes, lengthBytes);
}

/**
 * Zeroes a range of a block device in the device, without writing zeros through it:
 * fallocate on the device. PUNCH_HOLE asks for WRITE ZEROES that may unmap, so a thin volume
 * or an SSD can deallocate the range; ZERO_RANGE, next, lets the kernel zero it (writing
 * zero pages itself where the device has no such command). Both read back as zeros once they
 * return. Returns false when neither can be used here (no addon; a device that supports
 * neither; the range not aligned to its sectors; EBUSY, another holder has the device): the
 * caller writes zeros.
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/range; VHDSYNC_IO, ...
 */
export async function zeroDeviceRange(fd: number, offsetBytes: number, lengthBytes: number): Promise<boolean> {
  return (await punchHole(fd, offsetBytes, lengthBytes)) || (await zeroRange(fd, offsetBytes, lengthBytes));
}

/**
 * Zeroes a range with FALLOC_FL_ZERO_RANGE (blocks stay allocated; may extend the file).
 * Returns false when unsupported (the caller writes zeros).
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/range; VHDSYNC_NO_SPACE, VHDSYNC_IO, ...
 */
export async function zeroRange(fd: number, offsetBytes: number, lengthBytes: number): Promise<boolean> {
  const addon = nativeAddon();
  return fallocateOrFalse(addon?.zeroRangeAsync, fd, offsetBytes, lengthBytes);
}

/**
 * Makes `dstFd` a copy-on-write clone of all of `srcFd` (ioctl FICLONE). Returns false when
 * unsupported (no addon, different filesystems, or a filesystem without reflinks such as
 * ext4/tmpfs): the caller copies instead (see cloneFile).
 * @throws VHDSYNC_INVALID_ARGUMENT for bad fds; VHDSYNC_NO_SPACE, VHDSYNC_IO, ...
 */
export async function reflink(srcFd: number, dstFd: number): Promise<boolean> {
  const addon = nativeAddon();
  if (!addon) return false;
  try {
    await addon.reflinkAsync(srcFd, dstFd);
    return true;
  } catch (error) {
    if (isUnsupportedError(error)) return false;
    throw fromNativeError(error);
  }
}

/**
 * Flushes a file's data to stable storage (fdatasync, off the main thread).
 * @throws VHDSYNC_IO and other OS codes
 */
export async function fdatasync(fd: number): Promise<void> {
  const addon = nativeAddon();
  try {
    if (addon) await addon.fdatasyncAsync(fd);
    else await promisify(fsFdatasync)(fd);
  } catch (error) {
    throw addon ? fromNativeError(error) : toVhdsyncError(error);
  }
}

const ADVICE_NAMES: ReadonlySet<string> = new Set(["normal", "random", "sequential", "willneed", "dontneed", "noreuse"]);

/**
 * Read-ahead / cache hint for a range (posix_fadvise; lengthBytes 0 = to end of file).
 * Returns false when not applied: no addon, or the OS refused (hints never fail an operation).
 * @throws VHDSYNC_INVALID_ARGUMENT for a bad fd/range/advice (on both paths)
 */
export function fadvise(fd: number, offsetBytes: number, lengthBytes: number, advice: FadviseAdvice): boolean {
  checkFdRange(fd, offsetBytes, lengthBytes);
  if (!ADVICE_NAMES.has(advice)) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `advice must be one of ${[...ADVICE_NAMES].join(", ")}, got ${String(advice)}`, { advice });
  }
  const addon = nativeAddon();
  if (!addon) return false;
  try {
    addon.fadvise(fd, offsetBytes, lengthBytes, advice);
    return true;
  } catch {
    return false;
  }
}

/**
 * Geometry of the block device open as `fd` at `path`: ioctls (BLKGETSIZE64, BLKSSZGET,
 * BLKPBSZGET) through the addon, else sysfs (/sys/dev/block/MAJ:MIN/size and
 * queue/*_block_size). Null when neither can tell.
 */
export function blockDeviceInfo(fd: number, path: string): BlockDeviceInfo | null {
  const addon = nativeAddon();
  if (addon) {
    try {
      return addon.blockDeviceInfo(fd);
    } catch {
      // fall through to sysfs
    }
  }
  return sysfsBlockDeviceInfo(path);
}

/** Linux dev_t → major/minor (glibc's gnu_dev_major/gnu_dev_minor). */
export function deviceNumbers(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev % 2 ** 32;
  const major = ((low >>> 8) & 0xfff) | (high & 0xfffff000);
  const minor = (low & 0xff) | ((low >>> 12) & 0xfff00) | ((high & 0xfff) << 20);
  return { major: major >>> 0, minor: minor >>> 0 };
}

/** Block device geometry from sysfs, or null. */
export function sysfsBlockDeviceInfo(path: string): BlockDeviceInfo | null {
  try {
    const { major, minor } = deviceNumbers(statSync(path).rdev);
    const base = `/sys/dev/block/${major}:${minor}`;
    const sectors = Number(readFileSync(`${base}/size`, "utf8").trim());
    // Partitions have no queue/ of their own: use the parent disk's.
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

/** One optional capability and how it is served. */
export interface NativeFeature {
  name: string;
  /** True when the native path is in use. */
  active: boolean;
  /** What the addon uses. */
  native: string;
  /** What runs without it. */
  fallback: string;
}

const FEATURES: Array<Omit<NativeFeature, "active">> = [
  { name: "extents", native: "ioctl FIEMAP on ext4 and XFS (unwritten extents asked again with lseek; VHDSYNC_EXTENTS=lseek to turn it off), lseek SEEK_DATA/SEEK_HOLE elsewhere", fallback: "every range reported allocated" },
  { name: "punchHole", native: "fallocate PUNCH_HOLE|KEEP_SIZE", fallback: "zeros written" },
  { name: "zeroRange", native: "fallocate ZERO_RANGE", fallback: "zeros written" },
  { name: "reflink", native: "ioctl FICLONE", fallback: "plain copy" },
  { name: "copyRange", native: "copy_file_range", fallback: "read/write copy" },
  { name: "blockDeviceInfo", native: "ioctl BLKGETSIZE64/BLKSSZGET/BLKPBSZGET", fallback: "sysfs /sys/dev/block" },
  { name: "fdatasync", native: "fdatasync off the main thread", fallback: "Node fs.fdatasync" },
  { name: "fadvise", native: "posix_fadvise", fallback: "no cache hints" },
  { name: "mapFile", native: "mmap of file pages into WASM memory (zero-copy reads; only with VHDSYNC_SCAN_MMAP=1: positional reads measured faster on Linux 6.18)", fallback: "positional reads into WASM memory" },
  { name: "hashBlocks", native: "XXH3 digest-frame hashing in Rust, AVX-512 or AVX2 where the CPU has it (off with VHDSYNC_NO_NATIVE_HASH=1)", fallback: "WASM SIMD128 kernels" },
  { name: "hashStream", native: "whole-file XXH3 (seed 0) of `vhdsync hash` in Rust, AVX-512 or AVX2 where the CPU has it (off with VHDSYNC_NO_NATIVE_HASH=1)", fallback: "WASM streaming XXH3" },
  { name: "compareScan", native: "resync/verify/diff of raw, block device, fixed and dynamic VHD and clean VHDX images (resync into raw, fixed or dynamic VHD targets, and into differencing VHD targets read through their format into memory), and copy of them into a new raw target, compared in Rust on the libuv pool, read in 256 KiB windows (pages mapped instead with VHDSYNC_SCAN_MMAP=1; off with VHDSYNC_NO_NATIVE_SCAN=1)", fallback: "WASM scanners on worker threads" },
  { name: "hashScan", native: "checksum and resync --target-digest of raw, block device, fixed and dynamic VHD and clean VHDX images hashed in Rust on the libuv pool (XXH3 with AVX-512 or AVX2, XXH64, SHA-256 with the CPU's SHA extensions where it has them), read in 256 KiB windows (pages mapped instead with VHDSYNC_SCAN_MMAP=1; off with VHDSYNC_NO_NATIVE_HASH=1 or VHDSYNC_NO_NATIVE_SCAN=1)", fallback: "WASM scanners on worker threads" },
  { name: "logAppender", native: "HRL log batches written by an idle-priority (SCHED_IDLE) thread (off with VHDSYNC_NO_NATIVE_LOG=1)", fallback: "written on the libuv pool" },
];

/** Native status for `vhdsync doctor` and `vhdsync --version --json`. */
export interface NativeStatus extends AddonLoadState {
  features: NativeFeature[];
  /**
   * Threads of libuv's pool, where the native scanners' jobs run (UV_THREADPOOL_SIZE, which
   * the vhdsync bin sets when it is unset: twice the default scanning threads, at least 4).
   */
  threadPool: number;
  /**
   * The kernels the addon hashes with on this CPU, when it is loaded: XXH3's ("avx512", "avx2"
   * or "portable") and SHA-256's ("sha-ni" or "portable"; absent from older addons).
   * VHDSYNC_NATIVE_HASH_KERNEL=avx2|portable narrows them.
   */
  hashKernels?: { xxh3: string; sha256?: string };
}

/** libuv's pool size as it reads UV_THREADPOOL_SIZE when the pool starts (default 4, at most 1024). */
function threadPoolSize(): number {
  const size = Number.parseInt(process.env.UV_THREADPOOL_SIZE ?? "", 10);
  return Number.isInteger(size) && size > 0 ? Math.min(1024, size) : 4;
}

/** Whether the addon is loaded, why, and which features it serves. */
export function nativeStatus(): NativeStatus {
  const state = addonLoadState();
  const env = process.env;
  const off = new Set([
    env.VHDSYNC_SCAN_MMAP !== "1" || env.VHDSYNC_NO_MMAP === "1" ? "mapFile" : "",
    ...(env.VHDSYNC_NO_NATIVE_HASH === "1" ? ["hashBlocks", "hashStream", "hashScan"] : []),
    env.VHDSYNC_NO_NATIVE_LOG === "1" ? "logAppender" : "",
    ...(env.VHDSYNC_NO_NATIVE_SCAN === "1" ? ["compareScan", "hashScan"] : []),
  ]);
  const addon = state.loaded ? nativeAddon() : null;
  const hashKernels = addon ? { xxh3: addon.hashKernel, ...(addon.shaEngine ? { sha256: addon.shaEngine } : {}) } : undefined;
  return { ...state, features: FEATURES.map((feature) => ({ ...feature, active: state.loaded && !off.has(feature.name) })), threadPool: threadPoolSize(), ...(hashKernels ? { hashKernels } : {}) };
}
