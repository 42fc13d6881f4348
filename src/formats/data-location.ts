// Where an image's virtual disk lies in its own file, for scanners that map the file's pages
// directly (src/sync/native-scanner.ts): flat images (raw files, block devices, fixed VHDs:
// the virtual disk is the file's first bytes), dynamic VHDs (each allocated block's data is
// one run of the file, after its sector bitmap; unallocated blocks read as zeros) and VHDX
// files without a parent, a dirty log or partially present blocks (fully present blocks are
// runs, other states zeros). Differencing disks and other VHDX files have no locator and are
// read through DiskImage.read.

import type { DiskImage } from "./disk-image.js";
import { flatDataOf } from "./flat-file.js";

/** A piece of the virtual disk and where its bytes are. */
export interface DataPiece {
  offset: number;
  length: number;
  /** File offset of the piece's first byte, or null where the piece reads as zeros. */
  fileOffset: number | null;
}

/** Finds the file bytes of an image's virtual disk. */
export interface DataLocator {
  /** Descriptor of the file holding the data (the image's own; valid while it is open). */
  readonly fd: number;
  /** Pieces never cross a multiple of this power of two (the format's block size). */
  readonly granuleBytes: number;
  /** [offset, offset+length) as pieces, in order, covering it. The range must lie inside the disk. */
  locate(offset: number, length: number): DataPiece[];
}

/** Images that know where their data lies in their file. */
export interface LocatableImage {
  /** A locator, or undefined when the image's content is not its file's bytes alone (e.g. a parent fills gaps). */
  dataLocator(): DataLocator | undefined;
}

/** Granule of flat images: a power of two above any disk size (2^52 bytes). */
const FLAT_GRANULE_BYTES = 2 ** 52;

/** The locator of `image`'s data, or undefined when its data must go through DiskImage.read. */
export function dataLocatorOf(image: DiskImage): DataLocator | undefined {
  const flat = flatDataOf(image);
  if (flat) return { fd: flat.handle.fd, granuleBytes: FLAT_GRANULE_BYTES, locate: (offset, length) => [{ offset, length, fileOffset: offset }] };
  const locatable = image as Partial<LocatableImage>;
  return typeof locatable.dataLocator === "function" ? locatable.dataLocator() : undefined;
}
