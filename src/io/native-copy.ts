// File copies that take the fastest path available and say which one they took: a reflink
// (FICLONE, shares extents), an in-kernel copy (copy_file_range), or plain reads and writes.
// Whole-file clones keep holes: only allocated extents are copied, all-zero chunks skipped.

import { read as fsRead, write as fsWrite, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { promisify } from "node:util";
import { VhdsyncError, toVhdsyncError } from "../errors.js";
import { isZeroBytes, openFile, ZERO_CHUNK } from "./file.js";
import { fileExtentPairs } from "./native.js";
import { addonLoadState, checkFdRange, fromNativeError, isUnsupportedError, nativeAddon } from "./native-addon.js";
import { checkOptions, checkPath } from "../arguments.js";

/** How bytes were copied. */
export type CopyMethod = "reflink" | "copy-file-range" | "copy";

/** Outcome of copyFileRange(). */
export interface CopyRangeResult {
  method: "copy-file-range" | "copy";
  /** Bytes copied (fewer than asked only when the source ends first). */
  bytesCopied: number;
  /** Why a faster method was not used, when one was not. */
  reason?: string;
}

/** Options of cloneFile(). */
export interface CloneOptions {
  /** Replace `dstPath` when it exists. */
  overwrite?: boolean;
  /**
   * Bytes of the source whose allocated extents are listed at once (a positive multiple of
   * 4096; default CLONE_MAP_WINDOW_BYTES, 256 MiB), which bounds the memory a fragmented
   * file's list takes. Extents crossing a window's edge are copied in two parts.
   */
  mapWindowBytes?: number;
}

/** Outcome of cloneFile(). */
export interface CloneResult {
  method: CopyMethod;
  sizeBytes: number;
  /**
   * Bytes read from the source's allocated extents (0 for a reflink; known holes skipped —
   * without the addon every byte counts, though all-zero 4 KiB pieces are still not written).
   */
  bytesCopied: number;
  /** Why a faster method was not used, when one was not. */
  reason?: string;
}

const CHUNK_BYTES = ZERO_CHUNK.length;
const ZERO_SKIP_BYTES = 4096;
const readAsync = promisify(fsRead);
const writeAsync = promisify(fsWrite);

function describe(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  return `${typeof code === "string" ? `${code}: ` : ""}${(error as Error)?.message ?? String(error)}`;
}

/** Writes all of `chunk` at `position`. */
async function writeAll(fd: number, chunk: Buffer, position: number): Promise<void> {
  for (let written = 0; written < chunk.length; ) {
    const { bytesWritten } = await writeAsync(fd, chunk, written, chunk.length - written, position + written);
    written += bytesWritten;
  }
}

/** Writes the chunk except its all-zero ZERO_SKIP_BYTES pieces (the target reads zeros there). */
async function writeNonZero(fd: number, chunk: Buffer, position: number): Promise<void> {
  let runStart = -1;
  for (let piece = 0; piece <= chunk.length; piece += ZERO_SKIP_BYTES) {
    const end = Math.min(piece + ZERO_SKIP_BYTES, chunk.length);
    const zero = piece === chunk.length || isZeroBytes(chunk.subarray(piece, end));
    if (!zero && runStart < 0) runStart = piece;
    if (zero && runStart >= 0) {
      await writeAll(fd, chunk.subarray(runStart, piece), position + runStart);
      runStart = -1;
    }
  }
}

/**
 * Plain positional copy; returns the bytes read. With skipZeros, all-zero 4 KiB pieces are
 * not written (the target must already read zeros there).
 */
async function plainCopy(srcFd: number, srcOffset: number, dstFd: number, dstOffset: number, length: number, skipZeros: boolean): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(length, 1)));
  let copied = 0;
  while (copied < length) {
    const want = Math.min(buffer.length, length - copied);
    const { bytesRead } = await readAsync(srcFd, buffer, 0, want, srcOffset + copied);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    if (skipZeros) await writeNonZero(dstFd, chunk, dstOffset + copied);
    else await writeAll(dstFd, chunk, dstOffset + copied);
    copied += bytesRead;
  }
  return copied;
}

/** copy_file_range through the addon, or a reason why it cannot be used here. */
async function kernelCopy(srcFd: number, srcOffset: number, dstFd: number, dstOffset: number, length: number): Promise<number | string> {
  const addon = nativeAddon();
  if (!addon) return `native addon not loaded (${addonLoadState().reason})`;
  try {
    return await addon.copyRangeAsync(srcFd, srcOffset, dstFd, dstOffset, length);
  } catch (error) {
    if (isUnsupportedError(error)) return `copy_file_range unsupported here (${describe(error)})`;
    throw fromNativeError(error, { srcOffset, dstOffset, length });
  }
}

async function copyRangeWith(srcFd: number, srcOffset: number, dstFd: number, dstOffset: number, length: number, skipZeros: boolean): Promise<CopyRangeResult> {
  const kernel = await kernelCopy(srcFd, srcOffset, dstFd, dstOffset, length);
  if (typeof kernel === "number") return { method: "copy-file-range", bytesCopied: kernel };
  try {
    const bytesCopied = await plainCopy(srcFd, srcOffset, dstFd, dstOffset, length, skipZeros);
    return { method: "copy", bytesCopied, reason: kernel };
  } catch (error) {
    throw toVhdsyncError(error, { srcOffset, dstOffset, length });
  }
}

/**
 * Copies `lengthBytes` from `srcFd` at `srcOffsetBytes` to `dstFd` at `dstOffsetBytes`
 * (stopping early at the end of the source): copy_file_range when the addon and filesystem
 * allow, else plain reads/writes. The ranges must not overlap within one file.
 * @throws VHDSYNC_INVALID_ARGUMENT for bad fds/offsets/length; VHDSYNC_NO_SPACE, VHDSYNC_IO, ...
 */
export async function copyFileRange(
  srcFd: number,
  srcOffsetBytes: number,
  dstFd: number,
  dstOffsetBytes: number,
  lengthBytes: number,
): Promise<CopyRangeResult> {
  checkFdRange(srcFd, srcOffsetBytes, lengthBytes);
  checkFdRange(dstFd, dstOffsetBytes, lengthBytes);
  return copyRangeWith(srcFd, srcOffsetBytes, dstFd, dstOffsetBytes, lengthBytes, false);
}

/** FICLONE through the addon: undefined on success, else why not. */
async function tryReflink(srcFd: number, dstFd: number): Promise<string | undefined> {
  const addon = nativeAddon();
  if (!addon) return `native addon not loaded (${addonLoadState().reason})`;
  try {
    await addon.reflinkAsync(srcFd, dstFd);
    return undefined;
  } catch (error) {
    if (isUnsupportedError(error)) return `reflink unsupported here (${describe(error)})`;
    throw fromNativeError(error);
  }
}

/**
 * Bytes of the source whose extents are listed at once: 16 bytes per extent, at most one
 * extent per two 4 KiB blocks, so at most 512 KiB of list however fragmented the file (a
 * whole 1 TiB file of alternating 4 KiB blocks would list 2 GiB).
 */
export const CLONE_MAP_WINDOW_BYTES = 256 * 1024 * 1024;

/** Copies the allocated extents of a fresh, already-sized target; returns method, bytes, reason. */
async function copyExtents(srcFd: number, dstFd: number, sizeBytes: number, windowBytes: number): Promise<Omit<CloneResult, "sizeBytes">> {
  let method: CopyMethod = "copy-file-range";
  let bytesCopied = 0;
  let reason: string | undefined;
  for (let start = 0; start < sizeBytes; start += windowBytes) {
    const length = Math.min(windowBytes, sizeBytes - start);
    const extents = (await fileExtentPairs(srcFd, start, length)) ?? Float64Array.of(start, length);
    for (let i = 0; i < extents.length; i += 2) {
      const result = await copyRangeWith(srcFd, extents[i], dstFd, extents[i], extents[i + 1], true);
      bytesCopied += result.bytesCopied;
      if (result.method === "copy") [method, reason] = ["copy", result.reason];
    }
  }
  return { method, bytesCopied, reason };
}

/** Throws VHDSYNC_INVALID_ARGUMENT when `dstPath` is the open source file itself (overwrite would truncate it). */
async function refuseSameFile(src: FileHandle, dstPath: string): Promise<void> {
  const target = await fsp.stat(dstPath).catch(() => undefined);
  const source = await src.stat();
  if (target && target.dev === source.dev && target.ino === source.ino) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${dstPath}: source and target are the same file`, { path: dstPath });
  }
}

/**
 * Copies the file at `srcPath` to a new file `dstPath` (existing files are replaced only
 * with `overwrite`), fastest path first: reflink, then copy_file_range of the allocated
 * extents, then plain reads/writes skipping zeros. Holes stay holes. The copy is flushed
 * (fdatasync) before returning; a failed copy removes `dstPath`.
 * @returns which method was used and, when not a reflink, why not
 * @throws VHDSYNC_NOT_FOUND (no source), VHDSYNC_INVALID_ARGUMENT (target exists without
 *   overwrite, or is the source itself), VHDSYNC_NO_SPACE, VHDSYNC_ACCESS_DENIED, VHDSYNC_IO
 */
export async function cloneFile(srcPath: string, dstPath: string, options: CloneOptions = {}): Promise<CloneResult> {
  checkPath(srcPath, "srcPath");
  checkPath(dstPath, "dstPath");
  checkOptions(options);
  const windowBytes = options.mapWindowBytes ?? CLONE_MAP_WINDOW_BYTES;
  if (!Number.isSafeInteger(windowBytes) || windowBytes < 4096 || windowBytes % 4096 !== 0) {
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `mapWindowBytes must be a positive multiple of 4096, got ${windowBytes}`, { mapWindowBytes: windowBytes });
  }
  const src = await openFile(srcPath, "r");
  let dst;
  try {
    await refuseSameFile(src, dstPath);
    dst = await openFile(dstPath, options.overwrite ? "w" : "wx");
  } catch (error) {
    await src.close();
    if ((error as VhdsyncError).details?.errno !== "EEXIST") throw error;
    throw new VhdsyncError("VHDSYNC_INVALID_ARGUMENT", `${dstPath}: already exists (pass overwrite: true to replace it)`, { path: dstPath });
  }
  try {
    const sizeBytes = (await src.stat()).size;
    const reflinkReason = await tryReflink(src.fd, dst.fd);
    let result: CloneResult = { method: "reflink", sizeBytes, bytesCopied: 0 };
    if (reflinkReason) {
      await dst.truncate(sizeBytes);
      const copied = await copyExtents(src.fd, dst.fd, sizeBytes, windowBytes);
      const reasons = new Set([reflinkReason, copied.reason].filter((text): text is string => Boolean(text)));
      result = { ...copied, sizeBytes, reason: [...reasons].join("; ") };
    }
    await dst.datasync();
    return result;
  } catch (error) {
    await dst.close().catch(() => undefined);
    await fsp.unlink(dstPath).catch(() => undefined);
    dst = undefined;
    throw toVhdsyncError(error, { path: dstPath, source: srcPath });
  } finally {
    await src.close();
    await dst?.close();
  }
}
