// The data path shared by formats whose virtual disk is a plain byte range at the start of a
// file (raw images, block devices, fixed VHD): range-checked positional reads and writes,
// zero ranges as holes where the filesystem allows, holes as the allocation map.

import type { FileHandle } from "node:fs/promises";
import { toVhdsyncError } from "../errors.js";
import { checkRange, readExactly, writeExactly, writeExactlySync, writeZeroBytes } from "../io/file.js";
import { fileExtentPairs, fileExtentPairsSync, fileExtentsSync, fileNextDataSync, punchHole, zeroDeviceRange } from "../io/native.js";
import { NO_EXTENTS, extentsOfPairs, type ExtentPairs } from "../io/extent-pairs.js";
import type { Extent } from "./disk-image.js";

/** The first `sizeBytes` of an open file, addressed as a virtual disk. */
export interface FlatFile {
  handle: FileHandle;
  path: string;
  sizeBytes: number;
  /** Holes can be asked for and punched (regular files; not block devices). */
  sparse: boolean;
  /** A block device: ranges are zeroed by the device (zeroDeviceRange) where it can. */
  blockDevice?: boolean;
}

/**
 * An image whose virtual disk is a FlatFile (raw files, block devices, fixed VHD). Hot paths
 * (the resync scanner, hashing) use the file directly: mapped pages, reads and allocation
 * maps on the calling thread.
 */
export interface FlatDataImage {
  readonly flatData: FlatFile;
}

/** The FlatFile behind `image`, or undefined when its data must go through DiskImage.read. */
export function flatDataOf(image: object): FlatFile | undefined {
  return (image as Partial<FlatDataImage>).flatData;
}

/** Reads `buffer.length` bytes at `offset`. @throws VHDSYNC_INVALID_ARGUMENT, VHDSYNC_TRUNCATED, I/O codes */
export async function readFlat(file: FlatFile, buffer: Uint8Array, offset: number): Promise<void> {
  checkRange(offset, buffer.length, file.sizeBytes, file.path);
  await readExactly(file.handle, buffer, offset, file.path);
}

/** Writes `buffer` at `offset`. @throws VHDSYNC_INVALID_ARGUMENT, I/O codes */
export async function writeFlat(file: FlatFile, buffer: Uint8Array, offset: number): Promise<void> {
  checkRange(offset, buffer.length, file.sizeBytes, file.path);
  await writeExactly(file.handle, buffer, offset, file.path);
}

/** writeFlat() on the calling thread (hot loops of page-cache writes). */
export function writeFlatSync(file: FlatFile, buffer: Uint8Array, offset: number): void {
  checkRange(offset, buffer.length, file.sizeBytes, file.path);
  writeExactlySync(file.handle.fd, buffer, offset, file.path);
}

/**
 * Makes a range read as zeros: a punched hole in a sparse file, the device's own zeroing on a
 * block device (unmapped where the device can: thin volumes, SSDs), zero writes otherwise.
 */
export async function writeZerosFlat(file: FlatFile, offset: number, length: number): Promise<void> {
  checkRange(offset, length, file.sizeBytes, file.path);
  if (length === 0) return;
  if (file.sparse) return zeroFileBytes(file.handle, offset, length, file.path);
  if (file.blockDevice && (await zeroDeviceRange(file.handle.fd, offset, length))) return;
  await writeZeroBytes(file.handle, offset, length, file.path);
}

/**
 * Zero ranges shorter than this are not punched: zeros are written over the data in them
 * (their holes stay holes). On ext4 a punch costs ~75 us whatever its size up to 64 KiB:
 * 4-5 times writing 4 KiB of zeros and syncing them (docs/resync.md "Zero runs and holes");
 * every hole also splits the file's extents. A short range thus keeps the space its data
 * had, and never takes more.
 */
export const MIN_HOLE_BYTES = 64 * 1024;

/**
 * Makes a range of a regular file read as zeros: a punched hole where it can be (ranges of
 * MIN_HOLE_BYTES or more), zero writes over its data otherwise (or over all of it, where the
 * file's holes cannot be asked for).
 */
export async function zeroFileBytes(handle: FileHandle, offset: number, length: number, path: string): Promise<void> {
  if (length <= 0) return;
  // The data in a short range: lseek on this thread, microseconds (the pool may be busy).
  const data = length < MIN_HOLE_BYTES ? fileExtentsSync(handle.fd, offset, length) : null;
  if (data) {
    for (const extent of data) await writeZeroBytes(handle, extent.offset, extent.length, path);
  } else if (!(await punchHole(handle.fd, offset, length))) {
    await writeZeroBytes(handle, offset, length, path);
  }
}

/** Data ranges in [offset, offset+length): the file's non-hole extents, or all of it when unknown. */
export async function allocationMapFlat(file: FlatFile, offset: number, length: number): Promise<Extent[]> {
  return extentsOfPairs(await allocationPairsFlat(file, offset, length));
}

/** allocationMapFlat() as (offset, length) pairs (see io/extent-pairs.ts). */
export async function allocationPairsFlat(file: FlatFile, offset: number, length: number): Promise<ExtentPairs> {
  checkRange(offset, length, file.sizeBytes, file.path);
  if (length === 0) return NO_EXTENTS;
  return (file.sparse && (await fileExtentPairs(file.handle.fd, offset, length))) || Float64Array.of(offset, length);
}

/**
 * The first offset at or after `offset` where the image holds data, on the calling thread
 * (fileNextDataSync): `offset` itself where holes cannot be asked for (data everywhere, as
 * allocationPairsFlat answers), Infinity when none does before its end.
 */
export function nextDataFlatSync(file: FlatFile, offset: number): number {
  checkRange(offset, 0, file.sizeBytes, file.path);
  const found = file.sparse ? fileNextDataSync(file.handle.fd, offset) : null;
  if (found === null) return offset;
  return found >= file.sizeBytes ? Infinity : Math.max(found, offset);
}

/** allocationPairsFlat() on the calling thread (see fileExtentPairsSync). */
export function allocationPairsFlatSync(file: FlatFile, offset: number, length: number): ExtentPairs {
  checkRange(offset, length, file.sizeBytes, file.path);
  if (length === 0) return NO_EXTENTS;
  return (file.sparse && fileExtentPairsSync(file.handle.fd, offset, length)) || Float64Array.of(offset, length);
}

/** fdatasync with the path in any error. */
export async function datasyncHandle(handle: FileHandle, path: string): Promise<void> {
  try {
    await handle.datasync();
  } catch (error) {
    throw toVhdsyncError(error, { path });
  }
}
